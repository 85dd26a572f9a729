//! Measures codec profiles on a real model: ratio vs BF16 (every stored byte
//! counted, shared palettes split over their group) and per-row rho decoded
//! through the format kernel.
//!
//! ```text
//! codec_probe MODEL.safetensors [--profiles P1,P2,..] [--only SUBSTR]
//!             [--per-tensor] [--per-group] [--tensors]
//! ```
//!
//! A profile is a preset name (see `PRESETS`) or a dotted spec such as
//! `d4.b8.k256.s2.rs` (`d` width, 0 = row; `b` bits; `k` entries; `s`
//! stages; `rs` row scales; `slot` SlotL; `it` Lloyd iterations; `rf`
//! full-data refinement passes; `jt` joint stage refinement rounds; `smp`
//! sample size; `f16`/`f32`/`bf16`
//! palette elements). After a `+`, `d`/`b`/`k` tokens give the shape of
//! stages 1.. (e.g. `d4.s2.rs+d16.b4.k16`).
//!
//! Groups are the tensors with the same role and shape across layers (the 6
//! query weights, ...); `--per-tensor` encodes each tensor with its own
//! palettes instead (`--per-group` is the default; give both to compare).

use std::collections::BTreeMap;
use std::time::Instant;

use hhtld_writer::codec::{
    encode_group, row_quality, CodecSpec, ElemType, Gate, Matrix, QualityStats,
};
use safetensors::{Dtype, SafeTensors};

const PRESETS: &[(&str, &str)] = &[
    ("vq-d4x2", "d4.s2"),
    ("vq-d4x2-rs", "d4.s2.rs"),
    ("spal4x1", "d1.b4.k16.s1"),
    ("spal4x2", "d1.b4.k16.s2"),
    ("vq-d4x1-rs", "d4.s1.rs"),
    ("vq-d8x2-rs", "d8.s2.rs"),
    ("compact", "d4.s2.rs.jt2+d48.b4.k16"),
    ("index-compact", "d4.s2.rs.jt2+d8.b8.k256"),
    ("hhtl", "d0.s1"),
    ("hhtl-slot", "d0.s1.slot"),
];

fn parse_profile(s: &str) -> Result<CodecSpec, String> {
    let body = PRESETS.iter().find(|(n, _)| *n == s).map_or(s, |(_, b)| *b);
    let (head, tail) = body
        .split_once('+')
        .map_or((body, None), |(h, t)| (h, Some(t)));
    let mut spec = CodecSpec::vq(4, 1);
    for tok in head.split('.') {
        let num = |p: &str| -> Result<usize, String> {
            tok[p.len()..].parse().map_err(|e| format!("{tok}: {e}"))
        };
        match tok {
            "rs" => spec.row_scale = true,
            "slot" => spec.slot_l = true,
            "f16" => spec.elem = ElemType::F16,
            "f32" => spec.elem = ElemType::F32,
            "bf16" => spec.elem = ElemType::Bf16,
            t if t.starts_with("smp") => spec.kmeans.sample = num("smp")?,
            t if t.starts_with("it") => spec.kmeans.iters = num("it")?,
            t if t.starts_with("rf") => spec.kmeans.refine = num("rf")?,
            t if t.starts_with("jt") => spec.kmeans.joint = num("jt")?,
            t if t.starts_with('d') => spec.d = num("d")?,
            t if t.starts_with('b') => spec.bits = num("b")? as u8,
            t if t.starts_with('k') => spec.k = num("k")?,
            t if t.starts_with('s') => spec.stages = num("s")?,
            _ => return Err(format!("unknown token {tok:?} in profile {s:?}")),
        }
    }
    if let Some(tail) = tail {
        let mut sh = spec.stage_shape(0);
        for tok in tail.split('.') {
            let num = |p: &str| -> Result<usize, String> {
                tok[p.len()..].parse().map_err(|e| format!("{tok}: {e}"))
            };
            match tok {
                t if t.starts_with('d') => sh.d = num("d")?,
                t if t.starts_with('b') => sh.bits = num("b")? as u8,
                t if t.starts_with('k') => sh.k = num("k")?,
                _ => return Err(format!("unknown later-stage token {tok:?} in {s:?}")),
            }
        }
        spec.later = Some(sh);
    }
    Ok(spec)
}

/// Group key: the tensor name with its layer number removed, plus shape.
fn group_key(name: &str, shape: &[usize]) -> String {
    let mut parts: Vec<&str> = name.split('.').collect();
    if let Some(i) = parts.iter().position(|p| *p == "layer") {
        if i + 1 < parts.len() {
            parts[i + 1] = "*";
        }
    }
    format!("{} {:?}", parts.join("."), shape)
}

