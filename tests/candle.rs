//! candle loads all-MiniLM-L6-v2 from an `.hhtld` file exactly as it loads
//! `hhtld decode` of it through its own mmaped safetensors loader, and
//! `hhtld eval` measures the model's output on the real model. The model is
//! fetched by `scripts/fetch_model.sh` (HHTLD_MODEL when set).

mod common;

use common::{assert_ok, hhtld, model, root, stdout_json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor, WithDType};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::BertModel;
use hhtld_eval::{sentences, Embedder, ModelFiles, Sources, Weights, DEFAULT_TEXT};
use hhtld_reader::candle::{var_builder, HhtldBackend};
use hhtld_reader::HhtldFile;

/// MiniLM encoded with `fidelity` and its F32 decode, made once.
struct Fixture {
    _dir: tempfile::TempDir,
    hhtld: PathBuf,
    decoded: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let hhtld_path = dir.path().join("minilm.hhtld");
        let decoded = dir.path().join("minilm.decoded.safetensors");
        let m = model().to_str().unwrap();
        assert_ok(&hhtld(&["encode", m, "-o", hhtld_path.to_str().unwrap()]));
        assert_ok(&hhtld(&[
            "decode",
            hhtld_path.to_str().unwrap(),
            "-o",
            decoded.to_str().unwrap(),
            "--dtype",
            "f32",
        ]));
        Fixture {
            _dir: dir,
            hhtld: hhtld_path,
            decoded,
        }
    })
}

fn mmaped(path: &Path, dtype: DType) -> VarBuilder<'static> {
    // SAFETY: a test file nobody modifies while mapped.
    unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, &Device::Cpu) }.unwrap()
}

fn bits(t: &Tensor) -> Vec<u8> {
    fn le<T: WithDType, const N: usize>(t: &Tensor, f: fn(T) -> [u8; N]) -> Vec<u8> {
        t.to_vec1::<T>().unwrap().into_iter().flat_map(f).collect()
    }
    let t = t.flatten_all().unwrap();
    match t.dtype() {
        DType::F32 => le(&t, f32::to_le_bytes),
        DType::BF16 => le(&t, half::bf16::to_le_bytes),
        DType::F16 => le(&t, half::f16::to_le_bytes),
        d => panic!("unexpected dtype {d:?}"),
    }
}

#[test]
fn every_weight_in_f32_bf16_f16_equals_to_dtype_of_the_f32_decode() {
    let f = fixture();
    let file = HhtldFile::open(&f.hhtld).unwrap();
    let names: Vec<String> = file.view().tensors().map(|t| t.name().to_owned()).collect();
    assert!(names.len() > 100);
    let reference = mmaped(&f.decoded, DType::F32);
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let ours = var_builder(&f.hhtld, dtype, &Device::Cpu).unwrap();
        for name in &names {
            let want = reference
                .get_unchecked_dtype(name, DType::F32)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let got = ours.get(want.shape(), name).unwrap();
            assert_eq!(got.dtype(), dtype, "{name}");
            assert_eq!(got.shape(), want.shape(), "{name}");
            assert!(bits(&got) == bits(&want), "{name} as {dtype:?} differs");
        }
    }
}

