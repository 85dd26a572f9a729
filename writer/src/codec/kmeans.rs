//! Deterministic k-means over fixed-width sub-vectors.
//!
//! Determinism: the only randomness is [`SplitMix64`] with the caller's seed;
//! parallel work is split into chunks of a fixed number of points (never
//! "one chunk per thread"), and partial sums are reduced in chunk order, so
//! results do not depend on the number of threads.

// Fixed-width lane loops indexed by `l`/`j` are what the compiler turns
// into vector code; iterator rewrites obscure that.
#![allow(clippy::needless_range_loop)]

use rayon::prelude::*;

use super::error::CodecError;

/// Points per parallel work item for assignment.
const ASSIGN_CHUNK: usize = 2048;
/// Points per partial sum in centroid updates.
const SUM_CHUNK: usize = 16384;

/// The splitmix64 generator: tiny, fast, and good enough to pick seeds.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Tuning of the k-means fit. Part of [`super::CodecSpec`], so a spec fully
/// determines its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KmeansParams {
    /// At most this many sub-vectors (a deterministic uniform sample) train
    /// the palette; every sub-vector is then assigned to it.
    pub sample: usize,
    /// Lloyd iterations on the sample (stops early when no point moves).
    pub iters: usize,
    /// Extra passes over all sub-vectors of the fitted rows (see
    /// `fit_values`) after the sample fit: recompute
    /// the entries as means of everything assigned to them, then reassign.
    pub refine: usize,
    /// Rounds of joint refinement of a multi-stage palette after the greedy
    /// stage-by-stage fit: each stage in turn is refitted (entries = means,
    /// then codes reassigned) to what the *other* stages leave. Each step
    /// cannot raise the squared error before rounding; it recovers much of
    /// what greedy residual stages lose.
    pub joint: usize,
    /// Seed of the generator that draws the sample and the k-means++ seeds.
    pub seed: u64,
    /// About this many values (whole rows: `max(fit_values / n_cols,
    /// 1024)` rows, more for wide palette entries, see
    /// `codec::sample_rows`) of a group train its palettes; a larger group
    /// trains on a deterministic uniform sample of its rows and every row
    /// is then encoded against them. This bounds encode
    /// memory whatever the group's size: the fit holds about five f32
    /// copies of the sample (80 MB at the default 2^22).
    pub fit_values: usize,
}

impl Default for KmeansParams {
    fn default() -> Self {
        KmeansParams {
            sample: 1 << 17,
            iters: 20,
            refine: 0,
            joint: 0,
            seed: 0x6868_746C_6400_0001,
            fit_values: 1 << 20,
        }
    }
}

/// Squared Euclidean distance with a fixed summation order (8 lanes, then
/// the lanes pairwise, then the tail), so it vectorises and is reproducible.
#[inline]
pub(crate) fn sqdist(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ah, bh) = (a.chunks_exact(8), b.chunks_exact(8));
    let (at, bt) = (ah.remainder(), bh.remainder());
    for (x, y) in ah.zip(bh) {
        if let (Ok(x), Ok(y)) = (<&[f32; 8]>::try_from(x), <&[f32; 8]>::try_from(y)) {
            for l in 0..8 {
                let t = x[l] - y[l];
                acc[l] += t * t;
            }
        }
    }
    let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (x, y) in at.iter().zip(bt) {
        let t = x - y;
        s += t * t;
    }
    s
}

/// A palette laid out for fast nearest-entry search.
pub(crate) struct Searcher {
    d: usize,
    k: usize,
    /// Small `d`: entries in blocks of 8, dimension-major inside a block
    /// (`blocks[b * d + j][lane]`), padded with copies of entry 0.
    blocks: Vec<[f32; 8]>,
    /// Entry-major copy, used for widths without a specialised loop.
    aos: Vec<f32>,
}

