//! Adding objects: palettes, bases, FisherZ tables and tensors, each checked
//! completely before a byte is written.

use std::io::{Seek, Write};

use hhtld_format::encode::{
    matrix_dims, push_elem, push_stage_row, round_to_elem, stage_row_bytes,
};
use hhtld_format::layout::{
    BasisRecord, FisherRecord, PaletteRecord, TENSOR_FLAG_QUALITY, TENSOR_FLAG_SCALE,
    TENSOR_FLAG_SLOT_L,
};
use hhtld_format::limits::{CODE_BITS, MAX_DIMS, MAX_PALETTE_D, MAX_STAGES, SLOT_L_DIMS};
use hhtld_format::{ElemType, Encoding, Regime, SectionKind};
use zerocopy::little_endian::{F32, U16, U32};
use zerocopy::{FromZeros, IntoBytes};

use crate::error::{shorten, WriteError};
use crate::fisher::{check_table, fisher_z_table};

use super::*;

fn view(name: &str, shape: &[u64]) -> Result<View, WriteError> {
    if shape.len() > MAX_DIMS {
        return Err(WriteError::TooManyDims {
            name: shorten(name),
            ndims: shape.len(),
            max: MAX_DIMS,
        });
    }
    let overflow = || WriteError::NumelOverflow {
        name: shorten(name),
        shape: shape.to_vec(),
    };
    let (n_rows, n_cols) = matrix_dims(shape).ok_or_else(overflow)?;
    let numel = n_rows.checked_mul(n_cols).ok_or_else(overflow)?;
    Ok(View {
        n_rows,
        n_cols,
        numel,
    })
}

fn check_finite(
    what: impl Fn() -> String,
    values: &[f32],
    elem: ElemType,
) -> Result<(), WriteError> {
    match values
        .iter()
        .position(|&v| !round_to_elem(v, elem).is_finite())
    {
        None => Ok(()),
        Some(index) => Err(WriteError::NonFinite {
            what: what(),
            index,
            value: values[index],
            elem,
        }),
    }
}

fn check_len(what: impl Fn() -> String, expected: u64, got: usize) -> Result<(), WriteError> {
    if expected == got as u64 {
        Ok(())
    } else {
        Err(WriteError::Length {
            what: what(),
            expected,
            got: got as u64,
        })
    }
}

impl<W: Write + Seek> Writer<W> {
    // ---- objects ---------------------------------------------------------

    /// Adds a palette: `k` entries of `d` values rounded to `elem`, padded
    /// with zero entries to `2^bits`.
    ///
    /// # Errors
    /// [`WriteError::CodeBits`], [`WriteError::PaletteK`],
    /// [`WriteError::PaletteD`], [`WriteError::Length`] (values not `k * d`),
    /// [`WriteError::NonFinite`] (also for values that overflow `elem`),
    /// [`WriteError::Limit`].
    pub fn add_palette(&mut self, p: PaletteSpec<'_>) -> Result<PaletteId, WriteError> {
        self.check_usable()?;
        let index = self.palettes.len();
        if !CODE_BITS.contains(&p.bits) {
            return Err(WriteError::CodeBits {
                palette: index,
                bits: p.bits,
            });
        }
        let slots = 1usize << p.bits;
        if p.k == 0 || p.k > slots {
            return Err(WriteError::PaletteK {
                palette: index,
                k: p.k,
                bits: p.bits,
                max: slots,
            });
        }
        if p.d == 0 || p.d > MAX_PALETTE_D {
            return Err(WriteError::PaletteD {
                palette: index,
                d: p.d,
                max: MAX_PALETTE_D,
            });
        }
        // k <= 256 and d <= 65536: no overflow.
        check_len(
            || format!("palette {index} values (k = {} x d = {})", p.k, p.d),
            (p.k * p.d) as u64,
            p.values.len(),
        )?;
        check_finite(|| format!("palette {index}"), p.values, p.elem)?;
        self.check_caps(0, 1, 0, 0, 1)?;

        self.begin_section();
        let mut buf = Vec::with_capacity(CHUNK.min(p.values.len() * 4));
        let mut stored = Vec::with_capacity(p.values.len());
        for &v in p.values {
            stored.push(push_elem(v, p.elem, &mut buf));
            self.emit_buf(&mut buf, false)?;
        }
        let pad = (slots - p.k) * p.d * p.elem.size();
        buf.resize(buf.len() + pad, 0);
        self.emit_buf(&mut buf, true)?;
        let bytes = self.written - self.section_start;
        let section = self.end_section(SectionKind::Palette)?;

        let mut rec = PaletteRecord::new_zeroed();
        rec.section = U32::new(section);
        rec.d = U32::new(p.d as u32);
        rec.k = U16::new(p.k as u16);
        rec.bits = p.bits;
        rec.elem = p.elem.to_raw();
        self.palettes.push(rec);
        self.palette_meta.push(PaletteMeta {
            k: p.k,
            d: p.d,
            bits: p.bits,
            stored: Some(stored),
            fisher: None,
            bytes,
        });
        Ok(PaletteId {
            writer: self.tag,
            index: index as u32,
        })
    }

