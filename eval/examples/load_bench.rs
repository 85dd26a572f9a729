//! Time to a loaded candle `BertModel`: from an `.hhtld` file (decoded on
//! load) against a BF16 safetensors copy through candle's own mmaped loader,
//! warm (files in the page cache) and cold (both files evicted with
//! `posix_fadvise(DONTNEED)` before every repetition). Run by
//! `scripts/bench.sh`:
//!
//! ```text
//! cargo run --release -p hhtld-eval --example load_bench -- ORIGINAL.safetensors X.hhtld [REPS]
//! ```
//! Writes the BF16 copy beside X.hhtld (`X.bf16.safetensors`), from the
//! original through candle's `to_dtype` and `safetensors::save`.

use std::collections::HashMap;
use std::error::Error;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use candle_transformers::models::bert::{BertModel, Config};
use hhtld_eval::{ModelFiles, Sources, Weights};
use hhtld_reader::candle::HhtldBackend;
use hhtld_reader::HhtldFile;

/// Drops `path`'s pages from the page cache.
fn evict(path: &Path) -> Result<(), Box<dyn Error>> {
    let f = File::open(path)?;
    // SAFETY: a plain syscall on a file descriptor we own for the call.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(format!("posix_fadvise({}): error {rc}", path.display()).into());
    }
    Ok(())
}

/// The hhtld backend asked for F32 and converted by candle: what a BF16
/// load would cost without decoding straight into BF16.
struct ViaF32(HhtldBackend);

impl SimpleBackend for ViaF32 {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0.get(s, name, h, DType::F32, dev)?.to_dtype(dtype)
    }
    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.get_unchecked(name, DType::F32, dev)?.to_dtype(dtype)
    }
    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

#[derive(Clone, Copy)]
enum Source {
    /// The hhtld file, decoded straight into the dtype.
    Hhtld(DType),
    /// The hhtld file decoded to F32, then `to_dtype(BF16)`.
    HhtldViaF32,
    /// The BF16 safetensors copy, candle's mmaped loader.
    Bf16Safetensors,
}

fn load(
    src: Source,
    hhtld: &Path,
    bf16: &Path,
    config: &Config,
) -> Result<Duration, Box<dyn Error>> {
    let dev = Device::Cpu;
    let t = Instant::now();
    let vb = match src {
        Source::Hhtld(dt) => HhtldBackend::open(hhtld)?.into_var_builder(dt, &dev),
        Source::HhtldViaF32 => VarBuilder::from_backend(
            Box::new(ViaF32(HhtldBackend::open(hhtld)?)),
            DType::BF16,
            dev.clone(),
        ),
        // SAFETY: files nobody modifies while mapped.
        Source::Bf16Safetensors => unsafe {
            VarBuilder::from_mmaped_safetensors(&[bf16], DType::BF16, &dev)?
        },
    };
    let model = BertModel::load(vb, config)?;
    let took = t.elapsed();
    drop(model);
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [orig, hhtld, rest @ ..] = &args[..] else {
        return Err("usage: load_bench ORIGINAL.safetensors X.hhtld [REPS]".into());
    };
    let reps: usize = rest.first().map(|r| r.parse()).transpose()?.unwrap_or(7);
    let (orig, hhtld) = (PathBuf::from(orig), PathBuf::from(hhtld));
    let file = HhtldFile::open(&hhtld)?;
    let files = ModelFiles::find(&Sources {
        hhtld: Some(&file),
        dir: orig.parent(),
        ..Sources::default()
    })?;
    drop(file);
    // The BF16 safetensors copy, made with candle itself.
    let bf16 = hhtld.with_extension("bf16.safetensors");
    let Weights::Safetensors(shards) = Weights::original(&orig)? else {
        unreachable!("original() gives safetensors")
    };
    let mut all = HashMap::new();
    for shard in &shards {
        for (name, t) in candle_core::safetensors::load(shard, &Device::Cpu)? {
            let t = if t.dtype() == DType::F32 {
                t.to_dtype(DType::BF16)?
            } else {
                t
            };
            all.insert(name, t);
        }
    }
    candle_core::safetensors::save(&all, &bf16)?;
    drop(all);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() as f64 / 1e6);
    println!(
        "files: {} {:.1} MB, {} {:.1} MB; {reps} repetitions each, median",
        hhtld.display(),
        size(&hhtld)?,
        bf16.display(),
        size(&bf16)?
    );
    println!();
    let cases = [
        ("hhtld -> BF16", Source::Hhtld(DType::BF16)),
        ("hhtld -> F32", Source::Hhtld(DType::F32)),
        ("hhtld -> F32 -> to_dtype BF16", Source::HhtldViaF32),
        (
            "BF16 safetensors (candle mmap) -> BF16",
            Source::Bf16Safetensors,
        ),
    ];
    let mut warm = Vec::new();
    let mut cold = Vec::new();
    for (_, src) in cases {
        load(src, &hhtld, &bf16, &files.config)?; // page cache warm-up
        warm.push(median(
            (0..reps)
                .map(|_| load(src, &hhtld, &bf16, &files.config))
                .collect::<Result<_, _>>()?,
        ));
        let mut c = Vec::new();
        for _ in 0..reps {
            evict(&hhtld)?;
            evict(&bf16)?;
            c.push(load(src, &hhtld, &bf16, &files.config)?);
        }
        cold.push(median(c));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{:<40} {:>10} {:>10}",
        "time to a loaded BertModel", "warm ms", "cold ms"
    );
    for ((name, _), (w, c)) in cases.iter().zip(warm.iter().zip(&cold)) {
        println!("{name:<40} {:>10.1} {:>10.1}", ms(*w), ms(*c));
    }
    let st = cases.len() - 1;
    println!(
        "ratio hhtld->BF16 / BF16 safetensors: warm {:.2}x, cold {:.2}x",
        ms(warm[0]) / ms(warm[st]),
        ms(cold[0]) / ms(cold[st])
    );
    println!(
        "ratio BF16 straight / via F32: warm {:.2}x, cold {:.2}x",
        ms(warm[0]) / ms(warm[2]),
        ms(cold[0]) / ms(cold[2])
    );
    std::fs::remove_file(&bf16)?;
    Ok(())
}
