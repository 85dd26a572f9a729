//! Structural validation at open (spec §1–§5, §7): [`parse`] checks every
//! rule of `spec/hhtld.md` that does not need tensor data and returns an
//! owned [`Layout`] of byte ranges. Section CRCs are left to verification
//! ([`Layout::section_crc_ok`]).
//!
//! Cost is proportional to the section table, the directory, the names and
//! the metadata. No allocation is sized from a count until that count has
//! been checked against the bytes actually present.

use core::ops::Range;
use std::collections::HashMap;

use zerocopy::little_endian::U64;
use zerocopy::FromBytes;

use crate::decode::code_bytes;
use crate::error::{FormatError, Place, RefProblem, TensorId};
use crate::layout::{
    align64, BasisRecord, DirHeader, FisherRecord, Header, PaletteRecord, SectionEntry,
    TensorRecord, DIR_HEADER_LEN, HEADER_CRC_SPAN, HEADER_LEN, MAGIC, NONE, SECTION_ENTRY_LEN,
    SECTION_FLAG_REQUIRED, SMALL_RECORD_LEN, TENSOR_FLAG_QUALITY, TENSOR_FLAG_SCALE,
    TENSOR_FLAG_SLOT_L, TENSOR_RECORD_LEN, VERSION_MAJOR,
};
use crate::limits::{
    MAX_DIMS, MAX_DIRECTORY_BYTES, MAX_METADATA_BYTES, MAX_NAME_LEN, MAX_PALETTES, MAX_PALETTE_D,
    MAX_SECTIONS, MAX_STAGES, MAX_TENSORS, SLOT_L_DIMS,
};
use crate::{Dtype, ElemType, Encoding, Regime, Role, SectionKind};

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
    /// Rows, always [`SLOT_L_DIMS`].
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

/// One metadata key/value pair (both valid UTF-8).
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
    /// `(hash of name, tensor index)`, sorted, for lookup by name.
    by_name: Vec<(u64, u32)>,
}

impl Layout {
    /// Name of tensor `i`, or `None` when `i` is out of range or `bytes`
    /// is not the file this layout was parsed from.
    pub fn tensor_name<'a>(&self, bytes: &'a [u8], i: usize) -> Option<&'a str> {
        let t = self.tensors.get(i)?;
        core::str::from_utf8(bytes.get(t.name.clone())?).ok()
    }

    /// Index of the tensor called `name`: a binary search over name hashes,
    /// then a byte comparison.
    pub fn tensor_index(&self, bytes: &[u8], name: &str) -> Option<usize> {
        let key = name.as_bytes();
        let h = name_hash(key);
        let start = self.by_name.partition_point(|&(k, _)| k < h);
        let run = self
            .by_name
            .get(start..)?
            .iter()
            .take_while(|&&(k, _)| k == h);
        run.map(|&(_, i)| i as usize).find(|&i| {
            self.tensors
                .get(i)
                .and_then(|t| bytes.get(t.name.clone()))
                .is_some_and(|n| n == key)
        })
    }

    /// Metadata entry `i` as `(key, value)`.
    pub fn metadata_entry<'a>(&self, bytes: &'a [u8], i: usize) -> Option<(&'a str, &'a str)> {
        let e = self.metadata_entries.get(i)?;
        let k = core::str::from_utf8(bytes.get(e.key.clone())?).ok()?;
        let v = core::str::from_utf8(bytes.get(e.value.clone())?).ok()?;
        Some((k, v))
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
/// section CRCs) and describes it.
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

/// Header checks; returns the header and the table's byte range.
fn parse_header(bytes: &[u8]) -> Result<(&Header, Range<usize>), FormatError> {
    let len = u64_of(bytes.len());
    let Ok((header, _)) = Header::ref_from_prefix(bytes) else {
        return Err(FormatError::Truncated { len });
    };
    if header.magic != MAGIC {
        return Err(FormatError::BadMagic {
            found: header.magic,
        });
    }
    if header.major.get() != VERSION_MAJOR {
        return Err(FormatError::UnsupportedMajor {
            major: header.major.get(),
        });
    }
    let count = header.section_count.get();
    if count as usize > MAX_SECTIONS {
        return Err(limit(
            Place::Header,
            "section_count",
            count,
            MAX_SECTIONS,
            32,
        ));
    }
    let table_offset = header.table_offset.get();
    let table_len = u64::from(count) * SECTION_ENTRY_LEN as u64; // < 2^28
    let table_end = table_offset.checked_add(table_len);
    let file_len = header.file_len.get();
    // The CRC covers the table, so the table must lie in the file to check
    // it; when it does not, the header's lengths or offset are wrong.
    let table = match table_end {
        Some(end) if end <= len && table_offset >= HEADER_LEN as u64 => {
            (table_offset as usize)..(end as usize)
        }
        _ if file_len != len => {
            return Err(FormatError::FileLen {
                header: file_len,
                actual: len,
                table_end,
            })
        }
        _ => {
            return Err(FormatError::TableOffset {
                table_offset,
                table_len,
                file_len: len,
                expected: None,
            })
        }
    };
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..HEADER_CRC_SPAN]);
    h.update(&bytes[table.clone()]);
    let computed = h.finalize();
    if computed != header.header_crc.get() {
        return Err(FormatError::HeaderCrc {
            stored: header.header_crc.get(),
            computed,
        });
    }
    reserved(Place::Header, "flags", 12, header.flags.as_ref())?;
    reserved(Place::Header, "reserved", 36, &header.reserved)?;
    if file_len != len || table.end != bytes.len() {
        return Err(FormatError::FileLen {
            header: file_len,
            actual: len,
            table_end,
        });
    }
    Ok((header, table))
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

