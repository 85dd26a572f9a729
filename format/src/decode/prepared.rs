//! [`Prepared`]: a tensor's stages checked once, its narrow palettes widened
//! to f32 and a one-pass row loop picked for its shape, for decoding many
//! rows with results bit-identical to [`decode_row`](super::decode_row).

use super::{add_slot_any, add_stage, check_slot, check_stage, code_bytes, entries};
use super::{ElemSlice, KernelError, SlotRow, StageRow};
use crate::limits::MAX_STAGES;
use crate::ElemType;
use half::{bf16, f16};

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
/// results bit-identical to [`decode_row`](super::decode_row).
///
/// Palettes of entries up to 16 wide are widened to f32 once (exact), and
/// stage 0's entries are stored as `0.0 + v`, the first addition of spec
/// §4. One or two 8-bit stages whose widths have a specialised loop
/// (every shape the built-in profiles write: equal widths 1 to 16, and
/// stage 0 narrower than stage 1, e.g. 2 + 4, 2 + 8, 3 + 8, 4 + 8) decode
/// in one pass: each block of outputs is assembled from its entries in
/// registers, summed, scaled once and stored once; no zero fill, no
/// read-modify-write per stage.
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
    /// The one-pass loop for this shape, when there is one, writing f32.
    kernel: Option<RowKernel<f32>>,
    /// The same loop rounding each output to bf16 as it stores it.
    kernel_bf16: Option<RowKernel<bf16>>,
}

/// An output element of [`Prepared::decode_rows`]: `f32`, or `bf16`
/// rounded from the f32 result (round to nearest, ties to even) in the
/// same pass, with no f32 copy.
pub trait KernelOut: Copy + Default + sealed::Sealed {}
impl KernelOut for f32 {}
impl KernelOut for bf16 {}

mod sealed {
    use super::{Prepared, RowKernel};
    use half::bf16;

    /// The conversion and the loop for each output type.
    pub trait Sealed: Sized {
        /// The f32 result as stored.
        fn put(v: f32) -> Self;
        /// The one-pass loop for `Self`, if the shape has one.
        fn kernel(p: &Prepared<'_>) -> Option<RowKernel<Self>>;
        /// `Some(out)` when `Self` is f32, so rows decode in place.
        fn as_f32(out: &mut [Self]) -> Option<&mut [f32]>;
    }
    impl Sealed for f32 {
        #[inline(always)]
        fn put(v: f32) -> f32 {
            v
        }
        fn kernel(p: &Prepared<'_>) -> Option<RowKernel<f32>> {
            p.kernel
        }
        fn as_f32(out: &mut [f32]) -> Option<&mut [f32]> {
            Some(out)
        }
    }
    impl Sealed for bf16 {
        #[inline(always)]
        fn put(v: f32) -> bf16 {
            bf16::from_bits(super::super::bf16_bits(v))
        }
        fn kernel(p: &Prepared<'_>) -> Option<RowKernel<bf16>> {
            p.kernel_bf16
        }
        fn as_f32(_: &mut [bf16]) -> Option<&mut [f32]> {
            None
        }
    }
}

impl<'a> Prepared<'a> {
    /// Checks the stages against a row of `n_cols` (the checks
    /// [`decode_row`](super::decode_row) makes on every row) and widens the
    /// narrow palettes.
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
                let mut v: Vec<f32> = match st.palette {
                    ElemSlice::F32(p) => p.to_vec(),
                    ElemSlice::F16(p) => p.iter().map(|x| x.to_f32()).collect(),
                    ElemSlice::Bf16(p) => p.iter().map(|x| x.to_f32()).collect(),
                };
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
        Ok(Prepared {
            kernel: pick(&out),
            kernel_bf16: pick(&out),
            stages: out,
            n_cols,
        })
    }

    /// The row width this was prepared for.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Whether rows decode in one pass (the shape has a specialised loop).
    pub fn is_one_pass(&self) -> bool {
        self.kernel.is_some()
    }

