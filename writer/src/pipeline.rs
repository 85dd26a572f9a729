//! The main job: a safetensors model in, an `.hhtld` file out, with every
//! encoded tensor measured against its gate over all of its rows.
//!
//! Tensors are classified ([`crate::import::Classifier`]), grouped by role
//! and shape, and each group is encoded with its profile's codec, sharing one
//! palette per stage. Memory does not grow with the model: a group's
//! palettes are fitted to a bounded sample of its rows
//! ([`KmeansParams::fit_values`](crate::codec::KmeansParams::fit_values)),
//! then each member is encoded and measured a chunk of rows at a time and
//! written, and its mapped input pages are released. Peak memory is about
//! the fit sample's working set plus one tensor's codes (and, for a tensor
//! that falls back to raw BF16, that tensor as f32). A tensor that misses
//! its gate is re-encoded on its own with the next finer codec of
//! [`fallback_chain`].

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::path::Path;
use std::sync::Arc;

use hhtld_format::encode::{elem_bytes, round_to_elem};
use hhtld_format::{Dtype, ElemType, Regime};
use thiserror::Error;

use crate::builder::{GroupIds, Quality, RawTensor, TensorHeader, Writer};
use crate::calibration::Calibration;
use crate::codec::{
    fit_group_weighted, row_quality_by, sample_rows, CodecError, CodecSpec, EncodedMatrix,
    Feedback, Gate, GroupFit, Matrix, QualityAcc, QualityStats,
};
use crate::error::WriteError;
use crate::import::{
    decode_f32_into, group_key, Classification, ClassifiedTensor, Classifier, ImportError,
    RoleError, SafetensorsModel,
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
    /// Further metadata entries (key, value), e.g. the model's side files
    /// ([`crate::side_files`]).
    pub metadata: Vec<(String, String)>,
    /// Input statistics from running the original model
    /// ([`crate::calibration`]); `None` encodes from the weights alone.
    pub calibration: Option<Arc<Calibration>>,
}

impl EncodeOptions {
    /// Options for `profile` with its defaults.
    pub fn new(profile: Profile) -> Self {
        EncodeOptions {
            profile,
            fisher_z: profile.always_fisher_z(),
            fallback: profile.falls_back_by_default(),
            classifier: Classifier::new(),
            metadata: Vec::new(),
            calibration: None,
        }
    }
}

/// The codec a tensor ended with, as measured on it.
#[derive(Debug, Clone, Copy)]
pub struct FinalCodec {
    /// A palette spec, or raw BF16 once every palette missed the gate.
    pub codec: Codec,
    /// Its reconstruction quality on the tensor.
    pub quality: Quality,
    /// Whether it meets the regime's gate (`None`: no gate).
    pub passed: Option<bool>,
}

impl FinalCodec {
    fn new(codec: Codec, q: &QualityStats, passed: Option<bool>) -> Self {
        FinalCodec {
            codec,
            quality: Quality::from(q),
            passed,
        }
    }
}

/// What happened to one tensor.
#[derive(Debug, Clone)]
pub struct TensorOutcome {
    /// Name.
    pub name: String,
    /// Role and regime.
    pub class: Classification,
    /// The codec it is stored with; `None` for a passthrough tensor.
    pub stored: Option<FinalCodec>,
    /// One line per codec that was tried and missed the gate.
    pub fallbacks: Vec<String>,
}

impl TensorOutcome {
    /// `t` stored as is: no codec and no fallback; what encoding a tensor
    /// fills in.
    fn passthrough(t: &ClassifiedTensor) -> Self {
        TensorOutcome {
            name: t.info.name.clone(),
            class: t.class,
            stored: None,
            fallbacks: Vec::new(),
        }
    }

    /// Final codec, or `None` for passthrough.
    pub fn codec(&self) -> Option<Codec> {
        self.stored.map(|s| s.codec)
    }

    /// Quality of the final codec (encoded tensors only).
    pub fn quality(&self) -> Option<Quality> {
        self.stored.map(|s| s.quality)
    }

    /// Whether the final codec meets the regime's gate (`None`: passthrough,
    /// or no gate).
    pub fn passed(&self) -> Option<bool> {
        self.stored.and_then(|s| s.passed)
    }
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
        self.tensors.iter().filter(|t| t.passed() == Some(false))
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
    for (k, v) in &opts.metadata {
        w.set_metadata(k, v)?;
    }

