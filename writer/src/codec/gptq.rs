//! GPTQ-style error feedback across columns, from a weight's input
//! statistics ([`crate::calibration::InputStats`], `G = mean(x xᵀ)`).
//!
//! A layer's output error is `sum_r e_rᵀ G e_r` (`e_r` a row's weight
//! error). Quantising columns left to right, the error already made in a
//! block `B` of columns can be cancelled, in that metric, by moving the
//! columns not yet quantised (`R`): `W[:, R] -= E_B · U_BB⁻¹ · U_BR`, with
//! `U` the upper Cholesky factor of `H⁻¹`, `H = G + damp · mean(diag G) · I`
//! (Frantar et al., GPTQ; blocks of sub-vectors as in GPTVQ). Rows are
//! independent, so this works a chunk of rows at a time.

use rayon::prelude::*;

use super::error::CodecError;
use crate::calibration::InputStats;

/// Damping added to `G`'s diagonal, as a share of its mean: keeps `H`
/// positive definite when inputs are (nearly) collinear or dead.
pub const DAMP: f64 = 0.01;

/// The error-feedback matrices of one weight's input statistics, for
/// blocks of `block` columns.
#[derive(Debug, Clone)]
pub struct Feedback {
    n: usize,
    block: usize,
    /// `G` (undamped), `n x n`, for the weighted row-scale refit.
    gram: Vec<f32>,
    /// Per block `b` (columns `b * block .. min((b + 1) * block, n)`):
    /// `U_BB⁻¹ U_BR`, `w x (n - end)` row-major.
    mats: Vec<Vec<f32>>,
}

impl Feedback {
    /// Feedback for the statistics `stats` and blocks of `block` columns
    /// (clamped to `1..=cols`). `None` when `G` carries no signal (zero
    /// diagonal): such inputs never reach the output, and plain encoding
    /// is as good as any. A `G` that is not positive semi-definite (a
    /// corrupt statistics file) is [`CodecError::StatsNotDefinite`].
    pub fn new(stats: &InputStats, block: usize) -> Result<Option<Self>, CodecError> {
        let n = stats.cols();
        let block = block.clamp(1, n.max(1));
        let g = stats.gram();
        let mean_diag = (0..n).map(|i| f64::from(g[i * n + i])).sum::<f64>() / n as f64;
        if !(mean_diag > 0.0 && mean_diag.is_finite()) {
            return Ok(None);
        }
        let damp = DAMP * mean_diag;
        // Reversed H: its lower Cholesky factor L gives H⁻¹ = UᵀU with
        // U = P L⁻¹ P upper (P the reversal), one factorisation only.
        let mut hr = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                hr[i * n + j] = f64::from(g[(n - 1 - i) * n + (n - 1 - j)]);
            }
            hr[i * n + i] += damp;
        }
        if !cholesky(&mut hr, n) {
            return Err(CodecError::StatsNotDefinite);
        }
        // Column c of L⁻¹ is row c of `linv_t`: U[i][j] = L⁻¹[n-1-i][n-1-j].
        let linv_t = lower_inverse_t(&hr, n);
        drop(hr);
        let u = |i: usize, j: usize| linv_t[(n - 1 - j) * n + (n - 1 - i)];
        let mut mats = Vec::with_capacity(n.div_ceil(block));
        for c0 in (0..n).step_by(block) {
            let c1 = (c0 + block).min(n);
            let (w, rest) = (c1 - c0, n - c1);
            // Back substitution: U_BB M = U_BR.
            let mut m = vec![0f64; w * rest];
            for r in (0..w).rev() {
                for c in 0..rest {
                    let mut s = u(c0 + r, c1 + c);
                    for k in r + 1..w {
                        s -= u(c0 + r, c0 + k) * m[k * rest + c];
                    }
                    m[r * rest + c] = s / u(c0 + r, c0 + r);
                }
            }
            mats.push(m.into_iter().map(|v| v as f32).collect());
        }
        Ok(Some(Feedback {
            n,
            block,
            gram: g.to_vec(),
            mats,
        }))
    }

    /// Input columns.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// Columns per block.
    pub fn block(&self) -> usize {
        self.block
    }

    /// `U_BB⁻¹ U_BR` of block `b`, `w x (n - end)` row-major.
    pub(crate) fn mat(&self, b: usize) -> &[f32] {
        &self.mats[b]
    }

    /// `G a` for a row `a` of `n` values.
    pub(crate) fn gram_times(&self, a: &[f32]) -> Vec<f64> {
        self.gram
            .chunks_exact(self.n)
            .map(|g| dot(g, a, f64::from, f64::from))
            .collect()
    }
}

