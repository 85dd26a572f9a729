//! Safetensors import and tensor classification.
//!
//! [`SafetensorsModel::open`] memory-maps one `.safetensors` file, or every
//! shard listed by a `*.index.json`, validates every header entry and then
//! hands tensors out one at a time ([`SafetensorsModel::raw_bytes`] borrows
//! from the map, [`SafetensorsModel::to_f32`] allocates one tensor), so peak
//! memory never holds a copy of the whole model.
//!
//! [`classify`] maps a tensor name, dtype and shape to a [`Role`] and a
//! [`Regime`]; a [`Classifier`] adds `--role NAME=ROLE` overrides.
//! [`group_key`] says which tensors may share palettes.
//!
//! The header is parsed here rather than with `safetensors::SafeTensors`
//! because that type keeps tensors in a `HashMap` (no stable order) and turns
//! an unknown dtype into an anonymous JSON error; parsing it ourselves gives
//! a deterministic order and errors that name the tensor. The rules checked
//! are the ones the `safetensors` crate checks.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use hhtld_format::encode::{widen_to_f32, WidenError};
use hhtld_format::limits::{MAX_DIMS, MAX_NAME_LEN, MAX_TENSORS};
use hhtld_format::{Dtype, Regime, Role};
use memmap2::Mmap;
use serde_json::Value;

/// Largest safetensors header (and index file) accepted, in bytes; the same
/// cap the `safetensors` crate applies, so no valid file is refused.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

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

/// Everything that can go wrong while importing a safetensors model or
/// classifying its tensors. Each variant names the file and, where there is
/// one, the tensor.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file could not be opened, read or mapped.
    #[error("{}: {op}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A directory was given that holds neither `model.safetensors` nor
    /// `model.safetensors.index.json`.
    #[error("{}: directory holds neither model.safetensors nor model.safetensors.index.json", path.display())]
    NoModelInDir {
        /// The directory.
        path: PathBuf,
    },
    /// The file is shorter than the 8-byte header length.
    #[error("{}: file is {len} bytes, shorter than the 8-byte safetensors header length", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The header (or index file) is larger than [`MAX_HEADER_LEN`].
    #[error("{}: header of {len} bytes exceeds the limit of {max} bytes", path.display())]
    HeaderTooLarge {
        /// The file.
        path: PathBuf,
        /// Declared header length, or the index file's length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The declared header length runs past the end of the file.
    #[error("{}: header of {header_len} bytes runs past the end of the {file_len}-byte file", path.display())]
    HeaderPastEnd {
        /// The file.
        path: PathBuf,
        /// Declared header length.
        header_len: u64,
        /// File length.
        file_len: u64,
    },
    /// The header (or index) is not valid JSON.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        #[source]
        source: serde_json::Error,
    },
    /// The JSON is valid but not shaped as expected.
    #[error("{}: {detail}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A tensor entry of the header is malformed.
    #[error("{}: tensor {tensor:?}: {detail}", path.display())]
    BadTensorEntry {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// What is wrong.
        detail: String,
    },
    /// A tensor has a dtype that hhtld does not know.
    #[error("{}: tensor {tensor:?}: unknown dtype {dtype:?}", path.display())]
    UnknownDtype {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The dtype as written in the header.
        dtype: String,
    },
    /// A tensor name is empty or longer than `MAX_NAME_LEN` bytes.
    #[error("{}: tensor name of {len} bytes (starting {prefix:?}) is outside 1..={MAX_NAME_LEN}", path.display())]
    BadName {
        /// The file.
        path: PathBuf,
        /// The first characters of the name.
        prefix: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A tensor has more than `MAX_DIMS` dimensions.
    #[error("{}: tensor {tensor:?}: {ndims} dimensions, at most {MAX_DIMS} are supported", path.display())]
    TooManyDims {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Its number of dimensions.
        ndims: usize,
    },
    /// The shape's element count (or matrix width) overflows u64.
    #[error("{}: tensor {tensor:?}: shape {shape:?} overflows u64", path.display())]
    ShapeOverflow {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The shape.
        shape: Vec<u64>,
    },
    /// `data_offsets` do not span `numel x size(dtype)` bytes.
    #[error("{}: tensor {tensor:?}: data_offsets span {actual} bytes, shape and dtype need {expected}", path.display())]
    ByteLenMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Bytes implied by shape and dtype.
        expected: u64,
        /// Bytes spanned by the offsets.
        actual: u64,
    },
    /// Tensor data do not tile the data area: a gap, an overlap, or an end
    /// past the file.
    #[error("{}: tensor {tensor:?}: data_offsets [{start}, {end}) but the next tensor must start at {expected_start} and the data area is {data_len} bytes", path.display())]
    BadOffsets {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Its start, relative to the data area.
        start: u64,
        /// Its end, relative to the data area.
        end: u64,
        /// Where it had to start.
        expected_start: u64,
        /// Length of the data area.
        data_len: u64,
    },
    /// Bytes after the last tensor's data.
    #[error("{}: tensors cover {covered} of the {data_len} data bytes; the rest is not a tensor", path.display())]
    TrailingData {
        /// The file.
        path: PathBuf,
        /// Bytes covered by tensors.
        covered: u64,
        /// Length of the data area.
        data_len: u64,
    },
    /// More tensors than `MAX_TENSORS`.
    #[error("{}: {count} tensors, at most {max} are supported", path.display())]
    TooManyTensors {
        /// The file (or index).
        path: PathBuf,
        /// Tensors found so far.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A shard named by the index is not a plain relative file name.
    #[error("{}: shard path {shard:?} (for tensor {tensor:?}) must be relative, without `..`", path.display())]
    BadShardPath {
        /// The index file.
        path: PathBuf,
        /// The shard as written.
        shard: String,
        /// A tensor mapped to it.
        tensor: String,
    },
    /// A shard and the index disagree about a tensor.
    #[error("{}: tensor {tensor:?}: {detail}", shard.display())]
    ShardMismatch {
        /// The shard file.
        shard: PathBuf,
        /// The tensor name.
        tensor: String,
        /// What disagrees.
        detail: String,
    },
    /// No tensor of that name in the model.
    #[error("{}: no tensor named {tensor:?}", path.display())]
    TensorNotFound {
        /// The model path.
        path: PathBuf,
        /// The requested name.
        tensor: String,
    },
    /// `to_f32` was asked for a tensor that is not F16, BF16, F32 or F64.
    #[error(
        "tensor {tensor:?}: dtype {dtype} cannot be converted to f32 (only F16, BF16, F32, F64)"
    )]
    NotFloat {
        /// The tensor name.
        tensor: String,
        /// Its dtype.
        dtype: Dtype,
    },
    /// A byte slice is not a whole number of elements.
    #[error("tensor {tensor:?}: {len} bytes is not a multiple of the {dtype} element size")]
    RaggedBytes {
        /// The tensor name.
        tensor: String,
        /// The dtype.
        dtype: Dtype,
        /// The slice length.
        len: usize,
    },
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

