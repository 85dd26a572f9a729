//! Safetensors input for hhtld: [`SafetensorsModel::open`] memory-maps one
//! `.safetensors` file, or every shard listed by a `*.index.json`,
//! validates every header entry and then hands tensors out one at a time
//! ([`SafetensorsModel::raw_bytes`] borrows from the map,
//! [`SafetensorsModel::to_f32`] allocates one tensor), so peak memory never
//! holds a copy of the whole model.
//!
//! A crate of its own so that tools that only read safetensors (the
//! encoder, `hhtld verify --against`) share one careful reader without
//! depending on the writer.
//!
//! The header is parsed here rather than with `safetensors::SafeTensors`
//! because that type keeps tensors in a `HashMap` (no stable order) and turns
//! an unknown dtype into an anonymous JSON error; parsing it ourselves gives
//! a deterministic order and errors that name the tensor. The rules checked
//! are the ones the `safetensors` crate checks.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hhtld_import::SafetensorsModel;
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("model.safetensors");
//! # let w = [1.0f32, 2.0, 3.0, 4.0];
//! # let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
//! # let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &bytes)?;
//! # safetensors::serialize_to_file([("w", view)], None, &path)?;
//! let model = SafetensorsModel::open(&path)?;
//! let info = model.get("w").expect("listed");
//! assert_eq!((info.shape.as_slice(), info.matrix_dims()), (&[2u64, 2][..], (2, 2)));
//! assert_eq!(model.to_f32("w")?, [1.0, 2.0, 3.0, 4.0]);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod error;
mod model;

use std::path::PathBuf;

use hhtld_format::encode::{widen_to_f32, WidenError};
use hhtld_format::Dtype;

pub use error::ImportError;
pub use model::SafetensorsModel;

/// Largest safetensors header (and index file) accepted, in bytes; the same
/// cap the `safetensors` crate applies, so no valid file is refused.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// What the importer knows about one tensor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorInfo {
    /// Name as in the safetensors header.
    pub name: String,
    /// Original dtype.
    pub dtype: Dtype,
    /// Shape, outermost first (row-major).
    pub shape: Vec<u64>,
    /// Length of its data in bytes: `numel x dtype.size()`.
    pub byte_len: u64,
}

impl TensorInfo {
    /// Number of elements. Validated not to overflow at open; saturates
    /// for a hand-built `TensorInfo` that would.
    pub fn numel(&self) -> u64 {
        self.shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// `(n_rows, n_cols)` of the matrix view of spec §4; saturates like
    /// [`TensorInfo::numel`].
    pub fn matrix_dims(&self) -> (u64, u64) {
        matrix_dims(&self.shape).unwrap_or((u64::MAX, u64::MAX))
    }
}

pub use hhtld_format::encode::matrix_dims;

/// Maps a safetensors dtype to the hhtld one. `tensor` is only used to name
/// the tensor in the error for a dtype hhtld does not know (the `safetensors`
/// enum is non-exhaustive, so future versions may add some).
pub fn dtype_from_safetensors(
    tensor: &str,
    dtype: safetensors::Dtype,
) -> Result<Dtype, ImportError> {
    use safetensors::Dtype as S;
    Ok(match dtype {
        S::BOOL => Dtype::Bool,
        S::U8 => Dtype::U8,
        S::I8 => Dtype::I8,
        S::I16 => Dtype::I16,
        S::U16 => Dtype::U16,
        S::I32 => Dtype::I32,
        S::U32 => Dtype::U32,
        S::I64 => Dtype::I64,
        S::U64 => Dtype::U64,
        S::F16 => Dtype::F16,
        S::BF16 => Dtype::Bf16,
        S::F32 => Dtype::F32,
        S::F64 => Dtype::F64,
        S::F8_E4M3 => Dtype::F8E4M3,
        S::F8_E5M2 => Dtype::F8E5M2,
        #[allow(unreachable_patterns)]
        other => {
            return Err(ImportError::UnknownDtype {
                path: PathBuf::new(),
                tensor: tensor.to_owned(),
                dtype: format!("{other:?}"),
            })
        }
    })
}

/// Maps an hhtld dtype to the safetensors one (every hhtld dtype has one);
/// used to export passthrough tensors back to safetensors.
pub fn dtype_to_safetensors(dtype: Dtype) -> safetensors::Dtype {
    use safetensors::Dtype as S;
    match dtype {
        Dtype::Bool => S::BOOL,
        Dtype::U8 => S::U8,
        Dtype::I8 => S::I8,
        Dtype::I16 => S::I16,
        Dtype::U16 => S::U16,
        Dtype::I32 => S::I32,
        Dtype::U32 => S::U32,
        Dtype::I64 => S::I64,
        Dtype::U64 => S::U64,
        Dtype::F16 => S::F16,
        Dtype::Bf16 => S::BF16,
        Dtype::F32 => S::F32,
        Dtype::F64 => S::F64,
        Dtype::F8E4M3 => S::F8_E4M3,
        Dtype::F8E5M2 => S::F8_E5M2,
    }
}

/// Appends the little-endian `bytes` of a `dtype` tensor to `out` as f32.
///
/// F32 and F16/BF16 convert exactly; F64 rounds to nearest (values beyond
/// the f32 range become infinities, which the codecs reject). `bytes` need
/// not be aligned: safetensors does not align tensor data. Any other dtype
/// is [`ImportError::NotFloat`].
pub fn decode_f32_into(
    tensor: &str,
    dtype: Dtype,
    bytes: &[u8],
    out: &mut Vec<f32>,
) -> Result<(), ImportError> {
    widen_to_f32(dtype, bytes, out).map_err(|e| match e {
        WidenError::NotFloat => ImportError::NotFloat {
            tensor: tensor.to_owned(),
            dtype,
        },
        WidenError::Ragged => ImportError::RaggedBytes {
            tensor: tensor.to_owned(),
            dtype,
            len: bytes.len(),
        },
    })
}
