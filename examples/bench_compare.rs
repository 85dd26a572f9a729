//! hhtld against a BF16 safetensors copy of the same model, in one process,
//! interleaved, many repetitions; prints one table of ratios
//! (baseline time / hhtld time: > 1 means hhtld is faster).
//!
//! `bench_compare DIR [--reps N] [--profiles fidelity,compact,hhtl] [--cold-only]`
//! where DIR holds `PROFILE.hhtld` and `model-bf16.safetensors`
//! (`scripts/bench.sh` prepares it).
//!
//! Each repetition times hhtld and the baseline back to back (alternating
//! which goes first), so load from other processes hits both alike; the
//! ratio column is the median of the per-repetition ratios, with the 25th
//! and 75th percentiles. Every sample runs the operation enough times to
//! last at least `MIN_SAMPLE`.

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::{bf16_to_f32, evict, map, word_sum, SplitMix};
use std::fs::File;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hhtld_format::{Dtype, Encoding};
use hhtld_reader::{Hhtld, HhtldFile, TensorView};
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::SafeTensors;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Shortest timed sample; short operations are repeated to reach it.
const MIN_SAMPLE: Duration = Duration::from_millis(3);
/// Same thresholds as the reader's parallel decode, for the baseline.
const PAR_MIN_ELEMS: usize = 1 << 16;
const PAR_TASK_ELEMS: usize = 1 << 14;
/// Random rows per sample of case 3.
const RANDOM_ROWS: usize = 100_000;
const TOKEN_EMBEDDING: &str = "embeddings.word_embeddings.weight";

/// Seconds per call of `f`, over `iters` calls.
fn time_iters(iters: usize, f: &mut dyn FnMut()) -> f64 {
    let s = Instant::now();
    for _ in 0..iters {
        f();
    }
    s.elapsed().as_secs_f64() / iters as f64
}

/// How many calls make one sample last at least `MIN_SAMPLE`.
fn calibrate(f: &mut dyn FnMut()) -> usize {
    f(); // warm up caches and page tables
    let mut iters = 1usize;
    loop {
        let t = time_iters(iters, f) * iters as f64;
        if t >= MIN_SAMPLE.as_secs_f64() || iters >= 1 << 20 {
            return iters;
        }
        let want = (MIN_SAMPLE.as_secs_f64() / t.max(1e-9) * iters as f64 * 1.2).ceil();
        iters = (want as usize).clamp(iters + 1, iters * 100);
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// One row of the table.
struct Row {
    case: String,
    ratio: f64,
    ratio_p25: f64,
    ratio_p75: f64,
    hhtld: f64,
    base: f64,
    /// Extra figure for hhtld, e.g. GB/s.
    note: String,
    goal: Option<f64>,
}

/// Times `h` and `b` interleaved over `reps` repetitions.
fn compare(reps: usize, h: &mut dyn FnMut(), b: &mut dyn FnMut()) -> (f64, f64, f64, f64, f64) {
    let ih = calibrate(h);
    let ib = calibrate(b);
    let mut th = Vec::with_capacity(reps);
    let mut tb = Vec::with_capacity(reps);
    let mut ratios = Vec::with_capacity(reps);
    for rep in 0..reps {
        let (x, y) = if rep % 2 == 0 {
            let x = time_iters(ih, h);
            (x, time_iters(ib, b))
        } else {
            let y = time_iters(ib, b);
            (time_iters(ih, h), y)
        };
        th.push(x);
        tb.push(y);
        ratios.push(y / x);
    }
    for v in [&mut th, &mut tb, &mut ratios] {
        v.sort_by(f64::total_cmp);
    }
    (
        percentile(&ratios, 0.5),
        percentile(&ratios, 0.25),
        percentile(&ratios, 0.75),
        percentile(&th, 0.5),
        percentile(&tb, 0.5),
    )
}

fn row(case: String, m: (f64, f64, f64, f64, f64), note: String, goal: Option<f64>) -> Row {
    Row {
        case,
        ratio: m.0,
        ratio_p25: m.1,
        ratio_p75: m.2,
        hhtld: m.3,
        base: m.4,
        note,
        goal,
    }
}

fn fmt_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.1} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}

