//! Walks the views of a file's shared objects, one index past each end
//! included: what a reader must survive on any file that passed open.
//! Shared with the root crate's `tests/fuzz_regressions.rs` through
//! `#[path]`.

use hhtld_reader::{Hhtld, ReaderError};

/// Reads every palette entry, every FisherZ diagonal value and every basis
/// row, each one past the last too; the views' results are not checked,
/// only that none panics. Errors: a palette or basis that cannot be viewed.
pub fn read_shared_objects(h: &Hhtld<'_>) -> Result<(), ReaderError> {
    for i in 0..h.palette_count() {
        let p = h.palette(i)?;
        for e in 0..=p.stored_entries() {
            let _ = p.entry_f32_vec(e);
        }
        if let Some(f) = h.fisher_for_palette(i) {
            for a in 0..=f.k() {
                let _ = f.get(a, a);
            }
        }
    }
    for i in 0..h.basis_count() {
        let b = h.basis(i)?;
        for r in 0..=b.rows() {
            let _ = b.row(r);
        }
    }
    Ok(())
}
