//! Profiles (`--profile`) and fallback chains: which codec a tensor gets,
//! and what is tried when it misses its gate. Adding a profile is one
//! variant of [`Profile`] and its arms in [`Profile::name`] and
//! [`Profile::codec`]; the CLI derives `--profile` from this enum.

use hhtld_format::{ElemType, Regime, Role};

use super::{CodecSpec, StageShape};

/// A named set of codecs (`--profile`), chosen per tensor role.
///
/// Bits per weight go where the model's output is sensitive: attention
/// q/k/v and the FFN intermediate get the most, the attention and FFN
/// output projections less, the token embedding (half of a small encoder's
/// weights, and the cheapest place to lose precision end to end) least.
/// Measured end to end on all-MiniLM-L6-v2 with `scripts/reference_eval.py`,
/// calibrated (input statistics from calibration text: GPTQ-style error
/// feedback and importance-weighted palettes, see [`super::gptq`]); the
/// figures are in the README's quality table. Without calibration the
/// same codecs encode from the weights alone, at lower output fidelity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Profile {
    /// About 2:1, at or above int8 per row: one 256-entry scalar palette
    /// per group (a Lloyd-Max quantiser fitted to the weights, 8 bits per
    /// weight) with row scales, on every tensor. At this rate scalar levels
    /// beat residual VQ stages of the same size.
    NearLossless,
    /// The default, about 3.7:1: q/k/v and FFN intermediate 6 bits per
    /// weight (d = 2 then d = 4), attention/FFN output 5 (d = 2 then
    /// d = 8), embeddings 3 ([`CodecSpec::index_compact`]), all with row
    /// scales. (Weight-only, embeddings needed 4 bits, two d = 4 stages,
    /// at 3.3:1; with the projections calibrated, the embeddings' 3 bits
    /// still leave cos 0.993 on held-out calibration text.)
    Fidelity,
    /// About 4.5:1: q/k/v 5 bits per weight (d = 2 then d = 8), FFN
    /// intermediate 3.67 (d = 3 then d = 8), attention/FFN output 3 (d = 4
    /// then d = 8), embeddings 3 ([`CodecSpec::index_compact`]), all with
    /// row scales.
    Compact,
    /// The original design: a row palette (one u8 code per row), SlotL on
    /// index-regime tensors, a FisherZ table per palette. It does not
    /// reconstruct real weights; its report says so.
    Hhtl,
}

/// Row-scaled VQ with f32 palettes: a 256-entry stage of width `d0`, then
/// `later` stages of 256 entries of width `d1` (8-bit codes throughout).
fn staged(d0: usize, d1: usize, later: usize) -> CodecSpec {
    CodecSpec {
        later: Some(StageShape {
            d: d1,
            bits: 8,
            k: 256,
        }),
        ..f32_palettes(CodecSpec::vq(d0, 1 + later).with_row_scale(true))
    }
}

/// `c` with f32 palettes: bf16 entries (8-bit mantissa) move a 256-level
/// scalar palette by about its own step; f32 costs 1 KiB per palette more.
fn f32_palettes(c: CodecSpec) -> CodecSpec {
    CodecSpec {
        elem: ElemType::F32,
        ..c
    }
}

/// How sensitive the model's output is to error in a tensor, by role
/// (measured on MiniLM by swapping one group of tensors at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sensitivity {
    /// Token/position embeddings and the LM head (index regime).
    Table,
    /// q/k/v and every projection not named below.
    High,
    /// The FFN's first projection (intermediate/up/gate).
    Ffn,
    /// Attention output and FFN down projections.
    Output,
}