/// Encoded (PALETTE) tensors of `h` with their BF16 counterparts in `st`.
fn encoded_pairs<'a>(
    h: &Hhtld<'a>,
    st: &SafeTensors<'a>,
) -> Result<Vec<(TensorView<'a>, &'a [u8])>, Error> {
    let mut out = Vec::new();
    for t in h.tensors() {
        if t.encoding() != Encoding::Palette {
            continue;
        }
        let b = st.tensor(t.name())?;
        if b.dtype() != safetensors::Dtype::BF16 || b.data().len() != 2 * t.numel() {
            return Err(format!("{}: baseline is not BF16 of the same shape", t.name()).into());
        }
        out.push((t, b.data()));
    }
    Ok(out)
}

fn bench_profile(dir: &Path, profile: &str, reps: usize, rows: &mut Vec<Row>) -> Result<(), Error> {
    let hpath = dir.join(format!("{profile}.hhtld"));
    let bpath = dir.join("model-bf16.safetensors");
    let pool1 = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let hfile = HhtldFile::open(&hpath)?;
    let h = hfile.view();
    let bmap = map(&bpath)?;
    let st = SafeTensors::deserialize(&bmap)?;
    let hmap = map(&hpath)?;
    eprintln!(
        "{profile}: {} ({:.1} MB) vs {} ({:.1} MB)",
        hpath.display(),
        hfile.bytes().len() as f64 / 1e6,
        bpath.display(),
        bmap.len() as f64 / 1e6
    );

    // 1. Open + structural validation, mmap included in both.
    let m = compare(
        reps,
        &mut || {
            black_box(HhtldFile::open(&hpath).unwrap());
        },
        &mut || {
            let f = File::open(&bpath).unwrap();
            // SAFETY: as in `map`.
            let m = unsafe { Mmap::map(&f).unwrap() };
            black_box(SafeTensors::deserialize(&m).unwrap());
        },
    );
    rows.push(row(
        format!("1 open+validate, mmap incl. [{profile}]"),
        m,
        String::new(),
        Some(2.0),
    ));
    // 1b. The same over an existing mapping (parse only).
    let m = compare(
        reps,
        &mut || {
            black_box(Hhtld::from_bytes(&hmap).unwrap());
        },
        &mut || {
            black_box(SafeTensors::deserialize(&bmap).unwrap());
        },
    );
    rows.push(row(
        format!("1b validate only, no mmap [{profile}]"),
        m,
        String::new(),
        None,
    ));

    // 2. Full decode of every encoded tensor to f32, preallocated buffers.
    let pairs = encoded_pairs(&h, &st)?;
    let mut bufs: Vec<Vec<f32>> = pairs.iter().map(|(t, _)| vec![0f32; t.numel()]).collect();
    let out_bytes = bufs.iter().map(|b| b.len() * 4).sum::<usize>() as f64;
    let params = bufs.iter().map(Vec::len).sum::<usize>();
    eprintln!("  case 2: {} encoded tensors, {params} params", pairs.len());
    // Both sides must produce finite numbers of the same shape; check once.
    for ((t, _), buf) in pairs.iter().zip(bufs.iter_mut()) {
        t.decode_into(buf)?;
    }
    for (name, threads) in [("1 thread", Some(&pool1)), ("all cores", None)] {
        let dec_h = |bufs: &mut Vec<Vec<f32>>| {
            for ((t, _), buf) in pairs.iter().zip(bufs.iter_mut()) {
                t.decode_into(buf).unwrap();
            }
        };
        let dec_b = |bufs: &mut Vec<Vec<f32>>, par: bool| {
            for ((_, src), buf) in pairs.iter().zip(bufs.iter_mut()) {
                if par && buf.len() >= PAR_MIN_ELEMS {
                    buf.par_chunks_mut(PAR_TASK_ELEMS)
                        .zip(src.par_chunks(PAR_TASK_ELEMS * 2))
                        .for_each(|(o, s)| bf16_to_f32(s, o));
                } else {
                    bf16_to_f32(src, buf);
                }
            }
        };
        let mut bufs_b = bufs.clone();
        let m = match threads {
            Some(pool) => pool.install(|| {
                compare(reps, &mut || dec_h(&mut bufs), &mut || {
                    dec_b(&mut bufs_b, false)
                })
            }),
            None => compare(reps, &mut || dec_h(&mut bufs), &mut || {
                dec_b(&mut bufs_b, true)
            }),
        };
        rows.push(row(
            format!("2 decode all encoded to f32, {name} [{profile}]"),
            m,
            format!(
                "{:.2} GB/s f32 out (bf16: {:.2})",
                out_bytes / m.3 / 1e9,
                out_bytes / m.4 / 1e9
            ),
            Some(1.0),
        ));
    }

    // 2f. The ceiling of case 2: only writing the same f32 outputs (a fill,
    // no input read, no arithmetic), against the same baseline. No decoder
    // that writes f32 into these buffers can beat this ratio.
    let mut bufs_f = bufs.clone();
    let mut bufs_b = bufs.clone();
    let m = pool1.install(|| {
        compare(
            reps,
            &mut || {
                for buf in bufs_f.iter_mut() {
                    buf.fill(black_box(0.5));
                }
            },
            &mut || {
                for ((_, src), buf) in pairs.iter().zip(bufs_b.iter_mut()) {
                    bf16_to_f32(src, buf);
                }
            },
        )
    });
    rows.push(row(
        format!("2f ceiling: fill the f32 outputs, 1 thread [{profile}]"),
        m,
        format!("{:.2} GB/s f32 out", out_bytes / m.3 / 1e9),
        None,
    ));
    drop((bufs_f, bufs_b));

    // 2c. What a loader without buffers of its own does: a new Vec per
    // tensor from `decode()`, against a new Vec per tensor converted from
    // BF16. Both allocate zeroed memory, so both pay the same page faults.
    let m = pool1.install(|| {
        compare(
            reps,
            &mut || {
                for (t, _) in &pairs {
                    black_box(t.decode().unwrap());
                }
            },
            &mut || {
                for (_, src) in &pairs {
                    let mut v = vec![0f32; src.len() / 2];
                    bf16_to_f32(src, &mut v);
                    black_box(v);
                }
            },
        )
    });
    rows.push(row(
        format!("2c decode() into new Vecs, 1 thread [{profile}]"),
        m,
        format!("{:.2} GB/s f32 out", out_bytes / m.3 / 1e9),
        None,
    ));

    // 2b. The same tensors decoded to bf16, against copying the baseline's
    // BF16 bytes (what a bf16 loader of safetensors does).
    let mut bufs16: Vec<Vec<half::bf16>> = pairs
        .iter()
        .map(|(t, _)| vec![half::bf16::ZERO; t.numel()])
        .collect();
    let mut bytes_b: Vec<Vec<u8>> = pairs.iter().map(|(_, s)| vec![0u8; s.len()]).collect();
    let m = pool1.install(|| {
        compare(
            reps,
            &mut || {
                for ((t, _), buf) in pairs.iter().zip(bufs16.iter_mut()) {
                    t.decode_into(buf).unwrap();
                }
            },
            &mut || {
                for ((_, src), buf) in pairs.iter().zip(bytes_b.iter_mut()) {
                    buf.copy_from_slice(src);
                }
            },
        )
    });
    rows.push(row(
        format!("2b decode all encoded to bf16 vs BF16 copy, 1 thread [{profile}]"),
        m,
        format!(
            "{:.2} GB/s bf16 out (copy: {:.2})",
            out_bytes / 2.0 / m.3 / 1e9,
            out_bytes / 2.0 / m.4 / 1e9
        ),
        None,
    ));
    drop((bufs16, bytes_b));

    // 3. Random single rows of the token embedding.
    let t = h.tensor_by_name(TOKEN_EMBEDDING)?;
    let b = st.tensor(TOKEN_EMBEDDING)?;
    if t.dtype() != Dtype::F32 && t.dtype() != Dtype::Bf16 && t.dtype() != Dtype::F16 {
        return Err("token embedding is not a float tensor".into());
    }
    let (n_rows, n_cols) = (t.n_rows(), t.n_cols());
    let bdata = b.data();
    let mut rng = SplitMix(0x5EED);
    let picks: Vec<usize> = (0..RANDOM_ROWS)
        .map(|_| (rng.next() % n_rows as u64) as usize)
        .collect();
    let mut row_h = vec![0f32; n_cols];
    let mut row_b = vec![0f32; n_cols];
    // A loader resolves the tensor once and then looks rows up.
    let lookup = t.row_decoder()?;
    let m = compare(
        reps,
        &mut || {
            for &r in &picks {
                lookup.decode_row_into(r, &mut row_h).unwrap();
                black_box(&row_h);
            }
        },
        &mut || {
            for &r in &picks {
                let s = &bdata[r * n_cols * 2..(r + 1) * n_cols * 2];
                bf16_to_f32(s, &mut row_b);
                black_box(&row_b);
            }
        },
    );
    rows.push(row(
        format!("3 random row {n_rows}x{n_cols} (100k rows) [{profile}]"),
        m,
        format!(
            "{:.0} ns/row (bf16: {:.0} ns/row)",
            m.3 / RANDOM_ROWS as f64 * 1e9,
            m.4 / RANDOM_ROWS as f64 * 1e9
        ),
        Some(1.0),
    ));

    // 4. verify() against a plain read of the same mapping.
    let bytes = hfile.bytes();
    let len = bytes.len() as f64;
    h.verify()?;
    let m = pool1.install(|| {
        compare(reps, &mut || h.verify().unwrap(), &mut || {
            black_box(word_sum(black_box(bytes)));
        })
    });
    rows.push(row(
        format!("4 verify vs u64 sum, 1 thread [{profile}]"),
        m,
        format!("{:.2} GB/s (sum: {:.2})", len / m.3 / 1e9, len / m.4 / 1e9),
        Some(0.5),
    ));
    let m = compare(reps, &mut || h.verify().unwrap(), &mut || {
        let s = black_box(bytes)
            .par_chunks(1 << 20)
            .map(word_sum)
            .reduce(|| 0, u64::wrapping_add);
        black_box(s);
    });
    rows.push(row(
        format!("4 verify vs u64 sum, all cores [{profile}]"),
        m,
        format!("{:.2} GB/s (sum: {:.2})", len / m.3 / 1e9, len / m.4 / 1e9),
        Some(0.5),
    ));
    Ok(())
}

