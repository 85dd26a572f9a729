//! `hhtld decode`: an .hhtld file back to safetensors.
//!
//! Tensors are decoded lazily, one at a time, while the safetensors crate
//! writes them, so peak memory is one decoded tensor. The output is written
//! under a temporary name and renamed into place only when complete.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use hhtld_format::{Dtype, Encoding};
use hhtld_reader::{HhtldFile, TensorView};
use hhtld_writer::import::dtype_to_safetensors;
use safetensors::tensor::View;

use crate::{Failure, Outcome};

/// A tensor whose bytes are produced when the serializer asks for them.
struct Lazy<'a, 'e> {
    t: TensorView<'a>,
    out: Dtype,
    shape: Vec<usize>,
    len: usize,
    /// The first decode error; `data()` cannot return one.
    err: &'e RefCell<Option<String>>,
}

impl View for Lazy<'_, '_> {
    fn dtype(&self) -> safetensors::Dtype {
        dtype_to_safetensors(self.out)
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        match tensor_bytes(&self.t, self.out) {
            Ok(b) => b,
            Err(e) => {
                self.err.borrow_mut().get_or_insert(e);
                Cow::Owned(vec![0; self.len])
            }
        }
    }
    fn data_len(&self) -> usize {
        self.len
    }
}

/// Passthrough tensors: their stored bytes, untouched. Encoded tensors:
/// decoded to f32, then converted to `out`.
fn tensor_bytes<'a>(t: &TensorView<'a>, out: Dtype) -> Result<Cow<'a, [u8]>, String> {
    if t.encoding() == Encoding::Raw {
        return t
            .raw_bytes()
            .map(Cow::Borrowed)
            .ok_or_else(|| format!("{}: raw bytes missing", t.name()));
    }
    let v = t.decode().map_err(|e| e.to_string())?;
    Ok(Cow::Owned(match out {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F64 => v.iter().flat_map(|&x| f64::from(x).to_le_bytes()).collect(),
        Dtype::F16 => v
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect(),
        Dtype::Bf16 => v
            .iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
            .collect(),
        other => return Err(format!("{}: cannot decode to {}", t.name(), other.name())),
    }))
}

/// `dir/.name.tmp-PID`, beside the destination so the rename is atomic.
fn temp_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

pub fn run(path: &Path, dest: &Path, dtype: Option<Dtype>) -> Result<Outcome, Failure> {
    let file = HhtldFile::open(path)?;
    let view = file.view();
    let err = RefCell::new(None);
    let mut tensors = Vec::with_capacity(view.tensor_count());
    for t in view.tensors() {
        let out = match t.encoding() {
            Encoding::Raw => t.dtype(),
            Encoding::Palette => dtype.unwrap_or(t.dtype()),
        };
        let shape = t
            .shape()
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Failure(format!("{}: shape does not fit this machine", t.name())))?;
        let len = t
            .numel()
            .checked_mul(out.size())
            .ok_or_else(|| Failure(format!("{}: too large", t.name())))?;
        tensors.push((
            t.name().to_string(),
            Lazy {
                t,
                out,
                shape,
                len,
                err: &err,
            },
        ));
    }
    // Metadata that came from the source file goes back under its own key.
    let info: HashMap<String, String> = view
        .metadata()
        .filter_map(|(k, v)| {
            k.strip_prefix("source.")
                .map(|k| (k.to_string(), v.to_string()))
        })
        .collect();
    let info = (!info.is_empty()).then_some(info);

    let tmp = temp_path(dest);
    let written = safetensors::serialize_to_file(tensors, info, &tmp)
        .map_err(|e| Failure(format!("{}: {e}", dest.display())))
        .and_then(|()| match err.borrow_mut().take() {
            Some(e) => Err(Failure(e)),
            None => Ok(()),
        })
        .and_then(|()| {
            File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, dest)?;
            Ok(())
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    Ok(Outcome::Ok)
}
