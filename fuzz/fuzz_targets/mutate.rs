//! One mutation of a valid file must be caught by open or by verify.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: hhtld_fuzz::mutate::Input| {
    hhtld_fuzz::mutate::run(&input);
});
