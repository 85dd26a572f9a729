//! Header and section table checks (spec §7 steps 1-5).

use core::ops::Range;

use zerocopy::FromBytes;

use crate::error::{FormatError, Place};
use crate::layout::{
    align64, Header, SectionEntry, HEADER_CRC_SPAN, HEADER_LEN, MAGIC, SECTION_ENTRY_LEN,
    SECTION_FLAG_REQUIRED, VERSION_MAJOR,
};
use crate::limits::MAX_SECTIONS;
use crate::SectionKind;

use super::*;

/// Header checks; returns the header and the table's byte range.
pub(super) fn parse_header(bytes: &[u8]) -> Result<(&Header, Range<usize>), FormatError> {
    let len = u64_of(bytes.len());
    let Ok((header, _)) = Header::ref_from_prefix(bytes) else {
        return Err(FormatError::Truncated { len });
    };
    if header.magic != MAGIC {
        return Err(FormatError::BadMagic {
            found: header.magic,
        });
    }
    if header.major.get() != VERSION_MAJOR {
        return Err(FormatError::UnsupportedMajor {
            major: header.major.get(),
        });
    }
    let count = header.section_count.get();
    if count as usize > MAX_SECTIONS {
        return Err(limit(
            Place::Header,
            "section_count",
            count,
            MAX_SECTIONS,
            32,
        ));
    }
    let table_offset = header.table_offset.get();
    let table_len = u64::from(count) * SECTION_ENTRY_LEN as u64; // < 2^28
    let table_end = table_offset.checked_add(table_len);
    let file_len = header.file_len.get();
    // The CRC covers the table, so the table must lie in the file to check
    // it; when it does not, the header's lengths or offset are wrong.
    let table = match table_end {
        Some(end) if end <= len && table_offset >= HEADER_LEN as u64 => {
            (table_offset as usize)..(end as usize)
        }
        _ if file_len != len => {
            return Err(FormatError::FileLen {
                header: file_len,
                actual: len,
                table_end,
            })
        }
        _ => {
            return Err(FormatError::TableOffset {
                table_offset,
                table_len,
                file_len: len,
                expected: None,
            })
        }
    };
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..HEADER_CRC_SPAN]);
    h.update(&bytes[table.clone()]);
    let computed = h.finalize();
    if computed != header.header_crc.get() {
        return Err(FormatError::HeaderCrc {
            stored: header.header_crc.get(),
            computed,
        });
    }
    reserved(Place::Header, "flags", 12, header.flags.as_ref())?;
    reserved(Place::Header, "reserved", 36, &header.reserved)?;
    if file_len != len || table.end != bytes.len() {
        return Err(FormatError::FileLen {
            header: file_len,
            actual: len,
            table_end,
        });
    }
    Ok((header, table))
}

/// Section table checks: entries and layout (padding is left to
/// verification: [`check_padding`]).
pub(super) fn parse_table(
    bytes: &[u8],
    header: &Header,
    table: Range<usize>,
) -> Result<Vec<Section>, FormatError> {
    let entries = <[SectionEntry]>::ref_from_bytes(&bytes[table.clone()]).map_err(|_| {
        // Unreachable: the table length is 32 x section_count by construction.
        FormatError::FileLen {
            header: header.file_len.get(),
            actual: u64_of(bytes.len()),
            table_end: Some(u64_of(table.end)),
        }
    })?;
    let table_offset = table.start;
    let table_err = |expected: u64| FormatError::TableOffset {
        table_offset: u64_of(table_offset),
        table_len: u64_of(table.len()),
        file_len: u64_of(bytes.len()),
        expected: Some(expected),
    };
    // The table is present in the file, so this allocation is bounded by its bytes.
    let mut sections = Vec::with_capacity(entries.len());
    let mut expected = HEADER_LEN; // where the next section must start
    for (i, e) in entries.iter().enumerate() {
        let idx = i as u32; // i < section_count, a u32
        let entry_off = table_offset + i * SECTION_ENTRY_LEN;
        let raw_kind = e.kind.get();
        let flags = e.flags.get();
        let kind = SectionKind::from_raw(raw_kind);
        if raw_kind == 0 {
            return Err(FormatError::BadSectionKind {
                section: idx,
                offset: u64_of(entry_off),
            });
        }
        if flags & !SECTION_FLAG_REQUIRED != 0 || (kind.is_some() && flags == 0) {
            return Err(FormatError::SectionFlags {
                section: idx,
                kind: raw_kind,
                flags,
            });
        }
        if kind.is_none() && flags & SECTION_FLAG_REQUIRED != 0 {
            return Err(FormatError::UnknownRequired {
                section: idx,
                kind: raw_kind,
            });
        }
        reserved(
            Place::SectionEntry(idx),
            "reserved",
            entry_off + 24,
            e.reserved.as_ref(),
        )?;
        let offset = e.offset.get();
        if offset != u64_of(expected) {
            return Err(FormatError::SectionOffset {
                section: idx,
                offset,
                expected: u64_of(expected),
            });
        }
        let end = offset.saturating_add(e.length.get());
        if end > u64_of(table_offset) {
            // The section overlaps what follows it: the next section's offset
            // rule names that, or the table's for the last section.
            let next = align64(end).unwrap_or(u64::MAX);
            return Err(match entries.get(i + 1) {
                Some(n) => FormatError::SectionOffset {
                    section: idx + 1,
                    offset: n.offset.get(),
                    expected: next,
                },
                None => table_err(next),
            });
        }
        let end = end as usize; // <= table_offset, a usize
        sections.push(Section {
            kind,
            raw_kind,
            flags,
            crc32: e.crc32.get(),
            offset: expected,
            length: end - expected,
        });
        expected = aligned(end);
    }
    if table_offset != expected {
        return Err(table_err(u64_of(expected)));
    }
    Ok(sections)
}

/// R-SECTION-COUNT; returns the DIRECTORY, STRINGS and METADATA indices.
pub(super) fn count_kinds(sections: &[Section]) -> Result<(u32, u32, Option<u32>), FormatError> {
    let find = |kind: SectionKind| {
        let mut it = sections
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.kind == Some(kind));
        let first = it.next().map(|(i, _)| i as u32);
        (first, 1 + it.count() as u32)
    };
    let one = |kind| match find(kind) {
        (Some(i), 1) => Ok(i),
        (Some(_), n) => Err(FormatError::SectionCount { kind, count: n }),
        (None, _) => Err(FormatError::SectionCount { kind, count: 0 }),
    };
    let directory = one(SectionKind::Directory)?;
    let strings = one(SectionKind::Strings)?;
    let metadata = match find(SectionKind::Metadata) {
        (m, 1) | (m @ None, _) => m,
        (Some(_), n) => {
            return Err(FormatError::SectionCount {
                kind: SectionKind::Metadata,
                count: n,
            })
        }
    };
    Ok((directory, strings, metadata))
}

/// R-PADDING: the bytes between sections and before the table are zero.
/// Verification's, not open's: they lie after every section, all through
/// the file, and nothing else reads them.
pub(super) fn check_padding(bytes: &[u8], sections: &[Section]) -> Result<(), FormatError> {
    for (i, s) in sections.iter().enumerate() {
        let end = s.offset + s.length;
        if let Some(p) = bytes.get(end..aligned(end)).and_then(first_nonzero) {
            return Err(FormatError::PaddingNotZero {
                offset: u64_of(end + p),
                after: i as u32,
            });
        }
    }
    Ok(())
}
