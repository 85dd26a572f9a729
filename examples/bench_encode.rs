//! Encode scaling: times `hhtld_writer::codec::encode_group` with the
//! fidelity codec on synthetic 384-column tensors of several row counts and
//! fits the scaling exponent (slope of log time against log rows).
//!
//! `bench_encode [--rows 4096,16384,65536] [--reps 3] [--threads 2]`
//!
//! Data: normal samples (Box-Muller over a fixed-seed SplitMix64), sd 0.05,
//! so every run encodes the same numbers. With `--rows 4096 --reps 1` this
//! is also the small encode profiled under callgrind by `scripts/bench.sh`.

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::SplitMix;
use std::hint::black_box;
use std::time::Instant;

use hhtld_format::{Regime, Role};
use hhtld_writer::codec::{encode_group, Matrix};
use hhtld_writer::pipeline::Profile;

type Error = Box<dyn std::error::Error + Send + Sync>;

const N_COLS: usize = 384;

/// `n` normal samples with standard deviation `sd`.
fn normal(n: usize, sd: f64, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let (u, v) = (rng.unit(), rng.unit());
        let r = (-2.0 * u.ln()).sqrt() * sd;
        let a = std::f64::consts::TAU * v;
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// CPU time of every thread of this process so far, in seconds (first
/// field of each `/proc/self/task/*/schedstat`, nanoseconds on a CPU). On
/// a machine shared with other work, wall time also counts waiting for a
/// core; CPU time does not.
fn cpu_secs() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum::<u64>() as f64
        / 1e9
}

/// Least-squares slope of `y` on `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    sxy / sxx
}

fn main() -> Result<(), Error> {
    let mut rows = vec![4096usize, 16384, 65536];
    let mut reps = 3usize;
    let mut threads = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rows" => {
                rows = val()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--reps" => reps = val()?.parse()?,
            "--threads" => threads = val()?.parse()?,
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let spec = Profile::Fidelity.codec(Role::AttnQ, Regime::Argmax);
    println!(
        "encode_group, fidelity codec ({}), {N_COLS} columns, {threads} threads, median of {reps}",
        hhtld_writer::pipeline::describe_spec(&spec)
    );
    println!("| rows | params | median wall | median CPU (all threads) | params/s (wall) |");
    println!("|---:|---:|---:|---:|---:|");
    let (mut wall_pts, mut cpu_pts) = (Vec::new(), Vec::new());
    for &r in &rows {
        let data = normal(r * N_COLS, 0.05, 42);
        let m = Matrix::new(&data, r, N_COLS)?;
        let mut wall = Vec::with_capacity(reps);
        let mut cpu = Vec::with_capacity(reps);
        for _ in 0..reps {
            let (s, c) = (Instant::now(), cpu_secs());
            let g = pool.install(|| encode_group(std::slice::from_ref(&m), &spec));
            wall.push(s.elapsed().as_secs_f64());
            cpu.push(cpu_secs() - c);
            black_box(g)?;
        }
        wall.sort_by(f64::total_cmp);
        cpu.sort_by(f64::total_cmp);
        let (w, c) = (wall[reps / 2], cpu[reps / 2]);
        let params = (r * N_COLS) as f64;
        println!(
            "| {r} | {params} | {w:.3} s | {c:.3} s | {:.2} M |",
            params / w / 1e6
        );
        wall_pts.push(((r as f64).ln(), w.ln()));
        cpu_pts.push(((r as f64).ln(), c.ln()));
    }
    if rows.len() >= 2 {
        let (sw, sc) = (slope(&wall_pts), slope(&cpu_pts));
        let verdict = |x: f64| if x <= 1.1 { "met" } else { "NOT met" };
        println!(
            "\nscaling exponent (least-squares slope of ln time on ln rows, goal <= 1.1): wall {sw:.3} ({}), CPU {sc:.3} ({})",
            verdict(sw),
            verdict(sc)
        );
    }
    Ok(())
}
