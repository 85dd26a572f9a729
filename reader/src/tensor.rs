//! [`TensorView`] and [`RowView`]: zero-copy access to one tensor's codes,
//! scales, SlotL coefficients and raw bytes, and decoding to f32.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;

use half::{bf16, f16};
use hhtld_format::decode::{
    decode_row, n_sub, unpack_code, ElemSlice, KernelError, Prepared, RowScales, SlotRow, StageRow,
    StageSpec,
};
use hhtld_format::error::TensorId;
use hhtld_format::limits::{MAX_STAGES, SLOT_L_DIMS};
use hhtld_format::validate::{Quality, Stage, Tensor};
use hhtld_format::{Dtype, ElemType, Encoding, Layout, Regime, Role};
use rayon::prelude::*;
use zerocopy::{FromBytes, Immutable, KnownLayout};

use crate::elem::{convert_raw, is_float};
use crate::view::{basis_view, palette_view, PaletteView};
use crate::OutElem;
use crate::ReaderError;

/// Tensors with at least this many elements decode on several threads.
const PAR_MIN_ELEMS: usize = 1 << 16;
/// Elements per rayon task when decoding in parallel.
const PAR_TASK_ELEMS: usize = 1 << 14;
/// f32 scratch for decoding into bf16 or f16: 16 KiB, stays in L1.
const SCRATCH_ELEMS: usize = 1 << 12;

/// One tensor of a file. Holds the file's bytes and a shared layout; making
/// one allocates nothing.
#[derive(Clone)]
pub struct TensorView<'a> {
    bytes: &'a [u8],
    layout: Arc<Layout>,
    index: usize,
    max_expansion: u64,
}

impl core::fmt::Debug for TensorView<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let t = self.t();
        f.debug_struct("TensorView")
            .field("index", &self.index)
            .field("name", &self.name())
            .field("dtype", &t.dtype)
            .field("shape", &t.dims())
            .field("encoding", &t.encoding)
            .finish()
    }
}

/// Reads element `i` of a little-endian array of `elem` at any alignment.
fn read_elem(bytes: &[u8], elem: ElemType, i: usize) -> Option<f32> {
    let n = elem.size();
    let b = bytes.get(i.checked_mul(n)?..i.checked_mul(n)?.checked_add(n)?)?;
    Some(match elem {
        ElemType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        ElemType::F16 => f16::from_le_bytes([b[0], b[1]]).to_f32(),
        ElemType::Bf16 => bf16::from_le_bytes([b[0], b[1]]).to_f32(),
    })
}

/// Row `r`'s 8 SlotL coefficients from a SLOT_L section (i8: no alignment needed).
fn slot_coef(slot_l: &[u8], r: usize) -> Option<&[i8; SLOT_L_DIMS]> {
    let start = r.checked_mul(SLOT_L_DIMS)?;
    let b = slot_l.get(start..start.checked_add(SLOT_L_DIMS)?)?;
    <[i8; SLOT_L_DIMS]>::ref_from_bytes(b).ok()
}

