//! Run a model from an hhtld file and from its original weights with candle,
//! and measure how far the outputs are apart (`hhtld eval`).
//!
//! The pieces are public so other tools (calibration, benches) reuse them:
//! - [`ModelFiles`]: config, tokenizer and pooling, from an hhtld file's
//!   metadata (spec §5, `file.*` keys), from files beside the original, or
//!   from explicit paths;
//! - [`Weights`]: where the weights come from, and [`Weights::var_builder`];
//! - [`Encoder`]: a forward pass `(ids, type ids, mask) -> hidden states`,
//!   implemented for candle-transformers' `BertModel`; a tool that needs
//!   activations implements it with its own instrumented forward;
//! - [`Embedder`]: tokenise, batch, run an [`Encoder`], pool, normalise;
//! - [`metrics::compare`]: the figures;
//! - [`calibrate`]: an instrumented BERT forward that measures, for every
//!   linear layer, the Gram matrix of its input (encode's calibration).

#![warn(missing_docs)]

pub mod calibrate;
pub mod metrics;
pub mod record;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use hhtld_reader::candle::HhtldBackend;
use hhtld_reader::{HhtldFile, ReaderError};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

pub use metrics::{compare, Metrics};

/// The default evaluation text: 600 sentences from the CPython Language
/// Reference (PSF licence; see `data/text/README.md`).
pub const DEFAULT_TEXT: &str = include_str!("../../data/text/eval.txt");

/// The default calibration text: 1000 sentences from CPython's
/// standard-library docstrings, disjoint from [`DEFAULT_TEXT`] (see
/// `data/text/README.md`).
pub const CALIBRATION_TEXT: &str = include_str!("../../data/text/calib.txt");

/// SHA-256 of `text`'s UTF-8 bytes, lower-case hex: how stored figures
/// name the text they were measured on.
pub fn text_sha256(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Metadata key of the model's `config.json` (spec §5).
pub const KEY_CONFIG: &str = "file.config.json";
/// Metadata key of the model's `tokenizer.json` (spec §5).
pub const KEY_TOKENIZER: &str = "file.tokenizer.json";
/// Metadata key of sentence-transformers' `modules.json` (spec §5).
pub const KEY_MODULES: &str = "file.modules.json";
/// Metadata key of sentence-transformers' `1_Pooling/config.json` (spec §5).
pub const KEY_POOLING: &str = "file.1_Pooling/config.json";
/// Metadata key of sentence-transformers' `sentence_bert_config.json`
/// (spec §5), whose `max_seq_length` bounds the tokens per sentence.
pub const KEY_ST_CONFIG: &str = "file.sentence_bert_config.json";

/// Architectures (`model_type` of `config.json`) this crate runs.
pub const KNOWN_MODEL_TYPES: &[&str] = &["bert"];

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The hhtld file.
    #[error(transparent)]
    Reader(#[from] ReaderError),
    /// candle (loading a tensor, running the model).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A JSON document that does not parse or lacks a field.
    #[error("{what}: {reason}")]
    Json {
        /// Which document.
        what: String,
        /// Why.
        reason: String,
    },
    /// The tokenizer.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A model type this crate does not run.
    #[error("unknown architecture {0:?}: hhtld eval runs {KNOWN_MODEL_TYPES:?} models")]
    UnknownArchitecture(String),
    /// Config or tokenizer not found anywhere.
    #[error(
        "no {what}: not in the file's metadata ({key}) nor beside the original; pass --{flag}"
    )]
    Missing {
        /// The file wanted.
        what: &'static str,
        /// Its metadata key.
        key: &'static str,
        /// The command-line flag that supplies it.
        flag: &'static str,
    },
    /// The original weights path is not a model.
    #[error("{}: {reason}", path.display())]
    Original {
        /// The path given.
        path: PathBuf,
        /// Why it is not usable.
        reason: String,
    },
    /// Bad input text.
    #[error("text: {0}")]
    Text(String),
    /// Calibration text that is also evaluation text: the figures would
    /// report on text the encoder was tuned on.
    #[error(
        "the calibration text shares {shared} sentence(s) with the evaluation text, e.g. {example:?}; \
         calibrate on other text (data/text/calib.txt is the default)"
    )]
    SharedText {
        /// How many calibration sentences are evaluation sentences.
        shared: usize,
        /// The first of them.
        example: String,
    },
}