/// Section table checks: entries and layout, then padding.
fn parse_table(
    bytes: &[u8],
    header: &Header,
    table: Range<usize>,
) -> Result<Vec<Section>, FormatError> {
    let entries = <[SectionEntry]>::ref_from_bytes(&bytes[table.clone()]).map_err(|_| {
        // Unreachable: the table length is 32 x section_count by construction.
        FormatError::FileLen {
            header: header.file_len.get(),
            actual: u64_of(bytes.len()),
            table_end: Some(u64_of(table.end)),
        }
    })?;
    let table_offset = table.start;
    let table_err = |expected: u64| FormatError::TableOffset {
        table_offset: u64_of(table_offset),
        table_len: u64_of(table.len()),
        file_len: u64_of(bytes.len()),
        expected: Some(expected),
    };
    // The table is present in the file, so this allocation is bounded by its bytes.
    let mut sections = Vec::with_capacity(entries.len());
    let mut expected = HEADER_LEN; // where the next section must start
    for (i, e) in entries.iter().enumerate() {
        let idx = i as u32; // i < section_count, a u32
        let entry_off = table_offset + i * SECTION_ENTRY_LEN;
        let raw_kind = e.kind.get();
        let flags = e.flags.get();
        let kind = SectionKind::from_raw(raw_kind);
        if raw_kind == 0 {
            return Err(FormatError::BadSectionKind {
                section: idx,
                offset: u64_of(entry_off),
            });
        }
        if flags & !SECTION_FLAG_REQUIRED != 0 || (kind.is_some() && flags == 0) {
            return Err(FormatError::SectionFlags {
                section: idx,
                kind: raw_kind,
                flags,
            });
        }
        if kind.is_none() && flags & SECTION_FLAG_REQUIRED != 0 {
            return Err(FormatError::UnknownRequired {
                section: idx,
                kind: raw_kind,
            });
        }
        reserved(
            Place::SectionEntry(idx),
            "reserved",
            entry_off + 24,
            e.reserved.as_ref(),
        )?;
        let offset = e.offset.get();
        if offset != u64_of(expected) {
            return Err(FormatError::SectionOffset {
                section: idx,
                offset,
                expected: u64_of(expected),
            });
        }
        let end = offset.saturating_add(e.length.get());
        if end > u64_of(table_offset) {
            // The section overlaps what follows it: the next section's offset
            // rule names that, or the table's for the last section.
            let next = align64(end).unwrap_or(u64::MAX);
            return Err(match entries.get(i + 1) {
                Some(n) => FormatError::SectionOffset {
                    section: idx + 1,
                    offset: n.offset.get(),
                    expected: next,
                },
                None => table_err(next),
            });
        }
        let end = end as usize; // <= table_offset, a usize
        sections.push(Section {
            kind,
            raw_kind,
            flags,
            crc32: e.crc32.get(),
            offset: expected,
            length: end - expected,
        });
        expected = aligned(end);
    }
    if table_offset != expected {
        return Err(table_err(u64_of(expected)));
    }
    for (i, s) in sections.iter().enumerate() {
        let end = s.offset + s.length;
        if let Some(p) = bytes.get(end..aligned(end)).and_then(first_nonzero) {
            return Err(FormatError::PaddingNotZero {
                offset: u64_of(end + p),
                after: i as u32,
            });
        }
    }
    Ok(sections)
}

/// `align64` of an offset already known to lie inside the file.
fn aligned(x: usize) -> usize {
    // x <= table_offset < file length, so this cannot overflow in practice;
    // saturating keeps it total.
    x.checked_add(63).map_or(usize::MAX, |v| v & !63)
}

/// R-SECTION-COUNT; returns the DIRECTORY, STRINGS and METADATA indices.
fn count_kinds(sections: &[Section]) -> Result<(u32, u32, Option<u32>), FormatError> {
    let find = |kind: SectionKind| {
        let mut it = sections
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.kind == Some(kind));
        let first = it.next().map(|(i, _)| i as u32);
        (first, 1 + it.count() as u32)
    };
    let one = |kind| match find(kind) {
        (Some(i), 1) => Ok(i),
        (Some(_), n) => Err(FormatError::SectionCount { kind, count: n }),
        (None, _) => Err(FormatError::SectionCount { kind, count: 0 }),
    };
    let directory = one(SectionKind::Directory)?;
    let strings = one(SectionKind::Strings)?;
    let metadata = match find(SectionKind::Metadata) {
        (m, 1) | (m @ None, _) => m,
        (Some(_), n) => {
            return Err(FormatError::SectionCount {
                kind: SectionKind::Metadata,
                count: n,
            })
        }
    };
    Ok((directory, strings, metadata))
}

