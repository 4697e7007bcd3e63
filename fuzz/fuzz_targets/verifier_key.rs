//! The `verifier_key` target: see `evault_fuzz::verifier_key`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::verifier_key::run(data));
