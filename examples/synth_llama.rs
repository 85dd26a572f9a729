//! Writes a Llama-shaped synthetic model as one BF16 `.safetensors` file, for
//! scale tests of `hhtld encode` (memory and time against layer count).
//!
//! ```text
//! synth_llama -o OUT.safetensors [--shape 1.1b|7b] [--layers N] [--hidden H]
//!             [--intermediate I] [--vocab V] [--kv-dim K] [--seed S]
//! ```
//!
//! `--shape 7b`: hidden 4096, intermediate 11008, 32 layers, vocab 32000,
//! kv-dim 4096 (6.74 B parameters, 13.5 GB). `--shape 1.1b`: hidden 2048,
//! intermediate 5632, 22 layers, vocab 32000, kv-dim 256 (grouped-query
//! attention, 1.10 B parameters, 2.2 GB). Other flags override the shape.
//!
//! Tensors, Llama/Hugging Face names: `model.embed_tokens.weight`
//! `[vocab, hidden]`; per layer `self_attn.{q,o}_proj` `[hidden, hidden]`,
//! `self_attn.{k,v}_proj` `[kv, hidden]`, `mlp.{gate,up}_proj`
//! `[intermediate, hidden]`, `mlp.down_proj` `[hidden, intermediate]`,
//! `input_layernorm` and `post_attention_layernorm` `[hidden]`; then
//! `model.norm.weight` and `lm_head.weight` `[vocab, hidden]`.
//!
//! Values (deterministic for a seed): matrix element `(r, c)` is
//! `0.02 * a_r * b_c * z` with `z` standard normal (Box-Muller), a per-row
//! scale `a_r = exp(0.3 g)` and a per-column scale `b_c = exp(0.2 g)`
//! (`g` standard normal; real weights have both), and one element in 10^4
//! an outlier multiplied by 8. Norm weights are `1 + 0.05 z`. The file is
//! written tensor by tensor (a few MB in memory), to a temporary name and
//! renamed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

/// A Llama-like shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Decoder layers.
    pub layers: usize,
    /// Model width.
    pub hidden: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// Rows of `k_proj`/`v_proj` (heads x head dim of the KV heads).
    pub kv_dim: usize,
}

impl Shape {
    /// Llama-2 7B.
    pub const LLAMA_7B: Shape = Shape {
        layers: 32,
        hidden: 4096,
        intermediate: 11008,
        vocab: 32000,
        kv_dim: 4096,
    };
    /// TinyLlama 1.1B.
    pub const TINYLLAMA_1_1B: Shape = Shape {
        layers: 22,
        hidden: 2048,
        intermediate: 5632,
        vocab: 32000,
        kv_dim: 256,
    };

    /// Every tensor: name and shape, in file order.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (h, i, v, kv) = (self.hidden, self.intermediate, self.vocab, self.kv_dim);
        let mut out = vec![("model.embed_tokens.weight".to_string(), vec![v, h])];
        for l in 0..self.layers {
            let p = format!("model.layers.{l}");
            out.push((format!("{p}.input_layernorm.weight"), vec![h]));
            out.push((format!("{p}.self_attn.q_proj.weight"), vec![h, h]));
            out.push((format!("{p}.self_attn.k_proj.weight"), vec![kv, h]));
            out.push((format!("{p}.self_attn.v_proj.weight"), vec![kv, h]));
            out.push((format!("{p}.self_attn.o_proj.weight"), vec![h, h]));
            out.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
            out.push((format!("{p}.mlp.gate_proj.weight"), vec![i, h]));
            out.push((format!("{p}.mlp.up_proj.weight"), vec![i, h]));
            out.push((format!("{p}.mlp.down_proj.weight"), vec![h, i]));
        }
        out.push(("model.norm.weight".to_string(), vec![h]));
        out.push(("lm_head.weight".to_string(), vec![v, h]));
        out
    }

    /// Total parameters.
    pub fn params(&self) -> u64 {
        self.tensors()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum()
    }
}

#[path = "support/mod.rs"]
mod support;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        support::splitmix64(&mut self.0)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Two standard normals (Box-Muller).
    fn normals(&mut self) -> (f64, f64) {
        let (u, v) = (self.unit(), self.unit());
        let r = (-2.0 * u.ln()).sqrt();
        let t = std::f64::consts::TAU * v;
        (r * t.cos(), r * t.sin())
    }
}

