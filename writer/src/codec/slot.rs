//! SlotL: an 8-dimensional residual on a shared orthonormal basis.
//!
//! The basis is the top right singular vectors of the group's residual
//! matrix `R` (rows = all rows of all tensors), found from the Gram matrix
//! `C = R^T R` by block subspace iteration and a Rayleigh-Ritz step. All
//! reductions run in a fixed order, so the basis is deterministic.

// Small dense linear algebra reads best with explicit indices.
#![allow(clippy::needless_range_loop)]

use hhtld_format::limits::SLOT_L_DIMS;
use rayon::prelude::*;

use super::kmeans::SplitMix64;

/// Gram rows computed per parallel task (keeps a task's block in cache).
const GRAM_BLOCK: usize = 32;
/// Data rows accumulated in f32 before flushing into f64.
const GRAM_FLUSH: usize = 256;
/// Block width of the subspace iteration (oversampled past 8 so the top 8
/// converge despite a flat spectrum).
const OVERSAMPLE: usize = 16;
/// Subspace iterations.
const ITERS: usize = 40;

/// `C = R^T R` (`n x n`, f64, symmetric) of `r` (`rows x n`, row-major).
fn gram(r: &[f32], n: usize) -> Vec<f64> {
    let mut c = vec![0f64; n * n];
    c.par_chunks_mut(GRAM_BLOCK * n)
        .enumerate()
        .for_each(|(bi, cblk)| {
            let a0 = bi * GRAM_BLOCK;
            let rows = cblk.len() / n;
            let mut acc = vec![0f32; rows * n];
            for chunk in r.chunks(GRAM_FLUSH * n) {
                for x in chunk.chunks_exact(n) {
                    for (ai, arow) in acc.chunks_exact_mut(n).enumerate() {
                        let xa = x[a0 + ai];
                        if xa == 0.0 {
                            continue;
                        }
                        // Only b >= a0 is needed; the rest comes by symmetry.
                        for (o, &xb) in arow[a0..].iter_mut().zip(&x[a0..]) {
                            *o += xa * xb;
                        }
                    }
                }
                for (o, a) in cblk.iter_mut().zip(acc.iter_mut()) {
                    *o += *a as f64;
                    *a = 0.0;
                }
            }
        });
    for a in 0..n {
        for b in 0..a {
            c[a * n + b] = c[b * n + a];
        }
    }
    c
}

/// Orthonormalises the `p` vectors of length `n` in `q` (vector-major) by
/// modified Gram-Schmidt, twice for accuracy. Vectors that collapse (the
/// matrix has lower rank) become zero.
fn orthonormalise(q: &mut [f64], n: usize) {
    let p = q.len() / n;
    for i in 0..p {
        let orig: f64 = q[i * n..i * n + n]
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt();
        for _ in 0..2 {
            for j in 0..i {
                let (head, tail) = q.split_at_mut(i * n);
                let qj = &head[j * n..j * n + n];
                let qi = &mut tail[..n];
                let dot: f64 = qi.iter().zip(qj).map(|(a, b)| a * b).sum();
                for (a, b) in qi.iter_mut().zip(qj) {
                    *a -= dot * b;
                }
            }
        }
        let qi = &mut q[i * n..i * n + n];
        let norm: f64 = qi.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 1e-10 * orig && norm > 0.0 {
            qi.iter_mut().for_each(|v| *v /= norm);
        } else {
            qi.fill(0.0);
        }
    }
}

/// `y_i = C q_i` for every vector of `q`.
fn mul(c: &[f64], q: &[f64], n: usize) -> Vec<f64> {
    let p = q.len() / n;
    let mut y = vec![0f64; p * n];
    // Row a of C against every q_i; parallel over a (each writes its own
    // outputs), so there is no reduction to order.
    let rows: Vec<Vec<f64>> = c
        .par_chunks(n)
        .map(|crow| {
            (0..p)
                .map(|i| {
                    crow.iter()
                        .zip(&q[i * n..i * n + n])
                        .map(|(a, b)| a * b)
                        .sum()
                })
                .collect()
        })
        .collect();
    for (a, row) in rows.iter().enumerate() {
        for i in 0..p {
            y[i * n + a] = row[i];
        }
    }
    y
}

