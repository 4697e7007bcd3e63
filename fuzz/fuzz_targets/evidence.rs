//! The `evidence` target: see `evault_fuzz::evidence`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::evidence::run(data));