    /// Adds a SlotL basis: 8 rows of `n_cols` values (`8 * n_cols`,
    /// row-major), rounded to `elem`.
    ///
    /// # Errors
    /// [`WriteError::BasisNCols`], [`WriteError::Length`],
    /// [`WriteError::NonFinite`], [`WriteError::Limit`].
    pub fn add_basis(
        &mut self,
        n_cols: usize,
        elem: ElemType,
        values: &[f32],
    ) -> Result<BasisId, WriteError> {
        self.check_usable()?;
        let index = self.bases.len();
        if n_cols == 0 || u32::try_from(n_cols).is_err() {
            return Err(WriteError::BasisNCols {
                basis: index,
                n_cols,
            });
        }
        check_len(
            || format!("basis {index} values ({SLOT_L_DIMS} x n_cols = {n_cols})"),
            SLOT_L_DIMS as u64 * n_cols as u64,
            values.len(),
        )?;
        check_finite(|| format!("basis {index}"), values, elem)?;
        self.check_caps(0, 0, 1, 0, 1)?;

        self.begin_section();
        let mut buf = Vec::with_capacity(CHUNK.min(values.len() * 4));
        for &v in values {
            push_elem(v, elem, &mut buf);
            self.emit_buf(&mut buf, false)?;
        }
        self.emit_buf(&mut buf, true)?;
        self.basis_bytes.push(self.written - self.section_start);
        let section = self.end_section(SectionKind::Basis)?;

        let mut rec = BasisRecord::new_zeroed();
        rec.section = U32::new(section);
        rec.n_cols = U32::new(n_cols as u32);
        rec.rows = U16::new(SLOT_L_DIMS as u16);
        rec.elem = elem.to_raw();
        self.bases.push(rec);
        Ok(BasisId {
            writer: self.tag,
            index: index as u32,
        })
    }

    /// Computes and adds the FisherZ table of `palette` from its values as
    /// stored (spec §4, see [`crate::fisher`]). The writer keeps a copy of
    /// each palette's stored values for this until the table is added.
    ///
    /// # Errors
    /// [`WriteError::UnknownPalette`], [`WriteError::FisherDuplicate`],
    /// [`WriteError::Limit`].
    pub fn add_fisher_z(&mut self, palette: PaletteId) -> Result<(), WriteError> {
        self.check_usable()?;
        let meta = self.palette(palette)?;
        if meta.fisher.is_some() {
            return Err(WriteError::FisherDuplicate {
                palette: palette.index,
            });
        }
        let stored = meta.stored.as_deref().unwrap_or(&[]);
        let (gamma, table) = fisher_z_table(stored, meta.k, meta.d).map_err(|e| match e {
            WriteError::FisherInput { reason, .. } => WriteError::FisherInput {
                palette: palette.index,
                reason,
            },
            other => other,
        })?;
        self.add_fisher_z_table(palette, gamma, &table)
    }