impl Searcher {
    /// `centroids` holds `k * d` values, `1 <= k <= 256`.
    pub(crate) fn new(centroids: &[f32], d: usize) -> Self {
        let k = centroids.len() / d.max(1);
        let nb = k.div_ceil(8);
        let mut blocks = vec![[0f32; 8]; nb * d];
        for b in 0..nb {
            for l in 0..8 {
                let e = if b * 8 + l < k { b * 8 + l } else { 0 };
                for j in 0..d {
                    blocks[b * d + j][l] = centroids[e * d + j];
                }
            }
        }
        Searcher {
            d,
            k,
            blocks,
            aos: centroids.to_vec(),
        }
    }

    /// Nearest entry of each point of `pts` (`codes.len()` points), and its
    /// squared distance, weighted per coordinate by `wts` (one weight per
    /// value of `pts`) when given. Ties go to the lowest entry index.
    pub(crate) fn assign_chunk(
        &self,
        pts: &[f32],
        wts: Option<&[f32]>,
        codes: &mut [u8],
        dists: &mut [f32],
    ) {
        match self.d {
            1 => assign_soa::<1>(&self.blocks, pts, wts, codes, dists),
            2 => assign_soa::<2>(&self.blocks, pts, wts, codes, dists),
            3 => assign_soa::<3>(&self.blocks, pts, wts, codes, dists),
            4 => assign_soa::<4>(&self.blocks, pts, wts, codes, dists),
            5 => assign_soa::<5>(&self.blocks, pts, wts, codes, dists),
            6 => assign_soa::<6>(&self.blocks, pts, wts, codes, dists),
            8 => assign_soa::<8>(&self.blocks, pts, wts, codes, dists),
            16 => assign_soa::<16>(&self.blocks, pts, wts, codes, dists),
            d => {
                for (i, (x, (c, dd))) in pts
                    .chunks_exact(d)
                    .zip(codes.iter_mut().zip(dists))
                    .enumerate()
                {
                    let w = wts.map(|w| &w[i * d..i * d + d]);
                    let mut best = f32::INFINITY;
                    let mut bi = 0usize;
                    for (e, ce) in self.aos.chunks_exact(d).take(self.k).enumerate() {
                        let dist = match w {
                            None => sqdist(x, ce),
                            Some(w) => x
                                .iter()
                                .zip(w)
                                .zip(ce)
                                .map(|((&xv, &wv), &cv)| wv * (xv - cv) * (xv - cv))
                                .sum(),
                        };
                        if dist < best {
                            best = dist;
                            bi = e;
                        }
                    }
                    *c = bi as u8;
                    *dd = best;
                }
            }
        }
    }
}

/// Nearest-entry search for a compile-time width: 8 entries at a time, one
/// per lane, so the inner loops are straight-line vector code.
fn assign_soa<const D: usize>(
    blocks: &[[f32; 8]],
    pts: &[f32],
    wts: Option<&[f32]>,
    codes: &mut [u8],
    dists: &mut [f32],
) {
    for (i, (x, (c, dd))) in pts
        .chunks_exact(D)
        .zip(codes.iter_mut().zip(dists))
        .enumerate()
    {
        let mut xv = [0f32; D];
        xv.copy_from_slice(x);
        // Unit weights change nothing: (1 * t) * t == t * t exactly.
        let mut wv = [1f32; D];
        if let Some(w) = wts {
            wv.copy_from_slice(&w[i * D..i * D + D]);
        }
        let mut best = [f32::INFINITY; 8];
        let mut bi = [0u32; 8];
        for (b, blk) in blocks.chunks_exact(D).enumerate() {
            let mut dist = [0f32; 8];
            for j in 0..D {
                let cj = &blk[j];
                for l in 0..8 {
                    let t = xv[j] - cj[l];
                    dist[l] += wv[j] * t * t;
                }
            }
            // Branch-free select with bit masks, so this vectorises too.
            let base = (b * 8) as u32;
            for l in 0..8 {
                let m = ((dist[l] < best[l]) as u32).wrapping_neg();
                best[l] = f32::from_bits((best[l].to_bits() & !m) | (dist[l].to_bits() & m));
                bi[l] = (bi[l] & !m) | ((base + l as u32) & m);
            }
        }
        // Lowest distance, ties to the lowest index: same as a scan in order.
        let mut m = 0;
        for l in 1..8 {
            if best[l] < best[m] || (best[l] == best[m] && bi[l] < bi[m]) {
                m = l;
            }
        }
        *c = bi[m] as u8;
        *dd = best[m];
    }
}

