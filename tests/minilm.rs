//! The main job on the real model, all-MiniLM-L6-v2: encode, inspect,
//! verify against the original, decode and read the result back with the
//! official Python `safetensors` package. The model is fetched (and its
//! sha256 checked) by `scripts/fetch_model.sh` into the cache on first use.

mod common;

use common::{assert_code, assert_ok, encode_gated, entry, hhtld, named, root, stdout_json};
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
    let enc = encode_gated(model(), &out, "hhtl");
    assert_code(&enc, 1);
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
    let fz = entry(&ins["totals"], "by_kind", "kind", "fisher_z")["bytes"]
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

/// The `--json` report of encoding the weights alone under `profile` with
/// `--require-gates`, after asserting that every gate passed.
fn encode_weights_gated(dir: &tempfile::TempDir, profile: &str) -> Value {
    let out = tmp(dir, &format!("{profile}.hhtld"));
    let enc = encode_gated(&weights_only(dir), &out, profile);
    assert_ok(&enc);
    let s = stdout_json(&enc);
    assert_eq!(s["gate_failures"].as_array().unwrap().len(), 0);
    s
}

#[test]
fn compact_profile_is_smaller_and_meets_every_gate() {
    let dir = tempfile::tempdir().unwrap();
    let s = encode_weights_gated(&dir, "compact");
    let argmax = entry(&s, "regimes", "regime", "argmax");
    let ratio = argmax["ratio"].as_f64().unwrap();
    assert!(ratio >= 3.8, "compact argmax ratio {ratio:.2}:1");
    let file = s["file_ratio"].as_f64().unwrap();
    assert!(file >= 4.5, "compact whole file {file:.2}:1");
}

