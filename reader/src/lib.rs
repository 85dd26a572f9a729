//! Zero-copy reader for hhtld files.
//!
//! [`HhtldFile::open`] memory-maps a file and validates its structure
//! (spec §7) in time proportional to its directory; [`HhtldFile::view`] gives
//! an [`Hhtld`] whose tensor, palette, basis and FisherZ views are slices of
//! the mapping. [`Hhtld::verify`] checks every section CRC.
//!
//! ```no_run
//! # fn main() -> Result<(), hhtld_reader::ReaderError> {
//! let file = hhtld_reader::HhtldFile::open("model.hhtld")?;
//! let h = file.view();
//! h.verify()?;
//! let t = h.tensor_by_name("encoder.layer.0.attention.self.query.weight")?;
//! let mut row = vec![0f32; t.n_cols()];
//! t.decode_row_into(0, &mut row)?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

// Typed views read little-endian data in place.
#[cfg(not(target_endian = "little"))]
compile_error!("hhtld-reader's typed views need a little-endian host");

mod error;
mod file;
mod tensor;
mod view;

pub use error::ReaderError;
pub use file::HhtldFile;
pub use hhtld_format::decode::ElemSlice;
pub use tensor::{RowDecoder, RowView, TensorView};
pub use view::{BasisView, FisherView, Hhtld, PaletteView, SectionStatus};
