//! Structural validation at open (spec §1–§5, §7): [`parse`] checks every
//! rule of `spec/hhtld.md` that does not need tensor data and returns an
//! owned [`Layout`] of byte ranges. Section CRCs are left to verification
//! ([`Layout::section_crc_ok`]).
//!
//! Cost is proportional to the section table, the directory, the names and
//! the metadata. No allocation is sized from a count until that count has
//! been checked against the bytes actually present.

use core::ops::Range;

use crate::error::{FormatError, Place};
use crate::limits::{MAX_DIMS, MAX_STAGES};
use crate::{Dtype, ElemType, Encoding, Regime, Role, SectionKind};

mod directory;
mod header;
mod tensor;

use directory::{name_hash, parse_directory, parse_metadata};
use header::{check_padding, count_kinds, parse_header, parse_table};

/// One section table entry, checked to lie inside the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The kind, when this reader knows it.
    pub kind: Option<SectionKind>,
    /// The kind as stored.
    pub raw_kind: u16,
    /// The flags as stored.
    pub flags: u16,
    /// Stored CRC32 of the section bytes (checked by verification, not at open).
    pub crc32: u32,
    /// File offset, a multiple of 64.
    pub offset: usize,
    /// Length in bytes.
    pub length: usize,
}

impl Section {
    /// The section's bytes in the file.
    pub fn range(&self) -> Range<usize> {
        // offset + length <= file length was checked at parse.
        self.offset..self.offset + self.length
    }
}

/// A validated PaletteRecord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Palette {
    /// Index of its PALETTE section.
    pub section: u32,
    /// Bytes of the section: `2^bits x d` elements of `elem`.
    pub range: Range<usize>,
    /// Entries in use.
    pub k: u16,
    /// Entry width.
    pub d: usize,
    /// Code width, 4 or 8.
    pub bits: u8,
    /// Element type.
    pub elem: ElemType,
    /// The FisherRecord describing this palette, if any.
    pub fisher: Option<u32>,
}

impl Palette {
    /// Stored entries: `2^bits`.
    pub fn stored_entries(&self) -> usize {
        1usize << self.bits
    }
}

/// A validated BasisRecord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Basis {
    /// Index of its BASIS section.
    pub section: u32,
    /// Bytes of the section: `rows x n_cols` elements of `elem`.
    pub range: Range<usize>,
    /// Rows, always [`SLOT_L_DIMS`](crate::limits::SLOT_L_DIMS).
    pub rows: usize,
    /// Row width.
    pub n_cols: usize,
    /// Element type.
    pub elem: ElemType,
}

/// A validated FisherRecord.
#[derive(Debug, Clone, PartialEq)]
pub struct Fisher {
    /// Index of its FISHER_Z section.
    pub section: u32,
    /// Bytes of the section: `k x k` i8.
    pub range: Range<usize>,
    /// Index of the palette it describes.
    pub palette: u32,
    /// Palette `k`: the table is `k x k`.
    pub k: usize,
    /// `rho = tanh(gamma x q)`.
    pub gamma: f32,
}

/// One stage of a PALETTE tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stage {
    /// Index of the palette record.
    pub palette: u32,
    /// The palette's `d`.
    pub d: usize,
    /// The palette's `bits`.
    pub bits: u8,
    /// Offset of this stage's codes inside a row's `stride` bytes.
    pub code_offset: usize,
    /// Code bytes of this stage per row.
    pub cb: usize,
}

/// Per-row scales of a tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleRef {
    /// Index of the SCALE section.
    pub section: u32,
    /// Its bytes: `n_rows` elements of `elem`.
    pub range: Range<usize>,
    /// Element type.
    pub elem: ElemType,
}

/// The SlotL residual of a tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotRef {
    /// Index of the SLOT_L section.
    pub section: u32,
    /// Its bytes: `n_rows x 8` i8.
    pub range: Range<usize>,
    /// Index of the basis record.
    pub basis: u32,
    /// Coefficient scale, finite.
    pub slot_scale: f32,
}

/// Stored reconstruction quality of a tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Median per-row Pearson rho.
    pub rho_median: f32,
    /// 5th percentile per-row rho.
    pub rho_p5: f32,
    /// Minimum per-row rho.
    pub rho_min: f32,
    /// Relative Frobenius error.
    pub rel_fro: f32,
}