/// A record that references sections, remembered to report shared references.
#[derive(Debug, Clone, Copy)]
enum Site {
    Palette(u32),
    Basis(u32),
    Fisher(u32),
    Tensor(u32),
}

/// Tracks which directory field references each section (R-SECTION-REF).
struct Refs<'l> {
    sections: &'l [Section],
    by: Vec<Option<(Site, &'static str)>>,
}

impl Refs<'_> {
    /// Claims section `s` for `field` of `site`, which must have `kind`;
    /// returns the section's bytes.
    fn claim(
        &mut self,
        s: u32,
        kind: SectionKind,
        site: Site,
        field: &'static str,
        place: impl Fn(Site) -> Place,
    ) -> Result<Range<usize>, FormatError> {
        let err = |problem| FormatError::SectionRef {
            section: s,
            problem,
        };
        let (Some(sec), Some(slot)) = (self.sections.get(s as usize), self.by.get_mut(s as usize))
        else {
            return Err(err(RefProblem::OutOfRange {
                by: place(site),
                field,
                section_count: self.sections.len() as u32,
            }));
        };
        if sec.kind != Some(kind) {
            return Err(err(RefProblem::WrongKind {
                by: place(site),
                field,
                expected: kind,
                found: sec.raw_kind,
            }));
        }
        if let Some((first, first_field)) = *slot {
            return Err(err(RefProblem::Shared {
                by: place(site),
                field,
                first: place(first),
                first_field,
            }));
        }
        *slot = Some((site, field));
        Ok(sec.range())
    }
}

const DATA_KINDS: [SectionKind; 7] = [
    SectionKind::Palette,
    SectionKind::Basis,
    SectionKind::FisherZ,
    SectionKind::Entry,
    SectionKind::SlotL,
    SectionKind::Scale,
    SectionKind::Raw,
];

