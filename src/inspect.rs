//! `hhtld inspect`: what a file holds, as JSON for machines and as tables
//! for people. A library module so fuzzers and tests render exactly what
//! the command prints.
//!
//! The text leads with what a person asks first: the summary (version,
//! totals, encoded and whole-file ratios, worst quality per regime,
//! metadata keys with their sizes), then the tensor table; the section and
//! palette tables only when asked for ([`Show`]). The JSON has everything.
//! Every figure comes from [`SizeReport`], the one definition of each.

use std::fmt::Write as _;

use hhtld_eval::record::EvalRecord;
use hhtld_format::report::{quality_json, SizeReport};
use hhtld_format::MODEL_FILE_PREFIX;
use hhtld_reader::Hhtld;
use serde_json::{json, Value};

/// `writeln!` into a String cannot fail.
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {
        let _ = writeln!($out, $($arg)*);
    };
}

/// Which optional tables the text report shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Show {
    /// The section table and the bytes per section kind.
    pub sections: bool,
    /// The palette table.
    pub palettes: bool,
}

impl Show {
    /// Every table.
    pub const ALL: Show = Show {
        sections: true,
        palettes: true,
    };
}

/// Everything `inspect` shows, as JSON. Deterministic for a given file, so
/// conformance vectors can store it.
pub fn inspect_json(view: &Hhtld<'_>, verify: bool) -> Value {
    let layout = view.layout();
    let size = SizeReport::from_layout(layout, view.bytes());
    let statuses = verify.then(|| view.verify_sections());
    let sections: Vec<Value> = layout
        .sections
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut v = json!({
                "index": i,
                "kind": s.kind.map_or_else(|| format!("unknown({})", s.raw_kind), |k| k.name().to_string()),
                "required": s.flags & 1 == 1,
                "offset": s.offset,
                "length": s.length,
                "crc32": format!("{:08x}", s.crc32),
            });
            if let Some(st) = statuses.as_ref().and_then(|st| st.get(i)) {
                v["crc_ok"] = json!(st.ok());
            }
            v
        })
        .collect();
    let mut users = vec![0usize; layout.palettes.len()];
    for t in &layout.tensors {
        let mut seen: Vec<u32> = t.stages().iter().map(|s| s.palette).collect();
        seen.sort_unstable();
        seen.dedup();
        for p in seen {
            if let Some(u) = users.get_mut(p as usize) {
                *u += 1;
            }
        }
    }
    let palettes: Vec<Value> = layout
        .palettes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "index": i,
                "k": p.k,
                "d": p.d,
                "bits": p.bits,
                "elem": p.elem.name(),
                "bytes": p.range.len(),
                "fisher_z": p.fisher.is_some(),
                "shared_by": users[i],
            })
        })
        .collect();
    let bases: Vec<Value> = layout
        .bases
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"index": i, "n_cols": b.n_cols, "rows": b.rows, "elem": b.elem.name(), "bytes": b.range.len()}))
        .collect();
    let tensors: Vec<Value> = view
        .tensors()
        .zip(&size.tensors)
        .map(|(t, sz)| {
            let rec = t.record();
            let stages: Vec<Value> = rec
                .stages()
                .iter()
                .map(|s| json!({"palette": s.palette, "d": s.d, "bits": s.bits}))
                .collect();
            json!({
                "name": t.name(),
                "shape": t.shape(),
                "dtype": t.dtype().name(),
                "role": t.role().name(),
                "regime": t.regime().name(),
                "encoding": t.encoding().name(),
                "stages": stages,
                "scale": rec.scale.as_ref().map(|s| s.elem.name()),
                "slot_l": rec.slot.as_ref().map(|s| s.basis),
                "bytes": sz.bytes(),
                "bf16_bytes": sz.bf16_bytes(),
                "ratio": sz.ratio(),
                "quality": quality_json(&sz.quality),
            })
        })
        .collect();
    // Model files (`file.*`: tokenizer, config) are listed by name and size
    // in `metadata_bytes`, not dumped: a tokenizer alone is about 0.5 MB.
    // A value that is not UTF-8 is shown as the R-METADATA error.
    let metadata: serde_json::Map<String, Value> = view
        .metadata_raw()
        .filter(|(k, _)| !k.starts_with(MODEL_FILE_PREFIX))
        .map(|(k, v)| {
            let v = match core::str::from_utf8(v) {
                Ok(v) => json!(v),
                Err(_) => json!({"error": "value is not valid UTF-8 [R-METADATA]"}),
            };
            (k.to_string(), v)
        })
        .collect();
    let metadata_bytes: Vec<Value> = view
        .metadata_raw()
        .map(|(k, v)| json!({"key": k, "bytes": v.len()}))
        .collect();
    let enc = size.encoded();
    let mut out = json!({
        "version": format!("{}.{}", layout.version.0, layout.version.1),
        "file_len": layout.file_len,
        "sections": sections,
        "palettes": palettes,
        "bases": bases,
        "fisher_z": layout.fishers.iter().map(|f| json!({"palette": f.palette, "k": f.k, "gamma": f.gamma})).collect::<Vec<_>>(),
        "tensors": tensors,
        "metadata": metadata,
        "metadata_bytes": metadata_bytes,
        "totals": {
            "tensors": layout.tensors.len(),
            "encoded_tensors": enc.tensors,
            "params": size.tensors.iter().map(|t| t.numel).sum::<u64>(),
            "file_bytes": layout.file_len,
            "bf16_bytes": size.bf16_bytes(),
            "ratio": size.ratio(),
            "encoded_bytes": enc.bytes,
            "encoded_bf16_bytes": enc.bf16_bytes(),
            "encoded_ratio": enc.ratio(),
            "header_bytes": size.header_bytes,
            "table_bytes": size.table_bytes,
            "padding_bytes": size.padding_bytes,
            "unused_shared_bytes": size.unused_shared,
            "by_kind": size.by_kind.iter().map(|k| json!({"kind": k.kind.name(), "sections": k.sections, "bytes": k.bytes})).collect::<Vec<_>>(),
            "by_regime": size.by_regime.iter().map(|r| json!({
                "regime": r.regime.name(),
                "tensors": r.tensors,
                "encoded": r.encoded,
                "params": r.numel,
                "bytes": r.bytes,
                "ratio": r.ratio(),
                "worst": quality_json(&r.worst),
            })).collect::<Vec<_>>(),
        },
    });
    // Figures `encode --eval` stored; present only in files that have them
    // (so the conformance vectors' JSON is unchanged).
    match EvalRecord::from_view(view) {
        Ok(Some(r)) => out["eval"] = eval_json(&r),
        Ok(None) => {}
        Err(e) => out["eval"] = json!({"error": e.to_string()}),
    }
    out
}

