//! The evidence-entry vectors of `docs/entry-format.md`, produced by an
//! independent encoder: every valid record encodes to exactly its bytes and
//! back, and every invalid encoding is refused.

use std::collections::BTreeMap;
use std::path::Path;

use evault_core::hash::hex;
use evault_core::{EvidenceEntry, leaf_hash};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    valid: Vec<Valid>,
    invalid: Vec<Invalid>,
}

#[derive(Deserialize)]
struct Valid {
    description: String,
    entry: Fields,
    encoding: String,
    leaf_hash: String,
}

#[derive(Deserialize)]
struct Fields {
    sha256: String,
    size: u64,
    received_ms: u64,
    media_type: String,
    name: Option<String>,
    principal: String,
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Invalid {
    description: String,
    encoding: String,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn vectors() -> Vectors {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors/evidence-entry-v1.json");
    serde_json::from_slice(&std::fs::read(path).expect("entry vectors")).expect("json")
}

#[test]
fn valid_entries_encode_to_exactly_their_vector_bytes() {
    let v = vectors();
    assert!(v.valid.len() >= 4);
    for case in v.valid {
        let f = case.entry;
        let entry = EvidenceEntry {
            digest: unhex(&f.sha256).try_into().expect("32 bytes"),
            size: f.size,
            received_ms: f.received_ms,
            media_type: f.media_type,
            name: f.name,
            principal: f.principal,
            labels: f.labels,
        };
        let bytes = entry
            .encode()
            .unwrap_or_else(|e| panic!("{}: {e}", case.description));
        assert_eq!(hex(&bytes), case.encoding, "{}", case.description);
        assert_eq!(
            leaf_hash(&bytes).to_hex(),
            case.leaf_hash,
            "{}",
            case.description
        );
        assert_eq!(
            EvidenceEntry::decode(&bytes).as_ref(),
            Ok(&entry),
            "{}",
            case.description
        );
    }
}

#[test]
fn invalid_encodings_are_refused() {
    let v = vectors();
    assert!(v.invalid.len() >= 10);
    for case in v.invalid {
        let verdict = EvidenceEntry::decode(&unhex(&case.encoding));
        assert!(
            verdict.is_err(),
            "{} accepted: {verdict:?}",
            case.description
        );
    }
}