fn sensitivity(role: Role, regime: Regime) -> Sensitivity {
    match (role, regime) {
        (_, Regime::Index) => Sensitivity::Table,
        (Role::AttnO | Role::MlpDown, _) => Sensitivity::Output,
        (Role::MlpUp | Role::MlpGate, _) => Sensitivity::Ffn,
        _ => Sensitivity::High,
    }
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 4] = [
        Profile::NearLossless,
        Profile::Fidelity,
        Profile::Compact,
        Profile::Hhtl,
    ];

    /// The `--profile` name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::NearLossless => "near-lossless",
            Profile::Fidelity => "fidelity",
            Profile::Compact => "compact",
            Profile::Hhtl => "hhtl",
        }
    }

    /// Parses a `--profile` name.
    pub fn from_name(s: &str) -> Option<Profile> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The codec this profile uses for a tensor of `role` in `regime`.
    pub fn codec(self, role: Role, regime: Regime) -> CodecSpec {
        use Sensitivity::{Ffn, High, Output, Table};
        match (self, sensitivity(role, regime)) {
            (Profile::NearLossless, _) => f32_palettes(CodecSpec::vq(1, 1).with_row_scale(true)),
            (Profile::Fidelity | Profile::Compact, Table) => {
                f32_palettes(CodecSpec::index_compact())
            }
            (Profile::Fidelity, High | Ffn) => staged(2, 4, 1),
            (Profile::Fidelity, Output) => staged(2, 8, 1),
            (Profile::Compact, High) => staged(2, 8, 1),
            (Profile::Compact, Ffn) => staged(3, 8, 1),
            (Profile::Compact, Output) => staged(4, 8, 1),
            (Profile::Hhtl, Table) => CodecSpec::row_palette().with_slot_l(true),
            (Profile::Hhtl, _) => CodecSpec::row_palette(),
        }
    }

    /// Whether tensors that miss their gate fall back to finer codecs unless
    /// the user says otherwise. Off for `hhtl`, whose point is to show what
    /// the original design does: its misses are reported, not hidden.
    pub fn falls_back_by_default(self) -> bool {
        !matches!(self, Profile::Hhtl)
    }

    /// Whether every palette gets a FisherZ table.
    pub fn always_fisher_z(self) -> bool {
        matches!(self, Profile::Hhtl)
    }

    /// The model-level target `(cos mean, cos p1)`: the sentence-embedding
    /// cosine to the original model that `hhtld eval` must reach on the
    /// evaluation text (issue 9's table); `encode --eval --require-gates`
    /// exits 1 below it. `None` for `hhtl`, which is reported, not gated.
    pub fn cos_target(self) -> Option<(f64, f64)> {
        match self {
            Profile::NearLossless => Some((0.9995, 0.999)),
            Profile::Fidelity => Some((0.99, 0.98)),
            Profile::Compact => Some((0.95, 0.92)),
            Profile::Hhtl => None,
        }
    }
}

/// One step of a fallback chain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Codec {
    /// A palette codec.
    Palette(CodecSpec),
    /// The tensor stored as raw BF16.
    RawBf16,
}

impl Codec {
    /// Short human description, e.g. `d4x2 k256 8-bit +scale`.
    pub fn describe(&self) -> String {
        match self {
            Codec::RawBf16 => "raw bf16".to_string(),
            Codec::Palette(s) => describe_spec(s),
        }
    }
}

/// Short description of a codec spec.
pub fn describe_spec(s: &CodecSpec) -> String {
    let d = if s.d == 0 {
        "row".to_string()
    } else {
        format!("d{}", s.d)
    };
    let mut out = match s.later {
        // Stage 0 has the main shape, every later stage this one.
        Some(l) if s.stages > 1 => format!(
            "{d} k{} {}-bit + {}x d{} k{} {}-bit",
            s.k,
            s.bits,
            s.stages - 1,
            l.d,
            l.k,
            l.bits
        ),
        _ => format!("{d}x{} k{} {}-bit", s.stages, s.k, s.bits),
    };
    if s.row_scale {
        out.push_str(" +scale");
    }
    if s.slot_l {
        out.push_str(" +slotL");
    }
    out
}

/// `spec` with its entry width narrowed to rows of `n_cols` columns, so a
/// tensor narrower than `d` (say one column) still gets a palette codec.
pub fn fit_width(spec: CodecSpec, n_cols: u64) -> CodecSpec {
    let n = usize::try_from(n_cols).unwrap_or(usize::MAX).max(1);
    let narrow = |d: usize| if d == 0 { 0 } else { d.min(n) };
    CodecSpec {
        d: narrow(spec.d),
        later: spec.later.map(|l| StageShape {
            d: narrow(l.d),
            ..l
        }),
        ..spec
    }
}

