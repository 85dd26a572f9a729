//! Group encoding (staged residual palettes, row scales, SlotL) and decoding
//! through the format's normative kernel.

use half::f16;
use hhtld_format::decode::{decode_row, n_sub, SlotRow, StageRow};
use hhtld_format::limits::SLOT_L_DIMS;
use rayon::prelude::*;

use super::error::CodecError;
use super::kmeans::{quantise, refit, KmeansParams};
use super::slot::{coefficients, top_basis};
use super::{CodecSpec, EncodedGroup, EncodedMatrix, Matrix, PaletteData, SlotData};
use hhtld_format::encode::{pack_stage_row, round_to_elem, stage_row_bytes, StoredElems as Stored};

/// Checks the group against the spec; returns `n_cols`.
fn validate(tensors: &[Matrix<'_>], spec: &CodecSpec) -> Result<usize, CodecError> {
    spec.check()?;
    let first = tensors.first().ok_or(CodecError::EmptyGroup)?;
    let n_cols = first.n_cols;
    for (t, m) in tensors.iter().enumerate() {
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
    }
    for stage in 0..spec.stages {
        spec.entry_width_of(spec.stage_shape(stage).d, n_cols)?;
    }
    for (t, m) in tensors.iter().enumerate() {
        if let Some(i) = m.data.iter().position(|v| !v.is_finite()) {
            return Err(CodecError::NonFinite {
                tensor: t,
                row: i / n_cols,
                col: i % n_cols,
                value: m.data[i],
            });
        }
    }
    Ok(n_cols)
}

/// `v` as a stored f16 row scale: overflow clamps to the largest f16, and a
/// non-zero value never rounds to zero (that would erase its row).
fn f16_scale(v: f64) -> f32 {
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

/// Encodes a group of tensors that share `n_cols` and therefore share one
/// palette per stage (and one SlotL basis).
///
/// Each stage's palette is fitted to the residual that the previous stages
/// leave *as decoded from their rounded palettes*, so what a file decodes is
/// what was measured. Row scales (`row_scale`) are each row's RMS rounded to
/// f16; after the stages each scale is refitted by least squares to the
/// decoded row when that lowers the row's error. Rows whose width is not a
/// multiple of `d` are encoded as if padded with zeros.
pub fn encode_group(tensors: &[Matrix<'_>], spec: &CodecSpec) -> Result<EncodedGroup, CodecError> {
    let n = validate(tensors, spec)?;
    let rows: Vec<&[f32]> = tensors
        .iter()
        .flat_map(|m| m.data.chunks_exact(n))
        .collect();
    let total = rows.len();

    // Targets: rows divided by their scale.
    let mut target = vec![0f32; total * n];
    let mut scales = vec![1f32; total];
    target
        .par_chunks_mut(n)
        .zip(scales.par_iter_mut())
        .zip(rows.par_iter())
        .for_each(|((t, s), x)| {
            if spec.row_scale {
                let ms = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n as f64;
                *s = f16_scale(ms.sqrt());
                if *s != 0.0 {
                    for (o, &v) in t.iter_mut().zip(x.iter()) {
                        *o = v / *s;
                    }
                }
            } else {
                t.copy_from_slice(x);
            }
        });

    // Residual stages; `acc` mirrors the kernel's running sum exactly.
    let mut acc = vec![0f32; total * n];
    let mut resid = Vec::new();
    let mut palettes: Vec<PaletteData> = Vec::with_capacity(spec.stages);
    let mut stage_codes: Vec<Vec<u8>> = Vec::with_capacity(spec.stages);
    for stage in 0..spec.stages {
        let shape = spec.stage_shape(stage);
        let d = spec.entry_width_of(shape.d, n)?;
        gather(&mut resid, &target, Some(&acc), n, d);
        let params = KmeansParams {
            seed: spec
                .kmeans
                .seed
                .wrapping_add((stage as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            ..spec.kmeans
        };
        let (pal, codes) = quantise(&resid, d, shape.k, &params, &rounder(spec, stage))?;
        add_stage(&mut acc, n, d, &pal, &codes, false);
        palettes.push(PaletteData {
            k: pal.len() / d,
            d,
            bits: shape.bits,
            elem: spec.elem,
            values: pal,
        });
        stage_codes.push(codes);
    }
    if spec.stages > 1 && spec.kmeans.joint > 0 {
        joint_refine(spec, n, &target, &mut palettes, &mut stage_codes)?;
        // Rebuild the running sum in stage order, as the kernel adds.
        acc.fill(0.0);
        for (p, codes) in palettes.iter().zip(&stage_codes) {
            add_stage(&mut acc, n, p.d, &p.values, codes, false);
        }
    }
    drop(resid);
    drop(target);

    // Refit each scale to its decoded row when that helps.
    if spec.row_scale {
        scales
            .par_iter_mut()
            .zip(acc.par_chunks(n))
            .zip(rows.par_iter())
            .for_each(|((s, a), x)| {
                let num: f64 = x.iter().zip(a).map(|(&p, &q)| p as f64 * q as f64).sum();
                let den: f64 = a.iter().map(|&q| (q as f64).powi(2)).sum();
                if den > 0.0 {
                    let cand = f16_scale(num / den);
                    if scaled_err(x, a, cand) < scaled_err(x, a, *s) {
                        *s = cand;
                    }
                }
            });
    }

    // SlotL: an 8-dim residual on the group's top singular directions.
    let mut basis = None;
    let mut coefs = Vec::new();
    if spec.slot_l {
        let mut r = vec![0f32; total * n];
        r.par_chunks_mut(n)
            .zip(acc.par_chunks(n))
            .zip(scales.par_iter())
            .zip(rows.par_iter())
            .for_each(|(((o, a), &s), x)| {
                for ((ov, &av), &xv) in o.iter_mut().zip(a).zip(x.iter()) {
                    let dec = if spec.row_scale { av * s } else { av };
                    *ov = xv - dec;
                }
            });
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
        coefs = coefficients(&r, n, &b);
        basis = Some(b);
    }

    // Split per tensor.
    let mut out = Vec::with_capacity(tensors.len());
    let mut r0 = 0;
    for m in tensors {
        let r1 = r0 + m.n_rows;
        let codes = stage_codes
            .iter()
            .zip(&palettes)
            .map(|(c, p)| {
                let ns = n_sub(n, p.d);
                c[r0 * ns..r1 * ns].to_vec()
            })
            .collect();
        let slot = spec.slot_l.then(|| quantise_slot(&coefs[r0..r1]));
        out.push(EncodedMatrix {
            n_rows: m.n_rows,
            n_cols: n,
            codes,
            scales: spec.row_scale.then(|| scales[r0..r1].to_vec()),
            slot,
        });
        r0 = r1;
    }
    Ok(EncodedGroup {
        spec: *spec,
        n_cols: n,
        palettes,
        basis,
        tensors: out,
    })
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
/// the target minus the sum of all other stages.
fn joint_refine(
    spec: &CodecSpec,
    n: usize,
    target: &[f32],
    palettes: &mut [PaletteData],
    stage_codes: &mut [Vec<u8>],
) -> Result<(), CodecError> {
    let mut others = vec![0f32; target.len()];
    let mut resid = Vec::new();
    for _ in 0..spec.kmeans.joint {
        for s in 0..palettes.len() {
            others.copy_from_slice(target);
            for (t, (p, codes)) in palettes.iter().zip(stage_codes.iter()).enumerate() {
                if t != s {
                    add_stage(&mut others, n, p.d, &p.values, codes, true);
                }
            }
            let d = palettes[s].d;
            gather(&mut resid, &others, None, n, d);
            refit(
                &mut palettes[s].values,
                &resid,
                d,
                &mut stage_codes[s],
                &rounder(spec, s),
            )?;
        }
    }
    Ok(())
}

/// One tensor's SlotL coefficients as i8 with one scale: `max |c| / 127`.
fn quantise_slot(coefs: &[[f32; SLOT_L_DIMS]]) -> SlotData {
    let max = coefs
        .iter()
        .flat_map(|c| c.iter())
        .fold(0f32, |m, &v| m.max(v.abs()));
    let slot_scale = if max > 0.0 && (max / 127.0).is_finite() {
        max / 127.0
    } else {
        0.0
    };
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
    SlotData { coef, slot_scale }
}

/// Decodes an [`EncodedGroup`] through `hhtld_format::decode::decode_row`,
/// with the palettes and basis held in their stored element types (palettes
/// padded to `2^bits` entries), exactly as a reader sees them.
pub struct GroupDecoder<'a> {
    group: &'a EncodedGroup,
    palettes: Vec<Stored>,
    basis: Option<Stored>,
}

impl<'a> GroupDecoder<'a> {
    /// Prepares the stored forms of the group's palettes and basis.
    pub fn new(group: &'a EncodedGroup) -> Self {
        GroupDecoder {
            group,
            palettes: group
                .palettes
                .iter()
                .map(|p| Stored::new(&p.padded_values(), p.elem))
                .collect(),
            basis: group
                .basis
                .as_ref()
                .map(|b| Stored::new(b, group.spec.elem)),
        }
    }

    fn tensor(&self, tensor: usize) -> Result<&'a EncodedMatrix, CodecError> {
        self.group
            .tensors
            .get(tensor)
            .ok_or(CodecError::TensorIndex {
                tensor,
                count: self.group.tensors.len(),
            })
    }

    /// Decodes row `row` of tensor `tensor` into `out` (`n_cols` values),
    /// using `buf` as scratch for the packed codes.
    fn row_into(
        &self,
        tensor: usize,
        m: &EncodedMatrix,
        row: usize,
        buf: &mut Vec<u8>,
        out: &mut [f32],
    ) -> Result<(), CodecError> {
        let g = self.group;
        buf.clear();
        let mut bounds = Vec::with_capacity(g.palettes.len());
        for (s, p) in g.palettes.iter().enumerate() {
            let start = buf.len();
            let ns = n_sub(g.n_cols, p.d);
            let len = stage_row_bytes(ns, p.bits);
            buf.resize(start + len, 0);
            let codes = m.codes.get(s).and_then(|c| c.get(row * ns..row * ns + ns));
            pack_stage_row(codes.unwrap_or(&[]), p.bits, &mut buf[start..]);
            bounds.push((start, start + len));
        }
        let stages: Vec<StageRow<'_>> = self
            .palettes
            .iter()
            .zip(&g.palettes)
            .zip(&bounds)
            .map(|((st, p), &(a, b))| StageRow {
                palette: st.slice(),
                d: p.d,
                bits: p.bits,
                codes: &buf[a..b],
            })
            .collect();
        let scale = m.scales.as_ref().and_then(|s| s.get(row).copied());
        let slot = match (&m.slot, &self.basis) {
            (Some(sd), Some(b)) => sd.coef.get(row).map(|coef| SlotRow {
                coef,
                basis: b.slice(),
                slot_scale: sd.slot_scale,
            }),
            _ => None,
        };
        decode_row(&stages, scale, slot.as_ref(), out).map_err(|source| CodecError::Kernel {
            tensor,
            row,
            source,
        })
    }

    /// Decodes row `row` of tensor `tensor` into `out` (`n_cols` values).
    pub fn decode_row(&self, tensor: usize, row: usize, out: &mut [f32]) -> Result<(), CodecError> {
        let m = self.tensor(tensor)?;
        if row >= m.n_rows {
            return Err(CodecError::RowIndex {
                tensor,
                row,
                n_rows: m.n_rows,
            });
        }
        if out.len() != m.n_cols {
            return Err(CodecError::BufferLen {
                expected: m.n_cols,
                got: out.len(),
            });
        }
        self.row_into(tensor, m, row, &mut Vec::new(), out)
    }

    /// Decodes every row of tensor `tensor`, row-major, in parallel.
    pub fn decode_matrix(&self, tensor: usize) -> Result<Vec<f32>, CodecError> {
        let m = self.tensor(tensor)?;
        let n = m.n_cols;
        let mut out = vec![0f32; m.n_rows * n];
        out.par_chunks_mut(n.max(1))
            .enumerate()
            .try_for_each_init(Vec::new, |buf, (row, o)| {
                self.row_into(tensor, m, row, buf, o)
            })?;
        Ok(out)
    }
}

/// Decodes one row through the format kernel. Convenience for single rows:
/// it prepares the stored palettes on every call; loops should build one
/// [`GroupDecoder`] instead.
pub fn reconstruct(
    group: &EncodedGroup,
    tensor: usize,
    row: usize,
    out: &mut [f32],
) -> Result<(), CodecError> {
    GroupDecoder::new(group).decode_row(tensor, row, out)
}
