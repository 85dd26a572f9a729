//! Group encoding (staged residual palettes, row scales, SlotL) and decoding
//! through the format's normative kernel.
//!
//! Encoding has two steps, so memory does not grow with the group:
//! [`fit_group`] fits one palette per stage (and the SlotL basis) to a
//! bounded sample of the group's rows ([`sample_rows`], at most
//! [`KmeansParams::fit_values`] values), then [`GroupFit::encode`] encodes
//! any rows of any member against them, a tensor or a chunk of rows at a
//! time. [`encode_group`] does both for tensors held in memory.
//!
//! **Scale invariance.** Rows are fitted and assigned divided by `2^shift`,
//! the power of two at or below the fit sample's RMS; the stored palettes and
//! SlotL scales are multiplied back. Multiplying a group by a power of two
//! only moves `shift`: every code and row scale stays the same, the stored
//! palettes scale exactly, and no distance can overflow or underflow f32
//! whatever the weights' magnitude.

mod decoder;
mod feedback;

use hhtld_format::decode::n_sub;
use hhtld_format::limits::SLOT_L_DIMS;
use rayon::prelude::*;

use super::error::CodecError;
use super::gptq::Feedback;
use super::kmeans::{assign, quantise, refit, KmeansParams, Searcher, SplitMix64};
use super::slot::{coefficients, top_basis};

use super::{CodecSpec, EncodedGroup, EncodedMatrix, Matrix, PaletteData, SlotData};
use hhtld_format::encode::round_to_elem;

use decoder::RowDecoder;
pub use decoder::{reconstruct, GroupDecoder};
use feedback::f16_scale;

