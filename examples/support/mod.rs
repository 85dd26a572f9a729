//! Small helpers shared as source (included with `#[path]`) by the
//! examples, the tests of several crates and the fuzz crate.
#![allow(dead_code)] // each includer uses a subset

/// SplitMix64: advances `state` and returns the next 64 random bits. The
/// fixed-seed generator of every synthetic model, test plan and seed file.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The names of the entries of `dir`, sorted (to see that a writer left no
/// temporary file behind).
pub fn dir_entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
