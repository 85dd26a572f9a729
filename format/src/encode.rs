//! The writing direction of the byte rules, beside [`crate::decode`]: how a
//! tensor shape is viewed as a matrix, how values are rounded to a stored
//! element type and laid out, how codes are packed into ENTRY rows, and how
//! raw float dtypes widen to f32 (spec §4). The builder and the codecs both
//! call these functions, so what a codec measures is what a file holds.
//!
//! ```
//! use hhtld_format::decode::unpack_code;
//! use hhtld_format::encode::{pack_stage_row, round_to_elem, stage_row_bytes};
//! use hhtld_format::ElemType;
//!
//! // Three 4-bit codes take two bytes; the last high nibble is zero.
//! let mut row = vec![0u8; stage_row_bytes(3, 4)];
//! pack_stage_row(&[1, 2, 3], 4, &mut row);
//! assert_eq!(row, [0x21, 0x03]);
//! assert_eq!(unpack_code(&row, 4, 2), Some(3));
//! // 0.1 is not a bf16 value; the stored one is what a reader decodes.
//! assert_eq!(round_to_elem(0.1, ElemType::Bf16), 0.10009765625);
//! ```

use half::{bf16, f16};

use crate::decode::ElemSlice;
use crate::{Dtype, ElemType};

/// The matrix view of a shape (spec §4 "Shape"): 0-D is `1 x 1`, 1-D is
/// `1 x shape[0]`, otherwise `shape[0] x (shape[1] x ...)`. `None` when the
/// column count overflows u64 (the element count may still overflow; see
/// [`numel_of`]).
pub fn matrix_dims(shape: &[u64]) -> Option<(u64, u64)> {
    match shape {
        [] => Some((1, 1)),
        [n] => Some((1, *n)),
        [rows, rest @ ..] => {
            let cols = rest.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
            Some((*rows, cols))
        }
    }
}

/// Elements of a shape, `None` on u64 overflow.
pub fn numel_of(shape: &[u64]) -> Option<u64> {
    let (r, c) = matrix_dims(shape)?;
    r.checked_mul(c)
}

/// `v` rounded to `elem` (round to nearest, ties to even) and widened back
/// to f32: exactly the value a reader decodes from the stored element.
pub fn round_to_elem(v: f32, elem: ElemType) -> f32 {
    match elem {
        ElemType::F32 => v,
        ElemType::F16 => f16::from_f32(v).to_f32(),
        ElemType::Bf16 => bf16::from_f32(v).to_f32(),
    }
}

/// Rounds `v` to `elem`, appends its little-endian bytes to `out` and
/// returns the stored value (what [`round_to_elem`] gives).
pub fn push_elem(v: f32, elem: ElemType, out: &mut Vec<u8>) -> f32 {
    match elem {
        ElemType::F32 => {
            out.extend_from_slice(&v.to_le_bytes());
            v
        }
        ElemType::F16 => {
            let h = f16::from_f32(v);
            out.extend_from_slice(&h.to_le_bytes());
            h.to_f32()
        }
        ElemType::Bf16 => {
            let h = bf16::from_f32(v);
            out.extend_from_slice(&h.to_le_bytes());
            h.to_f32()
        }
    }
}

/// Little-endian bytes of `values` stored as `elem`, as a section holds them.
pub fn elem_bytes(values: &[f32], elem: ElemType) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * elem.size());
    for &v in values {
        push_elem(v, elem, &mut out);
    }
    out
}

/// Values held in their stored element type, so the decode kernel reads
/// exactly what a file would hold (used by the codecs to measure).
#[derive(Debug, Clone, PartialEq)]
pub enum StoredElems {
    /// F32 values.
    F32(Vec<f32>),
    /// F16 values.
    F16(Vec<f16>),
    /// BF16 values.
    Bf16(Vec<bf16>),
}

impl StoredElems {
    /// `values` rounded to `elem` and held as `elem`.
    pub fn new(values: &[f32], elem: ElemType) -> Self {
        match elem {
            ElemType::F32 => StoredElems::F32(values.to_vec()),
            ElemType::F16 => StoredElems::F16(values.iter().map(|&v| f16::from_f32(v)).collect()),
            ElemType::Bf16 => {
                StoredElems::Bf16(values.iter().map(|&v| bf16::from_f32(v)).collect())
            }
        }
    }

    /// The kernel's view.
    pub fn slice(&self) -> ElemSlice<'_> {
        match self {
            StoredElems::F32(v) => ElemSlice::F32(v),
            StoredElems::F16(v) => ElemSlice::F16(v),
            StoredElems::Bf16(v) => ElemSlice::Bf16(v),
        }
    }
}

/// Packed bytes of one stage of one row with `n_sub` codes of `bits` bits:
/// `n_sub` for 8-bit codes, `ceil(n_sub / 2)` otherwise (4-bit).
pub fn stage_row_bytes(n_sub: usize, bits: u8) -> usize {
    if bits == 8 {
        n_sub
    } else {
        n_sub.div_ceil(2)
    }
}

