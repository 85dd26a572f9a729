//! Calibration: statistics of the activations that enter each linear layer,
//! measured by running the original model on calibration text.
//!
//! For a weight `W` (rows = outputs, cols = inputs) the layer computes
//! `y = W x`; the error a codec adds shows in the output as
//! `(W - Q) x`, whose expected square over the calibration tokens is
//! `sum_r (w_r - q_r)ᵀ G (w_r - q_r)` with `G = mean(x xᵀ)`, the input's
//! second-moment (Gram) matrix. [`InputStats`] holds `G` for one weight;
//! its diagonal is the per-input-column importance (llama.cpp's imatrix).
//! Codecs that are given it minimise that error instead of the plain
//! squared weight error.
//!
//! A [`Calibration`] maps weight names (as in the model's safetensors) to
//! their statistics and can be saved to and loaded from a safetensors file
//! (`f32 [cols, cols]` per weight; the source in the file's metadata), so
//! statistics measured elsewhere (e.g. in PyTorch) can be used too.
//!
//! ```
//! use std::sync::Arc;
//! use hhtld_writer::calibration::{Calibration, CalibrationSource, InputStats};
//!
//! // Two input columns; the first carries four times the energy.
//! let g = InputStats::new(2, 10, vec![4.0, 0.0, 0.0, 1.0])?;
//! assert_eq!(g.importance(), vec![4.0, 1.0]);
//! let mut cal = Calibration::new(CalibrationSource {
//!     text_sha256: "0".repeat(64), sentences: 1, tokens: 10 });
//! cal.insert("layer.weight", Arc::new(g));
//! let path = std::env::temp_dir().join(format!("hhtld-cal-doc-{}.safetensors", std::process::id()));
//! cal.save(&path)?;
//! let back = Calibration::load(&path)?;
//! assert_eq!(back.get("layer.weight").unwrap().gram(), &[4.0, 0.0, 0.0, 1.0]);
//! assert_eq!(back.source().tokens, 10);
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What went wrong reading, writing or checking calibration statistics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CalibrationError {
    /// The statistics of one weight are unusable.
    #[error("calibration statistics for {name:?}: {reason}")]
    BadStats {
        /// The weight's name (empty when not yet named).
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be read or written.
    #[error("calibration file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a calibration safetensors file.
    #[error("calibration file {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The second-moment matrix `G = mean(x xᵀ)` of the inputs of one weight.
#[derive(Debug, Clone, PartialEq)]
pub struct InputStats {
    cols: usize,
    tokens: u64,
    gram: Vec<f32>,
}

impl InputStats {
    /// `gram` is `cols x cols`, row-major, averaged over `tokens` input
    /// vectors. It must be finite and symmetric with a non-negative
    /// diagonal (a second-moment matrix is positive semi-definite).
    pub fn new(cols: usize, tokens: u64, gram: Vec<f32>) -> Result<Self, CalibrationError> {
        let bad = |reason: String| CalibrationError::BadStats {
            name: String::new(),
            reason,
        };
        if cols == 0 || cols.checked_mul(cols) != Some(gram.len()) {
            return Err(bad(format!(
                "{} values do not make a {cols} x {cols} matrix",
                gram.len()
            )));
        }
        if tokens == 0 {
            return Err(bad("measured over 0 tokens".into()));
        }
        if let Some(i) = gram.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "value at ({}, {}) is not finite",
                i / cols,
                i % cols
            )));
        }
        for i in 0..cols {
            if gram[i * cols + i] < 0.0 {
                return Err(bad(format!("diagonal ({i}, {i}) is negative")));
            }
            for j in 0..i {
                let (a, b) = (gram[i * cols + j], gram[j * cols + i]);
                if (a - b).abs() > 1e-4 * (a.abs() + b.abs()) + f32::MIN_POSITIVE {
                    return Err(bad(format!("not symmetric at ({i}, {j}): {a} vs {b}")));
                }
            }
        }
        Ok(InputStats { cols, tokens, gram })
    }

    /// The number of input columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// How many input vectors were averaged.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// `G`, `cols x cols`, row-major.
    pub fn gram(&self) -> &[f32] {
        &self.gram
    }

    /// The diagonal of `G`: the mean square of each input column.
    pub fn importance(&self) -> Vec<f32> {
        (0..self.cols)
            .map(|i| self.gram[i * self.cols + i])
            .collect()
    }
}