/// Everything needed to decode rows, with typed slices resolved once.
#[derive(Debug)]
struct Decoder<'a> {
    data: &'a [u8],
    stride: usize,
    stages: [(Stage, ElemSlice<'a>); MAX_STAGES],
    n_stages: usize,
    scale: Option<(&'a [u8], ElemType)>,
    slot: Option<(&'a [u8], ElemSlice<'a>, f32)>,
    /// The stages widened once, for decoding many rows.
    prepared: Option<Prepared<'a>>,
}

thread_local! {
    /// A row of f32 for decoding into bf16 or f16: the kernel's arithmetic
    /// is f32, and one row of it stays in cache.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl<'a> Decoder<'a> {
    /// Widens the palettes for many rows (a few KiB per tensor).
    fn prepare(mut self, n_cols: usize) -> Result<Self, KernelError> {
        let specs: Vec<StageSpec<'a>> = self.stages[..self.n_stages]
            .iter()
            .map(|(st, pal)| StageSpec {
                palette: *pal,
                d: st.d,
                bits: st.bits,
                code_offset: st.code_offset,
            })
            .collect();
        self.prepared = Some(Prepared::new(&specs, n_cols)?);
        Ok(self)
    }

    fn row(&self, r: usize, out: &mut [f32]) -> Result<(), KernelError> {
        let start = r * self.stride;
        let codes = self.data.get(start..start + self.stride).unwrap_or(&[]);
        let scale = self.scale.and_then(|(b, e)| read_elem(b, e, r));
        let coef = self.slot.and_then(|(b, ..)| slot_coef(b, r));
        let slot = match (&self.slot, coef) {
            (Some((_, basis, slot_scale)), Some(coef)) => Some(SlotRow {
                coef,
                basis: *basis,
                slot_scale: *slot_scale,
            }),
            _ => None,
        };
        if let Some(p) = &self.prepared {
            return p.decode_row(codes, scale, slot.as_ref(), out);
        }
        let mut rows: [StageRow<'a>; MAX_STAGES] = [StageRow {
            palette: ElemSlice::F32(&[]),
            d: 1,
            bits: 8,
            codes: &[],
        }; MAX_STAGES];
        for (dst, (st, pal)) in rows.iter_mut().zip(&self.stages[..self.n_stages]) {
            *dst = StageRow {
                palette: *pal,
                d: st.d,
                bits: st.bits,
                codes: codes
                    .get(st.code_offset..st.code_offset + st.cb)
                    .unwrap_or(&[]),
            };
        }
        decode_row(&rows[..self.n_stages], scale, slot.as_ref(), out)
    }

    /// Decodes consecutive rows from `first` into `out` (whole rows of
    /// `n_cols`, `n_cols > 0`); the error carries the failing row.
    fn rows<O: OutElem>(
        &self,
        first: usize,
        out: &mut [O],
        n_cols: usize,
    ) -> Result<(), (usize, KernelError)> {
        if n_cols == 0 {
            return Ok(());
        }
        if let (Some(p), None) = (&self.prepared, &self.slot) {
            // Whole rows in one call: no per-row dispatch.
            let codes = self.data.get(first * self.stride..).unwrap_or(&[]);
            let scales = self.scale.map(|(bytes, elem)| RowScales { bytes, elem });
            if let Some(out) = O::as_f32_mut(out) {
                return p.decode_rows(codes, self.stride, scales, first, out);
            }
            if let Some(out) = O::as_bf16_mut(out) {
                // Rounded to bf16 in the same pass.
                return p.decode_rows(codes, self.stride, scales, first, out);
            }
            // f16: blocks of rows decoded in f32 into scratch that stays in
            // L1, then rounded.
            let rows_per = (SCRATCH_ELEMS / n_cols).max(1);
            return SCRATCH.with_borrow_mut(|buf| {
                for (k, chunk) in out.chunks_mut(rows_per * n_cols).enumerate() {
                    buf.resize(chunk.len(), 0.0);
                    let c = codes.get(k * rows_per * self.stride..).unwrap_or(&[]);
                    p.decode_rows(c, self.stride, scales, first + k * rows_per, buf)?;
                    O::from_f32_slice(buf, chunk);
                }
                Ok(())
            });
        }
        if let Some(out) = O::as_f32_mut(out) {
            for (i, row) in out.chunks_exact_mut(n_cols).enumerate() {
                self.row(first + i, row).map_err(|e| (first + i, e))?;
            }
            return Ok(());
        }
        SCRATCH.with_borrow_mut(|buf| {
            buf.resize(n_cols, 0.0);
            for (i, row) in out.chunks_exact_mut(n_cols).enumerate() {
                self.row(first + i, buf).map_err(|e| (first + i, e))?;
                O::from_f32_slice(buf, row);
            }
            Ok(())
        })
    }
}

impl<'a> TensorView<'a> {
    pub(crate) fn new(
        bytes: &'a [u8],
        layout: Arc<Layout>,
        index: usize,
        max_expansion: u64,
    ) -> Self {
        TensorView {
            bytes,
            layout,
            index,
            max_expansion,
        }
    }

    fn t(&self) -> &Tensor {
        // `index` was checked against the tensor count when the view was made.
        &self.layout.tensors[self.index]
    }

    fn id(&self) -> TensorId {
        TensorId {
            index: self.index as u32,
            name: Some(self.name().to_owned()),
        }
    }

    fn section_bytes(&self, range: core::ops::Range<usize>) -> &'a [u8] {
        // Ranges were checked to lie inside the file at parse.
        self.bytes.get(range).unwrap_or(&[])
    }

    /// Index in the directory.
    pub fn index(&self) -> usize {
        self.index
    }
    /// The tensor's name.
    pub fn name(&self) -> &'a str {
        self.layout
            .tensor_name(self.bytes, self.index)
            .unwrap_or("")
    }
    /// The original dtype.
    pub fn dtype(&self) -> Dtype {
        self.t().dtype
    }
    /// The shape, `ndims` entries.
    pub fn shape(&self) -> &[u64] {
        self.t().dims()
    }
    /// Number of dimensions.
    pub fn ndims(&self) -> usize {
        usize::from(self.t().ndims)
    }
    /// Role in the model.
    pub fn role(&self) -> Role {
        self.t().role
    }
    /// Quality regime.
    pub fn regime(&self) -> Regime {
        self.t().regime
    }
    /// RAW or PALETTE.
    pub fn encoding(&self) -> Encoding {
        self.t().encoding
    }
    /// Rows of the matrix view (spec §4 "Shape").
    pub fn n_rows(&self) -> usize {
        self.t().n_rows
    }
    /// Columns of the matrix view.
    pub fn n_cols(&self) -> usize {
        self.t().n_cols
    }
    /// `n_rows x n_cols`.
    pub fn numel(&self) -> usize {
        self.t().numel
    }
    /// Stored reconstruction quality, when present.
    pub fn quality(&self) -> Option<Quality> {
        self.t().quality
    }
    /// The stages (palette index, width, code offset and bytes per row); empty for RAW.
    pub fn stages(&self) -> &[Stage] {
        self.t().stages()
    }
    /// The palette of stage `s`.
    pub fn stage_palette(&self, s: usize) -> Result<PaletteView<'a>, ReaderError> {
        let st = self
            .stages()
            .get(s)
            .ok_or_else(|| ReaderError::IndexOutOfRange {
                what: "stage",
                index: s,
                count: self.stages().len(),
            })?;
        palette_view(self.bytes, &self.layout, st.palette as usize)
    }
    /// Code bytes per row over all stages (0 for RAW).
    pub fn stride(&self) -> usize {
        self.t().stride
    }
    /// Index of the SlotL basis, when the tensor has a SlotL residual.
    pub fn basis_index(&self) -> Option<usize> {
        self.t().slot.as_ref().map(|s| s.basis as usize)
    }
    /// The layout record.
    pub fn record(&self) -> &Tensor {
        self.t()
    }

    /// Row `r`'s codes, scale and SlotL coefficients (PALETTE tensors).
    pub fn row(&self, r: usize) -> Result<RowView<'a>, ReaderError> {
        let t = self.t();
        if t.encoding != Encoding::Palette {
            return Err(ReaderError::NotPalette { tensor: self.id() });
        }
        if r >= t.n_rows {
            return Err(ReaderError::RowOutOfRange {
                tensor: self.id(),
                row: r,
                n_rows: t.n_rows,
            });
        }
        let mut stages = [Stage::default(); MAX_STAGES];
        stages[..t.stages().len()].copy_from_slice(t.stages());
        let start = r * t.stride;
        let codes = self.section_bytes(t.data.clone());
        Ok(RowView {
            codes: codes.get(start..start + t.stride).unwrap_or(&[]),
            stages,
            n_stages: t.stages().len(),
            scale: t
                .scale
                .as_ref()
                .and_then(|s| read_elem(self.section_bytes(s.range.clone()), s.elem, r)),
            slot_l: t
                .slot
                .as_ref()
                .and_then(|s| slot_coef(self.section_bytes(s.range.clone()), r)),
            n_cols: t.n_cols,
        })
    }

    /// The bytes of a RAW tensor as stored (row-major, original dtype); `None` for PALETTE.
    pub fn raw_bytes(&self) -> Option<&'a [u8]> {
        let t = self.t();
        (t.encoding == Encoding::Raw).then(|| self.section_bytes(t.data.clone()))
    }

    /// A RAW tensor's elements as `T`, which must be the Rust type of the
    /// dtype: `f32` (F32), `f64` (F64), `half::f16` (F16), `half::bf16`
    /// (BF16), `i8`/`u8` (I8, U8, BOOL, F8_*), `i16`/`u16`, `i32`/`u32`,
    /// `i64`/`u64`. Only the element size is checked, so e.g. `u32` over F32
    /// data reinterprets the bits. Values are little-endian, as on every host
    /// this crate builds for.
    pub fn raw_slice<T: FromBytes + Immutable + KnownLayout>(
        &self,
    ) -> Result<&'a [T], ReaderError> {
        let t = self.t();
        let raw = self
            .raw_bytes()
            .ok_or_else(|| ReaderError::NotRaw { tensor: self.id() })?;
        let size = core::mem::size_of::<T>();
        if size != t.dtype.size() {
            return Err(ReaderError::WrongType {
                tensor: self.id(),
                dtype: t.dtype,
                dtype_size: t.dtype.size(),
                type_size: size,
            });
        }
        <[T]>::ref_from_bytes(raw).map_err(|_| ReaderError::Misaligned {
            what: "raw tensor",
            offset: t.data.start,
            align: core::mem::align_of::<T>(),
        })
    }

    fn decoder(&self) -> Result<Decoder<'a>, ReaderError> {
        let t = self.t();
        let mut stages = [(Stage::default(), ElemSlice::F32(&[])); MAX_STAGES];
        for (dst, st) in stages.iter_mut().zip(t.stages()) {
            let p = palette_view(self.bytes, &self.layout, st.palette as usize)?;
            *dst = (*st, p.entries());
        }
        let slot = match &t.slot {
            Some(s) => {
                let b = basis_view(self.bytes, &self.layout, s.basis as usize)?;
                Some((self.section_bytes(s.range.clone()), b.data(), s.slot_scale))
            }
            None => None,
        };
        Ok(Decoder {
            data: self.section_bytes(t.data.clone()),
            stride: t.stride,
            stages,
            n_stages: t.stages().len(),
            scale: t
                .scale
                .as_ref()
                .map(|s| (self.section_bytes(s.range.clone()), s.elem)),
            slot,
            prepared: None,
        })
    }

    /// [`TensorView::decoder`] with the palettes widened, for many rows.
    fn prepared_decoder(&self) -> Result<Decoder<'a>, ReaderError> {
        self.decoder()?
            .prepare(self.t().n_cols)
            .map_err(|source| self.kernel_error(0, source))
    }

    fn check_float(&self) -> Result<(), ReaderError> {
        let t = self.t();
        if t.encoding == Encoding::Raw && !is_float(t.dtype) {
            return Err(ReaderError::NotFloat {
                tensor: self.id(),
                dtype: t.dtype,
            });
        }
        Ok(())
    }

    /// Checks that `rows` lies inside the tensor and `out` holds exactly its rows.
    fn check_rows(&self, rows: &Range<usize>, out_len: usize) -> Result<(), ReaderError> {
        let t = self.t();
        if rows.start > rows.end || rows.end > t.n_rows {
            return Err(ReaderError::RowsOutOfRange {
                tensor: self.id(),
                start: rows.start,
                end: rows.end,
                n_rows: t.n_rows,
            });
        }
        // Cannot overflow: the range lies inside a tensor whose numel fits.
        let expected = (rows.end - rows.start) * t.n_cols;
        if out_len != expected {
            return Err(ReaderError::OutputLen {
                tensor: self.id(),
                expected,
                got: out_len,
            });
        }
        Ok(())
    }

    /// Decodes row `r` into `out` (`out.len() == n_cols`): spec §4 for
    /// PALETTE tensors, a conversion for RAW F32, F16, BF16 and F64. `out`
    /// is `f32`, `bf16` or `f16` (see [`OutElem`] for the rounding).
    pub fn decode_row_into<O: OutElem>(&self, r: usize, out: &mut [O]) -> Result<(), ReaderError> {
        let t = self.t();
        self.check_float()?;
        if r >= t.n_rows {
            return Err(ReaderError::RowOutOfRange {
                tensor: self.id(),
                row: r,
                n_rows: t.n_rows,
            });
        }
        if out.len() != t.n_cols {
            return Err(ReaderError::OutputLen {
                tensor: self.id(),
                expected: t.n_cols,
                got: out.len(),
            });
        }
        match t.encoding {
            Encoding::Raw => {
                let size = t.dtype.size();
                let row_bytes = t.n_cols * size;
                let data = self.section_bytes(t.data.clone());
                let b = data.get(r * row_bytes..(r + 1) * row_bytes).unwrap_or(&[]);
                convert_raw(t.dtype, b, out);
                Ok(())
            }
            Encoding::Palette => self
                .decoder()?
                .rows(r, out, t.n_cols)
                .map_err(|(row, source)| self.kernel_error(row, source)),
        }
    }

    fn kernel_error(&self, row: usize, source: KernelError) -> ReaderError {
        ReaderError::Kernel {
            tensor: self.id(),
            row,
            source,
        }
    }

    /// A decoder for many rows of this tensor: the palette, scale and basis
    /// views are resolved once, so each [`RowDecoder::decode_row_into`] is
    /// only the row's bounds checks and the kernel (a loader's
    /// token-embedding lookup). Works for PALETTE tensors and RAW float ones.
    ///
    /// ```
    /// # fn main() -> Result<(), hhtld_reader::ReaderError> {
    /// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/vectors/valid/palette-f32-8bit.hhtld");
    /// let file = hhtld_reader::HhtldFile::open(path)?;
    /// let view = file.view();
    /// let t = view.tensor(0)?;
    /// let rows = t.row_decoder()?;
    /// let mut out = vec![0f32; t.n_cols()];
    /// for r in [0, t.n_rows() - 1, 0] {
    ///     rows.decode_row_into(r, &mut out)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn row_decoder(&self) -> Result<RowDecoder<'a>, ReaderError> {
        self.check_float()?;
        let dec = match self.t().encoding {
            Encoding::Palette => Some(self.prepared_decoder()?),
            Encoding::Raw => None,
        };
        Ok(RowDecoder {
            view: self.clone(),
            dec,
        })
    }

    /// Decodes rows `rows` into `out` (`out.len() == rows.len() x n_cols`),
    /// row-major. Large ranges are decoded on the rayon thread pool.
    pub fn decode_rows_into<O: OutElem>(
        &self,
        rows: Range<usize>,
        out: &mut [O],
    ) -> Result<(), ReaderError> {
        let t = self.t();
        self.check_float()?;
        self.check_rows(&rows, out.len())?;
        if out.is_empty() {
            return Ok(());
        }
        // On one thread, rayon's splitting would only add work.
        let parallel = out.len() >= PAR_MIN_ELEMS && rayon::current_num_threads() > 1;
        let n_cols = t.n_cols;
        match t.encoding {
            Encoding::Raw => {
                let size = t.dtype.size();
                let data = self.section_bytes(t.data.clone());
                let data = data
                    .get(rows.start * n_cols * size..rows.end * n_cols * size)
                    .unwrap_or(&[]);
                // Element-wise: chunks need not follow rows.
                if parallel {
                    out.par_chunks_mut(PAR_TASK_ELEMS)
                        .zip(data.par_chunks(PAR_TASK_ELEMS * size))
                        .for_each(|(o, b)| convert_raw(t.dtype, b, o));
                } else {
                    convert_raw(t.dtype, data, out);
                }
                Ok(())
            }
            Encoding::Palette => {
                // Widening costs about one palette's elements: worth it
                // once the output is several times that.
                let pal_elems: usize = (0..t.stages().len())
                    .filter_map(|s| self.stage_palette(s).ok())
                    .map(|p| p.entries().len())
                    .sum();
                let dec = if out.len() >= 4 * pal_elems {
                    self.prepared_decoder()?
                } else {
                    self.decoder()?
                };
                let rows_per_task = (PAR_TASK_ELEMS / n_cols).max(1);
                let run = |(i, chunk): (usize, &mut [O])| {
                    dec.rows(rows.start + i * rows_per_task, chunk, n_cols)
                };
                let res = if parallel {
                    out.par_chunks_mut(rows_per_task * n_cols)
                        .enumerate()
                        .try_for_each(run)
                } else {
                    run((0, out))
                };
                res.map_err(|(row, source)| self.kernel_error(row, source))
            }
        }
    }

    /// Bytes the whole tensor takes decoded to `O` (`numel x size`).
    pub fn decoded_bytes<O: OutElem>(&self) -> u64 {
        (self.numel() as u64).saturating_mul(core::mem::size_of::<O>() as u64)
    }

    /// Checks the expansion limit (spec §7 "Expansion limit") for a
    /// whole-tensor decode to `O`: at most `max_expansion x file length`
    /// bytes. [`TensorView::decode_as`] and [`TensorView::decode_into`] call
    /// it; a loader that allocates its own buffer calls it first.
    pub fn check_expansion<O: OutElem>(&self) -> Result<(), ReaderError> {
        let decoded = self.decoded_bytes::<O>();
        let file_len = self.bytes.len() as u64;
        let limit = self.max_expansion.saturating_mul(file_len);
        if decoded > limit {
            return Err(ReaderError::ExpansionLimit {
                tensor: self.id(),
                decoded,
                limit,
                max_expansion: self.max_expansion,
                file_len,
            });
        }
        Ok(())
    }

    /// Decodes the whole tensor into `out` (`out.len() == numel`), row-major,
    /// after checking the expansion limit. Large tensors are decoded on the
    /// rayon thread pool.
    pub fn decode_into<O: OutElem>(&self, out: &mut [O]) -> Result<(), ReaderError> {
        // Dtype and length first, as for a range: the limit is about size.
        self.check_float()?;
        self.check_rows(&(0..self.n_rows()), out.len())?;
        self.check_expansion::<O>()?;
        self.decode_rows_into(0..self.n_rows(), out)
    }

    /// Decodes the whole tensor into a new vector of f32.
    pub fn decode(&self) -> Result<Vec<f32>, ReaderError> {
        self.decode_as::<f32>()
    }

    /// Decodes the whole tensor into a new vector of `O` (`f32`, `bf16`
    /// or `f16`). The expansion limit is checked before allocating.
    pub fn decode_as<O: OutElem>(&self) -> Result<Vec<O>, ReaderError> {
        self.check_float()?;
        self.check_expansion::<O>()?;
        let n = self.numel();
        // numel comes from the file; refuse rather than abort when it is too
        // big. A zeroed allocation, not a fill: large buffers then arrive as
        // fresh zero pages and the decode is the only pass that writes them.
        let mut v = O::new_vec_zeroed(n).map_err(|_| ReaderError::Alloc {
            tensor: self.id(),
            elements: n,
        })?;
        self.decode_into(&mut v)?;
        Ok(v)
    }
}