#[test]
fn bert_from_hhtld_computes_exactly_what_bert_from_the_decode_computes() {
    let f = fixture();
    let files = ModelFiles::find(&Sources {
        dir: model().parent(),
        ..Sources::default()
    })
    .unwrap();
    let from_hhtld = BertModel::load(
        var_builder(&f.hhtld, DType::F32, &Device::Cpu).unwrap(),
        &files.config,
    )
    .unwrap();
    let from_st = BertModel::load(mmaped(&f.decoded, DType::F32), &files.config).unwrap();
    let text: Vec<String> = sentences(DEFAULT_TEXT).into_iter().take(40).collect();
    // Hidden states of one padded batch, bit for bit.
    let batch: Vec<&str> = text.iter().map(String::as_str).take(16).collect();
    let enc = files.tokenizer.encode_batch(batch, true).unwrap();
    let rows = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| {
        Tensor::new(enc.iter().map(f).collect::<Vec<_>>(), &Device::Cpu).unwrap()
    };
    let ids = rows(&|e| e.get_ids().to_vec());
    let types = rows(&|e| e.get_type_ids().to_vec());
    let mask = rows(&|e| e.get_attention_mask().to_vec());
    let a = from_hhtld.forward(&ids, &types, Some(&mask)).unwrap();
    let b = from_st.forward(&ids, &types, Some(&mask)).unwrap();
    assert_eq!(a.dims(), &[16, ids.dim(1).unwrap(), 384]);
    assert!(bits(&a) == bits(&b), "hidden states differ");
    // And the pooled sentence embeddings.
    let ea = Embedder {
        encoder: &from_hhtld,
        files: &files,
        batch: 8,
    }
    .embed(&text)
    .unwrap();
    let eb = Embedder {
        encoder: &from_st,
        files: &files,
        batch: 8,
    }
    .embed(&text)
    .unwrap();
    assert_eq!(ea, eb);
    // Compression did change the output (the test compares real work).
    let orig = hhtld_eval::load_bert(&Weights::original(model()).unwrap(), &files.config)
        .unwrap()
        .0;
    let eo = Embedder {
        encoder: &orig,
        files: &files,
        batch: 8,
    }
    .embed(&text)
    .unwrap();
    assert_ne!(ea, eo);
}

#[test]
fn backend_answers_names_and_reports_bad_requests_naming_the_tensor() {
    let f = fixture();
    let backend = HhtldBackend::open(&f.hhtld).unwrap();
    use candle_nn::var_builder::SimpleBackend;
    let name = "encoder.layer.0.attention.self.query.weight";
    assert!(backend.contains_tensor(name));
    assert!(!backend.contains_tensor("bert"));
    assert!(!backend.contains_tensor("encoder.layer.0"));
    let vb = backend.into_var_builder(DType::F32, &Device::Cpu);
    let e = vb.get((384, 383), name).unwrap_err().to_string();
    assert!(e.contains(name) && e.contains("shape"), "{e}");
    let e = vb
        .get((384, 384), "no.such.weight")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no.such.weight"), "{e}");
    assert_eq!(vb.get((384, 384), name).unwrap().dims(), &[384, 384]);
}

