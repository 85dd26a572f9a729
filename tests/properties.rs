//! Properties every reader of the spec must have, checked on the valid
//! conformance vectors: any single-byte change is caught by open or
//! verification, truncation and extension are rejected at open, open's
//! memory is bounded by the directory bytes actually present, and decode
//! loops are bounded by the shape.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs;

use hhtld_format::limits::{MAX_PALETTES, MAX_SECTIONS, MAX_TENSORS};
use hhtld_format::{Dtype, Encoding};
use hhtld_reader::{Hhtld, HhtldFile, ReaderError};
use proptest::prelude::*;

#[allow(dead_code)]
#[path = "../examples/gen_vectors.rs"]
mod gen_vectors;

// ---------------------------------------------------------------------------
// A counting allocator. Tests run on several threads, so the counters are
// per thread: a measurement sees only its own thread's allocations (open
// runs on the calling thread).

struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // `try_with`: never fails for const-initialised Cells, and must not panic
    // inside the allocator either way.
    let on = ON.try_with(Cell::get).unwrap_or(false);
    if !on {
        return;
    }
    let _ = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the bookkeeping only touches
// thread-local `Cell`s, which neither allocate nor unwind.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by `System` for `layout` (all our
        // allocations come from it).
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes allocated (above the start) on this thread while `f` runs.
fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    ON.with(|o| o.set(true));
    let r = f();
    ON.with(|o| o.set(false));
    (r, PEAK.with(Cell::get).max(0) as usize)
}

/// Table, DIRECTORY, STRINGS and METADATA bytes actually in `b`, read
/// leniently (any input): whatever the header and table claim, only bytes
/// inside the file count.
fn present_bytes(b: &[u8]) -> usize {
    let n = b.len() as u64;
    let rd = |at: usize, len: usize| -> u64 {
        let mut v = [0u8; 8];
        if let Some(s) = b.get(at..at + len) {
            v[..len].copy_from_slice(s);
        }
        u64::from_le_bytes(v)
    };
    if n < 64 {
        return 0;
    }
    let table_offset = rd(24, 8);
    let count = rd(32, 4);
    let t0 = table_offset.min(n);
    let t1 = table_offset.saturating_add(32 * count).min(n);
    let mut total = t1 - t0;
    let mut i = 0u64;
    while i < count && table_offset.saturating_add(32 * (i + 1)) <= n {
        let e = (table_offset + 32 * i) as usize;
        if (1..=3).contains(&rd(e, 2)) {
            let (off, len) = (rd(e + 8, 8), rd(e + 16, 8));
            total += off.saturating_add(len).min(n) - off.min(n);
        }
        i += 1;
    }
    total as usize
}

/// The bound the spec promises (section 7): a constant plus O(bytes present).
fn bound(b: &[u8]) -> usize {
    64 * 1024 + 16 * present_bytes(b)
}

