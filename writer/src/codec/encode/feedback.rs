//! GPTQ-style error-feedback assignment and the row-scale refit (plain or
//! `G`-weighted) that both encoding paths end with; the feedback matrices
//! themselves are in [`crate::codec::gptq`].

use half::f16;
use hhtld_format::decode::n_sub;
use rayon::prelude::*;

use super::{GroupFit, Prepared};
use crate::calibration::InputStats;
use crate::codec::error::CodecError;
use crate::codec::gptq::Feedback;
use crate::codec::kmeans::Searcher;

impl GroupFit {
    /// Stage codes of every row of `p` and the kernel's running sum of
    /// them, a block of columns at a time with the block's error fed back
    /// into the later columns (see [`crate::codec::gptq`]).
    pub(super) fn assign_feedback(&self, p: &Prepared, fb: &Feedback) -> (Vec<Vec<u8>>, Vec<f32>) {
        let n = self.n_cols;
        let total = p.scales.len();
        let searchers: Vec<Searcher> = self
            .norm
            .iter()
            .zip(&self.palettes)
            .map(|(pal, pd)| Searcher::new(pal, pd.d))
            .collect();
        let ns: Vec<usize> = self.palettes.iter().map(|pd| n_sub(n, pd.d)).collect();
        let per_row: usize = ns.iter().sum();
        let mut acc = vec![0f32; total * n];
        let mut flat = vec![0u8; total * per_row];
        let block = fb.block();
        acc.par_chunks_mut(n)
            .zip(flat.par_chunks_mut(per_row.max(1)))
            .zip(p.target.par_chunks(n))
            .for_each(|((a, codes), t0)| {
                let mut t = t0.to_vec();
                let mut pt = Vec::new();
                let (mut code, mut dist) = ([0u8], [0f32]);
                for (b, c0) in (0..n).step_by(block).enumerate() {
                    let c1 = (c0 + block).min(n);
                    let mut off = 0;
                    for ((srch, pd), (pal, &nsub)) in searchers
                        .iter()
                        .zip(&self.palettes)
                        .zip(self.norm.iter().zip(&ns))
                    {
                        let d = pd.d;
                        for j in c0 / d..c1.div_ceil(d) {
                            let (lo, hi) = (j * d, (j * d + d).min(n));
                            // The residual, zero-padded like `gather`.
                            pt.clear();
                            pt.resize(d, 0.0);
                            for (o, c) in pt.iter_mut().zip(lo..hi) {
                                *o = t[c] - a[c];
                            }
                            srch.assign_chunk(&pt, None, &mut code, &mut dist);
                            codes[off + j] = code[0];
                            let e = &pal[code[0] as usize * d..code[0] as usize * d + d];
                            for (av, &v) in a[lo..hi].iter_mut().zip(e) {
                                *av += v;
                            }
                        }
                        off += nsub;
                    }
                    let rest = n - c1;
                    if rest == 0 {
                        continue;
                    }
                    let m = fb.mat(b);
                    let (head, tail) = t.split_at_mut(c1);
                    for (r, row) in m.chunks_exact(rest).enumerate() {
                        let e = head[c0 + r] - a[c0 + r];
                        if e != 0.0 {
                            for (tv, &mv) in tail.iter_mut().zip(row) {
                                *tv -= e * mv;
                            }
                        }
                    }
                }
            });
        let mut codes: Vec<Vec<u8>> = ns.iter().map(|&k| Vec::with_capacity(total * k)).collect();
        for row in flat.chunks_exact(per_row.max(1)).take(total) {
            let mut off = 0;
            for (c, &k) in codes.iter_mut().zip(&ns) {
                c.extend_from_slice(&row[off..off + k]);
                off += k;
            }
        }
        (codes, acc)
    }

    /// Row scales refitted by least squares to the decoded rows where that
    /// lowers a row's error: the plain squared error, or with `fb` the
    /// `G`-weighted error `(x - s a)ᵀ G (x - s a)`.
    pub(super) fn refit_scales(
        &self,
        p: &Prepared,
        acc: &[f32],
        fb: Option<&Feedback>,
    ) -> Vec<f32> {
        let n = self.n_cols;
        let mut scales = p.scales.clone();
        if self.spec.row_scale {
            scales
                .par_iter_mut()
                .zip(acc.par_chunks(n))
                .zip(p.xn.par_chunks(n))
                .for_each(|((s, a), x)| match fb {
                    None => {
                        let num: f64 = x.iter().zip(a).map(|(&p, &q)| p as f64 * q as f64).sum();
                        let den: f64 = a.iter().map(|&q| (q as f64).powi(2)).sum();
                        if den > 0.0 {
                            let cand = f16_scale(num / den);
                            if scaled_err(x, a, cand) < scaled_err(x, a, *s) {
                                *s = cand;
                            }
                        }
                    }
                    Some(fb) => {
                        let ga = fb.gram_times(a);
                        let num: f64 = x.iter().zip(&ga).map(|(&xv, &g)| f64::from(xv) * g).sum();
                        let den: f64 = a.iter().zip(&ga).map(|(&av, &g)| f64::from(av) * g).sum();
                        // The error relative to xᵀGx.
                        let err = |s: f32| f64::from(s) * (f64::from(s) * den - 2.0 * num);
                        if den > 0.0 && err(f16_scale(num / den)) < err(*s) {
                            *s = f16_scale(num / den);
                        }
                    }
                });
        }
        scales
    }

    /// Error feedback for a member of this group whose inputs have the
    /// statistics `stats` (for [`GroupFit::encode_with`]): blocks of the
    /// least common multiple of the stages' entry widths (at most the row),
    /// so every block holds whole sub-vectors of every stage. `None` when
    /// the statistics carry no signal.
    pub fn feedback(&self, stats: &InputStats) -> Result<Option<Feedback>, CodecError> {
        if stats.cols() != self.n_cols {
            return Err(CodecError::StatsWidth {
                expected: self.n_cols,
                got: stats.cols(),
            });
        }
        let block = self
            .palettes
            .iter()
            .try_fold(1usize, |a, p| lcm(a, p.d).filter(|&l| l <= self.n_cols))
            .unwrap_or(self.n_cols);
        Feedback::new(stats, block)
    }
}

/// The least common multiple of `a` and `b`, `None` on overflow.
fn lcm(a: usize, b: usize) -> Option<usize> {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let g = gcd(a, b).max(1);
    (a / g).checked_mul(b)
}

/// `v` as a stored f16 row scale: overflow clamps to the largest f16, and a
/// non-zero value never rounds to zero (that would erase its row).
pub(super) fn f16_scale(v: f64) -> f32 {
    let h = f16::from_f64(v);
    let h = if h.is_infinite() {
        if v > 0.0 {
            f16::MAX
        } else {
            f16::MIN
        }
    } else if h.to_f32() == 0.0 && v != 0.0 {
        let tiny = f16::from_bits(1);
        if v > 0.0 {
            tiny
        } else {
            -tiny
        }
    } else {
        h
    };
    h.to_f32()
}

/// Squared error of `x` against `a * s` as the kernel computes it.
fn scaled_err(x: &[f32], a: &[f32], s: f32) -> f64 {
    x.iter()
        .zip(a)
        .map(|(&xv, &av)| (xv as f64 - (av * s) as f64).powi(2))
        .sum()
}
