//! Zero-copy reader for hhtld files.
//!
//! [`HhtldFile::open`] memory-maps a file and validates its structure
//! (spec §7) in time proportional to its directory. The file handle is
//! cheap to clone and `Send + Sync`; [`HhtldFile::tensor_by_name`] gives an
//! owned [`TensorHandle`] that decodes to `f32`, `bf16` or `f16` (whole
//! tensor, a row, a range of rows). [`HhtldFile::view`] gives the borrowed
//! [`Hhtld`] whose tensor, palette, basis and FisherZ views are slices of the
//! mapping, and [`Hhtld::verify`] checks every section CRC, the padding and
//! the metadata values.
//!
//! Every type in this crate's API is re-exported here, so a loader needs no
//! other hhtld crate; the format crate itself is [`mod@format`].
//!
//! A loader about to decode most of a file calls [`HhtldFile::prefetch`]
//! (the OS starts reading the whole file) and may decode in
//! [`HhtldFile::file_order`], front to back; open itself reads only the
//! pages it parses.
//!
//! Whole-tensor decodes are refused, before anything is allocated, when
//! they would produce more than [`DEFAULT_MAX_EXPANSION`] times the file's
//! length in bytes (spec §7 "Expansion limit", a guard against
//! decompression bombs); [`HhtldFile::with_max_expansion`] raises it.
//!
//! ```
//! # fn main() -> Result<(), hhtld_reader::ReaderError> {
//! use hhtld_reader::{bf16, Encoding, HhtldFile, TensorHandle};
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/vectors/valid/mixed.hhtld");
//! let file = HhtldFile::open(path)?; // validates the structure
//! file.view().verify()?; // every section CRC, padding, metadata values
//!
//! // Owned handles: keep them in a loader, send them to other threads.
//! let tensors: Vec<TensorHandle> = file.tensors().collect();
//! for t in &tensors {
//!     println!("{} {:?} {} {}", t.name(), t.shape(), t.dtype(), t.encoding());
//!     if t.encoding() == Encoding::Palette {
//!         let w: Vec<bf16> = t.decode_as()?; // whole tensor, rounded once to bf16
//!         assert_eq!(w.len(), t.numel());
//!         let mut first = vec![0f32; t.n_cols()]; // one row, f32
//!         t.decode_row_into(0, &mut first)?;
//!         assert_eq!(bf16::from_f32(first[0]), w[0]);
//!     }
//! }
//! let t = file.tensor_by_name(tensors[0].name())?; // an indexed lookup
//! assert_eq!(t.index(), 0);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

// Typed views read little-endian data in place.
#[cfg(not(target_endian = "little"))]
compile_error!("hhtld-reader's typed views need a little-endian host");

mod elem;
mod error;
mod file;
mod handle;
mod tensor;
mod view;

#[cfg(feature = "candle")]
pub mod candle;

pub use elem::OutElem;
pub use error::ReaderError;
pub use file::HhtldFile;
pub use handle::TensorHandle;
pub use tensor::{RowDecoder, RowView, TensorView};
pub use view::{BasisView, FisherView, Hhtld, PaletteView, SectionStatus};

/// The default expansion limit: a whole-tensor decode may produce at most
/// this many times the file's length in bytes (spec §7 "Expansion limit").
pub const DEFAULT_MAX_EXPANSION: u64 = 1024;

/// The format crate: on-disk rules, records and the decode kernel.
pub use hhtld_format as format;

pub use half::{bf16, f16};
pub use hhtld_format::decode::{ElemSlice, KernelError};
pub use hhtld_format::error::{Place, RefProblem, TensorId};
pub use hhtld_format::validate::{
    Basis, Fisher, MetaEntry, Palette, Quality, ScaleRef, Section, SlotRef, Stage, Tensor,
};
pub use hhtld_format::{Dtype, ElemType, Encoding, FormatError, Layout, Regime, Role, SectionKind};