/// What the importer knows about one tensor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorInfo {
    /// Name as in the safetensors header.
    pub name: String,
    /// Original dtype.
    pub dtype: Dtype,
    /// Shape, outermost first (row-major).
    pub shape: Vec<u64>,
    /// Length of its data in bytes: `numel x dtype.size()`.
    pub byte_len: u64,
}

impl TensorInfo {
    /// Number of elements. Validated not to overflow at open; saturates
    /// for a hand-built `TensorInfo` that would.
    pub fn numel(&self) -> u64 {
        self.shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// `(n_rows, n_cols)` of the matrix view of spec §4; saturates like
    /// [`TensorInfo::numel`].
    pub fn matrix_dims(&self) -> (u64, u64) {
        matrix_dims(&self.shape).unwrap_or((u64::MAX, u64::MAX))
    }
}

pub use hhtld_format::encode::matrix_dims;

/// Maps a safetensors dtype to the hhtld one. `tensor` is only used to name
/// the tensor in the error for a dtype hhtld does not know (the `safetensors`
/// enum is non-exhaustive, so future versions may add some).
pub fn dtype_from_safetensors(
    tensor: &str,
    dtype: safetensors::Dtype,
) -> Result<Dtype, ImportError> {
    use safetensors::Dtype as S;
    Ok(match dtype {
        S::BOOL => Dtype::Bool,
        S::U8 => Dtype::U8,
        S::I8 => Dtype::I8,
        S::I16 => Dtype::I16,
        S::U16 => Dtype::U16,
        S::I32 => Dtype::I32,
        S::U32 => Dtype::U32,
        S::I64 => Dtype::I64,
        S::U64 => Dtype::U64,
        S::F16 => Dtype::F16,
        S::BF16 => Dtype::Bf16,
        S::F32 => Dtype::F32,
        S::F64 => Dtype::F64,
        S::F8_E4M3 => Dtype::F8E4M3,
        S::F8_E5M2 => Dtype::F8E5M2,
        #[allow(unreachable_patterns)]
        other => {
            return Err(ImportError::UnknownDtype {
                path: PathBuf::new(),
                tensor: tensor.to_owned(),
                dtype: format!("{other:?}"),
            })
        }
    })
}

/// Maps an hhtld dtype to the safetensors one (every hhtld dtype has one);
/// used to export passthrough tensors back to safetensors.
pub fn dtype_to_safetensors(dtype: Dtype) -> safetensors::Dtype {
    use safetensors::Dtype as S;
    match dtype {
        Dtype::Bool => S::BOOL,
        Dtype::U8 => S::U8,
        Dtype::I8 => S::I8,
        Dtype::I16 => S::I16,
        Dtype::U16 => S::U16,
        Dtype::I32 => S::I32,
        Dtype::U32 => S::U32,
        Dtype::I64 => S::I64,
        Dtype::U64 => S::U64,
        Dtype::F16 => S::F16,
        Dtype::Bf16 => S::BF16,
        Dtype::F32 => S::F32,
        Dtype::F64 => S::F64,
        Dtype::F8E4M3 => S::F8_E4M3,
        Dtype::F8E5M2 => S::F8_E5M2,
    }
}

/// Appends the little-endian `bytes` of a `dtype` tensor to `out` as f32.
///
/// F32 and F16/BF16 convert exactly; F64 rounds to nearest (values beyond
/// the f32 range become infinities, which the codecs reject). `bytes` need
/// not be aligned: safetensors does not align tensor data. Any other dtype
/// is [`ImportError::NotFloat`].
pub fn decode_f32_into(
    tensor: &str,
    dtype: Dtype,
    bytes: &[u8],
    out: &mut Vec<f32>,
) -> Result<(), ImportError> {
    widen_to_f32(dtype, bytes, out).map_err(|e| match e {
        WidenError::NotFloat => ImportError::NotFloat {
            tensor: tensor.to_owned(),
            dtype,
        },
        WidenError::Ragged => ImportError::RaggedBytes {
            tensor: tensor.to_owned(),
            dtype,
            len: bytes.len(),
        },
    })
}

/// One mapped file.
struct Shard {
    path: PathBuf,
    map: Mmap,
}

/// Where a tensor's bytes are: absolute byte range in a shard's map.
struct Entry {
    info: TensorInfo,
    shard: usize,
    start: usize,
    end: usize,
}

/// A safetensors model (one file or a sharded set), memory-mapped.
///
/// **Tensor order** (of [`SafetensorsModel::tensors`]) is deterministic:
/// - one file: increasing data offset, which is the order its writer put the
///   tensors in (the Rust and Python writers both order by decreasing dtype
///   alignment, then by name); zero-length tensors sharing an offset are
///   ordered by name;
/// - sharded: shard by shard in bytewise order of the shard file names (so
///   `model-00001-of-00003...` comes first), each shard in data-offset
///   order as above.
///
/// The files must not be modified while the model is open (they are mapped,
/// see the `SAFETY` note in the opener).
pub struct SafetensorsModel {
    path: PathBuf,
    shards: Vec<Shard>,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    metadata: BTreeMap<String, String>,
}

impl std::fmt::Debug for SafetensorsModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsModel")
            .field("path", &self.path)
            .field("shards", &self.shards.len())
            .field("tensors", &self.entries.len())
            .finish()
    }
}

