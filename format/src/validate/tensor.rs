//! Tensor record checks (spec §7 step 6, per TensorRecord).

use core::ops::Range;
use std::collections::HashMap;

use zerocopy::little_endian::U64;

use crate::decode::code_bytes;
use crate::error::{FormatError, Place, TensorId};
use crate::layout::{
    TensorRecord, NONE, TENSOR_FLAG_QUALITY, TENSOR_FLAG_SCALE, TENSOR_FLAG_SLOT_L,
};
use crate::limits::{MAX_DIMS, MAX_NAME_LEN, MAX_STAGES, SLOT_L_DIMS};
use crate::{Dtype, ElemType, Encoding, Regime, Role, SectionKind};

use super::directory::{Refs, Site};
use super::*;

/// What a tensor record is checked against.
pub(super) struct TensorCx<'a, 'e> {
    pub(super) bytes: &'a [u8],
    pub(super) index: u32,
    pub(super) record_offset: usize,
    pub(super) strings: Range<usize>,
    pub(super) palettes: &'e [Palette],
    pub(super) bases: &'e [Basis],
    pub(super) earlier: &'e [Tensor],
}

pub(super) fn f32_field(v: f32) -> String {
    format!("{v}")
}

impl<'a> TensorCx<'a, '_> {
    pub(super) fn parse(
        &self,
        r: &TensorRecord,
        refs: &mut Refs<'_>,
        seen: &mut HashMap<&'a [u8], u32, foldhash::fast::RandomState>,
    ) -> Result<Tensor, FormatError> {
        let unnamed = TensorId {
            index: self.index,
            name: None,
        };
        reserved(
            Place::Tensor(unnamed),
            "reserved",
            self.record_offset + 132,
            &r.reserved,
        )?;
        let name = self.name(r)?;
        let name_bytes = &self.bytes[name.clone()];
        let name_str = core::str::from_utf8(name_bytes).unwrap_or("");
        if let Some(&first) = seen.get(name_bytes) {
            return Err(FormatError::NameDup {
                tensor: self.index,
                first,
                name: name_str.to_owned(),
            });
        }
        seen.insert(name_bytes, self.index);
        let id = || TensorId {
            index: self.index,
            name: Some(name_str.to_owned()),
        };
        let bad_enum = |field, value| FormatError::BadEnum {
            place: Place::Tensor(id()),
            field,
            value,
        };
        let dtype = Dtype::from_raw(r.dtype).ok_or_else(|| bad_enum("dtype", r.dtype))?;
        let role = Role::from_raw(r.role).ok_or_else(|| bad_enum("role", r.role))?;
        let regime = Regime::from_raw(r.regime).ok_or_else(|| bad_enum("regime", r.regime))?;
        let encoding =
            Encoding::from_raw(r.encoding).ok_or_else(|| bad_enum("encoding", r.encoding))?;
        if r.scale_elem != 0 && ElemType::from_raw(r.scale_elem).is_none() {
            return Err(bad_enum("scale_elem", r.scale_elem));
        }
        let shape = r.shape.map(|v: U64| v.get());
        let (n_rows, n_cols, numel) = self.shape(&id, r.ndims, shape)?;

        let fields = |field: &'static str, value: String, requirement: &'static str| {
            FormatError::TensorFields {
                tensor: id(),
                field,
                value,
                requirement,
            }
        };
        let place = |s: Site| match s {
            Site::Tensor(t) if t == self.index => Place::Tensor(id()),
            Site::Tensor(t) => Place::Tensor(TensorId {
                index: t,
                name: self
                    .earlier
                    .get(t as usize)
                    .and_then(|e| core::str::from_utf8(self.bytes.get(e.name.clone())?).ok())
                    .map(str::to_owned),
            }),
            Site::Palette(i) => Place::Palette(i),
            Site::Basis(i) => Place::Basis(i),
            Site::Fisher(i) => Place::Fisher(i),
        };
        let site = Site::Tensor(self.index);
        let mut t = Tensor {
            name,
            dtype,
            ndims: r.ndims,
            shape,
            n_rows,
            n_cols,
            numel,
            role,
            regime,
            encoding,
            data_section: r.data.get(),
            data: 0..0,
            stride: 0,
            scale: None,
            slot: None,
            quality: None,
            stages: [Stage::default(); MAX_STAGES],
            n_stages: 0,
        };
        let shape_err = |reason| FormatError::BadShape {
            tensor: id(),
            ndims: r.ndims,
            shape,
            reason,
        };
        let slot_scale = r.slot_scale.get();
        let q = [
            ("rho_median", r.rho_median.get()),
            ("rho_p5", r.rho_p5.get()),
            ("rho_min", r.rho_min.get()),
            ("rel_fro", r.rel_fro.get()),
        ];

        if encoding == Encoding::Raw {
            let hex = |v: u32| format!("{v:#x}");
            let checks: [(&'static str, u32, bool, bool); 6] = [
                ("n_stages", u32::from(r.n_stages), false, r.n_stages == 0),
                ("flags", u32::from(r.flags), false, r.flags == 0),
                (
                    "scale_elem",
                    u32::from(r.scale_elem),
                    false,
                    r.scale_elem == 0,
                ),
                ("scale", r.scale.get(), true, r.scale.get() == NONE),
                ("slot_l", r.slot_l.get(), true, r.slot_l.get() == NONE),
                ("basis", r.basis.get(), true, r.basis.get() == NONE),
            ];
            for (field, value, is_hex, ok) in checks {
                if !ok {
                    let value = if is_hex {
                        hex(value)
                    } else {
                        value.to_string()
                    };
                    return Err(fields(field, value, "a RAW tensor has n_stages, flags and scale_elem 0 and scale, slot_l, basis NONE"));
                }
            }
            for (s, p) in r.stage_palette.iter().enumerate() {
                if p.get() != NONE {
                    return Err(fields(
                        STAGE_FIELDS[s],
                        hex(p.get()),
                        "a RAW tensor has every stage_palette NONE",
                    ));
                }
            }
            if slot_scale.to_bits() != 0 {
                return Err(fields(
                    "slot_scale",
                    f32_field(slot_scale),
                    "a RAW tensor has slot_scale 0",
                ));
            }
            for (field, v) in q {
                if v.to_bits() != 0 {
                    return Err(fields(
                        field,
                        f32_field(v),
                        "a RAW tensor has quality fields 0",
                    ));
                }
            }
            t.data = refs.claim(r.data.get(), SectionKind::Raw, site, "data", place)?;
            let want = product(numel, dtype.size());
            if len_of(&t.data) != want {
                return Err(FormatError::RawLen {
                    tensor: id(),
                    section: r.data.get(),
                    length: u64_of(t.data.len()),
                    expected: want,
                });
            }
            return Ok(t);
        }

        // PALETTE
        if !dtype.is_encodable_float() {
            return Err(fields(
                "dtype",
                dtype.name().to_owned(),
                "a PALETTE tensor has dtype F16, BF16, F32 or F64",
            ));
        }
        if regime == Regime::Passthrough {
            return Err(fields(
                "regime",
                regime.name().to_owned(),
                "a PALETTE tensor is not PASSTHROUGH",
            ));
        }
        let known = TENSOR_FLAG_SCALE | TENSOR_FLAG_SLOT_L | TENSOR_FLAG_QUALITY;
        if r.flags & !known != 0 {
            return Err(fields(
                "flags",
                format!("{:#04x}", r.flags),
                "flag bits 3..7 are reserved",
            ));
        }
        let n_stages = usize::from(r.n_stages);
        if n_stages == 0 || n_stages > MAX_STAGES {
            return Err(fields(
                "n_stages",
                r.n_stages.to_string(),
                "a PALETTE tensor has 1..=4 stages",
            ));
        }
        for (s, p) in r.stage_palette.iter().enumerate().skip(n_stages) {
            if p.get() != NONE {
                return Err(fields(
                    STAGE_FIELDS[s],
                    format!("{:#x}", p.get()),
                    "stage_palette entries past n_stages are NONE",
                ));
            }
        }
        let mut stride = 0usize;
        for (s, p) in r.stage_palette.iter().take(n_stages).enumerate() {
            let pi = p.get();
            let Some(pal) = self.palettes.get(pi as usize) else {
                return Err(FormatError::BadIndex {
                    place: Place::Tensor(id()),
                    field: STAGE_FIELDS[s],
                    index: pi,
                    count: self.palettes.len() as u32,
                });
            };
            if pal.d > n_cols {
                return Err(FormatError::PaletteFit {
                    tensor: id(),
                    stage: s as u8,
                    palette: pi,
                    d: pal.d as u32,
                    n_cols: u64_of(n_cols),
                });
            }
            let cb = code_bytes(n_cols, pal.d, pal.bits)
                .ok_or_else(|| shape_err("code bytes per row overflow"))?;
            t.stages[s] = Stage {
                palette: pi,
                d: pal.d,
                bits: pal.bits,
                code_offset: stride,
                cb,
            };
            stride = stride
                .checked_add(cb)
                .ok_or_else(|| shape_err("code bytes per row overflow"))?;
        }
        t.n_stages = r.n_stages;
        t.stride = stride;
        t.data = refs.claim(r.data.get(), SectionKind::Entry, site, "data", place)?;
        let want = product(n_rows, stride);
        if len_of(&t.data) != want {
            return Err(FormatError::EntryLen {
                tensor: id(),
                section: r.data.get(),
                length: u64_of(t.data.len()),
                expected: want,
                n_rows: u64_of(n_rows),
                stride: u64_of(stride),
            });
        }

        if r.flags & TENSOR_FLAG_SCALE != 0 {
            let elem = ElemType::from_raw(r.scale_elem)
                .ok_or_else(|| bad_enum("scale_elem", r.scale_elem))?;
            let range = refs.claim(r.scale.get(), SectionKind::Scale, site, "scale", place)?;
            let want = product(n_rows, elem.size());
            if len_of(&range) != want {
                return Err(FormatError::ScaleLen {
                    tensor: id(),
                    section: r.scale.get(),
                    length: u64_of(range.len()),
                    expected: want,
                });
            }
            t.scale = Some(ScaleRef {
                section: r.scale.get(),
                range,
                elem,
            });
        } else if r.scale_elem != 0 {
            return Err(fields(
                "scale_elem",
                r.scale_elem.to_string(),
                "scale_elem is 0 without HAS_SCALE",
            ));
        } else if r.scale.get() != NONE {
            return Err(fields(
                "scale",
                format!("{:#x}", r.scale.get()),
                "scale is NONE without HAS_SCALE",
            ));
        }

        if r.flags & TENSOR_FLAG_SLOT_L != 0 {
            let bi = r.basis.get();
            let Some(basis) = self.bases.get(bi as usize) else {
                return Err(FormatError::BadIndex {
                    place: Place::Tensor(id()),
                    field: "basis",
                    index: bi,
                    count: self.bases.len() as u32,
                });
            };
            if basis.n_cols != n_cols {
                return Err(FormatError::BasisFit {
                    tensor: id(),
                    basis: bi,
                    basis_n_cols: basis.n_cols as u32,
                    n_cols: u64_of(n_cols),
                });
            }
            let range = refs.claim(r.slot_l.get(), SectionKind::SlotL, site, "slot_l", place)?;
            let want = product(n_rows, SLOT_L_DIMS);
            if len_of(&range) != want {
                return Err(FormatError::SlotLLen {
                    tensor: id(),
                    section: r.slot_l.get(),
                    length: u64_of(range.len()),
                    expected: want,
                });
            }
            if !slot_scale.is_finite() {
                return Err(fields(
                    "slot_scale",
                    f32_field(slot_scale),
                    "slot_scale is finite",
                ));
            }
            t.slot = Some(SlotRef {
                section: r.slot_l.get(),
                range,
                basis: bi,
                slot_scale,
            });
        } else if r.basis.get() != NONE {
            return Err(fields(
                "basis",
                format!("{:#x}", r.basis.get()),
                "basis is NONE without HAS_SLOT_L",
            ));
        } else if r.slot_l.get() != NONE {
            return Err(fields(
                "slot_l",
                format!("{:#x}", r.slot_l.get()),
                "slot_l is NONE without HAS_SLOT_L",
            ));
        } else if slot_scale.to_bits() != 0 {
            return Err(fields(
                "slot_scale",
                f32_field(slot_scale),
                "slot_scale is 0 without HAS_SLOT_L",
            ));
        }

        let bad_q = |field, value, requirement| FormatError::BadQuality {
            tensor: id(),
            field,
            value,
            requirement,
        };
        if r.flags & TENSOR_FLAG_QUALITY != 0 {
            for (field, v) in q {
                if !v.is_finite() {
                    return Err(bad_q(field, v, "must be finite"));
                }
            }
            for (field, v) in &q[..3] {
                if !(-1.0..=1.0).contains(v) {
                    return Err(bad_q(field, *v, "must lie in [-1, 1]"));
                }
            }
            if q[3].1 < 0.0 {
                return Err(bad_q("rel_fro", q[3].1, "must be >= 0"));
            }
            t.quality = Some(Quality {
                rho_median: q[0].1,
                rho_p5: q[1].1,
                rho_min: q[2].1,
                rel_fro: q[3].1,
            });
        } else {
            for (field, v) in q {
                if v.to_bits() != 0 {
                    return Err(bad_q(field, v, "must be 0 without HAS_QUALITY"));
                }
            }
        }
        Ok(t)
    }

    /// R-NAME-BOUNDS and R-NAME-UTF8; returns the name's file range.
    fn name(&self, r: &TensorRecord) -> Result<Range<usize>, FormatError> {
        let (off, len) = (r.name_off.get(), r.name_len.get());
        let strings_len = self.strings.len();
        let end = (off as usize).checked_add(len as usize);
        match end {
            Some(end) if len >= 1 && len as usize <= MAX_NAME_LEN && end <= strings_len => {
                let range = self.strings.start + off as usize..self.strings.start + end;
                if core::str::from_utf8(&self.bytes[range.clone()]).is_err() {
                    return Err(FormatError::NameUtf8 {
                        tensor: self.index,
                        offset: u64_of(range.start),
                    });
                }
                Ok(range)
            }
            _ => Err(FormatError::NameBounds {
                tensor: self.index,
                name_off: off,
                name_len: len,
                strings_len: u64_of(strings_len),
            }),
        }
    }

    /// R-SHAPE; returns `(n_rows, n_cols, numel)`.
    fn shape(
        &self,
        id: &dyn Fn() -> TensorId,
        ndims: u8,
        shape: [u64; MAX_DIMS],
    ) -> Result<(usize, usize, usize), FormatError> {
        let err = |reason| FormatError::BadShape {
            tensor: id(),
            ndims,
            shape,
            reason,
        };
        let nd = usize::from(ndims);
        if nd > MAX_DIMS {
            return Err(err("ndims is over 8"));
        }
        if shape[nd..].iter().any(|&v| v != 0) {
            return Err(err("entries past ndims must be 0"));
        }
        let (n_rows, n_cols) =
            crate::encode::matrix_dims(&shape[..nd]).ok_or_else(|| err("n_cols overflows u64"))?;
        let numel = n_rows
            .checked_mul(n_cols)
            .ok_or_else(|| err("numel overflows u64"))?;
        let fit = |v: u64| usize::try_from(v).map_err(|_| err("size does not fit in usize"));
        Ok((fit(n_rows)?, fit(n_cols)?, fit(numel)?))
    }
}

/// `a x b`, `None` past u64: a length that no section can have, so the
/// length rule (not R-SHAPE) rejects it, as the spec's unbounded arithmetic does.
pub(super) fn product(a: usize, b: usize) -> Option<u64> {
    u64_of(a).checked_mul(u64_of(b))
}

pub(super) fn len_of(r: &Range<usize>) -> Option<u64> {
    Some(u64_of(r.len()))
}

pub(super) const STAGE_FIELDS: [&str; MAX_STAGES] = [
    "stage_palette[0]",
    "stage_palette[1]",
    "stage_palette[2]",
    "stage_palette[3]",
];
