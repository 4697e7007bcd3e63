//! The `tree_read` target: see `evault_fuzz::tree_read`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::tree_read::run(data));
