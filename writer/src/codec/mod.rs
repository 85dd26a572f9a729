//! Codecs: pure functions that turn f32 weight matrices into staged palette
//! codes (spec §4), and measure what a reader will decode from them.
//!
//! [`encode_group`] fits one palette per stage to a group of tensors that
//! share `n_cols`; [`GroupDecoder`] decodes through the format's normative
//! kernel (`hhtld_format::decode::decode_row`), so [`row_quality`] measures
//! exactly what a reader will serve.
//!
//! Which codec each `--profile` gives a tensor, and what it falls back to,
//! is described once, in [`profile`]; the end-to-end figures per profile
//! are in the README's quality table. Two findings behind the presets:
//! row palettes (one code per row) do not reconstruct real weights (rows
//! are nearly orthogonal; per-row rho 0.04-0.45 on MiniLM), and palettes
//! shared by a group of same-role tensors cost 4-7% less than per-tensor
//! palettes for 0.001-0.003 less median rho, the better trade.

mod encode;
mod error;
pub mod gptq;
mod kmeans;
pub mod profile;
mod slot;

use hhtld_format::decode::n_sub;
use hhtld_format::encode::stage_row_bytes;
use hhtld_format::limits::{MAX_PALETTE_D, MAX_PALETTE_K, MAX_STAGES, SLOT_L_DIMS};
pub use hhtld_format::ElemType;

pub use encode::{
    encode_group, fit_group, fit_group_weighted, reconstruct, sample_rows, GroupDecoder, GroupFit,
};
pub use error::CodecError;
pub use gptq::Feedback;
pub use hhtld_format::quality::{
    row_quality, row_quality_by, row_rho, Gate, Matrix, QualityAcc, QualityError, QualityStats,
};
pub use kmeans::KmeansParams;
pub use profile::{describe_spec, fallback_chain, fit_width, Codec, Profile};

/// Element type of per-row scales written by [`encode_group`].
pub const SCALE_ELEM: ElemType = ElemType::F16;

/// What to encode a group with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecSpec {
    /// Palette entry width; 0 means the whole row (`d = n_cols`, a "row
    /// palette" with one code per row).
    pub d: usize,
    /// Code width, 4 or 8.
    pub bits: u8,
    /// Palette entries wanted, `1..=2^bits`; fewer are used when the data
    /// has fewer distinct sub-vectors.
    pub k: usize,
    /// Residual stages, `1..=MAX_STAGES`.
    pub stages: usize,
    /// Divide each row by an f16 scale before quantising, multiply back on
    /// decode.
    pub row_scale: bool,
    /// Add an 8-dim SlotL residual on the group's SVD basis.
    pub slot_l: bool,
    /// Element type of the palettes and the basis.
    pub elem: ElemType,
    /// Shape of stages 1.. when it differs from stage 0's (`d`, `bits`,
    /// `k` above); `None` repeats stage 0's shape. The format lets every
    /// stage have its own palette shape, e.g. a cheap wide second stage.
    pub later: Option<StageShape>,
    /// k-means tuning.
    pub kmeans: KmeansParams,
}

/// The palette shape of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageShape {
    /// Entry width; 0 means the whole row.
    pub d: usize,
    /// Code width, 4 or 8.
    pub bits: u8,
    /// Palette entries wanted, `1..=2^bits`.
    pub k: usize,
}

impl CodecSpec {
    /// Vector quantisation: `stages` residual stages of 256 entries of width
    /// `d` with 8-bit codes, bf16 palettes, no scale, no SlotL.
    pub fn vq(d: usize, stages: usize) -> Self {
        CodecSpec {
            d,
            bits: 8,
            k: 256,
            stages,
            row_scale: false,
            slot_l: false,
            elem: ElemType::Bf16,
            later: None,
            kmeans: KmeansParams::default(),
        }
    }

    /// Scalar palettes: 16 values, 4-bit codes, `stages` residual stages.
    pub fn scalar4(stages: usize) -> Self {
        CodecSpec {
            d: 1,
            bits: 4,
            k: 16,
            ..Self::vq(1, stages)
        }
    }

    /// The original row palette: one 8-bit code per row, 256 whole rows.
    pub fn row_palette() -> Self {
        Self::vq(0, 1)
    }

