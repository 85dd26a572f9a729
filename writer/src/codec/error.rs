//! Typed errors of the codecs.

use hhtld_format::decode::KernelError;
use hhtld_format::ElemType;
use thiserror::Error;

/// Why a codec call failed. Every variant says what and where.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CodecError {
    /// `bits` is not one of the widths the format packs (4 or 8).
    #[error("code width {bits} is not 4 or 8")]
    Bits {
        /// The width asked for.
        bits: u8,
    },
    /// `k` is 0, larger than `2^bits`, or larger than `MAX_PALETTE_K`.
    #[error("palette size k = {k} is not in 1..={max} (bits = {bits})")]
    K {
        /// The size asked for.
        k: usize,
        /// The code width.
        bits: u8,
        /// `min(2^bits, MAX_PALETTE_K)`.
        max: usize,
    },
    /// Stage count outside `1..=MAX_STAGES`.
    #[error("stage count {stages} is not in 1..={max}")]
    Stages {
        /// The count asked for.
        stages: usize,
        /// `MAX_STAGES`.
        max: usize,
    },
    /// Palette entry width larger than the rows (or than `MAX_PALETTE_D`).
    #[error("palette width d = {d} does not fit rows of {n_cols} columns (limit {max})")]
    Width {
        /// The effective entry width.
        d: usize,
        /// The group's row width.
        n_cols: usize,
        /// `MAX_PALETTE_D`.
        max: usize,
    },
    /// A group with no tensors has no row width to encode.
    #[error("a group must hold at least one tensor")]
    EmptyGroup,
    /// Zero-width rows cannot be palette-encoded.
    #[error("tensor {tensor}: rows have 0 columns")]
    ZeroWidth {
        /// Tensor index in the group.
        tensor: usize,
    },
    /// Tensors of one group must share `n_cols` (they share palettes).
    #[error("tensor {tensor}: {got} columns, but the group's first tensor has {expected}")]
    GroupWidth {
        /// Tensor index in the group.
        tensor: usize,
        /// The first tensor's width.
        expected: usize,
        /// This tensor's width.
        got: usize,
    },
    /// `data.len()` is not `n_rows * n_cols` (or that product overflows).
    #[error("tensor {tensor}: {got} values, expected {n_rows} x {n_cols}")]
    DataLen {
        /// Tensor index in the group.
        tensor: usize,
        /// Declared rows.
        n_rows: usize,
        /// Declared columns.
        n_cols: usize,
        /// Values given.
        got: usize,
    },
    /// A NaN or infinity in the input.
    #[error("tensor {tensor}: non-finite value {value} at row {row}, column {col}")]
    NonFinite {
        /// Tensor index in the group.
        tensor: usize,
        /// Row of the value.
        row: usize,
        /// Column of the value.
        col: usize,
        /// The value itself.
        value: f32,
    },
    /// A palette or basis value does not fit the element type (e.g. above
    /// 65504 in f16), so the file could not store it finitely.
    #[error("stage {stage}: value {value} overflows {elem} when stored")]
    ElemOverflow {
        /// Stage index, or `usize::MAX` for the SlotL basis.
        stage: usize,
        /// The f32 value.
        value: f32,
        /// The element type.
        elem: ElemType,
    },
    /// A tensor index past the group's tensors.
    #[error("tensor index {tensor} out of range: the group has {count} tensors")]
    TensorIndex {
        /// Index asked for.
        tensor: usize,
        /// Tensors in the group.
        count: usize,
    },
    /// A row index past the tensor's rows.
    #[error("tensor {tensor}: row {row} out of range ({n_rows} rows)")]
    RowIndex {
        /// Tensor index.
        tensor: usize,
        /// Row asked for.
        row: usize,
        /// Rows of the tensor.
        n_rows: usize,
    },
    /// An output or comparison buffer of the wrong length.
    #[error("buffer of {got} values, expected {expected}")]
    BufferLen {
        /// Expected length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// The decode kernel rejected what the encoder produced (an internal
    /// inconsistency: the encoder and kernel disagree on a length).
    #[error("tensor {tensor}, row {row}: decode kernel: {source}")]
    Kernel {
        /// Tensor index.
        tensor: usize,
        /// Row index.
        row: usize,
        /// The kernel's error.
        source: KernelError,
    },
    /// Input statistics ([`crate::calibration::InputStats`]) measured for
    /// a different width than the tensor's rows.
    #[error("input statistics have {got} columns, the tensor {expected}")]
    StatsWidth {
        /// The tensor's columns.
        expected: usize,
        /// The statistics' columns.
        got: usize,
    },
    /// The input statistics' Gram matrix, even damped, is not positive
    /// definite: it is not a second-moment matrix.
    #[error("input statistics are not positive semi-definite")]
    StatsNotDefinite,
}

impl From<hhtld_format::quality::QualityError> for CodecError {
    fn from(e: hhtld_format::quality::QualityError) -> Self {
        use hhtld_format::quality::QualityError as Q;
        match e {
            Q::DataLen {
                n_rows,
                n_cols,
                got,
            } => CodecError::DataLen {
                tensor: 0,
                n_rows,
                n_cols,
                got,
            },
            Q::BufferLen { expected, got } => CodecError::BufferLen { expected, got },
        }
    }
}