/// Opens `b` under the counting allocator and checks the bound.
fn check_open_memory(what: &str, b: &[u8]) -> Result<(), String> {
    let (ok, peak) = peak_during(|| Hhtld::from_bytes(b).is_ok());
    if peak > bound(b) {
        return Err(format!(
            "{what}: open (ok = {ok}) allocated {peak} bytes, bound {} ({} bytes present)",
            bound(b),
            present_bytes(b)
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------

/// The `.hhtld` vectors of `spec/vectors/{kind}`, with their file names,
/// in name order.
fn vector_files(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = gen_vectors::vectors_dir().join(kind);
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("spec/vectors/{kind}: {e}"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hhtld"))
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, fs::read(&p).expect("vector"))
        })
        .collect();
    v.sort();
    v
}

fn valid_files() -> Vec<(String, Vec<u8>)> {
    let v = vector_files("valid");
    assert!(v.len() >= 12, "valid vectors missing");
    v
}

fn invalid_files() -> Vec<(String, Vec<u8>)> {
    vector_files("invalid")
}

/// Whether `b` is rejected by open or, once open, by verification.
fn detected(b: &[u8]) -> bool {
    match Hhtld::from_bytes(b) {
        Err(ReaderError::Format(_)) => true,
        Err(e) => panic!("open gave a non-format error: {e}"),
        Ok(h) => h.verify().is_err(),
    }
}

#[test]
fn every_single_byte_change_is_caught_by_open_or_verify() {
    let mut missed = Vec::new();
    let mut tried = 0usize;
    for (name, orig) in valid_files() {
        assert!(!detected(&orig), "{name}: the vector itself is rejected");
        let mut b = orig.clone();
        for i in 0..b.len() {
            let x = orig[i];
            let mut candidates = [x ^ 0x01, x ^ 0x80, 0x00, 0xFF];
            candidates.sort_unstable();
            for (j, &v) in candidates.iter().enumerate() {
                if v == x || (j > 0 && candidates[j - 1] == v) {
                    continue;
                }
                b[i] = v;
                tried += 1;
                if !detected(&b) {
                    missed.push(format!("{name}: byte {i} {x:#04x} -> {v:#04x}"));
                }
            }
            b[i] = x;
        }
    }
    assert!(tried > 50_000, "only {tried} edits tried");
    assert!(
        missed.is_empty(),
        "undetected edits:\n{}",
        missed.join("\n")
    );
}

#[test]
fn every_truncation_is_rejected_at_open() {
    for (name, b) in valid_files() {
        for n in 0..b.len() {
            let want = if n < 64 { "R-TRUNCATED" } else { "R-FILE-LEN" };
            match Hhtld::from_bytes(&b[..n]) {
                Err(ReaderError::Format(e)) if e.rule() == want => {}
                Err(e) => panic!("{name} cut to {n} bytes: {e}, expected {want}"),
                Ok(_) => panic!("{name} cut to {n} bytes was accepted"),
            }
        }
    }
}

#[test]
fn every_extension_is_rejected_at_open() {
    for (name, b) in valid_files() {
        for extra in 1..=64usize {
            for fill in [0x00u8, 0xA5] {
                let mut x = b.clone();
                x.resize(b.len() + extra, fill);
                match Hhtld::from_bytes(&x) {
                    Err(ReaderError::Format(e)) if e.rule() == "R-FILE-LEN" => {}
                    Err(e) => panic!("{name} + {extra} bytes of {fill:#x}: {e}"),
                    Ok(_) => panic!("{name} + {extra} bytes of {fill:#x} was accepted"),
                }
            }
        }
    }
}

/// Files with large tables, directories and metadata that really are present.
fn big_files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    // 20 000 empty sections of an unknown optional kind.
    let base = gen_vectors::valid_vectors().expect("generator");
    let empty = &base
        .iter()
        .find(|v| v.name == "empty")
        .expect("empty")
        .bytes;
    let mut e = gen_vectors::Edit::new(empty).expect("empty vector");
    e.parts.minor = 1;
    for _ in 0..20_000 {
        e.parts.sections.push(gen_vectors::Sec {
            kind: 0x0100,
            flags: 0,
            payload: Vec::new(),
        });
    }
    out.push(("20000 unknown sections".to_owned(), e.build()));

    // 3 000 tensors and 6 000 short metadata entries.
    let mut w =
        hhtld_writer::builder::Writer::new(std::io::Cursor::new(Vec::new())).expect("writer");
    for i in 0..3000 {
        w.add_raw_tensor(hhtld_writer::builder::RawTensor {
            header: hhtld_writer::builder::TensorHeader {
                name: &format!("t{i}"),
                dtype: Dtype::U8,
                shape: &[1],
                role: hhtld_format::Role::Other,
                regime: hhtld_format::Regime::Passthrough,
            },
            bytes: &[i as u8],
        })
        .expect("raw tensor");
    }
    for i in 0..6000 {
        w.set_metadata(&format!("{i:05}"), "").expect("metadata");
    }
    let (c, _) = w.finish_into_inner().expect("finish");
    out.push((
        "3000 tensors, 6000 metadata entries".to_owned(),
        c.into_inner(),
    ));
    out
}

/// Headers and directories claiming huge counts, in a short file.
fn huge_claims() -> Vec<(String, Vec<u8>)> {
    let base = gen_vectors::valid_vectors().expect("generator");
    let mixed = base
        .iter()
        .find(|v| v.name == "mixed")
        .expect("mixed")
        .bytes
        .clone();
    let mut out = Vec::new();
    let set = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    for count in [
        u32::MAX,
        MAX_SECTIONS as u32,
        MAX_SECTIONS as u32 + 1,
        1 << 20,
    ] {
        let mut b = mixed.clone();
        set(&mut b, 32, &count.to_le_bytes());
        gen_vectors::fix_header_crc(&mut b);
        out.push((format!("section_count {count}"), b));
    }
    // Directory counts, each alone and all together.
    let counts = [
        (0, MAX_TENSORS as u32),
        (4, MAX_PALETTES as u32),
        (8, MAX_PALETTES as u32),
        (12, MAX_PALETTES as u32),
        (0, u32::MAX),
    ];
    for (field, value) in counts {
        let mut e = gen_vectors::Edit::new(&mixed).expect("mixed");
        let h = e.dir_header().expect("dir header");
        let bytes = zerocopy::IntoBytes::as_mut_bytes(h);
        bytes[field..field + 4].copy_from_slice(&value.to_le_bytes());
        out.push((format!("directory count at {field} = {value}"), e.build()));
    }
    let mut e = gen_vectors::Edit::new(&mixed).expect("mixed");
    let h = e.dir_header().expect("dir header");
    h.tensor_count = zerocopy::little_endian::U32::new(MAX_TENSORS as u32);
    h.palette_count = zerocopy::little_endian::U32::new(MAX_PALETTES as u32);
    h.basis_count = zerocopy::little_endian::U32::new(MAX_PALETTES as u32);
    h.fisher_count = zerocopy::little_endian::U32::new(MAX_PALETTES as u32);
    out.push(("every directory count at its limit".to_owned(), e.build()));
    out
}

#[test]
fn open_memory_is_bounded_by_the_bytes_present() {
    let mut over = Vec::new();
    let mut peaks = Vec::new();
    let groups = [valid_files(), invalid_files(), huge_claims(), big_files()];
    for (name, b) in groups.iter().flatten() {
        if let Err(e) = check_open_memory(name, b) {
            over.push(e);
        }
        let (_, peak) = peak_during(|| Hhtld::from_bytes(b).is_ok());
        peaks.push(peak);
    }
    // The counter works: opening a real file allocates something.
    assert!(
        peaks.iter().any(|&p| p > 0),
        "the allocator counted nothing"
    );
    assert!(over.is_empty(), "{}", over.join("\n"));
}

#[test]
fn big_files_open_and_their_allocation_grows_with_them() {
    for (name, b) in big_files() {
        let (r, peak) = peak_during(|| Hhtld::from_bytes(&b).map(|h| h.tensor_count()));
        r.unwrap_or_else(|e| panic!("{name}: {e}"));
        // Tens of thousands of records need more than the fixed allowance,
        // so the O(bytes present) part of the bound is what holds here.
        assert!(
            peak > 64 * 1024,
            "{name}: only {peak} bytes for {} bytes present",
            present_bytes(&b)
        );
        assert!(peak <= bound(&b), "{name}: {peak} > {}", bound(&b));
    }
}

fn is_float(t: &hhtld_reader::TensorView<'_>) -> bool {
    t.encoding() == Encoding::Palette
        || matches!(
            t.dtype(),
            Dtype::F32 | Dtype::F16 | Dtype::Bf16 | Dtype::F64
        )
}

#[test]
fn decoding_is_bounded_by_the_shape() {
    let mut decoded_rows = 0usize;
    for (name, b) in valid_files() {
        let f = HhtldFile::from_vec(b).expect("valid vector");
        let h = f.view();
        for t in h.tensors() {
            let what = format!("{name}: {}", t.name());
            let shape = t.shape().to_vec();
            let numel: u64 = shape.iter().product();
            assert_eq!(t.numel() as u64, numel, "{what}: numel");
            assert_eq!(t.n_rows() * t.n_cols(), t.numel(), "{what}: rows x cols");
            let want_rows = if shape.len() >= 2 {
                shape[0] as usize
            } else {
                1
            };
            assert_eq!(t.n_rows(), want_rows, "{what}: n_rows");

            let mut row = vec![0f32; t.n_cols()];
            if !is_float(&t) {
                assert!(
                    matches!(
                        t.decode_row_into(0, &mut row),
                        Err(ReaderError::NotFloat { .. })
                    ),
                    "{what}: a non-float RAW tensor decoded"
                );
                continue;
            }
            // The whole tensor, into exactly numel values, and nothing else.
            let mut all = vec![0f32; t.numel()];
            t.decode_into(&mut all)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut long = vec![0f32; t.numel() + 1];
            assert!(matches!(
                t.decode_into(&mut long),
                Err(ReaderError::OutputLen { .. })
            ));
            if t.numel() > 0 {
                assert!(matches!(
                    t.decode_into(&mut all[..t.numel() - 1]),
                    Err(ReaderError::OutputLen { .. })
                ));
            }
            let v = t.decode().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(v.len(), t.numel(), "{what}: decode() length");
            // Row by row: exactly n_cols values each, n_rows rows, the same bits.
            for r in 0..t.n_rows() {
                t.decode_row_into(r, &mut row)
                    .unwrap_or_else(|e| panic!("{what}: row {r}: {e}"));
                let whole = &all[r * t.n_cols()..(r + 1) * t.n_cols()];
                assert!(
                    row.iter()
                        .zip(whole)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{what}: row {r} differs between decode_row_into and decode_into"
                );
                let mut wide = vec![0f32; t.n_cols() + 1];
                assert!(matches!(
                    t.decode_row_into(r, &mut wide),
                    Err(ReaderError::OutputLen { .. })
                ));
                if t.n_cols() > 0 {
                    assert!(matches!(
                        t.decode_row_into(r, &mut wide[..t.n_cols() - 1]),
                        Err(ReaderError::OutputLen { .. })
                    ));
                }
                decoded_rows += 1;
            }
            match t.decode_row_into(t.n_rows(), &mut row) {
                Err(ReaderError::RowOutOfRange { row: r, n_rows, .. }) => {
                    assert_eq!((r, n_rows), (t.n_rows(), t.n_rows()), "{what}");
                }
                other => panic!("{what}: row n_rows gave {other:?}"),
            }
            assert!(
                v.iter().zip(&all).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{what}: decode() differs from decode_into()"
            );
        }
    }
    assert!(decoded_rows > 30, "only {decoded_rows} rows decoded");
}

// ---------------------------------------------------------------------------
// Random edits, with a fixed number of cases.

fn corpus() -> &'static [(String, Vec<u8>)] {
    static FILES: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    FILES.get_or_init(valid_files)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Several random byte edits: open never exceeds the memory bound, and
    /// whatever it accepts verifies or fails with a CRC or padding error,
    /// never panics.
    #[test]
    fn random_edits_keep_open_memory_bounded(
        which in 0usize..64,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let files = corpus();
        let (name, orig) = &files[which % files.len()];
        let mut b = orig.clone();
        for (i, v) in &edits {
            let i = i.index(b.len());
            b[i] = *v;
        }
        if let Some(c) = cut {
            b.truncate(c.index(b.len() + 1));
        }
        if let Err(e) = check_open_memory(name, &b) {
            prop_assert!(false, "{}", e);
        }
        if let Ok(h) = Hhtld::from_bytes(&b) {
            match h.verify() {
                Ok(()) | Err(ReaderError::Crc { .. }) => {}
                // An edit in padding, which no CRC covers.
                Err(ReaderError::Format(e)) if e.rule() == "R-PADDING" => {
                    prop_assert_eq!(h.layout().check_padding(&b), Err(e));
                }
                Err(e) => prop_assert!(false, "{name}: verify gave {e}"),
            }
        }
    }

    /// One random byte edit (a random new value, not only the four the
    /// exhaustive test uses) is always caught.
    #[test]
    fn random_single_byte_edit_is_caught(
        which in 0usize..64,
        at in any::<prop::sample::Index>(),
        v in any::<u8>(),
    ) {
        let files = corpus();
        let (name, orig) = &files[which % files.len()];
        let mut b = orig.clone();
        let i = at.index(b.len());
        prop_assume!(b[i] != v);
        b[i] = v;
        prop_assert!(detected(&b), "{}: byte {} -> {:#04x} not caught", name, i, v);
    }

    /// Inserting or deleting bytes after the header changes the length, which
    /// open rejects.
    #[test]
    fn insertions_and_deletions_are_rejected_at_open(
        which in 0usize..64,
        at in any::<prop::sample::Index>(),
        insert in prop::collection::vec(any::<u8>(), 0..65),
        delete in 0usize..65,
    ) {
        let files = corpus();
        let (name, orig) = &files[which % files.len()];
        let mut b = orig.clone();
        let pos = 64 + at.index(b.len() - 64 + 1);
        let end = (pos + delete).min(b.len());
        prop_assume!(!insert.is_empty() || end > pos);
        prop_assume!(insert.len() != end - pos);
        b.splice(pos..end, insert.iter().copied());
        match Hhtld::from_bytes(&b) {
            Err(ReaderError::Format(_)) => {}
            Err(e) => prop_assert!(false, "{}: non-format error {}", name, e),
            Ok(_) => prop_assert!(false, "{}: a length change at {} was accepted", name, pos),
        }
    }
}
