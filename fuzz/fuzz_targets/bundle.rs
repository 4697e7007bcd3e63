//! The `bundle` target: see `evault_fuzz::bundle`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::bundle::run(data));