/// Case 5: cold load. Before every timed run both files are evicted from
/// the page cache; the run opens the file and decodes every encoded tensor
/// to f32 (hhtld), or maps the BF16 file and converts the same tensors
/// (baseline). Output buffers are allocated once, outside the timing. 5b
/// is the same load the way a whole-file loader does it:
/// [`HhtldFile::prefetch`], then the tensors in [`HhtldFile::file_order`].
fn bench_cold(dir: &Path, profile: &str, reps: usize, rows: &mut Vec<Row>) -> Result<(), Error> {
    let hpath = dir.join(format!("{profile}.hhtld"));
    let bpath = dir.join("model-bf16.safetensors");
    let (names, mut bufs) = {
        let f = HhtldFile::open(&hpath)?;
        let v: Vec<(String, usize)> = f
            .tensors()
            .filter(|t| t.encoding() == Encoding::Palette)
            .map(|t| (t.name().to_owned(), t.numel()))
            .collect();
        let bufs: Vec<Vec<f32>> = v.iter().map(|(_, n)| vec![0f32; *n]).collect();
        (v, bufs)
    };
    let mut bufs_b = bufs.clone();
    let index: std::collections::HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(k, (n, _))| (n.as_str(), k))
        .collect();
    let hlen = std::fs::metadata(&hpath)?.len() as f64;
    let blen = std::fs::metadata(&bpath)?.len() as f64;
    let hot_h = |bufs: &mut Vec<Vec<f32>>| -> Result<(), Error> {
        let f = HhtldFile::open(&hpath)?;
        for ((name, _), buf) in names.iter().zip(bufs.iter_mut()) {
            f.tensor_by_name(name)?.decode_into(buf)?;
        }
        Ok(())
    };
    let hot_b = |bufs: &mut Vec<Vec<f32>>| -> Result<(), Error> {
        let m = map(&bpath)?;
        let st = SafeTensors::deserialize(&m)?;
        for ((name, _), buf) in names.iter().zip(bufs.iter_mut()) {
            let t = st.tensor(name)?;
            let src = t.data();
            if buf.len() >= PAR_MIN_ELEMS {
                buf.par_chunks_mut(PAR_TASK_ELEMS)
                    .zip(src.par_chunks(PAR_TASK_ELEMS * 2))
                    .for_each(|(o, s)| bf16_to_f32(s, o));
            } else {
                bf16_to_f32(src, buf);
            }
        }
        Ok(())
    };
    // What a loader of the whole file does: start the reads of the whole
    // file at once, then decode in file order, following them.
    let load_h = |bufs: &mut Vec<Vec<f32>>| -> Result<(), Error> {
        let f = HhtldFile::open(&hpath)?;
        f.prefetch()?;
        for i in f.file_order() {
            let t = f.tensor(i)?;
            if let Some(k) = index.get(t.name()) {
                t.decode_into(&mut bufs[*k])?;
            }
        }
        Ok(())
    };
    for (case, loader) in [("5", false), ("5b", true)] {
        let m = cold_pair(reps, &hpath, &bpath, &mut |h| {
            if h && loader {
                load_h(&mut bufs)
            } else if h {
                hot_h(&mut bufs)
            } else {
                hot_b(&mut bufs_b)
            }
        })?;
        let what = if loader {
            "evict, open, prefetch, decode all encoded to f32 in file order"
        } else {
            "evict, open, decode all encoded to f32"
        };
        rows.push(row(
            format!("{case} cold load: {what} [{profile}]"),
            m,
            format!("reads {:.1} MB (baseline {:.1} MB)", hlen / 1e6, blen / 1e6),
            Some(1.8),
        ));
    }
    Ok(())
}

