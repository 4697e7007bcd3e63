//! The `entry` target: see `evault_fuzz::entry`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::entry::run(data));
