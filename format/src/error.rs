//! The error every validation rule of `spec/hhtld.md` reports. There is one
//! variant per rule family; [`FormatError::rule`] gives the spec identifier
//! and [`FormatError::kind`] the variant name. Both strings appear in the
//! conformance vectors (`spec/vectors/invalid/*.expected`), so they are stable.

use core::fmt;

use crate::SectionKind;

/// Which record of the file an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The 64-byte file header.
    Header,
    /// A section table entry, by section index.
    SectionEntry(u32),
    /// The 32-byte DIRECTORY header.
    DirHeader,
    /// A PaletteRecord, by index.
    Palette(u32),
    /// A BasisRecord, by index.
    Basis(u32),
    /// A FisherRecord, by index.
    Fisher(u32),
    /// A TensorRecord.
    Tensor(TensorId),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Header => f.write_str("header"),
            Place::SectionEntry(i) => write!(f, "section table entry {i}"),
            Place::DirHeader => f.write_str("directory header"),
            Place::Palette(i) => write!(f, "palette {i}"),
            Place::Basis(i) => write!(f, "basis {i}"),
            Place::Fisher(i) => write!(f, "fisher {i}"),
            Place::Tensor(t) => t.fmt(f),
        }
    }
}

/// A tensor by index, with its name once the name is known to be valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorId {
    /// Index of the TensorRecord.
    pub index: u32,
    /// The tensor's name, when it has already passed R-NAME-BOUNDS and R-NAME-UTF8.
    pub name: Option<String>,
}

impl fmt::Display for TensorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "tensor {} ({n:?})", self.index),
            None => write!(f, "tensor {}", self.index),
        }
    }
}

/// What is wrong with a section reference (R-SECTION-REF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefProblem {
    /// The index is not below the section count.
    OutOfRange {
        /// The record holding the reference.
        by: Place,
        /// Its field name.
        field: &'static str,
        /// Number of sections in the file.
        section_count: u32,
    },
    /// The referenced section has another kind.
    WrongKind {
        /// The record holding the reference.
        by: Place,
        /// Its field name.
        field: &'static str,
        /// The kind the field must point to.
        expected: SectionKind,
        /// The raw kind found in the section table.
        found: u16,
    },
    /// A second field points to a section that is already referenced.
    Shared {
        /// The record holding the second reference.
        by: Place,
        /// Its field name.
        field: &'static str,
        /// The record holding the first reference.
        first: Place,
        /// The field of the first reference.
        first_field: &'static str,
    },
    /// A data section that no directory field points to.
    Unreferenced {
        /// Its kind.
        kind: SectionKind,
    },
}

/// Formats a raw section kind as its name when known.
fn kind_name(raw: u16) -> String {
    match SectionKind::from_raw(raw) {
        Some(k) => format!("{} ({raw})", k.name()),
        None => format!("unknown ({raw})"),
    }
}

fn ref_message(section: u32, problem: &RefProblem) -> String {
    match problem {
        RefProblem::OutOfRange { by, field, section_count } => format!(
            "{by}: {field} refers to section {section}, but the file has {section_count} sections"
        ),
        RefProblem::WrongKind { by, field, expected, found } => format!(
            "{by}: {field} refers to section {section} of kind {}, expected {}",
            kind_name(*found),
            expected.name()
        ),
        RefProblem::Shared { by, field, first, first_field } => format!(
            "{by}: {field} refers to section {section}, which {first} already references in {first_field}"
        ),
        RefProblem::Unreferenced { kind } => {
            format!("section {section} ({}) is not referenced by the directory", kind.name())
        }
    }
}

fn file_len_message(header: u64, actual: u64, table_end: Option<u64>) -> String {
    if header != actual {
        return format!("header file_len is {header} but the file has {actual} bytes");
    }
    match table_end {
        Some(e) => format!("the section table ends at offset {e} but the file has {actual} bytes"),
        None => format!("the section table's end overflows u64 (file has {actual} bytes)"),
    }
}

