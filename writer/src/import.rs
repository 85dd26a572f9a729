//! Safetensors import (re-exported from `hhtld_import`) and tensor
//! classification: [`classify`] maps a tensor name, dtype and shape to a
//! [`Role`] and a [`Regime`]; a [`Classifier`] adds `--role NAME=ROLE`
//! overrides. [`group_key`] says which tensors may share palettes.

use std::collections::BTreeMap;

use hhtld_format::{Dtype, Regime, Role};

pub use hhtld_import::*;

/// Tensors with fewer elements than this are passed through.
///
/// Why 4096: a tensor this small is at most 8 KiB as BF16. Encoding it with
/// a private two-stage 8-bit palette of 4-wide entries costs
/// `2 x 256 x 4 x 2 B = 4 KiB` of palettes plus `2 x numel / 4` bytes of codes
/// plus a 160-byte record and up to 3 sections of table entries and
/// alignment padding; below 4096 elements that saves less than a third of
/// the bytes, while these tensors (MiniLM's `token_type_embeddings`,
/// per-head scalars, ...) are a negligible share of any model's size. Their
/// error is therefore not worth taking.
pub const SMALL_TENSOR_NUMEL: u64 = 4096;

/// A `--role` override that cannot be applied. Each variant names the
/// argument or the tensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RoleError {
    /// A `--role` argument is not `NAME=ROLE`.
    #[error("role override {arg:?}: expected NAME=ROLE with a non-empty tensor name")]
    OverrideSyntax {
        /// The argument.
        arg: String,
    },
    /// A `--role` argument names an unknown role.
    #[error("role override {arg:?}: unknown role {role:?} (known: {known})")]
    UnknownRole {
        /// The argument.
        arg: String,
        /// The role as written.
        role: String,
        /// Every known role name, comma-separated.
        known: String,
    },
    /// The same tensor was given two different roles.
    #[error("role override for tensor {tensor:?} given twice: {first} and {second}")]
    ConflictingOverride {
        /// The tensor name.
        tensor: String,
        /// The first role.
        first: Role,
        /// The second role.
        second: Role,
    },
    /// An override names a tensor that the model does not have.
    #[error("role override names tensor {tensor:?}, which is not in the model")]
    OverrideUnknownTensor {
        /// The tensor name.
        tensor: String,
    },
    /// An override asks for an encoded regime on a tensor whose dtype cannot
    /// be palette-encoded.
    #[error("role override {role} for tensor {tensor:?} needs an encodable float, but its dtype is {dtype}; use role other, norm or bias to keep it raw")]
    OverrideNotEncodable {
        /// The tensor name.
        tensor: String,
        /// The requested role.
        role: Role,
        /// The tensor's dtype.
        dtype: Dtype,
    },
}

// ---------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------

/// Role and regime of one tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Classification {
    /// What the tensor does.
    pub role: Role,
    /// Which quality gate it must meet, or passthrough.
    pub regime: Regime,
}

/// Role from the tensor name alone (see [`classify`] for the rules).
///
/// Only the last components of the dotted name count, so prefixes such as
/// `bert.`, `model.` or `transformer.` do not matter; matching ignores ASCII
/// case (BERT writes `LayerNorm`).
pub fn role_from_name(name: &str) -> Role {
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('.').collect();
    let (last, rest) = match parts.split_last() {
        Some((l, r)) => (*l, r),
        None => return Role::Other,
    };
    let is_bias = last == "bias";
    // `module` is the layer owning the parameter: the component before
    // `.weight`/`.bias`, or the last one for bare names like `wte`.
    let module_path: &[&str] = if is_bias || last == "weight" {
        rest
    } else {
        &parts
    };
    let n = module_path.len();
    let at = |back: usize| {
        n.checked_sub(back)
            .and_then(|i| module_path.get(i))
            .copied()
            .unwrap_or("")
    };
    let (module, parent, grand) = (at(1), at(2), at(3));

    let is_norm = module.contains("norm") || module == "ln" || module.starts_with("ln_");
    if is_norm {
        return Role::Norm;
    }
    if is_bias {
        return Role::Bias;
    }
    match module {
        "word_embeddings" | "embed_tokens" | "wte" | "tok_embeddings" | "embed_in" => {
            Role::TokenEmbedding
        }
        "position_embeddings" | "wpe" | "embed_positions" => Role::PositionEmbedding,
        "lm_head" | "embed_out" => Role::LmHead,
        "q_proj" | "query" | "q_lin" => Role::AttnQ,
        "k_proj" | "key" | "k_lin" => Role::AttnK,
        "v_proj" | "value" | "v_lin" => Role::AttnV,
        "c_attn" | "qkv_proj" | "query_key_value" | "w_pack" => Role::AttnQkv,
        "o_proj" | "out_proj" | "out_lin" => Role::AttnO,
        "gate_proj" => Role::MlpGate,
        "up_proj" | "c_fc" | "dense_h_to_4h" | "fc1" => Role::MlpUp,
        "down_proj" | "dense_4h_to_h" | "fc2" => Role::MlpDown,
        // GPT-2 uses `c_proj` for both attention output and MLP down.
        "c_proj" => match parent {
            "attn" | "attention" => Role::AttnO,
            "mlp" => Role::MlpDown,
            _ => Role::Other,
        },
        // BERT: attention.output.dense / intermediate.dense / output.dense.
        "dense" => match (grand, parent) {
            (_, "intermediate") => Role::MlpUp,
            ("attention", "output") => Role::AttnO,
            (_, "output") => Role::MlpDown,
            _ => Role::Other,
        },
        _ => Role::Other,
    }
}

