//! Rounding to the stored element types and typed copies for the kernel.

use half::{bf16, f16};
use hhtld_format::decode::ElemSlice;
use hhtld_format::ElemType;

/// `v` rounded to `elem` (round to nearest even) and widened back to f32:
/// exactly the value a reader decodes from the stored element.
pub fn round_to_elem(v: f32, elem: ElemType) -> f32 {
    match elem {
        ElemType::F32 => v,
        ElemType::F16 => f16::from_f32(v).to_f32(),
        ElemType::Bf16 => bf16::from_f32(v).to_f32(),
    }
}

/// Little-endian bytes of `values` stored as `elem`, as a section holds them.
pub fn to_le_bytes(values: &[f32], elem: ElemType) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * elem.size());
    for &v in values {
        match elem {
            ElemType::F32 => out.extend_from_slice(&v.to_le_bytes()),
            ElemType::F16 => out.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
            ElemType::Bf16 => out.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
        }
    }
    out
}

/// Values held in their stored element type, so the decode kernel reads
/// exactly what a file would hold.
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    F32(Vec<f32>),
    F16(Vec<f16>),
    Bf16(Vec<bf16>),
}

impl Stored {
    /// Converts `values` (already representable in `elem`) to `elem`.
    pub(crate) fn new(values: &[f32], elem: ElemType) -> Self {
        match elem {
            ElemType::F32 => Stored::F32(values.to_vec()),
            ElemType::F16 => Stored::F16(values.iter().map(|&v| f16::from_f32(v)).collect()),
            ElemType::Bf16 => Stored::Bf16(values.iter().map(|&v| bf16::from_f32(v)).collect()),
        }
    }

    /// The kernel's view.
    pub(crate) fn slice(&self) -> ElemSlice<'_> {
        match self {
            Stored::F32(v) => ElemSlice::F32(v),
            Stored::F16(v) => ElemSlice::F16(v),
            Stored::Bf16(v) => ElemSlice::Bf16(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_what_the_bytes_decode_to() {
        for &v in &[0.1f32, -3.3, 1e-3, 65504.0, 1.0 / 3.0] {
            for elem in [ElemType::F32, ElemType::F16, ElemType::Bf16] {
                let r = round_to_elem(v, elem);
                let bytes = to_le_bytes(&[v], elem);
                let back = Stored::new(&[v], elem).slice().get_f32(0).unwrap();
                assert_eq!(r, back);
                assert_eq!(bytes.len(), elem.size());
                // Rounding is idempotent: a rounded value is stored exactly.
                assert_eq!(round_to_elem(r, elem), r);
            }
        }
        assert_ne!(round_to_elem(0.1, ElemType::Bf16), 0.1);
        assert!(round_to_elem(1e6, ElemType::F16).is_infinite());
    }
}
