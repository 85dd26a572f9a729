//! Every byte rule of the hhtld container, in both directions: on-disk
//! structures ([`layout`]), limits ([`limits`]), validation of a whole file
//! ([`parse`], spec §7) with typed errors ([`FormatError`]), the decode
//! kernel ([`decode`]) and its inverse ([`encode`]), the size report and
//! the figures every tool prints ([`report`], spec §8), and row quality
//! with the regimes' gates ([`quality`]). This crate does no I/O;
//! `spec/hhtld.md` is the normative description of everything here.
//!
//! Reading a file's structure (`hhtld-reader` adds mmap and typed views):
//!
//! ```
//! use hhtld_format::{parse, report::SizeReport, Encoding};
//! let bytes = include_bytes!("../../spec/vectors/valid/mixed.hhtld");
//! let layout = parse(bytes)?;
//! assert_eq!(layout.version, (1, 0));
//! let first = layout.tensor_name(bytes, 0).expect("a name");
//! assert_eq!(layout.tensor_index(bytes, first), Some(0));
//! let report = SizeReport::from_layout(&layout, bytes);
//! report.check().expect("every byte counted once");
//! let palette = layout.tensors.iter().filter(|t| t.encoding == Encoding::Palette).count();
//! assert_eq!(report.encoded().tensors, palette as u64);
//! # Ok::<(), hhtld_format::FormatError>(())
//! ```
//!
//! Adding a section kind or a codec: see `docs/checklists.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod decode;
pub mod encode;
pub mod enums;
pub mod error;
pub mod layout;
pub mod limits;
pub mod quality;
pub mod report;
pub mod validate;

pub use enums::{Dtype, ElemType, Encoding, Regime, Role, SectionKind};
pub use error::FormatError;

/// Metadata keys that begin with this hold a file of the model, the rest of
/// the key being its path relative to the model folder (spec §5, "Model
/// files"): `file.tokenizer.json`.
pub const MODEL_FILE_PREFIX: &str = "file.";
pub use validate::{parse, Layout};
