//! The normative row decode of spec §4, as one allocation-free kernel shared
//! by the reader (to serve rows) and the writer (to measure what it wrote).
//!
//! Codes index palettes without per-code bounds checks: a stored palette
//! always has `2^bits` entries (spec layout rule), so the kernel views it as
//! `&[[T; D]; 256]` or `&[[T; D]; 16]` and a `u8` or nibble index is in range
//! by construction. Lengths are checked once per row.

use half::{bf16, f16};
use thiserror::Error;

use crate::limits::SLOT_L_DIMS;

mod prepared;
pub use prepared::{KernelOut, Prepared, RowScales, StageSpec};

/// `x` rounded to bf16 bits, to nearest with ties to even (as
/// `half::bf16::from_f32`); NaN keeps its sign and top payload bits, made
/// quiet. Branch-free, so loops over it vectorise.
#[inline(always)]
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16;
    if b & 0x7FFF_FFFF > 0x7F80_0000 {
        (b >> 16) as u16 | 0x0040
    } else {
        rounded
    }
}

/// A typed slice of stored elements (palette entries or basis rows).
#[derive(Debug, Clone, Copy)]
pub enum ElemSlice<'a> {
    /// IEEE binary32 elements.
    F32(&'a [f32]),
    /// IEEE binary16 elements.
    F16(&'a [f16]),
    /// bfloat16 elements.
    Bf16(&'a [bf16]),
}

impl ElemSlice<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            ElemSlice::F32(s) => s.len(),
            ElemSlice::F16(s) => s.len(),
            ElemSlice::Bf16(s) => s.len(),
        }
    }
    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Element `i` converted exactly to f32, or `None` past the end.
    pub fn get_f32(&self, i: usize) -> Option<f32> {
        match self {
            ElemSlice::F32(s) => s.get(i).copied(),
            ElemSlice::F16(s) => s.get(i).map(|v| v.to_f32()),
            ElemSlice::Bf16(s) => s.get(i).map(|v| v.to_f32()),
        }
    }
    /// The element type.
    pub fn elem(&self) -> crate::ElemType {
        match self {
            ElemSlice::F32(_) => crate::ElemType::F32,
            ElemSlice::F16(_) => crate::ElemType::F16,
            ElemSlice::Bf16(_) => crate::ElemType::Bf16,
        }
    }
}

/// One stage of one row: the stage's palette and this row's packed codes.
#[derive(Debug, Clone, Copy)]
pub struct StageRow<'a> {
    /// All `2^bits * d` stored palette elements, entry-major.
    pub palette: ElemSlice<'a>,
    /// Palette entry width.
    pub d: usize,
    /// Code width, 4 or 8.
    pub bits: u8,
    /// This row's `code_bytes(n_cols, d, bits)` packed code bytes.
    pub codes: &'a [u8],
}

/// The SlotL residual of one row.
#[derive(Debug, Clone, Copy)]
pub struct SlotRow<'a> {
    /// The row's 8 coefficients.
    pub coef: &'a [i8; SLOT_L_DIMS],
    /// The basis, `8 * n_cols` elements, row-major.
    pub basis: ElemSlice<'a>,
    /// The tensor's coefficient scale.
    pub slot_scale: f32,
}

/// A row-level length mismatch handed to [`decode_row`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KernelError {
    /// Code width other than 4 or 8.
    #[error("stage {stage}: code width {bits} is not 4 or 8")]
    Bits {
        /// Stage index.
        stage: usize,
        /// The width given.
        bits: u8,
    },
    /// `d` is 0 or wider than the row.
    #[error("stage {stage}: palette width d = {d} does not fit a row of {n_cols} columns")]
    Width {
        /// Stage index.
        stage: usize,
        /// The entry width.
        d: usize,
        /// The row width.
        n_cols: usize,
    },
    /// Palette slice is not `2^bits * d` long.
    #[error("stage {stage}: palette has {got} elements, expected {expected}")]
    PaletteLen {
        /// Stage index.
        stage: usize,
        /// `2^bits * d`.
        expected: usize,
        /// Actual.
        got: usize,
    },
    /// Codes slice is not `code_bytes` long.
    #[error("stage {stage}: row has {got} code bytes, expected {expected}")]
    CodesLen {
        /// Stage index.
        stage: usize,
        /// Expected bytes.
        expected: usize,
        /// Actual.
        got: usize,
    },
    /// Basis slice is not `8 * n_cols` long.
    #[error("SlotL basis has {got} elements, expected {expected}")]
    BasisLen {
        /// `8 * n_cols`.
        expected: usize,
        /// Actual.
        got: usize,
    },
}

