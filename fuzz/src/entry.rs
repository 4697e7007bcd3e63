//! `EvidenceEntry::decode`: the encoding is canonical, so whatever decodes
//! re-encodes to exactly the same bytes (and so to the same leaf hash).

use evault_core::EvidenceEntry;

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Ok(entry) = EvidenceEntry::decode(data) else {
        return;
    };
    assert_eq!(entry.validate(), Ok(()), "decoded an invalid entry");
    assert_eq!(
        entry.encode().as_deref(),
        Ok(data),
        "entry is not canonical: {entry:?}"
    );
}
