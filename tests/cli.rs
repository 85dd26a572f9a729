//! The `hhtld` command on synthetic models: encode, inspect, decode and
//! verify end to end, odd shapes, empty inputs, exit codes and error lines.

mod common;

use common::{assert_code, assert_ok, encode_gated, hhtld, named, stdout_json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::Value;

/// Deterministic weights with some structure: a smooth row pattern plus a
/// per-row offset, so a codec has something real to fit.
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let noise = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            ((i % 97) as f32 * 0.013).sin() * 0.05 + noise * 0.08
        })
        .collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// An F32 tensor of `values` for [`write_model`].
fn f32_tensor<'a>(
    name: &'a str,
    shape: &[usize],
    values: &[f32],
) -> (&'a str, Dtype, Vec<usize>, Vec<u8>) {
    (name, Dtype::F32, shape.to_vec(), f32_bytes(values))
}

/// Writes a safetensors file of `(name, dtype, shape, bytes)`.
fn write_model(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

fn odd_model(dir: &Dir) -> String {
    let wide = weights(300 * 70, 1); // 70 columns: not a multiple of d = 4
    let cube = weights(40 * 8 * 16, 2); // 3-D
    let one_row = weights(4096 + 6, 3); // a single row
    let one_col = weights(5000, 4); // one column
    let ids: Vec<u8> = (0..512i64).flat_map(|i| i.to_le_bytes()).collect();
    let bias = weights(70, 5);
    write_model(
        &dir.path("in.safetensors"),
        &[
            f32_tensor("model.wide.weight", &[300, 70], &wide),
            f32_tensor("model.cube.weight", &[40, 8, 16], &cube),
            f32_tensor("model.row.weight", &[1, 4102], &one_row),
            f32_tensor("model.col.weight", &[5000, 1], &one_col),
            ("model.position_ids", Dtype::I64, vec![1, 512], ids),
            f32_tensor("model.wide.bias", &[70], &bias),
        ],
    );
    dir.s("in.safetensors")
}

#[test]
fn odd_shapes_encode_decode_and_verify_end_to_end() {
    odd_shapes_with_profile("fidelity");
}

#[test]
fn odd_shapes_work_under_the_near_lossless_profile() {
    odd_shapes_with_profile("near-lossless");
}

#[test]
fn odd_shapes_work_under_the_compact_profile() {
    odd_shapes_with_profile("compact");
}

/// Widths that are not a multiple of d, a 3-D weight, a single row and a
/// single column through encode, inspect, verify and decode.
fn odd_shapes_with_profile(profile: &str) {
    let dir = Dir::new();
    let input = odd_model(&dir);
    let out = dir.s("out.hhtld");
    let enc = hhtld(&["encode", &input, "-o", &out, "--profile", profile, "--json"]);
    assert_ok(&enc);
    let summary = stdout_json(&enc);
    let by_name = |n: &str| {
        summary["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} missing from summary"))
    };
    // Every encoded tensor meets its gate (fallbacks allowed) and says so.
    for t in summary["tensors"].as_array().unwrap() {
        if t["regime"] != "passthrough" {
            assert_eq!(t["passed"], Value::Bool(true), "{t}");
        }
    }
    assert_eq!(by_name("model.position_ids")["regime"], "passthrough");
    assert_eq!(by_name("model.wide.weight")["regime"], "argmax");
    assert_eq!(by_name("model.cube.weight")["regime"], "argmax");

    let ins = stdout_json(&hhtld(&["inspect", "--json", "--verify", &out]));
    let names: Vec<&str> = ins["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // Directory order is the model's order (by data offset in the input).
    let model = hhtld_writer::import::SafetensorsModel::open(&input).unwrap();
    let want: Vec<String> = model.tensors().map(|t| t.name).collect();
    assert_eq!(names, want);
    let cube = named(&ins, "tensors", "model.cube.weight");
    assert_eq!(cube["shape"], serde_json::json!([40, 8, 16]));
    assert!(ins["sections"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["crc_ok"] == Value::Bool(true)));

    let ver = hhtld(&["verify", &out, "--against", &input, "--json"]);
    assert_ok(&ver);
    assert_eq!(stdout_json(&ver)["failed"], 0);

    let dec = dir.s("dec.safetensors");
    let d = hhtld(&["decode", &out, "-o", &dec]);
    assert_ok(&d);
    let bytes = std::fs::read(&dec).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let orig_bytes = std::fs::read(&input).unwrap();
    let orig = safetensors::SafeTensors::deserialize(&orig_bytes).unwrap();
    assert_eq!(st.len(), orig.len());
    for (name, o) in orig.tensors() {
        let t = st.tensor(&name).unwrap();
        assert_eq!(t.shape(), o.shape(), "{name}");
        assert_eq!(t.dtype(), o.dtype(), "{name}");
        if name == "model.position_ids" || name == "model.wide.bias" {
            assert_eq!(t.data(), o.data(), "passthrough {name} must be bit-exact");
        }
    }
    // The same order of tensors in the data section as the original.
    let order = |s: &safetensors::SafeTensors<'_>| {
        let mut v: Vec<(usize, String)> = s
            .tensors()
            .into_iter()
            .map(|(n, t)| (t.data().as_ptr() as usize, n))
            .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect::<Vec<_>>()
    };
    assert_eq!(order(&st), order(&orig));

    // --dtype bf16 converts encoded tensors only.
    let dec16 = dir.s("dec16.safetensors");
    assert!(hhtld(&["decode", &out, "-o", &dec16, "--dtype", "bf16"])
        .status
        .success());
    let b16 = std::fs::read(&dec16).unwrap();
    let st16 = safetensors::SafeTensors::deserialize(&b16).unwrap();
    assert_eq!(
        st16.tensor("model.wide.weight").unwrap().dtype(),
        Dtype::BF16
    );
    assert_eq!(
        st16.tensor("model.position_ids").unwrap().dtype(),
        Dtype::I64
    );
}

