//! Streaming writer for hhtld files (spec §1–§5).
//!
//! Each object is checked completely, then written at once: its section
//! payload goes to the output followed by zero padding to the next multiple
//! of 64, and only its small record stays in memory. [`Writer::finish`]
//! writes STRINGS, METADATA (when any was set) and the DIRECTORY, then the
//! section table, and finally seeks back to write the header and its CRC.
//! Sections are numbered in the order they are written.
//!
//! Every cap of the format is checked when an object is added and reported
//! as a typed [`WriteError`]. A rejected object leaves the writer unchanged,
//! so the caller may go on; an I/O error poisons the writer.
//!
//! ```
//! use std::io::Cursor;
//! use hhtld_format::{Dtype, ElemType, Regime, Role};
//! use hhtld_writer::builder::{EncodedTensor, PaletteSpec, RawTensor, Stage, TensorHeader, Writer};
//!
//! let mut w = Writer::new(Cursor::new(Vec::new()))?;
//! // A 4-bit palette of 3 entries of width 2.
//! let p = w.add_palette(PaletteSpec {
//!     k: 3, d: 2, bits: 4, elem: ElemType::Bf16,
//!     values: &[0.0, 0.0, 1.0, -1.0, 0.5, 0.25],
//! })?;
//! // A 2 x 4 tensor: 2 sub-vectors per row.
//! w.add_encoded_tensor(EncodedTensor {
//!     header: TensorHeader { name: "w", dtype: Dtype::F32, shape: &[2, 4],
//!         role: Role::MlpUp, regime: Regime::Argmax },
//!     stages: &[Stage { palette: p, codes: &[0, 1, 2, 1] }],
//!     scale: Some((ElemType::F16, &[1.0, 2.0])),
//!     slot_l: None, quality: None,
//! })?;
//! w.add_raw_tensor(RawTensor {
//!     header: TensorHeader { name: "b", dtype: Dtype::F32, shape: &[2],
//!         role: Role::Bias, regime: Regime::Passthrough },
//!     bytes: &[0u8; 8],
//! })?;
//! w.set_metadata("source", "example")?;
//! let (out, report) = w.finish_into_inner()?;
//! assert_eq!(report.file_len, out.get_ref().len() as u64);
//! report.check().unwrap();
//! # Ok::<(), hhtld_writer::error::WriteError>(())
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicU32, Ordering};

use hhtld_format::layout::{
    align64, BasisRecord, DirHeader, FisherRecord, Header, PaletteRecord, SectionEntry,
    TensorRecord, DIR_HEADER_LEN, HEADER_CRC_SPAN, HEADER_LEN, MAGIC, NONE, SECTION_FLAG_REQUIRED,
    SMALL_RECORD_LEN, TENSOR_RECORD_LEN, VERSION_MAJOR, VERSION_MINOR,
};
use hhtld_format::limits::{
    MAX_DIRECTORY_BYTES, MAX_METADATA_BYTES, MAX_NAME_LEN, MAX_PALETTES, MAX_SECTIONS, MAX_STAGES,
    MAX_TENSORS, SLOT_L_DIMS,
};
use hhtld_format::{Dtype, ElemType, Encoding, Regime, Role, SectionKind};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromZeros, Immutable, IntoBytes};

use crate::error::{shorten, WriteError};
use crate::report::{Accounting, SectionBytes, SizeReport, TensorAccount, TensorBytes};

mod add;
mod atomic;
mod group;

pub use atomic::AtomicFile;
pub use group::GroupIds;
/// Buffered bytes are handed to the output in chunks of this size.
const CHUNK: usize = 1 << 16;
/// Sections written by `finish` (STRINGS, METADATA, DIRECTORY), kept free
/// under `max_sections` at every add.
const FINISH_SECTIONS: usize = 3;

/// Sets `header_crc`: CRC32 of the header's first 60 bytes, then the table.
pub(crate) fn seal_header(header: &mut Header, table_bytes: &[u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&header.as_bytes()[..HEADER_CRC_SPAN]);
    h.update(table_bytes);
    header.header_crc = U32::new(h.finalize());
}