/// Narrowest row a quality gate can judge: per-row Pearson rho needs at
/// least two values per row, and is noise below a handful.
pub const MIN_GATED_COLS: u64 = 8;

/// Regime the rules give a tensor of this role, dtype and shape: passthrough
/// for non-encodable dtypes, fewer than 2 dimensions, fewer than
/// [`SMALL_TENSOR_NUMEL`] elements, rows narrower than [`MIN_GATED_COLS`]
/// (no per-row gate is meaningful there), norms and biases; index for
/// embeddings and `lm_head`; argmax otherwise.
pub fn default_regime(role: Role, dtype: Dtype, shape: &[u64]) -> Regime {
    let numel = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .unwrap_or(u64::MAX);
    let narrow = matrix_dims(shape).is_none_or(|(_, cols)| cols < MIN_GATED_COLS);
    if !dtype.is_encodable_float() || shape.len() < 2 || numel < SMALL_TENSOR_NUMEL || narrow {
        return Regime::Passthrough;
    }
    match role {
        Role::Norm | Role::Bias => Regime::Passthrough,
        Role::TokenEmbedding | Role::PositionEmbedding | Role::LmHead => Regime::Index,
        _ => Regime::Argmax,
    }
}

/// Classifies a tensor by name, dtype and shape.
///
/// Roles (from the name, [`role_from_name`]):
/// - token embeddings `word_embeddings` (BERT), `embed_tokens` (Llama,
///   Qwen), `wte` (GPT-2), `tok_embeddings`, `embed_in`; position
///   embeddings `position_embeddings`, `wpe`, `embed_positions`; `lm_head`,
///   `embed_out`;
/// - attention: BERT `attention.self.query/key/value`,
///   `attention.output.dense`; Llama/Qwen `q_proj k_proj v_proj o_proj`;
///   GPT-2 `c_attn` (fused QKV) and `attn.c_proj`; also `out_proj`,
///   `qkv_proj`, `query_key_value`, DistilBERT `q_lin`...;
/// - MLP: BERT `intermediate.dense` (up) and `output.dense` outside
///   `attention` (down); `gate_proj up_proj down_proj`; GPT-2 `mlp.c_fc`,
///   `mlp.c_proj`; `fc1`/`fc2`, `dense_h_to_4h`/`dense_4h_to_h`;
/// - norms: a module whose name contains `norm` or starts with `ln_` (both
///   its weight and bias); biases: any other `.bias`;
/// - anything else: other.
///
/// Regime: [`default_regime`].
pub fn classify(name: &str, dtype: Dtype, shape: &[u64]) -> Classification {
    let role = role_from_name(name);
    Classification {
        role,
        regime: default_regime(role, dtype, shape),
    }
}

/// Regime for a tensor whose role was set by an override.
///
/// The role decides: norm and bias are passthrough (so `NAME=norm` keeps a
/// tensor raw), embeddings and `lm_head` are index, projections are argmax,
/// and other is argmax for float tensors of 2 or more dimensions and
/// passthrough otherwise. The size and dimension heuristics of
/// [`default_regime`] do not apply: an override is an explicit request.
/// A request for an encoded regime on a dtype that cannot be
/// palette-encoded is an error ([`RoleError::OverrideNotEncodable`])
/// rather than a silent passthrough, so a wrong `--role` is noticed.
pub fn override_regime(
    tensor: &str,
    role: Role,
    dtype: Dtype,
    shape: &[u64],
) -> Result<Regime, RoleError> {
    let regime = match role {
        Role::Norm | Role::Bias => Regime::Passthrough,
        Role::TokenEmbedding | Role::PositionEmbedding | Role::LmHead => Regime::Index,
        Role::Other if shape.len() < 2 || !dtype.is_encodable_float() => Regime::Passthrough,
        _ => Regime::Argmax,
    };
    if regime != Regime::Passthrough && !dtype.is_encodable_float() {
        return Err(RoleError::OverrideNotEncodable {
            tensor: tensor.to_owned(),
            role,
            dtype,
        });
    }
    Ok(regime)
}