/// Where statistics came from; stored in the encoded file's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalibrationSource {
    /// SHA-256 (hex) of the calibration text as given.
    pub text_sha256: String,
    /// How many sentences were run.
    pub sentences: usize,
    /// How many tokens they made.
    pub tokens: u64,
}

/// Input statistics per weight name.
#[derive(Debug, Clone)]
pub struct Calibration {
    source: CalibrationSource,
    stats: BTreeMap<String, Arc<InputStats>>,
}

const META_TEXT: &str = "calibration.text_sha256";
const META_SENTENCES: &str = "calibration.sentences";
const META_TOKENS: &str = "calibration.tokens";

impl Calibration {
    /// An empty calibration from `source`.
    pub fn new(source: CalibrationSource) -> Self {
        Calibration {
            source,
            stats: BTreeMap::new(),
        }
    }

    /// Where the statistics came from.
    pub fn source(&self) -> &CalibrationSource {
        &self.source
    }

    /// Sets the statistics of the weight `name` (weights that read the same
    /// input, such as q, k and v, share one `Arc`).
    pub fn insert(&mut self, name: impl Into<String>, stats: Arc<InputStats>) {
        self.stats.insert(name.into(), stats);
    }

    /// The statistics of the weight `name`, if measured.
    pub fn get(&self, name: &str) -> Option<&InputStats> {
        self.stats.get(name).map(|s| s.as_ref())
    }

