//! Small single-purpose runs for profilers and the page-touch demonstration.
//!
//! ```text
//! bench_probe open FILE N          open + validate N times (callgrind)
//! bench_probe cold-open FILE N     N times: evict FILE, then time one open
//! bench_probe prefetch FILE N      HhtldFile::prefetch N times on a cached file
//! bench_probe rows FILE N          N random rows of the token embedding (callgrind)
//! bench_probe tensors FILE N       decode every encoded tensor N times, 1 thread (callgrind)
//! bench_probe pages FILE [random]  which pages opening and one-row decode touch
//! bench_probe pages-st FILE        the same for a BF16 safetensors file
//! bench_probe kernel CODES [MB]     4 + 8 kernel on synthetic codes, output cycling over MB
//! ```
//!
//! `kernel` decodes a synthetic 384 x 384 tensor of two 8-bit stages (d = 4
//! and 8, the token embedding's shape) through `Prepared::decode_rows`
//! into an output area of MB megabytes (default 120: memory; 0.6: L2),
//! next to filling the same outputs and widening BF16 into them, in ns
//! per output. CODES picks which palette entries the codes use: `zero`
//! (entry 0 only), `m16` / `m64` (the first 16 / 64 entries), `s16` /
//! `s64` (16 / 64 entries spread over the palette) or `rand` (all 256).
//!
//! `pages` reports, after each step, the resident size of the file's mapping
//! (`Rss` of its line in `/proc/self/smaps`) and this process's minor and
//! major page faults (`/proc/self/stat` fields 10 and 12). Run it on a file
//! evicted from the page cache (`dd if=FILE iflag=nocache count=0`): then
//! every page the reader reads is a major fault, read from disk. With
//! `random`, the file is mapped by hand with `MADV_RANDOM` (no read-ahead)
//! and validated with `Hhtld::from_bytes`, the same parse
//! `HhtldFile::open` runs, so the resident size is exactly the pages touched.

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::{bf16_to_f32, evict, SplitMix};
use std::fs::File;
use std::hint::black_box;
use std::path::Path;

use hhtld_format::Encoding;
use hhtld_reader::{Hhtld, HhtldFile};
use memmap2::{Advice, Mmap};

type Error = Box<dyn std::error::Error + Send + Sync>;

const TOKEN_EMBEDDING: &str = "embeddings.word_embeddings.weight";

/// (minor, major) page faults of this process so far.
fn faults() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; minflt is field 10 and
    // majflt field 12 of the whole line, so 8th and 10th after it.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (
        f.get(7).copied().unwrap_or(0),
        f.get(9).copied().unwrap_or(0),
    )
}

/// Resident KiB of every mapping of `path` (its lines in /proc/self/smaps).
fn mapping_rss_kib(path: &Path) -> u64 {
    let want = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let want = want.to_string_lossy();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut inside = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping header: "start-end perms offset dev inode path".
            inside = line.ends_with(&*want);
        } else if inside && first == "Rss:" {
            kib += line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    kib
}

struct Probe<'p> {
    path: &'p Path,
    last: (u64, u64),
}

impl Probe<'_> {
    fn step(&mut self, what: &str) {
        let now = faults();
        println!(
            "| {what} | {} KiB | {} | {} |",
            mapping_rss_kib(self.path),
            now.0 - self.last.0,
            now.1 - self.last.1
        );
        self.last = faults();
    }
}

fn pages(path: &Path, random: bool) -> Result<(), Error> {
    let len = std::fs::metadata(path)?.len();
    println!(
        "{} ({} KiB, {} pages of 4 KiB); mapping: {}",
        path.display(),
        len / 1024,
        len.div_ceil(4096),
        if random {
            "by hand, MADV_RANDOM"
        } else {
            "HhtldFile::open (default advice)"
        }
    );
    println!("\n| step | mapping resident | minor faults | major faults |");
    println!("|---|---:|---:|---:|");
    let mut p = Probe {
        path,
        last: faults(),
    };
    let file;
    let map;
    let owned;
    let h: Hhtld<'_> = if random {
        file = File::open(path)?;
        // SAFETY: read-only map of a benchmark file nothing modifies meanwhile.
        map = unsafe { Mmap::map(&file)? };
        map.advise(Advice::Random)?;
        p.step("mmap");
        Hhtld::from_bytes(&map)?
    } else {
        owned = HhtldFile::open(path)?;
        owned.view()
    };
    p.step("open + validate");
    let t = h.tensor_by_name(TOKEN_EMBEDDING)?;
    p.step("tensor_by_name");
    let mut row = vec![0f32; t.n_cols()];
    t.decode_row_into(t.n_rows() / 2, &mut row)?;
    black_box(&row);
    p.step(&format!(
        "decode row {} of {}",
        t.n_rows() / 2,
        TOKEN_EMBEDDING
    ));
    t.decode_row_into(t.n_rows() / 2 + 1, &mut row)?;
    p.step("decode the next row");
    t.decode_row_into(7, &mut row)?;
    p.step("decode row 7");
    black_box(t.decode()?);
    p.step("decode the whole tensor");
    h.verify()?;
    p.step("verify (reads every section)");
    println!(
        "\nrow {} of the token embedding: {} code bytes at file offset {}; its scale: 2 bytes at {}",
        t.n_rows() / 2,
        t.stride(),
        t.record().data.start + t.n_rows() / 2 * t.stride(),
        t.record()
            .scale
            .as_ref()
            .map(|s| s.range.start + t.n_rows() / 2 * 2)
            .unwrap_or(0)
    );
    Ok(())
}

