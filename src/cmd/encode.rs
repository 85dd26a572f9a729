//! `hhtld encode`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use hhtld_eval::record::EvalRecord;
use hhtld_eval::{
    evaluate, sentences, text_sha256, Metrics, ModelFiles, Sources, Weights, DEFAULT_TEXT,
};
use hhtld_format::validate::Quality;
use hhtld_format::Regime;
use hhtld_reader::HhtldFile;
use hhtld_writer::amend::amend_metadata;
use hhtld_writer::import::{Classifier, SafetensorsModel};
use hhtld_writer::pipeline::{encode_model, EncodeOptions, EncodeSummary, Profile, Progress};
use hhtld_writer::report::SizeReport;
use hhtld_writer::side_files;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use super::calibration;
use crate::{Failure, Outcome};

/// Sentences per evaluation forward pass (as `hhtld eval`).
const EVAL_BATCH: usize = 32;

/// `encode` arguments (the subcommand's clap definition).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input .safetensors or .index.json.
    pub input: PathBuf,
    /// Output .hhtld file (written atomically).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Codec profile.
    #[arg(long, value_enum, default_value_t = Profile::Fidelity)]
    pub profile: Profile,
    /// Add a FisherZ table for every palette (always on for `hhtl`).
    #[arg(long)]
    pub fisher_z: bool,
    /// Override a tensor's role: NAME=ROLE (repeatable). Roles:
    /// token_embedding, position_embedding, lm_head, attn_q, attn_k,
    /// attn_v, attn_qkv, attn_o, mlp_gate, mlp_up, mlp_down, norm, bias,
    /// other.
    #[arg(long = "role", value_name = "NAME=ROLE")]
    pub roles: Vec<String>,
    /// Exit with status 1 if any tensor misses its quality gate, or (with
    /// `--eval`) the model's cosine to the original is below the profile's
    /// target.
    #[arg(long)]
    pub require_gates: bool,
    /// Never fall back to a finer codec on a gate miss (default for
    /// `hhtl`).
    #[arg(long, conflicts_with = "fallback")]
    pub no_fallback: bool,
    /// Fall back to finer codecs on a gate miss (default for `fidelity`
    /// and `compact`).
    #[arg(long)]
    pub fallback: bool,
    /// Input statistics (a safetensors file written by `--save-calibration`
    /// or any tool using the same layout) that the codecs weight their
    /// error by, instead of calibrating.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["calibrate", "no_calibrate"])]
    pub calibration_stats: Option<PathBuf>,
    /// Calibrate on this text (one sentence per line) instead of the
    /// built-in data/text/calib.txt. By default encode calibrates whenever
    /// the model is one `hhtld eval` runs (BERT) and its config.json and
    /// tokenizer.json are beside the input; it must share no sentence with
    /// the evaluation text.
    #[arg(long, value_name = "TEXT", conflicts_with = "no_calibrate")]
    pub calibrate: Option<PathBuf>,
    /// Encode from the weights alone, without calibration.
    #[arg(long)]
    pub no_calibrate: bool,
    /// Also write the calibration statistics to this file (safetensors),
    /// for `--calibration-stats`.
    #[arg(long, value_name = "FILE")]
    pub save_calibration: Option<PathBuf>,
    /// After writing, run `hhtld eval` (original against the new file) on
    /// the built-in evaluation text, or on TEXT with `--eval=TEXT`, and
    /// store its figures in the file's metadata (`eval.*`). With
    /// `--require-gates`, a cosine below the profile's target exits 1.
    #[arg(long, value_name = "TEXT", num_args = 0..=1, require_equals = true)]
    pub eval: Option<Option<PathBuf>>,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// `--fallback` / `--no-fallback`; `None`: the profile's default.
    fn fallback(&self) -> Option<bool> {
        if self.no_fallback {
            Some(false)
        } else if self.fallback {
            Some(true)
        } else {
            None
        }
    }
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
    if let Some(f) = a.fallback() {
        opts.fallback = f;
    }
    opts.classifier = Classifier::from_args(&a.roles)?;
    // Config, tokenizer and pooling beside the input go into the metadata.
    let (side, skipped) = side_files::find(&a.input);
    for s in &skipped {
        eprintln!(
            "hhtld: warning: not storing {}: {}",
            s.path.display(),
            s.reason
        );
    }
    opts.metadata.extend(
        side.iter()
            .map(|f| (side_files::key(f.rel), f.text.clone())),
    );

    // Read first: the calibration text must not share sentences with it.
    let eval_text = match &a.eval {
        Some(Some(p)) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| Failure(format!("--eval {}: {e}", p.display())))?,
        ),
        Some(None) => Some(DEFAULT_TEXT.to_owned()),
        None => None,
    };
    if eval_text.is_some() {
        // Before the encode, not after it: a model eval cannot run (no
        // config or tokenizer beside it, another architecture) fails now.
        let dir = side_files::model_dir(&a.input);
        ModelFiles::find(&Sources {
            dir: Some(dir),
            ..Sources::default()
        })
        .map_err(|e| Failure(format!("--eval: {}", calibration::why_no_model(e, dir, ""))))?;
    }
    let cal = calibration::run(
        &calibration::Request {
            input: &a.input,
            stats: a.calibration_stats.as_deref(),
            text: a.calibrate.as_deref(),
            off: a.no_calibrate,
            eval_text: eval_text.as_deref(),
        },
        &model,
    )?;
    if let Some(path) = &a.save_calibration {
        calibration::save(cal.calibration.as_ref(), path, cal.skipped.as_deref())?;
    }
    if let Some(reason) = &cal.skipped {
        eprintln!("hhtld: not calibrating ({reason}); encoding from the weights alone");
    }
    if let Some(c) = &cal.calibration {
        opts.metadata.extend(c.metadata());
    }
    opts.calibration = cal.calibration.map(Arc::new);

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
    // With --eval the encoder writes a temporary file; the output appears
    // only once it carries the figures.
    let staged = match &eval_text {
        Some(_) => Some(Staged::new(&a.output)?),
        None => None,
    };
    let written = staged.as_ref().map_or(a.output.as_path(), |s| &s.path);
    let mut summary = encode_model(&model, written, &opts, &progress)?;
    bar.finish_and_clear();
    let encode_secs = start.elapsed().as_secs_f64();
    let evaluated = match (&eval_text, &staged) {
        (Some(text), Some(staged)) => {
            let e = evaluate_into(&a, text, &staged.path)?;
            // The figures added metadata bytes: count the final file.
            let out = HhtldFile::open(&a.output)?;
            summary.size = SizeReport::from_layout(out.layout(), out.bytes());
            Some(e)
        }
        _ => None,
    };
    let secs = start.elapsed().as_secs_f64();
    let model_gate = evaluated
        .as_ref()
        .and_then(|e| model_gate(a.profile, &e.metrics));

    if a.json {
        let mut j = summary_json(&summary, secs);
        j["encode_seconds"] = json!(encode_secs);
        j["model_files"] = json!(side.iter().map(|f| f.rel).collect::<Vec<_>>());
        j["model_files_skipped"] = json!(skipped
            .iter()
            .map(|s| json!({"path": s.path.display().to_string(), "reason": s.reason}))
            .collect::<Vec<_>>());
        j["calibration"] = cal.json;
        j["calibration_skipped"] = json!(cal.skipped);
        j["eval"] = evaluated.as_ref().map_or(Value::Null, |e| {
            let mut v = hhtld::inspect::eval_json(e);
            v["target"] = json!(a
                .profile
                .cos_target()
                .map(|(m, p)| json!({"cos_mean": m, "cos_p1": p})));
            v["passed"] = json!(model_gate.is_none());
            v
        });
        crate::outln!("{:#}", j);
    } else {
        print_summary(&summary, &a, secs);
        if !side.is_empty() {
            let list: Vec<String> = side
                .iter()
                .map(|f| format!("{} ({} B)", f.rel, f.text.len()))
                .collect();
            crate::outln!("model files stored in metadata: {}", list.join(", "));
        }
        if let Some(e) = &evaluated {
            let m = &e.metrics;
            crate::outln!(
                "eval ({} sentences): cosine to original mean {:.5}, p1 {:.5}, min {:.5}; top-10 overlap {:.4}; Spearman {:.5} (stored in metadata)",
                m.sentences,
                m.cos_mean,
                m.cos_p1,
                m.cos_min,
                m.top10_overlap,
                m.spearman
            );
        }
    }
    if let Some(miss) = &model_gate {
        eprintln!("hhtld: {miss}");
    }
    let tensor_miss = summary.gate_failures().next().is_some();
    if a.require_gates && (tensor_miss || model_gate.is_some()) {
        return Ok(Outcome::GateMissed);
    }
    Ok(Outcome::Ok)
}