/// Assigns every point of `points` (width `d`) to its nearest entry, in
/// parallel; output is independent of the thread count.
pub(crate) fn assign(s: &Searcher, points: &[f32], codes: &mut [u8], dists: &mut [f32]) {
    assign_by(s, points, None, codes, dists)
}

/// [`assign`], under the distance weighted per coordinate by `weights`
/// (one per value of `points`) when given.
fn assign_by(
    s: &Searcher,
    points: &[f32],
    weights: Option<&[f32]>,
    codes: &mut [u8],
    dists: &mut [f32],
) {
    let d = s.d;
    let chunks = points
        .par_chunks(ASSIGN_CHUNK * d)
        .zip(codes.par_chunks_mut(ASSIGN_CHUNK))
        .zip(dists.par_chunks_mut(ASSIGN_CHUNK));
    match weights {
        None => chunks.for_each(|((p, c), dd)| s.assign_chunk(p, None, c, dd)),
        Some(w) => chunks
            .zip(w.par_chunks(ASSIGN_CHUNK * d))
            .for_each(|(((p, c), dd), w)| s.assign_chunk(p, Some(w), c, dd)),
    }
}

/// Per-entry weighted sums, weight totals per coordinate (f64; every
/// weight 1 without `weights`) and counts of the points assigned to each
/// entry, reduced in a fixed chunk order.
fn sums(
    points: &[f32],
    weights: Option<&[f32]>,
    d: usize,
    k: usize,
    codes: &[u8],
) -> (Vec<f64>, Vec<f64>, Vec<u64>) {
    let partials: Vec<(Vec<f64>, Vec<f64>, Vec<u64>)> = points
        .par_chunks(SUM_CHUNK * d)
        .zip(codes.par_chunks(SUM_CHUNK))
        .enumerate()
        .map(|(chunk, (p, c))| {
            let mut s = vec![0f64; k * d];
            let mut ws = vec![0f64; k * d];
            let mut n = vec![0u64; k];
            let w = weights.map(|w| &w[chunk * SUM_CHUNK * d..chunk * SUM_CHUNK * d + p.len()]);
            for (i, (x, &e)) in p.chunks_exact(d).zip(c).enumerate() {
                let e = e as usize;
                n[e] += 1;
                let wi = w.map(|w| &w[i * d..i * d + d]);
                for (j, &v) in x.iter().enumerate() {
                    let wv = wi.map_or(1.0, |w| f64::from(w[j]));
                    s[e * d + j] += wv * v as f64;
                    ws[e * d + j] += wv;
                }
            }
            (s, ws, n)
        })
        .collect();
    let mut s = vec![0f64; k * d];
    let mut ws = vec![0f64; k * d];
    let mut n = vec![0u64; k];
    for (ps, pw, pn) in partials {
        for (a, b) in s.iter_mut().zip(&ps) {
            *a += b;
        }
        for (a, b) in ws.iter_mut().zip(&pw) {
            *a += b;
        }
        for (a, b) in n.iter_mut().zip(&pn) {
            *a += b;
        }
    }
    (s, ws, n)
}

