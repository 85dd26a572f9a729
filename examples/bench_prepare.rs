//! Writes the benchmark baseline: a BF16 safetensors copy of a model, every
//! float tensor (F32, F16, F64) converted to BF16 with round-to-nearest-even
//! and every other tensor kept byte for byte, metadata kept.
//!
//! `bench_prepare MODEL.safetensors OUT.safetensors` prints the number of
//! parameters (all tensors) on stdout. The copy is converted from the
//! original, not decoded from an .hhtld file, so it is what a BF16 checkpoint
//! of the same model holds. `benches/hhtld.rs` includes this file as a module.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

/// Any failure, as a message (this is a tool, not a library).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Converts `src` to a BF16 copy at `dst` (written to a temporary name and
/// renamed, so a reader never sees a partial file); returns the parameter count.
pub fn write_bf16_copy(src: &Path, dst: &Path) -> Result<u64, Error> {
    let file = File::open(src)?;
    // SAFETY: read-only map of a model file that nothing modifies while
    // this short-lived tool runs.
    let map = unsafe { Mmap::map(&file)? };
    let st = SafeTensors::deserialize(&map)?;
    let (_, meta) = SafeTensors::read_metadata(&map)?;

    let mut names: Vec<String> = st.names().into_iter().map(str::to_owned).collect();
    names.sort();
    let mut converted: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(names.len());
    let mut params = 0u64;
    for name in names {
        let t = st.tensor(&name)?;
        let shape = t.shape().to_vec();
        params += shape.iter().product::<usize>() as u64;
        let data = t.data();
        let bytes: Option<Vec<u8>> = match t.dtype() {
            Dtype::F32 => Some(
                data.chunks_exact(4)
                    .flat_map(|c| {
                        bf16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes()
                    })
                    .collect(),
            ),
            Dtype::F16 => Some(
                data.chunks_exact(2)
                    .flat_map(|c| {
                        bf16::from_f32(f16::from_le_bytes([c[0], c[1]]).to_f32()).to_le_bytes()
                    })
                    .collect(),
            ),
            Dtype::F64 => Some(
                data.chunks_exact(8)
                    .flat_map(|c| {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(c);
                        bf16::from_f64(f64::from_le_bytes(b)).to_le_bytes()
                    })
                    .collect(),
            ),
            _ => None,
        };
        match bytes {
            Some(b) => converted.push((name, Dtype::BF16, shape, b)),
            None => converted.push((name, t.dtype(), shape, data.to_vec())),
        }
    }
    let views = converted
        .iter()
        .map(|(n, dt, shape, b)| {
            Ok((
                n.as_str(),
                safetensors::tensor::TensorView::new(*dt, shape.clone(), b)?,
            ))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let info: Option<HashMap<String, String>> = meta.metadata().clone();
    let tmp = dst.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(views, info, &tmp)?;
    std::fs::rename(&tmp, dst)?;
    Ok(params)
}

#[allow(dead_code)] // unused when included by the criterion bench
fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, src, dst] = &args[..] else {
        return Err("usage: bench_prepare MODEL.safetensors OUT.safetensors".into());
    };
    let params = write_bf16_copy(Path::new(src), Path::new(dst))?;
    println!("{params}");
    Ok(())
}
