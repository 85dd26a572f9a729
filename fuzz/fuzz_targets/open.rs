//! Arbitrary bytes (as given, and with CRCs recomputed) through both ways
//! to open a file, then the inspect report.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hhtld_fuzz::check::open_target(data);
});
