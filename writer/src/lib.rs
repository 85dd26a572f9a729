//! Writer side of hhtld: a streaming file builder ([`builder::Writer`]),
//! the codecs and profiles that turn real weights into palettes and codes
//! ([`codec`]), tensor classification ([`import`]; the safetensors reader
//! itself is `hhtld-import`, re-exported there), and the encode pipeline
//! that ties them together ([`pipeline::encode_model`]). Every byte goes
//! through `hhtld_format::encode`, the same rules the reader decodes with.
//!
//! Encoding two small matrices as one group with the fidelity codec, writing
//! them, and reading them back:
//!
//! ```
//! use std::io::Cursor;
//! use hhtld_format::{Dtype, Regime, Role};
//! use hhtld_writer::builder::{TensorHeader, Writer};
//! use hhtld_writer::codec::{encode_group, row_quality, CodecSpec, Matrix};
//!
//! let a: Vec<f32> = (0..64 * 32).map(|i| ((i * 7 % 29) as f32 - 14.0) / 10.0).collect();
//! let b: Vec<f32> = a.iter().map(|v| v * 0.5).collect();
//! let mats = [Matrix::new(&a, 64, 32)?, Matrix::new(&b, 64, 32)?];
//! let group = encode_group(&mats, &CodecSpec::fidelity())?;
//!
//! let mut w = Writer::new(Cursor::new(Vec::new()))?;
//! let ids = w.add_group_objects(&group, false)?;
//! for (i, name) in ["a", "b"].into_iter().enumerate() {
//!     let header = TensorHeader { name, dtype: Dtype::F32, shape: &[64, 32],
//!         role: Role::MlpUp, regime: Regime::Argmax };
//!     w.add_group_member(&group, &ids, i, header, None)?;
//! }
//! let (out, report) = w.finish_into_inner()?;
//! assert_eq!(report.encoded().tensors, 2);
//!
//! // The reader decodes exactly what the codec measured.
//! let file = hhtld_reader::HhtldFile::from_vec(out.into_inner())?;
//! let decoded = file.view().tensor_by_name("a")?.decode()?;
//! let q = row_quality(&mats[0], &decoded)?;
//! assert!(q.rho_median > 0.99, "{q:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod amend;
pub mod builder;
pub mod calibration;
pub mod codec;
pub mod error;
pub mod fisher;
pub mod import;
pub mod pipeline;
/// The size report (spec §8), defined in `hhtld_format` so read-only tools
/// count alike without the writer.
pub use hhtld_format::report;
pub mod side_files;
