//! Adding metadata entries to a finished file (e.g. `encode --eval`'s
//! figures, known only once the file can be run).
//!
//! [`amend_metadata`] writes a new file in which every section other than
//! METADATA is byte-identical to the input's (same bytes, same CRC, same
//! index; only offsets after METADATA move), METADATA holds the old entries
//! with the new ones set, and the table and header are rebuilt by the
//! layout rules of spec §1–§3. The input is validated and every section CRC
//! checked first, so a damaged file is refused rather than re-sealed; the
//! output is written to a temporary file and renamed over the destination.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! use hhtld_writer::builder::Writer;
//! let path = dir.path().join("m.hhtld");
//! let mut w = Writer::create(&path)?;
//! w.set_metadata("a", "1")?;
//! w.finish()?;
//! hhtld_writer::amend::amend_metadata(&path, &path, &[("b".into(), "2".into())])?;
//! let f = hhtld_reader::HhtldFile::open(&path)?;
//! assert_eq!(f.view().metadata_value("a")?, Some("1"));
//! assert_eq!(f.view().metadata_value("b")?, Some("2"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use hhtld_format::encode::push_metadata_entry;
use hhtld_format::layout::{align64, Header, SectionEntry, HEADER_LEN, SECTION_FLAG_REQUIRED};
use hhtld_format::limits::MAX_SECTIONS;
use hhtld_format::SectionKind;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

use crate::builder::{check_metadata_entry, seal_header, AtomicFile};
use crate::error::WriteError;

