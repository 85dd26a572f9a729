//! `cargo bench`: hhtld next to safetensors (BF16) on all-MiniLM-L6-v2, one
//! criterion group per case with both sides in it, plus decode-kernel
//! micro-benchmarks that need no model.
//!
//! The model cases run when the model is in the cache
//! (`$HHTLD_MODEL`, else `$HHTLD_CACHE` or `~/.cache/hhtld`, as
//! `scripts/fetch_model.sh` leaves it); otherwise they are skipped with a
//! note. Their inputs (`fidelity.hhtld` and a BF16 copy of the model) are
//! taken from `$HHTLD_BENCH_DIR` (default `target/bench-data`, what
//! `scripts/bench.sh` prepares) and made there when missing. `cargo bench`
//! is not part of CI; `scripts/bench.sh` gives the interleaved ratio table.

#[path = "../examples/bench_support/mod.rs"]
mod bench_support;
use bench_support::{bf16_to_f32, map, word_sum, SplitMix};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput};
use half::bf16;
use hhtld_format::decode::{decode_row, ElemSlice, StageRow};
use hhtld_format::Encoding;
use hhtld_reader::{Hhtld, HhtldFile, TensorView};
use hhtld_writer::import::SafetensorsModel;
use hhtld_writer::pipeline::{encode_model, EncodeOptions, Profile};
use rayon::prelude::*;
use safetensors::SafeTensors;

#[path = "../examples/bench_prepare.rs"]
#[allow(dead_code)]
mod bench_prepare;

type Error = Box<dyn std::error::Error + Send + Sync>;

const TOKEN_EMBEDDING: &str = "embeddings.word_embeddings.weight";
const PAR_MIN_ELEMS: usize = 1 << 16;
const PAR_TASK_ELEMS: usize = 1 << 14;
/// Random rows per iteration of case 3.
const ROWS_PER_ITER: usize = 10_000;

fn model_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HHTLD_MODEL") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let cache = std::env::var_os("HHTLD_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/hhtld")))?;
    Some(cache.join("all-MiniLM-L6-v2/model.safetensors")).filter(|p| p.is_file())
}

/// `fidelity.hhtld` and the BF16 copy, made when missing.
fn bench_files(model: &Path) -> Result<(PathBuf, PathBuf), Error> {
    let dir = std::env::var_os("HHTLD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"));
    std::fs::create_dir_all(&dir)?;
    let (h, b) = (
        dir.join("fidelity.hhtld"),
        dir.join("model-bf16.safetensors"),
    );
    if !h.is_file() {
        eprintln!("encoding {} -> {} (fidelity)", model.display(), h.display());
        let m = SafetensorsModel::open(model)?;
        encode_model(&m, &h, &EncodeOptions::new(Profile::Fidelity), &|_| {})?;
    }
    if !b.is_file() {
        eprintln!("writing the BF16 copy {}", b.display());
        bench_prepare::write_bf16_copy(model, &b)?;
    }
    Ok((h, b))
}

fn model_cases(c: &mut Criterion, hpath: &Path, bpath: &Path) -> Result<(), Error> {
    let hfile = HhtldFile::open(hpath)?;
    let h = hfile.view();
    let bmap = map(bpath)?;
    let st = SafeTensors::deserialize(&bmap)?;
    let hmap = map(hpath)?;
    let pool1 = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;

    let mut g = c.benchmark_group("case1_open_validate");
    g.bench_function("hhtld_open", |b| b.iter(|| HhtldFile::open(hpath).unwrap()));
    g.bench_function("safetensors_mmap_deserialize", |b| {
        b.iter(|| {
            let m = map(bpath).unwrap();
            black_box(SafeTensors::deserialize(&m).unwrap());
        })
    });
    g.bench_function("hhtld_validate_no_mmap", |b| {
        b.iter(|| Hhtld::from_bytes(&hmap).unwrap())
    });
    g.bench_function("safetensors_deserialize_no_mmap", |b| {
        b.iter(|| black_box(SafeTensors::deserialize(&bmap).unwrap()).len())
    });
    g.finish();

    let pairs: Vec<(TensorView<'_>, &[u8])> = h
        .tensors()
        .filter(|t| t.encoding() == Encoding::Palette)
        .map(|t| Ok((st.tensor(t.name())?.data(), t)))
        .collect::<Result<Vec<_>, Error>>()?
        .into_iter()
        .map(|(d, t)| (t, d))
        .collect();
    let mut bufs: Vec<Vec<f32>> = pairs.iter().map(|(t, _)| vec![0f32; t.numel()]).collect();
    let out_bytes = bufs.iter().map(|b| b.len() as u64 * 4).sum();
    for (name, pool) in [("1thread", Some(&pool1)), ("all_cores", None)] {
        let mut g = c.benchmark_group(format!("case2_decode_all_encoded_{name}"));
        g.throughput(Throughput::Bytes(out_bytes));
        g.sample_size(20);
        let run =
            |g: &mut criterion::BenchmarkGroup<'_, _>, id: &str, f: &mut (dyn FnMut() + Send)| {
                g.bench_function(id, |b| match pool {
                    Some(p) => p.install(|| b.iter(&mut *f)),
                    None => b.iter(&mut *f),
                });
            };
        run(&mut g, "hhtld_decode_into", &mut || {
            for ((t, _), buf) in pairs.iter().zip(bufs.iter_mut()) {
                t.decode_into(buf).unwrap();
            }
        });
        let par = pool.is_none();
        run(&mut g, "safetensors_bf16_to_f32", &mut || {
            for ((_, src), buf) in pairs.iter().zip(bufs.iter_mut()) {
                if par && buf.len() >= PAR_MIN_ELEMS {
                    buf.par_chunks_mut(PAR_TASK_ELEMS)
                        .zip(src.par_chunks(PAR_TASK_ELEMS * 2))
                        .for_each(|(o, s)| bf16_to_f32(s, o));
                } else {
                    bf16_to_f32(src, buf);
                }
            }
        });
        g.finish();
    }

    let t = h.tensor_by_name(TOKEN_EMBEDDING)?;
    let bt = st.tensor(TOKEN_EMBEDDING)?;
    let bdata = bt.data();
    let n_cols = t.n_cols();
    let mut rng = SplitMix(0x5EED);
    let picks: Vec<usize> = (0..ROWS_PER_ITER)
        .map(|_| (rng.next() % t.n_rows() as u64) as usize)
        .collect();
    let mut row = vec![0f32; n_cols];
    let mut g = c.benchmark_group("case3_random_token_rows");
    g.throughput(Throughput::Elements(ROWS_PER_ITER as u64));
    g.bench_function("hhtld_decode_row_into", |b| {
        b.iter(|| {
            for &r in &picks {
                t.decode_row_into(r, &mut row).unwrap();
                black_box(&row);
            }
        })
    });
    g.bench_function("safetensors_bf16_row_to_f32", |b| {
        b.iter(|| {
            for &r in &picks {
                bf16_to_f32(&bdata[r * n_cols * 2..(r + 1) * n_cols * 2], &mut row);
                black_box(&row);
            }
        })
    });
    g.finish();

    let bytes = hfile.bytes();
    let mut g = c.benchmark_group("case4_verify_vs_plain_read");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("hhtld_verify_1thread", |b| {
        pool1.install(|| b.iter(|| h.verify().unwrap()))
    });
    g.bench_function("u64_sum_1thread", |b| b.iter(|| word_sum(black_box(bytes))));
    g.bench_function("hhtld_verify_all_cores", |b| b.iter(|| h.verify().unwrap()));
    g.bench_function("u64_sum_all_cores", |b| {
        b.iter(|| {
            black_box(bytes)
                .par_chunks(1 << 20)
                .map(word_sum)
                .reduce(|| 0, u64::wrapping_add)
        })
    });
    g.finish();
    Ok(())
}

