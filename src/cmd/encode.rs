//! `hhtld encode`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use hhtld_format::Regime;
use hhtld_writer::import::{Classifier, SafetensorsModel};
use hhtld_writer::pipeline::{encode_model, EncodeOptions, EncodeSummary, Profile, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use crate::{Failure, Outcome};

/// Parsed `encode` arguments.
pub struct Args {
    pub input: PathBuf,
    pub output: PathBuf,
    pub profile: Profile,
    pub fisher_z: bool,
    pub roles: Vec<String>,
    pub require_gates: bool,
    /// `None`: the profile's default.
    pub fallback: Option<bool>,
    pub threads: Option<usize>,
    pub json: bool,
}

pub fn run(a: Args) -> Result<Outcome, Failure> {
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()?;
    }
    let start = Instant::now();
    let model = SafetensorsModel::open(&a.input)?;
    let mut opts = EncodeOptions::new(a.profile);
    opts.fisher_z |= a.fisher_z;
    if let Some(f) = a.fallback {
        opts.fallback = f;
    }
    opts.classifier = Classifier::from_args(&a.roles)?;

    // A bar only on a terminal: piped output stays clean.
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |p: Progress<'_>| match p {
        Progress::Start { params } => bar.set_length(params),
        Progress::Tensor { name, params } => {
            bar.set_message(name.to_string());
            bar.inc(params);
        }
    };
    let summary = encode_model(&model, &a.output, &opts, &progress)?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();

    if a.json {
        crate::outln!("{:#}", summary_json(&summary, secs));
    } else {
        print_summary(&summary, &a, secs);
    }
    if a.require_gates && summary.gate_failures().next().is_some() {
        return Ok(Outcome::GateMissed);
    }
    Ok(Outcome::Ok)
}

/// Per-regime aggregate of the tensors' quality.
struct RegimeLine {
    tensors: usize,
    numel: u64,
    bytes: u64,
    worst_median: f32,
    worst_p5: f32,
    worst_min: f32,
    passed: usize,
    gated: usize,
}

fn regime_lines(s: &EncodeSummary) -> Vec<(Regime, RegimeLine)> {
    Regime::ALL
        .iter()
        .filter_map(|&regime| {
            let sizes: Vec<_> = s
                .size
                .tensors
                .iter()
                .filter(|t| t.regime == regime)
                .collect();
            if sizes.is_empty() {
                return None;
            }
            let outs: Vec<_> = s.tensors.iter().filter(|t| t.regime == regime).collect();
            let q = outs.iter().filter_map(|t| t.quality);
            Some((
                regime,
                RegimeLine {
                    tensors: sizes.len(),
                    numel: sizes.iter().map(|t| t.numel).sum(),
                    bytes: sizes.iter().map(|t| t.bytes()).sum(),
                    worst_median: q
                        .clone()
                        .map(|q| q.rho_median)
                        .fold(f32::INFINITY, f32::min),
                    worst_p5: q.clone().map(|q| q.rho_p5).fold(f32::INFINITY, f32::min),
                    worst_min: q.map(|q| q.rho_min).fold(f32::INFINITY, f32::min),
                    passed: outs.iter().filter(|t| t.passed == Some(true)).count(),
                    gated: outs.iter().filter(|t| t.passed.is_some()).count(),
                },
            ))
        })
        .collect()
}

fn ratio(bf16: u64, bytes: u64) -> f64 {
    if bytes == 0 {
        0.0
    } else {
        bf16 as f64 / bytes as f64
    }
}

fn encoded_totals(s: &EncodeSummary) -> (u64, u64) {
    s.size
        .tensors
        .iter()
        .filter(|t| t.regime != Regime::Passthrough)
        .fold((0, 0), |(n, b), t| (n + 2 * t.numel, b + t.bytes()))
}

