//! The `audit_record` target: see `evault_fuzz::audit_record`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evault_fuzz::audit_record::run(data));