    /// Decodes one row from its code bytes (every stage's, at the offsets
    /// given to [`Prepared::new`]) into `out` (`n_cols` values), exactly as
    /// [`decode_row`](super::decode_row) does.
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
        check_slot(slot, n_cols)?;
        if let Some(kernel) = self.kernel {
            let last = self.stages.len() - 1;
            kernel(
                self.wide(0),
                self.wide(last),
                codes[0],
                codes[last],
                scale,
                out,
            );
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

    /// Decodes whole rows into `out` (`out.len()` a multiple of `n_cols`):
    /// row `first + i` from `codes[i x stride..][..stride]` and, when
    /// `scales` is given, its scale element `first + i` (no SlotL; use
    /// [`Prepared::decode_row`] for that). The same values as
    /// [`Prepared::decode_row`] row by row, with the per-row work (slicing,
    /// scale read, dispatch) cut to a few instructions. The error carries
    /// the failing row.
    pub fn decode_rows<O: KernelOut>(
        &self,
        codes: &[u8],
        stride: usize,
        scales: Option<RowScales<'_>>,
        first: usize,
        out: &mut [O],
    ) -> Result<(), (usize, KernelError)> {
        match scales {
            None => self.rows_with(codes, stride, first, out, |_| None),
            Some(RowScales { bytes, elem }) => match elem {
                ElemType::F32 => {
                    let v = bytes.as_chunks::<4>().0;
                    self.rows_with(codes, stride, first, out, |r| {
                        v.get(r).map(|b| f32::from_le_bytes(*b))
                    })
                }
                ElemType::F16 => {
                    let v = bytes.as_chunks::<2>().0;
                    self.rows_with(codes, stride, first, out, |r| {
                        v.get(r).map(|b| f16::from_le_bytes(*b).to_f32())
                    })
                }
                ElemType::Bf16 => {
                    let v = bytes.as_chunks::<2>().0;
                    self.rows_with(codes, stride, first, out, |r| {
                        v.get(r).map(|b| bf16::from_le_bytes(*b).to_f32())
                    })
                }
            },
        }
    }

    fn rows_with<O: KernelOut>(
        &self,
        codes: &[u8],
        stride: usize,
        first: usize,
        out: &mut [O],
        scale: impl Fn(usize) -> Option<f32>,
    ) -> Result<(), (usize, KernelError)> {
        let n_cols = self.n_cols;
        if n_cols == 0 {
            return Ok(());
        }
        let row_codes = |i: usize| codes.get(i * stride..(i + 1) * stride).unwrap_or(&[]);
        let Some(kernel) = O::kernel(self) else {
            if let Some(out) = O::as_f32(out) {
                for (i, row) in out.chunks_exact_mut(n_cols).enumerate() {
                    self.decode_row(row_codes(i), scale(first + i), None, row)
                        .map_err(|e| (first + i, e))?;
                }
                return Ok(());
            }
            // One row of f32 at a time, then stored as `O`.
            let mut tmp = vec![0f32; n_cols];
            for (i, row) in out.chunks_exact_mut(n_cols).enumerate() {
                self.decode_row(row_codes(i), scale(first + i), None, &mut tmp)
                    .map_err(|e| (first + i, e))?;
                for (o, &v) in row.iter_mut().zip(&tmp) {
                    *o = O::put(v);
                }
            }
            return Ok(());
        };
        let last = self.stages.len() - 1;
        let (p, q) = (self.wide(0), self.wide(last));
        let (s0, s1) = (&self.stages[0], &self.stages[last]);
        let (r0, r1) = (
            s0.code_offset..s0.code_offset + s0.cb,
            s1.code_offset..s1.code_offset + s1.cb,
        );
        for (i, row) in out.chunks_exact_mut(n_cols).enumerate() {
            let rc = row_codes(i);
            let (Some(a), Some(b)) = (rc.get(r0.clone()), rc.get(r1.clone())) else {
                let (stage, st) = if rc.get(r0.clone()).is_none() {
                    (0, s0)
                } else {
                    (last, s1)
                };
                let err = KernelError::CodesLen {
                    stage,
                    expected: st.cb,
                    got: rc.len().saturating_sub(st.code_offset),
                };
                return Err((first + i, err));
            };
            kernel(p, q, a, b, scale(first + i), row);
        }
        Ok(())
    }

    /// Stage `i`'s widened palette (empty when it is not widened).
    fn wide(&self, i: usize) -> &[f32] {
        match self.stages.get(i).map(|s| &s.pal) {
            Some(PalData::Wide(p)) => p.as_slice(),
            _ => &[],
        }
    }
}

/// A tensor's row scales as stored (spec §4): one little-endian element
/// per row, at any alignment.
#[derive(Debug, Clone, Copy)]
pub struct RowScales<'a> {
    /// The scale section's bytes.
    pub bytes: &'a [u8],
    /// Their element type.
    pub elem: ElemType,
}

/// A one-pass row loop: stage 0's and the last stage's widened palettes
/// (the same stage for one-stage tensors), their codes for this row, the
/// row scale and the output row.
type RowKernel<O> = fn(&[f32], &[f32], &[u8], &[u8], Option<f32>, &mut [O]);