/// A validated TensorRecord.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Bytes of the name in the file (valid UTF-8).
    pub name: Range<usize>,
    /// Original dtype.
    pub dtype: Dtype,
    /// Number of dimensions.
    pub ndims: u8,
    /// Shape; entries past `ndims` are 0.
    pub shape: [u64; MAX_DIMS],
    /// Rows of the matrix view.
    pub n_rows: usize,
    /// Columns of the matrix view.
    pub n_cols: usize,
    /// `n_rows x n_cols`.
    pub numel: usize,
    /// Role.
    pub role: Role,
    /// Regime.
    pub regime: Regime,
    /// Encoding.
    pub encoding: Encoding,
    /// Index of the RAW or ENTRY section.
    pub data_section: u32,
    /// Bytes of the RAW or ENTRY section.
    pub data: Range<usize>,
    /// Code bytes per row (0 for RAW).
    pub stride: usize,
    /// Per-row scales.
    pub scale: Option<ScaleRef>,
    /// SlotL residual.
    pub slot: Option<SlotRef>,
    /// Stored quality.
    pub quality: Option<Quality>,
    stages: [Stage; MAX_STAGES],
    n_stages: u8,
}

impl Tensor {
    /// The stages, in decode order (empty for RAW).
    pub fn stages(&self) -> &[Stage] {
        self.stages.get(..usize::from(self.n_stages)).unwrap_or(&[])
    }
    /// The tensor's shape, `ndims` entries.
    pub fn dims(&self) -> &[u64] {
        self.shape.get(..usize::from(self.ndims)).unwrap_or(&[])
    }
}

/// One metadata key/value pair: the key checked as UTF-8 at open, the value
/// when it is read ([`Layout::metadata_entry`], [`Layout::check_metadata_values`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaEntry {
    /// Bytes of the key in the file.
    pub key: Range<usize>,
    /// Bytes of the value in the file.
    pub value: Range<usize>,
}

/// An owned, validated description of an hhtld file. Ranges index the bytes
/// `parse` was given.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// `(major, minor)`.
    pub version: (u16, u16),
    /// File length.
    pub file_len: usize,
    /// Offset of the section table.
    pub table_offset: usize,
    /// Every section, in table order.
    pub sections: Vec<Section>,
    /// Index of the DIRECTORY section.
    pub directory: u32,
    /// Index of the STRINGS section.
    pub strings: u32,
    /// Index of the METADATA section.
    pub metadata: Option<u32>,
    /// Palette records.
    pub palettes: Vec<Palette>,
    /// Basis records.
    pub bases: Vec<Basis>,
    /// FisherZ records.
    pub fishers: Vec<Fisher>,
    /// Tensor records.
    pub tensors: Vec<Tensor>,
    /// Metadata entries, keys strictly increasing.
    pub metadata_entries: Vec<MetaEntry>,
    /// `(hash of name, tensor index)`, sorted by hash then name, for lookup
    /// by name.
    by_name: Vec<(u64, u32)>,
}

