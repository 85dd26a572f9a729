//! Helpers shared by the benchmark programs (`benches/hhtld.rs` and the
//! `bench_*` examples), included with `#[path]`.
#![allow(dead_code)] // each program uses a subset

use std::fs::File;
use std::path::Path;

use half::bf16;
use memmap2::Mmap;

/// SplitMix64: a fixed-seed generator, so every run picks the same rows.
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

/// Drops `path` from the page cache (GNU dd: `posix_fadvise(DONTNEED)` on
/// the whole file). Pages mapped by a live mapping stay, so callers hold no
/// map of the file.
pub fn evict(path: &Path) -> std::io::Result<()> {
    let st = std::process::Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()?;
    if !st.success() {
        return Err(std::io::Error::other(format!(
            "dd could not evict {}",
            path.display()
        )));
    }
    Ok(())
}

/// A read-only map of a benchmark file.
pub fn map(path: &Path) -> std::io::Result<Mmap> {
    let f = File::open(path)?;
    // SAFETY: read-only map of a benchmark file nothing modifies meanwhile.
    unsafe { Mmap::map(&f) }
}

/// BF16 little-endian bytes to f32, the way a safetensors loader does it
/// with `half`: a typed view when aligned, else byte pairs.
pub fn bf16_to_f32(src: &[u8], out: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    use zerocopy::FromBytes;
    match <[bf16]>::ref_from_bytes(src) {
        Ok(v) if v.len() == out.len() => v.convert_to_f32_slice(out),
        _ => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
    }
}

/// Wrapping sum of the bytes as little-endian u64 words (the tail bytes
/// added one by one): a plain read that vectorises to packed 64-bit adds.
pub fn word_sum(b: &[u8]) -> u64 {
    let words = b.chunks_exact(8);
    let tail = words
        .remainder()
        .iter()
        .fold(0u64, |a, &x| a.wrapping_add(u64::from(x)));
    words
        .map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
        .fold(tail, u64::wrapping_add)
}