/// One row of a PALETTE tensor, borrowed from the file.
#[derive(Debug, Clone, Copy)]
pub struct RowView<'a> {
    codes: &'a [u8],
    stages: [Stage; MAX_STAGES],
    n_stages: usize,
    scale: Option<f32>,
    slot_l: Option<&'a [i8; SLOT_L_DIMS]>,
    n_cols: usize,
}

impl<'a> RowView<'a> {
    /// All `stride` code bytes of the row, stage after stage.
    pub fn all_codes(&self) -> &'a [u8] {
        self.codes
    }
    /// Number of stages.
    pub fn stage_count(&self) -> usize {
        self.n_stages
    }
    /// Packed code bytes of stage `s`; `None` when `s >= stage_count()`.
    pub fn codes(&self, s: usize) -> Option<&'a [u8]> {
        let st = self.stages[..self.n_stages].get(s)?;
        self.codes.get(st.code_offset..st.code_offset + st.cb)
    }
    /// Code `j` of stage `s`, unpacked; `None` when `s` or `j` is out of range.
    pub fn code(&self, s: usize, j: usize) -> Option<u8> {
        let st = self.stages[..self.n_stages].get(s)?;
        if j >= n_sub(self.n_cols, st.d) {
            return None;
        }
        unpack_code(self.codes(s)?, st.bits, j)
    }
    /// The row's SlotL coefficients, when the tensor has a SlotL residual.
    pub fn slot_l(&self) -> Option<&'a [i8; SLOT_L_DIMS]> {
        self.slot_l
    }
    /// The row's scale, when the tensor has per-row scales.
    pub fn scale(&self) -> Option<f32> {
        self.scale
    }
}

