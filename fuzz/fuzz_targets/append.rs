//! The `append` target: see `evault_fuzz::append`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::append::run(data));
