//! [`TensorHandle`]: an owned tensor of an [`HhtldFile`], for loaders that
//! keep tensors in long-lived structures (a candle backend, a Python object).

use std::ops::Range;

use hhtld_format::validate::{Quality, Stage, Tensor};
use hhtld_format::{Dtype, Encoding, Regime, Role};

use crate::{HhtldFile, OutElem, ReaderError, RowDecoder, TensorView};

/// One tensor of an open file, owning a clone of the file handle (an `Arc`),
/// so it can be stored and sent between threads without a lifetime.
///
/// The accessors read the validated layout; the decode methods are those of
/// [`TensorView`] (see [`TensorHandle::view`] for the rest).
#[derive(Clone)]
pub struct TensorHandle {
    file: HhtldFile,
    index: usize,
}

impl TensorHandle {
    pub(crate) fn new(file: HhtldFile, index: usize) -> Result<TensorHandle, ReaderError> {
        let count = file.tensor_count();
        if index >= count {
            return Err(ReaderError::IndexOutOfRange {
                what: "tensor",
                index,
                count,
            });
        }
        Ok(TensorHandle { file, index })
    }

    /// `index < tensor_count` is the caller's promise.
    pub(crate) fn unchecked(file: HhtldFile, index: usize) -> TensorHandle {
        TensorHandle { file, index }
    }

    /// A borrowed view of this tensor (row codes, raw slices, palettes).
    pub fn view(&self) -> TensorView<'_> {
        self.file.view().tensor_unchecked(self.index)
    }

    /// The file this tensor belongs to.
    pub fn file(&self) -> &HhtldFile {
        &self.file
    }

    /// The layout record.
    pub fn record(&self) -> &Tensor {
        // `index` was checked against the tensor count when the handle was made.
        &self.file.layout().tensors[self.index]
    }

    /// Index in the directory.
    pub fn index(&self) -> usize {
        self.index
    }
    /// The tensor's name.
    pub fn name(&self) -> &str {
        self.file
            .layout()
            .tensor_name(self.file.bytes(), self.index)
            .unwrap_or_default()
    }
    /// The original dtype.
    pub fn dtype(&self) -> Dtype {
        self.record().dtype
    }
    /// The shape, `ndims` entries.
    pub fn shape(&self) -> &[u64] {
        self.record().dims()
    }
    /// Role in the model.
    pub fn role(&self) -> Role {
        self.record().role
    }
    /// Quality regime.
    pub fn regime(&self) -> Regime {
        self.record().regime
    }
    /// RAW or PALETTE.
    pub fn encoding(&self) -> Encoding {
        self.record().encoding
    }
    /// Rows of the matrix view (spec §4 "Shape").
    pub fn n_rows(&self) -> usize {
        self.record().n_rows
    }
    /// Columns of the matrix view.
    pub fn n_cols(&self) -> usize {
        self.record().n_cols
    }
    /// `n_rows x n_cols`.
    pub fn numel(&self) -> usize {
        self.record().numel
    }
    /// Stored reconstruction quality, when present.
    pub fn quality(&self) -> Option<Quality> {
        self.record().quality
    }
    /// The stages; empty for RAW.
    pub fn stages(&self) -> &[Stage] {
        self.record().stages()
    }
    /// The bytes of a RAW tensor as stored (row-major, little-endian,
    /// [`TensorHandle::dtype`]); `None` for PALETTE.
    pub fn raw_bytes(&self) -> Option<&[u8]> {
        let t = self.record();
        (t.encoding == Encoding::Raw).then(|| self.file.bytes().get(t.data.clone()).unwrap_or(&[]))
    }

    /// Bytes the whole tensor takes decoded to `O`.
    pub fn decoded_bytes<O: OutElem>(&self) -> u64 {
        (self.numel() as u64).saturating_mul(core::mem::size_of::<O>() as u64)
    }
    /// Checks the expansion limit for a whole-tensor decode to `O`; see
    /// [`TensorView::check_expansion`].
    pub fn check_expansion<O: OutElem>(&self) -> Result<(), ReaderError> {
        self.view().check_expansion::<O>()
    }
    /// Decodes the whole tensor into a new vector of f32.
    pub fn decode(&self) -> Result<Vec<f32>, ReaderError> {
        self.view().decode()
    }
    /// Decodes the whole tensor into a new vector of `O` (`f32`, `bf16`, `f16`).
    pub fn decode_as<O: OutElem>(&self) -> Result<Vec<O>, ReaderError> {
        self.view().decode_as()
    }
    /// Decodes the whole tensor into `out` (`out.len() == numel`).
    pub fn decode_into<O: OutElem>(&self, out: &mut [O]) -> Result<(), ReaderError> {
        self.view().decode_into(out)
    }
    /// Decodes row `r` into `out` (`out.len() == n_cols`).
    pub fn decode_row_into<O: OutElem>(&self, r: usize, out: &mut [O]) -> Result<(), ReaderError> {
        self.view().decode_row_into(r, out)
    }
    /// Decodes rows `rows` into `out` (`out.len() == rows.len() x n_cols`).
    pub fn decode_rows_into<O: OutElem>(
        &self,
        rows: Range<usize>,
        out: &mut [O],
    ) -> Result<(), ReaderError> {
        self.view().decode_rows_into(rows, out)
    }
    /// A decoder for many rows with the views resolved once.
    pub fn row_decoder(&self) -> Result<RowDecoder<'_>, ReaderError> {
        self.view().row_decoder()
    }
}

impl core::fmt::Debug for TensorHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TensorHandle")
            .field("index", &self.index)
            .field("name", &self.name())
            .field("dtype", &self.dtype())
            .field("shape", &self.shape())
            .field("encoding", &self.encoding())
            .finish()
    }
}
