//! Reader errors as Python exceptions.
//!
//! A file that breaks the format (or a CRC, or the decode kernel) raises
//! `hhtld.HhtldError`, a `ValueError` carrying the spec rule, the variant
//! name and the place; the other reader errors map to the Python exception a
//! Python user expects (`OSError`, `KeyError`, `IndexError`, `TypeError`,
//! `MemoryError`).

use hhtld_reader::ReaderError;
use pyo3::exceptions::{
    PyIndexError, PyKeyError, PyMemoryError, PyOSError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;

pyo3::create_exception!(
    hhtld,
    HhtldError,
    PyValueError,
    "A file that is not a valid hhtld file, or one whose decode would pass the\nexpansion limit.\n\nAttributes: `rule` (the spec rule, e.g. \"R-MAGIC\", or None when the\nspec names none: a section CRC mismatch, the expansion limit), `kind` (the Rust error's\nvariant name, e.g. \"BadMagic\"), `place` (the record it concerns, e.g.\n\"header\", \"section 3\", 'tensor 2 (\"w\")') and `offset` (a file offset or\nNone)."
);

/// What an HhtldError carries besides its message.
struct Details {
    rule: Option<&'static str>,
    kind: &'static str,
    place: String,
    offset: Option<u64>,
}

fn hhtld_error(py: Python<'_>, msg: String, d: Details) -> PyErr {
    let err = HhtldError::new_err(msg);
    let value = err.value(py);
    // Setting attributes on a fresh exception instance cannot fail short of
    // memory exhaustion, in which case the error still carries its message.
    let _ = value.setattr("rule", d.rule);
    let _ = value.setattr("kind", d.kind);
    let _ = value.setattr("place", d.place);
    let _ = value.setattr("offset", d.offset);
    err
}

/// Converts a reader error into the Python exception for it.
pub fn to_py(py: Python<'_>, e: ReaderError) -> PyErr {
    let msg = e.to_string();
    match e {
        ReaderError::Io { path, source } => match source.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, source.to_string(), path)),
            None => PyOSError::new_err(msg),
        },
        ReaderError::Format(f) => hhtld_error(
            py,
            msg,
            Details {
                rule: Some(f.rule()),
                kind: f.kind(),
                place: f.place(),
                offset: f.offset(),
            },
        ),
        ReaderError::Crc {
            section,
            kind: _,
            offset,
            ..
        } => hhtld_error(
            py,
            msg,
            Details {
                rule: None,
                kind: "Crc",
                place: format!("section {section}"),
                offset: Some(offset as u64),
            },
        ),
        ReaderError::Kernel { tensor, .. } => hhtld_error(
            py,
            msg,
            Details {
                rule: None,
                kind: "Kernel",
                place: tensor.to_string(),
                offset: None,
            },
        ),
        ReaderError::ExpansionLimit { tensor, .. } => hhtld_error(
            py,
            msg,
            Details {
                rule: None,
                kind: "ExpansionLimit",
                place: tensor.to_string(),
                offset: None,
            },
        ),
        ReaderError::NoSuchTensor { name } => PyKeyError::new_err(name),
        ReaderError::RowOutOfRange { .. } | ReaderError::IndexOutOfRange { .. } => {
            PyIndexError::new_err(msg)
        }
        ReaderError::NotFloat { .. } => PyTypeError::new_err(msg),
        ReaderError::Alloc { .. } => PyMemoryError::new_err(msg),
        // The rest are misuse of the reader by this extension, not bad files.
        _ => PyRuntimeError::new_err(msg),
    }
}
