//! The main job: a safetensors model in, an `.hhtld` file out, with every
//! encoded tensor measured against its gate over all of its rows.
//!
//! Tensors are classified ([`crate::import::Classifier`]), grouped by role
//! and shape, and each group is encoded with its profile's codec, sharing one
//! palette per stage. Groups are processed one at a time and written as soon
//! as they are encoded, so peak memory is the largest group's f32 copy plus
//! its codes, not the whole model. A tensor that misses its gate is
//! re-encoded on its own with the next finer codec of [`fallback_chain`].

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::path::Path;

use hhtld_format::encode::{elem_bytes, round_to_elem};
use hhtld_format::{Dtype, ElemType, Regime, Role};
use thiserror::Error;

use crate::builder::{GroupIds, MemberInfo, Quality, RawTensor, Writer};
use crate::codec::{
    encode_group, row_quality, row_quality_by, CodecError, CodecSpec, EncodedGroup, Gate,
    GroupDecoder, Matrix, QualityStats,
};
use crate::error::WriteError;
use crate::import::{
    group_key, ClassifiedTensor, Classifier, ImportError, RoleError, SafetensorsModel,
};
use crate::report::SizeReport;

pub use crate::codec::profile::{describe_spec, fallback_chain, fit_width, Codec, Profile};

/// What to encode and how.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// The profile.
    pub profile: Profile,
    /// Add a FisherZ table for every palette.
    pub fisher_z: bool,
    /// Fall back to finer codecs on a gate miss.
    pub fallback: bool,
    /// Classification with `--role` overrides.
    pub classifier: Classifier,
}

impl EncodeOptions {
    /// Options for `profile` with its defaults.
    pub fn new(profile: Profile) -> Self {
        EncodeOptions {
            profile,
            fisher_z: profile.always_fisher_z(),
            fallback: profile.falls_back_by_default(),
            classifier: Classifier::new(),
        }
    }
}

/// What happened to one tensor.
#[derive(Debug, Clone)]
pub struct TensorOutcome {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Regime.
    pub regime: Regime,
    /// Final codec, or `None` for passthrough.
    pub codec: Option<Codec>,
    /// Quality of the final codec (encoded tensors only).
    pub quality: Option<Quality>,
    /// Whether the final codec meets the regime's gate (`None`: no gate).
    pub passed: Option<bool>,
    /// One line per codec that was tried and missed the gate.
    pub fallbacks: Vec<String>,
}

/// The result of [`encode_model`].
#[derive(Debug, Clone)]
pub struct EncodeSummary {
    /// Profile used.
    pub profile: Profile,
    /// Per tensor, in model order.
    pub tensors: Vec<TensorOutcome>,
    /// Every byte of the file, by kind, tensor and regime.
    pub size: SizeReport,
}

impl EncodeSummary {
    /// Tensors whose final codec misses their gate.
    pub fn gate_failures(&self) -> impl Iterator<Item = &TensorOutcome> {
        self.tensors.iter().filter(|t| t.passed == Some(false))
    }
}

