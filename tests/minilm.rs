//! The main job on the real model, all-MiniLM-L6-v2: encode, inspect,
//! verify against the original, decode and read the result back with the
//! official Python `safetensors` package. The model is fetched (and its
//! sha256 checked) by `scripts/fetch_model.sh` into the cache on first use.

mod common;

use common::{assert_ok, hhtld, named, root, stdout_json};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The model path as a string, for the binary's arguments.
fn model() -> &'static str {
    common::model().to_str().expect("a UTF-8 model path")
}

fn tmp(dir: &tempfile::TempDir, name: &str) -> String {
    let p: PathBuf = dir.path().join(name);
    p.to_string_lossy().into_owned()
}

/// The model linked from a folder of its own, so `encode` finds no side
/// files (tokenizer, config: 0.47 MB) to store: the file then holds the
/// weights alone, the like-for-like comparison with a BF16 copy of them
/// that the profiles' ratio targets are about (as in scripts/quality.sh).
fn weights_only(dir: &tempfile::TempDir) -> String {
    let link = dir.path().join("weights-only").join("model.safetensors");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(model(), &link).unwrap();
    link.to_string_lossy().into_owned()
}

#[test]
fn fidelity_meets_every_gate_and_the_ratios_and_python_reads_the_decode() {
    let dir = tempfile::tempdir().unwrap();
    let out = tmp(&dir, "minilm.hhtld");
    let enc = hhtld(&["encode", model(), "-o", &out, "--json"]);
    assert_ok(&enc);
    let s = stdout_json(&enc);

    // Every encoded tensor passes its gate, with the profile's own codec.
    let tensors = s["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 104);
    let encoded: Vec<&Value> = tensors
        .iter()
        .filter(|t| t["regime"] != "passthrough")
        .collect();
    assert_eq!(encoded.len(), 39);
    for t in &encoded {
        assert_eq!(t["passed"], Value::Bool(true), "{t}");
    }
    assert_eq!(s["gate_failures"].as_array().unwrap().len(), 0);
    let enc_ratio = s["encoded_ratio"].as_f64().unwrap();
    let file_ratio = s["file_ratio"].as_f64().unwrap();
    // Per-role allocation (issue 9): measured 3.73 / 3.69 on the weights
    // alone. The whole file also holds the model's config and tokenizer
    // (0.47 MB of metadata, issue 8) when the fetch script extracted them:
    // 3.55 then.
    assert!(enc_ratio >= 3.65, "encoded tensors at {enc_ratio:.3}:1");
    assert!(file_ratio >= 3.45, "whole file at {file_ratio:.3}:1");

    // inspect shows the stored quality without the original, and agrees on
    // the size accounting with the encoder.
    let ins = stdout_json(&hhtld(&["inspect", "--json", "--verify", &out]));
    for t in ins["tensors"].as_array().unwrap() {
        if t["encoding"] == "palette" {
            let q = &t["quality"];
            assert!(q["rho_median"].as_f64().unwrap() >= 0.95, "{t}");
            assert!(q["rel_fro"].as_f64().unwrap() > 0.0, "{t}");
        }
    }
    assert_eq!(ins["totals"]["file_bytes"], s["size"]["file_len"]);
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        ins["file_len"].as_u64().unwrap()
    );

    // verify --against recomputes every gate from the original.
    let v = hhtld(&["verify", &out, "--against", model(), "--json"]);
    assert_ok(&v);
    assert_eq!(stdout_json(&v)["failed"], 0);

    // decode, then the official Python package reads it and re-measures.
    let dec = tmp(&dir, "minilm.dec.safetensors");
    let d = hhtld(&["decode", &out, "-o", &dec]);
    assert_ok(&d);
    let ins_path = tmp(&dir, "inspect.json");
    std::fs::write(&ins_path, serde_json::to_vec(&ins).unwrap()).unwrap();
    // The venv made by scripts/venv.sh (test.sh exports HHTLD_PYTHON).
    let python = std::env::var("HHTLD_PYTHON").unwrap_or_else(|_| "python3".into());
    let py = Command::new(&python)
        .arg(root().join("tests/python/check_decoded.py"))
        .args([model(), &dec, &ins_path])
        .output()
        .expect("the Python of scripts/venv.sh (HHTLD_PYTHON)");
    let report = String::from_utf8_lossy(&py.stdout);
    assert!(
        py.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert!(
        report.contains("65 bit-exact, 39 over their gate, 0 problems"),
        "{report}"
    );
}

#[test]
fn hhtl_profile_reports_its_gate_misses_honestly() {
    let dir = tempfile::tempdir().unwrap();
    let out = tmp(&dir, "hhtl.hhtld");
    let enc = hhtld(&[
        "encode",
        model(),
        "-o",
        &out,
        "--profile",
        "hhtl",
        "--require-gates",
        "--json",
    ]);
    assert_eq!(
        enc.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&enc.stderr)
    );
    let s = stdout_json(&enc);
    let emb = named(&s, "tensors", "embeddings.word_embeddings.weight");
    // The row palette cannot reconstruct the embeddings (median rho ~0.45).
    assert_eq!(emb["passed"], Value::Bool(false));
    assert!(emb["rho_median"].as_f64().unwrap() < 0.7, "{emb}");
    assert!(emb["codec"].as_str().unwrap().contains("slotL"), "{emb}");
    let failures = s["gate_failures"].as_array().unwrap();
    assert!(failures.len() >= 37, "{} failures", failures.len());
    // Every palette has a FisherZ table, and its bytes are counted.
    let ins = stdout_json(&hhtld(&["inspect", "--json", &out]));
    let palettes = ins["palettes"].as_array().unwrap();
    assert!(palettes.iter().all(|p| p["fisher_z"] == Value::Bool(true)));
    let fz = ins["totals"]["by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "fisher_z")
        .unwrap()["bytes"]
        .as_u64()
        .unwrap();
    let want: u64 = palettes
        .iter()
        .map(|p| p["k"].as_u64().unwrap().pow(2))
        .sum();
    assert_eq!(fz, want);
    // verify --against agrees, from scratch.
    let v = hhtld(&["verify", &out, "--against", model()]);
    assert_eq!(v.status.code(), Some(1));
}

#[test]
fn compact_profile_is_smaller_and_meets_every_gate() {
    let dir = tempfile::tempdir().unwrap();
    let out = tmp(&dir, "compact.hhtld");
    let input = weights_only(&dir);
    let enc = hhtld(&[
        "encode",
        &input,
        "-o",
        &out,
        "--profile",
        "compact",
        "--require-gates",
        "--json",
    ]);
    assert_ok(&enc);
    let s = stdout_json(&enc);
    assert_eq!(s["gate_failures"].as_array().unwrap().len(), 0);
    let argmax = s["regimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["regime"] == "argmax")
        .unwrap();
    let ratio = argmax["ratio"].as_f64().unwrap();
    assert!(ratio >= 3.8, "compact argmax ratio {ratio:.2}:1");
    let file = s["file_ratio"].as_f64().unwrap();
    assert!(file >= 4.5, "compact whole file {file:.2}:1");
}

#[test]
fn near_lossless_profile_is_about_two_to_one_and_meets_every_gate() {
    let dir = tempfile::tempdir().unwrap();
    let out = tmp(&dir, "near-lossless.hhtld");
    let input = weights_only(&dir);
    let enc = hhtld(&[
        "encode",
        &input,
        "-o",
        &out,
        "--profile",
        "near-lossless",
        "--require-gates",
        "--json",
    ]);
    assert_ok(&enc);
    let s = stdout_json(&enc);
    assert_eq!(s["gate_failures"].as_array().unwrap().len(), 0);
    let file = s["file_ratio"].as_f64().unwrap();
    assert!(file >= 1.95, "near-lossless whole file {file:.3}:1");
    // Scalar 8-bit palettes with row scales: every encoded tensor is close
    // to exact (per-row rho median >= 0.9999 on MiniLM).
    for t in s["tensors"].as_array().unwrap() {
        if let Some(rho) = t["rho_median"].as_f64() {
            assert!(rho >= 0.999, "{t}");
        }
    }
}
