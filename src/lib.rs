//! Library side of the `hhtld` command-line tool: the parts other code
//! (tests, fuzzers) must render exactly as the command does. The commands
//! themselves (`inspect`, `encode`, `decode`, `verify`) are in `src/cmd/`;
//! read-only ones use only `hhtld-format`, `hhtld-reader` and, for
//! `verify --against`, `hhtld-import`.
//!
//! What `hhtld inspect` prints for a conformance vector:
//!
//! ```
//! use hhtld::inspect::{inspect_json, render_text, Show};
//! let bytes = include_bytes!("../spec/vectors/valid/metadata.hhtld").to_vec();
//! let file = hhtld_reader::HhtldFile::from_vec(bytes)?;
//! let report = inspect_json(&file.view(), true);
//! assert!(report["sections"].as_array().is_some_and(|s| !s.is_empty()));
//! let text = render_text(&report, Show::default());
//! assert!(text.starts_with("hhtld 1.0 file"));
//! // Summary (with the metadata keys) first; sections only on request.
//! assert!(text.find("metadata").unwrap() < text.find("\ntensors:").unwrap());
//! assert!(!text.contains("\nsections:"));
//! # Ok::<(), hhtld_reader::ReaderError>(())
//! ```

pub mod inspect;
pub mod verify;
