//! `hhtld verify`: every CRC, and with `--against` every gate recomputed
//! from the original weights (all rows, nothing taken from the file's own
//! quality records).

use std::path::Path;

use hhtld_eval::record::EvalRecord;
use hhtld_eval::{evaluate, sentences, text_sha256, ModelFiles, Sources, Weights, DEFAULT_TEXT};
use hhtld_format::quality::{row_quality, Gate, Matrix, QualityStats};
use hhtld_format::Encoding;
use hhtld_import::SafetensorsModel;
use hhtld_reader::{HhtldFile, TensorView};
use serde_json::{json, Value};

use crate::{Failure, Outcome};

/// Sentences per evaluation forward pass (as `hhtld eval`).
const EVAL_BATCH: usize = 32;

pub fn run(
    path: &Path,
    against: Option<&Path>,
    text: Option<&Path>,
    as_json: bool,
) -> Result<Outcome, Failure> {
    let file = HhtldFile::open(path)?;
    let view = file.view();
    let crc = hhtld::verify::crc_json(&view)?;
    let sections = view.sections().len();
    let verified = format!(
        "{}: {sections} sections: every CRC, the padding and the metadata values ok",
        path.display()
    );
    let Some(orig) = against else {
        if as_json {
            crate::outln!("{crc:#}");
        } else {
            crate::outln!("{verified}");
        }
        return Ok(Outcome::Ok);
    };
    let model = SafetensorsModel::open(orig)?;
    let mut lines = Vec::new();
    let mut failed = 0usize;
    for t in view.tensors() {
        let line = check_tensor(&model, &t)?;
        if line["ok"] == json!(false) {
            failed += 1;
        }
        lines.push(line);
    }
    let missing: Vec<String> = model
        .tensors()
        .filter(|i| view.tensor_by_name(&i.name).is_err())
        .map(|i| i.name)
        .collect();
    failed += missing.len();
    // Model-level figures stored by `encode --eval`: recomputed from scratch.
    let eval = match EvalRecord::from_view(&view)? {
        Some(stored) => {
            let e = recheck_eval(&file, orig, &stored, text)?;
            if e["ok"] == json!(false) {
                failed += 1;
            }
            Some(e)
        }
        None if text.is_some() => {
            return Err(Failure(format!(
                "--text: {} carries no evaluation figures (encode --eval) to recompute",
                path.display()
            )))
        }
        None => None,
    };
    if as_json {
        crate::outln!(
            "{:#}",
            json!({"crc_ok": true, "sections": sections, "tensors": lines, "missing": missing, "eval": eval, "failed": failed})
        );
    } else {
        crate::outln!("{verified}");
        crate::outln!(
            "{:<52} {:<11} {:<8} {:>9} {:>9} {:>9} {:>9}  result",
            "tensor",
            "regime",
            "encoding",
            "rho med",
            "rho p5",
            "rho min",
            "rel fro"
        );
        for l in &lines {
            let f = |k: &str| l[k].as_f64().map_or("-".to_string(), |v| format!("{v:.4}"));
            crate::outln!(
                "{:<52} {:<11} {:<8} {:>9} {:>9} {:>9} {:>9}  {}",
                l["name"].as_str().unwrap_or(""),
                l["regime"].as_str().unwrap_or(""),
                l["encoding"].as_str().unwrap_or(""),
                f("rho_median"),
                f("rho_p5"),
                f("rho_min"),
                f("rel_fro"),
                l["result"].as_str().unwrap_or("")
            );
        }
        for m in &missing {
            crate::outln!("{m:<52} missing from the .hhtld file");
        }
        if let Some(e) = &eval {
            crate::outln!(
                "model quality on {} sentences: stored figures {}",
                e["recomputed"]["sentences"],
                if e["ok"] == json!(true) {
                    "recomputed within tolerance"
                } else {
                    "DIFFER from the recomputation"
                }
            );
            for d in e["differences"].as_array().into_iter().flatten() {
                crate::outln!(
                    "    {}: stored {}, recomputed {}",
                    d["key"].as_str().unwrap_or(""),
                    d["stored"],
                    d["recomputed"]
                );
            }
        }
        crate::outln!(
            "{} tensors checked against {}: {} failed",
            lines.len(),
            orig.display(),
            failed
        );
    }
    Ok(if failed == 0 {
        Outcome::Ok
    } else {
        Outcome::GateMissed
    })
}