    /// Adds an explicit FisherZ table for `palette`: `k x k` values in
    /// `[-127, 127]`, symmetric, `rho(i, j) = tanh(gamma * table[i * k + j])`.
    ///
    /// # Errors
    /// [`WriteError::UnknownPalette`], [`WriteError::FisherDuplicate`],
    /// [`WriteError::FisherGamma`], [`WriteError::Length`],
    /// [`WriteError::FisherTable`], [`WriteError::Limit`].
    pub fn add_fisher_z_table(
        &mut self,
        palette: PaletteId,
        gamma: f32,
        table: &[i8],
    ) -> Result<(), WriteError> {
        self.check_usable()?;
        let meta = self.palette(palette)?;
        if meta.fisher.is_some() {
            return Err(WriteError::FisherDuplicate {
                palette: palette.index,
            });
        }
        check_table(palette.index, meta.k, gamma, table)?;
        self.check_caps(0, 0, 0, 1, 1)?;

        self.begin_section();
        self.emit(table.as_bytes())?;
        let section = self.end_section(SectionKind::FisherZ)?;
        let mut rec = FisherRecord::new_zeroed();
        rec.section = U32::new(section);
        rec.palette = U32::new(palette.index);
        rec.gamma = F32::new(gamma);
        let fisher = self.fishers.len() as u32;
        self.fishers.push(rec);
        let meta = &mut self.palette_meta[palette.index as usize];
        meta.fisher = Some(fisher);
        meta.stored = None;
        Ok(())
    }

    /// Adds a tensor stored as is.
    ///
    /// # Errors
    /// Name errors ([`WriteError::EmptyName`], [`WriteError::NameTooLong`],
    /// [`WriteError::DuplicateName`]), [`WriteError::TooManyDims`],
    /// [`WriteError::NumelOverflow`], [`WriteError::Length`] (bytes not
    /// `numel * dtype size`), [`WriteError::Limit`].
    pub fn add_raw_tensor(&mut self, t: RawTensor<'_>) -> Result<(), WriteError> {
        self.check_usable()?;
        let h = t.header;
        self.check_name(h.name)?;
        let v = view(h.name, h.shape)?;
        let expected = v.numel.checked_mul(h.dtype.size() as u64).ok_or_else(|| {
            WriteError::NumelOverflow {
                name: shorten(h.name),
                shape: h.shape.to_vec(),
            }
        })?;
        check_len(
            || {
                format!(
                    "tensor '{}' raw bytes ({} x {})",
                    shorten(h.name),
                    v.numel,
                    h.dtype
                )
            },
            expected,
            t.bytes.len(),
        )?;
        self.check_caps(1, 0, 0, 0, 1)?;

        self.begin_section();
        self.emit(t.bytes)?;
        let data = self.end_section(SectionKind::Raw)?;
        let name = self.push_name(h.name);
        let mut rec = Self::base_record(name, &h, Encoding::Raw);
        rec.data = U32::new(data);
        self.push_tensor(rec, &v, expected, Vec::new(), None, None);
        Ok(())
    }

