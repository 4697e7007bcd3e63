//! The `checkpoint` target: see `evault_fuzz::checkpoint`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::checkpoint::run(data));
