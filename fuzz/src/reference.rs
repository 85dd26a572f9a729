//! A naive decoder written from spec §4 alone, to check the reader's
//! vectorised kernel against. It shares no code with `hhtld-format`: element
//! conversion, code unpacking and the sum order are all spelled out here.

use half::{bf16, f16};
use hhtld_format::validate::Layout;
use hhtld_format::{ElemType, Encoding};

/// One stage of a row: the whole stored palette as f32 (`2^bits x d`
/// values), its entry width, and the row's codes unpacked.
#[derive(Debug, Clone)]
pub struct RefStage<'a> {
    /// Stored palette, every entry converted to f32.
    pub palette: &'a [f32],
    /// Entry width.
    pub d: usize,
    /// One code per sub-vector (`ceil(n_cols / d)`).
    pub codes: Vec<usize>,
}

/// Everything that decodes one row.
#[derive(Debug, Clone)]
pub struct RefRow<'a> {
    /// Stages in order.
    pub stages: Vec<RefStage<'a>>,
    /// The row scale, when the tensor has one.
    pub scale: Option<f32>,
    /// The row's SlotL coefficients, the basis (`8 x n_cols`, as f32) and
    /// the tensor's slot scale.
    pub slot: Option<([i8; 8], &'a [f32], f32)>,
}

impl RefRow<'_> {
    /// The row's `n_cols` values, computed as spec §4 writes it.
    pub fn decode(&self, n_cols: usize) -> Vec<f32> {
        let mut out = vec![0f32; n_cols];
        for (c, o) in out.iter_mut().enumerate() {
            let mut acc = 0.0f32;
            for st in &self.stages {
                let j = c / st.d;
                let code = st.codes[j];
                acc += st.palette[code * st.d + c % st.d];
            }
            if let Some(s) = self.scale {
                acc *= s;
            }
            if let Some((coef, basis, slot_scale)) = &self.slot {
                let mut t = 0.0f32;
                for (i, &q) in coef.iter().enumerate() {
                    t += f32::from(q) * basis[i * n_cols + c];
                }
                acc += slot_scale * t;
            }
            *o = acc;
        }
        out
    }
}

/// Little-endian elements of `elem` as f32.
pub fn elems_to_f32(bytes: &[u8], elem: ElemType) -> Vec<f32> {
    match elem {
        ElemType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        ElemType::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        ElemType::Bf16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

/// Code `j` of a stage's packed bytes (spec §4 "ENTRY layout").
pub fn unpack(codes: &[u8], bits: u8, j: usize) -> usize {
    if bits == 8 {
        usize::from(codes[j])
    } else {
        let b = codes[j / 2];
        usize::from(if j.is_multiple_of(2) {
            b & 0x0F
        } else {
            b >> 4
        })
    }
}

/// The stored palettes and bases of a validated file as f32, by index,
/// so a tensor's rows can be decoded without converting them again.
pub struct FileTables {
    /// Palette values (`2^bits x d` each).
    pub palettes: Vec<Vec<f32>>,
    /// Basis values (`8 x n_cols` each).
    pub bases: Vec<Vec<f32>>,
}

impl FileTables {
    /// Converts every palette and basis of `layout`.
    pub fn new(layout: &Layout, bytes: &[u8]) -> Self {
        FileTables {
            palettes: layout
                .palettes
                .iter()
                .map(|p| elems_to_f32(&bytes[p.range.clone()], p.elem))
                .collect(),
            bases: layout
                .bases
                .iter()
                .map(|b| elems_to_f32(&bytes[b.range.clone()], b.elem))
                .collect(),
        }
    }

    /// Row `r` of PALETTE tensor `t`, decoded by the reference from the
    /// raw file bytes.
    pub fn decode_row(&self, layout: &Layout, bytes: &[u8], t: usize, r: usize) -> Vec<f32> {
        let ten = &layout.tensors[t];
        assert_eq!(ten.encoding, Encoding::Palette);
        let row = &bytes[ten.data.start + r * ten.stride..][..ten.stride];
        let stages = ten
            .stages()
            .iter()
            .map(|st| {
                let codes = &row[st.code_offset..st.code_offset + st.cb];
                let n_sub = ten.n_cols.div_ceil(st.d);
                RefStage {
                    palette: &self.palettes[st.palette as usize],
                    d: st.d,
                    codes: (0..n_sub).map(|j| unpack(codes, st.bits, j)).collect(),
                }
            })
            .collect();
        let scale = ten.scale.as_ref().map(|s| {
            let size = s.elem.size();
            let b = &bytes[s.range.start + r * size..][..size];
            elems_to_f32(b, s.elem)[0]
        });
        let slot = ten.slot.as_ref().map(|s| {
            let b = &bytes[s.range.start + r * 8..][..8];
            let coef: [i8; 8] = core::array::from_fn(|i| b[i] as i8);
            (coef, self.bases[s.basis as usize].as_slice(), s.slot_scale)
        });
        RefRow {
            stages,
            scale,
            slot,
        }
        .decode(ten.n_cols)
    }
}
