//! Opening, mapping and validating safetensors files and indexes.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use hhtld_format::encode::matrix_dims;
use hhtld_format::limits::{MAX_DIMS, MAX_NAME_LEN, MAX_TENSORS};
use memmap2::Mmap;
use serde_json::Value;

use crate::{decode_f32_into, dtype_from_safetensors, ImportError, TensorInfo, MAX_HEADER_LEN};

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
        let io = io_err(path);
        // Refuse by size first; then read at most one byte past the cap, so
        // a file that grows after the check cannot make us allocate more.
        let (file, len) = open_with_len(path)?;
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

    /// Drops this process's resident pages of the tensor's bytes (they stay
    /// in the page cache and are read back on the next access), so a model
    /// read tensor by tensor keeps only the tensor at hand resident.
    pub fn release(&self, name: &str) -> Result<(), ImportError> {
        let e = self.entry(name)?;
        let shard = &self.shards[e.shard];
        if e.end <= e.start {
            return Ok(());
        }
        // SAFETY: MADV_DONTNEED on a read-only file mapping only discards
        // this process's copies of clean file pages; later reads fault them
        // back in from the file, so no borrowed slice changes value.
        unsafe {
            shard.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                e.start,
                e.end - e.start,
            )
        }
        .map_err(|source| ImportError::Io {
            path: shard.path.clone(),
            op: "releasing pages",
            source,
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

/// An I/O error on `path` while doing `op`.
fn io_err(path: &Path) -> impl Fn(&'static str, std::io::Error) -> ImportError + '_ {
    move |op, source| ImportError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

/// Opens `path` and reads its length.
fn open_with_len(path: &Path) -> Result<(File, u64), ImportError> {
    let io = io_err(path);
    let file = File::open(path).map_err(|e| io("opening", e))?;
    let len = file
        .metadata()
        .map_err(|e| io("reading metadata", e))?
        .len();
    Ok((file, len))
}

/// Maps `path` and parses and validates its header.
fn map_and_parse(path: &Path) -> Result<(Shard, Header), ImportError> {
    let io = io_err(path);
    let (file, len) = open_with_len(path)?;
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
