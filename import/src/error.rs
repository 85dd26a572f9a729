//! The reader's error type.

use std::path::PathBuf;

use hhtld_format::limits::{MAX_DIMS, MAX_NAME_LEN};
use hhtld_format::Dtype;

/// Everything that can go wrong while reading a safetensors model. Each
/// variant names the file and, where there is one, the tensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be opened, read or mapped.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A directory was given that holds neither `model.safetensors` nor
    /// `model.safetensors.index.json`.
    #[error("{}: directory holds neither model.safetensors nor model.safetensors.index.json", path.display())]
    NoModelInDir {
        /// The directory.
        path: PathBuf,
    },
    /// The file is shorter than the 8-byte header length.
    #[error("{}: file is {len} bytes, shorter than the 8-byte safetensors header length", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The header (or index file) is larger than [`MAX_HEADER_LEN`](crate::MAX_HEADER_LEN).
    #[error("{}: header of {len} bytes exceeds the limit of {max} bytes", path.display())]
    HeaderTooLarge {
        /// The file.
        path: PathBuf,
        /// Declared header length, or the index file's length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The declared header length runs past the end of the file.
    #[error("{}: header of {header_len} bytes runs past the end of the {file_len}-byte file", path.display())]
    HeaderPastEnd {
        /// The file.
        path: PathBuf,
        /// Declared header length.
        header_len: u64,
        /// File length.
        file_len: u64,
    },
    /// The header (or index) is not valid JSON.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The JSON is valid but not shaped as expected.
    #[error("{}: {detail}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A tensor entry of the header is malformed.
    #[error("{}: tensor {tensor:?}: {detail}", path.display())]
    BadTensorEntry {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// What is wrong.
        detail: String,
    },
    /// A tensor has a dtype that hhtld does not know.
    #[error("{}: tensor {tensor:?}: unknown dtype {dtype:?}", path.display())]
    UnknownDtype {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The dtype as written in the header.
        dtype: String,
    },
    /// A tensor name is empty or longer than `MAX_NAME_LEN` bytes.
    #[error("{}: tensor name of {len} bytes (starting {prefix:?}) is outside 1..={MAX_NAME_LEN}", path.display())]
    BadName {
        /// The file.
        path: PathBuf,
        /// The first characters of the name.
        prefix: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A tensor has more than `MAX_DIMS` dimensions.
    #[error("{}: tensor {tensor:?}: {ndims} dimensions, at most {MAX_DIMS} are supported", path.display())]
    TooManyDims {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Its number of dimensions.
        ndims: usize,
    },
    /// The shape's element count (or matrix width) overflows u64.
    #[error("{}: tensor {tensor:?}: shape {shape:?} overflows u64", path.display())]
    ShapeOverflow {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The shape.
        shape: Vec<u64>,
    },
    /// `data_offsets` do not span `numel x size(dtype)` bytes.
    #[error("{}: tensor {tensor:?}: data_offsets span {actual} bytes, shape and dtype need {expected}", path.display())]
    ByteLenMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Bytes implied by shape and dtype.
        expected: u64,
        /// Bytes spanned by the offsets.
        actual: u64,
    },
    /// Tensor data do not tile the data area: a gap, an overlap, or an end
    /// past the file.
    #[error("{}: tensor {tensor:?}: data_offsets [{start}, {end}) but the next tensor must start at {expected_start} and the data area is {data_len} bytes", path.display())]
    BadOffsets {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Its start, relative to the data area.
        start: u64,
        /// Its end, relative to the data area.
        end: u64,
        /// Where it had to start.
        expected_start: u64,
        /// Length of the data area.
        data_len: u64,
    },
    /// Bytes after the last tensor's data.
    #[error("{}: tensors cover {covered} of the {data_len} data bytes; the rest is not a tensor", path.display())]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes covered by tensors.
        covered: u64,
        /// Length of the data area.
        data_len: u64,
    },
    /// More tensors than `MAX_TENSORS`.
    #[error("{}: {count} tensors, at most {max} are supported", path.display())]
    TooManyTensors {
        /// The file (or index).
        path: PathBuf,
        /// Tensors found so far.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A shard named by the index is not a plain relative file name.
    #[error("{}: shard path {shard:?} (for tensor {tensor:?}) must be relative, without `..`", path.display())]
    BadShardPath {
        /// The index file.
        path: PathBuf,
        /// The shard as written.
        shard: String,
        /// A tensor mapped to it.
        tensor: String,
    },
    /// A shard and the index disagree about a tensor.
    #[error("{}: tensor {tensor:?}: {detail}", shard.display())]
    ShardMismatch {
        /// The shard file.
        shard: PathBuf,
        /// The tensor name.
        tensor: String,
        /// What disagrees.
        detail: String,
    },
    /// No tensor of that name in the model.
    #[error("{}: no tensor named {tensor:?}", path.display())]
    TensorNotFound {
        /// The model path.
        path: PathBuf,
        /// The requested name.
        tensor: String,
    },
    /// `to_f32` was asked for a tensor that is not F16, BF16, F32 or F64.
    #[error(
        "tensor {tensor:?}: dtype {dtype} cannot be converted to f32 (only F16, BF16, F32, F64)"
    )]
    NotFloat {
        /// The tensor name.
        tensor: String,
        /// Its dtype.
        dtype: Dtype,
    },
    /// A byte slice is not a whole number of elements.
    #[error("tensor {tensor:?}: {len} bytes is not a multiple of the {dtype} element size")]
    RaggedBytes {
        /// The tensor name.
        tensor: String,
        /// The dtype.
        dtype: Dtype,
        /// The slice length.
        len: usize,
    },
}