/// Result with [`EvalError`].
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// One sentence per non-empty line, trimmed.
pub fn sentences(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// How token embeddings become one sentence embedding
/// (sentence-transformers' `1_Pooling/config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the tokens the attention mask keeps.
    Mean,
    /// The first token.
    Cls,
    /// Element-wise maximum over kept tokens.
    Max,
    /// Sum over kept tokens divided by the square root of their count.
    MeanSqrtLen,
}

impl Pooling {
    /// Parses `1_Pooling/config.json`: exactly one mode must be on.
    pub fn from_config(json: &str) -> Result<Pooling> {
        let bad = |reason: String| EvalError::Json {
            what: "1_Pooling/config.json".into(),
            reason,
        };
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let on = |k: &str| v.get(k).and_then(serde_json::Value::as_bool) == Some(true);
        let modes = [
            ("pooling_mode_mean_tokens", Pooling::Mean),
            ("pooling_mode_cls_token", Pooling::Cls),
            ("pooling_mode_max_tokens", Pooling::Max),
            ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
        ];
        let chosen: Vec<_> = modes.iter().filter(|(k, _)| on(k)).collect();
        match chosen[..] {
            [(_, p)] => Ok(*p),
            [] => Err(bad("no pooling mode is on".into())),
            _ => Err(bad(format!(
                "{} pooling modes are on; only one is supported",
                chosen.len()
            ))),
        }
    }
}

/// Whether sentence-transformers' `modules.json` ends with a `Normalize`
/// module.
pub fn normalizes(modules_json: &str) -> Result<bool> {
    let v: serde_json::Value = serde_json::from_str(modules_json).map_err(|e| EvalError::Json {
        what: "modules.json".into(),
        reason: e.to_string(),
    })?;
    Ok(v.as_array().is_some_and(|a| {
        a.iter().any(|m| {
            m.get("type")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|t| t.ends_with(".Normalize"))
        })
    }))
}

/// `max_seq_length` of sentence-transformers' `sentence_bert_config.json`.
pub fn max_seq_length(json: &str) -> Result<Option<usize>> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| EvalError::Json {
        what: "sentence_bert_config.json".into(),
        reason: e.to_string(),
    })?;
    Ok(v.get("max_seq_length")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| usize::try_from(n).ok()))
}

/// A model's side files: what runs the weights.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// `config.json` as text.
    pub config_json: String,
    /// The parsed BERT config.
    pub config: BertConfig,
    /// The tokenizer (padding to the longest in a batch).
    pub tokenizer: Tokenizer,
    /// The pooling.
    pub pooling: Pooling,
    /// L2-normalise the pooled embedding.
    pub normalize: bool,
    /// Tokens per sentence at most (special tokens included).
    pub max_len: usize,
}

/// Where to look for a side file, in order.
#[derive(Debug, Clone, Default)]
pub struct Sources<'a> {
    /// An explicit `config.json`.
    pub config: Option<&'a Path>,
    /// An explicit `tokenizer.json`.
    pub tokenizer: Option<&'a Path>,
    /// An hhtld file whose metadata may hold the files.
    pub hhtld: Option<&'a HhtldFile>,
    /// A model directory (the original's).
    pub dir: Option<&'a Path>,
}

impl Sources<'_> {
    /// `explicit`, else the metadata value of `key`, else `rel` in `dir`.
    fn find(&self, explicit: Option<&Path>, key: &str, rel: &str) -> Result<Option<String>> {
        if let Some(p) = explicit {
            return read_text(p).map(Some);
        }
        if let Some(f) = self.hhtld {
            if let Some(v) = f.view().metadata_value(key)? {
                return Ok(Some(v.to_owned()));
            }
        }
        match self.dir.map(|d| d.join(rel)) {
            Some(p) if p.is_file() => read_text(&p).map(Some),
            _ => Ok(None),
        }
    }
}

