//! [`Hhtld`], the borrowed view of a validated file, and the palette, basis
//! and FisherZ views. Views are zero-copy: they hold slices of the file.

use std::sync::Arc;

use half::{bf16, f16};
use hhtld_format::decode::ElemSlice;
use hhtld_format::validate::{Section, Tensor};
use hhtld_format::{parse, ElemType, Layout, SectionKind};
use rayon::prelude::*;
use zerocopy::FromBytes;

use crate::{ReaderError, TensorView};

/// A validated hhtld file as borrowed bytes plus its layout. Cheap to clone.
#[derive(Clone)]
pub struct Hhtld<'a> {
    bytes: &'a [u8],
    layout: Arc<Layout>,
    max_expansion: u64,
}

impl core::fmt::Debug for Hhtld<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hhtld")
            .field("len", &self.bytes.len())
            .field("version", &self.layout.version)
            .field("sections", &self.layout.sections.len())
            .field("tensors", &self.layout.tensors.len())
            .finish()
    }
}

/// Result of checking one section's CRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionStatus {
    /// Section index.
    pub index: u32,
    /// Kind, when known.
    pub kind: Option<SectionKind>,
    /// Kind as stored.
    pub raw_kind: u16,
    /// File offset.
    pub offset: usize,
    /// Length in bytes.
    pub length: usize,
    /// CRC from the section table.
    pub stored: u32,
    /// CRC of the bytes.
    pub computed: u32,
}

impl SectionStatus {
    /// Whether the CRCs match.
    pub fn ok(&self) -> bool {
        self.stored == self.computed
    }
}

/// Sections at least this large are hashed in parallel chunks.
const CRC_CHUNK: usize = 4 << 20;

/// CRC32 of `data`, split over threads when large (crc32fast combines the parts).
fn crc_parallel(data: &[u8]) -> u32 {
    if data.len() <= CRC_CHUNK {
        return crc32fast::hash(data);
    }
    data.par_chunks(CRC_CHUNK)
        .map(|c| {
            let mut h = crc32fast::Hasher::new();
            h.update(c);
            h
        })
        .reduce(crc32fast::Hasher::new, |mut a, b| {
            a.combine(&b);
            a
        })
        .finalize()
}

/// Casts `bytes` to the element type, or reports misalignment.
pub(crate) fn elem_slice<'a>(
    bytes: &'a [u8],
    elem: ElemType,
    what: &'static str,
    offset: usize,
) -> Result<ElemSlice<'a>, ReaderError> {
    let cast = match elem {
        ElemType::F32 => <[f32]>::ref_from_bytes(bytes).ok().map(ElemSlice::F32),
        ElemType::F16 => <[f16]>::ref_from_bytes(bytes).ok().map(ElemSlice::F16),
        ElemType::Bf16 => <[bf16]>::ref_from_bytes(bytes).ok().map(ElemSlice::Bf16),
    };
    // Lengths are multiples of the element size (checked at parse), so the
    // only possible failure is alignment.
    cast.ok_or_else(|| ReaderError::Misaligned {
        what,
        offset,
        align: elem.size(),
    })
}

/// Elements `range` of `s`, or `None` when out of bounds.
pub(crate) fn sub_slice<'a>(
    s: ElemSlice<'a>,
    range: core::ops::Range<usize>,
) -> Option<ElemSlice<'a>> {
    Some(match s {
        ElemSlice::F32(v) => ElemSlice::F32(v.get(range)?),
        ElemSlice::F16(v) => ElemSlice::F16(v.get(range)?),
        ElemSlice::Bf16(v) => ElemSlice::Bf16(v.get(range)?),
    })
}

