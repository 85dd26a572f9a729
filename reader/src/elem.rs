//! [`OutElem`]: the element types a tensor decodes into (`f32`, `bf16`, `f16`).

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use hhtld_format::decode::bf16_bits;
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
    /// crate implements and calls them. `FromZeros` lets a whole-tensor
    /// buffer come zeroed from the allocator (fresh pages need no zero pass).
    pub trait Sealed: Sized + zerocopy::FromZeros {
        /// `Some(out)` when `Self` is `f32`, so rows decode in place.
        fn as_f32_mut(out: &mut [Self]) -> Option<&mut [f32]>;
        /// `Some(out)` when `Self` is `bf16`, which the one-pass kernel
        /// writes directly.
        fn as_bf16_mut(out: &mut [Self]) -> Option<&mut [bf16]>;
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
    fn as_bf16_mut(_: &mut [f32]) -> Option<&mut [bf16]> {
        None
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
    fn as_bf16_mut(out: &mut [bf16]) -> Option<&mut [bf16]> {
        Some(out)
    }
    fn from_f32_slice(src: &[f32], dst: &mut [bf16]) {
        // `half`'s slice conversion is a loop of branches; this select
        // vectorises and gives the same bits.
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = bf16::from_bits(bf16_bits(s));
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
    fn as_bf16_mut(_: &mut [f16]) -> Option<&mut [bf16]> {
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