/// Replaces every non-empty entry by the (weighted) mean of its points;
/// a coordinate of zero total weight keeps its value. Returns the indices
/// of empty entries.
fn update(
    centroids: &mut [f32],
    points: &[f32],
    weights: Option<&[f32]>,
    d: usize,
    codes: &[u8],
) -> Vec<usize> {
    let k = centroids.len() / d;
    let (s, ws, n) = sums(points, weights, d, k, codes);
    let mut empty = Vec::new();
    for e in 0..k {
        if n[e] == 0 {
            empty.push(e);
            continue;
        }
        for j in 0..d {
            if ws[e * d + j] > 0.0 {
                centroids[e * d + j] = (s[e * d + j] / ws[e * d + j]) as f32;
            }
        }
    }
    empty
}

/// Moves each empty entry onto one of the points furthest from their own
/// entry (distinct points, furthest first, ties to the lowest index).
/// Entries stay put when every point already sits on an entry.
fn reseed(centroids: &mut [f32], empty: &[usize], points: &[f32], d: usize, dists: &[f32]) {
    if empty.is_empty() {
        return;
    }
    let mut far: Vec<usize> = (0..dists.len()).filter(|&i| dists[i] > 0.0).collect();
    far.sort_by(|&a, &b| dists[b].total_cmp(&dists[a]).then(a.cmp(&b)));
    for (&e, &p) in empty.iter().zip(&far) {
        centroids[e * d..e * d + d].copy_from_slice(&points[p * d..p * d + d]);
    }
}

/// A deterministic uniform sample of `m` of `n` indices (Knuth's
/// selection sampling: one pass, in increasing order).
fn sample(n: usize, m: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut out = Vec::with_capacity(m);
    let mut need = m;
    for i in 0..n {
        if need == 0 {
            break;
        }
        let left = n - i;
        if rng.below(left) < need {
            out.push(i);
            need -= 1;
        }
    }
    out
}

/// The points (of width `d`) at `idx`, in that order.
fn take(points: &[f32], d: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter()
        .flat_map(|&i| &points[i * d..i * d + d])
        .copied()
        .collect()
}

/// One point in this many of a training sample is reserved for the points
/// of largest norm. A uniform sample misses the few outlier weights real
/// models have (MiniLM's FFN output rows hold single weights at 30-40x the
/// row's RMS); without them no palette entry reaches them, and their error
/// dominates the layer's output error.
const TAIL_SHARE: usize = 64;

/// Appends the indices of the `t` points of `points` with the largest
/// squared norm (ties: lower index first) to `out`, in index order.
fn append_largest(out: &mut Vec<usize>, points: &[f32], d: usize, t: usize) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    if t == 0 {
        return;
    }
    // Min-heap of the t largest (norm, Reverse(index)) seen so far.
    let mut heap: BinaryHeap<Reverse<(u64, Reverse<usize>)>> = BinaryHeap::with_capacity(t + 1);
    for (i, x) in points.chunks_exact(d).enumerate() {
        // In f64: an f32 square overflows near 1e19 and underflows near
        // 1e-19, and the choice must not depend on the weights' scale.
        let norm: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        // Non-negative finite f64s order like their bit patterns.
        let key = (norm.to_bits(), Reverse(i));
        if heap.len() < t {
            heap.push(Reverse(key));
        } else if let Some(Reverse(min)) = heap.peek() {
            if key > *min {
                heap.pop();
                heap.push(Reverse(key));
            }
        }
    }
    let mut idx: Vec<usize> = heap.into_iter().map(|Reverse((_, Reverse(i)))| i).collect();
    idx.sort_unstable();
    out.extend(idx);
}

