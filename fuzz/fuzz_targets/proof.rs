//! The `proof` target: see `evault_fuzz::proof`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::proof::run(data));
