//! Directory and metadata checks (spec §7 steps 6-7).

use core::ops::Range;
use std::collections::HashMap;

use foldhash::fast::{FixedState, RandomState};

use zerocopy::FromBytes;

use crate::error::{FormatError, Place, RefProblem, TensorId};
use crate::layout::{
    BasisRecord, DirHeader, FisherRecord, PaletteRecord, TensorRecord, DIR_HEADER_LEN,
    SMALL_RECORD_LEN, TENSOR_RECORD_LEN,
};
use crate::limits::{
    MAX_DIRECTORY_BYTES, MAX_METADATA_BYTES, MAX_NAME_LEN, MAX_PALETTES, MAX_PALETTE_D,
    MAX_TENSORS, SLOT_L_DIMS,
};
use crate::{ElemType, SectionKind};

use super::tensor::TensorCx;
use super::*;

/// A record that references sections, remembered to report shared references.
#[derive(Debug, Clone, Copy)]
pub(super) enum Site {
    Palette(u32),
    Basis(u32),
    Fisher(u32),
    Tensor(u32),
}

/// Tracks which directory field references each section (R-SECTION-REF).
pub(super) struct Refs<'l> {
    sections: &'l [Section],
    by: Vec<Option<(Site, &'static str)>>,
}

impl Refs<'_> {
    /// Claims section `s` for `field` of `site`, which must have `kind`;
    /// returns the section's bytes.
    pub(super) fn claim(
        &mut self,
        s: u32,
        kind: SectionKind,
        site: Site,
        field: &'static str,
        place: impl Fn(Site) -> Place,
    ) -> Result<Range<usize>, FormatError> {
        let err = |problem| FormatError::SectionRef {
            section: s,
            problem,
        };
        let (Some(sec), Some(slot)) = (self.sections.get(s as usize), self.by.get_mut(s as usize))
        else {
            return Err(err(RefProblem::OutOfRange {
                by: place(site),
                field,
                section_count: self.sections.len() as u32,
            }));
        };
        if sec.kind != Some(kind) {
            return Err(err(RefProblem::WrongKind {
                by: place(site),
                field,
                expected: kind,
                found: sec.raw_kind,
            }));
        }
        if let Some((first, first_field)) = *slot {
            return Err(err(RefProblem::Shared {
                by: place(site),
                field,
                first: place(first),
                first_field,
            }));
        }
        *slot = Some((site, field));
        Ok(sec.range())
    }
}

pub(super) const DATA_KINDS: [SectionKind; 7] = [
    SectionKind::Palette,
    SectionKind::Basis,
    SectionKind::FisherZ,
    SectionKind::Entry,
    SectionKind::SlotL,
    SectionKind::Scale,
    SectionKind::Raw,
];

