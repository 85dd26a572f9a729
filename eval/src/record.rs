//! Evaluation figures stored in an hhtld file's metadata (`encode --eval`),
//! read back by `inspect` and recomputed by `verify --against`.
//!
//! Keys (values are decimal text; floats in Rust's shortest round-trip
//! form, so a stored figure reads back exactly):
//!
//! | key | value |
//! |---|---|
//! | `eval.text_sha256` | SHA-256 (hex) of the evaluation text as given |
//! | `eval.sentences` | sentences evaluated |
//! | `eval.cos_mean`, `eval.cos_p1`, `eval.cos_min` | cosine to the original ([`Metrics`]) |
//! | `eval.top10_overlap`, `eval.spearman` | neighbour overlap, rank correlation |
//!
//! ```
//! use hhtld_eval::record::EvalRecord;
//! use hhtld_eval::Metrics;
//! let m = Metrics { sentences: 3, cos_mean: 0.99, cos_p1: 0.98, cos_min: 0.97,
//!                   top10_overlap: 1.0, spearman: 0.95 };
//! let r = EvalRecord { text_sha256: hhtld_eval::text_sha256("a\nb\nc\n"), metrics: m };
//! let entries = r.metadata();
//! let back = EvalRecord::from_entries(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
//! assert_eq!(back, Some(r));
//! # Ok::<(), hhtld_eval::EvalError>(())
//! ```

use crate::{EvalError, Metrics, Result};

/// Prefix of every key of this record.
pub const EVAL_PREFIX: &str = "eval.";
/// Key of the evaluation text's SHA-256.
pub const KEY_TEXT_SHA256: &str = "eval.text_sha256";
/// Key of the sentence count.
pub const KEY_SENTENCES: &str = "eval.sentences";

/// A figure: its key, how to read it from [`Metrics`], and how far a
/// recomputation may differ (thread counts reorder float sums; the overlap
/// moves in steps of `0.1 / sentences` when a near-tie neighbour flips).
type Figure = (&'static str, fn(&Metrics) -> f64, f64);

/// The float figures, in the order they are shown.
const FIGURES: [Figure; 5] = [
    ("eval.cos_mean", |m| m.cos_mean, 1e-4),
    ("eval.cos_p1", |m| m.cos_p1, 1e-4),
    ("eval.cos_min", |m| m.cos_min, 1e-4),
    ("eval.top10_overlap", |m| m.top10_overlap, 2e-3),
    ("eval.spearman", |m| m.spearman, 1e-4),
];

/// What `hhtld eval` measured for a file, on which text.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRecord {
    /// SHA-256 (hex) of the evaluation text.
    pub text_sha256: String,
    /// The figures (`metrics.sentences` is the sentence count).
    pub metrics: Metrics,
}