/// Errors of the encode pipeline.
#[derive(Debug, Error)]
pub enum EncodeError {
    /// Reading the input.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A `--role` override that does not apply to the model.
    #[error(transparent)]
    Role(#[from] RoleError),
    /// A codec rejected a group.
    #[error("tensor {tensor:?}: {source}")]
    Codec {
        /// The first tensor of the group.
        tensor: String,
        /// Why.
        source: CodecError,
    },
    /// Writing the file.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// A progress event, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// Encoding starts: how many parameters in all.
    Start {
        /// Total parameters.
        params: u64,
    },
    /// A tensor is done.
    Tensor {
        /// Its name.
        name: &'a str,
        /// Its parameters.
        params: u64,
    },
}

/// Encodes `model` into a new file at `dest` (written atomically).
pub fn encode_model(
    model: &SafetensorsModel,
    dest: &Path,
    opts: &EncodeOptions,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<EncodeSummary, EncodeError> {
    let writer = Writer::create(dest)?;
    encode_into(model, writer, opts, progress)
}

/// [`encode_model`] into any writer.
pub fn encode_into<W: Write + Seek>(
    model: &SafetensorsModel,
    mut w: Writer<W>,
    opts: &EncodeOptions,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<EncodeSummary, EncodeError> {
    let tensors = opts.classifier.classify_model(model)?;
    progress(Progress::Start {
        params: tensors.iter().map(|t| t.info.numel()).sum(),
    });
    w.set_metadata(
        "hhtld.encoder",
        concat!("hhtld ", env!("CARGO_PKG_VERSION")),
    )?;
    w.set_metadata("hhtld.profile", opts.profile.name())?;
    for (k, v) in model.metadata() {
        w.set_metadata(&format!("source.{k}"), v)?;
    }

    let mut outcomes: Vec<Option<TensorOutcome>> = vec![None; tensors.len()];
    for group in plan_groups(&tensors) {
        if let [i] = group[..] {
            if !encodable(&tensors[i]) {
                let t = &tensors[i];
                w.add_raw_tensor(RawTensor {
                    name: &t.info.name,
                    dtype: t.info.dtype,
                    shape: &t.info.shape,
                    role: t.class.role,
                    regime: t.class.regime,
                    bytes: model.raw_bytes(&t.info.name)?,
                })?;
                outcomes[i] = Some(TensorOutcome {
                    name: t.info.name.clone(),
                    role: t.class.role,
                    regime: t.class.regime,
                    codec: None,
                    quality: None,
                    passed: None,
                    fallbacks: Vec::new(),
                });
                progress(Progress::Tensor {
                    name: &t.info.name,
                    params: t.info.numel(),
                });
                continue;
            }
        }
        encode_one_group(
            model,
            &tensors,
            &group,
            opts,
            &mut w,
            &mut outcomes,
            progress,
        )?;
    }
    w.order_tensors_like(tensors.iter().map(|t| t.info.name.as_str()))?;
    let size = w.finish()?;
    Ok(EncodeSummary {
        profile: opts.profile,
        tensors: outcomes.into_iter().flatten().collect(),
        size,
    })
}

fn encodable(t: &ClassifiedTensor) -> bool {
    t.class.regime != Regime::Passthrough && t.info.dtype.is_encodable_float() && t.info.numel() > 0
}

/// Groups of tensor indices, in order of first appearance: encodable
/// tensors of the same role and shape together, every other tensor alone.
fn plan_groups(tensors: &[ClassifiedTensor]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_key = HashMap::new();
    for (i, t) in tensors.iter().enumerate() {
        let key = group_key(t.class.role, &t.info.shape);
        match key {
            Some(key) if encodable(t) => {
                let at = *by_key.entry((key, t.class.regime)).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[at].push(i);
            }
            _ => groups.push(vec![i]),
        }
    }
    groups
}

/// A tensor's data as f32 with its matrix shape.
struct Loaded {
    data: Vec<f32>,
    n_rows: usize,
    n_cols: usize,
}

impl Loaded {
    fn matrix(&self) -> Matrix<'_> {
        Matrix {
            data: &self.data,
            n_rows: self.n_rows,
            n_cols: self.n_cols,
        }
    }
}

fn load(model: &SafetensorsModel, t: &ClassifiedTensor) -> Result<Loaded, EncodeError> {
    let (r, c) = t.info.matrix_dims();
    Ok(Loaded {
        data: model.to_f32(&t.info.name)?,
        n_rows: r as usize,
        n_cols: c as usize,
    })
}

/// Encodes `mats` with `spec`, and measures each member over all rows.
fn encode_measured(
    mats: &[Matrix<'_>],
    spec: &CodecSpec,
) -> Result<(EncodedGroup, Vec<QualityStats>), CodecError> {
    let group = encode_group(mats, spec)?;
    let dec = GroupDecoder::new(&group);
    let stats = mats
        .iter()
        .enumerate()
        .map(|(i, m)| row_quality_by(m, |r, out| dec.decode_row(i, r, out)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((group, stats))
}

fn miss_line(codec: &str, q: &QualityStats, gate: &Gate) -> String {
    format!(
        "{codec}: rho median {:.4} / p5 {:.4} misses gate {:.2} / {:.2}",
        q.rho_median, q.rho_p5, gate.median, gate.p5
    )
}

#[allow(clippy::too_many_arguments)]
fn encode_one_group<W: Write + Seek>(
    model: &SafetensorsModel,
    tensors: &[ClassifiedTensor],
    group: &[usize],
    opts: &EncodeOptions,
    w: &mut Writer<W>,
    outcomes: &mut [Option<TensorOutcome>],
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<(), EncodeError> {
    let first = &tensors[group[0]];
    let regime = first.class.regime;
    let gate = Gate::for_regime(regime);
    let spec = fit_width(opts.profile.codec(regime), first.info.matrix_dims().1);
    let codec_err = |source| EncodeError::Codec {
        tensor: first.info.name.clone(),
        source,
    };
    let loaded = group
        .iter()
        .map(|&i| load(model, &tensors[i]))
        .collect::<Result<Vec<_>, _>>()?;
    let mats: Vec<Matrix<'_>> = loaded.iter().map(Loaded::matrix).collect();
    let (enc, stats) = encode_measured(&mats, &spec).map_err(codec_err)?;

    // Per member: the gate it missed and must fall back under, or None to
    // keep the group's codec.
    let missed: Vec<Option<Gate>> = stats
        .iter()
        .map(|q| gate.filter(|g| opts.fallback && !g.passes(q)))
        .collect();
    // The group's palettes are written once, at the first member that keeps
    // them, so a group whose every member falls back writes none.
    let mut shared: Option<GroupIds> = None;
    for (m, &i) in group.iter().enumerate() {
        let t = &tensors[i];
        let mut outcome = TensorOutcome {
            name: t.info.name.clone(),
            role: t.class.role,
            regime,
            codec: Some(Codec::Palette(spec)),
            quality: Some(Quality::from(&stats[m])),
            passed: gate.map(|g| g.passes(&stats[m])),
            fallbacks: Vec::new(),
        };
        match missed[m] {
            None => {
                let objs = match shared {
                    Some(ref o) => o,
                    None => shared.insert(w.add_group_objects(&enc, opts.fisher_z)?),
                };
                add_encoded(w, t, &enc, m, objs, &stats[m])?;
            }
            Some(g) => {
                outcome
                    .fallbacks
                    .push(miss_line(&describe_spec(&spec), &stats[m], &g));
                fall_back(w, t, &mats[m], &spec, g, opts.fisher_z, &mut outcome)?;
            }
        }
        outcomes[i] = Some(outcome);
        progress(Progress::Tensor {
            name: &t.info.name,
            params: t.info.numel(),
        });
    }
    Ok(())
}

/// Walks [`fallback_chain`] until a codec meets `gate`; raw BF16 always
/// ends the chain.
fn fall_back<W: Write + Seek>(
    w: &mut Writer<W>,
    t: &ClassifiedTensor,
    m: &Matrix<'_>,
    spec: &CodecSpec,
    gate: Gate,
    fisher_z: bool,
    outcome: &mut TensorOutcome,
) -> Result<(), EncodeError> {
    let codec_err = |source| EncodeError::Codec {
        tensor: t.info.name.clone(),
        source,
    };
    for codec in fallback_chain(spec) {
        match codec {
            Codec::Palette(s) => {
                // A finer codec that does not fit this tensor is skipped.
                if s.entry_width(m.n_cols).is_err() {
                    continue;
                }
                let (enc, stats) =
                    encode_measured(std::slice::from_ref(m), &s).map_err(codec_err)?;
                let q = &stats[0];
                if gate.passes(q) {
                    let objs = w.add_group_objects(&enc, fisher_z)?;
                    add_encoded(w, t, &enc, 0, &objs, q)?;
                    outcome.codec = Some(codec);
                    outcome.quality = Some(Quality::from(q));
                    outcome.passed = Some(true);
                    return Ok(());
                }
                outcome
                    .fallbacks
                    .push(miss_line(&codec.describe(), q, &gate));
            }
            Codec::RawBf16 => {
                let bytes = elem_bytes(m.data, ElemType::Bf16);
                w.add_raw_tensor(RawTensor {
                    name: &t.info.name,
                    dtype: Dtype::Bf16,
                    shape: &t.info.shape,
                    role: t.class.role,
                    regime: t.class.regime,
                    bytes: &bytes,
                })?;
                let back: Vec<f32> = m
                    .data
                    .iter()
                    .map(|&v| round_to_elem(v, ElemType::Bf16))
                    .collect();
                let q = row_quality(m, &back).map_err(|e| codec_err(e.into()))?;
                outcome.codec = Some(codec);
                outcome.passed = Some(gate.passes(&q));
                outcome.quality = Some(Quality::from(&q));
                return Ok(());
            }
        }
    }
    Ok(())
}

fn add_encoded<W: Write + Seek>(
    w: &mut Writer<W>,
    t: &ClassifiedTensor,
    enc: &EncodedGroup,
    member: usize,
    objs: &GroupIds,
    q: &QualityStats,
) -> Result<(), EncodeError> {
    w.add_group_member(
        enc,
        objs,
        member,
        MemberInfo {
            name: &t.info.name,
            dtype: t.info.dtype,
            shape: &t.info.shape,
            role: t.class.role,
            regime: t.class.regime,
            quality: Some(Quality::from(q)),
        },
    )?;
    Ok(())
}