/// The one-pass loop for a tensor's stages, if its shape has one: one or
/// two widened 8-bit stages. `B` outputs per block (a common multiple of the
/// widths, so a block holds `B / D` whole entries of each stage).
fn pick<O: KernelOut>(stages: &[PreparedStage<'_>]) -> Option<RowKernel<O>> {
    if !stages
        .iter()
        .all(|s| s.bits == 8 && matches!(s.pal, PalData::Wide(_)))
    {
        return None;
    }
    let k: RowKernel<O> = match stages {
        [a] => return equal::<O, false>(a.d),
        [a, b] if a.d == b.d => return equal::<O, true>(a.d),
        [a, b] => match (a.d, b.d) {
            (1, 2) => Kern::<16, 1, 16, 2, 8, true>::row,
            (1, 4) => Kern::<16, 1, 16, 4, 4, true>::row,
            (1, 8) => Kern::<16, 1, 16, 8, 2, true>::row,
            (2, 4) => Kern::<16, 2, 8, 4, 4, true>::row,
            (2, 8) => Kern::<16, 2, 8, 8, 2, true>::row,
            (2, 16) => Kern::<16, 2, 8, 16, 1, true>::row,
            (3, 8) => Kern::<24, 3, 8, 8, 3, true>::row,
            (4, 8) => Kern::<16, 4, 4, 8, 2, true>::row,
            (4, 16) => Kern::<16, 4, 4, 16, 1, true>::row,
            (8, 16) => Kern::<16, 8, 2, 16, 1, true>::row,
            _ => return None,
        },
        _ => return None,
    };
    Some(k)
}

/// The loop for one stage (`TWO = false`) or two stages of the same width
/// `d`, if `d` has one.
fn equal<O: KernelOut, const TWO: bool>(d: usize) -> Option<RowKernel<O>> {
    Some(match d {
        1 => Kern::<16, 1, 16, 1, 16, TWO>::row,
        2 => Kern::<16, 2, 8, 2, 8, TWO>::row,
        3 => Kern::<12, 3, 4, 3, 4, TWO>::row,
        4 => Kern::<16, 4, 4, 4, 4, TWO>::row,
        8 => Kern::<16, 8, 2, 8, 2, TWO>::row,
        16 => Kern::<16, 16, 1, 16, 1, TWO>::row,
        _ => return None,
    })
}

/// The one-pass loop for one (`TWO = false`) or two widened 8-bit stages of
/// widths `D0` and `D1`, in blocks of `B = N0 x D0 = N1 x D1` outputs.
struct Kern<
    const B: usize,
    const D0: usize,
    const N0: usize,
    const D1: usize,
    const N1: usize,
    const TWO: bool,
>;

impl<
        const B: usize,
        const D0: usize,
        const N0: usize,
        const D1: usize,
        const N1: usize,
        const TWO: bool,
    > Kern<B, D0, N0, D1, N1, TWO>
{
    /// One row; the last `n_cols mod B` columns go through [`tail`].
    fn row<O: KernelOut>(
        p: &[f32],
        q: &[f32],
        a: &[u8],
        b: &[u8],
        scale: Option<f32>,
        out: &mut [O],
    ) {
        const { assert!(N0 * D0 == B && N1 * D1 == B) };
        let (Some(pe), Some(qe)) = (entries::<f32, D0>(p), entries::<f32, D1>(q)) else {
            return; // unreachable: Prepared::new checked 256 x D elements
        };
        let (full, rest) = out.as_chunks_mut::<B>();
        let done = full.len() * B;
        match scale {
            None => Self::blocks(pe, qe, a, b, full, |x| O::put(x)),
            Some(s) => Self::blocks(pe, qe, a, b, full, |x| O::put(x * s)),
        }
        if !rest.is_empty() {
            let qs = if TWO { Some((q, D1, b)) } else { None };
            tail((p, D0, a), qs, scale, done, rest);
        }
    }

    /// Whole blocks: each block's entries gathered into a `[f32; B]` in
    /// registers, `(0 + P0) + P1` as the spec adds them, then one scale and
    /// one store per output.
    #[inline(always)]
    fn blocks<O>(
        p: &[[f32; D0]; 256],
        q: &[[f32; D1]; 256],
        a: &[u8],
        b: &[u8],
        out: &mut [[O; B]],
        f: impl Fn(f32) -> O,
    ) {
        let (ab, _) = a.as_chunks::<N0>();
        let (bb, _) = b.as_chunks::<N1>();
        let n = out.len().min(ab.len()).min(bb.len());
        for ((o, ca), cb) in out[..n].iter_mut().zip(&ab[..n]).zip(&bb[..n]) {
            let mut t = [0f32; B];
            for u in 0..N0 {
                let e = &p[ca[u] as usize];
                for k in 0..D0 {
                    t[u * D0 + k] = e[k];
                }
            }
            if TWO {
                for u in 0..N1 {
                    let e = &q[cb[u] as usize];
                    for k in 0..D1 {
                        t[u * D1 + k] += e[k];
                    }
                }
            }
            for k in 0..B {
                o[k] = f(t[k]);
            }
        }
    }
}

/// The columns from `start` on, one at a time: spec §4 for each column,
/// with stage 0's palette already holding `0 + v`.
fn tail<O: KernelOut>(
    (p, d0, a): (&[f32], usize, &[u8]),
    q: Option<(&[f32], usize, &[u8])>,
    scale: Option<f32>,
    start: usize,
    out: &mut [O],
) {
    let value = |pal: &[f32], d: usize, codes: &[u8], c: usize| {
        let code = usize::from(codes.get(c / d).copied().unwrap_or(0));
        pal.get(code * d + c % d).copied().unwrap_or(0.0)
    };
    for (i, v) in out.iter_mut().enumerate() {
        let c = start + i;
        let mut acc = value(p, d0, a, c);
        if let Some((q, d1, b)) = q {
            acc += value(q, d1, b, c);
        }
        *v = O::put(match scale {
            Some(s) => acc * s,
            None => acc,
        });
    }
}