    /// Weight names with statistics, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.stats.keys().map(String::as_str)
    }

    /// How many weights have statistics.
    pub fn len(&self) -> usize {
        self.stats.len()
    }

    /// Whether no weight has statistics.
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
    }

    /// Checks that every weight with statistics is in `model` and has as
    /// many input columns (its matrix view's width) as its statistics, so
    /// statistics of another model are refused rather than misapplied.
    pub fn check_model(
        &self,
        model: &hhtld_import::SafetensorsModel,
    ) -> Result<(), CalibrationError> {
        for (name, s) in &self.stats {
            let bad = |reason: String| CalibrationError::BadStats {
                name: name.clone(),
                reason,
            };
            let info = model.get(name).ok_or_else(|| {
                bad(format!(
                    "the model {} has no such weight",
                    model.path().display()
                ))
            })?;
            let (_, cols) = info.matrix_dims();
            if cols != s.cols as u64 {
                return Err(bad(format!(
                    "{} input columns, but the weight {:?} has {cols}",
                    s.cols, info.shape
                )));
            }
        }
        Ok(())
    }

    /// Metadata entries describing the calibration, for the encoded file.
    pub fn metadata(&self) -> Vec<(String, String)> {
        vec![
            (META_TEXT.into(), self.source.text_sha256.clone()),
            (META_SENTENCES.into(), self.source.sentences.to_string()),
            (META_TOKENS.into(), self.source.tokens.to_string()),
        ]
    }

    /// Writes the statistics as a safetensors file (temp file, then rename).
    pub fn save(&self, path: &Path) -> Result<(), CalibrationError> {
        let bytes: Vec<(String, Vec<u8>, usize)> = self
            .stats
            .iter()
            .map(|(name, s)| {
                let b = s.gram.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name.clone(), b, s.cols)
            })
            .collect();
        let fmt_err = |reason: String| CalibrationError::Format {
            path: path.to_owned(),
            reason,
        };
        let mut views = Vec::with_capacity(bytes.len());
        for (name, b, cols) in &bytes {
            let v = safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![*cols, *cols],
                b,
            )
            .map_err(|e| fmt_err(format!("{name}: {e}")))?;
            views.push((name.as_str(), v));
        }
        let mut meta: HashMap<String, String> = self.metadata().into_iter().collect();
        for (name, s) in &self.stats {
            meta.insert(format!("tokens.{name}"), s.tokens.to_string());
        }
        let tmp = path.with_extension("tmp");
        safetensors::serialize_to_file(views, Some(meta), &tmp)
            .map_err(|e| fmt_err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|source| CalibrationError::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads statistics written by [`Calibration::save`] (or by any tool
    /// that writes the same layout).
    pub fn load(path: &Path) -> Result<Self, CalibrationError> {
        let data = std::fs::read(path).map_err(|source| CalibrationError::Io {
            path: path.to_owned(),
            source,
        })?;
        let fmt_err = |reason: String| CalibrationError::Format {
            path: path.to_owned(),
            reason,
        };
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&data).map_err(|e| fmt_err(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let field = |key: &str| {
            meta.get(key)
                .ok_or_else(|| fmt_err(format!("metadata has no {key:?}")))
        };
        let number = |key: &str| {
            field(key)?
                .parse::<u64>()
                .map_err(|e| fmt_err(format!("metadata {key:?}: {e}")))
        };
        let source = CalibrationSource {
            text_sha256: field(META_TEXT)?.clone(),
            sentences: number(META_SENTENCES)? as usize,
            tokens: number(META_TOKENS)?,
        };
        let st =
            safetensors::SafeTensors::deserialize(&data).map_err(|e| fmt_err(e.to_string()))?;
        let mut cal = Calibration::new(source);
        for (name, view) in st.tensors() {
            let shape = view.shape();
            if view.dtype() != safetensors::Dtype::F32 || shape.len() != 2 || shape[0] != shape[1] {
                return Err(fmt_err(format!(
                    "{name}: expected f32 [cols, cols], found {:?} {shape:?}",
                    view.dtype()
                )));
            }
            let gram = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let tokens = number(&format!("tokens.{name}"))?;
            let stats = InputStats::new(shape[0], tokens, gram).map_err(|e| match e {
                CalibrationError::BadStats { reason, .. } => CalibrationError::BadStats {
                    name: name.clone(),
                    reason,
                },
                other => other,
            })?;
            cal.insert(name, Arc::new(stats));
        }
        Ok(cal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> CalibrationSource {
        CalibrationSource {
            text_sha256: "ab".repeat(32),
            sentences: 3,
            tokens: 40,
        }
    }

    #[test]
    fn rejects_a_gram_of_the_wrong_size() {
        let e = InputStats::new(3, 1, vec![1.0; 8]).unwrap_err();
        assert!(e.to_string().contains("3 x 3"), "{e}");
    }

    #[test]
    fn rejects_an_asymmetric_or_negative_or_nan_gram() {
        assert!(InputStats::new(2, 1, vec![1.0, 2.0, 0.0, 1.0])
            .unwrap_err()
            .to_string()
            .contains("not symmetric"));
        assert!(InputStats::new(2, 1, vec![-1.0, 0.0, 0.0, 1.0])
            .unwrap_err()
            .to_string()
            .contains("negative"));
        assert!(InputStats::new(2, 1, vec![1.0, f32::NAN, f32::NAN, 1.0])
            .unwrap_err()
            .to_string()
            .contains("not finite"));
        assert!(InputStats::new(1, 0, vec![1.0]).is_err());
    }

    #[test]
    fn save_then_load_keeps_every_weight_and_the_source() {
        let mut cal = Calibration::new(source());
        let shared = Arc::new(InputStats::new(2, 40, vec![2.0, 0.5, 0.5, 1.0]).unwrap());
        cal.insert("q.weight", shared.clone());
        cal.insert("k.weight", shared);
        cal.insert(
            "o.weight",
            Arc::new(InputStats::new(1, 7, vec![3.0]).unwrap()),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cal.safetensors");
        cal.save(&path).unwrap();
        let back = Calibration::load(&path).unwrap();
        assert_eq!(back.source(), &source());
        assert_eq!(
            back.names().collect::<Vec<_>>(),
            ["k.weight", "o.weight", "q.weight"]
        );
        assert_eq!(back.get("q.weight"), cal.get("q.weight"));
        assert_eq!(back.get("o.weight").unwrap().tokens(), 7);
        assert!(back.get("missing").is_none());
    }

    #[test]
    fn load_names_the_weight_with_bad_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.safetensors");
        let bytes: Vec<u8> = [1.0f32, 2.0, 0.0, 1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &bytes)
                .unwrap();
        let mut meta: HashMap<String, String> =
            Calibration::new(source()).metadata().into_iter().collect();
        meta.insert("tokens.w".into(), "4".into());
        safetensors::serialize_to_file([("w", view)], Some(meta), &path).unwrap();
        let e = Calibration::load(&path).unwrap_err();
        assert!(
            matches!(&e, CalibrationError::BadStats { name, .. } if name == "w"),
            "{e}"
        );
    }
}