/// The checks of [`Writer::set_metadata`]: a key of 1..=`MAX_NAME_LEN`
/// bytes, a value of at most `MAX_METADATA_BYTES`.
pub(crate) fn check_metadata_entry(key: &str, value: &str) -> Result<(), WriteError> {
    if key.is_empty() {
        return Err(WriteError::Metadata {
            key: String::new(),
            reason: "empty key".into(),
        });
    }
    if key.len() > MAX_NAME_LEN {
        return Err(WriteError::NameTooLong {
            what: format!("metadata key '{}'", shorten(key)),
            len: key.len(),
            max: MAX_NAME_LEN,
        });
    }
    if value.len() > MAX_METADATA_BYTES {
        return Err(WriteError::Metadata {
            key: shorten(key),
            reason: format!(
                "value is {} bytes, more than MAX_METADATA_BYTES ({MAX_METADATA_BYTES})",
                value.len()
            ),
        });
    }
    Ok(())
}

/// Tags ids with their writer, so an id from another writer is rejected.
static NEXT_WRITER_TAG: AtomicU32 = AtomicU32::new(1);

/// A palette added to a [`Writer`]; valid only for that writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaletteId {
    writer: u32,
    index: u32,
}

impl PaletteId {
    /// Index of the PaletteRecord in the directory.
    pub fn index(self) -> u32 {
        self.index
    }
}

/// A SlotL basis added to a [`Writer`]; valid only for that writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BasisId {
    writer: u32,
    index: u32,
}

impl BasisId {
    /// Index of the BasisRecord in the directory.
    pub fn index(self) -> u32 {
        self.index
    }
}

/// A palette to add: `k` entries of `d` values, entry-major
/// (`values[e * d + j]`), stored as `elem` with `bits`-bit codes.
#[derive(Debug, Clone, Copy)]
pub struct PaletteSpec<'a> {
    /// Entries in use, `1..=2^bits`.
    pub k: usize,
    /// Entry width, `1..=MAX_PALETTE_D`.
    pub d: usize,
    /// Code width, 4 or 8.
    pub bits: u8,
    /// Storage element type; values are rounded to nearest, ties to even.
    pub elem: ElemType,
    /// `k * d` finite values.
    pub values: &'a [f32],
}

/// What the directory records of a tensor besides its data. [`RawTensor`]
/// and [`EncodedTensor`] hold one; [`Writer::add_group_member`] takes one
/// per member.
#[derive(Debug, Clone, Copy)]
pub struct TensorHeader<'a> {
    /// Unique name, 1..=MAX_NAME_LEN bytes.
    pub name: &'a str,
    /// Original dtype: of the bytes of a raw tensor; F16, BF16, F32 or F64
    /// for an encoded one.
    pub dtype: Dtype,
    /// Shape, at most MAX_DIMS entries.
    pub shape: &'a [u64],
    /// Role.
    pub role: Role,
    /// Regime: any for a raw tensor (a tensor that failed its gate keeps
    /// its regime), not PASSTHROUGH for an encoded one.
    pub regime: Regime,
}

/// A tensor stored as is.
#[derive(Debug, Clone, Copy)]
pub struct RawTensor<'a> {
    /// Name, dtype (of `bytes`), shape, role and regime.
    pub header: TensorHeader<'a>,
    /// `numel * dtype.size()` bytes, row-major.
    pub bytes: &'a [u8],
}

impl<'a> RawTensor<'a> {
    /// A tensor stored as is with role OTHER and regime PASSTHROUGH: one
    /// whose role does not matter to the reader.
    pub fn passthrough(name: &'a str, dtype: Dtype, shape: &'a [u64], bytes: &'a [u8]) -> Self {
        let header = TensorHeader {
            name,
            dtype,
            shape,
            role: Role::Other,
            regime: Regime::Passthrough,
        };
        RawTensor { header, bytes }
    }
}

/// One residual stage of an encoded tensor.
#[derive(Debug, Clone, Copy)]
pub struct Stage<'a> {
    /// Its palette.
    pub palette: PaletteId,
    /// `n_rows * n_sub` codes, row-major, each `< k`, where
    /// `n_sub = ceil(n_cols / d)`. A palette has at most 256 entries, so a
    /// code is a `u8`; a code `>= k` is still a typed error.
    pub codes: &'a [u8],
}

