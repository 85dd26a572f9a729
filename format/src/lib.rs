//! On-disk structures, limits, validation rules and errors of the hhtld
//! container format. This crate does no I/O; `spec/hhtld.md` is the normative
//! description of everything here.
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
pub use validate::{parse, Layout};