/// Eigen-decomposition of a symmetric `p x p` matrix by cyclic Jacobi.
/// Returns eigenvalues and eigenvectors (column `j` of the row-major `v`).
fn jacobi(mut a: Vec<f64>, p: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; p * p];
    for i in 0..p {
        v[i * p + i] = 1.0;
    }
    for _sweep in 0..100 {
        let off: f64 = (0..p)
            .flat_map(|i| (0..p).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * p + j] * a[i * p + j])
            .sum();
        let diag: f64 = (0..p).map(|i| a[i * p + i] * a[i * p + i]).sum();
        if off <= 1e-30 * diag.max(1e-300) {
            break;
        }
        for i in 0..p {
            for j in i + 1..p {
                let aij = a[i * p + j];
                if aij == 0.0 {
                    continue;
                }
                let theta = (a[j * p + j] - a[i * p + i]) / (2.0 * aij);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let cs = 1.0 / (t * t + 1.0).sqrt();
                let sn = t * cs;
                for k in 0..p {
                    let (aki, akj) = (a[k * p + i], a[k * p + j]);
                    a[k * p + i] = cs * aki - sn * akj;
                    a[k * p + j] = sn * aki + cs * akj;
                }
                for k in 0..p {
                    let (aik, ajk) = (a[i * p + k], a[j * p + k]);
                    a[i * p + k] = cs * aik - sn * ajk;
                    a[j * p + k] = sn * aik + cs * ajk;
                }
                for k in 0..p {
                    let (vki, vkj) = (v[k * p + i], v[k * p + j]);
                    v[k * p + i] = cs * vki - sn * vkj;
                    v[k * p + j] = sn * vki + cs * vkj;
                }
            }
        }
    }
    ((0..p).map(|i| a[i * p + i]).collect(), v)
}

/// The top `SLOT_L_DIMS` right singular vectors of `r` (`rows x n`,
/// row-major) as `SLOT_L_DIMS x n` row-major f32, each of unit norm with its
/// largest-magnitude element positive. Rows past the rank of `r` are zero.
pub(crate) fn top_basis(r: &[f32], n: usize, seed: u64) -> Vec<f32> {
    let mut out = vec![0f32; SLOT_L_DIMS * n];
    if n == 0 || r.is_empty() {
        return out;
    }
    let c = gram(r, n);
    let p = OVERSAMPLE.min(n);
    let mut rng = SplitMix64::new(seed);
    let mut q: Vec<f64> = (0..p * n).map(|_| rng.next_f64() * 2.0 - 1.0).collect();
    orthonormalise(&mut q, n);
    for _ in 0..ITERS {
        q = mul(&c, &q, n);
        orthonormalise(&mut q, n);
    }
    // Rayleigh-Ritz: H = Q^T C Q, then rotate Q by H's eigenvectors.
    let cq = mul(&c, &q, n);
    let mut h = vec![0f64; p * p];
    for i in 0..p {
        for j in 0..p {
            h[i * p + j] = q[i * n..i * n + n]
                .iter()
                .zip(&cq[j * n..j * n + n])
                .map(|(a, b)| a * b)
                .sum();
        }
    }
    for i in 0..p {
        for j in 0..i {
            let m = 0.5 * (h[i * p + j] + h[j * p + i]);
            h[i * p + j] = m;
            h[j * p + i] = m;
        }
    }
    let (vals, vecs) = jacobi(h, p);
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]).then(a.cmp(&b)));
    for (row, &j) in order.iter().take(SLOT_L_DIMS).enumerate() {
        if vals[j] <= 0.0 {
            break;
        }
        let mut u = vec![0f64; n];
        for i in 0..p {
            let w = vecs[i * p + j];
            for (o, &x) in u.iter_mut().zip(&q[i * n..i * n + n]) {
                *o += w * x;
            }
        }
        let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let mut big = 0;
        for (i, v) in u.iter().enumerate() {
            if v.abs() > u[big].abs() {
                big = i;
            }
        }
        let sign = if u[big] < 0.0 { -1.0 } else { 1.0 };
        for (o, &x) in out[row * n..row * n + n].iter_mut().zip(&u) {
            *o = (sign * x / norm) as f32;
        }
    }
    out
}