/// Alternating cold runs of hhtld (`run(true)`) and the baseline
/// (`run(false)`), each after evicting both files: (median ratio, p25, p75,
/// median hhtld time, median baseline time).
fn cold_pair(
    reps: usize,
    hpath: &Path,
    bpath: &Path,
    run: &mut dyn FnMut(bool) -> Result<(), Error>,
) -> Result<(f64, f64, f64, f64, f64), Error> {
    let (mut th, mut tb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        let mut one = |h: bool| -> Result<f64, Error> {
            evict(hpath)?;
            evict(bpath)?;
            let s = Instant::now();
            run(h)?;
            Ok(s.elapsed().as_secs_f64())
        };
        let (x, y) = if rep % 2 == 0 {
            let x = one(true)?;
            (x, one(false)?)
        } else {
            let y = one(false)?;
            (one(true)?, y)
        };
        th.push(x);
        tb.push(y);
        ratios.push(y / x);
    }
    for v in [&mut th, &mut tb, &mut ratios] {
        v.sort_by(f64::total_cmp);
    }
    Ok((
        percentile(&ratios, 0.5),
        percentile(&ratios, 0.25),
        percentile(&ratios, 0.75),
        percentile(&th, 0.5),
        percentile(&tb, 0.5),
    ))
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let mut reps = 41usize;
    let mut cold_only = false;
    let mut profiles = vec![
        "fidelity".to_string(),
        "compact".to_string(),
        "hhtl".to_string(),
    ];
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => reps = args.next().ok_or("--reps N")?.parse()?,
            "--cold-only" => cold_only = true,
            "--profiles" => {
                profiles = args
                    .next()
                    .ok_or("--profiles a,b")?
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument {a}").into()),
        }
    }
    let dir = dir.ok_or("usage: bench_compare DIR [--reps N] [--profiles a,b]")?;
    let mut rows = Vec::new();
    for p in &profiles {
        if !dir.join(format!("{p}.hhtld")).exists() {
            eprintln!("skipping {p}: {}/{p}.hhtld not found", dir.display());
            continue;
        }
        if !cold_only {
            bench_profile(&dir, p, reps, &mut rows)?;
        }
        // After bench_profile: its maps are gone, so eviction can drop the pages.
        bench_cold(&dir, p, reps.min(11), &mut rows)?;
    }
    println!(
        "ratio = baseline (BF16 safetensors) time / hhtld time, median of {reps} interleaved repetitions [p25-p75]; > 1: hhtld faster; {} rayon threads for 'all cores'\n",
        rayon::current_num_threads()
    );
    println!(
        "| case | ratio [p25-p75] | goal | met | hhtld median | baseline median | throughput |"
    );
    println!("|---|---:|---:|:-:|---:|---:|---|");
    for r in &rows {
        let (goal, met) = match r.goal {
            Some(g) => (
                format!("≥ {g}"),
                if r.ratio >= g { "yes" } else { "**no**" },
            ),
            None => ("-".into(), "-"),
        };
        println!(
            "| {} | {:.2} [{:.2}-{:.2}] | {goal} | {met} | {} | {} | {} |",
            r.case,
            r.ratio,
            r.ratio_p25,
            r.ratio_p75,
            fmt_time(r.hhtld),
            fmt_time(r.base),
            r.note
        );
    }
    Ok(())
}