/// A parsed header entry: offsets relative to the data area (`start`,
/// `end`) and, once validated, absolute in the file (`abs_*`).
struct RawEntry {
    info: TensorInfo,
    start: u64,
    end: u64,
    abs_start: usize,
    abs_end: usize,
}

impl SafetensorsModel {
    /// Opens `path`: a `.safetensors` file, a sharded `*.json` index
    /// (`{"weight_map": {tensor: shard_file}}`, shard files relative to the
    /// index's directory), or a directory holding `model.safetensors.index.json`
    /// or `model.safetensors` (the index wins when both exist).
    ///
    /// Every header is validated: known dtypes, at most `MAX_DIMS`
    /// dimensions, no overflow, offsets that tile the data area exactly with
    /// lengths matching shape and dtype, names of 1..=`MAX_NAME_LEN` bytes,
    /// unique names, at most `MAX_TENSORS` tensors; for an index, every
    /// listed tensor in its shard and nothing else in the shards.
    pub fn open(path: impl AsRef<Path>) -> Result<SafetensorsModel, ImportError> {
        let path = path.as_ref();
        if path.is_dir() {
            let index = path.join("model.safetensors.index.json");
            let single = path.join("model.safetensors");
            return if index.is_file() {
                Self::open_index(&index)
            } else if single.is_file() {
                Self::open_single(&single)
            } else {
                Err(ImportError::NoModelInDir {
                    path: path.to_owned(),
                })
            };
        }
        let is_index = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".json"));
        if is_index {
            Self::open_index(path)
        } else {
            Self::open_single(path)
        }
    }

    fn open_single(path: &Path) -> Result<SafetensorsModel, ImportError> {
        let mut model = SafetensorsModel {
            path: path.to_owned(),
            shards: Vec::new(),
            entries: Vec::new(),
            by_name: HashMap::new(),
            metadata: BTreeMap::new(),
        };
        let (shard, (raw, meta)) = map_and_parse(path)?;
        model.metadata = meta;
        model.push_shard(shard, raw, None)?;
        Ok(model)
    }

    fn open_index(path: &Path) -> Result<SafetensorsModel, ImportError> {
        let io = |op, source| ImportError::Io {
            path: path.to_owned(),
            op,
            source,
        };
        // Refuse by size first; then read at most one byte past the cap, so
        // a file that grows after the check cannot make us allocate more.
        let file = File::open(path).map_err(|e| io("opening", e))?;
        let len = file
            .metadata()
            .map_err(|e| io("reading metadata", e))?
            .len();
        if len > MAX_HEADER_LEN {
            return Err(ImportError::HeaderTooLarge {
                path: path.to_owned(),
                len,
                max: MAX_HEADER_LEN,
            });
        }
        let mut text = Vec::new();
        file.take(MAX_HEADER_LEN + 1)
            .read_to_end(&mut text)
            .map_err(|e| io("reading", e))?;
        if text.len() as u64 > MAX_HEADER_LEN {
            return Err(ImportError::HeaderTooLarge {
                path: path.to_owned(),
                len: text.len() as u64,
                max: MAX_HEADER_LEN,
            });
        }
        let json: Value = serde_json::from_slice(&text).map_err(|source| ImportError::Json {
            path: path.to_owned(),
            source,
        })?;
        let bad = |detail: &str| ImportError::BadHeader {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        let map = json
            .as_object()
            .ok_or_else(|| bad("index is not a JSON object"))?
            .get("weight_map")
            .ok_or_else(|| bad("index has no \"weight_map\""))?
            .as_object()
            .ok_or_else(|| bad("\"weight_map\" is not an object"))?;
        if map.len() > MAX_TENSORS {
            return Err(ImportError::TooManyTensors {
                path: path.to_owned(),
                count: map.len(),
                max: MAX_TENSORS,
            });
        }
        // shard file name -> tensors the index puts there. BTreeMap: the
        // documented shard order is bytewise by file name.
        let mut listed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (tensor, shard) in map {
            let shard = shard.as_str().ok_or_else(|| ImportError::BadHeader {
                path: path.to_owned(),
                detail: format!("weight_map entry for tensor {tensor:?} is not a string"),
            })?;
            let plain = !shard.is_empty()
                && Path::new(shard)
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)));
            if !plain {
                return Err(ImportError::BadShardPath {
                    path: path.to_owned(),
                    shard: shard.to_owned(),
                    tensor: tensor.clone(),
                });
            }
            listed.entry(shard).or_default().push(tensor.as_str());
        }
        let dir = path.parent().unwrap_or(Path::new(""));
        let mut model = SafetensorsModel {
            path: path.to_owned(),
            shards: Vec::with_capacity(listed.len()),
            entries: Vec::new(),
            by_name: HashMap::new(),
            metadata: BTreeMap::new(),
        };
        for (shard_name, tensors) in &listed {
            let shard_path = dir.join(shard_name);
            let (shard, (raw, meta)) = map_and_parse(&shard_path)?;
            for (k, v) in meta {
                model.metadata.entry(k).or_insert(v);
            }
            model.push_shard(shard, raw, Some(tensors))?;
        }
        Ok(model)
    }

    /// Appends one parsed shard; with `listed`, checks that the shard holds
    /// exactly the tensors the index maps to it.
    fn push_shard(
        &mut self,
        shard: Shard,
        raw: Vec<RawEntry>,
        listed: Option<&Vec<&str>>,
    ) -> Result<(), ImportError> {
        let shard_idx = self.shards.len();
        let count = self.entries.len().saturating_add(raw.len());
        if count > MAX_TENSORS {
            return Err(ImportError::TooManyTensors {
                path: shard.path.clone(),
                count,
                max: MAX_TENSORS,
            });
        }
        if let Some(listed) = listed {
            let listed_set: std::collections::HashSet<&str> = listed.iter().copied().collect();
            if let Some(extra) = raw
                .iter()
                .find(|r| !listed_set.contains(r.info.name.as_str()))
            {
                return Err(ImportError::ShardMismatch {
                    shard: shard.path.clone(),
                    tensor: extra.info.name.clone(),
                    detail: "in the shard but the index maps it elsewhere or not at all".into(),
                });
            }
            let present: std::collections::HashSet<&str> =
                raw.iter().map(|r| r.info.name.as_str()).collect();
            if let Some(missing) = listed.iter().find(|t| !present.contains(**t)) {
                return Err(ImportError::ShardMismatch {
                    shard: shard.path.clone(),
                    tensor: (*missing).to_owned(),
                    detail: "the index maps it to this shard but the shard lacks it".into(),
                });
            }
        }
        for r in raw {
            // parse_header checked data_start + end <= map length, a usize.
            let (start, end) = (r.abs_start, r.abs_end);
            if self.by_name.contains_key(&r.info.name) {
                return Err(ImportError::ShardMismatch {
                    shard: shard.path.clone(),
                    tensor: r.info.name,
                    detail: "tensor name appears in two shards".into(),
                });
            }
            self.by_name.insert(r.info.name.clone(), self.entries.len());
            self.entries.push(Entry {
                info: r.info,
                shard: shard_idx,
                start,
                end,
            });
        }
        self.shards.push(shard);
        Ok(())
    }

    /// The path given to [`SafetensorsModel::open`] (file, index or the
    /// resolved file inside a directory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the model has no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every tensor, in the documented deterministic order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorInfo> + '_ {
        self.entries.iter().map(|e| e.info.clone())
    }

    /// The tensor named `name`, if any.
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.entries[i].info)
    }

    /// The `__metadata__` string map of the header (for a sharded model, the
    /// union over shards; the first shard in order wins on a conflict).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    fn entry(&self, name: &str) -> Result<&Entry, ImportError> {
        self.by_name
            .get(name)
            .map(|&i| &self.entries[i])
            .ok_or_else(|| ImportError::TensorNotFound {
                path: self.path.clone(),
                tensor: name.to_owned(),
            })
    }

    /// The tensor's original bytes, exactly as in the file (row-major,
    /// little-endian), borrowed from the map.
    pub fn raw_bytes(&self, name: &str) -> Result<&[u8], ImportError> {
        let e = self.entry(name)?;
        let map = &self.shards[e.shard].map;
        map.get(e.start..e.end)
            .ok_or_else(|| ImportError::BadOffsets {
                path: self.shards[e.shard].path.clone(),
                tensor: name.to_owned(),
                start: e.start as u64,
                end: e.end as u64,
                expected_start: e.start as u64,
                data_len: map.len() as u64,
            })
    }

    /// The tensor converted to f32 (see [`decode_f32_into`]); one allocation
    /// of `numel` floats.
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>, ImportError> {
        let bytes = self.raw_bytes(name)?;
        let dtype = self.entry(name)?.info.dtype;
        let mut out = Vec::new();
        decode_f32_into(name, dtype, bytes, &mut out)?;
        Ok(out)
    }
}

