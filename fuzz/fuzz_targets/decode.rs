//! Arbitrary bytes with CRCs recomputed; whatever opens is read through
//! every view and decoded,
//! and compared with the spec §4 reference decoder.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hhtld_fuzz::check::decode(data);
});
