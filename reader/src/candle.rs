//! A candle backend: load any candle model from an hhtld file.
//!
//! [`HhtldBackend`] implements [`candle_nn::var_builder::SimpleBackend`], so
//! [`var_builder`] gives a [`candle_nn::VarBuilder`] that model code uses
//! unchanged. PALETTE tensors are decoded on request straight into the
//! requested float type (F32, BF16 or F16; other types through F32 and
//! candle's `to_dtype`); RAW tensors come back as stored and are converted
//! the way candle's own safetensors loader converts them.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use candle_core::{DType, Device};
//! let vb = hhtld_reader::candle::var_builder("model.hhtld", DType::F32, &Device::Cpu)?;
//! let w = vb.get((384, 384), "encoder.layer.0.attention.self.query.weight")?;
//! # let _ = w; Ok(()) }
//! ```

use std::path::Path;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use half::{bf16, f16};
use hhtld_format::{Dtype, Encoding};

use crate::{HhtldFile, OutElem, ReaderError, TensorHandle};

/// A [`SimpleBackend`] over an open hhtld file. Cheap to clone: the file
/// handle is shared.
#[derive(Clone, Debug)]
pub struct HhtldBackend {
    file: HhtldFile,
}

impl HhtldBackend {
    /// Opens and validates `path` (memory-mapped).
    pub fn open(path: impl AsRef<Path>) -> Result<HhtldBackend, ReaderError> {
        Ok(HhtldBackend::new(HhtldFile::open(path)?))
    }

    /// A backend over an already open file.
    pub fn new(file: HhtldFile) -> HhtldBackend {
        HhtldBackend { file }
    }

    /// The file (its metadata holds the model's config and tokenizer when
    /// the encoder found them, spec §5).
    pub fn file(&self) -> &HhtldFile {
        &self.file
    }

    fn handle(&self, name: &str) -> candle_core::Result<TensorHandle> {
        self.file.tensor_by_name(name).map_err(|e| match e {
            ReaderError::NoSuchTensor { .. } => candle_core::Error::CannotFindTensor {
                path: name.to_owned(),
            }
            .bt(),
            e => candle_core::Error::wrap(e),
        })
    }

    /// Loads tensor `name` as `dtype` on `dev`, in its stored shape.
    pub fn load(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        load_tensor(&self.handle(name)?, dtype, dev)
    }

    /// Wraps the backend in a [`VarBuilder`] for `dtype` on `device`.
    /// Building a model loads nearly every tensor, so the whole file is
    /// prefetched ([`HhtldFile::prefetch`]): from a cold cache the disk
    /// reads ahead while the first tensors decode.
    pub fn into_var_builder(self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        // Advice only: if it fails, each tensor's first read still faults
        // its pages in and reports its own I/O errors.
        let _ = self.file.prefetch();
        VarBuilder::from_backend(Box::new(self), dtype, device.clone())
    }
}

/// Opens `path` and returns a [`VarBuilder`] that loads its tensors as
/// `dtype` on `device` (the file prefetched, as
/// [`HhtldBackend::into_var_builder`] does).
pub fn var_builder(
    path: impl AsRef<Path>,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, ReaderError> {
    Ok(HhtldBackend::open(path)?.into_var_builder(dtype, device))
}

fn shape_of(t: &TensorHandle) -> candle_core::Result<Vec<usize>> {
    t.shape()
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                candle_core::Error::Msg(format!("tensor {:?}: dimension {d} too large", t.name()))
            })
        })
        .collect()
}

/// Decodes a PALETTE tensor straight into `O`.
fn decode<O: OutElem + candle_core::WithDType>(
    t: &TensorHandle,
    shape: Vec<usize>,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    let v = t.decode_as::<O>().map_err(candle_core::Error::wrap)?;
    Tensor::from_vec(v, shape, dev)
}

/// One tensor as `dtype`: PALETTE tensors decoded straight into F32, BF16
/// or F16 (other dtypes through F32 and `to_dtype`), RAW ones as candle's
/// safetensors loader gives them, then `to_dtype`.
fn load_tensor(t: &TensorHandle, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
    let shape = shape_of(t)?;
    let name = t.name();
    match t.encoding() {
        Encoding::Palette => match dtype {
            DType::F32 => decode::<f32>(t, shape, dev),
            DType::BF16 => decode::<bf16>(t, shape, dev),
            DType::F16 => decode::<f16>(t, shape, dev),
            other => decode::<f32>(t, shape, dev)?.to_dtype(other),
        },
        Encoding::Raw => {
            let bytes = t.raw_bytes().unwrap_or(&[]);
            let stored = match t.dtype() {
                Dtype::U8 => DType::U8,
                Dtype::U32 => DType::U32,
                Dtype::I16 => DType::I16,
                Dtype::I32 => DType::I32,
                Dtype::I64 => DType::I64,
                Dtype::Bf16 => DType::BF16,
                Dtype::F16 => DType::F16,
                Dtype::F32 => DType::F32,
                Dtype::F64 => DType::F64,
                Dtype::F8E4M3 => DType::F8E4M3,
                Dtype::U16 => {
                    // candle has no u16: its safetensors loader widens to u32.
                    let v: Vec<u32> = bytes
                        .chunks_exact(2)
                        .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
                        .collect();
                    return Tensor::from_vec(v, shape, dev)?.to_dtype(dtype);
                }
                other => {
                    return Err(candle_core::Error::Msg(format!(
                        "tensor {name:?}: dtype {other} has no candle equivalent"
                    ))
                    .bt())
                }
            };
            Tensor::from_raw_buffer(bytes, stored, &shape, dev)?.to_dtype(dtype)
        }
    }
}

impl SimpleBackend for HhtldBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        // Check the shape before decoding: a mismatch costs nothing.
        let t = self.handle(name)?;
        let got = shape_of(&t)?;
        if got.as_slice() != s.dims() {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: got.into(),
            }
            .bt());
        }
        load_tensor(&t, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.load(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.file.contains(name)
    }
}