impl ModelFiles {
    /// Finds config, tokenizer and pooling in `src`. Without pooling files
    /// the default is sentence-transformers' usual: mean, then L2 norm.
    pub fn find(src: &Sources<'_>) -> Result<ModelFiles> {
        let config_json =
            src.find(src.config, KEY_CONFIG, "config.json")?
                .ok_or(EvalError::Missing {
                    what: "config.json",
                    key: KEY_CONFIG,
                    flag: "config",
                })?;
        let tokenizer_json = src
            .find(src.tokenizer, KEY_TOKENIZER, "tokenizer.json")?
            .ok_or(EvalError::Missing {
                what: "tokenizer.json",
                key: KEY_TOKENIZER,
                flag: "tokenizer",
            })?;
        let pooling = match src.find(None, KEY_POOLING, "1_Pooling/config.json")? {
            Some(j) => Pooling::from_config(&j)?,
            None => Pooling::Mean,
        };
        let normalize = match src.find(None, KEY_MODULES, "modules.json")? {
            Some(j) => normalizes(&j)?,
            None => true,
        };
        let max_seq = match src.find(None, KEY_ST_CONFIG, "sentence_bert_config.json")? {
            Some(j) => max_seq_length(&j)?,
            None => None,
        };
        ModelFiles::from_parts(&config_json, &tokenizer_json, pooling, normalize, max_seq)
    }

    /// Builds from the texts of `config.json` and `tokenizer.json`. Sentences
    /// are cut at `max_seq` tokens when given (sentence-transformers'
    /// `max_seq_length`), else where the tokenizer's own truncation says;
    /// never past the model's `max_position_embeddings`.
    pub fn from_parts(
        config_json: &str,
        tokenizer_json: &str,
        pooling: Pooling,
        normalize: bool,
        max_seq: Option<usize>,
    ) -> Result<ModelFiles> {
        let config = parse_config(config_json)?;
        let mut tokenizer = Tokenizer::from_bytes(tokenizer_json.as_bytes())
            .map_err(|e| EvalError::Tokenizer(e.to_string()))?;
        // Pad to the longest sentence of a batch, not to a fixed length; the
        // attention mask hides the padding.
        let pad = tokenizer.get_padding().cloned().unwrap_or_default();
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_to_multiple_of: None,
            ..pad
        }));
        // Never feed more positions than the model has.
        let own = tokenizer.get_truncation().cloned().unwrap_or_default();
        let max_len = max_seq
            .unwrap_or(own.max_length)
            .min(config.max_position_embeddings);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..own
            }))
            .map_err(|e| EvalError::Tokenizer(e.to_string()))?;
        Ok(ModelFiles {
            config_json: config_json.to_owned(),
            config,
            tokenizer,
            pooling,
            normalize,
            max_len,
        })
    }
}

/// Parses a BERT `config.json`; any other `model_type` is
/// [`EvalError::UnknownArchitecture`].
pub fn parse_config(json: &str) -> Result<BertConfig> {
    let bad = |reason: String| EvalError::Json {
        what: "config.json".into(),
        reason,
    };
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let model_type = v
        .get("model_type")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad("no \"model_type\"".into()))?;
    if !KNOWN_MODEL_TYPES.contains(&model_type) {
        return Err(EvalError::UnknownArchitecture(model_type.to_owned()));
    }
    serde_json::from_value(v).map_err(|e| bad(e.to_string()))
}

/// Where a model's weights come from.
#[derive(Debug, Clone)]
pub enum Weights {
    /// safetensors files (one, or the shards of an index), loaded with
    /// candle's own mmaped loader.
    Safetensors(Vec<PathBuf>),
    /// An hhtld file, loaded with [`HhtldBackend`].
    Hhtld(HhtldFile),
}