#[test]
fn encode_stores_the_model_files_and_eval_reads_them() {
    let f = fixture();
    let file = HhtldFile::open(&f.hhtld).unwrap();
    let dir = model().parent().unwrap();
    for (key, rel) in [
        ("file.config.json", "config.json"),
        ("file.tokenizer.json", "tokenizer.json"),
        ("file.modules.json", "modules.json"),
        ("file.1_Pooling/config.json", "1_Pooling/config.json"),
        (
            "file.sentence_bert_config.json",
            "sentence_bert_config.json",
        ),
    ] {
        let want = std::fs::read_to_string(dir.join(rel)).unwrap();
        assert_eq!(
            file.view().metadata_value(key).unwrap(),
            Some(want.as_str()),
            "{key}"
        );
    }

    // The file alone is enough: the original given without its side files.
    let bare = tempfile::tempdir().unwrap();
    let orig = bare.path().join("model.safetensors");
    std::fs::copy(model(), &orig).unwrap();
    let text = bare.path().join("text.txt");
    let lines: Vec<String> = sentences(DEFAULT_TEXT).into_iter().take(60).collect();
    std::fs::write(&text, lines.join("\n")).unwrap();
    let (o, h, t) = (
        orig.to_str().unwrap(),
        f.hhtld.to_str().unwrap(),
        text.to_str().unwrap(),
    );
    let out = hhtld(&["eval", o, h, "--text", t, "--json"]);
    assert_ok(&out);
    let j = stdout_json(&out);
    assert_eq!(j["sentences"], 60);
    let cos_mean = j["cos_mean"].as_f64().unwrap();
    let cos_min = j["cos_min"].as_f64().unwrap();
    assert!(cos_mean > 0.9 && cos_mean < 1.0, "{j}");
    assert!(cos_min <= j["cos_p1"].as_f64().unwrap(), "{j}");
    for k in ["top10_overlap", "spearman"] {
        let v = j[k].as_f64().unwrap();
        assert!(v > 0.5 && v <= 1.0, "{k}: {j}");
    }

    // --min-cos above the worst sentence: exit 1; below it: 0.
    let above = format!("{}", (cos_min + 1e-4).min(1.0));
    let below = format!("{}", cos_min - 1e-4);
    let gate = hhtld(&["eval", o, h, "--text", t, "--min-cos", &above]);
    assert_eq!(gate.status.code(), Some(1), "{gate:?}");
    assert!(String::from_utf8_lossy(&gate.stderr).contains("below --min-cos"));
    assert_ok(&hhtld(&["eval", o, h, "--text", t, "--min-cos", &below]));

    // An architecture eval does not know: a clear error naming it.
    let cfg = bare.path().join("config.json");
    std::fs::write(&cfg, r#"{"model_type": "llama", "hidden_size": 8}"#).unwrap();
    let bad = hhtld(&["eval", o, h, "--text", t, "--config", cfg.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("unknown architecture \"llama\""), "{err}");
}

#[test]
fn eval_reproduces_the_independent_numpy_forward_pass() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("text.txt");
    let lines: Vec<String> = sentences(DEFAULT_TEXT).into_iter().take(200).collect();
    std::fs::write(&text, lines.join("\n")).unwrap();
    let t = text.to_str().unwrap();
    let ours = hhtld(&[
        "eval",
        model().to_str().unwrap(),
        f.hhtld.to_str().unwrap(),
        "--text",
        t,
        "--json",
    ]);
    assert_ok(&ours);
    let ours = stdout_json(&ours);
    // scripts/reference_eval.py shares no code with hhtld eval: numpy, the
    // tokenizers package, its own BERT; it reads the F32 decode.
    let python = std::env::var("HHTLD_PYTHON").unwrap_or_else(|_| "python3".into());
    let tokenizer = model().parent().unwrap().join("tokenizer.json");
    let out = Command::new(&python)
        .arg(root().join("scripts/reference_eval.py"))
        .arg(model())
        .arg(&f.decoded)
        .arg("--tokenizer")
        .arg(&tokenizer)
        .args(["--text", t, "--json"])
        .output()
        .expect("the Python of scripts/venv.sh (HHTLD_PYTHON)");
    assert_ok(&out);
    let theirs = stdout_json(&out);
    assert_eq!(ours["sentences"], 200);
    assert_eq!(theirs["sentences"], 200);
    let get = |j: &serde_json::Value, k: &str| j[k].as_f64().unwrap();
    let d = (get(&ours, "cos_mean") - get(&theirs, "cos_mean")).abs();
    assert!(d <= 0.003, "cos_mean: ours {ours} reference {theirs}");
    // In practice they agree far closer than the bound (both F32).
    for k in ["cos_mean", "cos_p1", "cos_min", "spearman"] {
        let d = (get(&ours, k) - get(&theirs, k)).abs();
        assert!(d <= 1e-4, "{k}: ours {ours} reference {theirs}");
    }
    let d = (get(&ours, "top10_overlap") - get(&theirs, "top10_overlap")).abs();
    assert!(d <= 0.01, "top10_overlap: ours {ours} reference {theirs}");
}

#[test]
fn the_calibration_forward_pass_computes_what_bert_model_computes() {
    use hhtld_eval::calibrate::InstrumentedBert;
    let files = ModelFiles::find(&Sources {
        dir: model().parent(),
        ..Sources::default()
    })
    .unwrap();
    let ours = InstrumentedBert::load(mmaped(model(), DType::F32), &files.config).unwrap();
    let theirs = BertModel::load(mmaped(model(), DType::F32), &files.config).unwrap();
    // A padded batch of real sentences of different lengths.
    let text = sentences(hhtld_eval::CALIBRATION_TEXT);
    let batch: Vec<&str> = text.iter().step_by(50).map(String::as_str).collect();
    let inputs = hhtld_eval::BatchInputs::new(&files.tokenizer, &batch).unwrap();
    let a = ours
        .forward(&inputs.ids, &inputs.type_ids, &inputs.mask)
        .unwrap();
    let b = theirs
        .forward(&inputs.ids, &inputs.type_ids, Some(&inputs.mask))
        .unwrap();
    assert_eq!(a.dims(), b.dims());
    assert_eq!(a.dims()[0], 20);
    let worst = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(worst <= 1e-5, "hidden states differ by {worst}");
}