/// Synthetic rows for the kernel: values in [-0.5, 0.5) from a fixed seed.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix(seed);
    (0..n)
        .map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
        .collect()
}

fn kernel_cases(c: &mut Criterion) {
    const N: usize = 4096;
    let p0: Vec<bf16> = values(256 * 4, 1).into_iter().map(bf16::from_f32).collect();
    let p1: Vec<bf16> = values(256 * 4, 2).into_iter().map(bf16::from_f32).collect();
    let p4: Vec<bf16> = values(16, 3).into_iter().map(bf16::from_f32).collect();
    let c0: Vec<u8> = (0..N / 4).map(|i| (i * 37 + 11) as u8).collect();
    let c1: Vec<u8> = (0..N / 4).map(|i| (i * 91 + 5) as u8).collect();
    let c4: Vec<u8> = (0..N / 2).map(|i| (i * 53 + 7) as u8).collect();
    let mut out = vec![0f32; N];
    let mut g = c.benchmark_group("kernel_decode_row_4096_cols");
    g.throughput(Throughput::Elements(N as u64));
    let two = [
        StageRow {
            palette: ElemSlice::Bf16(&p0),
            d: 4,
            bits: 8,
            codes: &c0,
        },
        StageRow {
            palette: ElemSlice::Bf16(&p1),
            d: 4,
            bits: 8,
            codes: &c1,
        },
    ];
    g.bench_function("d4_8bit_2stages_scale_bf16", |b| {
        b.iter(|| decode_row(black_box(&two), Some(0.03), None, &mut out).unwrap())
    });
    let (f0, f1): (Vec<f32>, Vec<f32>) = (
        p0.iter().map(|v| v.to_f32()).collect(),
        p1.iter().map(|v| v.to_f32()).collect(),
    );
    let two_f32 = [
        StageRow {
            palette: ElemSlice::F32(&f0),
            ..two[0]
        },
        StageRow {
            palette: ElemSlice::F32(&f1),
            ..two[1]
        },
    ];
    g.bench_function("d4_8bit_2stages_scale_f32", |b| {
        b.iter(|| decode_row(black_box(&two_f32), Some(0.03), None, &mut out).unwrap())
    });
    let one4 = [StageRow {
        palette: ElemSlice::Bf16(&p4),
        d: 1,
        bits: 4,
        codes: &c4,
    }];
    g.bench_function("d1_4bit_1stage_bf16", |b| {
        b.iter(|| decode_row(black_box(&one4), None, None, &mut out).unwrap())
    });
    let src: Vec<u8> = values(N, 4)
        .into_iter()
        .flat_map(|v| bf16::from_f32(v).to_le_bytes())
        .collect();
    g.bench_function("baseline_bf16_to_f32", |b| {
        b.iter(|| bf16_to_f32(black_box(&src), &mut out))
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    kernel_cases(&mut c);
    match model_path() {
        None => eprintln!(
            "note: all-MiniLM-L6-v2 is not in the cache; skipping the model cases \
             (scripts/fetch_model.sh fetches it)"
        ),
        Some(model) => match bench_files(&model).and_then(|(h, b)| model_cases(&mut c, &h, &b)) {
            Ok(()) => {}
            Err(e) => eprintln!("note: model cases skipped: {e}"),
        },
    }
    c.final_summary();
}
