//! Per-row reconstruction quality and the gates of the two regimes: pure
//! math (no I/O), here rather than in the writer so that the encoder, which
//! measures what it writes, and `hhtld verify --against`, which measures a
//! finished file against the original weights, use one definition.
//!
//! ```
//! use hhtld_format::quality::{row_quality, Gate, Matrix};
//! let original = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
//! let decoded = [1.0f32, 2.1, 2.9, 4.0, 5.0, 6.1];
//! let q = row_quality(&Matrix::new(&original, 2, 3)?, &decoded)?;
//! assert!(q.rho_min > 0.99 && Gate::INDEX.passes(&q));
//! # Ok::<(), hhtld_format::quality::QualityError>(())
//! ```

use rayon::prelude::*;
use thiserror::Error;

use crate::validate::Quality;
use crate::Regime;

/// A row-major f32 matrix borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    /// `n_rows * n_cols` values, row-major.
    pub data: &'a [f32],
    /// Rows.
    pub n_rows: usize,
    /// Columns.
    pub n_cols: usize,
}

impl<'a> Matrix<'a> {
    /// A matrix view; errors when `data` is not `n_rows * n_cols` long.
    pub fn new(data: &'a [f32], n_rows: usize, n_cols: usize) -> Result<Self, QualityError> {
        let m = Matrix {
            data,
            n_rows,
            n_cols,
        };
        checked_len(&m)?;
        Ok(m)
    }
}

/// Why a quality could not be measured.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QualityError {
    /// `data.len()` is not `n_rows * n_cols` (or that product overflows).
    #[error("{got} values, expected {n_rows} x {n_cols}")]
    DataLen {
        /// Declared rows.
        n_rows: usize,
        /// Declared columns.
        n_cols: usize,
        /// Values given.
        got: usize,
    },
    /// A decoded buffer of the wrong length.
    #[error("buffer of {got} values, expected {expected}")]
    BufferLen {
        /// Expected length.
        expected: usize,
        /// Given length.
        got: usize,
    },
}

/// Quality of a decoded tensor against its original, over every row.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityStats {
    /// Median of the per-row rho (mean of the two middle values when the
    /// row count is even).
    pub rho_median: f32,
    /// 5th percentile: the rhos sorted ascending, element
    /// `floor(0.05 * (n - 1))`.
    pub rho_p5: f32,
    /// Smallest per-row rho.
    pub rho_min: f32,
    /// `||X - X̂||_F / ||X||_F`, or 0 when `||X||_F = 0`.
    pub rel_fro: f32,
    /// Per-row rho, in row order.
    pub rhos: Vec<f32>,
}

/// Pearson correlation of one row with its reconstruction, computed in f64.
///
/// A constant original row (zero variance) has no correlation; it counts
/// 1.0 when the decoded row equals it exactly and 0.0 otherwise. A varying
/// original decoded as a constant row counts 0.0.
pub fn row_rho(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    if n == 0 {
        return 1.0;
    }
    let mx = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let my = y.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0f64, 0f64, 0f64);
    for (&a, &b) in x.iter().zip(y) {
        let (a, b) = (a as f64 - mx, b as f64 - my);
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    if sxx == 0.0 {
        return if x == y { 1.0 } else { 0.0 };
    }
    if syy == 0.0 {
        return 0.0;
    }
    (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0) as f32
}

/// `n_rows * n_cols`, checked against the data the matrix holds.
fn checked_len(m: &Matrix<'_>) -> Result<usize, QualityError> {
    m.n_rows
        .checked_mul(m.n_cols)
        .filter(|&e| e == m.data.len())
        .ok_or(QualityError::DataLen {
            n_rows: m.n_rows,
            n_cols: m.n_cols,
            got: m.data.len(),
        })
}

/// Per-row quality of `decoded` (row-major, same shape as `original`).
///
/// A tensor with no rows gives rho 1.0 everywhere and `rel_fro` 0: there is
/// nothing to get wrong.
pub fn row_quality(original: &Matrix<'_>, decoded: &[f32]) -> Result<QualityStats, QualityError> {
    let expected = checked_len(original)?;
    if decoded.len() != expected {
        return Err(QualityError::BufferLen {
            expected,
            got: decoded.len(),
        });
    }
    let n = original.n_cols;
    row_quality_by(original, |r, out| {
        out.copy_from_slice(&decoded[r * n..(r + 1) * n]);
        Ok(())
    })
}

