//! `parse` never panics: random edits of a valid file, with and without the
//! header CRC repaired, give `Ok` or a typed error, and an `Ok` layout only
//! points inside the file.

mod common;

use common::*;
use hhtld_format::parse;
use proptest::prelude::*;

fn check(bytes: &[u8]) {
    if let Ok(l) = parse(bytes) {
        let n = bytes.len();
        assert_eq!(l.file_len, n);
        for s in &l.sections {
            assert!(s.range().end <= n);
        }
        for t in &l.tensors {
            assert!(t.name.end <= n && t.data.end <= n);
            assert_eq!(t.stages().iter().map(|s| s.cb).sum::<usize>(), t.stride);
        }
        for i in 0..l.tensors.len() {
            let name = l.tensor_name(bytes, i).unwrap();
            assert_eq!(l.tensor_index(bytes, name), Some(i));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_edits_never_panic(
        edits in xor_edits(8),
        fix_crc in any::<bool>(),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut b = rich().0.build();
        let n = b.len();
        apply_xor(&mut b, 0, n, &edits);
        if fix_crc && b.len() >= 64 {
            fix_header_crc(&mut b);
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len() + 1));
        }
        check(&b);
    }

    /// Edits confined to the DIRECTORY, which no CRC guards at open: every
    /// record field is reached.
    #[test]
    fn random_directory_edits_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut b = rich().0.build();
        let (off, len) = section_span(&mut b, DIR as usize);
        for (at, v) in edits {
            b[off + at.index(len)] = v;
        }
        check(&b);
    }
}
