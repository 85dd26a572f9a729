//! `hhtld decode`: an .hhtld file back to safetensors, streamed.
//!
//! The safetensors header is built from the directory alone, then each
//! tensor is written in chunks of rows decoded into one reused buffer, so
//! memory stays a few chunks whatever the tensor sizes. Before anything is
//! created the output is checked against the expansion limit (spec §7): each
//! tensor, and the whole output, at most `max_expansion x` the file's
//! length. The output is written under a temporary name beside the
//! destination and renamed into place only when complete; on any error it is
//! removed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use hhtld_reader::{bf16, f16, Dtype, Encoding, HhtldFile, OutElem, ReaderError, TensorView};
use zerocopy::{Immutable, IntoBytes};

use crate::{Failure, Outcome};

/// Decoded elements per chunk: 4 MiB of f32, enough to keep both cores
/// busy and the writes large.
const CHUNK_ELEMS: usize = 1 << 20;

/// One tensor of the output: where its bytes come from and where they go.
struct Plan<'a> {
    t: TensorView<'a>,
    out: Dtype,
    bytes: u64,
}

/// The dtype a tensor is written as: RAW tensors keep theirs (their bytes
/// are copied), PALETTE tensors take `--dtype` or their original one.
fn out_dtype(t: &TensorView<'_>, asked: Option<Dtype>) -> Result<Dtype, Failure> {
    if t.encoding() == Encoding::Raw {
        return Ok(t.dtype());
    }
    let out = asked.unwrap_or(t.dtype());
    match out {
        Dtype::F32 | Dtype::Bf16 | Dtype::F16 | Dtype::F64 => Ok(out),
        other => Err(Failure(format!(
            "{}: cannot decode a palette tensor to {other}",
            t.name()
        ))),
    }
}