impl<'a> Hhtld<'a> {
    /// Validates `bytes` (any slice; typed views need it to start on an
    /// address aligned to 4, else they return [`ReaderError::Misaligned`]).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Hhtld<'a>, ReaderError> {
        let layout = parse(bytes)?;
        Ok(Self::with_layout(
            bytes,
            Arc::new(layout),
            crate::DEFAULT_MAX_EXPANSION,
        ))
    }

    pub(crate) fn with_layout(bytes: &'a [u8], layout: Arc<Layout>, max_expansion: u64) -> Self {
        Hhtld {
            bytes,
            layout,
            max_expansion,
        }
    }

    /// This view with another expansion limit: whole-tensor decodes may
    /// produce up to `max_expansion x file length` bytes (spec §7
    /// "Expansion limit"; default [`crate::DEFAULT_MAX_EXPANSION`]).
    pub fn with_max_expansion(mut self, max_expansion: u64) -> Self {
        self.max_expansion = max_expansion;
        self
    }

    /// The expansion factor in force.
    pub fn max_expansion(&self) -> u64 {
        self.max_expansion
    }

    /// Most bytes one whole-tensor decode may produce:
    /// `max_expansion x file length`, saturating.
    pub fn expansion_budget(&self) -> u64 {
        self.max_expansion.saturating_mul(self.bytes.len() as u64)
    }

    /// The whole file.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The validated layout (every record, as byte ranges of [`Hhtld::bytes`]).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `(major, minor)`.
    pub fn version(&self) -> (u16, u16) {
        self.layout.version
    }

    /// Every section, in file order.
    pub fn sections(&self) -> &[Section] {
        &self.layout.sections
    }

    /// Metadata pairs in key order. Values are checked as UTF-8 here, when
    /// read, not at open (spec §5): a value that is not is an R-METADATA
    /// error naming its entry and offset.
    pub fn metadata(
        &self,
    ) -> impl ExactSizeIterator<Item = Result<(&'a str, &'a str), ReaderError>> + '_ {
        let bytes = self.bytes;
        (0..self.layout.metadata_entries.len()).map(move |i| {
            self.layout
                .metadata_entry(bytes, i)
                .unwrap_or(Ok(("", "")))
                .map_err(ReaderError::from)
        })
    }

    /// Metadata pairs in key order with each value's bytes unchecked (for
    /// listing sizes, or values a caller parses as bytes).
    pub fn metadata_raw(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a [u8])> + '_ {
        let bytes = self.bytes;
        (0..self.layout.metadata_entries.len())
            .map(move |i| self.layout.metadata_raw(bytes, i).unwrap_or(("", &[])))
    }

    /// The metadata value of `key` (`Ok(None)` when there is no such key);
    /// a value that is not UTF-8 is an R-METADATA error.
    pub fn metadata_value(&self, key: &str) -> Result<Option<&'a str>, ReaderError> {
        let entries = &self.layout.metadata_entries;
        let bytes = self.bytes;
        let Ok(i) = entries
            .binary_search_by(|e| bytes.get(e.key.clone()).unwrap_or(&[]).cmp(key.as_bytes()))
        else {
            return Ok(None);
        };
        match self.layout.metadata_entry(bytes, i) {
            Some(r) => Ok(Some(r?.1)),
            None => Ok(None),
        }
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.layout.tensors.len()
    }

    /// Tensor `i`, in directory order.
    pub fn tensor(&self, i: usize) -> Result<TensorView<'a>, ReaderError> {
        if i >= self.layout.tensors.len() {
            return Err(ReaderError::IndexOutOfRange {
                what: "tensor",
                index: i,
                count: self.layout.tensors.len(),
            });
        }
        Ok(TensorView::new(
            self.bytes,
            Arc::clone(&self.layout),
            i,
            self.max_expansion,
        ))
    }

    /// Tensor `i`, which the caller knows is in range.
    pub(crate) fn tensor_unchecked(&self, i: usize) -> TensorView<'a> {
        TensorView::new(self.bytes, Arc::clone(&self.layout), i, self.max_expansion)
    }

    /// The tensor called `name` (binary search, no allocation).
    pub fn tensor_by_name(&self, name: &str) -> Result<TensorView<'a>, ReaderError> {
        match self.layout.tensor_index(self.bytes, name) {
            Some(i) => self.tensor(i),
            None => Err(ReaderError::NoSuchTensor {
                name: name.to_owned(),
            }),
        }
    }

    /// Every tensor, in directory order.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = TensorView<'a>> + '_ {
        (0..self.layout.tensors.len()).map(move |i| {
            TensorView::new(self.bytes, Arc::clone(&self.layout), i, self.max_expansion)
        })
    }

    /// Number of palette records.
    pub fn palette_count(&self) -> usize {
        self.layout.palettes.len()
    }

    /// Palette `i`.
    pub fn palette(&self, i: usize) -> Result<PaletteView<'a>, ReaderError> {
        palette_view(self.bytes, &self.layout, i)
    }

    /// Number of basis records.
    pub fn basis_count(&self) -> usize {
        self.layout.bases.len()
    }

    /// Basis `i`.
    pub fn basis(&self, i: usize) -> Result<BasisView<'a>, ReaderError> {
        basis_view(self.bytes, &self.layout, i)
    }

    /// The FisherZ table of palette `p`, if it has one.
    pub fn fisher_for_palette(&self, p: usize) -> Option<FisherView<'a>> {
        let fi = self.layout.palettes.get(p)?.fisher? as usize;
        let f = self.layout.fishers.get(fi)?;
        let table = <[i8]>::ref_from_bytes(self.bytes.get(f.range.clone())?).ok()?;
        Some(FisherView {
            index: fi,
            palette: p,
            k: f.k,
            gamma: f.gamma,
            table,
        })
    }

    /// Checks every section CRC (in parallel; the first mismatch, by
    /// section index, is the error), then the rules open leaves to
    /// verification ([`Layout::check_deferred`]): zero padding (R-PADDING)
    /// and UTF-8 metadata values (the rest of R-METADATA).
    pub fn verify(&self) -> Result<(), ReaderError> {
        // Padding and values are checked beside the CRCs, not after them.
        let (statuses, values) = rayon::join(
            || self.verify_sections(),
            || self.layout.check_deferred(self.bytes),
        );
        match statuses.into_iter().find(|s| !s.ok()) {
            None => Ok(values?),
            Some(s) => Err(ReaderError::Crc {
                section: s.index,
                kind: s.raw_kind,
                offset: s.offset,
                length: s.length,
                stored: s.stored,
                computed: s.computed,
            }),
        }
    }

    /// The CRC status of every section, in file order.
    pub fn verify_sections(&self) -> Vec<SectionStatus> {
        self.layout
            .sections
            .par_iter()
            .enumerate()
            .map(|(i, s)| SectionStatus {
                index: i as u32,
                kind: s.kind,
                raw_kind: s.raw_kind,
                offset: s.offset,
                length: s.length,
                stored: s.crc32,
                computed: crc_parallel(self.bytes.get(s.range()).unwrap_or(&[])),
            })
            .collect()
    }

    /// The layout record of tensor `i` (for callers that want the raw description).
    pub fn tensor_record(&self, i: usize) -> Option<&Tensor> {
        self.layout.tensors.get(i)
    }
}

