//! `hhtld verify` without `--against`: every section CRC. A library module
//! so the Python package returns exactly what `verify --json` prints.

use hhtld_reader::{Hhtld, ReaderError};
use serde_json::{json, Value};

/// Checks every section CRC; on success, the JSON `verify --json` prints.
/// The first mismatch (by section index) is the error.
pub fn crc_json(view: &Hhtld<'_>) -> Result<Value, ReaderError> {
    view.verify()?;
    Ok(json!({"crc_ok": true, "sections": view.sections().len()}))
}