/// The codecs tried after `spec` misses its gate, finest last: more stages
/// (up to `MAX_STAGES`), then 8-bit codes (4-bit codecs move to 8-bit; 8-bit
/// vector codecs move to a scalar 8-bit palette with row scales), then raw
/// BF16. A spec with cheap later stages (`compact`) first moves to the
/// fidelity codec, since repeating its cheap stage gains little.
pub fn fallback_chain(spec: &CodecSpec) -> Vec<Codec> {
    let mut chain = Vec::new();
    if spec.later.is_some() {
        let fidelity = CodecSpec {
            d: spec.d,
            ..CodecSpec::fidelity()
        };
        chain.push(Codec::Palette(fidelity));
        chain.extend(fallback_chain(&fidelity));
        return chain;
    }
    if spec.d != 0 {
        for stages in spec.stages + 1..=hhtld_format::limits::MAX_STAGES {
            chain.push(Codec::Palette(CodecSpec { stages, ..*spec }));
        }
    }
    let eight = if spec.bits == 4 {
        CodecSpec {
            bits: 8,
            k: 256,
            ..*spec
        }
    } else {
        CodecSpec::vq(1, 1).with_row_scale(true)
    };
    chain.push(Codec::Palette(eight));
    chain.push(Codec::RawBf16);
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use hhtld_format::limits::MAX_STAGES;

    /// Code bits per weight of a spec on rows of `n` columns (scales aside).
    fn bits_per_weight(s: &CodecSpec, n: usize) -> f64 {
        let later = s.later.unwrap_or(StageShape {
            d: s.d,
            bits: s.bits,
            k: s.k,
        });
        let stage = |d: usize, bits: u8| (n.div_ceil(d) * bits as usize).div_ceil(8) as f64 * 8.0;
        (stage(s.d, s.bits) + (s.stages - 1) as f64 * stage(later.d, later.bits)) / n as f64
    }

    const ROLES: [(Role, Regime); 7] = [
        (Role::TokenEmbedding, Regime::Index),
        (Role::PositionEmbedding, Regime::Index),
        (Role::AttnQ, Regime::Argmax),
        (Role::AttnV, Regime::Argmax),
        (Role::MlpUp, Regime::Argmax),
        (Role::AttnO, Regime::Argmax),
        (Role::MlpDown, Regime::Argmax),
    ];

    #[test]
    fn every_profile_codec_fits_the_format() {
        for p in Profile::ALL {
            assert_eq!(Profile::from_name(p.name()), Some(p));
            for (role, regime) in ROLES {
                let s = p.codec(role, regime);
                assert!((1..=MAX_STAGES).contains(&s.stages), "{p:?} {role:?}");
                assert!(s.bits == 4 || s.bits == 8);
                assert!(s.k >= 1 && s.k <= 1 << s.bits);
                if let Some(l) = s.later {
                    assert!(l.k >= 1 && l.k <= 1 << l.bits);
                }
            }
        }
    }

    #[test]
    fn bits_go_where_the_output_is_sensitive() {
        for p in [Profile::Fidelity, Profile::Compact] {
            let b = |role, regime| bits_per_weight(&p.codec(role, regime), 384);
            let q = b(Role::AttnQ, Regime::Argmax);
            assert!(q > b(Role::AttnO, Regime::Argmax), "{p:?}");
            assert!(q > b(Role::MlpDown, Regime::Argmax), "{p:?}");
            assert!(q > b(Role::TokenEmbedding, Regime::Index), "{p:?}");
        }
        let nl = bits_per_weight(
            &Profile::NearLossless.codec(Role::AttnQ, Regime::Argmax),
            384,
        );
        assert_eq!(nl, 8.0);
        let fid = bits_per_weight(&Profile::Fidelity.codec(Role::AttnQ, Regime::Argmax), 384);
        assert_eq!(fid, 6.0);
        assert!(Profile::ALL
            .iter()
            .all(
                |p| p.codec(Role::AttnQ, Regime::Argmax).elem == ElemType::F32
                    || *p == Profile::Hhtl
            ));
    }

    #[test]
    fn cos_targets_tighten_with_the_bits_and_the_mean_is_above_p1() {
        let t = |p: Profile| p.cos_target().unwrap();
        let (nl, fid, com) = (
            t(Profile::NearLossless),
            t(Profile::Fidelity),
            t(Profile::Compact),
        );
        assert!(nl.0 > fid.0 && fid.0 > com.0);
        assert!(nl.1 > fid.1 && fid.1 > com.1);
        assert!([nl, fid, com]
            .iter()
            .all(|(mean, p1)| mean >= p1 && *mean < 1.0));
        assert_eq!(Profile::Hhtl.cos_target(), None);
    }
}
