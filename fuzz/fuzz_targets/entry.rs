//! `EvidenceEntry::decode`: the encoding is canonical, so whatever decodes
//! re-encodes to exactly the same bytes (and so to the same leaf hash).

#![no_main]

use evault_core::EvidenceEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = EvidenceEntry::decode(data) else {
        return;
    };
    assert_eq!(entry.validate(), Ok(()), "decoded an invalid entry");
    assert_eq!(
        entry.encode().as_deref(),
        Ok(data),
        "entry is not canonical: {entry:?}"
    );
});
