//! Inputs the fuzzers (`fuzz/`, `scripts/fuzz_smoke.sh`) found, replayed
//! through everything a reader does with a file: open (both ways), the
//! inspect report, every view, decode and verify. A new crash input goes in
//! `tests/fuzz_regressions/` (as the bytes that reach the reader; the
//! `decode` target recomputes CRCs first, so store its inputs with CRCs
//! fixed) and gets a named test below when it shows a specific rule.
//!
//! The seed files of the fuzzers (`fuzz/seeds/`) are checked here too: they
//! must be valid, and every single-byte change, truncation and extension of
//! them must be caught by open or by verification (spec §1).

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use hhtld::inspect::{inspect_json, render_text, Show};
use hhtld_format::{Dtype, Encoding};
use hhtld_reader::{Hhtld, HhtldFile, ReaderError};
use hhtld_writer::report::SizeReport;

/// The fuzz crate's CRC repair (what the `decode` target does before
/// opening), shared as source: the fuzz crate itself needs libFuzzer.
#[path = "../fuzz/src/repair.rs"]
mod repair;
use repair::fix_crcs;

/// The reader tests' walk over palettes, FisherZ tables and bases.
#[path = "../reader/tests/views_walk/mod.rs"]
mod views_walk;
use views_walk::read_shared_objects;

/// Most values one tensor's decode may produce here; a valid header may
/// claim more than a test should allocate.
const MAX_DECODE: usize = 1 << 22;

fn files(dir: &str, ext: Option<&str>) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .collect();
    v.sort();
    v
}

