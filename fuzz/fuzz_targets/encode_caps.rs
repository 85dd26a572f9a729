//! Arbitrary codec specs, matrices and Writer arguments: typed errors or
//! files that open and verify, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: hhtld_fuzz::caps::Input| {
    hhtld_fuzz::caps::run(&input);
});