/// A seed for stream `a`, `b` of `seed`.
fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut r =
        Rng(seed ^ a.wrapping_mul(0xA24B_AED4_963E_E407) ^ b.wrapping_mul(0x9FB2_1C65_1E98_DF25));
    r.next()
}

/// Rows `r0..r0 + n` of tensor `index` (shape `shape`) as BF16 bytes.
fn fill_rows(seed: u64, index: usize, shape: &[usize], r0: usize, out: &mut [u8]) {
    let cols = *shape.last().unwrap_or(&1);
    if shape.len() == 1 {
        let mut rng = Rng(mix(seed, index as u64, u64::MAX));
        for b in out.chunks_exact_mut(2) {
            let v = 1.0 + 0.05 * rng.normals().0;
            b.copy_from_slice(&half::bf16::from_f64(v).to_le_bytes());
        }
        return;
    }
    let mut crng = Rng(mix(seed, index as u64, u64::MAX - 1));
    let col_scale: Vec<f64> = (0..cols).map(|_| (0.2 * crng.normals().0).exp()).collect();
    out.par_chunks_mut(2 * cols)
        .enumerate()
        .for_each(|(i, row)| {
            let mut rng = Rng(mix(seed, index as u64, (r0 + i) as u64));
            let a = 0.02 * (0.3 * rng.normals().0).exp();
            for (pair, cs) in row.chunks_mut(4).zip(col_scale.chunks(2)) {
                let (z0, z1) = rng.normals();
                for ((b, z), &c) in pair.chunks_exact_mut(2).zip([z0, z1]).zip(cs) {
                    let outlier = if rng.next().is_multiple_of(10_000) {
                        8.0
                    } else {
                        1.0
                    };
                    let v = a * c * z * outlier;
                    b.copy_from_slice(&half::bf16::from_f64(v).to_le_bytes());
                }
            }
        });
}

/// Writes the model of `shape` to `path` (temporary file, then rename).
pub fn write_model(path: &Path, shape: &Shape, seed: u64) -> std::io::Result<()> {
    let tensors = shape.tensors();
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    for (name, dims) in &tensors {
        let len = 2 * dims.iter().product::<usize>();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "BF16", "shape": dims, "data_offsets": [off, off + len]}),
        );
        off += len;
    }
    header.insert(
        "__metadata__".to_string(),
        serde_json::json!({
            "format": "pt",
            "synthetic": format!(
                "synth_llama seed {seed}: layers {} hidden {} intermediate {} vocab {} kv {}",
                shape.layers, shape.hidden, shape.intermediate, shape.vocab, shape.kv_dim
            ),
        }),
    );
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut f = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
    f.write_all(&(json.len() as u64).to_le_bytes())?;
    f.write_all(&json)?;
    let mut buf = Vec::new();
    for (index, (_, dims)) in tensors.iter().enumerate() {
        let cols = *dims.last().unwrap_or(&1);
        let rows = if dims.len() == 1 { 1 } else { dims[0] };
        // About 8 MB of rows at a time.
        let step = ((4 << 20) / cols).max(1);
        for r0 in (0..rows).step_by(step) {
            let n = step.min(rows - r0);
            buf.resize(2 * n * cols, 0);
            fill_rows(seed, index, dims, r0, &mut buf);
            f.write_all(&buf)?;
        }
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut shape = Shape::TINYLLAMA_1_1B;
    let mut out = None;
    let mut seed = 1u64;
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "-o" | "--output" => out = Some(PathBuf::from(val()?)),
            "--shape" => {
                shape = match val()?.as_str() {
                    "7b" => Shape::LLAMA_7B,
                    "1.1b" => Shape::TINYLLAMA_1_1B,
                    s => return Err(format!("unknown shape {s:?} (7b or 1.1b)").into()),
                }
            }
            "--layers" => shape.layers = val()?.parse()?,
            "--hidden" => shape.hidden = val()?.parse()?,
            "--intermediate" => shape.intermediate = val()?.parse()?,
            "--vocab" => shape.vocab = val()?.parse()?,
            "--kv-dim" => shape.kv_dim = val()?.parse()?,
            "--seed" => seed = val()?.parse()?,
            _ => return Err(format!("unknown argument {a:?}; see the file's doc comment").into()),
        }
    }
    let out = out.ok_or("-o OUT.safetensors is required")?;
    let t = std::time::Instant::now();
    write_model(&out, &shape, seed)?;
    eprintln!(
        "{}: {:?}, {} parameters, {:.1} s",
        out.display(),
        shape,
        shape.params(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
