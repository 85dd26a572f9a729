//! Profiles (`--profile`) and fallback chains: which codec a tensor gets,
//! and what is tried when it misses its gate. Adding a profile is one
//! variant of [`Profile`] and its arms in [`Profile::name`] and
//! [`Profile::codec`]; the CLI derives `--profile` from this enum.

use hhtld_format::Regime;

use super::{CodecSpec, StageShape};

/// A named set of codecs (`--profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Profile {
    /// Two-stage d = 4 VQ with row scales everywhere: about 3.9:1, and every
    /// tensor passes its gate.
    Fidelity,
    /// On projections, a 256-entry d = 4 stage plus a cheap 16-entry d = 48
    /// 4-bit stage, jointly refined, with row scales: about 7.5:1 at the
    /// argmax gate (one-stage d = 4 reaches 7.8:1 but misses the gate's
    /// median on most MiniLM tensors). Index-regime tensors keep the
    /// fidelity codec.
    Compact,
    /// The original design: a row palette (one u8 code per row), SlotL on
    /// index-regime tensors, a FisherZ table per palette. It does not
    /// reconstruct real weights; its report says so.
    Hhtl,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 3] = [Profile::Fidelity, Profile::Compact, Profile::Hhtl];

    /// The `--profile` name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Fidelity => "fidelity",
            Profile::Compact => "compact",
            Profile::Hhtl => "hhtl",
        }
    }

    /// Parses a `--profile` name.
    pub fn from_name(s: &str) -> Option<Profile> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The codec this profile uses for a tensor of `regime`.
    pub fn codec(self, regime: Regime) -> CodecSpec {
        match (self, regime) {
            (Profile::Fidelity, _) | (Profile::Compact, Regime::Index) => CodecSpec::fidelity(),
            (Profile::Compact, _) => CodecSpec::compact(),
            (Profile::Hhtl, Regime::Index) => CodecSpec::row_palette().with_slot_l(true),
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