impl EvalRecord {
    /// The metadata entries, keys sorted.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let mut out = vec![
            (KEY_TEXT_SHA256.to_owned(), self.text_sha256.clone()),
            (KEY_SENTENCES.to_owned(), self.metrics.sentences.to_string()),
        ];
        out.extend(
            FIGURES
                .iter()
                .map(|(k, f, _)| ((*k).to_owned(), f(&self.metrics).to_string())),
        );
        out.sort();
        out
    }

    /// Reads the record from a file's metadata (only the `eval.*` values
    /// are read, so a large stored model file is not scanned).
    pub fn from_view(view: &hhtld_reader::Hhtld<'_>) -> Result<Option<EvalRecord>> {
        let mut found = Vec::new();
        for (k, v) in view.metadata_raw() {
            if k.starts_with(EVAL_PREFIX) {
                let v = core::str::from_utf8(v).map_err(|_| bad(k, "not UTF-8"))?;
                found.push((k, v));
            }
        }
        EvalRecord::from_entries(found)
    }

    /// Reads the record from metadata entries: `Ok(None)` when no `eval.*`
    /// key is present; an error naming the key when some are but one is
    /// missing or does not parse (a damaged or hand-edited record).
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<EvalRecord>> {
        let found: Vec<(&str, &str)> = entries
            .into_iter()
            .filter(|(k, _)| k.starts_with(EVAL_PREFIX))
            .collect();
        if found.is_empty() {
            return Ok(None);
        }
        let get = |key: &str| {
            found
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .ok_or_else(|| bad(key, "missing"))
        };
        let float = |key: &str| -> Result<f64> {
            let v = get(key)?;
            v.parse::<f64>()
                .map_err(|e| bad(key, &format!("{v:?}: {e}")))
        };
        let text_sha256 = get(KEY_TEXT_SHA256)?;
        if text_sha256.len() != 64 || !text_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(KEY_TEXT_SHA256, "not a hex SHA-256"));
        }
        let sentences = get(KEY_SENTENCES)?;
        let sentences = sentences
            .parse::<usize>()
            .map_err(|e| bad(KEY_SENTENCES, &format!("{sentences:?}: {e}")))?;
        let [cos_mean, cos_p1, cos_min, top10_overlap, spearman] = [
            float(FIGURES[0].0)?,
            float(FIGURES[1].0)?,
            float(FIGURES[2].0)?,
            float(FIGURES[3].0)?,
            float(FIGURES[4].0)?,
        ];
        Ok(Some(EvalRecord {
            text_sha256: text_sha256.to_owned(),
            metrics: Metrics {
                sentences,
                cos_mean,
                cos_p1,
                cos_min,
                top10_overlap,
                spearman,
            },
        }))
    }

    /// The figures that differ from `other`'s by more than their tolerance
    /// (absolute: 1e-4 for the cosines and Spearman, 2e-3 for the top-10
    /// overlap), as `(key, self, other)`; a different sentence count is
    /// reported as well.
    pub fn differences(&self, other: &Metrics) -> Vec<(&'static str, f64, f64)> {
        let mut out = Vec::new();
        if self.metrics.sentences != other.sentences {
            out.push((
                KEY_SENTENCES,
                self.metrics.sentences as f64,
                other.sentences as f64,
            ));
        }
        for (k, f, tolerance) in FIGURES {
            let (a, b) = (f(&self.metrics), f(other));
            // NaN on either side is a difference too.
            if (a - b).abs() > tolerance || a.is_nan() != b.is_nan() {
                out.push((k, a, b));
            }
        }
        out
    }
}

fn bad(key: &str, reason: &str) -> EvalError {
    EvalError::Json {
        what: format!("metadata {key}"),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> EvalRecord {
        EvalRecord {
            text_sha256: "0f".repeat(32),
            metrics: Metrics {
                sentences: 600,
                cos_mean: 0.991_234_567_890_123,
                cos_p1: 0.98,
                cos_min: 0.951,
                top10_overlap: 0.9,
                spearman: 0.97,
            },
        }
    }

    #[test]
    fn entries_round_trip_exactly_and_are_sorted() {
        let r = record();
        let e = r.metadata();
        assert!(e.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(e.len(), 7);
        let back = EvalRecord::from_entries(e.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(back.unwrap(), Some(r));
        assert_eq!(EvalRecord::from_entries([("other", "1")]).unwrap(), None);
    }

    #[test]
    fn a_missing_or_bad_figure_names_its_key() {
        let e = record().metadata();
        let without: Vec<(&str, &str)> = e
            .iter()
            .filter(|(k, _)| k != "eval.cos_p1")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let err = EvalRecord::from_entries(without).unwrap_err().to_string();
        assert!(
            err.contains("eval.cos_p1") && err.contains("missing"),
            "{err}"
        );
        let garbled = e.iter().map(|(k, v)| {
            let v = if k == "eval.spearman" { "high" } else { v };
            (k.as_str(), v)
        });
        let err = EvalRecord::from_entries(garbled).unwrap_err().to_string();
        assert!(err.contains("eval.spearman"), "{err}");
    }

    #[test]
    fn differences_beyond_the_tolerance_are_listed() {
        let r = record();
        let mut m = r.metrics;
        m.cos_mean += 5e-5;
        m.top10_overlap -= 1e-3;
        assert!(r.differences(&m).is_empty());
        m.cos_mean += 1e-3;
        m.spearman = f64::NAN;
        m.sentences = 599;
        let d: Vec<&str> = r.differences(&m).iter().map(|d| d.0).collect();
        assert_eq!(d, ["eval.sentences", "eval.cos_mean", "eval.spearman"]);
    }
}