impl<'a> Stage<'a> {
    /// Stage `codes` of `palette`.
    pub fn new(palette: PaletteId, codes: &'a [u8]) -> Self {
        Stage { palette, codes }
    }
}

/// The SlotL residual of an encoded tensor.
#[derive(Debug, Clone, Copy)]
pub struct SlotL<'a> {
    /// Basis of `8 x n_cols` values; its `n_cols` must equal the tensor's.
    pub basis: BasisId,
    /// One `[i8; 8]` coefficient row per tensor row.
    pub coef: &'a [[i8; SLOT_L_DIMS]],
    /// Finite scale of the coefficients (`slot_scale`).
    pub scale: f32,
}

/// Reconstruction quality of an encoded tensor, as measured by its codec:
/// the format's own record type, so what is written is what a reader gets.
pub use hhtld_format::validate::Quality;

/// A palette-encoded tensor.
#[derive(Debug, Clone, Copy)]
pub struct EncodedTensor<'a> {
    /// Name, original dtype, shape, role and regime.
    pub header: TensorHeader<'a>,
    /// 1..=MAX_STAGES stages, summed in order.
    pub stages: &'a [Stage<'a>],
    /// Per-row scales (`n_rows` values) and their storage type.
    pub scale: Option<(ElemType, &'a [f32])>,
    /// SlotL residual.
    pub slot_l: Option<SlotL<'a>>,
    /// Quality figures to record.
    pub quality: Option<Quality>,
}

impl<'a> EncodedTensor<'a> {
    /// A tensor of `stages` with no scales, SlotL or quality; the `with_*`
    /// methods add them.
    pub fn new(
        name: &'a str,
        dtype: Dtype,
        shape: &'a [u64],
        role: Role,
        regime: Regime,
        stages: &'a [Stage<'a>],
    ) -> Self {
        let header = TensorHeader {
            name,
            dtype,
            shape,
            role,
            regime,
        };
        EncodedTensor::of(header, stages)
    }

    /// The tensor `header` of `stages`, with no scales, SlotL or quality.
    pub fn of(header: TensorHeader<'a>, stages: &'a [Stage<'a>]) -> Self {
        EncodedTensor {
            header,
            stages,
            scale: None,
            slot_l: None,
            quality: None,
        }
    }

    /// With per-row `scales` stored as `elem`.
    pub fn with_scale(self, elem: ElemType, scales: &'a [f32]) -> Self {
        EncodedTensor {
            scale: Some((elem, scales)),
            ..self
        }
    }

    /// With a SlotL residual.
    pub fn with_slot_l(self, slot_l: SlotL<'a>) -> Self {
        EncodedTensor {
            slot_l: Some(slot_l),
            ..self
        }
    }

    /// With `quality` recorded (or none).
    pub fn with_quality(self, quality: Option<Quality>) -> Self {
        EncodedTensor { quality, ..self }
    }
}

/// Caps a writer enforces. The defaults are the format limits; a writer may
/// be given lower ones (e.g. to bound memory), never higher: larger values
/// are clamped to the format limits by [`Writer::with_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterLimits {
    /// Most tensors (`MAX_TENSORS`).
    pub max_tensors: usize,
    /// Most palette, basis and FisherZ records, each (`MAX_PALETTES`).
    pub max_palettes: usize,
    /// Most sections (`MAX_SECTIONS`).
    pub max_sections: usize,
    /// Largest DIRECTORY section (`MAX_DIRECTORY_BYTES`).
    pub max_directory_bytes: u64,
}

impl Default for WriterLimits {
    fn default() -> Self {
        WriterLimits {
            max_tensors: MAX_TENSORS,
            max_palettes: MAX_PALETTES,
            max_sections: MAX_SECTIONS,
            max_directory_bytes: MAX_DIRECTORY_BYTES,
        }
    }
}

impl WriterLimits {
    fn clamped(self) -> Self {
        let d = WriterLimits::default();
        WriterLimits {
            max_tensors: self.max_tensors.min(d.max_tensors),
            max_palettes: self.max_palettes.min(d.max_palettes),
            max_sections: self.max_sections.min(d.max_sections),
            max_directory_bytes: self.max_directory_bytes.min(d.max_directory_bytes),
        }
    }
}