/// Sub-vectors per row: `ceil(n_cols / d)`; 0 when `d` is 0.
pub fn n_sub(n_cols: usize, d: usize) -> usize {
    if d == 0 {
        0
    } else {
        n_cols.div_ceil(d)
    }
}

/// Packed code bytes of one stage of one row: `ceil(n_sub * bits / 8)`, or
/// `None` on overflow or a width other than 4 or 8.
pub fn code_bytes(n_cols: usize, d: usize, bits: u8) -> Option<usize> {
    let n = n_sub(n_cols, d);
    match bits {
        8 => Some(n),
        4 => Some(n.div_ceil(2)),
        _ => None,
    }
}

/// Code `j` of a packed stage (spec §4 "ENTRY layout"), or `None` past the end.
pub fn unpack_code(codes: &[u8], bits: u8, j: usize) -> Option<u8> {
    match bits {
        8 => codes.get(j).copied(),
        4 => codes.get(j / 2).map(|b| (b >> ((j & 1) * 4)) & 0x0F),
        _ => None,
    }
}

trait Elem: Copy {
    fn f(self) -> f32;
}
impl Elem for f32 {
    #[inline(always)]
    fn f(self) -> f32 {
        self
    }
}
impl Elem for f16 {
    #[inline(always)]
    fn f(self) -> f32 {
        self.to_f32()
    }
}
impl Elem for bf16 {
    // The exact widening (bf16 is the top half of an f32). `half` also
    // quiets signalling NaNs here, a compare-and-blend per element that
    // doubled the cost of a stage; every kernel use adds or multiplies the
    // value before storing it, which quiets a NaN the same way.
    #[inline(always)]
    fn f(self) -> f32 {
        f32::from_bits(u32::from(self.to_bits()) << 16)
    }
}

