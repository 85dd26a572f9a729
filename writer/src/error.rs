//! The one error type of the writer crate.
//!
//! Every variant says what was wrong and where: the tensor name, the stage,
//! the row and position of a bad code, the cap that was exceeded and the
//! offending value. Validation errors are returned before anything of the
//! object is written, so the [`crate::builder::Writer`] stays usable after
//! them; I/O errors poison it (see [`WriteError::Poisoned`]).

use std::io;

use hhtld_format::{Dtype, ElemType};

/// Everything that can go wrong while building an hhtld file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The output failed; `op` says what the writer was doing.
    #[error("I/O error while {op}: {source}")]
    Io {
        /// What was being done, e.g. "writing section 3".
        op: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An earlier I/O error left the output in an unknown state; the writer
    /// refuses further work.
    #[error("the writer failed earlier with an I/O error and cannot continue")]
    Poisoned,
    /// A count or size cap of the format (or of [`crate::builder::WriterLimits`]) would be exceeded.
    #[error("{cap} exceeded: {value} > {max}")]
    Limit {
        /// Name of the cap, e.g. `MAX_TENSORS`.
        cap: &'static str,
        /// The cap.
        max: u64,
        /// The value that would result.
        value: u64,
    },
    /// `bits` is not one of `CODE_BITS` (4 or 8).
    #[error("palette {palette}: bits = {bits} is not in CODE_BITS {{4, 8}}")]
    CodeBits {
        /// Index the palette would get.
        palette: usize,
        /// The offending width.
        bits: u8,
    },
    /// `k` is 0 or larger than `2^bits` (and so possibly than `MAX_PALETTE_K`).
    #[error("palette {palette}: k = {k} is outside 1..={max} (2^bits with bits = {bits}, MAX_PALETTE_K = 256)")]
    PaletteK {
        /// Index the palette would get.
        palette: usize,
        /// The offending k.
        k: usize,
        /// The code width.
        bits: u8,
        /// `2^bits`.
        max: usize,
    },
    /// `d` is 0 or larger than `MAX_PALETTE_D`.
    #[error("palette {palette}: d = {d} is outside 1..=MAX_PALETTE_D ({max})")]
    PaletteD {
        /// Index the palette would get.
        palette: usize,
        /// The offending d.
        d: usize,
        /// `MAX_PALETTE_D`.
        max: usize,
    },
    /// A value slice has the wrong length.
    #[error("{what}: expected {expected} values, got {got}")]
    Length {
        /// What the slice is, e.g. "palette 2 values" or "tensor 'w' scale".
        what: String,
        /// The required length.
        expected: u64,
        /// The given length.
        got: u64,
    },
    /// A value is NaN or infinite, or becomes infinite when rounded to its
    /// element type.
    #[error("{what}: value {value} at index {index} is not finite as {elem}")]
    NonFinite {
        /// What the values are.
        what: String,
        /// Index of the value in its slice.
        index: usize,
        /// The value as given.
        value: f32,
        /// The element type it was rounded to.
        elem: ElemType,
    },
    /// A palette id that this writer did not hand out.
    #[error("unknown palette id (index {index}): not created by this writer")]
    UnknownPalette {
        /// Index carried by the id.
        index: u32,
    },
    /// `order_tensors_like` named a tensor that was never added.
    #[error("cannot order tensors: no tensor named {name:?} was added")]
    UnknownTensor {
        /// The name.
        name: String,
    },
    /// A group member index past the codec group's tensors.
    #[error("codec group member {member} does not exist: the group has {count} tensors")]
    UnknownMember {
        /// The index asked for.
        member: usize,
        /// Tensors in the group.
        count: usize,
    },
    /// A basis id that this writer did not hand out.
    #[error("unknown basis id (index {index}): not created by this writer")]
    UnknownBasis {
        /// Index carried by the id.
        index: u32,
    },
    /// A palette already has a FisherZ table.
    #[error("palette {palette} already has a FisherZ table")]
    FisherDuplicate {
        /// Palette index.
        palette: u32,
    },
    /// A FisherZ gamma that is not finite and positive.
    #[error("palette {palette}: FisherZ gamma {gamma} is not finite and > 0")]
    FisherGamma {
        /// Palette index.
        palette: u32,
        /// The offending gamma.
        gamma: f32,
    },
    /// A FisherZ table value outside [-127, 127], or an asymmetric table.
    #[error("palette {palette}: FisherZ table at ({i}, {j}) = {value}: {reason}")]
    FisherTable {
        /// Palette index.
        palette: u32,
        /// Row.
        i: usize,
        /// Column.
        j: usize,
        /// The value there.
        value: i8,
        /// "outside [-127, 127]" or "not symmetric".
        reason: &'static str,
    },
    /// The palette's retained values were released, so the table cannot be
    /// computed from them.
    #[error("palette {palette}: FisherZ table cannot be computed: {reason}")]
    FisherInput {
        /// Palette index (or `u32::MAX` for a free-standing computation).
        palette: u32,
        /// Why.
        reason: String,
    },
    /// A basis with `n_cols = 0` or `n_cols` not fitting u32.
    #[error("basis {basis}: n_cols = {n_cols} is outside 1..=4294967295")]
    BasisNCols {
        /// Index the basis would get.
        basis: usize,
        /// The offending width.
        n_cols: usize,
    },
    /// An empty tensor name or metadata key.
    #[error("tensor {index}: empty name")]
    EmptyName {
        /// Index the tensor would get.
        index: usize,
    },
    /// A name or metadata key longer than `MAX_NAME_LEN` bytes.
    #[error("{what} is {len} bytes, more than MAX_NAME_LEN ({max})")]
    NameTooLong {
        /// "tensor name '...'" or "metadata key '...'", shortened.
        what: String,
        /// Its length in bytes.
        len: usize,
        /// `MAX_NAME_LEN`.
        max: usize,
    },
    /// Two tensors with the same name.
    #[error("duplicate tensor name '{name}'")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// More than `MAX_DIMS` dimensions.
    #[error("tensor '{name}': {ndims} dimensions, more than MAX_DIMS ({max})")]
    TooManyDims {
        /// Tensor name.
        name: String,
        /// Number of dimensions given.
        ndims: usize,
        /// `MAX_DIMS`.
        max: usize,
    },
    /// The product of the shape overflows u64.
    #[error("tensor '{name}': element count of shape {shape:?} overflows u64")]
    NumelOverflow {
        /// Tensor name.
        name: String,
        /// The shape.
        shape: Vec<u64>,
    },
    /// A size derived from the shape overflows u64 (e.g. the ENTRY row
    /// stride of a zero-row tensor with a huge row width).
    #[error("tensor '{name}': {what} overflows u64")]
    SizeOverflow {
        /// Tensor name.
        name: String,
        /// Which size.
        what: &'static str,
    },
    /// A palette-encoded tensor whose dtype is not F16, BF16, F32 or F64.
    #[error("tensor '{name}': dtype {dtype} cannot be palette-encoded (F16, BF16, F32, F64 only)")]
    NotEncodable {
        /// Tensor name.
        name: String,
        /// The dtype.
        dtype: Dtype,
    },
    /// A palette-encoded tensor with regime PASSTHROUGH.
    #[error("tensor '{name}': a palette-encoded tensor cannot have regime passthrough")]
    PassthroughEncoded {
        /// Tensor name.
        name: String,
    },
    /// Zero stages or more than `MAX_STAGES`.
    #[error("tensor '{name}': {stages} stages, allowed 1..=MAX_STAGES ({max})")]
    StageCount {
        /// Tensor name.
        name: String,
        /// Stages given.
        stages: usize,
        /// `MAX_STAGES`.
        max: usize,
    },
    /// A stage palette's `d` is wider than the tensor's `n_cols`.
    #[error("tensor '{name}' stage {stage}: d = {d} does not fit n_cols = {n_cols}")]
    DoesNotFit {
        /// Tensor name.
        name: String,
        /// Stage index.
        stage: usize,
        /// Palette entry width.
        d: usize,
        /// Tensor row width.
        n_cols: u64,
    },
    /// A stage's code slice is not `n_rows x n_sub` long (code width mismatch).
    #[error("tensor '{name}' stage {stage}: code width mismatch: expected {n_rows} rows x {n_sub} codes = {expected}, got {got}")]
    CodeCount {
        /// Tensor name.
        name: String,
        /// Stage index.
        stage: usize,
        /// Rows of the tensor.
        n_rows: u64,
        /// Sub-vectors per row, `ceil(n_cols / d)`.
        n_sub: u64,
        /// `n_rows x n_sub`.
        expected: u64,
        /// Codes given.
        got: u64,
    },
    /// A code that names no palette entry (`code >= k`).
    #[error("tensor '{name}' stage {stage}: code {code} at row {row}, position {position} is >= k = {k}")]
    CodeOutOfRange {
        /// Tensor name.
        name: String,
        /// Stage index.
        stage: usize,
        /// Row.
        row: u64,
        /// Sub-vector position in the row.
        position: u64,
        /// The code.
        code: u8,
        /// Entries in the stage's palette.
        k: usize,
    },
    /// A SlotL basis whose `n_cols` differs from the tensor's.
    #[error("tensor '{name}': SlotL basis has n_cols = {basis_n_cols}, tensor has {n_cols}")]
    BasisMismatch {
        /// Tensor name.
        name: String,
        /// Basis row width.
        basis_n_cols: u64,
        /// Tensor row width.
        n_cols: u64,
    },
    /// A quality value that is not finite or out of its range.
    #[error("tensor '{name}': quality {field} = {value} is outside {range}")]
    Quality {
        /// Tensor name.
        name: String,
        /// Field name, e.g. `rho_p5`.
        field: &'static str,
        /// The value.
        value: f32,
        /// The allowed range.
        range: &'static str,
    },
    /// A metadata value longer than `MAX_METADATA_BYTES`, or an empty key.
    #[error("metadata key '{key}': {reason}")]
    Metadata {
        /// The key, shortened.
        key: String,
        /// Why.
        reason: String,
    },
    /// A file given to [`crate::amend::amend_metadata`] is not a valid,
    /// intact hhtld file.
    #[error("cannot amend {path}: {reason}")]
    Amend {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The destination path of [`crate::builder::Writer::create`] is unusable.
    #[error("bad destination path {path}: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// Why.
        reason: &'static str,
    },
}

/// Shortens a user string for an error message (names may be 4 KiB).
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