struct PaletteMeta {
    k: usize,
    d: usize,
    bits: u8,
    /// Values as stored, kept for `add_fisher_z`; dropped once it ran.
    stored: Option<Vec<f32>>,
    fisher: Option<u32>,
    bytes: u64,
}

/// A file under construction; see the module documentation.
pub struct Writer<W: Write + Seek> {
    out: W,
    /// Run after the header is written (fsync + rename for [`AtomicFile`]).
    commit: fn(&mut W) -> io::Result<()>,
    tag: u32,
    limits: WriterLimits,
    /// Output position where the file starts.
    base: u64,
    /// Bytes of the file produced so far (written or pending).
    written: u64,
    pending: Vec<u8>,
    /// State of the section being written.
    hasher: crc32fast::Hasher,
    section_start: u64,
    poisoned: bool,
    sections: Vec<SectionEntry>,
    palettes: Vec<PaletteRecord>,
    palette_meta: Vec<PaletteMeta>,
    bases: Vec<BasisRecord>,
    basis_bytes: Vec<u64>,
    fishers: Vec<FisherRecord>,
    tensors: Vec<TensorRecord>,
    tensor_info: Vec<TensorAccount>,
    names: HashSet<Box<str>>,
    strings: Vec<u8>,
    metadata: BTreeMap<String, String>,
}

/// The matrix view of a shape (spec §4 "Shape").
struct View {
    n_rows: u64,
    n_cols: u64,
    numel: u64,
}

impl<W: Write + Seek> Writer<W> {
    /// Starts a file at the current position of `out` (normally 0), writing
    /// a placeholder header. Anything after that position is overwritten;
    /// `out` should be empty there.
    pub fn new(out: W) -> Result<Self, WriteError> {
        Self::with_limits(out, WriterLimits::default())
    }

    /// Like [`Writer::new`] with lower caps; limits above the format's are clamped.
    pub fn with_limits(mut out: W, limits: WriterLimits) -> Result<Self, WriteError> {
        let base = out.stream_position().map_err(|source| WriteError::Io {
            op: "reading the start position".into(),
            source,
        })?;
        let mut w = Writer {
            out,
            commit: |_| Ok(()),
            tag: NEXT_WRITER_TAG.fetch_add(1, Ordering::Relaxed),
            limits: limits.clamped(),
            base,
            written: 0,
            pending: Vec::with_capacity(CHUNK),
            hasher: crc32fast::Hasher::new(),
            section_start: 0,
            poisoned: false,
            sections: Vec::new(),
            palettes: Vec::new(),
            palette_meta: Vec::new(),
            bases: Vec::new(),
            basis_bytes: Vec::new(),
            fishers: Vec::new(),
            tensors: Vec::new(),
            tensor_info: Vec::new(),
            names: HashSet::new(),
            strings: Vec::new(),
            metadata: BTreeMap::new(),
        };
        w.pending.resize(HEADER_LEN, 0);
        w.written = HEADER_LEN as u64;
        w.flush_pending("writing the placeholder header")?;
        Ok(w)
    }

    /// The caps in force.
    pub fn limits(&self) -> WriterLimits {
        self.limits
    }

    /// Number of tensors added so far.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// Number of palettes added so far.
    pub fn palette_count(&self) -> usize {
        self.palettes.len()
    }

    // ---- output plumbing -------------------------------------------------

    fn io_err(&mut self, op: &str, source: io::Error) -> WriteError {
        self.poisoned = true;
        WriteError::Io {
            op: op.to_owned(),
            source,
        }
    }

