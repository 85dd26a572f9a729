//! [`OutElem`]: the element types a tensor decodes into (`f32`, `bf16`, `f16`).

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use hhtld_format::Dtype;

/// An element type the reader decodes into: `f32`, [`half::bf16`] or
/// [`half::f16`] (sealed: no other type implements it).
///
/// PALETTE tensors are decoded in f32 arithmetic exactly as spec §4 defines,
/// one row at a time, and each row is rounded once to the output type
/// (round to nearest, ties to even; values beyond the type's range become
/// infinities, NaN stays NaN). No f32 copy of the whole tensor is made.
///
/// RAW tensors of a float dtype (F32, F16, BF16, F64) convert element by
/// element with one rounding from the stored value (F64 to bf16 rounds
/// once, not through f32); a stored dtype equal to the output is copied
/// bit for bit. RAW tensors of other dtypes (integers, BOOL, F8_*) do not
/// convert: the decode methods return [`crate::ReaderError::NotFloat`], and
/// their bytes are read with [`crate::TensorView::raw_bytes`] or
/// [`crate::TensorView::raw_slice`] instead.
pub trait OutElem:
    sealed::Sealed + Copy + Default + PartialEq + Send + Sync + core::fmt::Debug + 'static
{
    /// The dtype of this type, as safetensors names it.
    const DTYPE: Dtype;
}

impl OutElem for f32 {
    const DTYPE: Dtype = Dtype::F32;
}
impl OutElem for bf16 {
    const DTYPE: Dtype = Dtype::Bf16;
}
impl OutElem for f16 {
    const DTYPE: Dtype = Dtype::F16;
}

pub(crate) mod sealed {
    use half::{bf16, f16};

    /// The conversions behind [`super::OutElem`]; private so that only this
    /// crate implements and calls them.
    pub trait Sealed: Sized {
        /// `Some(out)` when `Self` is `f32`, so rows decode in place.
        fn as_f32_mut(out: &mut [Self]) -> Option<&mut [f32]>;
        /// Rounds `src` into `dst` (same length).
        fn from_f32_slice(src: &[f32], dst: &mut [Self]);
        /// One value, rounded once.
        fn from_f32(v: f32) -> Self;
        /// One value, rounded once.
        fn from_f64(v: f64) -> Self;
        /// One value, rounded once (exact for f32 and f16).
        fn from_f16(v: f16) -> Self;
        /// One value, rounded once (exact for f32 and bf16).
        fn from_bf16(v: bf16) -> Self;
    }
}

impl sealed::Sealed for f32 {
    fn as_f32_mut(out: &mut [f32]) -> Option<&mut [f32]> {
        Some(out)
    }
    fn from_f32_slice(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    #[inline(always)]
    fn from_f32(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    #[inline(always)]
    fn from_f16(v: f16) -> f32 {
        v.to_f32()
    }
    #[inline(always)]
    fn from_bf16(v: bf16) -> f32 {
        v.to_f32()
    }
}

impl sealed::Sealed for bf16 {
    fn as_f32_mut(_: &mut [bf16]) -> Option<&mut [f32]> {
        None
    }
    fn from_f32_slice(src: &[f32], dst: &mut [bf16]) {
        // `half`'s slice conversion is a loop of branches; this select
        // vectorises and gives the same bits.
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = bf16::from_bits(round_bf16(s));
        }
    }
    #[inline(always)]
    fn from_f32(v: f32) -> bf16 {
        bf16::from_f32(v)
    }
    #[inline(always)]
    fn from_f64(v: f64) -> bf16 {
        bf16::from_f64(v)
    }
    #[inline(always)]
    fn from_f16(v: f16) -> bf16 {
        bf16::from_f32(v.to_f32())
    }
    #[inline(always)]
    fn from_bf16(v: bf16) -> bf16 {
        v
    }
}

impl sealed::Sealed for f16 {
    fn as_f32_mut(_: &mut [f16]) -> Option<&mut [f32]> {
        None
    }
    fn from_f32_slice(src: &[f32], dst: &mut [f16]) {
        dst.convert_from_f32_slice(src);
    }
    #[inline(always)]
    fn from_f32(v: f32) -> f16 {
        f16::from_f32(v)
    }
    #[inline(always)]
    fn from_f64(v: f64) -> f16 {
        f16::from_f64(v)
    }
    #[inline(always)]
    fn from_f16(v: f16) -> f16 {
        v
    }
    #[inline(always)]
    fn from_bf16(v: bf16) -> f16 {
        f16::from_f32(v.to_f32())
    }
}

/// `x` rounded to bf16 bits, to nearest with ties to even (as
/// `bf16::from_f32`); NaN keeps its sign and top payload bits, made quiet.
#[inline(always)]
fn round_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16;
    if b & 0x7FFF_FFFF > 0x7F80_0000 {
        (b >> 16) as u16 | 0x0040
    } else {
        rounded
    }
}

/// Whether RAW tensors of `dtype` convert to an [`OutElem`].
pub(crate) fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::Bf16 | Dtype::F64)
}

/// Converts little-endian `dtype` elements to `O`; `b` holds `out.len()`
/// elements. Callers check [`is_float`] first; other dtypes write nothing.
pub(crate) fn convert_raw<O: OutElem>(dtype: Dtype, b: &[u8], out: &mut [O]) {
    match dtype {
        Dtype::F32 => {
            for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                *o = O::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        Dtype::F16 => {
            for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                *o = O::from_f16(f16::from_le_bytes([c[0], c[1]]));
            }
        }
        Dtype::Bf16 => {
            for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                *o = O::from_bf16(bf16::from_le_bytes([c[0], c[1]]));
            }
        }
        Dtype::F64 => {
            for (o, c) in out.iter_mut().zip(b.chunks_exact(8)) {
                *o = O::from_f64(f64::from_le_bytes([
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                ]));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_matches_half_on_edge_values() {
        let mut xs = vec![
            0.0f32,
            -0.0,
            1.0,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7F80_0001),
            f32::from_bits(0xFF80_0001),
            f32::MIN_POSITIVE,
            f32::from_bits(1),
        ];
        // Ties, just-below and just-above ties, at both parities.
        for base in [0x3F80_0000u32, 0x3F81_0000, 0x7F7F_0000, 0x0001_0000] {
            for low in [0x7FFFu32, 0x8000, 0x8001, 0xFFFF, 0] {
                xs.push(f32::from_bits(base | low));
                xs.push(-f32::from_bits(base | low));
            }
        }
        let mut seed = 1u32;
        for _ in 0..100_000 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            xs.push(f32::from_bits(seed));
        }
        for x in xs {
            assert_eq!(
                round_bf16(x),
                bf16::from_f32(x).to_bits(),
                "{x:e} ({:#010x})",
                x.to_bits()
            );
        }
    }
}
