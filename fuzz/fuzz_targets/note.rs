//! The `note` target: see `evault_fuzz::note`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::note::run(data));