/// Stored evaluation figures as JSON: the [`hhtld_eval::Metrics`] fields
/// and the text's SHA-256.
pub fn eval_json(r: &EvalRecord) -> Value {
    let mut v = serde_json::to_value(r.metrics).unwrap_or_default();
    v["text_sha256"] = json!(r.text_sha256);
    v
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        v => v.to_string(),
    }
}

/// JSON values implement Display without honouring widths; go via String.
fn n(v: &Value) -> String {
    s(v)
}

fn r(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.2}:1"))
}

/// The human-readable `inspect` report rendered from [`inspect_json`]'s
/// value: summary, tensors, then the tables `show` asks for.
pub fn render_text(j: &Value, show: Show) -> String {
    let mut out = String::new();
    let empty = vec![];
    let arr = |k: &str| j[k].as_array().unwrap_or(&empty).clone();
    let t = &j["totals"];
    outln!(
        out,
        "hhtld {} file, {} bytes",
        s(&j["version"]),
        n(&j["file_len"])
    );
    outln!(
        out,
        "  {} tensors ({} encoded), {} params",
        n(&t["tensors"]),
        n(&t["encoded_tensors"]),
        n(&t["params"])
    );
    outln!(
        out,
        "  encoded tensors: {} bytes, {} against BF16",
        n(&t["encoded_bytes"]),
        r(&t["encoded_ratio"])
    );
    outln!(
        out,
        "  whole file: {} bytes, {} against BF16 ({} bytes)",
        n(&t["file_bytes"]),
        r(&t["ratio"]),
        n(&t["bf16_bytes"])
    );
    let e = &j["eval"];
    if let Some(err) = e["error"].as_str() {
        outln!(out, "  model quality (encode --eval): unreadable: {err}");
    } else if !e.is_null() {
        let f = |k: &str| e[k].as_f64().map_or("-".into(), |v| format!("{v:.5}"));
        outln!(
            out,
            "  model quality (encode --eval, {} sentences, text sha256 {}): cosine to original mean {}, p1 {}, min {}; top-10 overlap {}; Spearman {}",
            n(&e["sentences"]),
            s(&e["text_sha256"]).get(..12).unwrap_or("-"),
            f("cos_mean"),
            f("cos_p1"),
            f("cos_min"),
            f("top10_overlap"),
            f("spearman")
        );
    }
    outln!(out, "\nregimes:");
    outln!(
        out,
        "  {:<12} {:>7} {:>7} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9}",
        "regime",
        "tensors",
        "encoded",
        "params",
        "bytes",
        "ratio",
        "worst med",
        "worst p5",
        "worst min"
    );
    for g in t["by_regime"].as_array().unwrap_or(&empty) {
        outln!(
            out,
            "  {:<12} {:>7} {:>7} {:>11} {:>11} {:>9} {:>9} {:>9} {:>9}",
            s(&g["regime"]),
            n(&g["tensors"]),
            n(&g["encoded"]),
            n(&g["params"]),
            n(&g["bytes"]),
            r(&g["ratio"]),
            q4(&g["worst"]["rho_median"]),
            q4(&g["worst"]["rho_p5"]),
            q4(&g["worst"]["rho_min"])
        );
    }
    let meta = arr("metadata_bytes");
    if meta.is_empty() {
        outln!(out, "\nmetadata: none");
    } else {
        outln!(out, "\nmetadata ({} keys):", meta.len());
        for m in &meta {
            outln!(out, "  {:<40} {:>10} bytes", s(&m["key"]), n(&m["bytes"]));
        }
    }
    outln!(out, "\ntensors:");
    outln!(
        out,
        "  {:<48} {:<16} {:<6} {:<18} {:<11} {:<8} {:>10} {:>9} {:>8} {:>8}",
        "name",
        "shape",
        "dtype",
        "role",
        "regime",
        "encoding",
        "bytes",
        "ratio",
        "rho med",
        "rho p5"
    );
    for t in arr("tensors") {
        let shape = t["shape"].as_array().map_or(String::new(), |a| {
            a.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x")
        });
        outln!(
            out,
            "  {:<48} {:<16} {:<6} {:<18} {:<11} {:<8} {:>10} {:>9} {:>8} {:>8}",
            s(&t["name"]),
            shape,
            s(&t["dtype"]),
            s(&t["role"]),
            s(&t["regime"]),
            s(&t["encoding"]),
            n(&t["bytes"]),
            r(&t["ratio"]),
            q4(&t["quality"]["rho_median"]),
            q4(&t["quality"]["rho_p5"])
        );
    }
    if show.sections {
        render_sections(&mut out, j);
    }
    if show.palettes {
        render_palettes(&mut out, j);
    }
    out
}