/// Decodes rows of one tensor with its views resolved once; see
/// [`TensorView::row_decoder`].
#[derive(Debug)]
pub struct RowDecoder<'a> {
    view: TensorView<'a>,
    /// `None` for RAW tensors, which decode by conversion.
    dec: Option<Decoder<'a>>,
}

impl<'a> RowDecoder<'a> {
    /// Decodes row `r` into `out` (`out.len() == n_cols`); the same result
    /// as [`TensorView::decode_row_into`].
    pub fn decode_row_into<O: OutElem>(&self, r: usize, out: &mut [O]) -> Result<(), ReaderError> {
        let Some(dec) = &self.dec else {
            return self.view.decode_row_into(r, out);
        };
        let t = self.view.t();
        if r >= t.n_rows {
            return Err(ReaderError::RowOutOfRange {
                tensor: self.view.id(),
                row: r,
                n_rows: t.n_rows,
            });
        }
        if out.len() != t.n_cols {
            return Err(ReaderError::OutputLen {
                tensor: self.view.id(),
                expected: t.n_cols,
                got: out.len(),
            });
        }
        dec.rows(r, out, t.n_cols)
            .map_err(|(row, source)| self.view.kernel_error(row, source))
    }

    /// The tensor this decoder reads.
    pub fn tensor(&self) -> &TensorView<'a> {
        &self.view
    }
}