pub(super) fn parse_directory(bytes: &[u8], layout: &mut Layout) -> Result<(), FormatError> {
    let dir_index = layout.directory;
    let dir = &layout.sections[dir_index as usize];
    let dir_off = dir.offset;
    let dir_bytes = &bytes[dir.range()];
    let size_err = |expected| FormatError::DirSize {
        section: dir_index,
        length: u64_of(dir_bytes.len()),
        expected,
        max: MAX_DIRECTORY_BYTES,
    };
    let Ok((dh, records)) = DirHeader::ref_from_prefix(dir_bytes) else {
        return Err(size_err(None));
    };
    reserved(Place::DirHeader, "reserved", dir_off + 16, &dh.reserved)?;
    let counts = [
        ("tensor_count", dh.tensor_count.get(), MAX_TENSORS),
        ("palette_count", dh.palette_count.get(), MAX_PALETTES),
        ("basis_count", dh.basis_count.get(), MAX_PALETTES),
        ("fisher_count", dh.fisher_count.get(), MAX_PALETTES),
    ];
    for (i, &(field, value, max)) in counts.iter().enumerate() {
        if value as usize > max {
            return Err(limit(Place::DirHeader, field, value, max, dir_off + 4 * i));
        }
    }
    let [nt, np, nb, nf] = counts.map(|(_, v, _)| u64::from(v));
    let small = SMALL_RECORD_LEN as u64;
    let expected = (np + nb + nf)
        .checked_mul(small)
        .and_then(|x| x.checked_add(nt.checked_mul(TENSOR_RECORD_LEN as u64)?))
        .and_then(|x| x.checked_add(DIR_HEADER_LEN as u64));
    let expected = expected.unwrap_or(u64::MAX);
    if expected > MAX_DIRECTORY_BYTES || expected != u64_of(dir_bytes.len()) {
        return Err(size_err(Some(expected)));
    }
    // From here every count is backed by real directory bytes.
    let (np, nb, nf, nt) = (np as usize, nb as usize, nf as usize, nt as usize);
    // The size check above makes these splits exact; the errors are unreachable.
    let cast_err = || size_err(Some(expected));
    let (pal_bytes, rest) = records
        .split_at_checked(np * SMALL_RECORD_LEN)
        .ok_or_else(cast_err)?;
    let (basis_bytes, rest) = rest
        .split_at_checked(nb * SMALL_RECORD_LEN)
        .ok_or_else(cast_err)?;
    let (fisher_bytes, tensor_bytes) = rest
        .split_at_checked(nf * SMALL_RECORD_LEN)
        .ok_or_else(cast_err)?;
    let pal_recs = <[PaletteRecord]>::ref_from_bytes(pal_bytes).map_err(|_| cast_err())?;
    let basis_recs = <[BasisRecord]>::ref_from_bytes(basis_bytes).map_err(|_| cast_err())?;
    let fisher_recs = <[FisherRecord]>::ref_from_bytes(fisher_bytes).map_err(|_| cast_err())?;
    let tensor_recs = <[TensorRecord]>::ref_from_bytes(tensor_bytes).map_err(|_| cast_err())?;

    let mut refs = Refs {
        sections: &layout.sections,
        by: vec![None; layout.sections.len()],
    };
    let base = dir_off + DIR_HEADER_LEN;
    let pal_base = base;
    let basis_base = pal_base + np * SMALL_RECORD_LEN;
    let fisher_base = basis_base + nb * SMALL_RECORD_LEN;
    let tensor_base = fisher_base + nf * SMALL_RECORD_LEN;
    let small_place = |s: Site| match s {
        Site::Palette(i) => Place::Palette(i),
        Site::Basis(i) => Place::Basis(i),
        Site::Fisher(i) => Place::Fisher(i),
        Site::Tensor(i) => Place::Tensor(TensorId {
            index: i,
            name: None,
        }),
    };

    let mut palettes = Vec::with_capacity(np);
    for (i, r) in pal_recs.iter().enumerate() {
        let idx = i as u32;
        let off = pal_base + i * SMALL_RECORD_LEN;
        reserved(Place::Palette(idx), "reserved", off + 12, &r.reserved)?;
        let range = refs.claim(
            r.section.get(),
            SectionKind::Palette,
            Site::Palette(idx),
            "section",
            small_place,
        )?;
        let (k, d, bits) = (r.k.get(), r.d.get(), r.bits);
        let bits_ok = bits == 4 || bits == 8;
        if !bits_ok
            || k == 0
            || usize::from(k) > (1usize << bits)
            || d == 0
            || d as usize > MAX_PALETTE_D
        {
            return Err(FormatError::PaletteFields {
                palette: idx,
                k,
                d,
                bits,
            });
        }
        let elem = ElemType::from_raw(r.elem).ok_or(FormatError::BadEnum {
            place: Place::Palette(idx),
            field: "elem",
            value: r.elem,
        })?;
        let d = d as usize;
        // <= 256 x 65536 x 4, no overflow.
        let want = (1usize << bits) * d * elem.size();
        if range.len() != want {
            return Err(FormatError::PaletteLen {
                palette: idx,
                section: r.section.get(),
                length: u64_of(range.len()),
                expected: u64_of(want),
            });
        }
        palettes.push(Palette {
            section: r.section.get(),
            range,
            k,
            d,
            bits,
            elem,
            fisher: None,
        });
    }

    let mut bases = Vec::with_capacity(nb);
    for (i, r) in basis_recs.iter().enumerate() {
        let idx = i as u32;
        let off = basis_base + i * SMALL_RECORD_LEN;
        reserved(Place::Basis(idx), "reserved", off + 11, &r.reserved)?;
        let range = refs.claim(
            r.section.get(),
            SectionKind::Basis,
            Site::Basis(idx),
            "section",
            small_place,
        )?;
        let (rows, n_cols) = (r.rows.get(), r.n_cols.get());
        if usize::from(rows) != SLOT_L_DIMS || n_cols == 0 {
            return Err(FormatError::BasisFields {
                basis: idx,
                rows,
                n_cols,
            });
        }
        let elem = ElemType::from_raw(r.elem).ok_or(FormatError::BadEnum {
            place: Place::Basis(idx),
            field: "elem",
            value: r.elem,
        })?;
        let want = u64::from(n_cols) * (SLOT_L_DIMS * elem.size()) as u64;
        if u64_of(range.len()) != want {
            return Err(FormatError::BasisLen {
                basis: idx,
                section: r.section.get(),
                length: u64_of(range.len()),
                expected: want,
            });
        }
        bases.push(Basis {
            section: r.section.get(),
            range,
            rows: SLOT_L_DIMS,
            n_cols: n_cols as usize,
            elem,
        });
    }

    let mut fishers = Vec::with_capacity(nf);
    for (i, r) in fisher_recs.iter().enumerate() {
        let idx = i as u32;
        let off = fisher_base + i * SMALL_RECORD_LEN;
        reserved(Place::Fisher(idx), "reserved", off + 12, &r.reserved)?;
        let range = refs.claim(
            r.section.get(),
            SectionKind::FisherZ,
            Site::Fisher(idx),
            "section",
            small_place,
        )?;
        let p = r.palette.get();
        let Some(pal) = palettes.get_mut(p as usize) else {
            return Err(FormatError::BadIndex {
                place: Place::Fisher(idx),
                field: "palette",
                index: p,
                count: np as u32,
            });
        };
        let gamma = r.gamma.get();
        if !(gamma.is_finite() && gamma > 0.0) {
            return Err(FormatError::FisherGamma { fisher: idx, gamma });
        }
        let k = usize::from(pal.k);
        if range.len() != k * k {
            return Err(FormatError::FisherLen {
                fisher: idx,
                palette: p,
                section: r.section.get(),
                length: u64_of(range.len()),
                expected: u64_of(k * k),
            });
        }
        if let Some(first) = pal.fisher {
            return Err(FormatError::FisherDup {
                fisher: idx,
                palette: p,
                first,
            });
        }
        pal.fisher = Some(idx);
        fishers.push(Fisher {
            section: r.section.get(),
            range,
            palette: p,
            k,
            gamma,
        });
    }

    let strings = layout.sections[layout.strings as usize].range();
    let mut tensors: Vec<Tensor> = Vec::with_capacity(nt);
    // R-NAME-DUP: names seen so far, borrowed from the file. foldhash, not
    // SipHash: it was 8% of open; seeded per process, so a file cannot be
    // built to make these names collide.
    let mut seen: HashMap<&[u8], u32, RandomState> =
        HashMap::with_capacity_and_hasher(nt, RandomState::default());
    for (i, r) in tensor_recs.iter().enumerate() {
        let cx = TensorCx {
            bytes,
            index: i as u32,
            record_offset: tensor_base + i * TENSOR_RECORD_LEN,
            strings: strings.clone(),
            palettes: &palettes,
            bases: &bases,
            earlier: &tensors,
        };
        let t = cx.parse(r, &mut refs, &mut seen)?;
        tensors.push(t);
    }

    // Lookup index: names hashed once, never copied, ordered by hash then
    // name, so that even names made to collide are found in log time.
    let name = |i: u32| bytes.get(tensors[i as usize].name.clone()).unwrap_or(&[]);
    let mut by_name: Vec<(u64, u32)> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (name_hash(&bytes[t.name.clone()]), i as u32))
        .collect();
    by_name.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| name(a.1).cmp(name(b.1))));

    for (i, (s, by)) in layout.sections.iter().zip(&refs.by).enumerate() {
        if let (Some(kind), None) = (s.kind, by) {
            if DATA_KINDS.contains(&kind) {
                return Err(FormatError::SectionRef {
                    section: i as u32,
                    problem: RefProblem::Unreferenced { kind },
                });
            }
        }
    }

    layout.palettes = palettes;
    layout.bases = bases;
    layout.fishers = fishers;
    layout.tensors = tensors;
    layout.by_name = by_name;
    Ok(())
}