/// Parses a `NAME=ROLE` argument (split at the last `=`, so names may hold
/// `=`); `ROLE` is a [`Role::name`] such as `attn_q` or `token_embedding`.
pub fn parse_override(arg: &str) -> Result<(String, Role), RoleError> {
    let Some((name, role)) = arg.rsplit_once('=') else {
        return Err(RoleError::OverrideSyntax {
            arg: arg.to_owned(),
        });
    };
    if name.is_empty() {
        return Err(RoleError::OverrideSyntax {
            arg: arg.to_owned(),
        });
    }
    let role_v = Role::from_name(role).ok_or_else(|| RoleError::UnknownRole {
        arg: arg.to_owned(),
        role: role.to_owned(),
        known: Role::ALL
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    Ok((name.to_owned(), role_v))
}

/// A tensor with its classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifiedTensor {
    /// The tensor.
    pub info: TensorInfo,
    /// Its role and regime.
    pub class: Classification,
    /// Whether an override set the role.
    pub overridden: bool,
}

/// [`classify`] plus per-tensor role overrides (`--role NAME=ROLE`).
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    overrides: BTreeMap<String, Role>,
}

impl Classifier {
    /// A classifier without overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// A classifier with the given overrides. The same tensor given twice
    /// with the same role is accepted; with different roles it is
    /// [`RoleError::ConflictingOverride`].
    pub fn with_overrides(
        overrides: impl IntoIterator<Item = (String, Role)>,
    ) -> Result<Self, RoleError> {
        let mut map = BTreeMap::new();
        for (name, role) in overrides {
            match map.get(&name) {
                Some(&first) if first != role => {
                    return Err(RoleError::ConflictingOverride {
                        tensor: name,
                        first,
                        second: role,
                    })
                }
                _ => {
                    map.insert(name, role);
                }
            }
        }
        Ok(Classifier { overrides: map })
    }

    /// Parses `NAME=ROLE` arguments ([`parse_override`]) into a classifier.
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Self, RoleError> {
        let parsed = args
            .iter()
            .map(|a| parse_override(a.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::with_overrides(parsed)
    }

    /// The overrides, by tensor name.
    pub fn overrides(&self) -> impl Iterator<Item = (&str, Role)> {
        self.overrides.iter().map(|(n, &r)| (n.as_str(), r))
    }

    /// Classifies one tensor: the override's role and [`override_regime`]
    /// when there is one, else [`classify`].
    pub fn classify(
        &self,
        name: &str,
        dtype: Dtype,
        shape: &[u64],
    ) -> Result<Classification, RoleError> {
        match self.overrides.get(name) {
            Some(&role) => Ok(Classification {
                role,
                regime: override_regime(name, role, dtype, shape)?,
            }),
            None => Ok(classify(name, dtype, shape)),
        }
    }

    /// Classifies every tensor of `model`, in model order. Fails when an
    /// override names a tensor the model does not have
    /// ([`RoleError::OverrideUnknownTensor`]), so a typo is not ignored.
    pub fn classify_model(
        &self,
        model: &SafetensorsModel,
    ) -> Result<Vec<ClassifiedTensor>, RoleError> {
        if let Some(name) = self.overrides.keys().find(|n| model.get(n).is_none()) {
            return Err(RoleError::OverrideUnknownTensor {
                tensor: name.clone(),
            });
        }
        model
            .tensors()
            .map(|info| {
                let class = self.classify(&info.name, info.dtype, &info.shape)?;
                let overridden = self.overrides.contains_key(&info.name);
                Ok(ClassifiedTensor {
                    info,
                    class,
                    overridden,
                })
            })
            .collect()
    }
}

/// Key of a palette-sharing group: tensors with the same role and the same
/// matrix shape may share palettes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// The role.
    pub role: Role,
    /// Matrix width (spec §4 view).
    pub n_cols: u64,
    /// Matrix height.
    pub n_rows: u64,
}

/// The palette-sharing group of a tensor; `None` when its matrix width
/// overflows u64 (never for a tensor from [`SafetensorsModel`]).
pub fn group_key(role: Role, shape: &[u64]) -> Option<GroupKey> {
    let (n_rows, n_cols) = matrix_dims(shape)?;
    Some(GroupKey {
        role,
        n_cols,
        n_rows,
    })
}