fn regression(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(name);
    fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A regression input that is a valid file (its CRCs were fixed when it
/// was saved): its bytes and the file, opened and verified.
fn regression_file(name: &str) -> (Vec<u8>, HhtldFile) {
    let b = regression(name);
    let f = HhtldFile::copy_from_slice(&b).expect("valid file");
    f.view().verify().expect("CRCs were fixed");
    (b, f)
}

/// What a file did when read.
#[derive(Debug)]
struct Outcome {
    verified: bool,
    decoded_tensors: usize,
}

/// Reads everything a reader can read from one opened file.
fn read_all(h: &Hhtld<'_>) -> Result<Outcome, ReaderError> {
    let report = inspect_json(h, true);
    assert!(render_text(&report, Show::ALL).starts_with("hhtld "));
    let _ = SizeReport::from_layout(h.layout(), h.bytes()).to_json();
    let _: Vec<_> = h.metadata().collect();
    let _: Vec<_> = h.metadata_raw().collect();
    read_shared_objects(h)?;
    let mut decoded = 0;
    for t in h.tensors() {
        let float = t.encoding() == Encoding::Palette
            || matches!(
                t.dtype(),
                Dtype::F32 | Dtype::F16 | Dtype::Bf16 | Dtype::F64
            );
        if t.encoding() == Encoding::Raw {
            assert_eq!(
                t.raw_bytes().map(<[u8]>::len),
                Some(t.numel() * t.dtype().size())
            );
        }
        if t.numel().max(t.n_rows()).max(t.n_cols()) > MAX_DECODE {
            continue;
        }
        if t.encoding() == Encoding::Palette {
            for r in 0..t.n_rows() {
                let row = t.row(r)?;
                for s in 0..=row.stage_count() {
                    let _ = row.codes(s);
                    let _ = row.code(s, 0);
                }
            }
        }
        match t.decode() {
            Ok(v) => {
                assert_eq!(v.len(), t.numel(), "{}: decode length", t.name());
                decoded += 1;
            }
            Err(ReaderError::NotFloat { .. }) if !float => {}
            Err(e) => return Err(e),
        }
        let mut row = vec![0f32; t.n_cols()];
        for r in 0..t.n_rows().min(4) {
            match t.decode_row_into(r, &mut row) {
                Ok(()) | Err(ReaderError::NotFloat { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let verified = h.verify().is_ok();
    Ok(Outcome {
        verified,
        decoded_tensors: decoded,
    })
}

/// Opens `bytes` both ways (they must agree) and reads everything.
fn exercise(bytes: &[u8]) -> Result<Outcome, ReaderError> {
    let direct = Hhtld::from_bytes(bytes).map(|h| h.layout().tensors.len());
    let owned = HhtldFile::copy_from_slice(bytes);
    assert_eq!(
        direct.as_ref().copied().map_err(ToString::to_string),
        owned
            .as_ref()
            .map(|f| f.layout().tensors.len())
            .map_err(ToString::to_string),
        "from_bytes and copy_from_slice disagree"
    );
    read_all(&owned?.view())
}

/// Runs `run` on every file, as given and with CRCs fixed; returns the
/// inputs that panicked.
fn panicking_inputs(paths: &[PathBuf], run: impl Fn(&[u8])) -> Vec<String> {
    let mut bad = Vec::new();
    for p in paths {
        let bytes = fs::read(p).expect("read input");
        let mut fixed = bytes.clone();
        fix_crcs(&mut fixed);
        for (variant, b) in [("as given", &bytes), ("CRCs fixed", &fixed)] {
            if catch_unwind(AssertUnwindSafe(|| run(b))).is_err() {
                bad.push(format!("{} ({variant})", p.display()));
            }
        }
    }
    bad
}

fn replay(b: &[u8]) {
    let _ = exercise(b);
}

#[test]
fn every_regression_input_gives_a_typed_result() {
    let inputs = files("tests/fuzz_regressions", None);
    assert!(
        !inputs.is_empty(),
        "tests/fuzz_regressions/ holds the inputs"
    );
    let bad = panicking_inputs(&inputs, replay);
    assert!(bad.is_empty(), "inputs that panic: {bad:#?}");
}

#[test]
fn the_replay_names_an_input_that_panics() {
    // The replay is only meaningful if a panic on one input is caught and
    // reported by name instead of lost or fatal: inject one.
    let inputs = files("tests/fuzz_regressions", None);
    let victim = fs::read(&inputs[0]).expect("read input");
    let bad = panicking_inputs(&inputs, |b| {
        assert!(b != victim.as_slice(), "injected");
        replay(b);
    });
    let name = inputs[0].display().to_string();
    assert!(bad.contains(&format!("{name} (as given)")), "{bad:?}");
    assert!(bad.iter().all(|b| b.starts_with(&name)), "{bad:?}");
}

/// Found by the `open` target: a TensorRecord without HAS_QUALITY whose
/// rho_p5 is NaN. Open reports R-QUALITY with the NaN, identically through
/// `from_bytes` and `copy_from_slice`.
#[test]
fn open_rejects_nan_quality_without_the_flag_on_both_paths() {
    let b = regression("quality_nan_without_flag.hhtld");
    let a = Hhtld::from_bytes(&b).expect_err("must not open");
    let c = HhtldFile::copy_from_slice(&b).expect_err("must not open");
    let (fa, fc) = (
        a.format_error().expect("format error"),
        c.format_error().expect("format error"),
    );
    assert_eq!(fa.rule(), "R-QUALITY");
    assert_eq!(format!("{fa:?}"), format!("{fc:?}"));
    assert!(a.to_string().contains("rho_p5 = NaN"), "{a}");
}

/// Found by the `decode` target: an empty RAW tensor (`shape [0, n]`) whose
/// width is about 2^59. Nothing may be sized from the width: decode gives an
/// empty vector, and row access is out of range.
#[test]
fn empty_raw_tensor_with_huge_width_decodes_to_nothing() {
    let (b, f) = regression_file("raw_empty_tensor_with_huge_n_cols.hhtld");
    let h = f.view();
    let t = h.tensor_by_name("empty").expect("tensor");
    assert_eq!((t.n_rows(), t.numel()), (0, 0));
    assert!(t.n_cols() > 1 << 50, "n_cols {}", t.n_cols());
    assert_eq!(t.decode().expect("decode").len(), 0);
    assert!(matches!(
        t.decode_row_into(0, &mut [0f32; 0]),
        Err(ReaderError::RowOutOfRange { .. })
    ));
    let out = exercise(&b).expect("reads");
    assert!(out.verified);
}

/// Found by the `open` target: a METADATA section whose kind became 259
/// with REQUIRED clear. A v1 reader skips it (spec §2 Compatibility); the
/// file still verifies and inspects, and the size report's lines add up to
/// the file length (its `check()` once left the unknown payload out).
#[test]
fn unknown_optional_section_is_skipped_and_counted() {
    let (b, f) = regression_file("unknown_optional_section.hhtld");
    let h = f.view();
    let unknown: Vec<_> = h.sections().iter().filter(|s| s.kind.is_none()).collect();
    assert_eq!(unknown.len(), 1);
    assert_eq!((unknown[0].raw_kind, unknown[0].flags), (259, 0));
    assert_eq!(h.metadata().len(), 0, "the skipped section is not metadata");
    let json = inspect_json(&h, true);
    assert_eq!(json["sections"][25]["kind"], "unknown(259)");
    let size = SizeReport::from_layout(h.layout(), h.bytes());
    assert_eq!(size.unknown_bytes, unknown[0].length as u64);
    size.check()
        .expect("the report adds up with an unknown section");
    let payload: u64 = size.by_kind.iter().map(|k| k.bytes).sum();
    let whole = size.header_bytes + size.table_bytes + size.padding_bytes;
    assert_eq!(whole + payload + size.unknown_bytes, size.file_len);
    assert!(exercise(&b).expect("reads").verified);
}

/// Found by the `decode` target once open stopped reading metadata values
/// (spec §5): with its CRCs recomputed, a file whose metadata value `a` is
/// the lone byte 0xC3 opens, every view and decode works, and verification
/// (not open) reports R-METADATA at that value; the other value reads.
#[test]
fn metadata_value_not_utf8_opens_and_fails_verification() {
    let b = regression("metadata_value_not_utf8.hhtld");
    let f = HhtldFile::copy_from_slice(&b).expect("open does not read values");
    let h = f.view();
    assert!(h.verify_sections().iter().all(|s| s.ok()), "CRCs fixed");
    let e = h.verify().expect_err("a value is not UTF-8");
    let fe = e.format_error().expect("a format error");
    assert_eq!(fe.rule(), "R-METADATA", "{e}");
    let raw: Vec<_> = h.metadata_raw().collect();
    assert_eq!(raw, [("a", &b"\xC3"[..]), ("b", &b"2"[..])]);
    let a = h.metadata_value("a").expect_err("not UTF-8");
    assert_eq!(a.to_string(), e.to_string());
    assert_eq!(h.metadata_value("b").expect("UTF-8"), Some("2"));
    let out = exercise(&b).expect("everything else reads");
    assert!(!out.verified);
}

fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
    let v: Vec<_> = files("fuzz/seeds", Some("hhtld"))
        .into_iter()
        .map(|p| {
            let b = fs::read(&p).expect("read seed");
            (p, b)
        })
        .collect();
    assert!(v.len() >= 3, "fuzz/seeds holds the fuzzers' seed files");
    v
}

/// Whether open or verification rejects `b`.
fn caught(b: &[u8]) -> bool {
    match HhtldFile::copy_from_slice(b) {
        Err(_) => true,
        Ok(f) => f.view().verify().is_err(),
    }
}

#[test]
fn fuzz_seeds_are_valid_files_that_read_completely() {
    for (p, b) in seeds() {
        let out = exercise(&b).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(out.verified, "{}", p.display());
        let f = HhtldFile::copy_from_slice(&b).expect("opens");
        let float_tensors = f
            .view()
            .tensors()
            .filter(|t| {
                t.encoding() == Encoding::Palette
                    || matches!(
                        t.dtype(),
                        Dtype::F32 | Dtype::F16 | Dtype::Bf16 | Dtype::F64
                    )
            })
            .count();
        assert_eq!(out.decoded_tensors, float_tensors, "{}", p.display());
    }
}

#[test]
fn every_single_byte_change_to_a_seed_is_caught() {
    for (p, b) in seeds() {
        for mask in [0x01u8, 0x80] {
            for i in 0..b.len() {
                let mut m = b.clone();
                m[i] ^= mask;
                assert!(
                    caught(&m),
                    "{}: byte {i} ^ {mask:#04x} passes open and verify",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn every_truncation_and_extension_of_a_seed_is_rejected_at_open() {
    for (p, b) in seeds() {
        for len in 0..b.len() {
            assert!(
                HhtldFile::copy_from_slice(&b[..len]).is_err(),
                "{}: the first {len} bytes open",
                p.display()
            );
        }
        for extra in [1usize, 63, 64] {
            let mut m = b.clone();
            m.resize(b.len() + extra, 0);
            let e = HhtldFile::copy_from_slice(&m).expect_err("extended file opens");
            assert_eq!(
                e.format_error().map(|f| f.rule()),
                Some("R-FILE-LEN"),
                "{}: +{extra} bytes",
                p.display()
            );
        }
    }
}