#[test]
fn near_lossless_profile_is_about_two_to_one_and_meets_every_gate() {
    let dir = tempfile::tempdir().unwrap();
    let s = encode_weights_gated(&dir, "near-lossless");
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

/// The first `n` lines of a shipped text, written to `dir/name`.
fn head(dir: &tempfile::TempDir, text: &str, n: usize, name: &str) -> String {
    let lines: Vec<&str> = text.lines().take(n).collect();
    let path = tmp(dir, name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn calibrated_encode_with_eval_stores_checks_and_gates_the_model_figures() {
    use hhtld_writer::calibration::Calibration;
    let dir = tempfile::tempdir().unwrap();
    // Subsets keep the run short; the built-in texts are the defaults.
    let calib = head(&dir, hhtld_eval::CALIBRATION_TEXT, 150, "calib.txt");
    let eval = head(&dir, hhtld_eval::DEFAULT_TEXT, 100, "eval.txt");
    let eval_arg = format!("--eval={eval}");
    let (out, stats) = (tmp(&dir, "a.hhtld"), tmp(&dir, "stats.safetensors"));
    let enc = hhtld(&[
        "encode",
        model(),
        "-o",
        &out,
        "--calibrate",
        &calib,
        "--save-calibration",
        &stats,
        &eval_arg,
        "--require-gates",
        "--json",
    ]);
    assert_ok(&enc);
    let j = stdout_json(&enc);
    let c = &j["calibration"];
    assert_eq!(
        (c["from"].as_str(), c["sentences"].as_u64()),
        (Some("text"), Some(150))
    );
    assert_eq!(
        c["weights"], 36,
        "q/k/v, attention output, FFN in and out of 6 layers"
    );
    assert!(c["tokens"].as_u64().unwrap() > 150 * 5 && c["seconds"].as_f64().unwrap() > 0.0);
    let e = &j["eval"];
    assert_eq!(
        (e["sentences"].as_u64(), e["passed"].as_bool()),
        (Some(100), Some(true))
    );
    assert!(e["cos_mean"].as_f64().unwrap() >= 0.99, "{e}");

    // The file carries both; inspect shows them.
    let ins = stdout_json(&hhtld(&["inspect", "--json", "--verify", &out]));
    let meta = &ins["metadata"];
    assert_eq!(meta["calibration.sentences"], "150");
    assert_eq!(meta["calibration.text_sha256"], c["text_sha256"]);
    assert_eq!(meta["eval.sentences"], "100");
    for k in [
        "text_sha256",
        "cos_mean",
        "cos_p1",
        "cos_min",
        "top10_overlap",
        "spearman",
    ] {
        assert_eq!(ins["eval"][k], e[k], "{k}");
    }
    let text = String::from_utf8(hhtld(&["inspect", &out]).stdout).unwrap();
    assert!(
        text.contains("model quality (encode --eval, 100 sentences"),
        "{text}"
    );
    // The independent checker of the spec reads the amended file.
    let python = std::env::var("HHTLD_PYTHON").unwrap_or_else(|_| "python3".into());
    let check = Command::new(&python)
        .arg("-c")
        .arg(
            "import sys; sys.path.insert(0, sys.argv[1]); import check_vectors as c; \
              f = c.parse(open(sys.argv[2], 'rb').read()); assert all(c.verify(f))",
        )
        .args([root().join("spec").to_str().unwrap(), &out])
        .output()
        .unwrap();
    assert_ok(&check);

    // The statistics agree with the independent numpy forward pass.
    let theirs = tmp(&dir, "numpy.safetensors");
    let tokenizer = common::model().parent().unwrap().join("tokenizer.json");
    let py = Command::new(&python)
        .arg(root().join("scripts/calibration_stats.py"))
        .args([model(), "-o", &theirs, "--text", &calib, "--tokenizer"])
        .arg(&tokenizer)
        .output()
        .unwrap();
    assert_ok(&py);
    let (ours, theirs) = (
        Calibration::load(stats.as_ref()).unwrap(),
        Calibration::load(theirs.as_ref()).unwrap(),
    );
    assert_eq!(ours.source(), theirs.source());
    assert_eq!(
        ours.names().collect::<Vec<_>>(),
        theirs.names().collect::<Vec<_>>()
    );
    for name in ours.names() {
        let (a, b) = (ours.get(name).unwrap(), theirs.get(name).unwrap());
        let scale = b.importance().iter().fold(0f32, |m, v| m.max(*v));
        let worst = a
            .gram()
            .iter()
            .zip(b.gram())
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-4 * scale, "{name}: {worst} of {scale}");
    }

    // verify --against recomputes the figures on the named text ...
    let v = hhtld(&[
        "verify",
        &out,
        "--against",
        model(),
        "--text",
        &eval,
        "--json",
    ]);
    assert_ok(&v);
    let vj = stdout_json(&v);
    assert_eq!(
        (vj["eval"]["ok"].as_bool(), vj["failed"].as_u64()),
        (Some(true), Some(0))
    );
    // ... refuses to guess another text ...
    let other = hhtld(&["verify", &out, "--against", model()]);
    assert_eq!(other.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&other.stderr).contains("--text"));
    // ... and catches a tampered figure (CRCs recomputed: only the value lies).
    let forged = tmp(&dir, "forged.hhtld");
    hhtld_writer::amend::amend_metadata(
        out.as_ref(),
        forged.as_ref(),
        &[("eval.cos_mean".into(), "0.999999".into())],
    )
    .unwrap();
    let v = hhtld(&["verify", &forged, "--against", model(), "--text", &eval]);
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stdout).contains("eval.cos_mean: stored 0.999999"));

    // Weight-only compact misses its model target: exit 1, file written.
    let weak = tmp(&dir, "weak.hhtld");
    let o = hhtld(&[
        "encode",
        model(),
        "-o",
        &weak,
        "--profile",
        "compact",
        "--no-calibrate",
        &eval_arg,
        "--require-gates",
        "--json",
    ]);
    let w = stdout_json(&o);
    assert_eq!(
        (&w["calibration"], &w["calibration_skipped"]),
        (&Value::Null, &"--no-calibrate".into())
    );
    let (mean, p1) = (
        w["eval"]["cos_mean"].as_f64().unwrap(),
        w["eval"]["cos_p1"].as_f64().unwrap(),
    );
    assert!(
        mean < 0.95 || p1 < 0.92,
        "compact without calibration now meets its target: {w}"
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(w["eval"]["passed"], false);
    assert!(String::from_utf8_lossy(&o.stderr).contains("MISSED MODEL GATE"));
    let wins = stdout_json(&hhtld(&["inspect", "--json", &weak]));
    assert!(wins["metadata"].get("calibration.sentences").is_none());
    assert_eq!(wins["eval"]["cos_mean"], w["eval"]["cos_mean"]);
}