    fn flush_pending(&mut self, op: &str) -> Result<(), WriteError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match self.out.write_all(&self.pending) {
            Ok(()) => {
                self.pending.clear();
                Ok(())
            }
            Err(e) => Err(self.io_err(op, e)),
        }
    }

    fn check_usable(&self) -> Result<(), WriteError> {
        if self.poisoned {
            Err(WriteError::Poisoned)
        } else {
            Ok(())
        }
    }

    fn begin_section(&mut self) {
        self.hasher = crc32fast::Hasher::new();
        self.section_start = self.written;
    }

    /// Appends section payload bytes.
    /// Emits the records of the directory array `field` picks out of the
    /// writer (taken out and put back so `emit` can borrow `self`).
    fn emit_records<T: IntoBytes + Immutable>(
        &mut self,
        field: fn(&mut Self) -> &mut Vec<T>,
    ) -> Result<(), WriteError> {
        let records = std::mem::take(field(self));
        let res = self.emit(records.as_bytes());
        *field(self) = records;
        res
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        if self.pending.len() + bytes.len() <= CHUNK {
            self.pending.extend_from_slice(bytes);
            return Ok(());
        }
        self.flush_pending("writing section data")?;
        if bytes.len() >= CHUNK {
            if let Err(e) = self.out.write_all(bytes) {
                return Err(self.io_err("writing section data", e));
            }
        } else {
            self.pending.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// Emits `buf` and clears it, flushing when it has grown to a chunk.
    fn emit_buf(&mut self, buf: &mut Vec<u8>, force: bool) -> Result<(), WriteError> {
        if force || buf.len() >= CHUNK {
            self.emit(buf)?;
            buf.clear();
        }
        Ok(())
    }

    /// Closes the current section: pads to 64 and records its table entry.
    fn end_section(&mut self, kind: SectionKind) -> Result<u32, WriteError> {
        let length = self.written - self.section_start;
        let end = self.written;
        let padded = align64(end).unwrap_or(end);
        let pad = (padded - end) as usize;
        self.pending.extend_from_slice(&[0u8; 64][..pad]);
        self.written = padded;
        if self.pending.len() >= CHUNK {
            self.flush_pending("writing section padding")?;
        }
        let index = self.sections.len() as u32;
        let hasher = std::mem::take(&mut self.hasher);
        self.sections.push(SectionEntry {
            kind: U16::new(kind.to_raw()),
            flags: U16::new(SECTION_FLAG_REQUIRED),
            crc32: U32::new(hasher.finalize()),
            offset: U64::new(self.section_start),
            length: U64::new(length),
            reserved: U64::new(0),
        });
        Ok(index)
    }

    // ---- caps ------------------------------------------------------------

    /// Checks the counts after adding the given numbers of objects.
    fn check_caps(
        &self,
        tensors: usize,
        palettes: usize,
        bases: usize,
        fishers: usize,
        sections: usize,
    ) -> Result<(), WriteError> {
        let l = &self.limits;
        let over = |cap, max: usize, value: usize| {
            if value > max {
                Err(WriteError::Limit {
                    cap,
                    max: max as u64,
                    value: value as u64,
                })
            } else {
                Ok(())
            }
        };
        let t = self.tensors.len() + tensors;
        let p = self.palettes.len() + palettes;
        let b = self.bases.len() + bases;
        let f = self.fishers.len() + fishers;
        over("MAX_TENSORS", l.max_tensors, t)?;
        over("MAX_PALETTES (palettes)", l.max_palettes, p)?;
        over("MAX_PALETTES (bases)", l.max_palettes, b)?;
        over("MAX_PALETTES (FisherZ tables)", l.max_palettes, f)?;
        over(
            "MAX_SECTIONS",
            l.max_sections,
            self.sections.len() + sections + FINISH_SECTIONS,
        )?;
        let dir = DIR_HEADER_LEN as u64
            + SMALL_RECORD_LEN as u64 * (p + b + f) as u64
            + TENSOR_RECORD_LEN as u64 * t as u64;
        if dir > l.max_directory_bytes {
            return Err(WriteError::Limit {
                cap: "MAX_DIRECTORY_BYTES",
                max: l.max_directory_bytes,
                value: dir,
            });
        }
        Ok(())
    }

    fn palette(&self, id: PaletteId) -> Result<&PaletteMeta, WriteError> {
        if id.writer != self.tag {
            return Err(WriteError::UnknownPalette { index: id.index });
        }
        self.palette_meta
            .get(id.index as usize)
            .ok_or(WriteError::UnknownPalette { index: id.index })
    }

    fn basis_n_cols(&self, id: BasisId) -> Result<u64, WriteError> {
        if id.writer != self.tag {
            return Err(WriteError::UnknownBasis { index: id.index });
        }
        self.bases
            .get(id.index as usize)
            .map(|b| u64::from(b.n_cols.get()))
            .ok_or(WriteError::UnknownBasis { index: id.index })
    }

    /// Checks a tensor name: non-empty, short enough, unique, and room in
    /// STRINGS for u32 offsets.
    fn check_name(&self, name: &str) -> Result<(), WriteError> {
        if name.is_empty() {
            return Err(WriteError::EmptyName {
                index: self.tensors.len(),
            });
        }
        if name.len() > MAX_NAME_LEN {
            return Err(WriteError::NameTooLong {
                what: format!("tensor name '{}'", shorten(name)),
                len: name.len(),
                max: MAX_NAME_LEN,
            });
        }
        if self.names.contains(name) {
            return Err(WriteError::DuplicateName {
                name: shorten(name),
            });
        }
        let end = self.strings.len() as u64 + name.len() as u64;
        if end > u64::from(u32::MAX) {
            return Err(WriteError::Limit {
                cap: "STRINGS size (u32 name offsets)",
                max: u64::from(u32::MAX),
                value: end,
            });
        }
        Ok(())
    }

    /// Stores a checked name; returns `(name_off, name_len)`.
    fn push_name(&mut self, name: &str) -> (u32, u32) {
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.names.insert(name.into());
        (off, name.len() as u32)
    }

    fn base_record(name: (u32, u32), h: &TensorHeader<'_>, encoding: Encoding) -> TensorRecord {
        let mut r = TensorRecord::new_zeroed();
        r.name_off = U32::new(name.0);
        r.name_len = U32::new(name.1);
        r.dtype = h.dtype.to_raw();
        r.ndims = h.shape.len() as u8;
        r.role = h.role.to_raw();
        r.regime = h.regime.to_raw();
        r.encoding = encoding.to_raw();
        for (dst, &s) in r.shape.iter_mut().zip(h.shape) {
            *dst = U64::new(s);
        }
        r.data = U32::new(NONE);
        r.scale = U32::new(NONE);
        r.slot_l = U32::new(NONE);
        r.basis = U32::new(NONE);
        r.stage_palette = [U32::new(NONE); MAX_STAGES];
        r
    }

    /// Sets a metadata entry; setting a key again replaces its value (the
    /// last value wins). Entries are written sorted by key at `finish`.
    ///
    /// # Errors
    /// [`WriteError::Metadata`] for an empty key or a value over
    /// `MAX_METADATA_BYTES`; [`WriteError::NameTooLong`] for a key over
    /// `MAX_NAME_LEN`.
    pub fn set_metadata(&mut self, key: &str, value: &str) -> Result<(), WriteError> {
        self.check_usable()?;
        check_metadata_entry(key, value)?;
        self.metadata.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// Writes the remaining sections, the table and the header, and returns
    /// the size report. See [`Writer::finish_into_inner`] to get the output back.
    pub fn finish(self) -> Result<SizeReport, WriteError> {
        self.finish_into_inner().map(|(_, r)| r)
    }

    /// Puts the tensor records in the order `names` gives; tensors not named
    /// keep their relative order after the named ones. Sections are already
    /// written and stay where they are: only the directory (what readers
    /// list and what `decode` emits) is reordered. This lets an encoder
    /// write shared-palette groups as they finish while the file still lists
    /// tensors in model order.
    ///
    /// An unknown name is a [`WriteError::UnknownTensor`], so a caller's
    /// bookkeeping error is not silently ignored.
    pub fn order_tensors_like<'n>(
        &mut self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<(), WriteError> {
        self.check_usable()?;
        let rank: HashMap<&str, usize> =
            names.into_iter().enumerate().map(|(i, n)| (n, i)).collect();
        let mut keys = Vec::with_capacity(self.tensors.len());
        for (i, info) in self.tensor_info.iter().enumerate() {
            let name = info.line.name.as_str();
            keys.push((rank.get(name).copied().unwrap_or(usize::MAX), i));
        }
        if let Some(unknown) = rank.keys().find(|n| !self.names.contains(**n)) {
            return Err(WriteError::UnknownTensor {
                name: shorten(unknown),
            });
        }
        keys.sort_unstable();
        let tensors = keys.iter().map(|&(_, i)| self.tensors[i]).collect();
        let mut info: Vec<Option<TensorAccount>> = std::mem::take(&mut self.tensor_info)
            .into_iter()
            .map(Some)
            .collect();
        self.tensor_info = keys.iter().filter_map(|&(_, i)| info[i].take()).collect();
        self.tensors = tensors;
        Ok(())
    }

    /// Like [`Writer::finish`], also returning the output (positioned at the
    /// end of the file).
    pub fn finish_into_inner(mut self) -> Result<(W, SizeReport), WriteError> {
        self.check_usable()?;

        self.begin_section();
        let strings = std::mem::take(&mut self.strings);
        self.emit(&strings)?;
        self.end_section(SectionKind::Strings)?;

        if !self.metadata.is_empty() {
            let metadata = std::mem::take(&mut self.metadata);
            self.begin_section();
            let mut bytes = Vec::new();
            for (k, v) in &metadata {
                // Lengths were checked against MAX_NAME_LEN / MAX_METADATA_BYTES.
                hhtld_format::encode::push_metadata_entry(k, v, &mut bytes);
            }
            self.emit(&bytes)?;
            self.end_section(SectionKind::Metadata)?;
        }

        self.begin_section();
        let mut dh = DirHeader::new_zeroed();
        dh.tensor_count = U32::new(self.tensors.len() as u32);
        dh.palette_count = U32::new(self.palettes.len() as u32);
        dh.basis_count = U32::new(self.bases.len() as u32);
        dh.fisher_count = U32::new(self.fishers.len() as u32);
        self.emit(dh.as_bytes())?;
        self.emit_records(|w| &mut w.palettes)?;
        self.emit_records(|w| &mut w.bases)?;
        self.emit_records(|w| &mut w.fishers)?;
        self.emit_records(|w| &mut w.tensors)?;
        self.end_section(SectionKind::Directory)?;

        // The table follows the padded last section.
        let table_offset = self.written;
        let table = std::mem::take(&mut self.sections);
        let table_bytes = table.as_bytes();
        let file_len = table_offset + table_bytes.len() as u64;
        self.flush_pending("writing the last sections")?;
        if let Err(e) = self.out.write_all(table_bytes) {
            return Err(self.io_err("writing the section table", e));
        }

        let mut header = Header::new_zeroed();
        header.magic = MAGIC;
        header.major = U16::new(VERSION_MAJOR);
        header.minor = U16::new(VERSION_MINOR);
        header.file_len = U64::new(file_len);
        header.table_offset = U64::new(table_offset);
        header.section_count = U32::new(table.len() as u32);
        seal_header(&mut header, table_bytes);

        let base = self.base;
        let res = (|| {
            self.out.seek(SeekFrom::Start(base))?;
            self.out.write_all(header.as_bytes())?;
            self.out
                .seek(SeekFrom::Start(base.saturating_add(file_len)))?;
            self.out.flush()?;
            (self.commit)(&mut self.out)
        })();
        if let Err(e) = res {
            return Err(self.io_err("writing the header and committing", e));
        }

        let report = self.report(&table, file_len, table_bytes.len() as u64);
        Ok((self.out, report))
    }

    fn report(&self, table: &[SectionEntry], file_len: u64, table_len: u64) -> SizeReport {
        let sections: Vec<SectionBytes> = table
            .iter()
            .map(|e| SectionBytes {
                kind: SectionKind::from_raw(e.kind.get()),
                offset: e.offset.get(),
                length: e.length.get(),
            })
            .collect();
        SizeReport::compute(&Accounting {
            file_len,
            table_len,
            sections: &sections,
            palette_bytes: &self
                .palette_meta
                .iter()
                .map(|m| m.bytes)
                .collect::<Vec<_>>(),
            fisher_bytes: &self
                .palette_meta
                .iter()
                .map(|m| m.fisher.map_or(0, |_| (m.k * m.k) as u64))
                .collect::<Vec<_>>(),
            basis_bytes: &self.basis_bytes,
            tensors: &self.tensor_info,
        })
    }
}