/// A parsed header: entries in order and the `__metadata__` map.
type Header = (Vec<RawEntry>, BTreeMap<String, String>);

/// Maps `path` and parses and validates its header.
fn map_and_parse(path: &Path) -> Result<(Shard, Header), ImportError> {
    let io = |op, source| ImportError::Io {
        path: path.to_owned(),
        op,
        source,
    };
    let file = File::open(path).map_err(|e| io("opening", e))?;
    let len = file
        .metadata()
        .map_err(|e| io("reading metadata", e))?
        .len();
    if len < 8 {
        return Err(ImportError::Truncated {
            path: path.to_owned(),
            len,
        });
    }
    // SAFETY: the map is read-only and private to this process. Mapping is
    // unsafe because another process could truncate or rewrite the file
    // while it is mapped (giving SIGBUS or changing bytes under us); the
    // importer documents that model files must not be modified while open,
    // which is the usual contract for reading weights.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| io("mapping", e))?;
    let header = parse_header(path, &map)?;
    Ok((
        Shard {
            path: path.to_owned(),
            map,
        },
        header,
    ))
}

/// Parses and validates a safetensors header; returns entries sorted by
/// data offset (then name) and the `__metadata__` map.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header, ImportError> {
    let file_len = bytes.len() as u64;
    let Some(len_bytes) = bytes.first_chunk::<8>() else {
        return Err(ImportError::Truncated {
            path: path.to_owned(),
            len: file_len,
        });
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    if header_len > MAX_HEADER_LEN {
        return Err(ImportError::HeaderTooLarge {
            path: path.to_owned(),
            len: header_len,
            max: MAX_HEADER_LEN,
        });
    }
    // header_len <= 1e8, so neither this sum nor the cast can overflow.
    let data_start = 8 + header_len;
    if data_start > file_len {
        return Err(ImportError::HeaderPastEnd {
            path: path.to_owned(),
            header_len,
            file_len,
        });
    }
    let header = &bytes[8..data_start as usize];
    let data_len = file_len - data_start;
    let json: Value = serde_json::from_slice(header).map_err(|source| ImportError::Json {
        path: path.to_owned(),
        source,
    })?;
    let Value::Object(obj) = json else {
        return Err(ImportError::BadHeader {
            path: path.to_owned(),
            detail: "header is not a JSON object".into(),
        });
    };
    let mut meta = BTreeMap::new();
    let mut raw = Vec::with_capacity(obj.len());
    for (name, v) in &obj {
        if name == "__metadata__" {
            let bad = || ImportError::BadHeader {
                path: path.to_owned(),
                detail: "__metadata__ is not an object of strings".into(),
            };
            for (k, val) in v.as_object().ok_or_else(bad)? {
                meta.insert(k.clone(), val.as_str().ok_or_else(bad)?.to_owned());
            }
            continue;
        }
        raw.push(parse_entry(path, name, v)?);
        if raw.len() > MAX_TENSORS {
            return Err(ImportError::TooManyTensors {
                path: path.to_owned(),
                count: raw.len(),
                max: MAX_TENSORS,
            });
        }
    }
    raw.sort_by(|a, b| (a.start, a.end, &a.info.name).cmp(&(b.start, b.end, &b.info.name)));
    // Data must tile [0, data_len) exactly, as the safetensors crate demands.
    let mut expected_start = 0u64;
    for r in &mut raw {
        if r.start != expected_start || r.end > data_len {
            return Err(ImportError::BadOffsets {
                path: path.to_owned(),
                tensor: r.info.name.clone(),
                start: r.start,
                end: r.end,
                expected_start,
                data_len,
            });
        }
        expected_start = r.end;
        // data_start + end <= file_len = bytes.len(), so both fit in usize.
        r.abs_start = (data_start + r.start) as usize;
        r.abs_end = (data_start + r.end) as usize;
    }
    if expected_start != data_len {
        return Err(ImportError::TrailingData {
            path: path.to_owned(),
            covered: expected_start,
            data_len,
        });
    }
    Ok((raw, meta))
}