pub(crate) fn palette_view<'a>(
    bytes: &'a [u8],
    layout: &Layout,
    i: usize,
) -> Result<PaletteView<'a>, ReaderError> {
    let p = layout.palettes.get(i).ok_or(ReaderError::IndexOutOfRange {
        what: "palette",
        index: i,
        count: layout.palettes.len(),
    })?;
    let raw = bytes.get(p.range.clone()).unwrap_or(&[]);
    let entries = elem_slice(raw, p.elem, "palette", p.range.start)?;
    Ok(PaletteView {
        index: i,
        k: usize::from(p.k),
        d: p.d,
        bits: p.bits,
        fisher: p.fisher.map(|f| f as usize),
        entries,
    })
}

pub(crate) fn basis_view<'a>(
    bytes: &'a [u8],
    layout: &Layout,
    i: usize,
) -> Result<BasisView<'a>, ReaderError> {
    let b = layout.bases.get(i).ok_or(ReaderError::IndexOutOfRange {
        what: "basis",
        index: i,
        count: layout.bases.len(),
    })?;
    let raw = bytes.get(b.range.clone()).unwrap_or(&[]);
    let data = elem_slice(raw, b.elem, "basis", b.range.start)?;
    Ok(BasisView {
        index: i,
        rows: b.rows,
        n_cols: b.n_cols,
        data,
    })
}

/// A palette: `2^bits` stored entries of `d` elements, the first `k` in use.
#[derive(Debug, Clone, Copy)]
pub struct PaletteView<'a> {
    index: usize,
    k: usize,
    d: usize,
    bits: u8,
    fisher: Option<usize>,
    entries: ElemSlice<'a>,
}