/// Writes `input` to `output` with the metadata `entries` set (a key
/// already present gets the new value). `output` may be `input`.
///
/// # Errors
/// [`WriteError::Amend`] when `input` is not a valid hhtld file or a
/// section's CRC does not match its bytes; [`WriteError::Metadata`] /
/// [`WriteError::NameTooLong`] for an entry the format cannot hold;
/// [`WriteError::Io`] on I/O. On error `output` is untouched.
pub fn amend_metadata(
    input: &Path,
    output: &Path,
    entries: &[(String, String)],
) -> Result<(), WriteError> {
    let bad = |reason: String| WriteError::Amend {
        path: input.display().to_string(),
        reason,
    };
    let io = |op: &str, source| WriteError::Io {
        op: format!("{op} {}", input.display()),
        source,
    };
    for (k, v) in entries {
        check_metadata_entry(k, v)?;
    }
    let file = File::open(input).map_err(|e| io("opening", e))?;
    // SAFETY: mapped read-only; like every mmap-based reader we require that
    // the file is not modified while it is read (it is our own output).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io("mapping", e))?;
    let bytes: &[u8] = &map;
    let layout = hhtld_format::validate::parse(bytes).map_err(|e| bad(e.to_string()))?;
    if let Some(i) = (0..layout.sections.len()).find(|&i| !layout.section_crc_ok(bytes, i)) {
        return Err(bad(format!("section {i} fails its CRC check")));
    }

    let mut meta: BTreeMap<&str, &str> = (0..layout.metadata_entries.len())
        .filter_map(|i| layout.metadata_entry(bytes, i))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    for (k, v) in entries {
        meta.insert(k, v);
    }
    let mut meta_bytes = Vec::new();
    for (k, v) in &meta {
        push_metadata_entry(k, v, &mut meta_bytes);
    }

    // Section payloads in table order; METADATA replaced, or appended last
    // so that no existing section index changes.
    let old_meta = layout.metadata.map(|i| i as usize);
    let mut parts: Vec<(SectionEntry, &[u8])> = Vec::with_capacity(layout.sections.len() + 1);
    for (i, s) in layout.sections.iter().enumerate() {
        // Flags, kind and reserved bytes are copied from the stored entry.
        let at = layout.table_offset + i * std::mem::size_of::<SectionEntry>();
        let entry = bytes
            .get(at..at + std::mem::size_of::<SectionEntry>())
            .and_then(|b| SectionEntry::read_from_bytes(b).ok())
            .ok_or_else(|| bad(format!("section table entry {i} out of range")))?;
        if Some(i) == old_meta {
            parts.push((entry, &meta_bytes));
        } else {
            parts.push((entry, &bytes[s.range()]));
        }
    }
    if old_meta.is_none() {
        if parts.len() >= MAX_SECTIONS {
            return Err(WriteError::Limit {
                cap: "MAX_SECTIONS",
                max: MAX_SECTIONS as u64,
                value: parts.len() as u64 + 1,
            });
        }
        let mut e = SectionEntry::new_zeroed();
        e.kind = U16::new(SectionKind::Metadata.to_raw());
        e.flags = U16::new(SECTION_FLAG_REQUIRED);
        parts.push((e, &meta_bytes));
    }

    let mut out = AtomicFile::create(output)?;
    let werr = |source| WriteError::Io {
        op: format!("writing {}", output.display()),
        source,
    };
    let too_big = || WriteError::Limit {
        cap: "file length",
        max: u64::MAX,
        value: u64::MAX,
    };
    let mut table = Vec::with_capacity(parts.len());
    let mut pos = HEADER_LEN as u64;
    out.write_all(&[0u8; HEADER_LEN]).map_err(werr)?;
    for (mut entry, payload) in parts {
        entry.offset = U64::new(pos);
        entry.length = U64::new(payload.len() as u64);
        entry.crc32 = U32::new(crc32fast::hash(payload));
        out.write_all(payload).map_err(werr)?;
        let end = pos.checked_add(payload.len() as u64).ok_or_else(too_big)?;
        let padded = align64(end).ok_or_else(too_big)?;
        out.write_all(&[0u8; 64][..(padded - end) as usize])
            .map_err(werr)?;
        pos = padded;
        table.push(entry);
    }
    let table_bytes = table.as_bytes();
    out.write_all(table_bytes).map_err(werr)?;
    let file_len = pos + table_bytes.len() as u64;

    let mut header = Header::read_from_bytes(&bytes[..HEADER_LEN])
        .map_err(|_| bad("header shorter than 64 bytes".into()))?;
    header.file_len = U64::new(file_len);
    header.table_offset = U64::new(pos);
    header.section_count = U32::new(table.len() as u32);
    seal_header(&mut header, table_bytes);
    out.seek(SeekFrom::Start(0)).map_err(werr)?;
    out.write_all(header.as_bytes()).map_err(werr)?;
    out.flush().map_err(werr)?;
    // The input's map is dropped before the rename replaces it (output may
    // be input); its bytes are no longer needed.
    drop(map);
    out.commit().map_err(werr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{RawTensor, TensorHeader, Writer};
    use hhtld_format::{Dtype, Regime, Role};

    /// A file with two raw tensors and, when `meta`, one metadata entry.
    fn file(path: &Path, meta: bool) {
        let mut w = Writer::create(path).unwrap();
        for (name, n) in [("a", 40usize), ("b", 3)] {
            let bytes: Vec<u8> = (0..n * 4).map(|i| i as u8).collect();
            w.add_raw_tensor(RawTensor {
                header: TensorHeader {
                    name,
                    dtype: Dtype::F32,
                    shape: &[n as u64],
                    role: Role::Bias,
                    regime: Regime::Passthrough,
                },
                bytes: &bytes,
            })
            .unwrap();
        }
        if meta {
            w.set_metadata("k", "old").unwrap();
            w.set_metadata("z", "kept").unwrap();
        }
        w.finish().unwrap();
    }

    fn sections(bytes: &[u8]) -> Vec<(Option<SectionKind>, Vec<u8>)> {
        let l = hhtld_format::validate::parse(bytes).unwrap();
        assert!((0..l.sections.len()).all(|i| l.section_crc_ok(bytes, i)));
        l.sections
            .iter()
            .map(|s| (s.kind, bytes[s.range()].to_vec()))
            .collect()
    }

    #[test]
    fn other_sections_stay_byte_identical_and_entries_merge() {
        let dir = tempfile::tempdir().unwrap();
        for had_metadata in [true, false] {
            let src = dir.path().join("src.hhtld");
            let dst = dir.path().join("dst.hhtld");
            file(&src, had_metadata);
            let entries = [("k".to_owned(), "new".to_owned()), ("m".into(), "x".into())];
            amend_metadata(&src, &dst, &entries).unwrap();
            let (before, after) = (std::fs::read(&src).unwrap(), std::fs::read(&dst).unwrap());
            let (b, a) = (sections(&before), sections(&after));
            let meta = |s: &[(Option<SectionKind>, Vec<u8>)]| {
                s.iter()
                    .position(|(k, _)| *k == Some(SectionKind::Metadata))
            };
            // Same sections at the same indices, METADATA aside (appended
            // last when the input had none).
            assert_eq!(a.len(), b.len() + usize::from(!had_metadata));
            let m = meta(&a).unwrap();
            assert_eq!(meta(&b).unwrap_or(b.len()), m);
            for (i, s) in b.iter().enumerate().filter(|(i, _)| *i != m) {
                assert_eq!(&a[i], s, "section {i}");
            }
            let f = hhtld_reader::HhtldFile::open(&dst).unwrap();
            let v = f.view();
            let got: Vec<(&str, &str)> = v.metadata().map(Result::unwrap).collect();
            let want: &[(&str, &str)] = if had_metadata {
                &[("k", "new"), ("m", "x"), ("z", "kept")]
            } else {
                &[("k", "new"), ("m", "x")]
            };
            assert_eq!(got, want);
            assert_eq!(v.tensor_by_name("a").unwrap().decode().unwrap().len(), 40);
        }
    }

    #[test]
    fn in_place_amend_and_a_damaged_input_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.hhtld");
        file(&path, true);
        amend_metadata(&path, &path, &[("n".into(), "1".into())]).unwrap();
        let f = hhtld_reader::HhtldFile::open(&path).unwrap();
        assert_eq!(f.view().metadata_value("n").unwrap(), Some("1"));
        drop(f);

        // One flipped byte in tensor a's data: refused, destination kept.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[64 + 5] ^= 1;
        let bad = dir.path().join("bad.hhtld");
        std::fs::write(&bad, &bytes).unwrap();
        let dst = dir.path().join("out.hhtld");
        std::fs::write(&dst, b"previous").unwrap();
        let e = amend_metadata(&bad, &dst, &[("n".into(), "2".into())]).unwrap_err();
        assert!(
            matches!(&e, WriteError::Amend { reason, .. } if reason.contains("section 0")),
            "{e}"
        );
        assert_eq!(std::fs::read(&dst).unwrap(), b"previous");
        let e = amend_metadata(&path, &dst, &[(String::new(), "v".into())]).unwrap_err();
        assert!(matches!(e, WriteError::Metadata { .. }), "{e}");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 3, "no temporary file is left behind");
    }
}
