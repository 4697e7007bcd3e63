//! `Note::parse`: every accepted note is canonical (its bytes are exactly
//! what `to_bytes` writes back), its text is signable, and it verifies under
//! the sumdb test key only if it carries that key's one signed text.

use std::sync::LazyLock;

use evault_core::{Note, VerifierKey};

use super::{NEUMANN_KEY, NEUMANN_TEXT, verifier_key};

static KEYS: LazyLock<[VerifierKey; 1]> = LazyLock::new(|| [verifier_key(NEUMANN_KEY)]);

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Ok(note) = Note::parse(data) else {
        return;
    };
    let bytes = note.to_bytes();
    assert_eq!(bytes, data, "accepted note is not in canonical form");
    assert_eq!(
        Note::parse(&bytes).as_ref(),
        Ok(&note),
        "note does not round-trip"
    );
    assert!(
        !note.signatures().is_empty(),
        "accepted a note without signatures"
    );
    // Whatever text parses must also be text a signer may sign.
    assert!(
        Note::new(note.text()).is_ok(),
        "parsed text {:?} is not signable",
        note.text()
    );

    if let Ok(signers) = note.verify(&*KEYS) {
        assert_eq!(signers, [&KEYS[0]]);
        // Ed25519 signatures cannot be forged or moved to other text.
        assert_eq!(
            note.text(),
            NEUMANN_TEXT,
            "signature verified over another text"
        );
    }
}
