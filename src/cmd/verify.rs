//! `hhtld verify`: every CRC, and with `--against` every gate recomputed
//! from the original weights (all rows, nothing taken from the file's own
//! quality records).

use std::path::Path;

use hhtld_format::quality::{row_quality, Gate, Matrix, QualityStats};
use hhtld_format::Encoding;
use hhtld_import::SafetensorsModel;
use hhtld_reader::{HhtldFile, TensorView};
use serde_json::{json, Value};

use crate::{Failure, Outcome};

pub fn run(path: &Path, against: Option<&Path>, as_json: bool) -> Result<Outcome, Failure> {
    let file = HhtldFile::open(path)?;
    let view = file.view();
    let crc = hhtld::verify::crc_json(&view)?;
    let sections = view.sections().len();
    let Some(orig) = against else {
        if as_json {
            crate::outln!("{crc:#}");
        } else {
            crate::outln!("{}: {sections} sections, every CRC ok", path.display());
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
    if as_json {
        crate::outln!(
            "{:#}",
            json!({"crc_ok": true, "sections": sections, "tensors": lines, "missing": missing, "failed": failed})
        );
    } else {
        crate::outln!("{}: {sections} sections, every CRC ok", path.display());
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
