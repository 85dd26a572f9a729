//! The `mutate` target: one mutation of a valid file must be caught by open
//! or by verification (spec §1: every byte is header/table, a section, or
//! padding, and each is covered).

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use hhtld_reader::HhtldFile;

use crate::check;
use crate::sample::seed_files;

/// Width of a little-endian field.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Width {
    /// 2 bytes.
    W2,
    /// 4 bytes.
    W4,
    /// 8 bytes.
    W8,
}

impl Width {
    fn bytes(self) -> usize {
        match self {
            Width::W2 => 2,
            Width::W4 => 4,
            Width::W8 => 8,
        }
    }
}

/// The value a field is set to.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum FieldValue {
    /// All zero.
    Zero,
    /// All 0xFF (NONE for u32 fields).
    Ones,
    /// The top bit of the field set, plus the given low bits: a value no
    /// count or offset of a small file can have.
    Huge(u64),
    /// Any value.
    Any(u64),
}

/// One change to a file.
#[derive(Arbitrary, Debug, Clone)]
pub enum Mutation {
    /// Sets the byte at `offset` (modulo the length) to `value`.
    SetByte {
        /// Where.
        offset: u32,
        /// New value.
        value: u8,
    },
    /// XORs the byte at `offset` with `mask`.
    FlipBits {
        /// Where.
        offset: u32,
        /// Bits to flip.
        mask: u8,
    },
    /// Cuts the file to `len` bytes (modulo the length).
    Truncate {
        /// New length.
        len: u32,
    },
    /// Appends bytes.
    Extend {
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Overwrites a little-endian field.
    Field {
        /// Where (modulo the length).
        offset: u32,
        /// Its width (cut at the end of the file).
        width: Width,
        /// Its new value.
        value: FieldValue,
    },
}

/// The fuzzer's input: which seed file, and what to do to it.
#[derive(Arbitrary, Debug, Clone)]
pub struct Input {
    /// Index into [`seed_files`], modulo their number.
    pub file: u8,
    /// The change.
    pub mutation: Mutation,
}

impl Mutation {
    /// The mutated copy of `orig` (non-empty).
    pub fn apply(&self, orig: &[u8]) -> Vec<u8> {
        let len = orig.len();
        let at = |o: u32| o as usize % len;
        let mut b = orig.to_vec();
        match self {
            Mutation::SetByte { offset, value } => b[at(*offset)] = *value,
            Mutation::FlipBits { offset, mask } => b[at(*offset)] ^= mask,
            Mutation::Truncate { len: l } => b.truncate(at(*l)),
            Mutation::Extend { bytes } => b.extend_from_slice(bytes),
            Mutation::Field {
                offset,
                width,
                value,
            } => {
                let w = width.bytes();
                let v = match value {
                    FieldValue::Zero => 0,
                    FieldValue::Ones => u64::MAX,
                    FieldValue::Huge(x) => x | 1 << (8 * w - 1),
                    FieldValue::Any(x) => *x,
                };
                let start = at(*offset);
                let end = (start + w).min(len);
                b[start..end].copy_from_slice(&v.to_le_bytes()[..end - start]);
            }
        }
        b
    }
}

fn seeds() -> &'static [(&'static str, Vec<u8>)] {
    static SEEDS: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    SEEDS.get_or_init(seed_files)
}

/// Applies the mutation and checks that a changed file is rejected by open
/// or by `verify()`; whatever open accepts must still be safe to read.
pub fn run(input: &Input) {
    let files = seeds();
    let (name, orig) = &files[usize::from(input.file) % files.len()];
    let bytes = input.mutation.apply(orig);
    let Some(file) = check::open(&bytes) else {
        assert_ne!(&bytes, orig, "{name}: the unchanged file does not open");
        return;
    };
    let h = file.view();
    // Every view must work on whatever open accepted (payload bytes are
    // not checked at open: NaN palettes, stray codes).
    check::views(&h);
    let verified = h.verify();
    if bytes == *orig {
        assert!(
            verified.is_ok(),
            "{name}: the unchanged file does not verify: {verified:?}"
        );
    } else {
        assert!(
            verified.is_err(),
            "{name}: {:?} changed the file but neither open nor verify noticed",
            input.mutation
        );
    }
}

/// Opens `bytes` (a seed or a mutated copy) the way `run` does and says
/// whether the change was caught; for tests and seed checks.
pub fn caught(bytes: &[u8]) -> bool {
    match HhtldFile::copy_from_slice(bytes) {
        Err(_) => true,
        Ok(f) => f.view().verify().is_err(),
    }
}