fn print_summary(s: &EncodeSummary, a: &Args, secs: f64) {
    crate::outln!(
        "encoded {} -> {} (profile {}) in {secs:.1} s",
        a.input.display(),
        a.output.display(),
        s.profile.name()
    );
    crate::outln!(
        "{:<12} {:>7} {:>11} {:>11} {:>8} {:>10} {:>10} {:>10} {:>7}",
        "regime",
        "tensors",
        "params",
        "bytes",
        "ratio",
        "worst med",
        "worst p5",
        "worst min",
        "gates"
    );
    for (regime, l) in regime_lines(s) {
        let q = |v: f32| {
            if v.is_finite() {
                format!("{v:.4}")
            } else {
                "-".into()
            }
        };
        let gates = if l.gated == 0 {
            "-".to_string()
        } else {
            format!("{}/{}", l.passed, l.gated)
        };
        crate::outln!(
            "{:<12} {:>7} {:>11} {:>11} {:>7.2}:1 {:>10} {:>10} {:>10} {:>7}",
            regime.name(),
            l.tensors,
            l.numel,
            l.bytes,
            ratio(2 * l.numel, l.bytes),
            q(l.worst_median),
            q(l.worst_p5),
            q(l.worst_min),
            gates
        );
    }
    let (enc_bf16, enc_bytes) = encoded_totals(s);
    crate::outln!(
        "encoded tensors: {enc_bytes} bytes, {:.2}:1 against BF16 (shared palettes, FisherZ, scales included)",
        ratio(enc_bf16, enc_bytes)
    );
    crate::outln!(
        "whole file: {} bytes, {:.2}:1 against a BF16 copy of every tensor ({} bytes)",
        s.size.file_len,
        ratio(s.size.bf16_bytes(), s.size.file_len),
        s.size.bf16_bytes()
    );
    for t in s.tensors.iter().filter(|t| !t.fallbacks.is_empty()) {
        let codec = t.codec.map(|c| c.describe()).unwrap_or_default();
        crate::outln!("fell back: {} -> {codec}", t.name);
        for f in &t.fallbacks {
            crate::outln!("    {f}");
        }
    }
    for t in s.gate_failures() {
        let q = t.quality.map_or(String::new(), |q| {
            format!("rho median {:.4}, p5 {:.4}", q.rho_median, q.rho_p5)
        });
        crate::outln!(
            "MISSED GATE: {} ({}, {}): {q}",
            t.name,
            t.regime.name(),
            t.codec.map(|c| c.describe()).unwrap_or_default()
        );
    }
}

fn summary_json(s: &EncodeSummary, secs: f64) -> Value {
    let (enc_bf16, enc_bytes) = encoded_totals(s);
    json!({
        "profile": s.profile.name(),
        "seconds": secs,
        "encoded_ratio": ratio(enc_bf16, enc_bytes),
        "file_ratio": ratio(s.size.bf16_bytes(), s.size.file_len),
        "gate_failures": s.gate_failures().map(|t| t.name.clone()).collect::<Vec<_>>(),
        "regimes": regime_lines(s).into_iter().map(|(r, l)| json!({
            "regime": r.name(),
            "tensors": l.tensors,
            "numel": l.numel,
            "bytes": l.bytes,
            "ratio": ratio(2 * l.numel, l.bytes),
            "worst_rho_median": l.worst_median.is_finite().then_some(l.worst_median),
            "worst_rho_p5": l.worst_p5.is_finite().then_some(l.worst_p5),
            "gates_passed": l.passed,
            "gated": l.gated,
        })).collect::<Vec<_>>(),
        "tensors": s.tensors.iter().map(|t| json!({
            "name": t.name,
            "role": t.role.name(),
            "regime": t.regime.name(),
            "codec": t.codec.map(|c| c.describe()),
            "rho_median": t.quality.map(|q| q.rho_median),
            "rho_p5": t.quality.map(|q| q.rho_p5),
            "rho_min": t.quality.map(|q| q.rho_min),
            "rel_fro": t.quality.map(|q| q.rel_fro),
            "passed": t.passed,
            "fallbacks": t.fallbacks,
        })).collect::<Vec<_>>(),
        "size": s.size.to_json(),
    })
}