fn table_offset_message(
    table_offset: u64,
    table_len: u64,
    file_len: u64,
    expected: Option<u64>,
) -> String {
    match expected {
        Some(e) => format!("section table is at offset {table_offset}, expected {e} (64, or align64 of the end of the last section)"),
        None => format!(
            "section table at offset {table_offset} ({table_len} bytes) does not lie inside the file ({file_len} bytes) after the 64-byte header"
        ),
    }
}

fn len_text(expected: Option<u64>) -> String {
    match expected {
        Some(e) => e.to_string(),
        None => "more than 2^64".to_string(),
    }
}

fn dir_size_message(section: u32, length: u64, expected: Option<u64>, max: u64) -> String {
    match expected {
        Some(e) if e > max => format!(
            "directory section {section} would need {e} bytes by its counts, over the limit of {max}"
        ),
        Some(e) => format!("directory section {section} has {length} bytes, expected {e} from its counts"),
        None => format!(
            "directory section {section} has {length} bytes, too short for its 32-byte header"
        ),
    }
}

/// A violated rule of the hhtld format, with where it was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormatError {
    /// The file is shorter than its header.
    #[error("file has {len} bytes, shorter than the 64-byte header [R-TRUNCATED]")]
    Truncated {
        /// Actual file length.
        len: u64,
    },
    /// The first 8 bytes are not the magic.
    #[error("bytes 0..8 are {found:02x?}, not the hhtld magic [R-MAGIC]")]
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// The major version is not 1.
    #[error(
        "major version {major} (offset 8) is not supported; this reader reads major 1 [R-MAJOR]"
    )]
    UnsupportedMajor {
        /// The major version found.
        major: u16,
    },
    /// The header CRC does not match the header and table.
    #[error("header_crc (offset 60) is {stored:#010x}, computed {computed:#010x} over bytes 0..60 and the section table [R-HEADER-CRC]")]
    HeaderCrc {
        /// The stored CRC.
        stored: u32,
        /// The CRC computed.
        computed: u32,
    },
    /// A reserved byte is not zero.
    #[error("{place}: reserved field {field} is not zero (byte at offset {offset}) [R-RESERVED]")]
    ReservedNotZero {
        /// The record.
        place: Place,
        /// The field name.
        field: &'static str,
        /// File offset of the first non-zero byte.
        offset: u64,
    },
    /// `file_len` does not match the real length, or the table does not end
    /// at the end of the file.
    #[error("{} [R-FILE-LEN]", file_len_message(*header, *actual, *table_end))]
    FileLen {
        /// `file_len` from the header.
        header: u64,
        /// Real length of the file.
        actual: u64,
        /// End of the section table (`table_offset + 32 x section_count`), `None` on overflow.
        table_end: Option<u64>,
    },
    /// The table lies outside the file (or over the header), or does not
    /// start right after the last section.
    #[error("{} [R-TABLE-OFFSET]", table_offset_message(*table_offset, *table_len, *file_len, *expected))]
    TableOffset {
        /// `table_offset` from the header.
        table_offset: u64,
        /// `32 x section_count`.
        table_len: u64,
        /// Real length of the file.
        file_len: u64,
        /// Where the table must start (`align64` of the end of the last
        /// section, or 64 without sections); `None` when the table does not
        /// lie inside the file after the header.
        expected: Option<u64>,
    },
    /// A count exceeds its limit.
    #[error("{place}: {field} is {value}, over the limit of {max} (offset {offset}) [R-LIMIT]")]
    LimitExceeded {
        /// The record holding the count.
        place: Place,
        /// Name of the count.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The limit.
        max: u64,
        /// File offset of the field.
        offset: u64,
    },
    /// A section has kind 0.
    #[error("section {section} has kind 0, which is invalid (table entry at offset {offset}) [R-SECTION-KIND]")]
    BadSectionKind {
        /// Section index.
        section: u32,
        /// File offset of the table entry.
        offset: u64,
    },
    /// A known kind without REQUIRED, or reserved flag bits set.
    #[error("section {section} ({}) has flags {flags:#06x}; {} [R-SECTION-FLAGS]", kind_name(*kind), if *flags & !1 != 0 { "bits 1..15 are reserved" } else { "a known kind must have REQUIRED set" })]
    SectionFlags {
        /// Section index.
        section: u32,
        /// Raw kind.
        kind: u16,
        /// Raw flags.
        flags: u16,
    },
    /// A section of an unknown kind has REQUIRED set.
    #[error(
        "section {section} has unknown kind {kind} with the REQUIRED flag set [R-UNKNOWN-REQUIRED]"
    )]
    UnknownRequired {
        /// Section index.
        section: u32,
        /// Raw kind.
        kind: u16,
    },
    /// A section does not start where the previous one ends (aligned).
    #[error("section {section} is at offset {offset}, expected {expected} [R-SECTION-OFFSET]")]
    SectionOffset {
        /// Section index.
        section: u32,
        /// Offset in the table.
        offset: u64,
        /// `64` for section 0, else `align64(end of the previous section)`.
        expected: u64,
    },
    /// An alignment padding byte is not zero.
    #[error("padding byte at offset {offset} after section {after} is not zero [R-PADDING]")]
    PaddingNotZero {
        /// File offset of the first non-zero byte.
        offset: u64,
        /// The section the padding follows.
        after: u32,
    },
    /// Not exactly one DIRECTORY or STRINGS, or more than one METADATA.
    #[error("file has {count} {} sections, expected {} [R-SECTION-COUNT]", kind.name(), if *kind == SectionKind::Metadata { "at most 1" } else { "exactly 1" })]
    SectionCount {
        /// The kind counted.
        kind: SectionKind,
        /// How many sections of it the table has.
        count: u32,
    },
    /// A bad, shared, missing or mistyped section reference.
    #[error("{} [R-SECTION-REF]", ref_message(*section, problem))]
    SectionRef {
        /// The section index concerned.
        section: u32,
        /// What is wrong.
        problem: RefProblem,
    },
    /// The DIRECTORY length does not match its counts or is too large.
    #[error("{} [R-DIR-SIZE]", dir_size_message(*section, *length, *expected, *max))]
    DirSize {
        /// Section index of the directory.
        section: u32,
        /// Its length.
        length: u64,
        /// The length its counts imply; `None` when the header itself does not fit.
        expected: Option<u64>,
        /// `MAX_DIRECTORY_BYTES`.
        max: u64,
    },
    /// An unlisted enum value.
    #[error("{place}: {field} = {value} is not a listed value [R-ENUM]")]
    BadEnum {
        /// The record.
        place: Place,
        /// The field name.
        field: &'static str,
        /// The raw value.
        value: u8,
    },
    /// Palette `k`, `d` or `bits` out of range.
    #[error("palette {palette}: k = {k}, d = {d}, bits = {bits} out of range (need bits 4 or 8, 1 <= k <= 2^bits, 1 <= d <= 65536) [R-PALETTE-FIELDS]")]
    PaletteFields {
        /// Palette index.
        palette: u32,
        /// Entries in use.
        k: u16,
        /// Entry width.
        d: u32,
        /// Code width.
        bits: u8,
    },
    /// A PALETTE section of the wrong length.
    #[error("palette {palette}: PALETTE section {section} has {length} bytes, expected {expected} (2^bits x d x elem size) [R-PALETTE-LEN]")]
    PaletteLen {
        /// Palette index.
        palette: u32,
        /// Section index.
        section: u32,
        /// Actual length.
        length: u64,
        /// Required length.
        expected: u64,
    },
    /// Basis `rows != 8` or `n_cols = 0`.
    #[error("basis {basis}: rows = {rows}, n_cols = {n_cols}; need rows = 8 and n_cols >= 1 [R-BASIS-FIELDS]")]
    BasisFields {
        /// Basis index.
        basis: u32,
        /// Row count found.
        rows: u16,
        /// Column count found.
        n_cols: u32,
    },
    /// A BASIS section of the wrong length.
    #[error("basis {basis}: BASIS section {section} has {length} bytes, expected {expected} (rows x n_cols x elem size) [R-BASIS-LEN]")]
    BasisLen {
        /// Basis index.
        basis: u32,
        /// Section index.
        section: u32,
        /// Actual length.
        length: u64,
        /// Required length.
        expected: u64,
    },
    /// A FisherZ gamma that is not finite and positive.
    #[error("fisher {fisher}: gamma = {gamma} must be finite and > 0 [R-FISHER-GAMMA]")]
    FisherGamma {
        /// Fisher index.
        fisher: u32,
        /// The gamma found.
        gamma: f32,
    },
    /// A FISHER_Z section of the wrong length.
    #[error("fisher {fisher}: FISHER_Z section {section} has {length} bytes, expected {expected} (k x k of palette {palette}) [R-FISHER-LEN]")]
    FisherLen {
        /// Fisher index.
        fisher: u32,
        /// Palette index.
        palette: u32,
        /// Section index.
        section: u32,
        /// Actual length.
        length: u64,
        /// Required length.
        expected: u64,
    },
    /// Two FisherZ records for one palette.
    #[error("fisher {fisher}: palette {palette} already has fisher {first} [R-FISHER-DUP]")]
    FisherDup {
        /// The second record.
        fisher: u32,
        /// The palette.
        palette: u32,
        /// The first record.
        first: u32,
    },
    /// A record index out of range.
    #[error("{place}: {field} = {index} is not below the record count {count} [R-INDEX]")]
    BadIndex {
        /// The record holding the index.
        place: Place,
        /// The field name.
        field: &'static str,
        /// The index found.
        index: u32,
        /// Number of records it indexes.
        count: u32,
    },
    /// A name outside STRINGS or of a bad length.
    #[error("tensor {tensor}: name at {name_off} with length {name_len} does not lie inside STRINGS ({strings_len} bytes) with 1 <= length <= 4096 [R-NAME-BOUNDS]")]
    NameBounds {
        /// Tensor index.
        tensor: u32,
        /// `name_off`.
        name_off: u32,
        /// `name_len`.
        name_len: u32,
        /// Length of the STRINGS section.
        strings_len: u64,
    },
    /// A name that is not UTF-8.
    #[error("tensor {tensor}: name at file offset {offset} is not valid UTF-8 [R-NAME-UTF8]")]
    NameUtf8 {
        /// Tensor index.
        tensor: u32,
        /// File offset of the name.
        offset: u64,
    },
    /// Two tensors with the same name.
    #[error("tensor {tensor} has the same name {name:?} as tensor {first} [R-NAME-DUP]")]
    NameDup {
        /// The later tensor.
        tensor: u32,
        /// The earlier tensor.
        first: u32,
        /// The shared name.
        name: String,
    },
    /// A bad `ndims`, a non-zero unused shape entry, or an overflowing size.
    #[error("{tensor}: shape {shape:?} with ndims {ndims}: {reason} [R-SHAPE]")]
    BadShape {
        /// The tensor.
        tensor: TensorId,
        /// `ndims`.
        ndims: u8,
        /// All 8 shape entries.
        shape: [u64; 8],
        /// What is wrong.
        reason: &'static str,
    },
    /// A tensor field that is not allowed for its encoding or flags.
    #[error("{tensor}: {field} = {value}, but {requirement} [R-TENSOR-FIELDS]")]
    TensorFields {
        /// The tensor.
        tensor: TensorId,
        /// The field name.
        field: &'static str,
        /// The value found, formatted.
        value: String,
        /// What the spec requires.
        requirement: &'static str,
    },
    /// A RAW section of the wrong length.
    #[error("{tensor}: RAW section {section} has {length} bytes, expected {} (numel x dtype size) [R-RAW-LEN]", len_text(*expected))]
    RawLen {
        /// The tensor.
        tensor: TensorId,
        /// Section index.
        section: u32,
        /// Actual length.
        length: u64,
        /// Required length; `None` when it exceeds u64.
        expected: Option<u64>,
    },
    /// A stage palette wider than the row.
    #[error("{tensor}: stage {stage} uses palette {palette} with d = {d}, wider than n_cols = {n_cols} [R-PALETTE-FIT]")]
    PaletteFit {
        /// The tensor.
        tensor: TensorId,
        /// Stage index.
        stage: u8,
        /// Palette index.
        palette: u32,
        /// The palette's `d`.
        d: u32,
        /// The tensor's `n_cols`.
        n_cols: u64,
    },
    /// An ENTRY section of the wrong length.
    #[error("{tensor}: ENTRY section {section} has {length} bytes, expected {} (n_rows {n_rows} x stride {stride}) [R-ENTRY-LEN]", len_text(*expected))]
    EntryLen {
        /// The tensor.
        tensor: TensorId,
        /// Section index.
        section: u32,
        /// Actual length.
        length: u64,
        /// Required length; `None` when it exceeds u64.
        expected: Option<u64>,
        /// Rows.
        n_rows: u64,
        /// Code bytes per row.
        stride: u64,
    },
    /// A SCALE section of the wrong length.
    #[error("{tensor}: SCALE section {section} has {length} bytes, expected {} (n_rows x scale elem size) [R-SCALE-LEN]", len_text(*expected))]
    ScaleLen {
        /// The tensor.
        tensor: TensorId,
        /// Section index.
        section: u32,
        /// Actual length.
        length: u64,
        /// Required length; `None` when it exceeds u64.
        expected: Option<u64>,
    },
    /// A basis whose width differs from the tensor's.
    #[error("{tensor}: basis {basis} has n_cols {basis_n_cols}, but the tensor has n_cols {n_cols} [R-BASIS-FIT]")]
    BasisFit {
        /// The tensor.
        tensor: TensorId,
        /// Basis index.
        basis: u32,
        /// The basis's `n_cols`.
        basis_n_cols: u32,
        /// The tensor's `n_cols`.
        n_cols: u64,
    },
    /// A SLOT_L section of the wrong length.
    #[error("{tensor}: SLOT_L section {section} has {length} bytes, expected {} (n_rows x 8) [R-SLOT-L-LEN]", len_text(*expected))]
    SlotLLen {
        /// The tensor.
        tensor: TensorId,
        /// Section index.
        section: u32,
        /// Actual length.
        length: u64,
        /// Required length; `None` when it exceeds u64.
        expected: Option<u64>,
    },
    /// A quality value out of range, or non-zero without `HAS_QUALITY`.
    #[error("{tensor}: {field} = {value} {requirement} [R-QUALITY]")]
    BadQuality {
        /// The tensor.
        tensor: TensorId,
        /// The field name.
        field: &'static str,
        /// The value found.
        value: f32,
        /// What the spec requires.
        requirement: &'static str,
    },
    /// A malformed METADATA section.
    #[error("metadata entry {entry} at file offset {offset}: {reason} [R-METADATA]")]
    BadMetadata {
        /// Entry index.
        entry: u32,
        /// File offset of the problem.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Every rule identifier with the [`FormatError::kind`] that reports it, in spec order.
pub const RULES: &[(&str, &str)] = &[
    ("R-TRUNCATED", "Truncated"),
    ("R-MAGIC", "BadMagic"),
    ("R-MAJOR", "UnsupportedMajor"),
    ("R-HEADER-CRC", "HeaderCrc"),
    ("R-RESERVED", "ReservedNotZero"),
    ("R-FILE-LEN", "FileLen"),
    ("R-TABLE-OFFSET", "TableOffset"),
    ("R-LIMIT", "LimitExceeded"),
    ("R-SECTION-KIND", "BadSectionKind"),
    ("R-SECTION-FLAGS", "SectionFlags"),
    ("R-UNKNOWN-REQUIRED", "UnknownRequired"),
    ("R-SECTION-OFFSET", "SectionOffset"),
    ("R-PADDING", "PaddingNotZero"),
    ("R-SECTION-COUNT", "SectionCount"),
    ("R-SECTION-REF", "SectionRef"),
    ("R-DIR-SIZE", "DirSize"),
    ("R-ENUM", "BadEnum"),
    ("R-PALETTE-FIELDS", "PaletteFields"),
    ("R-PALETTE-LEN", "PaletteLen"),
    ("R-BASIS-FIELDS", "BasisFields"),
    ("R-BASIS-LEN", "BasisLen"),
    ("R-FISHER-GAMMA", "FisherGamma"),
    ("R-FISHER-LEN", "FisherLen"),
    ("R-FISHER-DUP", "FisherDup"),
    ("R-INDEX", "BadIndex"),
    ("R-NAME-BOUNDS", "NameBounds"),
    ("R-NAME-UTF8", "NameUtf8"),
    ("R-NAME-DUP", "NameDup"),
    ("R-SHAPE", "BadShape"),
    ("R-TENSOR-FIELDS", "TensorFields"),
    ("R-RAW-LEN", "RawLen"),
    ("R-PALETTE-FIT", "PaletteFit"),
    ("R-ENTRY-LEN", "EntryLen"),
    ("R-SCALE-LEN", "ScaleLen"),
    ("R-BASIS-FIT", "BasisFit"),
    ("R-SLOT-L-LEN", "SlotLLen"),
    ("R-QUALITY", "BadQuality"),
    ("R-METADATA", "BadMetadata"),
];

impl FormatError {
    /// The spec rule identifier, e.g. `"R-MAGIC"`.
    pub fn rule(&self) -> &'static str {
        match self {
            FormatError::Truncated { .. } => "R-TRUNCATED",
            FormatError::BadMagic { .. } => "R-MAGIC",
            FormatError::UnsupportedMajor { .. } => "R-MAJOR",
            FormatError::HeaderCrc { .. } => "R-HEADER-CRC",
            FormatError::ReservedNotZero { .. } => "R-RESERVED",
            FormatError::FileLen { .. } => "R-FILE-LEN",
            FormatError::TableOffset { .. } => "R-TABLE-OFFSET",
            FormatError::LimitExceeded { .. } => "R-LIMIT",
            FormatError::BadSectionKind { .. } => "R-SECTION-KIND",
            FormatError::SectionFlags { .. } => "R-SECTION-FLAGS",
            FormatError::UnknownRequired { .. } => "R-UNKNOWN-REQUIRED",
            FormatError::SectionOffset { .. } => "R-SECTION-OFFSET",
            FormatError::PaddingNotZero { .. } => "R-PADDING",
            FormatError::SectionCount { .. } => "R-SECTION-COUNT",
            FormatError::SectionRef { .. } => "R-SECTION-REF",
            FormatError::DirSize { .. } => "R-DIR-SIZE",
            FormatError::BadEnum { .. } => "R-ENUM",
            FormatError::PaletteFields { .. } => "R-PALETTE-FIELDS",
            FormatError::PaletteLen { .. } => "R-PALETTE-LEN",
            FormatError::BasisFields { .. } => "R-BASIS-FIELDS",
            FormatError::BasisLen { .. } => "R-BASIS-LEN",
            FormatError::FisherGamma { .. } => "R-FISHER-GAMMA",
            FormatError::FisherLen { .. } => "R-FISHER-LEN",
            FormatError::FisherDup { .. } => "R-FISHER-DUP",
            FormatError::BadIndex { .. } => "R-INDEX",
            FormatError::NameBounds { .. } => "R-NAME-BOUNDS",
            FormatError::NameUtf8 { .. } => "R-NAME-UTF8",
            FormatError::NameDup { .. } => "R-NAME-DUP",
            FormatError::BadShape { .. } => "R-SHAPE",
            FormatError::TensorFields { .. } => "R-TENSOR-FIELDS",
            FormatError::RawLen { .. } => "R-RAW-LEN",
            FormatError::PaletteFit { .. } => "R-PALETTE-FIT",
            FormatError::EntryLen { .. } => "R-ENTRY-LEN",
            FormatError::ScaleLen { .. } => "R-SCALE-LEN",
            FormatError::BasisFit { .. } => "R-BASIS-FIT",
            FormatError::SlotLLen { .. } => "R-SLOT-L-LEN",
            FormatError::BadQuality { .. } => "R-QUALITY",
            FormatError::BadMetadata { .. } => "R-METADATA",
        }
    }

    /// The record or region the error is about, as text: `header`,
    /// `section table`, `section 3`, `directory header`, `palette 0`,
    /// `basis 1`, `fisher 0`, `tensor 2 ("w")`, `metadata entry 4` or
    /// `padding after section 5`. Bindings expose it beside [`Self::rule`].
    pub fn place(&self) -> String {
        use FormatError as E;
        match self {
            E::Truncated { .. }
            | E::BadMagic { .. }
            | E::UnsupportedMajor { .. }
            | E::HeaderCrc { .. }
            | E::FileLen { .. } => Place::Header.to_string(),
            E::TableOffset { .. } | E::SectionCount { .. } => "section table".to_string(),
            E::ReservedNotZero { place, .. }
            | E::LimitExceeded { place, .. }
            | E::BadEnum { place, .. }
            | E::BadIndex { place, .. } => place.to_string(),
            E::BadSectionKind { section, .. }
            | E::SectionFlags { section, .. }
            | E::UnknownRequired { section, .. }
            | E::SectionOffset { section, .. }
            | E::DirSize { section, .. } => format!("section {section}"),
            E::SectionRef { section, problem } => match problem {
                RefProblem::OutOfRange { by, .. }
                | RefProblem::WrongKind { by, .. }
                | RefProblem::Shared { by, .. } => by.to_string(),
                RefProblem::Unreferenced { .. } => format!("section {section}"),
            },
            E::PaddingNotZero { after, .. } => format!("padding after section {after}"),
            E::PaletteFields { palette, .. } | E::PaletteLen { palette, .. } => {
                Place::Palette(*palette).to_string()
            }
            E::BasisFields { basis, .. } | E::BasisLen { basis, .. } => {
                Place::Basis(*basis).to_string()
            }
            E::FisherGamma { fisher, .. }
            | E::FisherLen { fisher, .. }
            | E::FisherDup { fisher, .. } => Place::Fisher(*fisher).to_string(),
            E::NameBounds { tensor, .. }
            | E::NameUtf8 { tensor, .. }
            | E::NameDup { tensor, .. } => TensorId {
                index: *tensor,
                name: None,
            }
            .to_string(),
            E::BadShape { tensor, .. }
            | E::TensorFields { tensor, .. }
            | E::RawLen { tensor, .. }
            | E::PaletteFit { tensor, .. }
            | E::EntryLen { tensor, .. }
            | E::ScaleLen { tensor, .. }
            | E::BasisFit { tensor, .. }
            | E::SlotLLen { tensor, .. }
            | E::BadQuality { tensor, .. } => tensor.to_string(),
            E::BadMetadata { entry, .. } => format!("metadata entry {entry}"),
        }
    }

    /// The file offset the error points at, when it names one: the field
    /// of the header (spec section 2) or the offset the error reports.
    pub fn offset(&self) -> Option<u64> {
        use FormatError as E;
        match self {
            E::BadMagic { .. } => Some(0),
            E::UnsupportedMajor { .. } => Some(8),
            E::FileLen { .. } => Some(16),
            E::TableOffset { .. } => Some(24),
            E::HeaderCrc { .. } => Some(60),
            E::ReservedNotZero { offset, .. }
            | E::LimitExceeded { offset, .. }
            | E::BadSectionKind { offset, .. }
            | E::SectionOffset { offset, .. }
            | E::PaddingNotZero { offset, .. }
            | E::NameUtf8 { offset, .. }
            | E::BadMetadata { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// The variant name, e.g. `"BadMagic"`.
    pub fn kind(&self) -> &'static str {
        let rule = self.rule();
        // RULES lists every rule once, so the lookup always succeeds; the
        // fallback only keeps this total without a panic path.
        RULES
            .iter()
            .find(|(r, _)| *r == rule)
            .map_or("Unknown", |(_, k)| k)
    }
}
