//! A structured script of Writer calls; the file must read back exactly.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: hhtld_fuzz::roundtrip::Input| {
    hhtld_fuzz::roundtrip::run(&input);
});
