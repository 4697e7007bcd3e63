//! Key parsers: `VerifierKey::parse` and `parse_verifier_keys` round-trip
//! through `to_string`, and a signing key from `SigningKey::from_note_key`
//! or a PEM block signs notes its own verifier key accepts.

use evault_core::note::is_valid_key_name;
use evault_core::{Note, SigningKey, VerifierKey, parse_verifier_keys};

/// Checks that `key` prints as `<name>+<8 lower-case hex>+<base64>` and
/// parses back to itself.
fn check_round_trip(key: &VerifierKey) {
    assert!(
        is_valid_key_name(key.name()),
        "accepted key name {:?}",
        key.name()
    );
    let text = key.to_string();
    assert_eq!(
        VerifierKey::parse(&text).as_ref(),
        Ok(key),
        "{text} does not round-trip"
    );
    let prefix = format!("{}+{:08x}+", key.name(), key.key_id());
    assert!(
        text.starts_with(&prefix),
        "{text} does not start with {prefix}"
    );
}

fn check_signer(signer: &SigningKey) {
    check_round_trip(signer.verifier_key());
    assert_eq!(signer.name(), signer.verifier_key().name());
    let mut note = match Note::new("fuzz\n") {
        Ok(note) => note,
        Err(e) => panic!("fixed note text refused: {e}"),
    };
    if let Err(e) = note.sign(signer) {
        panic!("an in-memory key failed to sign: {e}");
    }
    let parsed = match Note::parse(&note.to_bytes()) {
        Ok(parsed) => parsed,
        Err(e) => panic!("signed note does not parse: {e}"),
    };
    let keys = [signer.verifier_key().clone()];
    assert!(
        parsed.verify(&keys).is_ok(),
        "signature by {signer:?} does not verify"
    );
}

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = VerifierKey::parse(text) {
        check_round_trip(&key);
        // Canonical but for the case of the key ID's hex digits: the name
        // and the base64 key must come back byte for byte.
        let given = text.trim_end_matches(['\n', '\r']).as_bytes();
        let canonical = key.to_string();
        let canonical = canonical.as_bytes();
        let id_end = key.name().len() + 10;
        assert!(
            given.len() == canonical.len()
                && given[..id_end].eq_ignore_ascii_case(&canonical[..id_end])
                && given[id_end..] == canonical[id_end..]
                && given.starts_with(key.name().as_bytes()),
            "{text:?} parsed as {key}"
        );
    }
    if let Ok(keys) = parse_verifier_keys(text) {
        assert!(!keys.is_empty());
        keys.iter().for_each(check_round_trip);
    }
    if let Ok(signer) = SigningKey::from_note_key(text) {
        check_signer(&signer);
    }
    if let Ok(signer) = SigningKey::from_pem("fuzz", text) {
        check_signer(&signer);
    }
}
