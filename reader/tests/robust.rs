//! The reader never panics on a file that passed open: random edits of a
//! valid file, then every view and decode is exercised.

#[path = "../../format/tests/common/mod.rs"]
mod asm;
mod views_walk;

use asm::*;
use hhtld_reader::HhtldFile;
use proptest::prelude::*;
use views_walk::read_shared_objects;

fn exercise(bytes: Vec<u8>) {
    let Ok(f) = HhtldFile::from_vec(bytes) else {
        return;
    };
    let h = f.view();
    let _ = h.verify();
    let _ = h.metadata().filter(Result::is_ok).count();
    let _ = h.metadata_raw().count();
    read_shared_objects(&h).unwrap();
    for t in h.tensors() {
        let _ = t.decode();
        for r in 0..=t.n_rows().min(4) {
            if let Ok(row) = t.row(r) {
                for s in 0..=row.stage_count() {
                    let _ = row.codes(s);
                    for j in 0..=t.n_cols() {
                        let _ = row.code(s, j);
                    }
                }
            }
            let mut out = vec![0.0; t.n_cols().min(1 << 16)];
            let _ = t.decode_row_into(r, &mut out);
        }
        let _ = t.raw_slice::<u8>();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn views_of_edited_files_never_panic(
        edits in xor_edits(6),
        in_directory in any::<bool>(),
    ) {
        let mut b = rich().0.build();
        let (off, len) = if in_directory { section_span(&mut b, DIR as usize) } else { (0, b.len()) };
        apply_xor(&mut b, off, len, &edits);
        exercise(b);
    }
}