/// Parses one `"name": {"dtype", "shape", "data_offsets"}` entry.
fn parse_entry(path: &Path, name: &str, v: &Value) -> Result<RawEntry, ImportError> {
    let bad = |detail: &str| ImportError::BadTensorEntry {
        path: path.to_owned(),
        tensor: name.to_owned(),
        detail: detail.to_owned(),
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ImportError::BadName {
            path: path.to_owned(),
            prefix: name.chars().take(64).collect(),
            len: name.len(),
        });
    }
    let obj = v.as_object().ok_or_else(|| bad("entry is not an object"))?;
    let dtype_str = obj
        .get("dtype")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing or non-string \"dtype\""))?;
    let unknown = || ImportError::UnknownDtype {
        path: path.to_owned(),
        tensor: name.to_owned(),
        dtype: dtype_str.to_owned(),
    };
    // Parse through the safetensors enum so its dtype spelling is the
    // reference, then map it.
    let st_dtype: safetensors::Dtype =
        serde_json::from_value(Value::String(dtype_str.to_owned())).map_err(|_| unknown())?;
    let dtype = dtype_from_safetensors(name, st_dtype).map_err(|_| unknown())?;
    let shape_v = obj
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("missing or non-array \"shape\""))?;
    if shape_v.len() > MAX_DIMS {
        return Err(ImportError::TooManyDims {
            path: path.to_owned(),
            tensor: name.to_owned(),
            ndims: shape_v.len(),
        });
    }
    let shape = shape_v
        .iter()
        .map(Value::as_u64)
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| bad("shape entries must be non-negative integers"))?;
    let offs = obj
        .get("data_offsets")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("missing or non-array \"data_offsets\""))?;
    let (start, end) = match offs.as_slice() {
        [s, e] => match (s.as_u64(), e.as_u64()) {
            (Some(s), Some(e)) => (s, e),
            _ => return Err(bad("data_offsets must be non-negative integers")),
        },
        _ => return Err(bad("data_offsets must have exactly two entries")),
    };
    let overflow = || ImportError::ShapeOverflow {
        path: path.to_owned(),
        tensor: name.to_owned(),
        shape: shape.clone(),
    };
    // Check the matrix width too: it can overflow even when numel is 0.
    matrix_dims(&shape).ok_or_else(overflow)?;
    let byte_len = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size() as u64))
        .ok_or_else(overflow)?;
    let actual = end
        .checked_sub(start)
        .ok_or_else(|| ImportError::BadOffsets {
            path: path.to_owned(),
            tensor: name.to_owned(),
            start,
            end,
            expected_start: start,
            data_len: 0,
        })?;
    if actual != byte_len {
        return Err(ImportError::ByteLenMismatch {
            path: path.to_owned(),
            tensor: name.to_owned(),
            expected: byte_len,
            actual,
        });
    }
    Ok(RawEntry {
        info: TensorInfo {
            name: name.to_owned(),
            dtype,
            shape,
            byte_len,
        },
        start,
        end,
        abs_start: 0,
        abs_end: 0,
    })
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
/// palette-encoded is an error ([`ImportError::OverrideNotEncodable`])
/// rather than a silent passthrough, so a wrong `--role` is noticed.
pub fn override_regime(
    tensor: &str,
    role: Role,
    dtype: Dtype,
    shape: &[u64],
) -> Result<Regime, ImportError> {
    let regime = match role {
        Role::Norm | Role::Bias => Regime::Passthrough,
        Role::TokenEmbedding | Role::PositionEmbedding | Role::LmHead => Regime::Index,
        Role::Other if shape.len() < 2 || !dtype.is_encodable_float() => Regime::Passthrough,
        _ => Regime::Argmax,
    };
    if regime != Regime::Passthrough && !dtype.is_encodable_float() {
        return Err(ImportError::OverrideNotEncodable {
            tensor: tensor.to_owned(),
            role,
            dtype,
        });
    }
    Ok(regime)
}