/// Runs `hhtld eval` of `file` against `orig` on the text the stored
/// figures name (the built-in evaluation text when its SHA-256 matches,
/// else `--text`) and compares.
fn recheck_eval(
    file: &HhtldFile,
    orig: &Path,
    stored: &EvalRecord,
    text: Option<&Path>,
) -> Result<Value, Failure> {
    let text = match text {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| Failure(format!("--text {}: {e}", p.display())))?;
            if text_sha256(&t) != stored.text_sha256 {
                return Err(Failure(format!(
                    "--text {} has sha256 {}, but the stored figures were measured on text with sha256 {}",
                    p.display(),
                    text_sha256(&t),
                    stored.text_sha256
                )));
            }
            t
        }
        None if text_sha256(DEFAULT_TEXT) == stored.text_sha256 => DEFAULT_TEXT.to_owned(),
        None => {
            return Err(Failure(format!(
                "the stored evaluation figures were measured on a text other than the built-in one (sha256 {}); pass that text with --text",
                stored.text_sha256
            )))
        }
    };
    let original = Weights::original(orig)?;
    let files = ModelFiles::find(&Sources {
        hhtld: Some(file),
        dir: original.dir(),
        ..Sources::default()
    })?;
    let r = evaluate(
        &original,
        &Weights::Hhtld(file.clone()),
        &files,
        &sentences(&text),
        EVAL_BATCH,
    )?;
    let diffs = stored.differences(&r.metrics);
    Ok(json!({
        "stored": hhtld::inspect::eval_json(stored),
        "recomputed": hhtld::inspect::eval_json(&EvalRecord {
            text_sha256: stored.text_sha256.clone(),
            metrics: r.metrics,
        }),
        "differences": diffs.iter().map(|(k, a, b)| json!({"key": k, "stored": a, "recomputed": b})).collect::<Vec<_>>(),
        "ok": diffs.is_empty(),
    }))
}

fn check_tensor(model: &SafetensorsModel, t: &TensorView<'_>) -> Result<Value, Failure> {
    let base = json!({
        "name": t.name(),
        "regime": t.regime().name(),
        "encoding": t.encoding().name(),
    });
    let with = |mut v: Value, ok: bool, result: String, q: Option<&QualityStats>| {
        v["ok"] = json!(ok);
        v["result"] = json!(result);
        if let Some(q) = q {
            v["rho_median"] = json!(q.rho_median);
            v["rho_p5"] = json!(q.rho_p5);
            v["rho_min"] = json!(q.rho_min);
            v["rel_fro"] = json!(q.rel_fro);
        }
        v
    };
    let Some(info) = model.get(t.name()) else {
        return Ok(with(base, false, "not in the original".into(), None));
    };
    if info.shape != t.shape() {
        return Ok(with(
            base,
            false,
            format!("shape {:?} != original {:?}", t.shape(), info.shape),
            None,
        ));
    }
    // Passthrough bytes must be identical; anything else is measured.
    if t.encoding() == Encoding::Raw && t.dtype() == info.dtype {
        let same = t.raw_bytes() == Some(model.raw_bytes(t.name())?);
        let result = if same { "bit-exact" } else { "BYTES DIFFER" };
        return Ok(with(base, same, result.into(), None));
    }
    let original = model.to_f32(t.name())?;
    let decoded = t.decode()?;
    let m = Matrix {
        data: &original,
        n_rows: t.n_rows(),
        n_cols: t.n_cols(),
    };
    let q = row_quality(&m, &decoded)?;
    Ok(match Gate::for_regime(t.regime()) {
        Some(g) if g.passes(&q) => with(
            base,
            true,
            format!("pass ({:.2}/{:.2})", g.median, g.p5),
            Some(&q),
        ),
        Some(g) => with(
            base,
            false,
            format!("MISSED GATE {:.2}/{:.2}", g.median, g.p5),
            Some(&q),
        ),
        None => with(base, true, "no gate".into(), Some(&q)),
    })
}