    /// Fidelity profile (about 4:1, both gates with a wide margin): two
    /// stages of 256 entries of width 4, row scales.
    pub fn fidelity() -> Self {
        Self::vq(4, 2).with_row_scale(true)
    }

    /// Compact profile for the argmax regime (about 7.4-7.6:1): 256 entries
    /// of width 4, then a 16-entry stage of width 48 with 4-bit codes, row
    /// scales, two rounds of joint stage refinement.
    pub fn compact() -> Self {
        CodecSpec {
            later: Some(StageShape {
                d: 48,
                bits: 4,
                k: 16,
            }),
            kmeans: KmeansParams {
                joint: 2,
                ..KmeansParams::default()
            },
            ..Self::vq(4, 2).with_row_scale(true)
        }
    }

    /// Compact profile for the index regime (about 5.2:1): 256 entries of
    /// width 4, then 256 entries of width 8, row scales, two rounds of joint
    /// stage refinement.
    pub fn index_compact() -> Self {
        CodecSpec {
            later: Some(StageShape {
                d: 8,
                bits: 8,
                k: 256,
            }),
            ..Self::compact()
        }
    }

    /// This spec with row scales on or off.
    pub fn with_row_scale(self, row_scale: bool) -> Self {
        CodecSpec { row_scale, ..self }
    }

    /// This spec with SlotL on or off.
    pub fn with_slot_l(self, slot_l: bool) -> Self {
        CodecSpec { slot_l, ..self }
    }

    /// The palette shape of stage `stage`.
    pub fn stage_shape(&self, stage: usize) -> StageShape {
        match (stage, self.later) {
            (1.., Some(later)) => later,
            _ => StageShape {
                d: self.d,
                bits: self.bits,
                k: self.k,
            },
        }
    }

    /// Checks the fields that do not depend on the data.
    pub fn check(&self) -> Result<(), CodecError> {
        if self.stages == 0 || self.stages > MAX_STAGES {
            return Err(CodecError::Stages {
                stages: self.stages,
                max: MAX_STAGES,
            });
        }
        for stage in 0..self.stages {
            let sh = self.stage_shape(stage);
            if sh.bits != 4 && sh.bits != 8 {
                return Err(CodecError::Bits { bits: sh.bits });
            }
            let max = (1usize << sh.bits).min(MAX_PALETTE_K);
            if sh.k == 0 || sh.k > max {
                return Err(CodecError::K {
                    k: sh.k,
                    bits: sh.bits,
                    max,
                });
            }
        }
        Ok(())
    }

    /// Stage 0's entry width for rows of `n_cols` columns.
    pub fn entry_width(&self, n_cols: usize) -> Result<usize, CodecError> {
        self.entry_width_of(self.d, n_cols)
    }

    /// The entry width that `d` (0 = whole row) means for rows of `n_cols`.
    pub fn entry_width_of(&self, d: usize, n_cols: usize) -> Result<usize, CodecError> {
        let d = if d == 0 { n_cols } else { d };
        if d == 0 || d > n_cols || d > MAX_PALETTE_D {
            return Err(CodecError::Width {
                d,
                n_cols,
                max: MAX_PALETTE_D,
            });
        }
        Ok(d)
    }
}

impl Default for CodecSpec {
    /// [`CodecSpec::fidelity`].
    fn default() -> Self {
        Self::fidelity()
    }
}

/// One stage's palette.
#[derive(Debug, Clone, PartialEq)]
pub struct PaletteData {
    /// Entries in use (`1..=2^bits`).
    pub k: usize,
    /// Entry width.
    pub d: usize,
    /// Code width, 4 or 8.
    pub bits: u8,
    /// Stored element type.
    pub elem: ElemType,
    /// `k * d` values, entry-major, already rounded to `elem`: the file
    /// stores exactly these.
    pub values: Vec<f32>,
}

impl PaletteData {
    /// The `2^bits * d` values of the PALETTE section: the entries, then
    /// zero padding entries.
    pub fn padded_values(&self) -> Vec<f32> {
        let mut v = self.values.clone();
        v.resize((1usize << self.bits) * self.d, 0.0);
        v
    }

