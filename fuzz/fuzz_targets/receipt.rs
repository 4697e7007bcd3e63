//! The `receipt` target: see `evault_fuzz::receipt`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::receipt::run(data));