impl Layout {
    /// Name of tensor `i`, or `None` when `i` is out of range or `bytes`
    /// is not the file this layout was parsed from.
    pub fn tensor_name<'a>(&self, bytes: &'a [u8], i: usize) -> Option<&'a str> {
        let t = self.tensors.get(i)?;
        core::str::from_utf8(bytes.get(t.name.clone())?).ok()
    }

    /// Index of the tensor called `name`: a binary search over (name hash,
    /// name).
    pub fn tensor_index(&self, bytes: &[u8], name: &str) -> Option<usize> {
        let key = (name_hash(name.as_bytes()), name.as_bytes());
        let name_of = |i: u32| {
            self.tensors
                .get(i as usize)
                .and_then(|t| bytes.get(t.name.clone()))
                .unwrap_or(&[])
        };
        let at = self
            .by_name
            .partition_point(|&(h, i)| (h, name_of(i)) < key);
        let &(h, i) = self.by_name.get(at)?;
        ((h, name_of(i)) == key).then_some(i as usize)
    }

    /// Metadata entry `i` as its key and the value's bytes, unchecked
    /// (`None` when `i` is out of range).
    pub fn metadata_raw<'a>(&self, bytes: &'a [u8], i: usize) -> Option<(&'a str, &'a [u8])> {
        let e = self.metadata_entries.get(i)?;
        let k = core::str::from_utf8(bytes.get(e.key.clone())?).ok()?;
        Some((k, bytes.get(e.value.clone())?))
    }

    /// Metadata entry `i` as `(key, value)` (`None` when `i` is out of
    /// range); a value that is not UTF-8 is R-METADATA at its offset.
    pub fn metadata_entry<'a>(
        &self,
        bytes: &'a [u8],
        i: usize,
    ) -> Option<Result<(&'a str, &'a str), FormatError>> {
        let (k, v) = self.metadata_raw(bytes, i)?;
        let start = self.metadata_entries.get(i)?.value.start;
        Some(match core::str::from_utf8(v) {
            Ok(v) => Ok((k, v)),
            Err(e) => Err(FormatError::BadMetadata {
                entry: i as u32,
                offset: u64_of(start + e.valid_up_to()),
                reason: "value is not valid UTF-8",
            }),
        })
    }

    /// Checks that every metadata value is UTF-8 (the part of R-METADATA
    /// that reads the values, left out of [`parse`]); the first bad value is
    /// the error.
    pub fn check_metadata_values(&self, bytes: &[u8]) -> Result<(), FormatError> {
        for i in 0..self.metadata_entries.len() {
            if let Some(Err(e)) = self.metadata_entry(bytes, i) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Checks that the padding between sections and before the table is
    /// zero (R-PADDING, left out of [`parse`]: the padding follows every
    /// section, all through the file, and nothing else reads it); the first
    /// non-zero byte is the error.
    pub fn check_padding(&self, bytes: &[u8]) -> Result<(), FormatError> {
        check_padding(bytes, &self.sections)
    }

    /// The rules of verification besides the section CRCs, in spec order:
    /// padding ([`Layout::check_padding`]), then metadata values
    /// ([`Layout::check_metadata_values`]). Together with the CRCs they
    /// cover every byte [`parse`] does not read.
    pub fn check_deferred(&self, bytes: &[u8]) -> Result<(), FormatError> {
        self.check_padding(bytes)?;
        self.check_metadata_values(bytes)
    }

    /// CRC32 of section `i` as it is in `bytes`, or `None` when out of range.
    pub fn section_crc(&self, bytes: &[u8], i: usize) -> Option<u32> {
        let s = self.sections.get(i)?;
        Some(crc32fast::hash(bytes.get(s.range())?))
    }

    /// Whether section `i`'s stored CRC matches its bytes (verification).
    pub fn section_crc_ok(&self, bytes: &[u8], i: usize) -> bool {
        match (self.sections.get(i), self.section_crc(bytes, i)) {
            (Some(s), Some(c)) => s.crc32 == c,
            _ => false,
        }
    }
}

/// Validates `bytes` as an hhtld file (every rule of spec §1–§5 except the
/// section CRCs, zero padding and the UTF-8 of metadata values, which read
/// bytes all through the file: see [`Layout::section_crc_ok`] and
/// [`Layout::check_deferred`]) and describes it, in time proportional to the
/// directory and metadata keys, reading only the header, the table and the
/// directory, strings and metadata sections.
///
/// Checks run in spec order: length, magic, major version, header CRC, then
/// everything else; the first violated rule is returned.
pub fn parse(bytes: &[u8]) -> Result<Layout, FormatError> {
    let (header, table) = parse_header(bytes)?;
    let sections = parse_table(bytes, header, table.clone())?;
    let (directory, strings, metadata) = count_kinds(&sections)?;
    let mut layout = Layout {
        version: (header.major.get(), header.minor.get()),
        file_len: bytes.len(),
        table_offset: table.start,
        sections,
        directory,
        strings,
        metadata,
        palettes: Vec::new(),
        bases: Vec::new(),
        fishers: Vec::new(),
        tensors: Vec::new(),
        metadata_entries: Vec::new(),
        by_name: Vec::new(),
    };
    parse_directory(bytes, &mut layout)?;
    if let Some(m) = metadata {
        layout.metadata_entries = parse_metadata(bytes, &layout.sections[m as usize])?;
    }
    Ok(layout)
}

fn u64_of(x: usize) -> u64 {
    // usize is at most 64 bits on every platform Rust supports.
    x as u64
}

/// Offset of the first non-zero byte of `b`, relative to `b`.
fn first_nonzero(b: &[u8]) -> Option<usize> {
    b.iter().position(|&x| x != 0)
}

fn reserved(place: Place, field: &'static str, base: usize, b: &[u8]) -> Result<(), FormatError> {
    match first_nonzero(b) {
        Some(p) => Err(FormatError::ReservedNotZero {
            place,
            field,
            offset: u64_of(base + p),
        }),
        None => Ok(()),
    }
}

fn limit(place: Place, field: &'static str, value: u32, max: usize, offset: usize) -> FormatError {
    FormatError::LimitExceeded {
        place,
        field,
        value: u64::from(value),
        max: u64_of(max),
        offset: u64_of(offset),
    }
}

/// `align64` of an offset already known to lie inside the file.
fn aligned(x: usize) -> usize {
    // x <= table_offset < file length, so this cannot overflow in practice;
    // saturating keeps it total.
    x.checked_add(63).map_or(usize::MAX, |v| v & !63)
}