fn pages_st(path: &Path) -> Result<(), Error> {
    println!("{} (BF16 safetensors, default advice)", path.display());
    println!("\n| step | mapping resident | minor faults | major faults |");
    println!("|---|---:|---:|---:|");
    let mut p = Probe {
        path,
        last: faults(),
    };
    let file = File::open(path)?;
    // SAFETY: read-only map of a benchmark file nothing modifies meanwhile.
    let map = unsafe { Mmap::map(&file)? };
    let st = safetensors::SafeTensors::deserialize(&map)?;
    p.step("mmap + deserialize");
    let t = st.tensor(TOKEN_EMBEDDING)?;
    let n_cols = t.shape().get(1).copied().unwrap_or(1);
    let r = t.shape().first().copied().unwrap_or(1) / 2;
    let row: Vec<f32> = t.data()[r * n_cols * 2..(r + 1) * n_cols * 2]
        .chunks_exact(2)
        .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    black_box(row);
    p.step(&format!("row {r} to f32"));
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let usage = "usage: bench_probe open|cold-open|prefetch|rows|tensors FILE N | hot FILE N [TENSOR [bf16]] | pages FILE [random] | pages-st FILE | kernel CODES [MB]";
    let (Some(mode), Some(file)) = (arg(0), arg(1)) else {
        return Err(usage.into());
    };
    let path = Path::new(file);
    let n: usize = arg(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    match mode {
        "open" => {
            let t = std::time::Instant::now();
            for _ in 0..n {
                black_box(HhtldFile::open(path)?);
            }
            println!("open: {:.2} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
        "cold-open" => {
            for _ in 0..n {
                evict(path)?;
                let t = std::time::Instant::now();
                let f = HhtldFile::open(path)?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                println!(
                    "cold open: {ms:.2} ms, {:?} (minor, major) faults so far",
                    faults()
                );
                drop(f);
            }
        }
        "prefetch" => {
            let f = HhtldFile::open(path)?;
            f.prefetch()?;
            // Let the first prefetch's reads finish, so the loop times the
            // walk over cached pages.
            std::thread::sleep(std::time::Duration::from_millis(500));
            let t = std::time::Instant::now();
            for _ in 0..n {
                f.prefetch()?;
            }
            let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            println!(
                "prefetch of a cached {} byte file: {us:.1} us",
                f.bytes().len()
            );
        }
        "rows" => {
            let f = HhtldFile::open(path)?;
            let h = f.view();
            let t = h.tensor_by_name(TOKEN_EMBEDDING)?;
            let mut rng = SplitMix(0x5EED);
            let mut row = vec![0f32; t.n_cols()];
            for _ in 0..n {
                let r = (rng.next() % t.n_rows() as u64) as usize;
                t.decode_row_into(r, &mut row)?;
                black_box(&row);
            }
        }
        "tensors" => {
            let f = HhtldFile::open(path)?;
            let h = f.view();
            let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
            let ts: Vec<_> = h
                .tensors()
                .filter(|t| t.encoding() == Encoding::Palette)
                .collect();
            let mut bufs: Vec<Vec<f32>> = ts.iter().map(|t| vec![0f32; t.numel()]).collect();
            pool.install(|| -> Result<(), Error> {
                for _ in 0..n {
                    for (t, b) in ts.iter().zip(bufs.iter_mut()) {
                        t.decode_into(b)?;
                    }
                }
                Ok(())
            })?;
            black_box(bufs);
        }
        "hot" => hot(
            path,
            n,
            arg(3).unwrap_or(TOKEN_EMBEDDING),
            arg(4) == Some("bf16"),
        )?,
        "pages" => pages(path, arg(2) == Some("random"))?,
        "pages-st" => pages_st(path)?,
        "kernel" => kernel(file, arg(2).and_then(|s| s.parse().ok()).unwrap_or(120.0))?,
        _ => return Err(usage.into()),
    }
    Ok(())
}

/// One tensor decoded `n` times into the same buffer on one thread: the
/// kernel's speed when the output stays in cache (small tensors) or not.
fn hot(path: &Path, n: usize, name: &str, bf16: bool) -> Result<(), Error> {
    let f = HhtldFile::open(path)?;
    let t = f.tensor_by_name(name)?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let s = std::time::Instant::now();
    if bf16 {
        let mut buf = vec![half::bf16::ZERO; t.numel()];
        pool.install(|| (0..n).try_for_each(|_| t.decode_into(&mut buf)))?;
        black_box(buf);
    } else {
        let mut buf = vec![0f32; t.numel()];
        pool.install(|| (0..n).try_for_each(|_| t.decode_into(&mut buf)))?;
        black_box(buf);
    }
    let ns = s.elapsed().as_secs_f64() * 1e9 / (n * t.numel()) as f64;
    println!(
        "{name} ({}): {ns:.3} ns/output",
        if bf16 { "bf16" } else { "f32" }
    );
    Ok(())
}

/// `bench_probe kernel`: see the crate docs.
fn kernel(codes_kind: &str, mb: f64) -> Result<(), Error> {
    use hhtld_format::decode::{ElemSlice, Prepared, StageSpec};
    const N: usize = 384;
    let p: Vec<f32> = (0..256 * 4).map(|i| (i as f32).sin()).collect();
    let q: Vec<f32> = (0..256 * 8).map(|i| (i as f32).cos()).collect();
    let (cb0, cb1) = (N / 4, N / 8);
    let stride = cb0 + cb1;
    let specs = [
        StageSpec {
            palette: ElemSlice::F32(&p),
            d: 4,
            bits: 8,
            code_offset: 0,
        },
        StageSpec {
            palette: ElemSlice::F32(&q),
            d: 8,
            bits: 8,
            code_offset: cb0,
        },
    ];
    let prepared = Prepared::new(&specs, N)?;
    let mut rng = SplitMix(0x5EED);
    let pick: fn(u8) -> u8 = match codes_kind {
        "zero" => |_| 0,
        "m16" => |c| c & 15,
        "m64" => |c| c & 63,
        "s16" => |c| (c & 15) << 4,
        "s64" => |c| (c & 63) << 2,
        "rand" => |c| c,
        other => return Err(format!("CODES {other}: zero|m16|m64|s16|s64|rand").into()),
    };
    let codes: Vec<u8> = (0..stride * N).map(|_| pick(rng.next() as u8)).collect();
    let per = N * N;
    let nbuf = ((mb * 1e6 / 4.0) as usize / per).max(1);
    let mut out = vec![0f32; nbuf * per];
    let src: Vec<u8> = (0..nbuf * per)
        .flat_map(|i| half::bf16::from_f32(i as f32).to_le_bytes())
        .collect();
    // About 50 M outputs per sample.
    let iters = (50_000_000 / per).max(nbuf);
    let mut ns = [vec![], vec![], vec![]];
    for _ in 0..9 {
        for (which, v) in ns.iter_mut().enumerate() {
            let t = std::time::Instant::now();
            for i in 0..iters {
                let k = i % nbuf;
                let o = &mut out[k * per..(k + 1) * per];
                match which {
                    0 => prepared
                        .decode_rows(&codes, stride, None, 0, o)
                        .map_err(|(r, e)| format!("row {r}: {e}"))?,
                    1 => o.fill(black_box(0.5)),
                    _ => bf16_to_f32(&src[k * per * 2..(k + 1) * per * 2], o),
                }
            }
            v.push(t.elapsed().as_secs_f64() * 1e9 / (iters * per) as f64);
        }
    }
    black_box(&out);
    let [d, f, b] = ns.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    });
    println!(
        "4+8 {codes_kind}, output {:.1} MB: decode {d:.3}, fill {f:.3}, BF16 widening {b:.3} ns/output; widening / decode {:.2}",
        (nbuf * per * 4) as f64 / 1e6,
        b / d
    );
    Ok(())
}
