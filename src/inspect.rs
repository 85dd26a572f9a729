//! `hhtld inspect`: what a file holds, as JSON for machines and as tables
//! for people. A library module so fuzzers and tests render exactly what
//! the command prints.

use std::fmt::Write as _;

use hhtld_reader::Hhtld;
use hhtld_writer::report::SizeReport;
use serde_json::{json, Value};

/// `writeln!` into a String cannot fail.
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {
        let _ = writeln!($out, $($arg)*);
    };
}

/// BF16 bytes over stored bytes: 4.0 means 4:1 smaller than BF16.
fn ratio(bf16: u64, bytes: u64) -> Option<f64> {
    (bytes > 0).then(|| bf16 as f64 / bytes as f64)
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
                "ratio": ratio(sz.bf16_bytes(), sz.bytes()),
                "quality": t.quality().map(|q| json!({
                    "rho_median": q.rho_median,
                    "rho_p5": q.rho_p5,
                    "rho_min": q.rho_min,
                    "rel_fro": q.rel_fro,
                })),
            })
        })
        .collect();
    let metadata: serde_json::Map<String, Value> = view
        .metadata()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let (enc_bf16, enc_bytes) = size
        .tensors
        .iter()
        .filter(|t| t.encoding == hhtld_format::Encoding::Palette)
        .fold((0u64, 0u64), |(a, b), t| {
            (a + t.bf16_bytes(), b + t.bytes())
        });
    json!({
        "version": format!("{}.{}", layout.version.0, layout.version.1),
        "file_len": layout.file_len,
        "sections": sections,
        "palettes": palettes,
        "bases": bases,
        "fisher_z": layout.fishers.iter().map(|f| json!({"palette": f.palette, "k": f.k, "gamma": f.gamma})).collect::<Vec<_>>(),
        "tensors": tensors,
        "metadata": metadata,
        "totals": {
            "tensors": layout.tensors.len(),
            "encoded_tensors": layout.tensors.iter().filter(|t| t.encoding == hhtld_format::Encoding::Palette).count(),
            "params": size.tensors.iter().map(|t| t.numel).sum::<u64>(),
            "file_bytes": layout.file_len,
            "bf16_bytes": size.bf16_bytes(),
            "ratio": ratio(size.bf16_bytes(), layout.file_len as u64),
            "encoded_bytes": enc_bytes,
            "encoded_bf16_bytes": enc_bf16,
            "encoded_ratio": ratio(enc_bf16, enc_bytes),
            "header_bytes": size.header_bytes,
            "table_bytes": size.table_bytes,
            "padding_bytes": size.padding_bytes,
            "unused_shared_bytes": size.unused_shared,
            "by_kind": size.by_kind.iter().map(|k| json!({"kind": k.kind.name(), "sections": k.sections, "bytes": k.bytes})).collect::<Vec<_>>(),
            "by_regime": size.by_regime.iter().map(|r| json!({
                "regime": r.regime.name(),
                "tensors": r.tensors,
                "params": r.numel,
                "bytes": r.bytes,
                "ratio": ratio(r.bf16_bytes(), r.bytes),
            })).collect::<Vec<_>>(),
        },
    })
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

/// The human-readable `inspect` report rendered from [`inspect_json`]'s value.
pub fn render_text(j: &Value) -> String {
    let mut out = String::new();
    let empty = vec![];
    let arr = |k: &str| j[k].as_array().unwrap_or(&empty).clone();
    outln!(
        out,
        "hhtld {} file, {} bytes",
        s(&j["version"]),
        n(&j["file_len"])
    );
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
    for sec in arr("sections") {
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
        let q = |k: &str| {
            t["quality"]
                .get(k)
                .and_then(Value::as_f64)
                .map_or("-".into(), |x| format!("{x:.4}"))
        };
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
            q("rho_median"),
            q("rho_p5")
        );
    }
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
    for p in arr("palettes") {
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
    let t = &j["totals"];
    outln!(out, "\ntotals:");
    outln!(
        out,
        "  {} tensors ({} encoded), {} params",
        n(&t["tensors"]),
        n(&t["encoded_tensors"]),
        n(&t["params"])
    );
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
    for g in t["by_regime"].as_array().unwrap_or(&empty) {
        outln!(
            out,
            "  regime {:<11} {:>4} tensors {:>11} params {:>11} bytes {:>9}",
            s(&g["regime"]),
            n(&g["tensors"]),
            n(&g["params"]),
            n(&g["bytes"]),
            r(&g["ratio"])
        );
    }
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
        t["bf16_bytes"]
    );
    out
}