/// k-means++ seeding. Stops early (fewer entries) when every point already
/// coincides with a chosen entry, so `k` shrinks to the number of distinct
/// points when there are fewer than `k`.
fn seed(points: &[f32], d: usize, k: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let n = points.len() / d;
    let first = rng.below(n);
    let mut cent: Vec<f32> = points[first * d..first * d + d].to_vec();
    let mut d2 = vec![0f32; n];
    update_d2(&mut d2, points, d, &cent, true);
    while cent.len() / d < k {
        let total: f64 = d2.iter().map(|&v| v as f64).sum();
        if total <= 0.0 {
            break;
        }
        let r = rng.next_f64() * total;
        let mut acc = 0f64;
        let mut pick = None;
        for (i, &w) in d2.iter().enumerate() {
            if w > 0.0 {
                acc += w as f64;
                pick = Some(i);
                if acc > r {
                    break;
                }
            }
        }
        let Some(p) = pick else { break };
        let c = points[p * d..p * d + d].to_vec();
        update_d2(&mut d2, points, d, &c, false);
        cent.extend_from_slice(&c);
    }
    cent
}

/// `d2[i] = min(d2[i], |x_i - c|^2)` (or `=` when `init`), in parallel.
fn update_d2(d2: &mut [f32], points: &[f32], d: usize, c: &[f32], init: bool) {
    d2.par_chunks_mut(ASSIGN_CHUNK)
        .zip(points.par_chunks(ASSIGN_CHUNK * d))
        .for_each(|(w, p)| {
            for (wi, x) in w.iter_mut().zip(p.chunks_exact(d)) {
                let v = sqdist(x, c);
                if init || v < *wi {
                    *wi = v;
                }
            }
        });
}

/// One Lloyd step over all `points` for a fixed number of entries: every
/// entry with points becomes their mean, the palette is rounded, and every
/// point is reassigned. Empty entries keep their values.
pub(crate) fn refit(
    centroids: &mut [f32],
    points: &[f32],
    d: usize,
    codes: &mut [u8],
    round: &dyn Fn(&mut [f32]) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    update(centroids, points, None, d, codes);
    round(centroids)?;
    let mut dists = vec![0f32; codes.len()];
    assign(&Searcher::new(centroids, d), points, codes, &mut dists);
    Ok(())
}