    /// Adds a palette-encoded tensor: its codes (ENTRY), and when given its
    /// scales (SCALE) and SlotL coefficients (SLOT_L).
    ///
    /// # Errors
    /// Name and shape errors as for [`Writer::add_raw_tensor`];
    /// [`WriteError::NotEncodable`], [`WriteError::PassthroughEncoded`],
    /// [`WriteError::StageCount`], [`WriteError::UnknownPalette`],
    /// [`WriteError::DoesNotFit`], [`WriteError::CodeCount`],
    /// [`WriteError::CodeOutOfRange`], [`WriteError::Length`] (scales or
    /// SlotL rows not `n_rows`), [`WriteError::NonFinite`] (scales, slot
    /// scale), [`WriteError::UnknownBasis`], [`WriteError::BasisMismatch`],
    /// [`WriteError::Quality`], [`WriteError::Limit`].
    pub fn add_encoded_tensor(&mut self, t: EncodedTensor<'_>) -> Result<(), WriteError> {
        self.check_usable()?;
        let h = t.header;
        self.check_name(h.name)?;
        let name = || shorten(h.name);
        let v = view(h.name, h.shape)?;
        if !h.dtype.is_encodable_float() {
            return Err(WriteError::NotEncodable {
                name: name(),
                dtype: h.dtype,
            });
        }
        if h.regime == Regime::Passthrough {
            return Err(WriteError::PassthroughEncoded { name: name() });
        }
        if t.stages.is_empty() || t.stages.len() > MAX_STAGES {
            return Err(WriteError::StageCount {
                name: name(),
                stages: t.stages.len(),
                max: MAX_STAGES,
            });
        }
        // Per stage: (n_sub, bits, code bytes per row).
        let mut plan = Vec::with_capacity(t.stages.len());
        let mut stride = 0u64;
        for (s, st) in t.stages.iter().enumerate() {
            let meta = self.palette(st.palette)?;
            let (k, d, bits) = (meta.k, meta.d, meta.bits);
            if d as u64 > v.n_cols {
                return Err(WriteError::DoesNotFit {
                    name: name(),
                    stage: s,
                    d,
                    n_cols: v.n_cols,
                });
            }
            let ns = v.n_cols.div_ceil(d as u64);
            // ns <= n_cols, so n_rows * ns <= numel: no overflow.
            let expected = v.n_rows * ns;
            if expected != st.codes.len() as u64 {
                return Err(WriteError::CodeCount {
                    name: name(),
                    stage: s,
                    n_rows: v.n_rows,
                    n_sub: ns,
                    expected,
                    got: st.codes.len() as u64,
                });
            }
            if let Some(i) = st.codes.iter().position(|&c| usize::from(c) >= k) {
                let i = i as u64;
                return Err(WriteError::CodeOutOfRange {
                    name: name(),
                    stage: s,
                    row: i / ns,
                    position: i % ns,
                    code: st.codes[i as usize],
                    k,
                });
            }
            // No multiplication: n_cols may be near u64::MAX when n_rows is 0.
            let cb = usize::try_from(ns).map(|ns| stage_row_bytes(ns, bits) as u64);
            stride = cb
                .ok()
                .and_then(|cb| stride.checked_add(cb))
                .ok_or_else(|| WriteError::SizeOverflow {
                    name: name(),
                    what: "ENTRY row stride",
                })?;
            plan.push((ns as usize, bits));
        }
        if let Some((elem, values)) = t.scale {
            check_len(
                || format!("tensor '{}' scales (n_rows)", name()),
                v.n_rows,
                values.len(),
            )?;
            check_finite(|| format!("tensor '{}' scales", name()), values, elem)?;
        }
        if let Some(sl) = &t.slot_l {
            let basis_n_cols = self.basis_n_cols(sl.basis)?;
            if basis_n_cols != v.n_cols {
                return Err(WriteError::BasisMismatch {
                    name: name(),
                    basis_n_cols,
                    n_cols: v.n_cols,
                });
            }
            check_len(
                || format!("tensor '{}' SlotL coefficient rows (n_rows)", name()),
                v.n_rows,
                sl.coef.len(),
            )?;
            check_finite(
                || format!("tensor '{}' slot_scale", name()),
                &[sl.scale],
                ElemType::F32,
            )?;
        }
        if let Some(q) = &t.quality {
            let rho = "[-1, 1]";
            for (field, value, range) in [
                ("rho_median", q.rho_median, rho),
                ("rho_p5", q.rho_p5, rho),
                ("rho_min", q.rho_min, rho),
                ("rel_fro", q.rel_fro, "[0, inf)"),
            ] {
                let ok = value.is_finite()
                    && if field == "rel_fro" {
                        value >= 0.0
                    } else {
                        (-1.0..=1.0).contains(&value)
                    };
                if !ok {
                    return Err(WriteError::Quality {
                        name: name(),
                        field,
                        value,
                        range,
                    });
                }
            }
        }
        let extra = usize::from(t.scale.is_some()) + usize::from(t.slot_l.is_some());
        self.check_caps(1, 0, 0, 0, 1 + extra)?;

        // Everything is checked; write. `n_rows` fits usize: stage 0 holds
        // n_rows * n_sub >= n_rows codes in memory.
        let n_rows = v.n_rows as usize;
        let mut own = 0u64;
        self.begin_section();
        let mut buf = Vec::with_capacity(CHUNK);
        for r in 0..n_rows {
            for (st, &(ns, bits)) in t.stages.iter().zip(&plan) {
                push_stage_row(&st.codes[r * ns..(r + 1) * ns], bits, &mut buf);
            }
            self.emit_buf(&mut buf, false)?;
        }
        self.emit_buf(&mut buf, true)?;
        own += self.written - self.section_start;
        let data = self.end_section(SectionKind::Entry)?;

        let mut scale_sec = None;
        if let Some((elem, values)) = t.scale {
            self.begin_section();
            for &x in values {
                push_elem(x, elem, &mut buf);
                self.emit_buf(&mut buf, false)?;
            }
            self.emit_buf(&mut buf, true)?;
            own += self.written - self.section_start;
            scale_sec = Some((self.end_section(SectionKind::Scale)?, elem));
        }
        let mut slot_sec = None;
        if let Some(sl) = &t.slot_l {
            self.begin_section();
            self.emit(sl.coef.as_bytes())?;
            own += self.written - self.section_start;
            slot_sec = Some(self.end_section(SectionKind::SlotL)?);
        }

        let name_ref = self.push_name(h.name);
        let mut rec = Self::base_record(name_ref, &h, Encoding::Palette);
        rec.n_stages = t.stages.len() as u8;
        rec.data = U32::new(data);
        let mut flags = 0u8;
        if let Some((sec, elem)) = scale_sec {
            flags |= TENSOR_FLAG_SCALE;
            rec.scale = U32::new(sec);
            rec.scale_elem = elem.to_raw();
        }
        if let (Some(sec), Some(sl)) = (slot_sec, &t.slot_l) {
            flags |= TENSOR_FLAG_SLOT_L;
            rec.slot_l = U32::new(sec);
            rec.basis = U32::new(sl.basis.index);
            rec.slot_scale = F32::new(sl.scale);
        }
        if let Some(q) = &t.quality {
            flags |= TENSOR_FLAG_QUALITY;
            rec.rho_median = F32::new(q.rho_median);
            rec.rho_p5 = F32::new(q.rho_p5);
            rec.rho_min = F32::new(q.rho_min);
            rec.rel_fro = F32::new(q.rel_fro);
        }
        rec.flags = flags;
        let mut palettes = Vec::with_capacity(t.stages.len());
        for (dst, st) in rec.stage_palette.iter_mut().zip(t.stages) {
            *dst = U32::new(st.palette.index);
            if !palettes.contains(&st.palette.index) {
                palettes.push(st.palette.index);
            }
        }
        let basis = t.slot_l.map(|s| s.basis.index);
        self.push_tensor(rec, &v, own, palettes, basis, t.quality);
        Ok(())
    }

    /// Records a written tensor and what the size report needs of it. The
    /// name, role, regime and encoding are read back from `rec` (and the
    /// name bytes it points at), which `base_record` filled from the typed
    /// values (so `from_raw` cannot miss; the fallbacks are never taken).
    fn push_tensor(
        &mut self,
        rec: TensorRecord,
        v: &View,
        own_bytes: u64,
        palettes: Vec<u32>,
        basis: Option<u32>,
        quality: Option<Quality>,
    ) {
        let (off, len) = (rec.name_off.get() as usize, rec.name_len.get() as usize);
        let name = self
            .strings
            .get(off..off + len)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.tensor_info.push(TensorAccount {
            line: TensorBytes {
                name,
                role: Role::from_raw(rec.role).unwrap_or(Role::Other),
                regime: Regime::from_raw(rec.regime).unwrap_or(Regime::Passthrough),
                encoding: Encoding::from_raw(rec.encoding).unwrap_or(Encoding::Raw),
                numel: v.numel,
                own_bytes,
                shared_bytes: 0,
                quality,
            },
            palettes,
            basis,
        });
        self.tensors.push(rec);
    }
}