fn parse_directory(bytes: &[u8], layout: &mut Layout) -> Result<(), FormatError> {
    let dir_index = layout.directory;
    let dir = &layout.sections[dir_index as usize];
    let dir_off = dir.offset;
    let dir_bytes = &bytes[dir.range()];
    let size_err = |expected| FormatError::DirSize {
        section: dir_index,
        length: u64_of(dir_bytes.len()),
        expected,
        max: MAX_DIRECTORY_BYTES,
    };
    let Ok((dh, records)) = DirHeader::ref_from_prefix(dir_bytes) else {
        return Err(size_err(None));
    };
    reserved(Place::DirHeader, "reserved", dir_off + 16, &dh.reserved)?;
    let counts = [
        ("tensor_count", dh.tensor_count.get(), MAX_TENSORS),
        ("palette_count", dh.palette_count.get(), MAX_PALETTES),
        ("basis_count", dh.basis_count.get(), MAX_PALETTES),
        ("fisher_count", dh.fisher_count.get(), MAX_PALETTES),
    ];
    for (i, &(field, value, max)) in counts.iter().enumerate() {
        if value as usize > max {
            return Err(limit(Place::DirHeader, field, value, max, dir_off + 4 * i));
        }
    }
    let [nt, np, nb, nf] = counts.map(|(_, v, _)| u64::from(v));
    let small = SMALL_RECORD_LEN as u64;
    let expected = (np + nb + nf)
        .checked_mul(small)
        .and_then(|x| x.checked_add(nt.checked_mul(TENSOR_RECORD_LEN as u64)?))
        .and_then(|x| x.checked_add(DIR_HEADER_LEN as u64));
    let expected = expected.unwrap_or(u64::MAX);
    if expected > MAX_DIRECTORY_BYTES || expected != u64_of(dir_bytes.len()) {
        return Err(size_err(Some(expected)));
    }
    // From here every count is backed by real directory bytes.
    let (np, nb, nf, nt) = (np as usize, nb as usize, nf as usize, nt as usize);
    // The size check above makes these splits exact; the errors are unreachable.
    let cast_err = || size_err(Some(expected));
    let (pal_bytes, rest) = records
        .split_at_checked(np * SMALL_RECORD_LEN)
        .ok_or_else(cast_err)?;
    let (basis_bytes, rest) = rest
        .split_at_checked(nb * SMALL_RECORD_LEN)
        .ok_or_else(cast_err)?;
    let (fisher_bytes, tensor_bytes) = rest
        .split_at_checked(nf * SMALL_RECORD_LEN)
        .ok_or_else(cast_err)?;
    let pal_recs = <[PaletteRecord]>::ref_from_bytes(pal_bytes).map_err(|_| cast_err())?;
    let basis_recs = <[BasisRecord]>::ref_from_bytes(basis_bytes).map_err(|_| cast_err())?;
    let fisher_recs = <[FisherRecord]>::ref_from_bytes(fisher_bytes).map_err(|_| cast_err())?;
    let tensor_recs = <[TensorRecord]>::ref_from_bytes(tensor_bytes).map_err(|_| cast_err())?;

    let mut refs = Refs {
        sections: &layout.sections,
        by: vec![None; layout.sections.len()],
    };
    let base = dir_off + DIR_HEADER_LEN;
    let pal_base = base;
    let basis_base = pal_base + np * SMALL_RECORD_LEN;
    let fisher_base = basis_base + nb * SMALL_RECORD_LEN;
    let tensor_base = fisher_base + nf * SMALL_RECORD_LEN;
    let small_place = |s: Site| match s {
        Site::Palette(i) => Place::Palette(i),
        Site::Basis(i) => Place::Basis(i),
        Site::Fisher(i) => Place::Fisher(i),
        Site::Tensor(i) => Place::Tensor(TensorId {
            index: i,
            name: None,
        }),
    };

    let mut palettes = Vec::with_capacity(np);
    for (i, r) in pal_recs.iter().enumerate() {
        let idx = i as u32;
        let off = pal_base + i * SMALL_RECORD_LEN;
        reserved(Place::Palette(idx), "reserved", off + 12, &r.reserved)?;
        let range = refs.claim(
            r.section.get(),
            SectionKind::Palette,
            Site::Palette(idx),
            "section",
            small_place,
        )?;
        let (k, d, bits) = (r.k.get(), r.d.get(), r.bits);
        let bits_ok = bits == 4 || bits == 8;
        if !bits_ok
            || k == 0
            || usize::from(k) > (1usize << bits)
            || d == 0
            || d as usize > MAX_PALETTE_D
        {
            return Err(FormatError::PaletteFields {
                palette: idx,
                k,
                d,
                bits,
            });
        }
        let elem = ElemType::from_raw(r.elem).ok_or(FormatError::BadEnum {
            place: Place::Palette(idx),
            field: "elem",
            value: r.elem,
        })?;
        let d = d as usize;
        // <= 256 x 65536 x 4, no overflow.
        let want = (1usize << bits) * d * elem.size();
        if range.len() != want {
            return Err(FormatError::PaletteLen {
                palette: idx,
                section: r.section.get(),
                length: u64_of(range.len()),
                expected: u64_of(want),
            });
        }
        palettes.push(Palette {
            section: r.section.get(),
            range,
            k,
            d,
            bits,
            elem,
            fisher: None,
        });
    }

    let mut bases = Vec::with_capacity(nb);
    for (i, r) in basis_recs.iter().enumerate() {
        let idx = i as u32;
        let off = basis_base + i * SMALL_RECORD_LEN;
        reserved(Place::Basis(idx), "reserved", off + 11, &r.reserved)?;
        let range = refs.claim(
            r.section.get(),
            SectionKind::Basis,
            Site::Basis(idx),
            "section",
            small_place,
        )?;
        let (rows, n_cols) = (r.rows.get(), r.n_cols.get());
        if usize::from(rows) != SLOT_L_DIMS || n_cols == 0 {
            return Err(FormatError::BasisFields {
                basis: idx,
                rows,
                n_cols,
            });
        }
        let elem = ElemType::from_raw(r.elem).ok_or(FormatError::BadEnum {
            place: Place::Basis(idx),
            field: "elem",
            value: r.elem,
        })?;
        let want = u64::from(n_cols) * (SLOT_L_DIMS * elem.size()) as u64;
        if u64_of(range.len()) != want {
            return Err(FormatError::BasisLen {
                basis: idx,
                section: r.section.get(),
                length: u64_of(range.len()),
                expected: want,
            });
        }
        bases.push(Basis {
            section: r.section.get(),
            range,
            rows: SLOT_L_DIMS,
            n_cols: n_cols as usize,
            elem,
        });
    }

    let mut fishers = Vec::with_capacity(nf);
    for (i, r) in fisher_recs.iter().enumerate() {
        let idx = i as u32;
        let off = fisher_base + i * SMALL_RECORD_LEN;
        reserved(Place::Fisher(idx), "reserved", off + 12, &r.reserved)?;
        let range = refs.claim(
            r.section.get(),
            SectionKind::FisherZ,
            Site::Fisher(idx),
            "section",
            small_place,
        )?;
        let p = r.palette.get();
        let Some(pal) = palettes.get_mut(p as usize) else {
            return Err(FormatError::BadIndex {
                place: Place::Fisher(idx),
                field: "palette",
                index: p,
                count: np as u32,
            });
        };
        let gamma = r.gamma.get();
        if !(gamma.is_finite() && gamma > 0.0) {
            return Err(FormatError::FisherGamma { fisher: idx, gamma });
        }
        let k = usize::from(pal.k);
        if range.len() != k * k {
            return Err(FormatError::FisherLen {
                fisher: idx,
                palette: p,
                section: r.section.get(),
                length: u64_of(range.len()),
                expected: u64_of(k * k),
            });
        }
        if let Some(first) = pal.fisher {
            return Err(FormatError::FisherDup {
                fisher: idx,
                palette: p,
                first,
            });
        }
        pal.fisher = Some(idx);
        fishers.push(Fisher {
            section: r.section.get(),
            range,
            palette: p,
            k,
            gamma,
        });
    }

    let strings = layout.sections[layout.strings as usize].range();
    let mut tensors: Vec<Tensor> = Vec::with_capacity(nt);
    // R-NAME-DUP: names seen so far, borrowed from the file.
    let mut seen: HashMap<&[u8], u32> = HashMap::with_capacity(nt);
    for (i, r) in tensor_recs.iter().enumerate() {
        let cx = TensorCx {
            bytes,
            index: i as u32,
            record_offset: tensor_base + i * TENSOR_RECORD_LEN,
            strings: strings.clone(),
            palettes: &palettes,
            bases: &bases,
            earlier: &tensors,
        };
        let t = cx.parse(r, &mut refs, &mut seen)?;
        tensors.push(t);
    }

    // Lookup index: names hashed once and sorted as integers, never copied.
    let mut by_name: Vec<(u64, u32)> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (name_hash(&bytes[t.name.clone()]), i as u32))
        .collect();
    by_name.sort_unstable();

    for (i, (s, by)) in layout.sections.iter().zip(&refs.by).enumerate() {
        if let (Some(kind), None) = (s.kind, by) {
            if DATA_KINDS.contains(&kind) {
                return Err(FormatError::SectionRef {
                    section: i as u32,
                    problem: RefProblem::Unreferenced { kind },
                });
            }
        }
    }

    layout.palettes = palettes;
    layout.bases = bases;
    layout.fishers = fishers;
    layout.tensors = tensors;
    layout.by_name = by_name;
    Ok(())
}