/// Checks the spec and the width of a group; returns `n_cols`.
fn validate_shape(tensors: &[Matrix<'_>], spec: &CodecSpec) -> Result<usize, CodecError> {
    spec.check()?;
    let first = tensors.first().ok_or(CodecError::EmptyGroup)?;
    let n_cols = first.n_cols;
    for (t, m) in tensors.iter().enumerate() {
        check_member(t, m, n_cols, false)?;
    }
    for stage in 0..spec.stages {
        spec.entry_width_of(spec.stage_shape(stage).d, n_cols)?;
    }
    Ok(n_cols)
}

/// Checks one member's width and length, and (with `values`) that every
/// value is finite.
fn check_member(t: usize, m: &Matrix<'_>, n_cols: usize, values: bool) -> Result<(), CodecError> {
    if m.n_cols != n_cols {
        return Err(CodecError::GroupWidth {
            tensor: t,
            expected: n_cols,
            got: m.n_cols,
        });
    }
    if m.n_rows.checked_mul(m.n_cols) != Some(m.data.len()) {
        return Err(CodecError::DataLen {
            tensor: t,
            n_rows: m.n_rows,
            n_cols: m.n_cols,
            got: m.data.len(),
        });
    }
    if n_cols == 0 {
        return Err(CodecError::ZeroWidth { tensor: t });
    }
    if values {
        if let Some(i) = m.data.iter().position(|v| !v.is_finite()) {
            return Err(CodecError::NonFinite {
                tensor: t,
                row: i / n_cols,
                col: i % n_cols,
                value: m.data[i],
            });
        }
    }
    Ok(())
}

/// Checks the group against the spec; returns `n_cols`.
fn validate(tensors: &[Matrix<'_>], spec: &CodecSpec) -> Result<usize, CodecError> {
    let n_cols = validate_shape(tensors, spec)?;
    for (t, m) in tensors.iter().enumerate() {
        check_member(t, m, n_cols, true)?;
    }
    Ok(n_cols)
}

/// `2^e` exactly, for `-1022 <= e <= 1023`.
fn exp2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// The exponent of the power of two at or below the RMS of `rows` (0 for
/// no data or all zeros). Each square and the sums are exact up to
/// rounding that commutes with power-of-two scaling, so scaling the rows by
/// `2^k` adds exactly `k`.
fn shift_of(rows: &[&[f32]]) -> i32 {
    let count: usize = rows.iter().map(|r| r.len()).sum();
    if count == 0 {
        return 0;
    }
    let per_row: Vec<f64> = rows
        .par_iter()
        .map(|x| x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
        .collect();
    let rms = (per_row.iter().sum::<f64>() / count as f64).sqrt();
    if rms > 0.0 && rms.is_finite() {
        ((rms.to_bits() >> 52) & 0x7ff) as i32 - 1023
    } else {
        0
    }
}

/// Rows normalised by `2^-shift` (`xn`), the fitting targets (`xn` over its
/// row scale) and the row scales.
struct Prepared {
    xn: Vec<f32>,
    target: Vec<f32>,
    scales: Vec<f32>,
}

fn prepare<'a>(
    rows: impl IndexedParallelIterator<Item = &'a [f32]>,
    n_rows: usize,
    n: usize,
    shift: i32,
    row_scale: bool,
) -> Prepared {
    let inv = exp2(-shift);
    let mut xn = vec![0f32; n_rows * n];
    let mut target = vec![0f32; n_rows * n];
    let mut scales = vec![1f32; n_rows];
    xn.par_chunks_mut(n)
        .zip(target.par_chunks_mut(n))
        .zip(scales.par_iter_mut())
        .zip(rows)
        .for_each(|(((xo, t), s), x)| {
            // Exact: a power-of-two factor that lands near 1.
            for (o, &v) in xo.iter_mut().zip(x) {
                *o = (v as f64 * inv) as f32;
            }
            if row_scale {
                let ms = xo.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n as f64;
                *s = f16_scale(ms.sqrt());
                if *s != 0.0 {
                    for (o, &v) in t.iter_mut().zip(xo.iter()) {
                        *o = v / *s;
                    }
                }
            } else {
                t.copy_from_slice(xo);
            }
        });
    Prepared { xn, target, scales }
}

/// Palettes (and SlotL basis) fitted to a sample of a group's rows: encodes
/// any rows of the group, one tensor or one chunk of rows at a time, each
/// independently of the others.
#[derive(Debug, Clone)]
pub struct GroupFit {
    spec: CodecSpec,
    n_cols: usize,
    shift: i32,
    /// Stored palettes (what the file holds).
    palettes: Vec<PaletteData>,
    /// The same entries divided by `2^shift`, as searched.
    norm: Vec<Vec<f32>>,
    /// SlotL basis, unit rows, rounded to `spec.elem`.
    basis: Option<Vec<f32>>,
    decoder: RowDecoder,
}

/// Which rows of a group of `total_rows` rows of `n_cols` train the
/// palettes of `spec`: `None` for all of them when they are few enough,
/// otherwise a deterministic uniform sample of row indices (increasing; row
/// `i` of the group is row `i - offset` of the member it falls in, members
/// in order). The sample has `max(fit_values / n_cols, 1024)` rows, and at
/// least enough rows for `kmeans.sample` stage-0 sub-vectors within
/// `16 * fit_values` values, so wide entries (a row palette's whole rows)
/// still train on as many entries as the k-means sample asks for.
pub fn sample_rows(total_rows: usize, n_cols: usize, spec: &CodecSpec) -> Option<Vec<usize>> {
    let params = &spec.kmeans;
    let n = n_cols.max(1);
    let d0 = spec.entry_width(n).unwrap_or(1);
    let wide = params
        .sample
        .saturating_mul(d0)
        .min(params.fit_values.saturating_mul(16));
    let m = (params.fit_values / n).max(wide / n).max(1024);
    if total_rows <= m {
        return None;
    }
    // Selection sampling: one pass, indices in increasing order.
    let mut rng = SplitMix64::new(params.seed ^ 0x726F_7773_616D_706C);
    let mut out = Vec::with_capacity(m);
    let mut need = m;
    for i in 0..total_rows {
        if need == 0 {
            break;
        }
        if rng.below(total_rows - i) < need {
            out.push(i);
            need -= 1;
        }
    }
    Some(out)
}

/// Fits one palette per stage (and the SlotL basis) of `spec` to the rows of
/// `sample` (for a large group, a sample chosen with [`sample_rows`]).
///
/// Each stage's palette is fitted to the residual that the previous stages
/// leave *as decoded from their rounded palettes*; with `kmeans.joint`
/// rounds, each stage is then refitted to what the others leave. Rows
/// whose width is not a multiple of `d` are fitted as if padded with zeros.
pub fn fit_group(sample: &[Matrix<'_>], spec: &CodecSpec) -> Result<GroupFit, CodecError> {
    fit_group_weighted(sample, spec, None)
}

/// [`fit_group`] with an importance per value of the sample (`weights`,
/// the rows of `sample` in order, e.g. each row's input-column importance
/// from calibration): every stage's k-means weights each coordinate's
/// squared error by it, so palette entries go where the layer's output
/// is sensitive. Padding of a partial last sub-vector has weight 0.
pub fn fit_group_weighted(
    sample: &[Matrix<'_>],
    spec: &CodecSpec,
    weights: Option<&[f32]>,
) -> Result<GroupFit, CodecError> {
    let n = validate(sample, spec)?;
    let rows: Vec<&[f32]> = sample.iter().flat_map(|m| m.data.chunks_exact(n)).collect();
    let total = rows.len();
    if let Some(w) = weights {
        if w.len() != total * n {
            return Err(CodecError::BufferLen {
                expected: total * n,
                got: w.len(),
            });
        }
    }
    let mut wres = Vec::new();
    let shift = shift_of(&rows);
    let p = prepare(rows.par_iter().copied(), total, n, shift, spec.row_scale);

    // Residual stages; `acc` mirrors the kernel's running sum exactly.
    let mut acc = vec![0f32; total * n];
    let mut resid = Vec::new();
    let mut norm: Vec<Vec<f32>> = Vec::with_capacity(spec.stages);
    let mut shapes = Vec::with_capacity(spec.stages);
    let mut stage_codes: Vec<Vec<u8>> = Vec::with_capacity(spec.stages);
    for stage in 0..spec.stages {
        let shape = spec.stage_shape(stage);
        let d = spec.entry_width_of(shape.d, n)?;
        gather(&mut resid, &p.target, Some(&acc), n, d);
        let params = KmeansParams {
            seed: spec
                .kmeans
                .seed
                .wrapping_add((stage as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            ..spec.kmeans
        };
        let w = match weights {
            Some(w) => {
                gather(&mut wres, w, None, n, d);
                Some(wres.as_slice())
            }
            None => None,
        };
        let (pal, codes) = quantise(&resid, w, d, shape.k, &params, &rounder(spec, stage))?;
        add_stage(&mut acc, n, d, &pal, &codes, false);
        norm.push(pal);
        shapes.push((d, shape.bits));
        stage_codes.push(codes);
    }
    drop(acc);
    drop(resid);
    if spec.stages > 1 && spec.kmeans.joint > 0 {
        joint_refine(spec, n, &p.target, &shapes, &mut norm, &mut stage_codes)?;
    }
    drop(stage_codes);

    // Stored palettes: the normalised entries times 2^shift, exact for
    // every value in the element type's normal range.
    let up = exp2(shift);
    let mut palettes = Vec::with_capacity(spec.stages);
    for (stage, (pal, &(d, bits))) in norm.iter_mut().zip(&shapes).enumerate() {
        let mut values = Vec::with_capacity(pal.len());
        for v in pal.iter_mut() {
            let want = (*v as f64 * up) as f32;
            let stored = round_to_elem(want, spec.elem);
            if !stored.is_finite() {
                return Err(CodecError::ElemOverflow {
                    stage,
                    value: want,
                    elem: spec.elem,
                });
            }
            values.push(stored);
            // What a reader decodes, back in normalised units.
            *v = (stored as f64 / up) as f32;
        }
        palettes.push(PaletteData {
            k: values.len() / d,
            d,
            bits,
            elem: spec.elem,
            values,
        });
    }
    let mut fit = GroupFit {
        spec: *spec,
        n_cols: n,
        shift,
        decoder: RowDecoder::new(n, &palettes, None, spec.elem),
        palettes,
        norm,
        basis: None,
    };

    // SlotL: an 8-dim residual on the sample's top singular directions.
    if spec.slot_l {
        let (acc, scales) = fit.stages_and_scales(&p);
        let r = slot_residual(&p.xn, &acc, &scales, n, spec.row_scale);
        let mut b = top_basis(&r, n, spec.kmeans.seed);
        for x in b.iter_mut() {
            let v = round_to_elem(*x, spec.elem);
            if !v.is_finite() {
                return Err(CodecError::ElemOverflow {
                    stage: usize::MAX,
                    value: *x,
                    elem: spec.elem,
                });
            }
            *x = v;
        }
        fit.decoder = RowDecoder::new(n, &fit.palettes, Some(&b), spec.elem);
        fit.basis = Some(b);
    }
    Ok(fit)
}

/// `x - acc * s` per row (or `x - acc` without row scales).
fn slot_residual(xn: &[f32], acc: &[f32], scales: &[f32], n: usize, row_scale: bool) -> Vec<f32> {
    let mut r = vec![0f32; xn.len()];
    r.par_chunks_mut(n)
        .zip(acc.par_chunks(n))
        .zip(scales.par_iter())
        .zip(xn.par_chunks(n))
        .for_each(|(((o, a), &s), x)| {
            for ((ov, &av), &xv) in o.iter_mut().zip(a).zip(x) {
                let dec = if row_scale { av * s } else { av };
                *ov = xv - dec;
            }
        });
    r
}

impl GroupFit {
    /// The spec it was fitted with.
    pub fn spec(&self) -> &CodecSpec {
        &self.spec
    }

    /// Shared row width.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// The normalisation exponent: rows were fitted divided by `2^shift`.
    pub fn shift(&self) -> i32 {
        self.shift
    }

    /// One stored palette per stage.
    pub fn palettes(&self) -> &[PaletteData] {
        &self.palettes
    }

    /// The stored SlotL basis (`8 * n_cols` values), with SlotL.
    pub fn basis(&self) -> Option<&[f32]> {
        self.basis.as_deref()
    }

    /// Stage codes of every row of `p` (greedy residual assignment, then
    /// `kmeans.joint` rounds of reassigning each stage against the others)
    /// and the kernel's running sum of them.
    fn assign_stages(&self, p: &Prepared) -> (Vec<Vec<u8>>, Vec<f32>) {
        let n = self.n_cols;
        let total = p.scales.len();
        let mut acc = vec![0f32; total * n];
        let mut resid = Vec::new();
        let mut codes: Vec<Vec<u8>> = Vec::with_capacity(self.norm.len());
        for (pal, pd) in self.norm.iter().zip(&self.palettes) {
            gather(&mut resid, &p.target, Some(&acc), n, pd.d);
            let ns = n_sub(n, pd.d);
            let mut c = vec![0u8; total * ns];
            let mut dists = vec![0f32; total * ns];
            assign(&Searcher::new(pal, pd.d), &resid, &mut c, &mut dists);
            add_stage(&mut acc, n, pd.d, pal, &c, false);
            codes.push(c);
        }
        if self.norm.len() > 1 && self.spec.kmeans.joint > 0 {
            let mut others = vec![0f32; p.target.len()];
            for _ in 0..self.spec.kmeans.joint {
                for s in 0..self.norm.len() {
                    others.copy_from_slice(&p.target);
                    for (t, (pal, pd)) in self.norm.iter().zip(&self.palettes).enumerate() {
                        if t != s {
                            add_stage(&mut others, n, pd.d, pal, &codes[t], true);
                        }
                    }
                    let d = self.palettes[s].d;
                    gather(&mut resid, &others, None, n, d);
                    let mut dists = vec![0f32; codes[s].len()];
                    assign(
                        &Searcher::new(&self.norm[s], d),
                        &resid,
                        &mut codes[s],
                        &mut dists,
                    );
                }
            }
            // Rebuild the running sum in stage order, as the kernel adds.
            acc.fill(0.0);
            for ((pal, pd), c) in self.norm.iter().zip(&self.palettes).zip(&codes) {
                add_stage(&mut acc, n, pd.d, pal, c, false);
            }
        }
        (codes, acc)
    }

    /// The stages' running sum and the row scales, refitted by least squares
    /// to the decoded rows where that lowers a row's error.
    fn stages_and_scales(&self, p: &Prepared) -> (Vec<f32>, Vec<f32>) {
        let (_, acc) = self.assign_stages(p);
        let scales = self.refit_scales(p, &acc, None);
        (acc, scales)
    }

    /// Encodes the rows of `m` (a whole tensor of the group, or any run of
    /// its rows) with the fitted palettes. Row scales are each row's RMS
    /// rounded to f16, refitted by least squares to the decoded row when
    /// that lowers the row's error; with SlotL, the slot scale is over the
    /// rows of `m`, so encode a SlotL tensor in one call.
    pub fn encode(&self, m: &Matrix<'_>) -> Result<EncodedMatrix, CodecError> {
        self.encode_with(m, None)
    }

    /// [`GroupFit::encode`], with the tensor's input statistics when
    /// `feedback` is given ([`GroupFit::feedback`]): codes are chosen a
    /// block of columns at a time, each block's error fed back into the
    /// columns not yet quantised (GPTQ), and row scales refitted to the
    /// least `G`-weighted error, so the layer's output error, not the
    /// weights' squared error, is what the codes minimise. Stages are
    /// assigned greedily (no joint rounds), and SlotL tensors are encoded
    /// as without statistics.
    pub fn encode_with(
        &self,
        m: &Matrix<'_>,
        feedback: Option<&Feedback>,
    ) -> Result<EncodedMatrix, CodecError> {
        let n = self.n_cols;
        check_member(0, m, n, true)?;
        let fb = match feedback {
            Some(fb) if fb.cols() != n => {
                return Err(CodecError::StatsWidth {
                    expected: n,
                    got: fb.cols(),
                })
            }
            Some(fb) if !self.spec.slot_l => Some(fb),
            _ => None,
        };
        let p = prepare(
            m.data.par_chunks(n),
            m.n_rows,
            n,
            self.shift,
            self.spec.row_scale,
        );
        let (codes, acc) = match fb {
            None => self.assign_stages(&p),
            Some(fb) => self.assign_feedback(&p, fb),
        };
        let scales = self.refit_scales(&p, &acc, fb);
        let slot = match &self.basis {
            Some(b) => {
                let r = slot_residual(&p.xn, &acc, &scales, n, self.spec.row_scale);
                Some(quantise_slot(&coefficients(&r, n, b), exp2(self.shift)))
            }
            None => None,
        };
        Ok(EncodedMatrix {
            n_rows: m.n_rows,
            n_cols: n,
            codes,
            scales: self.spec.row_scale.then_some(scales),
            slot,
        })
    }

    /// Decodes row `row` of `m` (encoded by this fit) through the format's
    /// kernel into `out` (`n_cols` values), exactly as a reader will.
    pub fn decode_row(
        &self,
        m: &EncodedMatrix,
        row: usize,
        out: &mut [f32],
    ) -> Result<(), CodecError> {
        self.decoder.checked(0, m, row, out)
    }

    /// An [`EncodedGroup`] of `tensors` (encoded by this fit) with copies of
    /// the fit's palettes and basis: what the builder writes.
    pub fn group_of(&self, tensors: Vec<EncodedMatrix>) -> EncodedGroup {
        EncodedGroup {
            spec: self.spec,
            n_cols: self.n_cols,
            palettes: self.palettes.clone(),
            basis: self.basis.clone(),
            tensors,
        }
    }

    /// The group of `tensors` encoded by this fit.
    pub fn into_group(self, tensors: Vec<EncodedMatrix>) -> EncodedGroup {
        EncodedGroup {
            spec: self.spec,
            n_cols: self.n_cols,
            palettes: self.palettes,
            basis: self.basis,
            tensors,
        }
    }
}

/// Encodes a group of tensors that share `n_cols` and therefore share one
/// palette per stage (and one SlotL basis): [`fit_group`] on all their rows
/// (or on [`sample_rows`] of them for a large group), then
/// [`GroupFit::encode`] on each.
pub fn encode_group(tensors: &[Matrix<'_>], spec: &CodecSpec) -> Result<EncodedGroup, CodecError> {
    let n = validate(tensors, spec)?;
    let total: usize = tensors.iter().map(|m| m.n_rows).sum();
    let fit = match sample_rows(total, n, spec) {
        None => fit_group(tensors, spec)?,
        Some(pick) => {
            let all: Vec<&[f32]> = tensors
                .iter()
                .flat_map(|m| m.data.chunks_exact(n))
                .collect();
            let data: Vec<f32> = pick.iter().flat_map(|&r| all[r]).copied().collect();
            fit_group(&[Matrix::new(&data, pick.len(), n)?], spec)?
        }
    };
    let out = tensors
        .iter()
        .map(|m| fit.encode(m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(fit.into_group(out))
}

/// `acc += palette[code]` (or `-=` when `sub`) for every sub-vector, over
/// the real columns only (a last partial sub-vector uses the head of its
/// entry, as the kernel does), in parallel over rows.
fn add_stage(acc: &mut [f32], n: usize, d: usize, pal: &[f32], codes: &[u8], sub: bool) {
    let ns = n_sub(n, d);
    acc.par_chunks_mut(n)
        .zip(codes.par_chunks(ns.max(1)))
        .for_each(|(a, c)| {
            for (part, &code) in a.chunks_mut(d).zip(c) {
                let e = &pal[code as usize * d..code as usize * d + d];
                for (o, &v) in part.iter_mut().zip(e) {
                    if sub {
                        *o -= v;
                    } else {
                        *o += v;
                    }
                }
            }
        });
}

/// Fills `out` with the sub-vectors of width `d` of `target - acc` (rows of
/// `n`, each zero-padded to `n_sub * d`).
fn gather(out: &mut Vec<f32>, target: &[f32], acc: Option<&[f32]>, n: usize, d: usize) {
    let w = n_sub(n, d) * d;
    let total = target.len() / n;
    out.clear();
    out.resize(total * w, 0.0);
    out.par_chunks_mut(w)
        .zip(target.par_chunks(n))
        .enumerate()
        .for_each(|(r, (o, t))| match acc {
            Some(a) => {
                for ((ov, &tv), &av) in o.iter_mut().zip(t).zip(&a[r * n..r * n + n]) {
                    *ov = tv - av;
                }
            }
            None => o[..n].copy_from_slice(t),
        });
}

/// The palette rounding of `spec` for stage `stage`: values rounded to the
/// element type; one that overflows it is an error.
fn rounder(spec: &CodecSpec, stage: usize) -> impl Fn(&mut [f32]) -> Result<(), CodecError> {
    let elem = spec.elem;
    move |v: &mut [f32]| {
        for x in v.iter_mut() {
            let r = round_to_elem(*x, elem);
            if !r.is_finite() {
                return Err(CodecError::ElemOverflow {
                    stage,
                    value: *x,
                    elem,
                });
            }
            *x = r;
        }
        Ok(())
    }
}

/// Coordinate descent over the stages: each stage in turn is refitted to
/// the target minus the sum of all other stages. `shapes` is each stage's
/// `(d, bits)`.
fn joint_refine(
    spec: &CodecSpec,
    n: usize,
    target: &[f32],
    shapes: &[(usize, u8)],
    palettes: &mut [Vec<f32>],
    stage_codes: &mut [Vec<u8>],
) -> Result<(), CodecError> {
    let mut others = vec![0f32; target.len()];
    let mut resid = Vec::new();
    for _ in 0..spec.kmeans.joint {
        for s in 0..palettes.len() {
            others.copy_from_slice(target);
            for (t, ((p, codes), &(d, _))) in palettes
                .iter()
                .zip(stage_codes.iter())
                .zip(shapes)
                .enumerate()
            {
                if t != s {
                    add_stage(&mut others, n, d, p, codes, true);
                }
            }
            let d = shapes[s].0;
            gather(&mut resid, &others, None, n, d);
            refit(
                &mut palettes[s],
                &resid,
                d,
                &mut stage_codes[s],
                &rounder(spec, s),
            )?;
        }
    }
    Ok(())
}

/// One tensor's SlotL coefficients (in normalised units) as i8 with one
/// scale, `max |c| / 127`, stored times `up` (`2^shift`).
fn quantise_slot(coefs: &[[f32; SLOT_L_DIMS]], up: f64) -> SlotData {
    let max = coefs
        .iter()
        .flat_map(|c| c.iter())
        .fold(0f32, |m, &v| m.max(v.abs()));
    let mut slot_scale = max / 127.0;
    let stored = (slot_scale as f64 * up) as f32;
    if !(max > 0.0 && slot_scale.is_finite() && stored.is_finite() && stored > 0.0) {
        slot_scale = 0.0;
    }
    let coef = coefs
        .iter()
        .map(|c| {
            c.map(|v| {
                if slot_scale == 0.0 {
                    0
                } else {
                    (v / slot_scale).round().clamp(-127.0, 127.0) as i8
                }
            })
        })
        .collect();
    SlotData {
        coef,
        slot_scale: if slot_scale == 0.0 { 0.0 } else { stored },
    }
}