#[test]
fn an_input_with_no_tensors_gives_a_valid_empty_file() {
    let dir = Dir::new();
    let input = dir.path("empty.safetensors");
    write_model(&input, &[]);
    let out = dir.s("empty.hhtld");
    let enc = hhtld(&["encode", input.to_str().unwrap(), "-o", &out]);
    assert_ok(&enc);
    let ins = stdout_json(&hhtld(&["inspect", "--json", "--verify", &out]));
    assert_eq!(ins["totals"]["tensors"], 0);
    assert!(hhtld(&["verify", &out]).status.success());
    let dec = dir.s("empty.dec.safetensors");
    assert!(hhtld(&["decode", &out, "-o", &dec]).status.success());
    let b = std::fs::read(&dec).unwrap();
    assert_eq!(safetensors::SafeTensors::deserialize(&b).unwrap().len(), 0);
}

#[test]
fn bad_files_give_one_error_line_and_status_2() {
    let dir = Dir::new();
    let junk = dir.path("junk.hhtld");
    std::fs::write(
        &junk,
        b"not an hhtld file at all, just some bytes that are long enough to pass 64",
    )
    .unwrap();
    for args in [
        vec!["inspect", junk.to_str().unwrap()],
        vec!["inspect", "--json", junk.to_str().unwrap()],
        vec!["verify", junk.to_str().unwrap()],
        vec!["decode", junk.to_str().unwrap(), "-o", "/nonexistent-dir/x"],
        vec!["inspect", "/nonexistent/file.hhtld"],
    ] {
        let o = hhtld(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("hhtld: error: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(o.stdout.is_empty());
    }
    // The magic is named in the message.
    let o = hhtld(&["inspect", junk.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("magic"),
        "{:?}",
        o
    );
}

#[test]
fn a_flipped_byte_is_reported_by_verify_and_inspect_verify() {
    let dir = Dir::new();
    let input = odd_model(&dir);
    let out = dir.s("out.hhtld");
    assert!(hhtld(&["encode", &input, "-o", &out]).status.success());
    let mut bytes = std::fs::read(&out).unwrap();
    // Flip a byte in the middle of the first section (past the 64-byte header).
    bytes[100] ^= 0x40;
    std::fs::write(&out, &bytes).unwrap();
    for args in [vec!["verify", &out], vec!["inspect", "--verify", &out]] {
        let o = hhtld(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("CRC") || err.contains("crc"), "{err}");
        assert!(err.contains("section 0"), "{err}");
    }
}

#[test]
fn require_gates_fails_when_a_gate_is_missed_and_output_still_lands() {
    let dir = Dir::new();
    // A token embedding whose rows are independent noise: a row palette of
    // 256 entries (hhtl) cannot reproduce 2000 distinct rows.
    let emb = weights(2000 * 64, 9);
    let input = dir.path("emb.safetensors");
    write_model(
        &input,
        &[f32_tensor("model.embed_tokens.weight", &[2000, 64], &emb)],
    );
    let out = dir.s("emb.hhtld");
    let o = encode_gated(input.to_str().unwrap(), &out, "hhtl");
    assert_code(&o, 1);
    let s = stdout_json(&o);
    assert_eq!(
        s["gate_failures"],
        serde_json::json!(["model.embed_tokens.weight"])
    );
    assert!(
        Path::new(&out).exists(),
        "the file is written even when gates are missed"
    );
    // verify --against agrees from scratch.
    let v = hhtld(&["verify", &out, "--against", input.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(1));
    // The same input under the default profile passes (fallbacks allowed).
    let ok = hhtld(&[
        "encode",
        input.to_str().unwrap(),
        "-o",
        &out,
        "--require-gates",
    ]);
    assert_ok(&ok);
}

#[test]
fn role_overrides_apply_and_unknown_names_are_rejected() {
    let dir = Dir::new();
    let input = odd_model(&dir);
    let out = dir.s("out.hhtld");
    let o = hhtld(&[
        "encode",
        &input,
        "-o",
        &out,
        "--role",
        "model.wide.weight=token_embedding",
        "--json",
    ]);
    assert_ok(&o);
    let s = stdout_json(&o);
    let wide = named(&s, "tensors", "model.wide.weight");
    assert_eq!(wide["role"], "token_embedding");
    assert_eq!(wide["regime"], "index");
    let bad = hhtld(&[
        "encode",
        &input,
        "-o",
        &out,
        "--role",
        "no.such.tensor=attn_q",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no.such.tensor"));
}

#[test]
fn fisher_z_on_request_adds_one_table_per_palette() {
    let dir = Dir::new();
    let input = odd_model(&dir);
    let out = dir.s("out.hhtld");
    assert!(hhtld(&["encode", &input, "-o", &out, "--fisher-z"])
        .status
        .success());
    let ins = stdout_json(&hhtld(&["inspect", "--json", &out]));
    let palettes = ins["palettes"].as_array().unwrap();
    assert!(!palettes.is_empty());
    assert!(palettes.iter().all(|p| p["fisher_z"] == Value::Bool(true)));
    assert_eq!(ins["fisher_z"].as_array().unwrap().len(), palettes.len());
    let by_kind: HashMap<String, u64> = ins["totals"]["by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["kind"].as_str().unwrap().to_string(),
                k["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    // FisherZ bytes are counted: k*k per palette.
    let want: u64 = palettes
        .iter()
        .map(|p| p["k"].as_u64().unwrap().pow(2))
        .sum();
    assert_eq!(by_kind["fisher_z"], want);
}

#[test]
fn a_sharded_model_encodes_through_its_index() {
    let dir = Dir::new();
    let a = weights(256 * 64, 11);
    let b = weights(256 * 64, 12);
    write_model(
        &dir.path("model-00001-of-00002.safetensors"),
        &[f32_tensor("layers.0.mlp.up_proj.weight", &[256, 64], &a)],
    );
    write_model(
        &dir.path("model-00002-of-00002.safetensors"),
        &[f32_tensor("layers.1.mlp.up_proj.weight", &[256, 64], &b)],
    );
    let index = dir.path("model.safetensors.index.json");
    std::fs::write(
        &index,
        r#"{"metadata": {}, "weight_map": {
            "layers.0.mlp.up_proj.weight": "model-00001-of-00002.safetensors",
            "layers.1.mlp.up_proj.weight": "model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let out = dir.s("sharded.hhtld");
    let enc = hhtld(&["encode", index.to_str().unwrap(), "-o", &out, "--json"]);
    assert_ok(&enc);
    let ins = stdout_json(&hhtld(&["inspect", "--json", &out]));
    let tensors = ins["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 2);
    // Same role and shape across shards: one group, so one set of palettes
    // shared by both tensors.
    assert!(tensors.iter().all(|t| t["role"] == "mlp_up"));
    let palettes = ins["palettes"].as_array().unwrap();
    assert!(palettes.iter().all(|p| p["shared_by"] == 2), "{palettes:?}");
    let v = hhtld(&[
        "verify",
        &out,
        "--against",
        index.to_str().unwrap(),
        "--json",
    ]);
    assert_ok(&v);
    assert_eq!(stdout_json(&v)["failed"], 0);
}

#[test]
fn inspect_leads_with_the_summary_and_shows_tables_on_request() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("spec/vectors/valid/mixed.hhtld");
    let file = file.to_str().unwrap();
    let text = |args: &[&str]| {
        let o = hhtld(&[&["inspect"], args, &[file]].concat());
        assert_ok(&o);
        String::from_utf8(o.stdout).unwrap()
    };
    let plain = text(&[]);
    let at = |t: &str, what: &str| t.find(what).unwrap_or_else(|| panic!("{what:?} in:\n{t}"));
    // Summary (totals, ratios, regimes, metadata) before the tensor table.
    assert!(plain.starts_with("hhtld 1.0 file, "), "{plain}");
    assert!(at(&plain, "encoded tensors: ") < at(&plain, "\ntensors:"));
    assert!(at(&plain, "whole file: ") < at(&plain, "\ntensors:"));
    assert!(at(&plain, "\nregimes:") < at(&plain, "\ntensors:"));
    assert!(at(&plain, "\nmetadata") < at(&plain, "\ntensors:"));
    assert!(!plain.contains("\nsections:") && !plain.contains("\npalettes:"));
    let sections = text(&["--sections"]);
    assert!(sections.contains("\nsections:") && !sections.contains("\npalettes:"));
    assert!(
        sections.starts_with(&plain),
        "the tables come after the summary"
    );
    let palettes = text(&["--palettes"]);
    assert!(palettes.contains("\npalettes:") && !palettes.contains("\nsections:"));
    let all = text(&["--all"]);
    assert!(all.contains("\nsections:") && all.contains("\npalettes:"));
    // The JSON keeps everything, metadata keys with their sizes included.
    let j = stdout_json(&hhtld(&["inspect", "--json", file]));
    assert!(j["sections"].as_array().is_some_and(|a| !a.is_empty()));
    for m in j["metadata_bytes"].as_array().unwrap() {
        let key = m["key"].as_str().unwrap();
        if key.starts_with("file.") {
            // Model files are listed by size only.
            assert!(j["metadata"].get(key).is_none(), "{key}");
        } else {
            let value = j["metadata"][key].as_str().unwrap();
            assert_eq!(m["bytes"], value.len());
        }
        assert!(at(&plain, key) < at(&plain, "\ntensors:"));
    }
}

#[test]
fn encode_and_inspect_report_the_same_figures() {
    let dir = Dir::new();
    let input = odd_model(&dir);
    let out = dir.s("out.hhtld");
    let enc = hhtld(&["encode", &input, "-o", &out, "--json"]);
    assert_ok(&enc);
    let e = stdout_json(&enc);
    let ins = stdout_json(&hhtld(&["inspect", "--json", &out]));
    let t = &ins["totals"];
    assert_eq!(e["encoded_ratio"], t["encoded_ratio"]);
    assert_eq!(e["file_ratio"], t["ratio"]);
    assert!(e["encoded_ratio"].as_f64().unwrap() > 1.0);
    // Encoded means stored as PALETTE, in both.
    let palette = ins["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["encoding"] == "palette")
        .count();
    assert_eq!(t["encoded_tensors"], palette);
    assert_eq!(e["size"]["encoded"]["tensors"], palette);
    for (er, ir) in e["regimes"]
        .as_array()
        .unwrap()
        .iter()
        .zip(t["by_regime"].as_array().unwrap())
    {
        assert_eq!(er["regime"], ir["regime"]);
        assert_eq!(er["ratio"], ir["ratio"]);
        assert_eq!(er["encoded"], ir["encoded"]);
        assert_eq!(er["worst_rho_median"], ir["worst"]["rho_median"]);
    }
}

#[test]
fn calibration_stats_are_loaded_checked_against_the_model_and_recorded() {
    use hhtld_writer::calibration::{Calibration, CalibrationSource, InputStats};
    use std::sync::Arc;
    let dir = Dir::new();
    let input = odd_model(&dir);
    let stats_for = |cols: usize| {
        let mut cal = Calibration::new(CalibrationSource {
            text_sha256: "cd".repeat(32),
            sentences: 5,
            tokens: 77,
        });
        let diag: Vec<f32> = (0..cols * cols)
            .map(|i| {
                if i % (cols + 1) == 0 {
                    1.0 + (i % 7) as f32
                } else {
                    0.0
                }
            })
            .collect();
        cal.insert(
            "model.wide.weight",
            Arc::new(InputStats::new(cols, 77, diag).unwrap()),
        );
        cal
    };
    let encode_with = |stats: &str, cols: usize, out: &str| {
        let path = dir.path(stats);
        stats_for(cols).save(&path).unwrap();
        let args = ["encode", &input, "-o", out, "--calibration-stats"];
        hhtld(&[&args[..], &[path.to_str().unwrap()]].concat())
    };
    let out = dir.s("out.hhtld");
    assert_ok(&encode_with("good.safetensors", 70, &out));
    let ins = stdout_json(&hhtld(&["inspect", "--json", &out]));
    assert_eq!(ins["metadata"]["calibration.text_sha256"], "cd".repeat(32));
    assert_eq!(ins["metadata"]["calibration.sentences"], "5");
    assert_eq!(ins["metadata"]["calibration.tokens"], "77");
    assert_ok(&hhtld(&["verify", &out, "--against", &input]));

    // Statistics of another shape are refused before anything is written.
    let other = dir.s("other.hhtld");
    let e = encode_with("bad.safetensors", 64, &other);
    assert_eq!(e.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&e.stderr);
    assert!(
        msg.contains("model.wide.weight") && msg.contains("64"),
        "{msg}"
    );
    assert!(!Path::new(&other).exists());
}

#[test]
fn without_a_model_eval_can_run_encode_says_so_and_encodes_weight_only() {
    let dir = Dir::new();
    let input = odd_model(&dir);
    let out = dir.s("out.hhtld");
    let json_of = |extra: &[&str]| {
        let o = hhtld(&[&["encode", &input, "-o", &out, "--json"], extra].concat());
        assert_ok(&o);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        (stdout_json(&o), err)
    };
    // No config.json beside the input.
    let (j, err) = json_of(&[]);
    assert_eq!(j["calibration"], Value::Null);
    let reason = j["calibration_skipped"].as_str().unwrap();
    assert!(
        reason.contains("no config.json beside the weights"),
        "{reason}"
    );
    // Only flags encode has are suggested (eval's --config is not one).
    assert!(
        reason.contains("--calibration-stats") && !reason.contains("--config"),
        "{reason}"
    );
    assert!(
        err.contains("not calibrating") && err.contains("weights alone"),
        "{err}"
    );
    let ins = stdout_json(&hhtld(&["inspect", "--json", &out]));
    assert!(ins["metadata"].get("calibration.text_sha256").is_none());
    let (j, _) = json_of(&["--no-calibrate"]);
    assert_eq!(j["calibration_skipped"], "--no-calibrate");
    // --eval cannot run without config.json: refused before encoding.
    let o = hhtld(&["encode", &input, "-o", &dir.s("e.hhtld"), "--eval"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--eval: no config.json beside the weights") && !err.contains("encoded "),
        "{err}"
    );
    assert!(!Path::new(&dir.s("e.hhtld")).exists());

    // An architecture eval does not run.
    std::fs::write(dir.path("config.json"), r#"{"model_type": "llama"}"#).unwrap();
    std::fs::write(dir.path("tokenizer.json"), "{}").unwrap();
    let (j, _) = json_of(&[]);
    let reason = j["calibration_skipped"].as_str().unwrap();
    assert!(
        reason.contains("unknown architecture \"llama\""),
        "{reason}"
    );

    // Asked for explicitly, it is an error, and nothing is written.
    let text = dir.path("calib.txt");
    std::fs::write(&text, "One sentence.\nAnother one.\n").unwrap();
    let fresh = dir.s("fresh.hhtld");
    for extra in [
        &["--calibrate", text.to_str().unwrap()][..],
        &["--save-calibration", &dir.s("stats.safetensors")],
        &["--eval"],
    ] {
        let o = hhtld(&[&["encode", &input, "-o", &fresh], extra].concat());
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("llama"), "{extra:?}: {err}");
        assert!(!Path::new(&fresh).exists(), "{extra:?}");
        // Refused before any tensor is encoded, not after.
        assert!(!err.contains("encoded "), "{extra:?}: {err}");
    }
    // No temporary file was left behind either.
    let names: Vec<String> = std::fs::read_dir(dir.0.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

    // A calibration text that is evaluation text is refused.
    let eval_line = hhtld_eval::sentences(hhtld_eval::DEFAULT_TEXT)[3].clone();
    std::fs::write(&text, format!("Fine.\n{eval_line}\n")).unwrap();
    let o = hhtld(&[
        "encode",
        &input,
        "-o",
        &fresh,
        "--calibrate",
        text.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shares 1 sentence"));
}
