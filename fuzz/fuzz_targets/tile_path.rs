//! The `tile_path` target: see `evault_fuzz::tile_path`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::tile_path::run(data));
