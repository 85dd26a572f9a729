//! Raw on-disk structures (spec §2–§4). All fields are little-endian with
//! alignment 1, so the structs can be viewed in place with zerocopy at any
//! offset; interpretation and validation live elsewhere.

use zerocopy::little_endian::{F32, U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::limits::{MAX_DIMS, MAX_STAGES};

/// The 8 magic bytes at offset 0: `\x89HHTLD\r\n`.
pub const MAGIC: [u8; 8] = [0x89, b'H', b'H', b'T', b'L', b'D', b'\r', b'\n'];
/// Major version this crate reads and writes.
pub const VERSION_MAJOR: u16 = 1;
/// Minor version this crate writes.
pub const VERSION_MINOR: u16 = 0;
/// The u32 "no reference" value.
pub const NONE: u32 = u32::MAX;
/// Size of [`Header`].
pub const HEADER_LEN: usize = 64;
/// Bytes of the header covered by `header_crc` (the rest is the CRC itself).
pub const HEADER_CRC_SPAN: usize = 60;
/// Size of [`SectionEntry`].
pub const SECTION_ENTRY_LEN: usize = 32;
/// Size of [`DirHeader`].
pub const DIR_HEADER_LEN: usize = 32;
/// Size of [`PaletteRecord`], [`BasisRecord`] and [`FisherRecord`].
pub const SMALL_RECORD_LEN: usize = 32;
/// Size of [`TensorRecord`].
pub const TENSOR_RECORD_LEN: usize = 160;
/// `SectionEntry::flags` bit: a reader that does not know the kind must reject the file.
pub const SECTION_FLAG_REQUIRED: u16 = 1;
/// `TensorRecord::flags` bit: per-row scales are present.
pub const TENSOR_FLAG_SCALE: u8 = 1;
/// `TensorRecord::flags` bit: a SlotL residual is present.
pub const TENSOR_FLAG_SLOT_L: u8 = 2;
/// `TensorRecord::flags` bit: the quality fields are meaningful.
pub const TENSOR_FLAG_QUALITY: u8 = 4;

/// File header, 64 bytes at offset 0 (spec §2).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// Major version.
    pub major: U16,
    /// Minor version.
    pub minor: U16,
    /// Reserved, zero.
    pub flags: U32,
    /// Total file length.
    pub file_len: U64,
    /// Offset of the section table.
    pub table_offset: U64,
    /// Number of section table entries.
    pub section_count: U32,
    /// Reserved, zero.
    pub reserved: [u8; 24],
    /// CRC32 of bytes 0..60 followed by the table.
    pub header_crc: U32,
}

/// One section table entry, 32 bytes (spec §3).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SectionEntry {
    /// Section kind, see [`crate::SectionKind`].
    pub kind: U16,
    /// Bit 0: required.
    pub flags: U16,
    /// CRC32 of the section bytes.
    pub crc32: U32,
    /// Byte offset of the section.
    pub offset: U64,
    /// Byte length of the section.
    pub length: U64,
    /// Reserved, zero.
    pub reserved: U64,
}

/// Start of the DIRECTORY section, 32 bytes.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct DirHeader {
    /// Number of tensor records.
    pub tensor_count: U32,
    /// Number of palette records.
    pub palette_count: U32,
    /// Number of basis records.
    pub basis_count: U32,
    /// Number of FisherZ records.
    pub fisher_count: U32,
    /// Reserved, zero.
    pub reserved: [u8; 16],
}

/// A palette (codebook), 32 bytes.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct PaletteRecord {
    /// Index of the PALETTE section.
    pub section: U32,
    /// Entry width.
    pub d: U32,
    /// Entries in use.
    pub k: U16,
    /// Code width: 4 or 8.
    pub bits: u8,
    /// Element type, see [`crate::ElemType`].
    pub elem: u8,
    /// Reserved, zero.
    pub reserved: [u8; 20],
}

/// A SlotL basis, 32 bytes.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct BasisRecord {
    /// Index of the BASIS section.
    pub section: U32,
    /// Row width.
    pub n_cols: U32,
    /// Number of basis rows: 8.
    pub rows: U16,
    /// Element type.
    pub elem: u8,
    /// Reserved, zero.
    pub reserved: [u8; 21],
}

/// A FisherZ table of one palette, 32 bytes.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FisherRecord {
    /// Index of the FISHER_Z section.
    pub section: U32,
    /// Index of the palette record it describes.
    pub palette: U32,
    /// `rho = tanh(gamma * q)`.
    pub gamma: F32,
    /// Reserved, zero.
    pub reserved: [u8; 20],
}

/// One tensor, 160 bytes (spec §4).
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct TensorRecord {
    /// Offset of the name in STRINGS.
    pub name_off: U32,
    /// Length of the name.
    pub name_len: U32,
    /// Original dtype, see [`crate::Dtype`].
    pub dtype: u8,
    /// Number of dimensions.
    pub ndims: u8,
    /// Role, see [`crate::Role`].
    pub role: u8,
    /// Regime, see [`crate::Regime`].
    pub regime: u8,
    /// 0 raw, 1 palette.
    pub encoding: u8,
    /// Number of stages.
    pub n_stages: u8,
    /// `TENSOR_FLAG_*` bits.
    pub flags: u8,
    /// Element type of the scales, or 0.
    pub scale_elem: u8,
    /// Shape; entries past `ndims` are zero.
    pub shape: [U64; MAX_DIMS],
    /// RAW or ENTRY section index.
    pub data: U32,
    /// SCALE section index or NONE.
    pub scale: U32,
    /// SLOT_L section index or NONE.
    pub slot_l: U32,
    /// Basis record index or NONE.
    pub basis: U32,
    /// Palette record index per stage, NONE past `n_stages`.
    pub stage_palette: [U32; MAX_STAGES],
    /// Scale of the SlotL coefficients.
    pub slot_scale: F32,
    /// Median per-row Pearson rho.
    pub rho_median: F32,
    /// 5th percentile per-row rho.
    pub rho_p5: F32,
    /// Minimum per-row rho.
    pub rho_min: F32,
    /// Relative Frobenius error.
    pub rel_fro: F32,
    /// Reserved, zero.
    pub reserved: [u8; 28],
}

const _: () = {
    assert!(core::mem::size_of::<Header>() == HEADER_LEN);
    assert!(core::mem::size_of::<SectionEntry>() == SECTION_ENTRY_LEN);
    assert!(core::mem::size_of::<DirHeader>() == DIR_HEADER_LEN);
    assert!(core::mem::size_of::<PaletteRecord>() == SMALL_RECORD_LEN);
    assert!(core::mem::size_of::<BasisRecord>() == SMALL_RECORD_LEN);
    assert!(core::mem::size_of::<FisherRecord>() == SMALL_RECORD_LEN);
    assert!(core::mem::size_of::<TensorRecord>() == TENSOR_RECORD_LEN);
};

/// Rounds `x` up to the next multiple of [`crate::limits::ALIGN`], or `None` on overflow.
pub fn align64(x: u64) -> Option<u64> {
    x.checked_add(63).map(|v| v & !63)
}
