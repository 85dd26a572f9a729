//! Writer side of hhtld: a streaming file builder, the codecs that turn real
//! weights into palettes and codes, and safetensors import.
#![warn(missing_docs)]

pub mod builder;
pub mod codec;
pub mod error;
pub mod fisher;
pub mod import;
pub mod pipeline;
/// The size report (spec §8), defined in `hhtld_format` so read-only tools
/// count alike without the writer.
pub use hhtld_format::report;