    let mut outcomes: Vec<Option<TensorOutcome>> = vec![None; tensors.len()];
    for group in plan_groups(&tensors) {
        if let [i] = group[..] {
            if !encodable(&tensors[i]) {
                let t = &tensors[i];
                w.add_raw_tensor(RawTensor {
                    header: header(t),
                    bytes: model.raw_bytes(&t.info.name)?,
                })?;
                model.release(&t.info.name)?;
                outcomes[i] = Some(TensorOutcome::passthrough(t));
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

/// `t` as the builder records it: its name, dtype, shape and class.
fn header(t: &ClassifiedTensor) -> TensorHeader<'_> {
    TensorHeader {
        name: &t.info.name,
        dtype: t.info.dtype,
        shape: &t.info.shape,
        role: t.class.role,
        regime: t.class.regime,
    }
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

/// Values per chunk when a tensor is encoded and measured: a tensor's f32
/// working set is a few chunks (about 5 x 16 MB), not the whole tensor.
const CHUNK_VALUES: usize = 1 << 22;

/// Appends rows `r0..r1` of `t` (a matrix of `n_cols` columns) to `out` as
/// f32.
fn read_rows(
    model: &SafetensorsModel,
    t: &ClassifiedTensor,
    r0: usize,
    r1: usize,
    out: &mut Vec<f32>,
) -> Result<(), EncodeError> {
    let n_cols = t.info.matrix_dims().1 as usize;
    let row = n_cols * t.info.dtype.size();
    let bytes = model.raw_bytes(&t.info.name)?;
    let part = bytes
        .get(r0 * row..r1 * row)
        .ok_or_else(|| EncodeError::Codec {
            tensor: t.info.name.clone(),
            source: CodecError::DataLen {
                tensor: 0,
                n_rows: r1,
                n_cols,
                got: bytes.len() / t.info.dtype.size().max(1),
            },
        })?;
    decode_f32_into(&t.info.name, t.info.dtype, part, out)?;
    Ok(())
}

/// Fits the group's palettes to its rows, or to [`sample_rows`] of them,
/// reading only those rows, member by member.
fn fit_members(
    model: &SafetensorsModel,
    members: &[&ClassifiedTensor],
    spec: &CodecSpec,
    opts: &EncodeOptions,
) -> Result<GroupFit, EncodeError> {
    let first = members[0];
    let n_cols = first.info.matrix_dims().1 as usize;
    let dims: Vec<usize> = members
        .iter()
        .map(|t| t.info.matrix_dims().0 as usize)
        .collect();
    let total: usize = dims.iter().sum();
    let pick = match sample_rows(total, n_cols, spec) {
        Some(uniform) => Some(with_peaky_rows(model, members, &dims, uniform)?),
        None => None,
    };
    // Per member, its input columns' importance over their mean (so every
    // layer counts alike); all ones for a member without statistics.
    let importance: Vec<Option<Vec<f32>>> = members
        .iter()
        .map(|t| {
            let stats = opts.calibration.as_ref()?.get(&t.info.name)?;
            let imp = stats.importance();
            let mean = imp.iter().map(|&v| f64::from(v)).sum::<f64>() / imp.len().max(1) as f64;
            (imp.len() == n_cols && mean > 0.0)
                .then(|| imp.iter().map(|&v| (f64::from(v) / mean) as f32).collect())
        })
        .collect();
    let weighted = importance.iter().any(Option::is_some);
    let mut weights = Vec::new();
    let mut data = Vec::new();
    let mut off = 0;
    let mut next = 0;
    for ((t, &n_rows), imp) in members.iter().zip(&dims).zip(&importance) {
        let before = data.len();
        match &pick {
            None => read_rows(model, t, 0, n_rows, &mut data)?,
            Some(pick) => {
                while let Some(&r) = pick.get(next).filter(|&&r| r < off + n_rows) {
                    read_rows(model, t, r - off, r - off + 1, &mut data)?;
                    next += 1;
                }
            }
        }
        if weighted {
            for _ in 0..(data.len() - before) / n_cols.max(1) {
                match imp {
                    Some(imp) => weights.extend_from_slice(imp),
                    None => weights.resize(weights.len() + n_cols, 1.0),
                }
            }
        }
        off += n_rows;
        model.release(&t.info.name)?;
    }
    let rows = pick.as_ref().map_or(total, Vec::len);
    let codec_err = |source| EncodeError::Codec {
        tensor: first.info.name.clone(),
        source,
    };
    let sample = Matrix::new(&data, rows, n_cols).map_err(|e| codec_err(e.into()))?;
    fit_group_weighted(&[sample], spec, weighted.then_some(weights.as_slice())).map_err(codec_err)
}

/// Share of a row sample reserved for the rows with the largest peak-to-RMS
/// ratio. Real weights hold rare outliers (MiniLM's FFN output rows: single
/// weights at 30-40x the row's RMS); a uniform row sample misses most of
/// them, no palette entry then reaches them, and those few weights dominate
/// the layer's error (end to end, near-lossless: cos 0.9970 without them,
/// 0.9998 with them).
const PEAKY_SHARE: usize = 16;

/// `uniform` (sorted row indices over the group) plus the
/// `uniform.len() / PEAKY_SHARE` rows of largest max|x| / RMS, sorted and
/// without duplicates. One streaming pass, one f32 per row of memory.
fn with_peaky_rows(
    model: &SafetensorsModel,
    members: &[&ClassifiedTensor],
    dims: &[usize],
    uniform: Vec<usize>,
) -> Result<Vec<usize>, EncodeError> {
    let extra = uniform.len() / PEAKY_SHARE;
    if extra == 0 {
        return Ok(uniform);
    }
    let mut peak: Vec<(f32, usize)> = Vec::with_capacity(dims.iter().sum());
    let mut row = Vec::new();
    let mut off = 0;
    for (t, &n_rows) in members.iter().zip(dims) {
        for r in 0..n_rows {
            row.clear();
            read_rows(model, t, r, r + 1, &mut row)?;
            let ss: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let rms = (ss / row.len().max(1) as f64).sqrt();
            let ratio = if rms > 0.0 {
                (f64::from(max) / rms) as f32
            } else {
                0.0
            };
            peak.push((if ratio.is_finite() { ratio } else { 0.0 }, off + r));
        }
        off += n_rows;
        model.release(&t.info.name)?;
    }
    // Largest ratio first; ties by lower index.
    peak.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out = uniform;
    out.extend(peak.iter().take(extra).map(|&(_, i)| i));
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The error feedback of `t` under `fit` when the calibration has input
/// statistics for it (statistics of another width are an error naming the
/// tensor: they belong to another model).
fn feedback_of(
    t: &ClassifiedTensor,
    fit: &GroupFit,
    opts: &EncodeOptions,
) -> Result<Option<Feedback>, EncodeError> {
    let Some(stats) = opts.calibration.as_ref().and_then(|c| c.get(&t.info.name)) else {
        return Ok(None);
    };
    fit.feedback(stats).map_err(|source| EncodeError::Codec {
        tensor: t.info.name.clone(),
        source,
    })
}

/// Encodes every row of `t` with `fit` (and its input statistics'
/// feedback), a chunk of rows at a time, and measures it through the
/// format's kernel.
fn encode_tensor(
    model: &SafetensorsModel,
    t: &ClassifiedTensor,
    fit: &GroupFit,
    opts: &EncodeOptions,
) -> Result<(EncodedMatrix, QualityStats), EncodeError> {
    let (r, c) = t.info.matrix_dims();
    let (n_rows, n_cols) = (r as usize, c as usize);
    let codec_err = |source| EncodeError::Codec {
        tensor: t.info.name.clone(),
        source,
    };
    let fb = feedback_of(t, fit, opts)?;
    // SlotL scales are per tensor: encode it in one piece.
    let step = if fit.spec().slot_l {
        n_rows.max(1)
    } else {
        (CHUNK_VALUES / n_cols.max(1)).max(1)
    };
    let mut out = EncodedMatrix {
        n_rows,
        n_cols,
        codes: vec![Vec::new(); fit.palettes().len()],
        scales: fit.spec().row_scale.then(Vec::new),
        slot: None,
    };
    let mut quality = QualityAcc::default();
    let mut buf = Vec::new();
    for r0 in (0..n_rows).step_by(step) {
        let r1 = (r0 + step).min(n_rows);
        buf.clear();
        read_rows(model, t, r0, r1, &mut buf)?;
        let m = Matrix::new(&buf, r1 - r0, n_cols).map_err(|e| codec_err(e.into()))?;
        let enc = fit.encode_with(&m, fb.as_ref()).map_err(|e| match e {
            CodecError::NonFinite {
                tensor,
                row,
                col,
                value,
            } => codec_err(CodecError::NonFinite {
                tensor,
                row: row + r0,
                col,
                value,
            }),
            e => codec_err(e),
        })?;
        quality
            .push(&m, |r, o| fit.decode_row(&enc, r, o))
            .map_err(codec_err)?;
        for (all, part) in out.codes.iter_mut().zip(enc.codes) {
            all.extend_from_slice(&part);
        }
        if let (Some(all), Some(part)) = (out.scales.as_mut(), enc.scales) {
            all.extend_from_slice(&part);
        }
        out.slot = enc.slot;
    }
    Ok((out, quality.finish()))
}

fn miss_line(codec: &str, q: &QualityStats, gate: &Gate) -> String {
    format!(
        "{codec}: rho median {:.4} / p5 {:.4} misses gate {:.2} / {:.2}",
        q.rho_median, q.rho_p5, gate.median, gate.p5
    )
}

/// Encodes a group with shared palettes fitted to (a sample of) its rows,
/// then each member a chunk of rows at a time, releasing each member's
/// input pages once it is written.
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
    let spec = fit_width(
        opts.profile.codec(first.class.role, regime),
        first.info.matrix_dims().1,
    );
    let members: Vec<&ClassifiedTensor> = group.iter().map(|&i| &tensors[i]).collect();
    let fit = fit_members(model, &members, &spec, opts)?;

    // The group's palettes are written once, at the first member that keeps
    // them, so a group whose every member falls back writes none.
    let mut shared: Option<GroupIds> = None;
    for &i in group {
        let t = &tensors[i];
        let (enc, q) = encode_tensor(model, t, &fit, opts)?;
        let mut outcome = TensorOutcome {
            stored: Some(FinalCodec::new(
                Codec::Palette(spec),
                &q,
                gate.map(|g| g.passes(&q)),
            )),
            ..TensorOutcome::passthrough(t)
        };
        // The gate it missed and must fall back under, or None to keep the
        // group's codec.
        match gate.filter(|g| opts.fallback && !g.passes(&q)) {
            None => {
                let objs = match shared {
                    Some(ref o) => o,
                    None => shared
                        .insert(w.add_group_objects(&fit.group_of(Vec::new()), opts.fisher_z)?),
                };
                add_encoded(w, t, &fit, enc, objs, &q)?;
            }
            Some(g) => {
                drop(enc);
                outcome
                    .fallbacks
                    .push(miss_line(&describe_spec(&spec), &q, &g));
                fall_back(model, w, t, &spec, g, opts, &mut outcome)?;
            }
        }
        model.release(&t.info.name)?;
        outcomes[i] = Some(outcome);
        progress(Progress::Tensor {
            name: &t.info.name,
            params: t.info.numel(),
        });
    }
    Ok(())
}

/// Walks [`fallback_chain`] until a codec meets `gate`; raw BF16 always
/// ends the chain. Each codec is fitted to (a sample of) this tensor alone.
fn fall_back<W: Write + Seek>(
    model: &SafetensorsModel,
    w: &mut Writer<W>,
    t: &ClassifiedTensor,
    spec: &CodecSpec,
    gate: Gate,
    opts: &EncodeOptions,
    outcome: &mut TensorOutcome,
) -> Result<(), EncodeError> {
    let fisher_z = opts.fisher_z;
    let codec_err = |source| EncodeError::Codec {
        tensor: t.info.name.clone(),
        source,
    };
    let (r, n_cols) = t.info.matrix_dims();
    for codec in fallback_chain(spec) {
        match codec {
            Codec::Palette(s) => {
                // A finer codec that does not fit this tensor is skipped.
                if s.entry_width(n_cols as usize).is_err() {
                    continue;
                }
                let fit = fit_members(model, &[t], &s, opts)?;
                let (enc, q) = encode_tensor(model, t, &fit, opts)?;
                if gate.passes(&q) {
                    let objs = w.add_group_objects(&fit.group_of(Vec::new()), fisher_z)?;
                    add_encoded(w, t, &fit, enc, &objs, &q)?;
                    outcome.stored = Some(FinalCodec::new(codec, &q, Some(true)));
                    return Ok(());
                }
                outcome
                    .fallbacks
                    .push(miss_line(&codec.describe(), &q, &gate));
            }
            Codec::RawBf16 => {
                let data = model.to_f32(&t.info.name)?;
                let m = Matrix::new(&data, r as usize, n_cols as usize)
                    .map_err(|e| codec_err(e.into()))?;
                let bytes = elem_bytes(&data, ElemType::Bf16);
                w.add_raw_tensor(RawTensor {
                    header: TensorHeader {
                        dtype: Dtype::Bf16,
                        ..header(t)
                    },
                    bytes: &bytes,
                })?;
                drop(bytes);
                let q = row_quality_by(&m, |r, out| {
                    let x = &data[r * out.len()..(r + 1) * out.len()];
                    for (o, &v) in out.iter_mut().zip(x) {
                        *o = round_to_elem(v, ElemType::Bf16);
                    }
                    Ok(())
                })
                .map_err(codec_err)?;
                outcome.stored = Some(FinalCodec::new(codec, &q, Some(gate.passes(&q))));
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Writes `e` (encoded by `fit`) as a member of the group whose shared
/// objects are `objs`.
fn add_encoded<W: Write + Seek>(
    w: &mut Writer<W>,
    t: &ClassifiedTensor,
    fit: &GroupFit,
    e: EncodedMatrix,
    objs: &GroupIds,
    q: &QualityStats,
) -> Result<(), EncodeError> {
    w.add_group_member(
        &fit.group_of(vec![e]),
        objs,
        0,
        header(t),
        Some(Quality::from(q)),
    )?;
    Ok(())
}