fn gate_for(name: &str) -> Gate {
    if name.contains("embeddings") {
        Gate::INDEX
    } else {
        Gate::ARGMAX
    }
}

struct Tensor {
    name: String,
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: codec_probe MODEL.safetensors [options]")?;
    let mut profiles: Vec<String> = PRESETS.iter().map(|(n, _)| n.to_string()).collect();
    let mut only: Vec<String> = Vec::new();
    let (mut per_tensor, mut per_group, mut show_tensors) = (false, false, false);
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--profiles" => {
                profiles = it
                    .next()
                    .ok_or("--profiles needs a list")?
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            "--only" => only.push(it.next().ok_or("--only needs a substring")?.clone()),
            "--per-tensor" => per_tensor = true,
            "--per-group" => per_group = true,
            "--tensors" => show_tensors = true,
            _ => return Err(format!("unknown option {a}").into()),
        }
    }
    if !per_tensor {
        per_group = true;
    }

    // The presets named after library profiles must be those profiles.
    for (name, spec) in [
        ("compact", CodecSpec::compact()),
        ("index-compact", CodecSpec::index_compact()),
        ("vq-d4x2-rs", CodecSpec::fidelity()),
    ] {
        if parse_profile(name)? != spec {
            return Err(format!("preset {name} differs from the library profile").into());
        }
    }

    let bytes = std::fs::read(path)?;
    let st = SafeTensors::deserialize(&bytes)?;
    let mut groups: BTreeMap<String, Vec<Tensor>> = BTreeMap::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        if view.dtype() != Dtype::F32 || shape.len() != 2 {
            continue;
        }
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        groups
            .entry(group_key(&name, &shape))
            .or_default()
            .push(Tensor {
                name,
                rows: shape[0],
                cols: shape[1],
                data,
            });
    }
    for g in groups.values_mut() {
        g.sort_by(|a, b| a.name.cmp(&b.name));
    }

    println!(
        "| profile | group | palettes | n | ratio | rho med (min over tensors) | rho p5 (min) | rho min | rel_fro (max) | pass | encode s |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for prof in &profiles {
        let spec = parse_profile(prof)?;
        for (key, tensors) in &groups {
            let mut modes = Vec::new();
            if per_group {
                modes.push(("group", vec![(0..tensors.len()).collect::<Vec<_>>()]));
            }
            if per_tensor {
                modes.push(("tensor", (0..tensors.len()).map(|i| vec![i]).collect()));
            }
            for (mode, parts) in modes {
                let mut stats: Vec<(usize, QualityStats, f64, f64)> = Vec::new();
                let mut enc_secs = 0.0;
                for part in parts {
                    let mats: Vec<Matrix<'_>> = part
                        .iter()
                        .map(|&i| Matrix::new(&tensors[i].data, tensors[i].rows, tensors[i].cols))
                        .collect::<Result<_, _>>()?;
                    let te = Instant::now();
                    let enc = encode_group(&mats, &spec)?;
                    enc_secs += te.elapsed().as_secs_f64();
                    let dec = enc.decoder();
                    for (j, &i) in part.iter().enumerate() {
                        let x = dec.decode_matrix(j)?;
                        let q = row_quality(&mats[j], &x)?;
                        let size = enc.stored_size(j)?;
                        stats.push((i, q, size.bf16 as f64, size.total()));
                    }
                }
                let bf16: f64 = stats.iter().map(|s| s.2).sum();
                let stored: f64 = stats.iter().map(|s| s.3).sum();
                let gate = gate_for(key);
                let pass = stats.iter().filter(|s| gate.passes(&s.1)).count();
                let fmin = |f: &dyn Fn(&QualityStats) -> f32| {
                    stats.iter().map(|s| f(&s.1)).fold(f32::INFINITY, f32::min)
                };
                let fro = stats.iter().map(|s| s.1.rel_fro).fold(0f32, f32::max);
                println!(
                    "| {prof} | {key} | {mode} | {} | {:.2} | {:.4} | {:.4} | {:.4} | {:.4} | {pass}/{} | {:.2} |",
                    stats.len(),
                    bf16 / stored,
                    fmin(&|q| q.rho_median),
                    fmin(&|q| q.rho_p5),
                    fmin(&|q| q.rho_min),
                    fro,
                    stats.len(),
                    enc_secs
                );
                if show_tensors {
                    for (i, q, b, s) in &stats {
                        println!(
                            "|  | {} | {mode} | 1 | {:.2} | {:.4} | {:.4} | {:.4} | {:.4} | {} | |",
                            tensors[*i].name,
                            b / s,
                            q.rho_median,
                            q.rho_p5,
                            q.rho_min,
                            q.rel_fro,
                            gate.passes(q) as u8
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
