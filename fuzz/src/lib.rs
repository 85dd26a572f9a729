//! Shared logic of the hhtld fuzz targets. Each target in `fuzz_targets/`
//! is a one-line wrapper around a `run` function here, so the checks can
//! also be driven by `make_seeds` and read in one place.
//!
//! A target "fails" by panicking: every check below is an invariant of the
//! spec or of the crates' documented behaviour, never a guess.

pub mod caps;
pub mod check;
pub mod mutate;
pub mod reference;
pub mod repair;
pub mod roundtrip;
pub mod sample;

/// The spec's matrix view `(n_rows, n_cols)` of a shape
/// (`hhtld_format::encode::matrix_dims`), or `None` when `n_cols` or
/// `n_rows x n_cols` overflows u64.
pub fn matrix(shape: &[u64]) -> Option<(u64, u64)> {
    hhtld_format::encode::matrix_dims(shape).filter(|(r, c)| r.checked_mul(*c).is_some())
}

/// Cycles `v` to `n` values; an empty `v` gives `empty(i)` at position `i`.
pub fn cycle<T: Copy>(v: &[T], n: usize, empty: impl Fn(usize) -> T) -> Vec<T> {
    (0..n)
        .map(|i| {
            if v.is_empty() {
                empty(i)
            } else {
                v[i % v.len()]
            }
        })
        .collect()
}

/// Ids of a palette (`k` scalar entries) and a basis (`n_cols` wide) made by
/// another writer: always unknown to the writer under test.
pub fn foreign_ids(
    k: usize,
    n_cols: usize,
) -> (
    hhtld_writer::builder::PaletteId,
    hhtld_writer::builder::BasisId,
) {
    use hhtld_writer::builder::{PaletteSpec, Writer};
    let mut other = Writer::new(std::io::Cursor::new(Vec::new())).expect("writer on a Vec");
    let values: Vec<f32> = (0..k).map(|i| i as f32).collect();
    let p = other
        .add_palette(PaletteSpec {
            k,
            d: 1,
            bits: 4,
            elem: hhtld_format::ElemType::F32,
            values: &values,
        })
        .expect("foreign palette");
    let b = other
        .add_basis(n_cols, hhtld_format::ElemType::F32, &vec![0.0; 8 * n_cols])
        .expect("foreign basis");
    (p, b)
}

/// Whether two f32 values are the same: equal bits, or both NaN (Rust does
/// not fix NaN payloads of arithmetic, so only NaN-ness is comparable).
pub fn same_f32(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Panics with the first position where two f32 slices differ.
pub fn assert_same_f32(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| !same_f32(got[i], want[i])) {
        panic!(
            "{what}: element {i} is {} ({:#010x}), expected {} ({:#010x})",
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

#[path = "../../examples/support/mod.rs"]
mod support;

/// The splitmix64 generator, for deterministic sample data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        support::splitmix64(&mut self.0)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    /// `n` values uniform in `[lo, hi)`.
    pub fn values(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Whether `HHTLD_FUZZ_TRACE` is set: the structured targets then print
/// what each call returned, to see which paths a corpus reaches
/// (`HHTLD_FUZZ_TRACE=1 fuzz/target/.../roundtrip corpus/roundtrip -runs=0`).
pub fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("HHTLD_FUZZ_TRACE").is_some())
}