/// Hash of a name for the lookup index (in-memory only, never stored).
fn name_hash(name: &[u8]) -> u64 {
    use core::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write(name);
    h.finish()
}

/// What a tensor record is checked against.
struct TensorCx<'a, 'e> {
    bytes: &'a [u8],
    index: u32,
    record_offset: usize,
    strings: Range<usize>,
    palettes: &'e [Palette],
    bases: &'e [Basis],
    earlier: &'e [Tensor],
}

fn f32_field(v: f32) -> String {
    format!("{v}")
}

impl<'a> TensorCx<'a, '_> {
    fn parse(
        &self,
        r: &TensorRecord,
        refs: &mut Refs<'_>,
        seen: &mut HashMap<&'a [u8], u32>,
    ) -> Result<Tensor, FormatError> {
        let unnamed = TensorId {
            index: self.index,
            name: None,
        };
        reserved(
            Place::Tensor(unnamed),
            "reserved",
            self.record_offset + 132,
            &r.reserved,
        )?;
        let name = self.name(r)?;
        let name_bytes = &self.bytes[name.clone()];
        let name_str = core::str::from_utf8(name_bytes).unwrap_or("");
        if let Some(&first) = seen.get(name_bytes) {
            return Err(FormatError::NameDup {
                tensor: self.index,
                first,
                name: name_str.to_owned(),
            });
        }
        seen.insert(name_bytes, self.index);
        let id = || TensorId {
            index: self.index,
            name: Some(name_str.to_owned()),
        };
        let bad_enum = |field, value| FormatError::BadEnum {
            place: Place::Tensor(id()),
            field,
            value,
        };
        let dtype = Dtype::from_raw(r.dtype).ok_or_else(|| bad_enum("dtype", r.dtype))?;
        let role = Role::from_raw(r.role).ok_or_else(|| bad_enum("role", r.role))?;
        let regime = Regime::from_raw(r.regime).ok_or_else(|| bad_enum("regime", r.regime))?;
        let encoding =
            Encoding::from_raw(r.encoding).ok_or_else(|| bad_enum("encoding", r.encoding))?;
        if r.scale_elem != 0 && ElemType::from_raw(r.scale_elem).is_none() {
            return Err(bad_enum("scale_elem", r.scale_elem));
        }
        let shape = r.shape.map(|v: U64| v.get());
        let (n_rows, n_cols, numel) = self.shape(&id, r.ndims, shape)?;

        let fields = |field: &'static str, value: String, requirement: &'static str| {
            FormatError::TensorFields {
                tensor: id(),
                field,
                value,
                requirement,
            }
        };
        let place = |s: Site| match s {
            Site::Tensor(t) if t == self.index => Place::Tensor(id()),
            Site::Tensor(t) => Place::Tensor(TensorId {
                index: t,
                name: self
                    .earlier
                    .get(t as usize)
                    .and_then(|e| core::str::from_utf8(self.bytes.get(e.name.clone())?).ok())
                    .map(str::to_owned),
            }),
            Site::Palette(i) => Place::Palette(i),
            Site::Basis(i) => Place::Basis(i),
            Site::Fisher(i) => Place::Fisher(i),
        };
        let site = Site::Tensor(self.index);
        let mut t = Tensor {
            name,
            dtype,
            ndims: r.ndims,
            shape,
            n_rows,
            n_cols,
            numel,
            role,
            regime,
            encoding,
            data_section: r.data.get(),
            data: 0..0,
            stride: 0,
            scale: None,
            slot: None,
            quality: None,
            stages: [Stage::default(); MAX_STAGES],
            n_stages: 0,
        };
        let shape_err = |reason| FormatError::BadShape {
            tensor: id(),
            ndims: r.ndims,
            shape,
            reason,
        };
        let slot_scale = r.slot_scale.get();
        let q = [
            ("rho_median", r.rho_median.get()),
            ("rho_p5", r.rho_p5.get()),
            ("rho_min", r.rho_min.get()),
            ("rel_fro", r.rel_fro.get()),
        ];

        if encoding == Encoding::Raw {
            let hex = |v: u32| format!("{v:#x}");
            let checks: [(&'static str, u32, bool, bool); 6] = [
                ("n_stages", u32::from(r.n_stages), false, r.n_stages == 0),
                ("flags", u32::from(r.flags), false, r.flags == 0),
                (
                    "scale_elem",
                    u32::from(r.scale_elem),
                    false,
                    r.scale_elem == 0,
                ),
                ("scale", r.scale.get(), true, r.scale.get() == NONE),
                ("slot_l", r.slot_l.get(), true, r.slot_l.get() == NONE),
                ("basis", r.basis.get(), true, r.basis.get() == NONE),
            ];
            for (field, value, is_hex, ok) in checks {
                if !ok {
                    let value = if is_hex {
                        hex(value)
                    } else {
                        value.to_string()
                    };
                    return Err(fields(field, value, "a RAW tensor has n_stages, flags and scale_elem 0 and scale, slot_l, basis NONE"));
                }
            }
            for (s, p) in r.stage_palette.iter().enumerate() {
                if p.get() != NONE {
                    return Err(fields(
                        STAGE_FIELDS[s],
                        hex(p.get()),
                        "a RAW tensor has every stage_palette NONE",
                    ));
                }
            }
            if slot_scale.to_bits() != 0 {
                return Err(fields(
                    "slot_scale",
                    f32_field(slot_scale),
                    "a RAW tensor has slot_scale 0",
                ));
            }
            for (field, v) in q {
                if v.to_bits() != 0 {
                    return Err(fields(
                        field,
                        f32_field(v),
                        "a RAW tensor has quality fields 0",
                    ));
                }
            }
            t.data = refs.claim(r.data.get(), SectionKind::Raw, site, "data", place)?;
            let want = product(numel, dtype.size());
            if len_of(&t.data) != want {
                return Err(FormatError::RawLen {
                    tensor: id(),
                    section: r.data.get(),
                    length: u64_of(t.data.len()),
                    expected: want,
                });
            }
            return Ok(t);
        }

        // PALETTE
        if !dtype.is_encodable_float() {
            return Err(fields(
                "dtype",
                dtype.name().to_owned(),
                "a PALETTE tensor has dtype F16, BF16, F32 or F64",
            ));
        }
        if regime == Regime::Passthrough {
            return Err(fields(
                "regime",
                regime.name().to_owned(),
                "a PALETTE tensor is not PASSTHROUGH",
            ));
        }
        let known = TENSOR_FLAG_SCALE | TENSOR_FLAG_SLOT_L | TENSOR_FLAG_QUALITY;
        if r.flags & !known != 0 {
            return Err(fields(
                "flags",
                format!("{:#04x}", r.flags),
                "flag bits 3..7 are reserved",
            ));
        }
        let n_stages = usize::from(r.n_stages);
        if n_stages == 0 || n_stages > MAX_STAGES {
            return Err(fields(
                "n_stages",
                r.n_stages.to_string(),
                "a PALETTE tensor has 1..=4 stages",
            ));
        }
        for (s, p) in r.stage_palette.iter().enumerate().skip(n_stages) {
            if p.get() != NONE {
                return Err(fields(
                    STAGE_FIELDS[s],
                    format!("{:#x}", p.get()),
                    "stage_palette entries past n_stages are NONE",
                ));
            }
        }
        let mut stride = 0usize;
        for (s, p) in r.stage_palette.iter().take(n_stages).enumerate() {
            let pi = p.get();
            let Some(pal) = self.palettes.get(pi as usize) else {
                return Err(FormatError::BadIndex {
                    place: Place::Tensor(id()),
                    field: STAGE_FIELDS[s],
                    index: pi,
                    count: self.palettes.len() as u32,
                });
            };
            if pal.d > n_cols {
                return Err(FormatError::PaletteFit {
                    tensor: id(),
                    stage: s as u8,
                    palette: pi,
                    d: pal.d as u32,
                    n_cols: u64_of(n_cols),
                });
            }
            let cb = code_bytes(n_cols, pal.d, pal.bits)
                .ok_or_else(|| shape_err("code bytes per row overflow"))?;
            t.stages[s] = Stage {
                palette: pi,
                d: pal.d,
                bits: pal.bits,
                code_offset: stride,
                cb,
            };
            stride = stride
                .checked_add(cb)
                .ok_or_else(|| shape_err("code bytes per row overflow"))?;
        }
        t.n_stages = r.n_stages;
        t.stride = stride;
        t.data = refs.claim(r.data.get(), SectionKind::Entry, site, "data", place)?;
        let want = product(n_rows, stride);
        if len_of(&t.data) != want {
            return Err(FormatError::EntryLen {
                tensor: id(),
                section: r.data.get(),
                length: u64_of(t.data.len()),
                expected: want,
                n_rows: u64_of(n_rows),
                stride: u64_of(stride),
            });
        }

        if r.flags & TENSOR_FLAG_SCALE != 0 {
            let elem = ElemType::from_raw(r.scale_elem)
                .ok_or_else(|| bad_enum("scale_elem", r.scale_elem))?;
            let range = refs.claim(r.scale.get(), SectionKind::Scale, site, "scale", place)?;
            let want = product(n_rows, elem.size());
            if len_of(&range) != want {
                return Err(FormatError::ScaleLen {
                    tensor: id(),
                    section: r.scale.get(),
                    length: u64_of(range.len()),
                    expected: want,
                });
            }
            t.scale = Some(ScaleRef {
                section: r.scale.get(),
                range,
                elem,
            });
        } else if r.scale_elem != 0 {
            return Err(fields(
                "scale_elem",
                r.scale_elem.to_string(),
                "scale_elem is 0 without HAS_SCALE",
            ));
        } else if r.scale.get() != NONE {
            return Err(fields(
                "scale",
                format!("{:#x}", r.scale.get()),
                "scale is NONE without HAS_SCALE",
            ));
        }

        if r.flags & TENSOR_FLAG_SLOT_L != 0 {
            let bi = r.basis.get();
            let Some(basis) = self.bases.get(bi as usize) else {
                return Err(FormatError::BadIndex {
                    place: Place::Tensor(id()),
                    field: "basis",
                    index: bi,
                    count: self.bases.len() as u32,
                });
            };
            if basis.n_cols != n_cols {
                return Err(FormatError::BasisFit {
                    tensor: id(),
                    basis: bi,
                    basis_n_cols: basis.n_cols as u32,
                    n_cols: u64_of(n_cols),
                });
            }
            let range = refs.claim(r.slot_l.get(), SectionKind::SlotL, site, "slot_l", place)?;
            let want = product(n_rows, SLOT_L_DIMS);
            if len_of(&range) != want {
                return Err(FormatError::SlotLLen {
                    tensor: id(),
                    section: r.slot_l.get(),
                    length: u64_of(range.len()),
                    expected: want,
                });
            }
            if !slot_scale.is_finite() {
                return Err(fields(
                    "slot_scale",
                    f32_field(slot_scale),
                    "slot_scale is finite",
                ));
            }
            t.slot = Some(SlotRef {
                section: r.slot_l.get(),
                range,
                basis: bi,
                slot_scale,
            });
        } else if r.basis.get() != NONE {
            return Err(fields(
                "basis",
                format!("{:#x}", r.basis.get()),
                "basis is NONE without HAS_SLOT_L",
            ));
        } else if r.slot_l.get() != NONE {
            return Err(fields(
                "slot_l",
                format!("{:#x}", r.slot_l.get()),
                "slot_l is NONE without HAS_SLOT_L",
            ));
        } else if slot_scale.to_bits() != 0 {
            return Err(fields(
                "slot_scale",
                f32_field(slot_scale),
                "slot_scale is 0 without HAS_SLOT_L",
            ));
        }

        let bad_q = |field, value, requirement| FormatError::BadQuality {
            tensor: id(),
            field,
            value,
            requirement,
        };
        if r.flags & TENSOR_FLAG_QUALITY != 0 {
            for (field, v) in q {
                if !v.is_finite() {
                    return Err(bad_q(field, v, "must be finite"));
                }
            }
            for (field, v) in &q[..3] {
                if !(-1.0..=1.0).contains(v) {
                    return Err(bad_q(field, *v, "must lie in [-1, 1]"));
                }
            }
            if q[3].1 < 0.0 {
                return Err(bad_q("rel_fro", q[3].1, "must be >= 0"));
            }
            t.quality = Some(Quality {
                rho_median: q[0].1,
                rho_p5: q[1].1,
                rho_min: q[2].1,
                rel_fro: q[3].1,
            });
        } else {
            for (field, v) in q {
                if v.to_bits() != 0 {
                    return Err(bad_q(field, v, "must be 0 without HAS_QUALITY"));
                }
            }
        }
        Ok(t)
    }

    /// R-NAME-BOUNDS and R-NAME-UTF8; returns the name's file range.
    fn name(&self, r: &TensorRecord) -> Result<Range<usize>, FormatError> {
        let (off, len) = (r.name_off.get(), r.name_len.get());
        let strings_len = self.strings.len();
        let end = (off as usize).checked_add(len as usize);
        match end {
            Some(end) if len >= 1 && len as usize <= MAX_NAME_LEN && end <= strings_len => {
                let range = self.strings.start + off as usize..self.strings.start + end;
                if core::str::from_utf8(&self.bytes[range.clone()]).is_err() {
                    return Err(FormatError::NameUtf8 {
                        tensor: self.index,
                        offset: u64_of(range.start),
                    });
                }
                Ok(range)
            }
            _ => Err(FormatError::NameBounds {
                tensor: self.index,
                name_off: off,
                name_len: len,
                strings_len: u64_of(strings_len),
            }),
        }
    }

    /// R-SHAPE; returns `(n_rows, n_cols, numel)`.
    fn shape(
        &self,
        id: &dyn Fn() -> TensorId,
        ndims: u8,
        shape: [u64; MAX_DIMS],
    ) -> Result<(usize, usize, usize), FormatError> {
        let err = |reason| FormatError::BadShape {
            tensor: id(),
            ndims,
            shape,
            reason,
        };
        let nd = usize::from(ndims);
        if nd > MAX_DIMS {
            return Err(err("ndims is over 8"));
        }
        if shape[nd..].iter().any(|&v| v != 0) {
            return Err(err("entries past ndims must be 0"));
        }
        let (n_rows, n_cols) =
            crate::encode::matrix_dims(&shape[..nd]).ok_or_else(|| err("n_cols overflows u64"))?;
        let numel = n_rows
            .checked_mul(n_cols)
            .ok_or_else(|| err("numel overflows u64"))?;
        let fit = |v: u64| usize::try_from(v).map_err(|_| err("size does not fit in usize"));
        Ok((fit(n_rows)?, fit(n_cols)?, fit(numel)?))
    }
}

