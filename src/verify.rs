//! `hhtld verify` without `--against`: every section CRC, then the padding
//! and the metadata values. A library module so the Python package returns
//! exactly what `verify --json` prints.

use hhtld_reader::{Hhtld, ReaderError};
use serde_json::{json, Value};

/// Verifies the file (every section CRC, then zero padding and UTF-8
/// metadata values); on success, the JSON `verify --json` prints. The
/// first failure (a CRC by section index first) is the error.
pub fn crc_json(view: &Hhtld<'_>) -> Result<Value, ReaderError> {
    view.verify()?;
    Ok(json!({"crc_ok": true, "sections": view.sections().len()}))
}