impl Weights {
    /// A safetensors file, a `*.index.json` of shards, or a directory with
    /// `model.safetensors` or `model.safetensors.index.json`.
    pub fn original(path: &Path) -> Result<Weights> {
        let err = |reason: String| EvalError::Original {
            path: path.to_path_buf(),
            reason,
        };
        if path.is_dir() {
            for name in ["model.safetensors", "model.safetensors.index.json"] {
                let p = path.join(name);
                if p.is_file() {
                    return Weights::original(&p);
                }
            }
            return Err(err(
                "directory has no model.safetensors nor model.safetensors.index.json".into(),
            ));
        }
        if !path.is_file() {
            return Err(err("no such file".into()));
        }
        if path.to_string_lossy().ends_with(".json") {
            let v: serde_json::Value = serde_json::from_str(&read_text(path)?)
                .map_err(|e| err(format!("not JSON: {e}")))?;
            let map = v
                .get("weight_map")
                .and_then(serde_json::Value::as_object)
                .ok_or_else(|| err("index has no \"weight_map\" object".into()))?;
            let dir = path.parent().unwrap_or(Path::new("."));
            let mut shards: Vec<PathBuf> = map
                .values()
                .map(|s| {
                    s.as_str()
                        .map(|s| dir.join(s))
                        .ok_or_else(|| err("weight_map value is not a string".into()))
                })
                .collect::<Result<_>>()?;
            shards.sort();
            shards.dedup();
            return Ok(Weights::Safetensors(shards));
        }
        Ok(Weights::Safetensors(vec![path.to_path_buf()]))
    }

    /// The directory of the original model (for side files).
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Weights::Safetensors(files) => files.first().and_then(|f| f.parent()),
            Weights::Hhtld(_) => None,
        }
    }

    /// A [`VarBuilder`] over the weights as `dtype` on `device`.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
        match self {
            // SAFETY: the files are mapped read-only; like every mmap-based
            // loader we require that they are not modified while in use.
            Weights::Safetensors(files) => {
                Ok(unsafe { VarBuilder::from_mmaped_safetensors(files, dtype, device) }?)
            }
            Weights::Hhtld(f) => Ok(HhtldBackend::new(f.clone()).into_var_builder(dtype, device)),
        }
    }
}

/// A forward pass from token ids to per-token hidden states.
pub trait Encoder {
    /// `(batch, seq)` u32 ids, type ids and attention mask to
    /// `(batch, seq, hidden)` hidden states.
    fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> Result<Tensor>;
}

impl Encoder for BertModel {
    fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        Ok(BertModel::forward(self, ids, type_ids, Some(mask))?)
    }
}

/// Loads candle-transformers' `BertModel` from `weights` in F32 on the CPU;
/// also returns the time it took.
pub fn load_bert(weights: &Weights, config: &BertConfig) -> Result<(BertModel, Duration)> {
    let start = Instant::now();
    let vb = weights.var_builder(DType::F32, &Device::Cpu)?;
    let model = BertModel::load(vb, config)?;
    Ok((model, start.elapsed()))
}

/// Sentences in, embeddings out.
pub struct Embedder<'a, E: Encoder> {
    /// The model.
    pub encoder: &'a E,
    /// Tokenizer, pooling, normalisation.
    pub files: &'a ModelFiles,
    /// Sentences per forward pass.
    pub batch: usize,
}

impl<E: Encoder> Embedder<'_, E> {
    /// One embedding per sentence, in input order. Sentences are batched in
    /// order of token count so padding stays small.
    pub fn embed(&self, sentences: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut out = vec![Vec::new(); sentences.len()];
        for chunk in length_batches(&self.files.tokenizer, sentences, self.batch)? {
            let batch: Vec<&str> = chunk.iter().map(|&i| sentences[i].as_str()).collect();
            let emb = self.embed_batch(&batch)?;
            for (&i, e) in chunk.iter().zip(emb) {
                out[i] = e;
            }
        }
        Ok(out)
    }

    /// Embeds one batch (padded to its longest sentence).
    pub fn embed_batch(&self, batch: &[&str]) -> Result<Vec<Vec<f32>>> {
        let inputs = BatchInputs::new(&self.files.tokenizer, batch)?;
        let hidden = self
            .encoder
            .forward(&inputs.ids, &inputs.type_ids, &inputs.mask)?;
        let pooled = pool(&hidden, &inputs.mask, self.files.pooling)?;
        let pooled = if self.files.normalize {
            let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?;
            pooled.broadcast_div(&norm.clamp(1e-12, f64::INFINITY)?)?
        } else {
            pooled
        };
        Ok(pooled.to_dtype(DType::F32)?.to_vec2()?)
    }
}

