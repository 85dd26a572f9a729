//! The reader's error type.

use std::path::PathBuf;

use hhtld_format::decode::KernelError;
use hhtld_format::error::TensorId;
use hhtld_format::{Dtype, FormatError, SectionKind};

/// Formats a raw section kind as its name when known.
fn kind_text(raw: u16) -> String {
    match SectionKind::from_raw(raw) {
        Some(k) => k.name().to_owned(),
        None => format!("unknown kind {raw}"),
    }
}

/// Everything that can go wrong reading an hhtld file.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// Opening or mapping the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file breaks a rule of the format (found at open).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// No tensor has this name.
    #[error("no tensor named {name:?}")]
    NoSuchTensor {
        /// The name asked for.
        name: String,
    },
    /// An index past the number of objects of its kind.
    #[error("{what} index {index} is out of range (there are {count})")]
    IndexOutOfRange {
        /// The kind of object: "tensor", "palette", "basis" or "stage".
        what: &'static str,
        /// The index asked for.
        index: usize,
        /// How many there are.
        count: usize,
    },
    /// A row past the tensor's row count.
    #[error("{tensor}: row {row} is out of range (n_rows {n_rows})")]
    RowOutOfRange {
        /// The tensor.
        tensor: TensorId,
        /// The row asked for.
        row: usize,
        /// Its row count.
        n_rows: usize,
    },
    /// A row range that is reversed or reaches past the tensor's row count.
    #[error("{tensor}: rows {start}..{end} are out of range (n_rows {n_rows})")]
    RowsOutOfRange {
        /// The tensor.
        tensor: TensorId,
        /// First row asked for.
        start: usize,
        /// One past the last row asked for.
        end: usize,
        /// Its row count.
        n_rows: usize,
    },
    /// A RAW tensor whose dtype has no conversion to a float output
    /// (integers, BOOL, F8_*); read its bytes with `raw_bytes` instead.
    #[error(
        "{tensor}: dtype {dtype} is not a float type this reader converts to f32, bf16 or f16"
    )]
    NotFloat {
        /// The tensor.
        tensor: TensorId,
        /// Its dtype.
        dtype: Dtype,
    },
    /// Raw access to a PALETTE tensor.
    #[error("{tensor}: is PALETTE-encoded, not RAW")]
    NotRaw {
        /// The tensor.
        tensor: TensorId,
    },
    /// Row codes asked of a RAW tensor.
    #[error("{tensor}: is RAW, it has no palette rows")]
    NotPalette {
        /// The tensor.
        tensor: TensorId,
    },
    /// A typed raw view whose element size differs from the dtype's.
    #[error("{tensor}: dtype {dtype} has {dtype_size}-byte elements, the requested type has {type_size}")]
    WrongType {
        /// The tensor.
        tensor: TensorId,
        /// Its dtype.
        dtype: Dtype,
        /// Size of one dtype element.
        dtype_size: usize,
        /// Size of the requested type.
        type_size: usize,
    },
    /// An output buffer of the wrong length.
    #[error("{tensor}: output buffer has {got} elements, expected {expected}")]
    OutputLen {
        /// The tensor.
        tensor: TensorId,
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// A typed view over bytes that are not aligned for the type. Files are
    /// laid out so this never happens when the file starts at an address
    /// aligned to 64 (mmap, [`crate::HhtldFile::from_vec`]).
    #[error("{what} at file offset {offset} is not aligned to {align} bytes in memory (the buffer does not start on an aligned address)")]
    Misaligned {
        /// What was viewed.
        what: &'static str,
        /// File offset of the bytes.
        offset: usize,
        /// Alignment the type needs.
        align: usize,
    },
    /// A section whose bytes do not match its stored CRC.
    #[error("section {section} ({}) at offset {offset}, {length} bytes: stored CRC {stored:#010x}, computed {computed:#010x}", kind_text(*kind))]
    Crc {
        /// Section index.
        section: u32,
        /// Raw kind.
        kind: u16,
        /// File offset.
        offset: usize,
        /// Length.
        length: usize,
        /// CRC from the section table.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// The decode kernel rejected a row (cannot happen for a validated file).
    #[error("{tensor}: row {row}: {source}")]
    Kernel {
        /// The tensor.
        tensor: TensorId,
        /// The row.
        row: usize,
        /// The kernel's error.
        source: KernelError,
    },
    /// Decoding the whole tensor would produce more bytes than the
    /// expansion limit allows (spec §7 "Expansion limit"): a possible
    /// decompression bomb. Raise the limit with
    /// [`crate::HhtldFile::with_max_expansion`] to decode it anyway.
    #[error("{tensor}: decodes to {decoded} bytes, over the expansion limit of {limit} bytes ({max_expansion} x the file's {file_len} bytes)")]
    ExpansionLimit {
        /// The tensor.
        tensor: TensorId,
        /// Bytes the decoded tensor would take in the requested type.
        decoded: u64,
        /// `max_expansion x file_len`.
        limit: u64,
        /// The expansion factor in force.
        max_expansion: u64,
        /// Length of the file.
        file_len: u64,
    },
    /// The decoded tensor does not fit in memory.
    #[error("{tensor}: cannot allocate {elements} decoded values")]
    Alloc {
        /// The tensor.
        tensor: TensorId,
        /// Elements requested.
        elements: usize,
    },
}

impl ReaderError {
    /// The format rule violation behind this error, if that is what it is.
    pub fn format_error(&self) -> Option<&FormatError> {
        match self {
            ReaderError::Format(e) => Some(e),
            _ => None,
        }
    }
}