    /// Length of the PALETTE section in bytes.
    pub fn section_len(&self) -> usize {
        (1usize << self.bits) * self.d * self.elem.size()
    }

    /// The palette as the builder takes it ([`crate::builder::Writer::add_palette`]).
    pub fn spec(&self) -> crate::builder::PaletteSpec<'_> {
        crate::builder::PaletteSpec {
            k: self.k,
            d: self.d,
            bits: self.bits,
            elem: self.elem,
            values: &self.values,
        }
    }
}

/// One tensor's SlotL coefficients.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotData {
    /// Per-row coefficients.
    pub coef: Vec<[i8; SLOT_L_DIMS]>,
    /// The tensor's coefficient scale: `max |coefficient| / 127`.
    pub slot_scale: f32,
}

/// One tensor of an encoded group.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedMatrix {
    /// Rows.
    pub n_rows: usize,
    /// Columns.
    pub n_cols: usize,
    /// Per stage, `n_rows * n_sub` codes (unpacked, row-major). Codes are
    /// `u8` because `MAX_PALETTE_K` is 256: a code can never overflow the
    /// packing.
    pub codes: Vec<Vec<u8>>,
    /// Per-row scales, already rounded to [`SCALE_ELEM`].
    pub scales: Option<Vec<f32>>,
    /// SlotL coefficients.
    pub slot: Option<SlotData>,
}

/// A group of tensors encoded with shared palettes (and basis).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedGroup {
    /// The spec it was encoded with.
    pub spec: CodecSpec,
    /// Shared row width.
    pub n_cols: usize,
    /// One palette per stage.
    pub palettes: Vec<PaletteData>,
    /// SlotL basis, `8 * n_cols` values row-major, rounded to `spec.elem`.
    pub basis: Option<Vec<f32>>,
    /// The tensors, in input order.
    pub tensors: Vec<EncodedMatrix>,
}

/// Stored bytes of one tensor, with its even share of the group's shared
/// sections (spec §8).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredSize {
    /// ENTRY section.
    pub codes: usize,
    /// SCALE section.
    pub scales: usize,
    /// SLOT_L section.
    pub slot: usize,
    /// Share of the PALETTE sections.
    pub palettes: f64,
    /// Share of the BASIS section.
    pub basis: f64,
    /// The tensor as BF16: `2 * numel`.
    pub bf16: usize,
}

impl StoredSize {
    /// All stored bytes (shares included).
    pub fn total(&self) -> f64 {
        (self.codes + self.scales + self.slot) as f64 + self.palettes + self.basis
    }

    /// BF16 bytes over stored bytes.
    pub fn ratio(&self) -> f64 {
        let t = self.total();
        if t > 0.0 {
            self.bf16 as f64 / t
        } else {
            0.0
        }
    }
}

impl EncodedGroup {
    /// Bytes per row in the ENTRY section: every stage's packed codes.
    pub fn row_stride(&self) -> usize {
        self.palettes
            .iter()
            .map(|p| stage_row_bytes(n_sub(self.n_cols, p.d), p.bits))
            .sum()
    }

    /// Stored bytes of tensor `tensor`, shared sections split evenly over
    /// the group's tensors.
    pub fn stored_size(&self, tensor: usize) -> Result<StoredSize, CodecError> {
        let m = self.tensors.get(tensor).ok_or(CodecError::TensorIndex {
            tensor,
            count: self.tensors.len(),
        })?;
        let share = self.tensors.len() as f64;
        let pal: usize = self.palettes.iter().map(|p| p.section_len()).sum();
        Ok(StoredSize {
            codes: m.n_rows * self.row_stride(),
            scales: m.scales.as_ref().map_or(0, |s| s.len() * SCALE_ELEM.size()),
            slot: m.slot.as_ref().map_or(0, |s| s.coef.len() * SLOT_L_DIMS),
            palettes: pal as f64 / share,
            basis: self
                .basis
                .as_ref()
                .map_or(0.0, |b| (b.len() * self.spec.elem.size()) as f64 / share),
            bf16: 2 * m.n_rows * m.n_cols,
        })
    }

    /// A decoder through the format kernel.
    pub fn decoder(&self) -> GroupDecoder<'_> {
        GroupDecoder::new(self)
    }
}

#[cfg(test)]
mod tests;
