//! `encode`'s calibration step: statistics loaded from a file, measured by
//! running the original model on calibration text (by default when the
//! model is one `hhtld eval` runs), or none, with the reason.

use std::path::Path;
use std::sync::Arc;

use hhtld_eval::calibrate::{calibrate, check_disjoint};
use hhtld_eval::{
    sentences, text_sha256, ModelFiles, Sources, Weights, CALIBRATION_TEXT, DEFAULT_TEXT,
};
use hhtld_writer::calibration::{Calibration, CalibrationSource, InputStats};
use hhtld_writer::import::SafetensorsModel;
use hhtld_writer::side_files;
use serde_json::{json, Value};

use crate::Failure;

/// Sentences per calibration forward pass.
const BATCH: usize = 32;

/// What `encode` asked for.
pub struct Request<'a> {
    /// The model input (`.safetensors`, `.index.json`).
    pub input: &'a Path,
    /// `--calibration-stats`.
    pub stats: Option<&'a Path>,
    /// `--calibrate TEXT`.
    pub text: Option<&'a Path>,
    /// `--no-calibrate`.
    pub off: bool,
    /// The evaluation text `--eval` will use (the calibration text must not
    /// share sentences with it), besides the built-in one.
    pub eval_text: Option<&'a str>,
}

/// The outcome: statistics and how they came about, or why there are none.
pub struct Outcome {
    /// The statistics, checked against the model.
    pub calibration: Option<Calibration>,
    /// For `--json`: the figures, or `null`.
    pub json: Value,
    /// Why there is no calibration (`None` when there is one).
    pub skipped: Option<String>,
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure(format!("{}: {e}", path.display())))
}

/// Why encode cannot run the model whose weights are in `dir`, with
/// `then` appended to the advice. Eval's own message names its
/// --config/--tokenizer flags; encode finds those files only beside the
/// weights.
pub fn why_no_model(e: hhtld_eval::EvalError, dir: &Path, then: &str) -> String {
    match e {
        hhtld_eval::EvalError::Missing { what, .. } => format!(
            "no {what} beside the weights in {}; put the model's {what} there{then}",
            dir.display()
        ),
        e => e.to_string(),
    }
}

/// Decides and, when it can, calibrates. Explicit requests that cannot be
/// met (`--calibrate` without a tokenizer, bad statistics) are errors; the
/// default falls back to weight-only encoding with the reason.
pub fn run(req: &Request<'_>, model: &SafetensorsModel) -> Result<Outcome, Failure> {
    let eval_texts: Vec<Vec<String>> = std::iter::once(DEFAULT_TEXT)
        .chain(req.eval_text)
        .map(sentences)
        .collect();
    if let Some(path) = req.stats {
        let cal = Calibration::load(path)?;
        cal.check_model(model)?;
        let src = cal.source();
        for t in std::iter::once(DEFAULT_TEXT).chain(req.eval_text) {
            if src.text_sha256 == text_sha256(t) {
                return Err(Failure(format!(
                    "{}: the statistics were measured on the evaluation text (sha256 {})",
                    path.display(),
                    src.text_sha256
                )));
            }
        }
        let json = json!({
            "from": "stats",
            "file": path.display().to_string(),
            "text_sha256": src.text_sha256,
            "sentences": src.sentences,
            "tokens": src.tokens,
            "weights": cal.len(),
        });
        return Ok(Outcome {
            calibration: Some(cal),
            json,
            skipped: None,
        });
    }
    let skip = |reason: String| Outcome {
        calibration: None,
        json: Value::Null,
        skipped: Some(reason),
    };
    if req.off {
        return Ok(skip("--no-calibrate".into()));
    }
    let (text, label) = match req.text {
        Some(p) => (read(p)?, p.display().to_string()),
        None => (
            CALIBRATION_TEXT.to_owned(),
            "data/text/calib.txt (built in)".to_owned(),
        ),
    };
    let sents = sentences(&text);
    if sents.is_empty() {
        return Err(Failure(format!("{label}: no sentences (one per line)")));
    }
    for eval in &eval_texts {
        check_disjoint(&sents, eval)?;
    }
    let dir = side_files::model_dir(req.input);
    let files = match ModelFiles::find(&Sources {
        dir: Some(dir),
        ..Sources::default()
    }) {
        Ok(f) => f,
        Err(e) => {
            let why = why_no_model(e, dir, ", or give statistics with --calibration-stats");
            if req.text.is_none() {
                return Ok(skip(format!("cannot run the model: {why}")));
            }
            return Err(Failure(format!("--calibrate: cannot run the model: {why}")));
        }
    };
    eprintln!(
        "hhtld: calibrating on {} sentences of {label} ...",
        sents.len()
    );
    let weights = Weights::original(req.input)?;
    let run = calibrate(&weights, &files, &sents, BATCH)?;
    let mut cal = Calibration::new(CalibrationSource {
        text_sha256: text_sha256(&text),
        sentences: run.sentences,
        tokens: run.tokens,
    });
    for g in run.grams {
        let stats = Arc::new(InputStats::new(g.cols, g.tokens, g.gram)?);
        for w in g.weights {
            cal.insert(w, stats.clone());
        }
    }
    cal.check_model(model)?;
    let secs = run.elapsed.as_secs_f64();
    eprintln!(
        "hhtld: calibrated {} weights on {} sentences ({} tokens) in {secs:.1} s",
        cal.len(),
        run.sentences,
        run.tokens
    );
    let json = json!({
        "from": "text",
        "text": label,
        "text_sha256": cal.source().text_sha256,
        "sentences": run.sentences,
        "tokens": run.tokens,
        "seconds": secs,
        "weights": cal.len(),
    });
    Ok(Outcome {
        calibration: Some(cal),
        json,
        skipped: None,
    })
}

/// Saves `cal` for `--save-calibration` (temp file, then rename).
pub fn save(cal: Option<&Calibration>, path: &Path, skipped: Option<&str>) -> Result<(), Failure> {
    match cal {
        Some(c) => Ok(c.save(path)?),
        None => Err(Failure(format!(
            "--save-calibration {}: there are no statistics to save ({})",
            path.display(),
            skipped.unwrap_or("none measured")
        ))),
    }
}