/// `a x b`, `None` past u64: a length that no section can have, so the
/// length rule (not R-SHAPE) rejects it, as the spec's unbounded arithmetic does.
fn product(a: usize, b: usize) -> Option<u64> {
    u64_of(a).checked_mul(u64_of(b))
}

fn len_of(r: &Range<usize>) -> Option<u64> {
    Some(u64_of(r.len()))
}

const STAGE_FIELDS: [&str; MAX_STAGES] = [
    "stage_palette[0]",
    "stage_palette[1]",
    "stage_palette[2]",
    "stage_palette[3]",
];

/// R-METADATA; entries are pushed as they are read, so the allocation grows
/// with the bytes present.
fn parse_metadata(bytes: &[u8], sec: &Section) -> Result<Vec<MetaEntry>, FormatError> {
    let range = sec.range();
    let mut entries: Vec<MetaEntry> = Vec::new();
    let mut pos = range.start;
    let mut prev_key: Option<Range<usize>> = None;
    let mut idx = 0u32;
    while pos < range.end {
        let err = |offset: usize, reason| FormatError::BadMetadata {
            entry: idx,
            offset: u64_of(offset),
            reason,
        };
        let Some(klen) = read_len(bytes, pos, range.end) else {
            return Err(err(pos, "key length runs past the section end"));
        };
        if klen == 0 || klen > MAX_NAME_LEN {
            return Err(err(pos, "key length is not in 1..=4096"));
        }
        let key = pos + 4..(pos + 4).saturating_add(klen);
        if key.end > range.end {
            return Err(err(pos, "key runs past the section end"));
        }
        if core::str::from_utf8(&bytes[key.clone()]).is_err() {
            return Err(err(key.start, "key is not valid UTF-8"));
        }
        if let Some(p) = &prev_key {
            if bytes[key.clone()] <= bytes[p.clone()] {
                return Err(err(key.start, "keys are not strictly increasing"));
            }
        }
        pos = key.end;
        let Some(vlen) = read_len(bytes, pos, range.end) else {
            return Err(err(pos, "value length runs past the section end"));
        };
        if vlen > MAX_METADATA_BYTES {
            return Err(err(pos, "value length is over 16 MiB"));
        }
        let value = pos + 4..(pos + 4).saturating_add(vlen);
        if value.end > range.end {
            return Err(err(pos, "value runs past the section end"));
        }
        if core::str::from_utf8(&bytes[value.clone()]).is_err() {
            return Err(err(value.start, "value is not valid UTF-8"));
        }
        pos = value.end;
        prev_key = Some(key.clone());
        entries.push(MetaEntry { key, value });
        idx += 1;
    }
    Ok(entries)
}

/// The little-endian u32 at `at`, when its 4 bytes end by `end`.
fn read_len(bytes: &[u8], at: usize, end: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4).filter(|&e| e <= end)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}