/// Hash of a name for the lookup index (in-memory only, never stored). A
/// fixed seed keeps layouts of the same bytes equal; the index's order by
/// name within a hash keeps lookups logarithmic when names collide.
pub(super) fn name_hash(name: &[u8]) -> u64 {
    use core::hash::BuildHasher;
    FixedState::with_seed(0x6868_746c_6400_0001).hash_one(name)
}

/// R-METADATA; entries are pushed as they are read, so the allocation grows
/// with the bytes present.
pub(super) fn parse_metadata(bytes: &[u8], sec: &Section) -> Result<Vec<MetaEntry>, FormatError> {
    let range = sec.range();
    let mut entries: Vec<MetaEntry> = Vec::new();
    let mut pos = range.start;
    let mut prev_key: Option<Range<usize>> = None;
    let mut idx = 0u32;
    while pos < range.end {
        let err = |offset: usize, reason| FormatError::BadMetadata {
            entry: idx,
            offset: u64_of(offset),
            reason,
        };
        let Some(klen) = read_len(bytes, pos, range.end) else {
            return Err(err(pos, "key length runs past the section end"));
        };
        if klen == 0 || klen > MAX_NAME_LEN {
            return Err(err(pos, "key length is not in 1..=4096"));
        }
        let key = pos + 4..(pos + 4).saturating_add(klen);
        if key.end > range.end {
            return Err(err(pos, "key runs past the section end"));
        }
        if core::str::from_utf8(&bytes[key.clone()]).is_err() {
            return Err(err(key.start, "key is not valid UTF-8"));
        }
        if let Some(p) = &prev_key {
            if bytes[key.clone()] <= bytes[p.clone()] {
                return Err(err(key.start, "keys are not strictly increasing"));
            }
        }
        pos = key.end;
        let Some(vlen) = read_len(bytes, pos, range.end) else {
            return Err(err(pos, "value length runs past the section end"));
        };
        if vlen > MAX_METADATA_BYTES {
            return Err(err(pos, "value length is over 16 MiB"));
        }
        let value = pos + 4..(pos + 4).saturating_add(vlen);
        if value.end > range.end {
            return Err(err(pos, "value runs past the section end"));
        }
        // The value's UTF-8 is checked when it is read and by
        // verification (spec §5): values can hold megabytes of model files,
        // and open stays proportional to the directory.
        pos = value.end;
        prev_key = Some(key.clone());
        entries.push(MetaEntry { key, value });
        idx += 1;
    }
    Ok(entries)
}

/// The little-endian u32 at `at`, when its 4 bytes end by `end`.
pub(super) fn read_len(bytes: &[u8], at: usize, end: usize) -> Option<usize> {
    let b = bytes.get(at..at.checked_add(4).filter(|&e| e <= end)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}