/// Fits a palette of at most `k` entries of width `d` to `points`, rounds
/// it with `round` (the stored element type), and assigns every point to
/// the rounded palette. Returns the rounded entries (`k' * d`, `k' <= k`)
/// and one code per point. With no points the palette is one zero entry.
/// With `weights` (one per value of `points`), distances and entry means
/// are weighted per coordinate (k-means++ seeding stays unweighted).
pub(crate) fn quantise(
    points: &[f32],
    weights: Option<&[f32]>,
    d: usize,
    k: usize,
    params: &KmeansParams,
    round: &dyn Fn(&mut [f32]) -> Result<(), CodecError>,
) -> Result<(Vec<f32>, Vec<u8>), CodecError> {
    let n = points.len() / d;
    if n == 0 {
        return Ok((vec![0f32; d], Vec::new()));
    }
    let mut rng = SplitMix64::new(params.seed);
    let m = params.sample.max(k).min(n);
    let owned;
    let (train, train_w): (&[f32], Option<&[f32]>) = if m < n {
        let tail = m / TAIL_SHARE;
        let mut idx = sample(n, m - tail, &mut rng);
        append_largest(&mut idx, points, d, tail);
        owned = (take(points, d, &idx), weights.map(|w| take(w, d, &idx)));
        (&owned.0, owned.1.as_deref())
    } else {
        (points, weights)
    };
    let nt = train.len() / d;
    let mut cent = seed(train, d, k, &mut rng);
    let mut codes = vec![0u8; nt];
    let mut prev = vec![0u8; nt];
    let mut dists = vec![0f32; nt];
    for it in 0..params.iters {
        assign_by(
            &Searcher::new(&cent, d),
            train,
            train_w,
            &mut codes,
            &mut dists,
        );
        if it > 0 && codes == prev {
            break;
        }
        let empty = update(&mut cent, train, train_w, d, &codes);
        reseed(&mut cent, &empty, train, d, &dists);
        std::mem::swap(&mut codes, &mut prev);
    }
    round(&mut cent)?;
    let mut codes = vec![0u8; n];
    let mut dists = vec![0f32; n];
    // Assign every point; each refinement pass first moves the entries to
    // the means of their points.
    for pass in 0..=params.refine {
        if pass > 0 {
            update(&mut cent, points, weights, d, &codes);
            round(&mut cent)?;
        }
        let s = Searcher::new(&cent, d);
        assign_by(&s, points, weights, &mut codes, &mut dists);
    }
    Ok((cent, codes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_round(_: &mut [f32]) -> Result<(), CodecError> {
        Ok(())
    }

    fn brute(cent: &[f32], d: usize, x: &[f32]) -> (u8, f32) {
        let mut best = (0u8, f32::INFINITY);
        for (e, c) in cent.chunks_exact(d).enumerate() {
            let v = sqdist(x, c);
            if v < best.1 {
                best = (e as u8, v);
            }
        }
        best
    }

    #[test]
    fn specialised_search_matches_a_plain_scan() {
        let mut rng = SplitMix64::new(5);
        for d in [1usize, 2, 3, 4, 5, 6, 7, 8, 16, 17] {
            for k in [1usize, 3, 8, 13, 256] {
                let cent: Vec<f32> = (0..k * d).map(|_| rng.next_f64() as f32 - 0.5).collect();
                let pts: Vec<f32> = (0..300 * d).map(|_| rng.next_f64() as f32 - 0.5).collect();
                let mut codes = vec![0u8; 300];
                let mut dists = vec![0f32; 300];
                assign(&Searcher::new(&cent, d), &pts, &mut codes, &mut dists);
                for (i, x) in pts.chunks_exact(d).enumerate() {
                    let (c, v) = brute(&cent, d, x);
                    // Distances may differ in the last bit between summation
                    // orders; the chosen entry must be as near.
                    assert!((dists[i] - v).abs() <= 1e-5 * v.max(1e-6), "d {d} k {k}");
                    assert!((codes[i] as usize) < k);
                    if codes[i] != c {
                        let other = sqdist(x, &cent[codes[i] as usize * d..][..d]);
                        assert!((other - v).abs() <= 1e-5 * v.max(1e-6));
                    }
                }
            }
        }
    }

    #[test]
    fn ties_go_to_the_lowest_index() {
        // Entries 0 and 5 are equal; every point nearest to them must get 0.
        let mut cent = vec![0f32; 8 * 4];
        for (e, c) in cent.chunks_exact_mut(4).enumerate() {
            c.fill(e as f32);
        }
        cent[20..24].fill(0.0);
        let pts = vec![0.1f32; 4 * 10];
        let mut codes = vec![9u8; 10];
        let mut dists = vec![0f32; 10];
        assign(&Searcher::new(&cent, 4), &pts, &mut codes, &mut dists);
        assert!(codes.iter().all(|&c| c == 0));
    }

    #[test]
    fn append_largest_takes_the_largest_norms_in_index_order() {
        let pts = [0.1f32, 0.0, 5.0, 0.0, 0.2, 0.1, -6.0, 1.0, 5.0, 0.0];
        let mut out = vec![9];
        append_largest(&mut out, &pts, 2, 3);
        // norms: 0.01, 25, 0.05, 37, 25 -> indices 1, 3, 4
        assert_eq!(out, vec![9, 1, 3, 4]);
        assert_eq!(
            take(&pts, 2, &out[1..]),
            vec![5.0, 0.0, -6.0, 1.0, 5.0, 0.0]
        );
        let mut none = Vec::new();
        append_largest(&mut none, &pts, 2, 0);
        assert!(none.is_empty());
    }

    #[test]
    fn rare_outliers_get_an_entry_even_when_training_on_a_sample() {
        // 200 000 small values and 20 at 40x: a uniform sample of 4096
        // almost surely misses them; the reserved tail keeps them.
        let mut rng = SplitMix64::new(11);
        let mut pts: Vec<f32> = (0..200_000).map(|_| rng.next_f64() as f32 - 0.5).collect();
        for i in 0..20 {
            pts[i * 9_973] = 20.0;
        }
        let params = KmeansParams {
            sample: 4096,
            ..KmeansParams::default()
        };
        let (cent, codes) = quantise(&pts, None, 1, 16, &params, &ok_round).unwrap();
        for i in 0..20 {
            let got = cent[codes[i * 9_973] as usize];
            assert!((got - 20.0).abs() < 0.5, "outlier decodes as {got}");
        }
    }

    #[test]
    fn fewer_distinct_points_than_k_shrinks_k_and_is_exact() {
        let distinct = [[1.0f32, 2.0], [-1.0, 0.5], [3.0, -2.0]];
        let pts: Vec<f32> = (0..100).flat_map(|i| distinct[i % 3]).collect();
        let (cent, codes) =
            quantise(&pts, None, 2, 16, &KmeansParams::default(), &ok_round).unwrap();
        assert_eq!(cent.len(), 3 * 2);
        for (i, &c) in codes.iter().enumerate() {
            assert_eq!(&cent[c as usize * 2..c as usize * 2 + 2], &distinct[i % 3]);
        }
    }

    #[test]
    fn empty_entries_move_to_the_furthest_points() {
        // Entry 2 sits far from every point, so it ends up empty and must be
        // re-seeded onto the point furthest from its own entry (9.0).
        let pts = [0.0f32, 0.1, 0.2, 5.0, 5.1, 9.0];
        let mut cent = vec![0.0f32, 5.0, 1000.0];
        let mut codes = vec![0u8; 6];
        let mut dists = vec![0f32; 6];
        assign(&Searcher::new(&cent, 1), &pts, &mut codes, &mut dists);
        assert_eq!(codes, [0, 0, 0, 1, 1, 1]);
        let empty = update(&mut cent, &pts, None, 1, &codes);
        assert_eq!(empty, vec![2]);
        reseed(&mut cent, &empty, &pts, 1, &dists);
        assert_eq!(cent[2], 9.0);
        assert!((cent[1] - 19.1 / 3.0).abs() < 1e-6);
        // With every point on an entry there is nothing to move to.
        let mut cent = vec![1.0f32, 2.0, 7.0];
        reseed(&mut cent, &[2], &[1.0, 2.0], 1, &[0.0, 0.0]);
        assert_eq!(cent, [1.0, 2.0, 7.0]);
    }

    #[test]
    fn sampling_is_uniform_enough_and_deterministic() {
        let pts: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let a = take(&pts, 1, &sample(pts.len(), 1000, &mut SplitMix64::new(1)));
        let b = take(&pts, 1, &sample(pts.len(), 1000, &mut SplitMix64::new(1)));
        assert_eq!(a, b);
        assert_eq!(a.len(), 1000);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / 1000.0;
        assert!((mean - 5000.0).abs() < 300.0, "mean {mean}");
    }

    #[test]
    fn kmeans_separates_clear_clusters() {
        let mut rng = SplitMix64::new(9);
        let centres = [[0.0f32, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]];
        let pts: Vec<f32> = (0..4000)
            .flat_map(|i| {
                let c = centres[i % 4];
                [
                    c[0] + rng.next_f64() as f32 - 0.5,
                    c[1] + rng.next_f64() as f32 - 0.5,
                ]
            })
            .collect();
        let (cent, codes) =
            quantise(&pts, None, 2, 4, &KmeansParams::default(), &ok_round).unwrap();
        for (i, &c) in codes.iter().enumerate() {
            let e = &cent[c as usize * 2..c as usize * 2 + 2];
            let want = centres[i % 4];
            assert!((e[0] - want[0]).abs() < 0.1 && (e[1] - want[1]).abs() < 0.1);
        }
    }
}
