//! Decoding encoded groups through the format's normative kernel, with the
//! palettes and basis in their stored element types, as a reader sees them.

use hhtld_format::decode::{decode_row, n_sub, SlotRow, StageRow};
use hhtld_format::encode::{pack_stage_row, stage_row_bytes, StoredElems as Stored};
use rayon::prelude::*;

use crate::codec::error::CodecError;
use crate::codec::{EncodedGroup, EncodedMatrix, PaletteData};

/// Palettes and basis held in their stored element types (palettes padded
/// to `2^bits` entries), decoding rows through
/// `hhtld_format::decode::decode_row` exactly as a reader does.
#[derive(Debug, Clone)]
pub(super) struct RowDecoder {
    n_cols: usize,
    /// `(d, bits)` per stage.
    shapes: Vec<(usize, u8)>,
    palettes: Vec<Stored>,
    basis: Option<Stored>,
}

impl RowDecoder {
    pub(super) fn new(
        n_cols: usize,
        palettes: &[PaletteData],
        basis: Option<&[f32]>,
        elem: hhtld_format::ElemType,
    ) -> Self {
        RowDecoder {
            n_cols,
            shapes: palettes.iter().map(|p| (p.d, p.bits)).collect(),
            palettes: palettes
                .iter()
                .map(|p| Stored::new(&p.padded_values(), p.elem))
                .collect(),
            basis: basis.map(|b| Stored::new(b, elem)),
        }
    }

    /// [`RowDecoder::row_into`] after checking `row` and `out`.
    pub(super) fn checked(
        &self,
        tensor: usize,
        m: &EncodedMatrix,
        row: usize,
        out: &mut [f32],
    ) -> Result<(), CodecError> {
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

    /// Decodes row `row` of `m` into `out` (`n_cols` values), using `buf`
    /// as scratch for the packed codes.
    fn row_into(
        &self,
        tensor: usize,
        m: &EncodedMatrix,
        row: usize,
        buf: &mut Vec<u8>,
        out: &mut [f32],
    ) -> Result<(), CodecError> {
        buf.clear();
        let mut bounds = Vec::with_capacity(self.shapes.len());
        for (s, &(d, bits)) in self.shapes.iter().enumerate() {
            let start = buf.len();
            let ns = n_sub(self.n_cols, d);
            let len = stage_row_bytes(ns, bits);
            buf.resize(start + len, 0);
            let codes = m.codes.get(s).and_then(|c| c.get(row * ns..row * ns + ns));
            pack_stage_row(codes.unwrap_or(&[]), bits, &mut buf[start..]);
            bounds.push((start, start + len));
        }
        let stages: Vec<StageRow<'_>> = self
            .palettes
            .iter()
            .zip(&self.shapes)
            .zip(&bounds)
            .map(|((st, &(d, bits)), &(a, b))| StageRow {
                palette: st.slice(),
                d,
                bits,
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
}

/// Decodes an [`EncodedGroup`] through `hhtld_format::decode::decode_row`,
/// with the palettes and basis held in their stored element types (palettes
/// padded to `2^bits` entries), exactly as a reader sees them.
pub struct GroupDecoder<'a> {
    group: &'a EncodedGroup,
    dec: RowDecoder,
}

impl<'a> GroupDecoder<'a> {
    /// Prepares the stored forms of the group's palettes and basis.
    pub fn new(group: &'a EncodedGroup) -> Self {
        GroupDecoder {
            group,
            dec: RowDecoder::new(
                group.n_cols,
                &group.palettes,
                group.basis.as_deref(),
                group.spec.elem,
            ),
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

    /// Decodes row `row` of tensor `tensor` into `out` (`n_cols` values).
    pub fn decode_row(&self, tensor: usize, row: usize, out: &mut [f32]) -> Result<(), CodecError> {
        let m = self.tensor(tensor)?;
        self.dec.checked(tensor, m, row, out)
    }

    /// Decodes every row of tensor `tensor`, row-major, in parallel.
    pub fn decode_matrix(&self, tensor: usize) -> Result<Vec<f32>, CodecError> {
        let m = self.tensor(tensor)?;
        let n = m.n_cols;
        let mut out = vec![0f32; m.n_rows * n];
        out.par_chunks_mut(n.max(1))
            .enumerate()
            .try_for_each_init(Vec::new, |buf, (row, o)| {
                self.dec.row_into(tensor, m, row, buf, o)
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
