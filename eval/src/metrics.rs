//! How far one set of sentence embeddings is from another.
//!
//! Definitions (an independent implementation must follow them to agree):
//! - `cos`: per sentence, the cosine between its two embeddings;
//!   `cos_mean`, `cos_min`, and `cos_p1`, the 1st percentile with linear
//!   interpolation between order statistics (numpy's default: position
//!   `0.01 (n - 1)` in the sorted values);
//! - `top10_overlap`: per sentence, the share of its 10 nearest neighbours
//!   (cosine, itself excluded; ties broken by lower index) that both sets
//!   agree on, averaged over sentences (`k = min(10, n - 1)`);
//! - `spearman`: Spearman's rank correlation (average ranks for ties)
//!   between the cosine similarities of all pairs `i < j` in each set.

use serde::Serialize;

/// The comparison of two embedding sets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Number of sentences.
    pub sentences: usize,
    /// Mean per-sentence cosine.
    pub cos_mean: f64,
    /// 1st percentile (linear interpolation) of the per-sentence cosine.
    pub cos_p1: f64,
    /// Smallest per-sentence cosine.
    pub cos_min: f64,
    /// Mean share of top-10 neighbours in common.
    pub top10_overlap: f64,
    /// Spearman correlation of all pairwise similarities.
    pub spearman: f64,
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

/// Cosine of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let d = (dot(a, a) * dot(b, b)).sqrt();
    if d > 0.0 {
        dot(a, b) / d
    } else {
        0.0
    }
}

/// The `q` quantile with linear interpolation between order statistics
/// (position `q (n - 1)` in the sorted values); NaN for no values.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (pos - lo as f64) * (v[hi] - v[lo])
}

/// Unit-length copies (so dot products are cosines).
fn normalized(e: &[Vec<f32>]) -> Vec<Vec<f64>> {
    e.iter()
        .map(|v| {
            let n = dot(v, v).sqrt();
            let n = if n > 0.0 { n } else { 1.0 };
            v.iter().map(|&x| f64::from(x) / n).collect()
        })
        .collect()
}

/// Cosine similarity matrix, row-major `n x n`.
fn similarities(e: &[Vec<f32>]) -> Vec<f64> {
    let u = normalized(e);
    let n = u.len();
    let mut s = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let c: f64 = u[i].iter().zip(&u[j]).map(|(x, y)| x * y).sum();
            s[i * n + j] = c;
            s[j * n + i] = c;
        }
    }
    s
}

/// The `k` nearest neighbours of `i` (itself excluded, ties by lower index).
fn neighbours(sims: &[f64], n: usize, i: usize, k: usize) -> Vec<usize> {
    let row = &sims[i * n..(i + 1) * n];
    let mut idx: Vec<usize> = (0..n).filter(|&j| j != i).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Average ranks (1-based) of `v`, ties sharing their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && v[idx[j]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0;
        for &k in &idx[i..j] {
            r[k] = avg;
        }
        i = j;
    }
    r
}

/// Pearson correlation; NaN when either side is constant.
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// Spearman's rank correlation of `a` and `b`.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Compares `other` with `reference`, sentence by sentence.
///
/// # Panics
/// Never; mismatched lengths compare the common prefix.
pub fn compare(reference: &[Vec<f32>], other: &[Vec<f32>]) -> Metrics {
    let n = reference.len().min(other.len());
    let (reference, other) = (&reference[..n], &other[..n]);
    let cos: Vec<f64> = reference
        .iter()
        .zip(other)
        .map(|(a, b)| cosine(a, b))
        .collect();
    let (sa, sb) = (similarities(reference), similarities(other));
    let k = 10.min(n.saturating_sub(1));
    let top10_overlap = if k == 0 {
        f64::NAN
    } else {
        (0..n)
            .map(|i| {
                let na = neighbours(&sa, n, i, k);
                let nb = neighbours(&sb, n, i, k);
                na.iter().filter(|j| nb.contains(j)).count() as f64 / k as f64
            })
            .sum::<f64>()
            / n as f64
    };
    let mut pa = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    let mut pb = Vec::with_capacity(pa.capacity());
    for i in 0..n {
        for j in i + 1..n {
            pa.push(sa[i * n + j]);
            pb.push(sb[i * n + j]);
        }
    }
    Metrics {
        sentences: n,
        cos_mean: cos.iter().sum::<f64>() / n as f64,
        cos_p1: percentile(&cos, 0.01),
        cos_min: cos.iter().copied().fold(f64::INFINITY, f64::min),
        top10_overlap,
        spearman: spearman(&pa, &pb),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rows` embeddings of `dims` values `(i * a + j * b) % m`, centred.
    fn pattern(rows: usize, dims: usize, (a, b): (usize, usize), m: usize) -> Vec<Vec<f32>> {
        (0..rows)
            .map(|i| {
                (0..dims)
                    .map(|j| ((i * a + j * b) % m) as f32 - (m / 2) as f32)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn identical_sets_agree_perfectly() {
        let e = pattern(30, 8, (7, 3), 11);
        let m = compare(&e, &e);
        assert_eq!(m.sentences, 30);
        assert!((m.cos_mean - 1.0).abs() < 1e-12);
        assert!((m.cos_min - 1.0).abs() < 1e-12);
        assert_eq!(m.top10_overlap, 1.0);
        assert!((m.spearman - 1.0).abs() < 1e-12);
    }

    #[test]
    fn cosine_percentile_and_ranks() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        let v: Vec<f64> = (1..=201).map(f64::from).collect();
        // Position 0.01 * 200 = 2: the third smallest; halfway between at 0.0125.
        assert_eq!(percentile(&v, 0.01), 3.0);
        assert!((percentile(&v, 0.0125) - 3.5).abs() < 1e-12);
        assert_eq!(percentile(&[5.0], 0.01), 5.0);
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        assert!((spearman(&[1.0, 2.0, 3.0], &[30.0, 20.0, 10.0]) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_perturbed_set_scores_below_one() {
        let e = pattern(20, 6, (5, 7), 13);
        let mut f = e.clone();
        f[3][0] += 4.0;
        let m = compare(&e, &f);
        assert!(m.cos_min < 0.99 && m.cos_mean < 1.0 && m.cos_mean > m.cos_min);
        // Position 0.19 between the lowest (sentence 3) and 1.0.
        assert!((m.cos_p1 - (m.cos_min + 0.19 * (1.0 - m.cos_min))).abs() < 1e-9);
    }
}