/// Parses a `NAME=ROLE` argument (split at the last `=`, so names may hold
/// `=`); `ROLE` is a [`Role::name`] such as `attn_q` or `token_embedding`.
pub fn parse_override(arg: &str) -> Result<(String, Role), ImportError> {
    let Some((name, role)) = arg.rsplit_once('=') else {
        return Err(ImportError::OverrideSyntax {
            arg: arg.to_owned(),
        });
    };
    if name.is_empty() {
        return Err(ImportError::OverrideSyntax {
            arg: arg.to_owned(),
        });
    }
    let role_v = Role::from_name(role).ok_or_else(|| ImportError::UnknownRole {
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
    /// [`ImportError::ConflictingOverride`].
    pub fn with_overrides(
        overrides: impl IntoIterator<Item = (String, Role)>,
    ) -> Result<Self, ImportError> {
        let mut map = BTreeMap::new();
        for (name, role) in overrides {
            match map.get(&name) {
                Some(&first) if first != role => {
                    return Err(ImportError::ConflictingOverride {
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
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Self, ImportError> {
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
    ) -> Result<Classification, ImportError> {
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
    /// ([`ImportError::OverrideUnknownTensor`]), so a typo is not ignored.
    pub fn classify_model(
        &self,
        model: &SafetensorsModel,
    ) -> Result<Vec<ClassifiedTensor>, ImportError> {
        if let Some(name) = self.overrides.keys().find(|n| model.get(n).is_none()) {
            return Err(ImportError::OverrideUnknownTensor {
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