/// A temporary file beside the output, removed when dropped.
struct Staged {
    path: PathBuf,
}

impl Staged {
    fn new(output: &Path) -> Result<Staged, Failure> {
        let name = output
            .file_name()
            .ok_or_else(|| Failure(format!("{}: no file name", output.display())))?;
        let mut tmp = std::ffi::OsString::from(".");
        tmp.push(name);
        tmp.push(format!(".pre-eval-{}", std::process::id()));
        Ok(Staged {
            path: output.with_file_name(tmp),
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Evaluates the staged file against the original on `text`, then writes
/// the output: the staged file with the figures in its metadata.
fn evaluate_into(a: &Args, text: &str, staged: &Path) -> Result<EvalRecord, Failure> {
    let sents = sentences(text);
    if sents.is_empty() {
        return Err(Failure("--eval: the text has no sentences".into()));
    }
    eprintln!("hhtld: evaluating on {} sentences ...", sents.len());
    let original = Weights::original(&a.input)?;
    let file = HhtldFile::open(staged)?;
    let files = ModelFiles::find(&Sources {
        hhtld: Some(&file),
        dir: original.dir(),
        ..Sources::default()
    })
    .map_err(|e| Failure(format!("--eval: {e}")))?;
    let r = evaluate(&original, &Weights::Hhtld(file), &files, &sents, EVAL_BATCH)?;
    let record = EvalRecord {
        text_sha256: text_sha256(text),
        metrics: r.metrics,
    };
    amend_metadata(staged, &a.output, &record.metadata())?;
    Ok(record)
}

/// The model-level gate: `Some(what was missed)` when a figure is below
/// the profile's target (or NaN).
fn model_gate(profile: Profile, m: &Metrics) -> Option<String> {
    let (mean, p1) = profile.cos_target()?;
    let below = |v: f64, t: f64| v < t || v.is_nan();
    (below(m.cos_mean, mean) || below(m.cos_p1, p1)).then(|| {
        format!(
            "MISSED MODEL GATE: cosine to the original mean {:.5} (target {mean}), p1 {:.5} (target {p1}) for profile {}",
            m.cos_mean,
            m.cos_p1,
            profile.name()
        )
    })
}

/// Gate results of one regime (encode-only: a file does not record gates).
struct Gates {
    passed: usize,
    gated: usize,
}

fn gates(s: &EncodeSummary, regime: Regime) -> Gates {
    let outs = s.tensors.iter().filter(|t| t.class.regime == regime);
    Gates {
        passed: outs.clone().filter(|t| t.passed() == Some(true)).count(),
        gated: outs.filter(|t| t.passed().is_some()).count(),
    }
}

fn ratio(r: Option<f64>) -> f64 {
    r.unwrap_or(0.0)
}

/// A figure of the worst recorded quality, `-` without one.
fn worst(q: Option<Quality>, f: fn(&Quality) -> f32) -> String {
    q.map_or("-".into(), |q| format!("{:.4}", f(&q)))
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
    for l in &s.size.by_regime {
        let g = gates(s, l.regime);
        let gates = if g.gated == 0 {
            "-".to_string()
        } else {
            format!("{}/{}", g.passed, g.gated)
        };
        crate::outln!(
            "{:<12} {:>7} {:>11} {:>11} {:>7.2}:1 {:>10} {:>10} {:>10} {:>7}",
            l.regime.name(),
            l.tensors,
            l.numel,
            l.bytes,
            ratio(l.ratio()),
            worst(l.worst, |q| q.rho_median),
            worst(l.worst, |q| q.rho_p5),
            worst(l.worst, |q| q.rho_min),
            gates
        );
    }
    let enc = s.size.encoded();
    crate::outln!(
        "encoded tensors: {} of {}, {} bytes, {:.2}:1 against BF16 (shared palettes, FisherZ, scales included)",
        enc.tensors,
        s.size.tensors.len(),
        enc.bytes,
        ratio(enc.ratio())
    );
    crate::outln!(
        "whole file: {} bytes, {:.2}:1 against a BF16 copy of every tensor ({} bytes)",
        s.size.file_len,
        ratio(s.size.ratio()),
        s.size.bf16_bytes()
    );
    for t in s.tensors.iter().filter(|t| !t.fallbacks.is_empty()) {
        let codec = t.codec().map(|c| c.describe()).unwrap_or_default();
        crate::outln!("fell back: {} -> {codec}", t.name);
        for f in &t.fallbacks {
            crate::outln!("    {f}");
        }
    }
    for t in s.gate_failures() {
        let q = t.quality().map_or(String::new(), |q| {
            format!("rho median {:.4}, p5 {:.4}", q.rho_median, q.rho_p5)
        });
        crate::outln!(
            "MISSED GATE: {} ({}, {}): {q}",
            t.name,
            t.class.regime.name(),
            t.codec().map(|c| c.describe()).unwrap_or_default()
        );
    }
}

fn summary_json(s: &EncodeSummary, secs: f64) -> Value {
    json!({
        "profile": s.profile.name(),
        "seconds": secs,
        "encoded_ratio": s.size.encoded().ratio(),
        "file_ratio": s.size.ratio(),
        "gate_failures": s.gate_failures().map(|t| t.name.clone()).collect::<Vec<_>>(),
        "regimes": s.size.by_regime.iter().map(|l| json!({
            "regime": l.regime.name(),
            "tensors": l.tensors,
            "encoded": l.encoded,
            "numel": l.numel,
            "bytes": l.bytes,
            "ratio": l.ratio(),
            "worst_rho_median": l.worst.map(|q| q.rho_median),
            "worst_rho_p5": l.worst.map(|q| q.rho_p5),
            "gates_passed": gates(s, l.regime).passed,
            "gated": gates(s, l.regime).gated,
        })).collect::<Vec<_>>(),
        "tensors": s.tensors.iter().map(|t| json!({
            "name": t.name,
            "role": t.class.role.name(),
            "regime": t.class.regime.name(),
            "codec": t.codec().map(|c| c.describe()),
            "rho_median": t.quality().map(|q| q.rho_median),
            "rho_p5": t.quality().map(|q| q.rho_p5),
            "rho_min": t.quality().map(|q| q.rho_min),
            "rel_fro": t.quality().map(|q| q.rel_fro),
            "passed": t.passed(),
            "fallbacks": t.fallbacks,
        })).collect::<Vec<_>>(),
        "size": s.size.to_json(),
    })
}
