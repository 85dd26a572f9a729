//! The normative row decode of spec §4, as one allocation-free kernel shared
//! by the reader (to serve rows) and the writer (to measure what it wrote).
//!
//! Codes index palettes without per-code bounds checks: a stored palette
//! always has `2^bits` entries (spec layout rule), so the kernel views it as
//! `&[[T; D]; 256]` or `&[[T; D]; 16]` and a `u8` or nibble index is in range
//! by construction. Lengths are checked once per row.

use half::{bf16, f16};
use thiserror::Error;

use crate::limits::{MAX_STAGES, SLOT_L_DIMS};

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
    if let Some(sl) = slot {
        let expected = SLOT_L_DIMS * n_cols;
        if sl.basis.len() != expected {
            return Err(KernelError::BasisLen {
                expected,
                got: sl.basis.len(),
            });
        }
    }
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

/// One stage of a tensor, for [`Prepared::new`]: its palette and where its
/// codes sit in a row's `stride` code bytes.
#[derive(Debug, Clone, Copy)]
pub struct StageSpec<'a> {
    /// All `2^bits * d` stored palette elements, entry-major.
    pub palette: ElemSlice<'a>,
    /// Palette entry width.
    pub d: usize,
    /// Code width, 4 or 8.
    pub bits: u8,
    /// Offset of the stage's codes in the row's code bytes.
    pub code_offset: usize,
}

/// Entries at most this wide are widened to f32 by [`Prepared`] (a
/// 256-entry palette is then at most 16 KiB); wider ones are read in place.
const WIDEN_MAX_D: usize = 16;

/// A stage's palette as [`Prepared`] holds it.
#[derive(Debug, Clone)]
enum PalData<'a> {
    /// Widened to f32; stage 0's entries are stored as `0.0 + v`.
    Wide(Vec<f32>),
    /// As stored.
    Stored(ElemSlice<'a>),
}

#[derive(Debug, Clone)]
struct PreparedStage<'a> {
    pal: PalData<'a>,
    d: usize,
    bits: u8,
    code_offset: usize,
    cb: usize,
}

/// A tensor's stages checked once and prepared for decoding many rows, with
/// results bit-identical to [`decode_row`].
///
/// Palettes of entries up to 16 wide are widened to f32 once (exact), and
/// stage 0's entries are stored as `0.0 + v`, the first addition of spec
/// §4, so the per-row loop is one load per stage, the adds, the scale and a
/// store. The loop for one or two 8-bit stages of one width handles four
/// sub-vectors per iteration.
///
/// ```
/// use hhtld_format::decode::{decode_row, ElemSlice, Prepared, StageRow, StageSpec};
/// let pal: Vec<f32> = (0..256 * 2).map(|i| i as f32 * 0.25).collect();
/// let spec = StageSpec { palette: ElemSlice::F32(&pal), d: 2, bits: 8, code_offset: 0 };
/// let prepared = Prepared::new(&[spec], 6).unwrap();
/// let codes = [3u8, 0, 255];
/// let (mut a, mut b) = ([0f32; 6], [0f32; 6]);
/// prepared.decode_row(&codes, Some(0.5), None, &mut a).unwrap();
/// let stage = StageRow { palette: ElemSlice::F32(&pal), d: 2, bits: 8, codes: &codes };
/// decode_row(&[stage], Some(0.5), None, &mut b).unwrap();
/// assert_eq!(a, b);
/// ```
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    stages: Vec<PreparedStage<'a>>,
    n_cols: usize,
    /// Every stage is 8-bit, widened, of one width in {1, 2, 4, 8, 16},
    /// and there are one or two.
    fused: bool,
}