impl<'a> PaletteView<'a> {
    /// Palette record index.
    pub fn index(&self) -> usize {
        self.index
    }
    /// Entries in use.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Entry width.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Code width, 4 or 8.
    pub fn bits(&self) -> u8 {
        self.bits
    }
    /// Stored entries, `2^bits` (entries `k..` are zero padding).
    pub fn stored_entries(&self) -> usize {
        1 << self.bits
    }
    /// Element type.
    pub fn elem(&self) -> ElemType {
        self.entries.elem()
    }
    /// Index of this palette's FisherZ record, if any.
    pub fn fisher_index(&self) -> Option<usize> {
        self.fisher
    }
    /// All `2^bits x d` stored elements, entry-major.
    pub fn entries(&self) -> ElemSlice<'a> {
        self.entries
    }
    fn entry(&self, e: usize) -> Option<ElemSlice<'a>> {
        if e >= self.stored_entries() {
            return None;
        }
        sub_slice(self.entries, e * self.d..(e + 1) * self.d)
    }
    /// Entry `e` when the palette is f32; `None` for another type or `e >= 2^bits`.
    pub fn entry_f32(&self, e: usize) -> Option<&'a [f32]> {
        match self.entry(e)? {
            ElemSlice::F32(s) => Some(s),
            _ => None,
        }
    }
    /// Entry `e` when the palette is f16; `None` for another type or `e >= 2^bits`.
    pub fn entry_f16(&self, e: usize) -> Option<&'a [f16]> {
        match self.entry(e)? {
            ElemSlice::F16(s) => Some(s),
            _ => None,
        }
    }
    /// Entry `e` when the palette is bf16; `None` for another type or `e >= 2^bits`.
    pub fn entry_bf16(&self, e: usize) -> Option<&'a [bf16]> {
        match self.entry(e)? {
            ElemSlice::Bf16(s) => Some(s),
            _ => None,
        }
    }
    /// Entry `e` converted to f32 (allocates); `None` when `e >= 2^bits`.
    pub fn entry_f32_vec(&self, e: usize) -> Option<Vec<f32>> {
        let s = self.entry(e)?;
        Some(match s {
            ElemSlice::F32(v) => v.to_vec(),
            ElemSlice::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            ElemSlice::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
        })
    }
}

/// A SlotL basis: `rows` (8) rows of `n_cols` elements.
#[derive(Debug, Clone, Copy)]
pub struct BasisView<'a> {
    index: usize,
    rows: usize,
    n_cols: usize,
    data: ElemSlice<'a>,
}

impl<'a> BasisView<'a> {
    /// Basis record index.
    pub fn index(&self) -> usize {
        self.index
    }
    /// Number of rows (8).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Row width.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }
    /// Element type.
    pub fn elem(&self) -> ElemType {
        self.data.elem()
    }
    /// All `rows x n_cols` elements, row-major.
    pub fn data(&self) -> ElemSlice<'a> {
        self.data
    }
    /// Row `i`, or `None` when `i >= rows`.
    pub fn row(&self, i: usize) -> Option<ElemSlice<'a>> {
        if i >= self.rows {
            return None;
        }
        sub_slice(self.data, i * self.n_cols..(i + 1) * self.n_cols)
    }
}

/// A FisherZ table: `k x k` i8 values `q`, `rho = tanh(gamma x q)`.
#[derive(Debug, Clone, Copy)]
pub struct FisherView<'a> {
    index: usize,
    palette: usize,
    k: usize,
    gamma: f32,
    table: &'a [i8],
}

impl<'a> FisherView<'a> {
    /// Fisher record index.
    pub fn index(&self) -> usize {
        self.index
    }
    /// The palette it describes.
    pub fn palette(&self) -> usize {
        self.palette
    }
    /// Table side: the palette's `k`.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Scale of the quantised Fisher z values.
    pub fn gamma(&self) -> f32 {
        self.gamma
    }
    /// The whole `k x k` table, row-major.
    pub fn table(&self) -> &'a [i8] {
        self.table
    }
    /// `(q, tanh(gamma x q))` for entries `i`, `j`; `None` when either is `>= k`.
    pub fn get(&self, i: usize, j: usize) -> Option<(i8, f32)> {
        if i >= self.k || j >= self.k {
            return None;
        }
        let q = *self.table.get(i * self.k + j)?;
        Some((q, (self.gamma * f32::from(q)).tanh()))
    }
}