/// Sentence indices in batches of at most `batch`, in order of token count
/// (ties by index) so each padded batch wastes little.
pub fn length_batches(
    tokenizer: &Tokenizer,
    sentences: &[String],
    batch: usize,
) -> Result<Vec<Vec<usize>>> {
    // Single encodes for the counts: cheap next to the model.
    let mut lens = Vec::with_capacity(sentences.len());
    for s in sentences {
        let e = tokenizer
            .encode(s.as_str(), true)
            .map_err(|e| EvalError::Tokenizer(e.to_string()))?;
        lens.push(e.get_attention_mask().iter().filter(|&&m| m != 0).count());
    }
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    order.sort_by_key(|&i| (lens[i], i));
    Ok(order.chunks(batch.max(1)).map(<[usize]>::to_vec).collect())
}

/// The `(batch, seq)` u32 model inputs of one tokenised batch, padded to
/// its longest sentence.
pub struct BatchInputs {
    /// Token ids.
    pub ids: Tensor,
    /// Token type ids.
    pub type_ids: Tensor,
    /// Attention mask: 1 for a token, 0 for padding.
    pub mask: Tensor,
}

impl BatchInputs {
    /// Tokenises `batch` on the CPU.
    pub fn new(tokenizer: &Tokenizer, batch: &[&str]) -> Result<BatchInputs> {
        let enc = tokenizer
            .encode_batch(batch.to_vec(), true)
            .map_err(|e| EvalError::Tokenizer(e.to_string()))?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor> {
            let v: Vec<Vec<u32>> = enc.iter().map(|e| f(e).to_vec()).collect();
            Ok(Tensor::new(v, &Device::Cpu)?)
        };
        Ok(BatchInputs {
            ids: rows(&|e| e.get_ids())?,
            type_ids: rows(&|e| e.get_type_ids())?,
            mask: rows(&|e| e.get_attention_mask())?,
        })
    }
}

/// Pools `(batch, seq, hidden)` hidden states over the `(batch, seq)` mask.
pub fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> Result<Tensor> {
    let m = mask.to_dtype(hidden.dtype())?.unsqueeze(2)?;
    Ok(match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        Pooling::Mean | Pooling::MeanSqrtLen => {
            let sum = hidden.broadcast_mul(&m)?.sum(1)?;
            let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
            let count = if pooling == Pooling::Mean {
                count
            } else {
                count.sqrt()?
            };
            sum.broadcast_div(&count)?
        }
        Pooling::Max => {
            // Masked positions get a very negative value before the max.
            let neg = ((m.ones_like()? - &m)? * -1e9)?;
            hidden.broadcast_add(&neg)?.max(1)?
        }
    })
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The figures.
    pub metrics: Metrics,
    /// Time to a loaded original model.
    pub load_original: Duration,
    /// Time to a loaded model from the hhtld file.
    pub load_hhtld: Duration,
    /// Time to embed every sentence with the original model.
    pub embed_original: Duration,
    /// Time to embed every sentence with the hhtld model.
    pub embed_hhtld: Duration,
}

/// Loads both models and compares their embeddings of `sentences`.
pub fn evaluate(
    original: &Weights,
    hhtld: &Weights,
    files: &ModelFiles,
    sentences: &[String],
    batch: usize,
) -> Result<Report> {
    if sentences.is_empty() {
        return Err(EvalError::Text("no sentences".into()));
    }
    let (m_orig, load_original) = load_bert(original, &files.config)?;
    let (m_hhtld, load_hhtld) = load_bert(hhtld, &files.config)?;
    let timed_embed = |encoder: &BertModel| {
        let t = Instant::now();
        let e = Embedder {
            encoder,
            files,
            batch,
        }
        .embed(sentences)?;
        Ok::<_, EvalError>((e, t.elapsed()))
    };
    let (e_orig, embed_original) = timed_embed(&m_orig)?;
    let (e_hhtld, embed_hhtld) = timed_embed(&m_hhtld)?;
    Ok(Report {
        metrics: compare(&e_orig, &e_hhtld),
        load_original,
        load_hhtld,
        embed_original,
        embed_hhtld,
    })
}