/// Like [`row_quality`], with each decoded row produced on demand by
/// `decode(row, out)` into a per-thread buffer, so measuring a tensor never
/// holds a decoded copy of all of it. Rows are measured in parallel; the
/// figures do not depend on the thread count.
pub fn row_quality_by<F, E>(original: &Matrix<'_>, decode: F) -> Result<QualityStats, E>
where
    F: Fn(usize, &mut [f32]) -> Result<(), E> + Sync,
    E: From<QualityError> + Send,
{
    let mut acc = QualityAcc::default();
    acc.push(original, decode)?;
    Ok(acc.finish())
}

/// [`QualityStats`] of a tensor measured a run of rows at a time, so a
/// tensor encoded in chunks never needs all of its rows at once. Pushing
/// every row in order, in any split, gives what [`row_quality_by`] gives on
/// the whole tensor.
#[derive(Debug, Clone, Default)]
pub struct QualityAcc {
    rhos: Vec<f32>,
    err: f64,
    tot: f64,
}

impl QualityAcc {
    /// Measures the rows of `original` (the tensor's next rows), each
    /// decoded by `decode(row in original, out)`.
    pub fn push<F, E>(&mut self, original: &Matrix<'_>, decode: F) -> Result<(), E>
    where
        F: Fn(usize, &mut [f32]) -> Result<(), E> + Sync,
        E: From<QualityError> + Send,
    {
        checked_len(original)?;
        if original.n_rows == 0 {
            return Ok(());
        }
        if original.n_cols == 0 {
            self.rhos.extend(std::iter::repeat_n(1.0, original.n_rows));
            return Ok(());
        }
        let n = original.n_cols;
        let per_row: Vec<(f32, f64, f64)> = original
            .data
            .par_chunks(n)
            .enumerate()
            .map_init(
                || vec![0f32; n],
                |y, (r, x)| {
                    decode(r, y)?;
                    let err: f64 = x
                        .iter()
                        .zip(y.iter())
                        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                        .sum();
                    let tot: f64 = x.iter().map(|&a| (a as f64).powi(2)).sum();
                    Ok((row_rho(x, y), err, tot))
                },
            )
            .collect::<Result<_, E>>()?;
        self.rhos.extend(per_row.iter().map(|r| r.0));
        self.err += per_row.iter().map(|r| r.1).sum::<f64>();
        self.tot += per_row.iter().map(|r| r.2).sum::<f64>();
        Ok(())
    }

    /// The statistics over every row pushed. No rows gives rho 1.0 and
    /// `rel_fro` 0: there is nothing to get wrong.
    pub fn finish(self) -> QualityStats {
        if self.rhos.is_empty() {
            return QualityStats {
                rho_median: 1.0,
                rho_p5: 1.0,
                rho_min: 1.0,
                rel_fro: 0.0,
                rhos: Vec::new(),
            };
        }
        let mut sorted = self.rhos.clone();
        sorted.sort_by(f32::total_cmp);
        let m = sorted.len();
        let rho_median = if m % 2 == 1 {
            sorted[m / 2]
        } else {
            ((sorted[m / 2 - 1] as f64 + sorted[m / 2] as f64) / 2.0) as f32
        };
        let rho_p5 = sorted[(0.05 * (m - 1) as f64).floor() as usize];
        QualityStats {
            rho_median,
            rho_p5,
            rho_min: sorted[0],
            rel_fro: if self.tot > 0.0 {
                (self.err / self.tot).sqrt() as f32
            } else {
                0.0
            },
            rhos: self.rhos,
        }
    }
}

impl From<&QualityStats> for Quality {
    /// The four figures a file records for an encoded tensor.
    fn from(q: &QualityStats) -> Self {
        Quality {
            rho_median: q.rho_median,
            rho_p5: q.rho_p5,
            rho_min: q.rho_min,
            rel_fro: q.rel_fro,
        }
    }
}

/// A quality gate: a tensor passes when its median and 5th-percentile row
/// rho both reach these values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    /// Minimum median rho.
    pub median: f32,
    /// Minimum 5th-percentile rho.
    pub p5: f32,
}

impl Gate {
    /// Index regime (embeddings, lm_head): rows are used one by one.
    pub const INDEX: Gate = Gate {
        median: 0.98,
        p5: 0.95,
    };
    /// Argmax regime (projections).
    pub const ARGMAX: Gate = Gate {
        median: 0.95,
        p5: 0.90,
    };

    /// Whether `stats` meets both thresholds.
    pub fn passes(&self, stats: &QualityStats) -> bool {
        stats.rho_median >= self.median && stats.rho_p5 >= self.p5
    }

    /// The gate a regime must meet; `None` for passthrough.
    pub fn for_regime(regime: Regime) -> Option<Gate> {
        match regime {
            Regime::Index => Some(Gate::INDEX),
            Regime::Argmax => Some(Gate::ARGMAX),
            Regime::Passthrough => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(data: &[f32], n_rows: usize, n_cols: usize) -> Matrix<'_> {
        Matrix {
            data,
            n_rows,
            n_cols,
        }
    }

    #[test]
    fn rho_of_known_pairs() {
        assert_eq!(row_rho(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]), 1.0);
        assert_eq!(row_rho(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
        assert_eq!(row_rho(&[5.0, 5.0], &[5.0, 5.0]), 1.0);
        assert_eq!(row_rho(&[5.0, 5.0], &[5.0, 5.5]), 0.0);
        assert_eq!(row_rho(&[1.0, 2.0], &[3.0, 3.0]), 0.0);
        let r = row_rho(&[1.0, 0.0, 0.0, 0.0], &[1.0, 0.1, 0.0, 0.0]);
        assert!(r > 0.99 && r < 1.0, "{r}");
    }

    #[test]
    fn percentiles_follow_their_definitions() {
        // 21 rows: row i decoded with a perturbation growing with i.
        let n_rows = 21;
        let x: Vec<f32> = (0..n_rows * 4)
            .map(|i| [1.0, -1.0, 2.0, 0.5][i % 4])
            .collect();
        let mut y = x.clone();
        for r in 0..n_rows {
            y[r * 4] += r as f32 * 0.1;
        }
        let q = row_quality(&m(&x, n_rows, 4), &y).unwrap();
        let mut s = q.rhos.clone();
        s.sort_by(f32::total_cmp);
        assert_eq!(q.rho_median, s[10]);
        assert_eq!(q.rho_p5, s[1]); // floor(0.05 * 20) = 1
        assert_eq!(q.rho_min, s[0]);
        assert_eq!(q.rhos[0], 1.0);
        assert!(q.rho_min < q.rho_p5 && q.rho_p5 < q.rho_median);
        let err: f64 = (0..n_rows).map(|r| (r as f64 * 0.1).powi(2)).sum();
        let tot: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
        assert!((q.rel_fro as f64 - (err / tot).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn even_row_count_median_is_the_middle_mean() {
        let x = [1.0f32, 2.0, 3.0, 1.0, 2.0, 3.0];
        let y = [1.0f32, 2.0, 3.0, 1.0, 3.0, 2.0];
        let q = row_quality(&m(&x, 2, 3), &y).unwrap();
        assert_eq!(q.rho_median, ((1.0f64 + 0.5) / 2.0) as f32);
    }

    #[test]
    fn empty_and_mismatched_inputs() {
        let q = row_quality(&m(&[], 0, 7), &[]).unwrap();
        assert_eq!((q.rho_median, q.rho_p5, q.rel_fro), (1.0, 1.0, 0.0));
        assert!(q.rhos.is_empty());
        assert!(matches!(
            row_quality(&m(&[1.0, 2.0], 1, 2), &[1.0]),
            Err(QualityError::BufferLen { .. })
        ));
        assert!(matches!(
            row_quality(&m(&[1.0, 2.0], 2, 2), &[1.0, 2.0]),
            Err(QualityError::DataLen { .. })
        ));
        let zero = row_quality(&m(&[0.0, 0.0], 1, 2), &[0.0, 1.0]).unwrap();
        assert_eq!((zero.rho_median, zero.rel_fro), (0.0, 0.0));
    }

    #[test]
    fn gates() {
        let s = |median, p5| QualityStats {
            rho_median: median,
            rho_p5: p5,
            rho_min: 0.0,
            rel_fro: 0.0,
            rhos: vec![],
        };
        assert!(Gate::ARGMAX.passes(&s(0.95, 0.90)));
        assert!(!Gate::ARGMAX.passes(&s(0.949, 0.95)));
        assert!(!Gate::ARGMAX.passes(&s(0.99, 0.899)));
        assert!(!Gate::INDEX.passes(&s(0.97, 0.97)));
        assert!(Gate::INDEX.passes(&s(0.98, 0.95)));
    }
}