/// Packs one stage of one row (spec §4 "ENTRY layout and code packing"):
/// `codes` (one per sub-vector, each `< 2^bits`) into `out`, which holds
/// [`stage_row_bytes`] bytes. `bits = 8`: one byte per code. `bits = 4`:
/// code `j` in the low nibble of byte `j / 2` when `j` is even, the high
/// nibble when odd; an odd count leaves the last high nibble 0.
pub fn pack_stage_row(codes: &[u8], bits: u8, out: &mut [u8]) {
    if bits == 8 {
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = c;
        }
    } else {
        for (o, pair) in out.iter_mut().zip(codes.chunks(2)) {
            let lo = pair[0] & 0x0F;
            let hi = pair.get(1).map_or(0, |&c| c & 0x0F);
            *o = lo | (hi << 4);
        }
    }
}

/// Appends one stage of one row, packed as [`pack_stage_row`] does.
pub fn push_stage_row(codes: &[u8], bits: u8, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + stage_row_bytes(codes.len(), bits), 0);
    pack_stage_row(codes, bits, &mut out[start..]);
}

/// Appends one METADATA entry (spec §5): `u32 key_len`, key, `u32
/// value_len`, value. The caller keeps keys strictly increasing and within
/// `MAX_NAME_LEN` / `MAX_METADATA_BYTES`.
pub fn push_metadata_entry(key: &str, value: &str, out: &mut Vec<u8>) {
    for part in [key, value] {
        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
        out.extend_from_slice(part.as_bytes());
    }
}

/// Why [`widen_to_f32`] refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WidenError {
    /// The dtype is not F16, BF16, F32 or F64.
    NotFloat,
    /// The byte length is not a multiple of the dtype size.
    Ragged,
}

/// Appends the little-endian `bytes` of a `dtype` tensor to `out` as f32.
///
/// F32 and F16/BF16 convert exactly; F64 rounds to nearest (values beyond
/// the f32 range become infinities). `bytes` need not be aligned.
pub fn widen_to_f32(dtype: Dtype, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), WidenError> {
    if !dtype.is_encodable_float() {
        return Err(WidenError::NotFloat);
    }
    let size = dtype.size();
    if !bytes.len().is_multiple_of(size) {
        return Err(WidenError::Ragged);
    }
    out.reserve(bytes.len() / size);
    let two = |c: &[u8]| u16::from_le_bytes([c[0], c[1]]);
    match dtype {
        Dtype::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| f16::from_bits(two(c)).to_f32()),
        ),
        Dtype::Bf16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_bits(two(c)).to_f32()),
        ),
        Dtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        _ => {
            out.extend(bytes.chunks_exact(8).map(|c| {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            }))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{code_bytes, unpack_code};

    #[test]
    fn packing_round_trips_through_the_unpacker() {
        for bits in [4u8, 8] {
            for n in 0..9usize {
                let codes: Vec<u8> = (0..n).map(|j| ((j * 7 + 3) % (1 << bits)) as u8).collect();
                let len = stage_row_bytes(n, bits);
                assert_eq!(Some(len), code_bytes(n, 1, bits));
                let mut out = vec![0xAAu8; len];
                pack_stage_row(&codes, bits, &mut out);
                let mut pushed = vec![7u8];
                push_stage_row(&codes, bits, &mut pushed);
                assert_eq!(pushed[1..], out[..]);
                for (j, &c) in codes.iter().enumerate() {
                    assert_eq!(unpack_code(&out, bits, j), Some(c));
                }
                if bits == 4 && n % 2 == 1 {
                    assert_eq!(out[n / 2] >> 4, 0, "last high nibble must be zero");
                }
            }
        }
    }

    #[test]
    fn rounding_is_what_the_bytes_decode_to() {
        for &v in &[0.1f32, -3.3, 1e-3, 65504.0, 1.0 / 3.0] {
            for elem in [ElemType::F32, ElemType::F16, ElemType::Bf16] {
                let r = round_to_elem(v, elem);
                let bytes = elem_bytes(&[v], elem);
                let back = StoredElems::new(&[v], elem).slice().get_f32(0).unwrap();
                assert_eq!(r, back);
                assert_eq!(bytes.len(), elem.size());
                let mut out = Vec::new();
                assert_eq!(push_elem(v, elem, &mut out), r);
                assert_eq!(out, bytes);
                // Rounding is idempotent: a rounded value is stored exactly.
                assert_eq!(round_to_elem(r, elem), r);
            }
        }
        assert_ne!(round_to_elem(0.1, ElemType::Bf16), 0.1);
        assert!(round_to_elem(1e6, ElemType::F16).is_infinite());
    }

    #[test]
    fn matrix_view_and_widening() {
        assert_eq!(matrix_dims(&[]), Some((1, 1)));
        assert_eq!(matrix_dims(&[5]), Some((1, 5)));
        assert_eq!(matrix_dims(&[2, 3, 4]), Some((2, 12)));
        assert_eq!(matrix_dims(&[0, u64::MAX, 2]), None);
        assert_eq!(numel_of(&[u64::MAX, 2]), None);
        assert_eq!(numel_of(&[0, u64::MAX]), Some(0));
        let mut out = Vec::new();
        widen_to_f32(Dtype::Bf16, &bf16::from_f32(1.5).to_le_bytes(), &mut out).unwrap();
        widen_to_f32(Dtype::F64, &2.25f64.to_le_bytes(), &mut out).unwrap();
        assert_eq!(out, [1.5, 2.25]);
        assert_eq!(
            widen_to_f32(Dtype::F32, &[0; 6], &mut out),
            Err(WidenError::Ragged)
        );
        assert_eq!(
            widen_to_f32(Dtype::I32, &[0; 4], &mut out),
            Err(WidenError::NotFloat)
        );
    }
}
