//! The `sequence` target: see `evault_fuzz::sequence`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::sequence::run(data));
