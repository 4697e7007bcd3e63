//! The `signer` target: see `evault_fuzz::signer`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::signer::run(data));