fn q4(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.4}"))
}

fn render_sections(out: &mut String, j: &Value) {
    let empty = vec![];
    outln!(out, "\nsections:");
    outln!(
        out,
        "  {:>4} {:<10} {:>12} {:>12} {:>10} check",
        "#",
        "kind",
        "offset",
        "length",
        "crc32"
    );
    for sec in j["sections"].as_array().unwrap_or(&empty) {
        let check = match sec.get("crc_ok") {
            Some(Value::Bool(true)) => "ok",
            Some(Value::Bool(false)) => "BAD",
            _ => "-",
        };
        outln!(
            out,
            "  {:>4} {:<10} {:>12} {:>12} {:>10} {}",
            n(&sec["index"]),
            s(&sec["kind"]),
            n(&sec["offset"]),
            n(&sec["length"]),
            s(&sec["crc32"]),
            check
        );
    }
    let t = &j["totals"];
    outln!(out, "\nbytes by section kind:");
    for k in t["by_kind"].as_array().unwrap_or(&empty) {
        outln!(
            out,
            "  {:<10} {:>4} sections {:>12} bytes",
            s(&k["kind"]),
            n(&k["sections"]),
            n(&k["bytes"])
        );
    }
    outln!(
        out,
        "  header {} + table {} + padding {} bytes",
        n(&t["header_bytes"]),
        n(&t["table_bytes"]),
        n(&t["padding_bytes"])
    );
}

fn render_palettes(out: &mut String, j: &Value) {
    let empty = vec![];
    outln!(out, "\npalettes:");
    outln!(
        out,
        "  {:>4} {:>4} {:>6} {:>5} {:<5} {:>9} {:>9} fisher_z",
        "#",
        "k",
        "d",
        "bits",
        "elem",
        "bytes",
        "shared_by"
    );
    for p in j["palettes"].as_array().unwrap_or(&empty) {
        outln!(
            out,
            "  {:>4} {:>4} {:>6} {:>5} {:<5} {:>9} {:>9} {}",
            n(&p["index"]),
            n(&p["k"]),
            n(&p["d"]),
            n(&p["bits"]),
            s(&p["elem"]),
            n(&p["bytes"]),
            n(&p["shared_by"]),
            n(&p["fisher_z"])
        );
    }
}