/// `sum a_i b_i` in f64 over four lanes (a fixed order, so it vectorises
/// and is reproducible).
#[inline]
fn dot<A: Copy, B: Copy>(a: &[A], b: &[B], fa: impl Fn(A) -> f64, fb: impl Fn(B) -> f64) -> f64 {
    let mut acc = [0f64; 4];
    let (ah, bh) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ah
        .remainder()
        .iter()
        .zip(bh.remainder())
        .map(|(&x, &y)| fa(x) * fb(y))
        .sum();
    for (x, y) in ah.zip(bh) {
        for l in 0..4 {
            acc[l] += fa(x[l]) * fb(y[l]);
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Overwrites the symmetric `a` (`n x n`) with its lower Cholesky factor,
/// row by row (the upper triangle is zeroed); false when `a` is not
/// positive definite.
fn cholesky(a: &mut [f64], n: usize) -> bool {
    for i in 0..n {
        let (done, rest) = a.split_at_mut(i * n);
        let ri = &mut rest[..n];
        for j in 0..=i {
            let rj = if j == i {
                None
            } else {
                Some(&done[j * n..j * n + j + 1])
            };
            let d = match rj {
                Some(rj) => dot(&ri[..j], &rj[..j], |x| x, |y| y),
                None => dot(&ri[..j], &ri[..j], |x| x, |y| y),
            };
            let s = ri[j] - d;
            match rj {
                None => {
                    if !(s > 0.0 && s.is_finite()) {
                        return false;
                    }
                    ri[j] = s.sqrt();
                }
                Some(rj) => ri[j] = s / rj[j],
            }
        }
        ri[i + 1..].fill(0.0);
    }
    true
}

/// The transpose of the inverse of the lower-triangular `l` (`n x n`,
/// positive diagonal): row `j` is column `j` of `L⁻¹`, computed in
/// parallel.
fn lower_inverse_t(l: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0f64; n * n];
    out.par_chunks_mut(n).enumerate().for_each(|(j, x)| {
        // x = L⁻¹ e_j; x_i = 0 above j.
        x[j] = 1.0 / l[j * n + j];
        for i in j + 1..n {
            let ri = i * n;
            let s = dot(&l[ri + j..ri + i], &x[j..i], |a| a, |b| b);
            x[i] = -s / l[ri + i];
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_give_the_inverse_of_h() {
        // A random SPD matrix: U from the reversed factorisation must
        // satisfy Uᵀ U H = I.
        let n = 7;
        let mut rng = super::super::kmeans::SplitMix64::new(3);
        let x: Vec<f64> = (0..n * 20).map(|_| rng.next_f64() - 0.5).collect();
        let mut h = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                h[i * n + j] = (0..20).map(|t| x[t * n + i] * x[t * n + j]).sum::<f64>();
            }
        }
        let mut hr = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                hr[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)];
            }
        }
        assert!(cholesky(&mut hr, n));
        let lt = lower_inverse_t(&hr, n);
        let u = |i: usize, j: usize| lt[(n - 1 - j) * n + (n - 1 - i)];
        for i in 0..n {
            for j in 0..i {
                assert_eq!(u(i, j), 0.0, "U must be upper");
            }
        }
        for i in 0..n {
            for j in 0..n {
                // (Uᵀ U H)_ij
                let v: f64 = (0..n)
                    .map(|k| (0..n).map(|m| u(m, i) * u(m, k)).sum::<f64>() * h[k * n + j])
                    .sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-9, "({i}, {j}): {v}");
            }
        }
        assert!(!cholesky(&mut [1.0, 2.0, 2.0, 1.0], 2));
    }
}