impl<'a> Prepared<'a> {
    /// Checks the stages against a row of `n_cols` (the checks
    /// [`decode_row`] makes on every row) and widens the narrow palettes.
    pub fn new(stages: &[StageSpec<'a>], n_cols: usize) -> Result<Prepared<'a>, KernelError> {
        let mut out = Vec::with_capacity(stages.len());
        for (stage, st) in stages.iter().enumerate() {
            let cb = code_bytes(n_cols, st.d, st.bits).unwrap_or(0);
            let row = StageRow {
                palette: st.palette,
                d: st.d,
                bits: st.bits,
                codes: &[],
            };
            // Everything but the codes, which are checked per row.
            match check_stage(stage, &row, n_cols) {
                Ok(()) | Err(KernelError::CodesLen { .. }) => {}
                Err(e) => return Err(e),
            }
            let pal = if st.d <= WIDEN_MAX_D {
                let mut v: Vec<f32> = (0..st.palette.len())
                    .map(|i| st.palette.get_f32(i).unwrap_or(0.0))
                    .collect();
                if stage == 0 {
                    for x in v.iter_mut() {
                        *x += 0.0; // exactly the spec's `0 + P0[c]`, once
                    }
                }
                PalData::Wide(v)
            } else {
                PalData::Stored(st.palette)
            };
            out.push(PreparedStage {
                pal,
                d: st.d,
                bits: st.bits,
                code_offset: st.code_offset,
                cb,
            });
        }
        let fused = matches!(out.len(), 1 | 2)
            && out
                .iter()
                .all(|s| s.bits == 8 && s.d == out[0].d && matches!(s.pal, PalData::Wide(_)))
            && matches!(out[0].d, 1 | 2 | 4 | 8 | 16);
        Ok(Prepared {
            stages: out,
            n_cols,
            fused,
        })
    }

    /// The row width this was prepared for.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Decodes one row from its code bytes (every stage's, at the offsets
    /// given to [`Prepared::new`]) into `out` (`n_cols` values), exactly as
    /// [`decode_row`] does.
    pub fn decode_row(
        &self,
        row_codes: &[u8],
        scale: Option<f32>,
        slot: Option<&SlotRow<'_>>,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        let n_cols = self.n_cols;
        if out.len() != n_cols {
            return Err(KernelError::Width {
                stage: 0,
                d: self.stages.first().map_or(0, |s| s.d),
                n_cols: out.len(),
            });
        }
        let mut codes: [&[u8]; MAX_STAGES] = [&[]; MAX_STAGES];
        for (i, st) in self.stages.iter().enumerate() {
            let c = row_codes
                .get(st.code_offset..st.code_offset.saturating_add(st.cb))
                .ok_or(KernelError::CodesLen {
                    stage: i,
                    expected: st.cb,
                    got: row_codes.len().saturating_sub(st.code_offset),
                })?;
            if let Some(dst) = codes.get_mut(i) {
                *dst = c;
            }
        }
        if let Some(sl) = slot {
            let expected = SLOT_L_DIMS * n_cols;
            if sl.basis.len() != expected {
                return Err(KernelError::BasisLen {
                    expected,
                    got: sl.basis.len(),
                });
            }
        }
        if self.fused {
            self.fused_row(&codes, scale, out);
        } else {
            out.fill(0.0);
            for (st, c) in self.stages.iter().zip(codes) {
                match &st.pal {
                    PalData::Wide(p) => add_stage(p, st.d, st.bits, c, out),
                    PalData::Stored(ElemSlice::F32(p)) => add_stage(p, st.d, st.bits, c, out),
                    PalData::Stored(ElemSlice::F16(p)) => add_stage(p, st.d, st.bits, c, out),
                    PalData::Stored(ElemSlice::Bf16(p)) => add_stage(p, st.d, st.bits, c, out),
                }
            }
            if let Some(s) = scale {
                for v in out.iter_mut() {
                    *v *= s;
                }
            }
        }
        if let Some(sl) = slot {
            add_slot_any(sl, out);
        }
        Ok(())
    }

    fn fused_row(&self, codes: &[&[u8]; MAX_STAGES], scale: Option<f32>, out: &mut [f32]) {
        let wide = |i: usize| match self.stages.get(i).map(|s| &s.pal) {
            Some(PalData::Wide(p)) => p.as_slice(),
            _ => &[],
        };
        let d = self.stages[0].d;
        let (p, q) = (wide(0), wide(self.stages.len() - 1));
        let (a, b) = (codes[0], codes[self.stages.len() - 1]);
        let two = self.stages.len() == 2;
        match d {
            1 => wide_d::<1>(p, q, a, b, two, scale, out),
            2 => wide_d::<2>(p, q, a, b, two, scale, out),
            4 => wide_d::<4>(p, q, a, b, two, scale, out),
            8 => wide_d::<8>(p, q, a, b, two, scale, out),
            _ => wide_d::<16>(p, q, a, b, two, scale, out),
        }
    }
}

/// One or two widened 8-bit stages of width `D`; `p` already holds
/// `0 + P0`, so a value is `(p + q) x scale`, the spec's order.
#[inline(always)]
fn wide_d<const D: usize>(
    p: &[f32],
    q: &[f32],
    a: &[u8],
    b: &[u8],
    two: bool,
    scale: Option<f32>,
    out: &mut [f32],
) {
    let (Some(p), Some(q)) = (entries::<f32, D>(p), entries::<f32, D>(q)) else {
        return; // unreachable: Prepared::new checked 256 * D elements
    };
    let (full, tail) = out.as_chunks_mut::<D>();
    let n_full = full.len();
    match (two, scale) {
        (false, None) => wide_one(p, a, full, |x| x),
        (false, Some(s)) => wide_one(p, a, full, |x| x * s),
        (true, None) => wide_two(p, q, a, b, full, |x| x),
        (true, Some(s)) => wide_two(p, q, a, b, full, |x| x * s),
    }
    if !tail.is_empty() {
        // The last, partial sub-vector: the head of each entry.
        let ps: &[&[[f32; D]; 256]] = if two { &[p, q] } else { &[p] };
        let cs = [a, b];
        for (k, v) in tail.iter_mut().enumerate() {
            let mut acc = 0.0f32;
            for (pal, c) in ps.iter().zip(cs) {
                if let Some(&i) = c.get(n_full) {
                    acc += pal[i as usize][k];
                }
            }
            // `acc` starts at +0 and adds `0 + P0`: the same sums.
            *v = match scale {
                Some(s) => acc * s,
                None => acc,
            };
        }
    }
}

/// Sub-vectors four at a time: fewer loop branches per output.
#[inline(always)]
fn wide_one<const D: usize>(
    p: &[[f32; D]; 256],
    a: &[u8],
    out: &mut [[f32; D]],
    f: impl Fn(f32) -> f32,
) {
    let n = out.len().min(a.len());
    let (out, a) = (&mut out[..n], &a[..n]);
    let (o4, o_rest) = out.as_chunks_mut::<4>();
    let (a4, a_rest) = a.as_chunks::<4>();
    for (o, c) in o4.iter_mut().zip(a4) {
        for u in 0..4 {
            let e = &p[c[u] as usize];
            for k in 0..D {
                o[u][k] = f(e[k]);
            }
        }
    }
    for (o, &c) in o_rest.iter_mut().zip(a_rest) {
        let e = &p[c as usize];
        for k in 0..D {
            o[k] = f(e[k]);
        }
    }
}

#[inline(always)]
fn wide_two<const D: usize>(
    p: &[[f32; D]; 256],
    q: &[[f32; D]; 256],
    a: &[u8],
    b: &[u8],
    out: &mut [[f32; D]],
    f: impl Fn(f32) -> f32,
) {
    let n = out.len().min(a.len()).min(b.len());
    let (out, a, b) = (&mut out[..n], &a[..n], &b[..n]);
    let (o4, o_rest) = out.as_chunks_mut::<4>();
    let (a4, a_rest) = a.as_chunks::<4>();
    let (b4, b_rest) = b.as_chunks::<4>();
    for ((o, ca), cb) in o4.iter_mut().zip(a4).zip(b4) {
        for u in 0..4 {
            let (e, g) = (&p[ca[u] as usize], &q[cb[u] as usize]);
            for k in 0..D {
                o[u][k] = f(e[k] + g[k]);
            }
        }
    }
    for ((o, &i), &j) in o_rest.iter_mut().zip(a_rest).zip(b_rest) {
        let (e, g) = (&p[i as usize], &q[j as usize]);
        for k in 0..D {
            o[k] = f(e[k] + g[k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straight transcription of the spec's pseudo-code, for comparison.
    fn reference(
        stages: &[StageRow<'_>],
        scale: Option<f32>,
        slot: Option<&SlotRow<'_>>,
        n: usize,
    ) -> Vec<f32> {
        (0..n)
            .map(|c| {
                let mut acc = 0.0f32;
                for st in stages {
                    let code = unpack_code(st.codes, st.bits, c / st.d).unwrap() as usize;
                    acc += st.palette.get_f32(code * st.d + c % st.d).unwrap();
                }
                if let Some(s) = scale {
                    acc *= s;
                }
                if let Some(sl) = slot {
                    let mut t = 0.0f32;
                    for i in 0..8 {
                        t += sl.coef[i] as f32 * sl.basis.get_f32(i * n + c).unwrap();
                    }
                    acc += sl.slot_scale * t;
                }
                acc
            })
            .collect()
    }

    fn pattern(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 250.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn every_width_and_packing_matches_the_spec_transcription() {
        for &bits in &[4u8, 8] {
            for d in [1usize, 2, 3, 4, 5, 8, 16, 17] {
                for n in [d, d + 1, 2 * d + 1, 3 * d, 4 * d + 3] {
                    let entries = 1usize << bits;
                    let p0 = pattern(entries * d, 1);
                    let p1: Vec<bf16> = pattern(entries * d, 7)
                        .iter()
                        .map(|&v| bf16::from_f32(v))
                        .collect();
                    let cb = code_bytes(n, d, bits).unwrap();
                    let c0: Vec<u8> = (0..cb).map(|i| (i * 37 + 11) as u8).collect();
                    let c1: Vec<u8> = (0..cb).map(|i| (i * 91 + 5) as u8).collect();
                    let stages = [
                        StageRow {
                            palette: ElemSlice::F32(&p0),
                            d,
                            bits,
                            codes: &c0,
                        },
                        StageRow {
                            palette: ElemSlice::Bf16(&p1),
                            d,
                            bits,
                            codes: &c1,
                        },
                    ];
                    let basis: Vec<f16> = pattern(8 * n, 3)
                        .iter()
                        .map(|&v| f16::from_f32(v))
                        .collect();
                    let coef = [3i8, -7, 127, -128, 0, 1, -1, 64];
                    let slot = SlotRow {
                        coef: &coef,
                        basis: ElemSlice::F16(&basis),
                        slot_scale: 0.01,
                    };
                    let mut out = vec![f32::NAN; n];
                    decode_row(&stages, Some(0.75), Some(&slot), &mut out).unwrap();
                    let want = reference(&stages, Some(0.75), Some(&slot), n);
                    assert_eq!(out, want, "bits {bits} d {d} n {n}");
                }
            }
        }
    }

    #[test]
    fn mismatched_lengths_are_errors_not_panics() {
        let pal = vec![0f32; 256 * 4];
        let codes = [0u8; 2];
        let mut out = [0f32; 8];
        let ok = StageRow {
            palette: ElemSlice::F32(&pal),
            d: 4,
            bits: 8,
            codes: &codes,
        };
        assert!(decode_row(&[ok], None, None, &mut out).is_ok());
        let short = StageRow {
            palette: ElemSlice::F32(&pal[..1000]),
            ..ok
        };
        assert!(matches!(
            decode_row(&[short], None, None, &mut out),
            Err(KernelError::PaletteLen { .. })
        ));
        let few = StageRow {
            codes: &codes[..1],
            ..ok
        };
        assert!(matches!(
            decode_row(&[few], None, None, &mut out),
            Err(KernelError::CodesLen { .. })
        ));
        let wide = StageRow { d: 9, ..ok };
        assert!(matches!(
            decode_row(&[wide], None, None, &mut out),
            Err(KernelError::Width { .. })
        ));
        let b = StageRow { bits: 5, ..ok };
        assert!(matches!(
            decode_row(&[b], None, None, &mut out),
            Err(KernelError::Bits { .. })
        ));
        let basis = [0f32; 7];
        let slot = SlotRow {
            coef: &[0; 8],
            basis: ElemSlice::F32(&basis),
            slot_scale: 1.0,
        };
        assert!(matches!(
            decode_row(&[ok], None, Some(&slot), &mut out),
            Err(KernelError::BasisLen { .. })
        ));
    }

    /// Palette values with signed zeros, which only an exact kernel keeps
    /// as the spec's `0.0 + ...` sums say.
    fn with_zeros(len: usize, seed: u32) -> Vec<f32> {
        let mut v = pattern(len, seed);
        for (i, x) in v.iter_mut().enumerate() {
            match i % 7 {
                0 => *x = -0.0,
                3 => *x = 0.0,
                _ => {}
            }
        }
        v
    }

    fn typed(v: &[f32], elem: crate::ElemType) -> (Vec<f32>, Vec<f16>, Vec<bf16>) {
        match elem {
            crate::ElemType::F32 => (v.to_vec(), vec![], vec![]),
            crate::ElemType::F16 => (
                vec![],
                v.iter().map(|&x| f16::from_f32(x)).collect(),
                vec![],
            ),
            crate::ElemType::Bf16 => (
                vec![],
                vec![],
                v.iter().map(|&x| bf16::from_f32(x)).collect(),
            ),
        }
    }

    fn slice_of<'a>(
        t: &'a (Vec<f32>, Vec<f16>, Vec<bf16>),
        elem: crate::ElemType,
    ) -> ElemSlice<'a> {
        match elem {
            crate::ElemType::F32 => ElemSlice::F32(&t.0),
            crate::ElemType::F16 => ElemSlice::F16(&t.1),
            crate::ElemType::Bf16 => ElemSlice::Bf16(&t.2),
        }
    }

    #[test]
    fn one_pass_shapes_match_the_spec_transcription_bit_for_bit() {
        use crate::ElemType;
        // One or two 8-bit stages of one width and element type take the
        // one-pass path (widths 1, 2, 4, 8, 16); the others the staged one.
        for elem in [ElemType::F32, ElemType::F16, ElemType::Bf16] {
            for n_stages in [1usize, 2] {
                for d in [1usize, 2, 3, 4, 8, 16, 17] {
                    for n in [d, d + 1, 3 * d, 4 * d + 3] {
                        let pals: Vec<_> = (0..n_stages)
                            .map(|s| typed(&with_zeros(256 * d, s as u32 + 1), elem))
                            .collect();
                        let cb = code_bytes(n, d, 8).unwrap();
                        let codes: Vec<Vec<u8>> = (0..n_stages)
                            .map(|s| (0..cb).map(|i| (i * (37 + 54 * s) + 11) as u8).collect())
                            .collect();
                        let stages: Vec<StageRow<'_>> = pals
                            .iter()
                            .zip(&codes)
                            .map(|(p, c)| StageRow {
                                palette: slice_of(p, elem),
                                d,
                                bits: 8,
                                codes: c,
                            })
                            .collect();
                        let basis: Vec<f32> = pattern(8 * n, 5);
                        let coef = [1i8, -2, 3, -4, 5, -6, 7, -8];
                        let slot = SlotRow {
                            coef: &coef,
                            basis: ElemSlice::F32(&basis),
                            slot_scale: 0.5,
                        };
                        for scale in [None, Some(0.75f32), Some(-1.5)] {
                            for sl in [None, Some(&slot)] {
                                let mut out = vec![f32::NAN; n];
                                decode_row(&stages, scale, sl, &mut out).unwrap();
                                let want = reference(&stages, scale, sl, n);
                                let bits =
                                    |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                                assert_eq!(
                                    bits(&out),
                                    bits(&want),
                                    "{elem:?} stages {n_stages} d {d} n {n} scale {scale:?} slot {}",
                                    sl.is_some()
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn prepared_rows_match_decode_row_bit_for_bit() {
        use crate::ElemType;
        let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut checked = 0;
        for elem in [ElemType::F32, ElemType::F16, ElemType::Bf16] {
            for shapes in [
                &[(1usize, 8u8)][..],
                &[(2, 8)],
                &[(4, 8), (4, 8)],
                &[(8, 8), (8, 8)],
                &[(16, 8)],
                &[(4, 8), (48, 4)],
                &[(1, 4)],
                &[(3, 8), (3, 8)],
                &[(4, 8), (4, 4), (2, 8)],
                &[(20, 8)],
            ] {
                for n in [48usize, 49, 52, 67, 100] {
                    let pals: Vec<_> = shapes
                        .iter()
                        .enumerate()
                        .map(|(s, &(d, b))| typed(&with_zeros((1 << b) * d, s as u32 + 1), elem))
                        .collect();
                    let mut specs = Vec::new();
                    let mut offset = 0;
                    for (p, &(d, b)) in pals.iter().zip(shapes) {
                        specs.push(StageSpec {
                            palette: slice_of(p, elem),
                            d,
                            bits: b,
                            code_offset: offset,
                        });
                        offset += code_bytes(n, d, b).unwrap();
                    }
                    let prepared = Prepared::new(&specs, n).unwrap();
                    let basis: Vec<f32> = pattern(8 * n, 5);
                    let slot = SlotRow {
                        coef: &[1, -2, 3, -4, 5, -6, 7, -8],
                        basis: ElemSlice::F32(&basis),
                        slot_scale: 0.5,
                    };
                    for seed in 0..3usize {
                        let row: Vec<u8> = (0..offset)
                            .map(|i| (i * (37 + 54 * seed) + 11 + seed) as u8)
                            .collect();
                        let stages: Vec<StageRow<'_>> = specs
                            .iter()
                            .map(|s| StageRow {
                                palette: s.palette,
                                d: s.d,
                                bits: s.bits,
                                codes: &row[s.code_offset
                                    ..s.code_offset + code_bytes(n, s.d, s.bits).unwrap()],
                            })
                            .collect();
                        for scale in [None, Some(0.75f32), Some(-1.5)] {
                            for sl in [None, Some(&slot)] {
                                let mut want = vec![f32::NAN; n];
                                decode_row(&stages, scale, sl, &mut want).unwrap();
                                let mut got = vec![f32::NAN; n];
                                prepared.decode_row(&row, scale, sl, &mut got).unwrap();
                                assert_eq!(
                                    bits_of(&got),
                                    bits_of(&want),
                                    "{elem:?} {shapes:?} n {n} scale {scale:?}"
                                );
                                checked += 1;
                            }
                        }
                        // Short code bytes and a wrong row width are errors.
                        let mut out = vec![0f32; n];
                        assert!(matches!(
                            prepared.decode_row(&row[..offset - 1], None, None, &mut out),
                            Err(KernelError::CodesLen { .. })
                        ));
                        let mut wrong = vec![0f32; n + 1];
                        assert!(prepared.decode_row(&row, None, None, &mut wrong).is_err());
                    }
                }
            }
        }
        assert!(checked > 1000);
        // Shapes are checked once, up front.
        let pal = vec![0f32; 100];
        let bad = StageSpec {
            palette: ElemSlice::F32(&pal),
            d: 4,
            bits: 8,
            code_offset: 0,
        };
        assert!(matches!(
            Prepared::new(&[bad], 8),
            Err(KernelError::PaletteLen { .. })
        ));
    }

    #[test]
    fn nan_palette_values_decode_as_nan() {
        // Writers never store NaN, but a file can hold one; the widening
        // without `half`'s quieting still yields NaN.
        let mut pal = vec![bf16::from_f32(1.0); 256 * 4];
        pal[4] = bf16::from_bits(0x7F81); // signalling NaN
        let codes = [1u8, 0];
        let st = StageRow {
            palette: ElemSlice::Bf16(&pal),
            d: 4,
            bits: 8,
            codes: &codes,
        };
        let mut out = [0f32; 8];
        decode_row(&[st], None, None, &mut out).unwrap();
        assert!(out[0].is_nan());
        assert_eq!(&out[1..], &[1.0; 7]);
    }

    #[test]
    fn codes_past_k_read_padding_never_outside_the_palette() {
        // k = 3 of 16 stored; code 15 must read the zero padding entry.
        let mut pal = vec![0f32; 16];
        pal[..3].copy_from_slice(&[1.0, 2.0, 3.0]);
        let codes = [0xF2u8];
        let mut out = [9f32; 2];
        let st = StageRow {
            palette: ElemSlice::F32(&pal),
            d: 1,
            bits: 4,
            codes: &codes,
        };
        decode_row(&[st], None, None, &mut out).unwrap();
        assert_eq!(out, [3.0, 0.0]);
    }
}
