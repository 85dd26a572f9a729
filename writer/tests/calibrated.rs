//! Encoding with input statistics through the pipeline: odd shapes (widths
//! not a multiple of d, 3-D weights, one column), tensors without
//! statistics beside ones with, and statistics of the wrong width.

use std::path::Path;
use std::sync::Arc;

use hhtld_reader::HhtldFile;
use hhtld_writer::calibration::{Calibration, CalibrationSource, InputStats};
use hhtld_writer::codec::CodecError;
use hhtld_writer::import::SafetensorsModel;
use hhtld_writer::pipeline::{encode_model, EncodeError, EncodeOptions, Profile};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// Deterministic weight-like values in (-0.05, 0.05).
fn weights(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (((i as f64 + 0.5) * 12.9898 + seed as f64 * 78.233).sin() * 43758.5453).fract() as f32
                * 0.05
        })
        .collect()
}

/// (name, shape, values) of the test model.
fn tensors() -> Vec<(&'static str, Vec<usize>, Vec<f32>)> {
    vec![
        // 70 columns: not a multiple of any entry width.
        (
            "model.layers.0.mlp.up_proj.weight",
            vec![64, 70],
            weights(64 * 70, 1),
        ),
        ("model.cube.weight", vec![40, 8, 16], weights(40 * 128, 2)),
        ("model.col.weight", vec![5000, 1], weights(5000, 3)),
        ("model.row.weight", vec![1, 4102], weights(4102, 4)),
    ]
}

/// A temporary directory holding the test model, and the model opened.
fn test_model() -> (tempfile::TempDir, SafetensorsModel) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input);
    let model = SafetensorsModel::open(&input).unwrap();
    (dir, model)
}

fn write_model(path: &Path) {
    let t = tensors();
    let bytes: Vec<Vec<u8>> = t
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(&str, TensorView<'_>)> = t
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (
                *name,
                TensorView::new(Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// Correlated inputs of `n` columns with unequal energy.
fn stats(n: usize, seed: u64) -> Arc<InputStats> {
    let tokens = 64;
    let f = n / 4 + 1;
    let mix = weights(f * n, seed);
    let z = weights(tokens * f, seed + 100);
    let mut g = vec![0f64; n * n];
    for t in 0..tokens {
        let x: Vec<f64> = (0..n)
            .map(|j| {
                let v: f64 = (0..f)
                    .map(|i| f64::from(z[t * f + i] * mix[i * n + j]))
                    .sum();
                v * (1.0 + (j % 5) as f64)
            })
            .collect();
        for i in 0..n {
            for j in 0..n {
                g[i * n + j] += x[i] * x[j] / tokens as f64;
            }
        }
    }
    let g = g.iter().map(|&v| v as f32).collect();
    Arc::new(InputStats::new(n, tokens as u64, g).unwrap())
}

fn calibration(with: &[(&str, Arc<InputStats>)]) -> Arc<Calibration> {
    let mut cal = Calibration::new(CalibrationSource {
        text_sha256: "0".repeat(64),
        sentences: 1,
        tokens: 64,
    });
    for (name, s) in with {
        cal.insert(*name, s.clone());
    }
    Arc::new(cal)
}

fn encode(
    model: &SafetensorsModel,
    out: &Path,
    cal: Option<Arc<Calibration>>,
) -> Result<(), EncodeError> {
    let mut opts = EncodeOptions::new(Profile::Compact);
    opts.calibration = cal;
    encode_model(model, out, &opts, &|_| {}).map(|_| ())
}

fn decoded(path: &Path, name: &str) -> Vec<f32> {
    HhtldFile::open(path)
        .unwrap()
        .tensor_by_name(name)
        .unwrap()
        .decode()
        .unwrap()
}

#[test]
fn odd_shapes_encode_with_statistics_and_tensors_without_are_unchanged() {
    let (dir, model) = test_model();
    let plain = dir.path().join("plain.hhtld");
    encode(&model, &plain, None).unwrap();
    let cal = calibration(&[
        ("model.layers.0.mlp.up_proj.weight", stats(70, 5)),
        ("model.cube.weight", stats(128, 6)),
        ("model.col.weight", stats(1, 7)),
    ]);
    let fed = dir.path().join("fed.hhtld");
    encode(&model, &fed, Some(cal)).unwrap();
    for (name, _, want) in tensors() {
        let (p, f) = (decoded(&plain, name), decoded(&fed, name));
        assert_eq!(f.len(), want.len(), "{name}");
        assert!(f.iter().all(|v| v.is_finite()), "{name}");
        if name == "model.row.weight" {
            // No statistics: exactly what plain encoding gives.
            assert_eq!(p, f);
        }
        let rel = |q: &[f32]| {
            let e: f64 = want
                .iter()
                .zip(q)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum();
            let s: f64 = want.iter().map(|a| f64::from(*a).powi(2)).sum();
            (e / s).sqrt()
        };
        // Feedback trades some plain weight error for output error, within
        // bounds: still a close reconstruction.
        assert!(rel(&f) < 0.35, "{name}: relative error {}", rel(&f));
    }
    // The codes changed where there were statistics.
    assert_ne!(
        decoded(&plain, "model.cube.weight"),
        decoded(&fed, "model.cube.weight")
    );
}

#[test]
fn statistics_of_the_wrong_width_name_the_tensor() {
    let (dir, model) = test_model();
    // The cube's rows are 8 x 16 = 128 wide, not 16.
    let cal = calibration(&[("model.cube.weight", stats(16, 1))]);
    let out = dir.path().join("bad.hhtld");
    let e = encode(&model, &out, Some(cal)).unwrap_err();
    match &e {
        EncodeError::Codec { tensor, source } => {
            assert_eq!(tensor, "model.cube.weight");
            assert_eq!(
                *source,
                CodecError::StatsWidth {
                    expected: 128,
                    got: 16
                }
            );
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(e.to_string().contains("model.cube.weight"), "{e}");
    assert!(!out.exists(), "no output file after a failed encode");
}