/// The safetensors header: JSON padded with spaces to a multiple of 8.
fn header(plans: &[Plan<'_>], meta: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let mut obj = serde_json::Map::new();
    if !meta.is_empty() {
        obj.insert("__metadata__".into(), meta.clone().into());
    }
    let mut offset = 0u64;
    for p in plans {
        let end = offset + p.bytes;
        obj.insert(
            p.t.name().to_owned(),
            serde_json::json!({
                "dtype": p.out.name(),
                "shape": p.t.shape(),
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
    }
    let mut text = serde_json::Value::Object(obj).to_string().into_bytes();
    // 8-byte alignment for the data that follows the 8-byte length.
    text.resize(text.len().next_multiple_of(8), b' ');
    text
}

/// Decodes `t` to `O` chunk by chunk into `buf` and writes each chunk.
fn write_decoded<O: OutElem + IntoBytes + Immutable>(
    t: &TensorView<'_>,
    buf: &mut Vec<O>,
    w: &mut impl Write,
) -> Result<(), Failure> {
    let n_cols = t.n_cols().max(1);
    let rows = (CHUNK_ELEMS / n_cols).max(1);
    let mut r = 0;
    while r < t.n_rows() {
        let end = (r + rows).min(t.n_rows());
        buf.resize((end - r) * t.n_cols(), O::default());
        t.decode_rows_into(r..end, buf)?;
        w.write_all(buf.as_bytes())?;
        r = end;
    }
    Ok(())
}

/// F64 output: decoded to f32, widened exactly.
fn write_f64(t: &TensorView<'_>, buf: &mut Vec<f32>, w: &mut impl Write) -> Result<(), Failure> {
    let n_cols = t.n_cols().max(1);
    let rows = (CHUNK_ELEMS / n_cols).max(1);
    let mut wide = Vec::new();
    let mut r = 0;
    while r < t.n_rows() {
        let end = (r + rows).min(t.n_rows());
        buf.resize((end - r) * t.n_cols(), 0.0);
        t.decode_rows_into(r..end, buf)?;
        wide.clear();
        wide.extend(buf.iter().map(|&x| f64::from(x)));
        w.write_all(wide.as_bytes())?;
        r = end;
    }
    Ok(())
}

/// Writes every tensor's bytes in header order. Once a tensor is written
/// its input pages are released, so the mapped file does not accumulate in
/// resident memory either.
fn write_data(file: &HhtldFile, plans: &[Plan<'_>], w: &mut impl Write) -> Result<(), Failure> {
    let (mut b32, mut b16, mut h16) = (Vec::<f32>::new(), Vec::<bf16>::new(), Vec::<f16>::new());
    for p in plans {
        write_tensor(p, w, &mut b32, &mut b16, &mut h16)?;
        file.release_tensor(p.t.index())?;
    }
    Ok(())
}

/// One tensor's bytes: RAW copied from the mapping, PALETTE decoded in
/// row chunks into the reused buffers.
fn write_tensor(
    p: &Plan<'_>,
    w: &mut impl Write,
    b32: &mut Vec<f32>,
    b16: &mut Vec<bf16>,
    h16: &mut Vec<f16>,
) -> Result<(), Failure> {
    if let Some(raw) = p.t.raw_bytes() {
        w.write_all(raw)?;
        return Ok(());
    }
    match p.out {
        Dtype::F32 => write_decoded(&p.t, b32, w)?,
        Dtype::Bf16 => write_decoded(&p.t, b16, w)?,
        Dtype::F16 => write_decoded(&p.t, h16, w)?,
        Dtype::F64 => write_f64(&p.t, b32, w)?,
        // out_dtype admits nothing else.
        other => return Err(Failure(format!("{}: cannot decode to {other}", p.t.name()))),
    }
    Ok(())
}

/// `dir/.name.tmp-PID`, beside the destination so the rename is atomic.
fn temp_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// The expansion checks of spec §7, before any output exists: each tensor
/// (the reader's typed error names it), then the sum.
fn check_expansion(plans: &[Plan<'_>], budget: u64, file: &HhtldFile) -> Result<(), Failure> {
    let hint = |e: ReaderError| Failure(format!("{e}; raise it with --max-expansion"));
    for p in plans {
        if p.t.encoding() == Encoding::Palette {
            match p.out {
                Dtype::Bf16 => p.t.check_expansion::<bf16>(),
                Dtype::F16 => p.t.check_expansion::<f16>(),
                // F64 is twice the f32 figure: checked by the total below.
                _ => p.t.check_expansion::<f32>(),
            }
            .map_err(hint)?;
        }
    }
    let total: u64 = plans.iter().map(|p| p.bytes).sum();
    if total > budget {
        let largest = plans.iter().max_by_key(|p| p.bytes);
        return Err(Failure(format!(
            "{}: the output would be {total} bytes (largest tensor {}: {} bytes), over the expansion limit of {budget} bytes ({} x the file's {} bytes); raise it with --max-expansion",
            file.path().map_or_else(String::new, |p| p.display().to_string()),
            largest.map_or("", |p| p.t.name()),
            largest.map_or(0, |p| p.bytes),
            file.max_expansion(),
            file.bytes().len(),
        )));
    }
    Ok(())
}

/// Decodes `path` to the safetensors file `dest`.
pub fn run(
    path: &Path,
    dest: &Path,
    dtype: Option<Dtype>,
    max_expansion: Option<u64>,
) -> Result<Outcome, Failure> {
    let mut file = HhtldFile::open(path)?;
    if let Some(x) = max_expansion {
        file = file.with_max_expansion(x);
    }
    let view = file.view();
    let mut plans = Vec::with_capacity(view.tensor_count());
    for t in view.tensors() {
        let out = out_dtype(&t, dtype)?;
        // RAW: the stored bytes; PALETTE: numel elements of the output dtype.
        let bytes = match t.raw_bytes() {
            Some(raw) => raw.len() as u64,
            None => (t.numel() as u64).saturating_mul(out.size() as u64),
        };
        plans.push(Plan { t, out, bytes });
    }
    check_expansion(&plans, view.expansion_budget(), &file)?;

    // Metadata that came from the source file goes back under its own key.
    let mut meta = serde_json::Map::new();
    for entry in view.metadata() {
        let (k, v) = entry?;
        if let Some(k) = k.strip_prefix("source.") {
            meta.insert(k.to_owned(), serde_json::Value::from(v));
        }
    }
    let head = header(&plans, &meta);

    let tmp = temp_path(dest);
    let written = (|| -> Result<(), Failure> {
        let f = File::create(&tmp).map_err(|e| Failure(format!("{}: {e}", dest.display())))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&(head.len() as u64).to_le_bytes())?;
        w.write_all(&head)?;
        write_data(&file, &plans, &mut w)?;
        let f = w.into_inner().map_err(|e| Failure(e.error().to_string()))?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    Ok(Outcome::Ok)
}
