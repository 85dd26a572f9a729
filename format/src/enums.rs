//! Enumerated field values (spec §3, §4). Each type converts from its on-disk
//! integer with `from_u8`/`from_u16`, returning `None` for unlisted values,
//! and has a stable lower-case name used by `inspect` and its JSON.

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $var:ident = $val:expr => $s:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $var),+ }
        impl $name {
            /// Every value, in on-disk order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The on-disk value.
            pub const fn to_raw(self) -> $repr { match self { $($name::$var => $val),+ } }
            /// Parses an on-disk value; `None` when it is not listed.
            pub const fn from_raw(v: $repr) -> Option<Self> { match v { $($val => Some($name::$var),)+ _ => None } }
            /// Stable name, as printed by `hhtld inspect`.
            pub const fn name(self) -> &'static str { match self { $($name::$var => $s),+ } }
            /// Parses a stable name.
            pub fn from_name(s: &str) -> Option<Self> { Self::ALL.iter().copied().find(|v| v.name() == s) }
        }
        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result { f.write_str(self.name()) }
        }
    };
}

wire_enum!(
    /// Kind of a section (spec §3).
    SectionKind: u16 {
        /// Records of palettes, bases, FisherZ tables and tensors.
        Directory = 1 => "directory",
        /// Name bytes.
        Strings = 2 => "strings",
        /// Key/value pairs.
        Metadata = 3 => "metadata",
        /// Palette entries.
        Palette = 4 => "palette",
        /// SlotL basis rows.
        Basis = 5 => "basis",
        /// k x k i8 FisherZ table.
        FisherZ = 6 => "fisher_z",
        /// Per-row codes.
        Entry = 7 => "entry",
        /// Per-row SlotL coefficients.
        SlotL = 8 => "slot_l",
        /// Per-row scales.
        Scale = 9 => "scale",
        /// Passthrough tensor bytes.
        Raw = 10 => "raw",
    }
);

wire_enum!(
    /// Element type of palettes, bases and scales.
    ElemType: u8 {
        /// IEEE binary32.
        F32 = 1 => "f32",
        /// IEEE binary16.
        F16 = 2 => "f16",
        /// bfloat16.
        Bf16 = 3 => "bf16",
    }
);

impl ElemType {
    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            ElemType::F32 => 4,
            ElemType::F16 | ElemType::Bf16 => 2,
        }
    }
}

wire_enum!(
    /// Original dtype of a tensor, as in safetensors.
    Dtype: u8 {
        /// Boolean, one byte.
        Bool = 1 => "BOOL",
        /// Unsigned 8-bit.
        U8 = 2 => "U8",
        /// Signed 8-bit.
        I8 = 3 => "I8",
        /// Signed 16-bit.
        I16 = 4 => "I16",
        /// Unsigned 16-bit.
        U16 = 5 => "U16",
        /// Signed 32-bit.
        I32 = 6 => "I32",
        /// 8-bit float, e4m3.
        F8E4M3 = 7 => "F8_E4M3",
        /// Unsigned 32-bit.
        U32 = 8 => "U32",
        /// Signed 64-bit.
        I64 = 9 => "I64",
        /// Unsigned 64-bit.
        U64 = 10 => "U64",
        /// IEEE binary16.
        F16 = 11 => "F16",
        /// bfloat16.
        Bf16 = 12 => "BF16",
        /// IEEE binary32.
        F32 = 13 => "F32",
        /// IEEE binary64.
        F64 = 14 => "F64",
        /// 8-bit float, e5m2.
        F8E5M2 = 15 => "F8_E5M2",
    }
);

impl Dtype {
    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E4M3 | Dtype::F8E5M2 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
        }
    }
    /// Whether a tensor of this dtype may be palette-encoded.
    pub const fn is_encodable_float(self) -> bool {
        matches!(self, Dtype::F16 | Dtype::Bf16 | Dtype::F32 | Dtype::F64)
    }
}

wire_enum!(
    /// What a tensor does in the model; drives the regime and palette sharing.
    Role: u8 {
        /// Anything else.
        Other = 0 => "other",
        /// Token embedding table.
        TokenEmbedding = 1 => "token_embedding",
        /// Position embedding table.
        PositionEmbedding = 2 => "position_embedding",
        /// Output projection to the vocabulary.
        LmHead = 3 => "lm_head",
        /// Attention query projection.
        AttnQ = 4 => "attn_q",
        /// Attention key projection.
        AttnK = 5 => "attn_k",
        /// Attention value projection.
        AttnV = 6 => "attn_v",
        /// Fused query/key/value projection.
        AttnQkv = 7 => "attn_qkv",
        /// Attention output projection.
        AttnO = 8 => "attn_o",
        /// MLP gate projection.
        MlpGate = 9 => "mlp_gate",
        /// MLP up projection.
        MlpUp = 10 => "mlp_up",
        /// MLP down projection.
        MlpDown = 11 => "mlp_down",
        /// Normalisation weight.
        Norm = 12 => "norm",
        /// Bias vector.
        Bias = 13 => "bias",
    }
);

wire_enum!(
    /// Quality regime of a tensor: which gate it must meet.
    Regime: u8 {
        /// Stored as is.
        Passthrough = 0 => "passthrough",
        /// Every row is looked up on its own (embeddings, lm_head).
        Index = 1 => "index",
        /// Projections whose output feeds an argmax-like consumer.
        Argmax = 2 => "argmax",
    }
);

wire_enum!(
    /// How a tensor's bytes are stored.
    Encoding: u8 {
        /// Original bytes in a RAW section.
        Raw = 0 => "raw",
        /// Staged palette codes in an ENTRY section.
        Palette = 1 => "palette",
    }
);