/// Decodes one row into `out` (`out.len()` is the row width) exactly as spec
/// §4 defines, overwriting `out`.
///
/// ```
/// use hhtld_format::decode::{decode_row, ElemSlice, StageRow};
/// // A 4-bit scalar palette (d = 1) with entries 0.0, 0.5, 1.0, ... padded to 16.
/// let pal: Vec<f32> = (0..16).map(|e| e as f32 * 0.5).collect();
/// let codes = [0x21u8, 0x03]; // codes 1, 2, 3 (low nibble first)
/// let mut out = [0f32; 3];
/// let stage = StageRow { palette: ElemSlice::F32(&pal), d: 1, bits: 4, codes: &codes };
/// decode_row(&[stage], Some(2.0), None, &mut out).unwrap();
/// assert_eq!(out, [1.0, 2.0, 3.0]);
/// ```
pub fn decode_row(
    stages: &[StageRow<'_>],
    scale: Option<f32>,
    slot: Option<&SlotRow<'_>>,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let n_cols = out.len();
    for (stage, st) in stages.iter().enumerate() {
        check_stage(stage, st, n_cols)?;
    }
    check_slot(slot, n_cols)?;
    if decode_fused(stages, scale.unwrap_or(1.0), out) {
        if let Some(sl) = slot {
            add_slot_any(sl, out);
        }
        return Ok(());
    }
    out.fill(0.0);
    for st in stages {
        match st.palette {
            ElemSlice::F32(p) => add_stage(p, st.d, st.bits, st.codes, out),
            ElemSlice::F16(p) => add_stage(p, st.d, st.bits, st.codes, out),
            ElemSlice::Bf16(p) => add_stage(p, st.d, st.bits, st.codes, out),
        }
    }
    if let Some(s) = scale {
        for v in out.iter_mut() {
            *v *= s;
        }
    }
    if let Some(sl) = slot {
        add_slot_any(sl, out);
    }
    Ok(())
}

/// A SlotL basis must hold `8 x n_cols` elements.
fn check_slot(slot: Option<&SlotRow<'_>>, n_cols: usize) -> Result<(), KernelError> {
    match slot {
        Some(sl) if sl.basis.len() != SLOT_L_DIMS * n_cols => Err(KernelError::BasisLen {
            expected: SLOT_L_DIMS * n_cols,
            got: sl.basis.len(),
        }),
        _ => Ok(()),
    }
}

fn add_slot_any(sl: &SlotRow<'_>, out: &mut [f32]) {
    match sl.basis {
        ElemSlice::F32(b) => add_slot(sl.coef, b, sl.slot_scale, out),
        ElemSlice::F16(b) => add_slot(sl.coef, b, sl.slot_scale, out),
        ElemSlice::Bf16(b) => add_slot(sl.coef, b, sl.slot_scale, out),
    }
}

/// One pass over the row for one or two 8-bit stages of the same width
/// (1, 2, 4, 8 or 16) and element type, which covers the built-in VQ
/// profiles: no zero fill, no read-modify-write per stage, the scale
/// applied in the same pass. The additions are the spec's, in its order
/// (`(0 + P0) + P1`), and a missing scale is a multiplication by 1, which
/// changes no value; so the result is bit-identical to the staged path.
/// Returns `false`, having written nothing, for any other shape.
fn decode_fused(stages: &[StageRow<'_>], scale: f32, out: &mut [f32]) -> bool {
    match stages {
        [a] if a.bits == 8 => match a.palette {
            ElemSlice::F32(p) => fused_d(a.d, [p], [a.codes], scale, out),
            ElemSlice::F16(p) => fused_d(a.d, [p], [a.codes], scale, out),
            ElemSlice::Bf16(p) => fused_d(a.d, [p], [a.codes], scale, out),
        },
        [a, b] if a.bits == 8 && b.bits == 8 && a.d == b.d => match (a.palette, b.palette) {
            (ElemSlice::F32(p), ElemSlice::F32(q)) => {
                fused_d(a.d, [p, q], [a.codes, b.codes], scale, out)
            }
            (ElemSlice::F16(p), ElemSlice::F16(q)) => {
                fused_d(a.d, [p, q], [a.codes, b.codes], scale, out)
            }
            (ElemSlice::Bf16(p), ElemSlice::Bf16(q)) => {
                fused_d(a.d, [p, q], [a.codes, b.codes], scale, out)
            }
            _ => false,
        },
        _ => false,
    }
}

fn fused_d<T: Elem, const S: usize>(
    d: usize,
    pals: [&[T]; S],
    codes: [&[u8]; S],
    scale: f32,
    out: &mut [f32],
) -> bool {
    match d {
        1 => fused::<T, 1, S>(pals, codes, scale, out),
        2 => fused::<T, 2, S>(pals, codes, scale, out),
        4 => fused::<T, 4, S>(pals, codes, scale, out),
        8 => fused::<T, 8, S>(pals, codes, scale, out),
        16 => fused::<T, 16, S>(pals, codes, scale, out),
        _ => false,
    }
}

/// A 256-entry palette as entries of `D`, or `None` when it is not `256 * D` long.
fn entries<T, const D: usize>(s: &[T]) -> Option<&[[T; D]; 256]> {
    <&[[T; D]; 256]>::try_from(s.as_chunks::<D>().0).ok()
}

/// `S` (1 or 2) stages of width `D`, 8-bit codes, in one pass.
fn fused<T: Elem, const D: usize, const S: usize>(
    pals: [&[T]; S],
    codes: [&[u8]; S],
    scale: f32,
    out: &mut [f32],
) -> bool {
    // Stage 0 and the last stage (the same one when S = 1).
    let (Some(p), Some(q)) = (entries::<T, D>(pals[0]), entries::<T, D>(pals[S - 1])) else {
        return false; // unreachable: check_stage verified 256 * D elements
    };
    let (full, tail) = out.as_chunks_mut::<D>();
    let n_full = full.len();
    if S == 1 {
        one_stage(p, codes[0], scale, full);
    } else {
        two_stages(p, q, codes[0], codes[S - 1], scale, full);
    }
    if !tail.is_empty() {
        // The last, partial sub-vector: the head of each entry.
        tail.fill(0.0);
        for (pal, c) in [p, q][..S].iter().zip(codes) {
            if let Some(&i) = c.get(n_full) {
                add_entry(tail, &pal[i as usize]);
            }
        }
        for v in tail.iter_mut() {
            *v *= scale;
        }
    }
    true
}

// Plain slice and array parameters (not arrays of slices) keep the loops
// below free of aliasing doubts, so LLVM vectorises each entry.
#[inline(always)]
fn one_stage<T: Elem, const D: usize>(
    p: &[[T; D]; 256],
    a: &[u8],
    scale: f32,
    out: &mut [[f32; D]],
) {
    for (o, &i) in out.iter_mut().zip(a) {
        let e = &p[i as usize];
        for k in 0..D {
            o[k] = (0.0 + e[k].f()) * scale;
        }
    }
}

#[inline(always)]
fn two_stages<T: Elem, const D: usize>(
    p: &[[T; D]; 256],
    q: &[[T; D]; 256],
    a: &[u8],
    b: &[u8],
    scale: f32,
    out: &mut [[f32; D]],
) {
    for ((o, &i), &j) in out.iter_mut().zip(a).zip(b) {
        let (e, f) = (&p[i as usize], &q[j as usize]);
        for k in 0..D {
            o[k] = (0.0 + e[k].f() + f[k].f()) * scale;
        }
    }
}

fn check_stage(stage: usize, st: &StageRow<'_>, n_cols: usize) -> Result<(), KernelError> {
    if st.bits != 4 && st.bits != 8 {
        return Err(KernelError::Bits {
            stage,
            bits: st.bits,
        });
    }
    if st.d == 0 || st.d > n_cols {
        return Err(KernelError::Width {
            stage,
            d: st.d,
            n_cols,
        });
    }
    let expected = (1usize << st.bits) * st.d;
    if st.palette.len() != expected {
        return Err(KernelError::PaletteLen {
            stage,
            expected,
            got: st.palette.len(),
        });
    }
    // Cannot overflow: bits is 4 or 8 and n_sub <= n_cols.
    let expected = code_bytes(n_cols, st.d, st.bits).unwrap_or(usize::MAX);
    if st.codes.len() != expected {
        return Err(KernelError::CodesLen {
            stage,
            expected,
            got: st.codes.len(),
        });
    }
    Ok(())
}

/// Dispatches to a monomorphised loop for the common widths.
fn add_stage<T: Elem>(pal: &[T], d: usize, bits: u8, codes: &[u8], out: &mut [f32]) {
    match (d, bits) {
        (1, 8) => stage8::<T, 1>(pal, codes, out),
        (2, 8) => stage8::<T, 2>(pal, codes, out),
        (4, 8) => stage8::<T, 4>(pal, codes, out),
        (8, 8) => stage8::<T, 8>(pal, codes, out),
        (16, 8) => stage8::<T, 16>(pal, codes, out),
        (1, 4) => stage4::<T, 1>(pal, codes, out),
        (2, 4) => stage4::<T, 2>(pal, codes, out),
        (4, 4) => stage4::<T, 4>(pal, codes, out),
        (8, 4) => stage4::<T, 8>(pal, codes, out),
        _ => stage_any(pal, d, bits, codes, out),
    }
}

#[inline(always)]
fn add_entry<T: Elem>(dst: &mut [f32], entry: &[T]) {
    for (o, e) in dst.iter_mut().zip(entry) {
        *o += e.f();
    }
}

fn stage8<T: Elem, const D: usize>(pal: &[T], codes: &[u8], out: &mut [f32]) {
    let Ok(pal) = <&[[T; D]; 256]>::try_from(pal.as_chunks::<D>().0) else {
        return; // unreachable: check_stage verified 256 * D elements
    };
    let (full, tail) = out.as_chunks_mut::<D>();
    for (o, &c) in full.iter_mut().zip(codes) {
        let e = &pal[c as usize];
        for i in 0..D {
            o[i] += e[i].f();
        }
    }
    if let (false, Some(&c)) = (tail.is_empty(), codes.get(full.len())) {
        add_entry(tail, &pal[c as usize]);
    }
}

fn stage4<T: Elem, const D: usize>(pal: &[T], codes: &[u8], out: &mut [f32]) {
    let Ok(pal) = <&[[T; D]; 16]>::try_from(pal.as_chunks::<D>().0) else {
        return; // unreachable: check_stage verified 16 * D elements
    };
    let (full, _) = out.as_chunks_mut::<D>();
    let n_full = full.len();
    let mut pairs = full.chunks_exact_mut(2);
    for (pair, &b) in (&mut pairs).zip(codes) {
        let (lo, hi) = (&pal[(b & 0x0F) as usize], &pal[(b >> 4) as usize]);
        for i in 0..D {
            pair[0][i] += lo[i].f();
            pair[1][i] += hi[i].f();
        }
    }
    // At most one full sub-vector (odd count) and the partial tail remain.
    let mut j = n_full - pairs.into_remainder().len();
    if n_full % 2 == 1 {
        if let (Some(o), Some(c)) = (full_last::<D>(out, n_full), unpack_code(codes, 4, j)) {
            add_entry(o, &pal[c as usize]);
        }
        j += 1;
    }
    let start = n_full * D;
    if start < out.len() {
        if let Some(c) = unpack_code(codes, 4, j) {
            add_entry(&mut out[start..], &pal[c as usize]);
        }
    }
}

/// The last full `D`-wide sub-vector of `out`.
fn full_last<const D: usize>(out: &mut [f32], n_full: usize) -> Option<&mut [f32]> {
    out.get_mut((n_full - 1) * D..n_full * D)
}

/// Any width: one slice bounds check per sub-vector, none per element.
fn stage_any<T: Elem>(pal: &[T], d: usize, bits: u8, codes: &[u8], out: &mut [f32]) {
    for (j, o) in out.chunks_mut(d).enumerate() {
        let Some(c) = unpack_code(codes, bits, j) else {
            return;
        };
        let start = c as usize * d;
        if let Some(entry) = pal.get(start..start + d) {
            add_entry(o, entry);
        }
    }
}

fn add_slot<T: Elem>(coef: &[i8; SLOT_L_DIMS], basis: &[T], slot_scale: f32, out: &mut [f32]) {
    let n = out.len();
    let (r0, rest) = basis.split_at(n);
    let (r1, rest) = rest.split_at(n);
    let (r2, rest) = rest.split_at(n);
    let (r3, rest) = rest.split_at(n);
    let (r4, rest) = rest.split_at(n);
    let (r5, rest) = rest.split_at(n);
    let (r6, r7) = rest.split_at(n);
    let k = coef.map(|c| c as f32);
    for (c, o) in out.iter_mut().enumerate() {
        let mut t = 0.0f32;
        t += k[0] * r0[c].f();
        t += k[1] * r1[c].f();
        t += k[2] * r2[c].f();
        t += k[3] * r3[c].f();
        t += k[4] * r4[c].f();
        t += k[5] * r5[c].f();
        t += k[6] * r6[c].f();
        t += k[7] * r7[c].f();
        *o += slot_scale * t;
    }
}

#[cfg(test)]
mod tests;