/// Least-squares coefficients of each residual row on a (rounded, so not
/// exactly orthonormal) basis: solves `(B B^T) c = B r` over the non-zero
/// basis rows. Returns `SLOT_L_DIMS` f32 per row.
pub(crate) fn coefficients(r: &[f32], n: usize, basis: &[f32]) -> Vec<[f32; SLOT_L_DIMS]> {
    let live: Vec<usize> = (0..SLOT_L_DIMS)
        .filter(|&i| basis[i * n..i * n + n].iter().any(|&v| v != 0.0))
        .collect();
    let m = live.len();
    let mut g = vec![0f64; m * m];
    for (a, &i) in live.iter().enumerate() {
        for (b, &j) in live.iter().enumerate() {
            g[a * m + b] = basis[i * n..i * n + n]
                .iter()
                .zip(&basis[j * n..j * n + n])
                .map(|(&x, &y)| x as f64 * y as f64)
                .sum();
        }
    }
    let ginv = invert(g, m);
    r.par_chunks(n)
        .map(|row| {
            let t: Vec<f64> = live
                .iter()
                .map(|&i| {
                    basis[i * n..i * n + n]
                        .iter()
                        .zip(row)
                        .map(|(&b, &x)| b as f64 * x as f64)
                        .sum()
                })
                .collect();
            let mut out = [0f32; SLOT_L_DIMS];
            for (a, &i) in live.iter().enumerate() {
                out[i] = (0..m).map(|b| ginv[a * m + b] * t[b]).sum::<f64>() as f32;
            }
            out
        })
        .collect()
}

/// Inverse of a small symmetric positive definite matrix by Gauss-Jordan
/// with partial pivoting; a singular pivot leaves that direction at zero.
fn invert(mut a: Vec<f64>, m: usize) -> Vec<f64> {
    let mut inv = vec![0f64; m * m];
    for i in 0..m {
        inv[i * m + i] = 1.0;
    }
    for col in 0..m {
        let mut piv = col;
        for r in col + 1..m {
            if a[r * m + col].abs() > a[piv * m + col].abs() {
                piv = r;
            }
        }
        if a[piv * m + col].abs() < 1e-12 {
            continue;
        }
        for k in 0..m {
            a.swap(col * m + k, piv * m + k);
            inv.swap(col * m + k, piv * m + k);
        }
        let d = a[col * m + col];
        for k in 0..m {
            a[col * m + k] /= d;
            inv[col * m + k] /= d;
        }
        for r in 0..m {
            if r != col {
                let f = a[r * m + col];
                for k in 0..m {
                    a[r * m + k] -= f * a[col * m + k];
                    inv[r * m + k] -= f * inv[col * m + k];
                }
            }
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_dominant_directions_of_a_low_rank_matrix() {
        // Rows are combinations of 3 fixed directions plus tiny noise: the
        // top 3 basis rows must span them, the rest carry almost nothing.
        let n = 24;
        let mut rng = SplitMix64::new(3);
        let dirs: Vec<Vec<f32>> = (0..3)
            .map(|_| (0..n).map(|_| rng.next_f64() as f32 - 0.5).collect())
            .collect();
        let rows = 200;
        let mut r = vec![0f32; rows * n];
        for row in r.chunks_exact_mut(n) {
            for (s, dir) in dirs.iter().enumerate() {
                let w = (rng.next_f64() as f32 - 0.5) * (3 - s) as f32;
                for (o, &v) in row.iter_mut().zip(dir) {
                    *o += w * v;
                }
            }
            for o in row.iter_mut() {
                *o += (rng.next_f64() as f32 - 0.5) * 1e-4;
            }
        }
        let b = top_basis(&r, n, 1);
        assert_eq!(b, top_basis(&r, n, 1));
        let coef = coefficients(&r, n, &b);
        let mut err = 0f64;
        let mut tot = 0f64;
        for (row, c) in r.chunks_exact(n).zip(&coef) {
            for col in 0..n {
                let rec: f32 = (0..3).map(|i| c[i] * b[i * n + col]).sum();
                err += ((row[col] - rec) as f64).powi(2);
                tot += (row[col] as f64).powi(2);
            }
        }
        assert!(err / tot < 1e-6, "relative error {}", err / tot);
        for i in 0..8 {
            let norm: f32 = b[i * n..i * n + n].iter().map(|v| v * v).sum();
            assert!((norm - 1.0).abs() < 1e-4, "row {i} norm {norm}");
        }
    }

    #[test]
    fn rank_deficient_input_gives_zero_rows() {
        // Every row is the same vector: rank 1, so rows 1..8 are zero.
        let n = 10;
        let r: Vec<f32> = (0..5)
            .flat_map(|_| (0..n).map(|c| c as f32 - 4.5))
            .collect();
        let b = top_basis(&r, n, 7);
        assert!(b[..n].iter().any(|&v| v != 0.0));
        assert!(b[n..].iter().all(|&v| v == 0.0));
    }
}
