//! Checkpoints: `open_checkpoint` accepts only what the tessera test key
//! signed, and `Checkpoint::parse` is canonical and survives a
//! sign-then-open round trip.

use std::sync::LazyLock;

use evault_core::{Checkpoint, Note, VerifierKey, open_checkpoint};

use super::{TESSERA_ENTRIES, TESSERA_KEY, TESSERA_ORIGIN, test_signing_key, verifier_key};

static KEYS: LazyLock<[VerifierKey; 1]> = LazyLock::new(|| [verifier_key(TESSERA_KEY)]);

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    if let Ok(signed) = open_checkpoint(data, &*KEYS, None) {
        let cp = &signed.checkpoint;
        assert_eq!(cp.origin, TESSERA_ORIGIN);
        assert!(
            cp.size <= TESSERA_ENTRIES.len() as u64,
            "the test key never signed size {}",
            cp.size
        );
        assert_eq!(signed.note.to_bytes(), data);
        assert_eq!(signed.note.text(), cp.to_text());
        assert!(open_checkpoint(data, &*KEYS, Some(TESSERA_ORIGIN)).is_ok());
        assert!(open_checkpoint(data, &*KEYS, Some("another.example/log")).is_err());
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cp) = Checkpoint::parse(text) else {
        return;
    };
    assert_eq!(
        cp.to_text(),
        text,
        "accepted checkpoint body is not canonical"
    );
    assert_eq!(Checkpoint::parse(&cp.to_text()).as_ref(), Ok(&cp));

    // A body a note can carry must come back from signing and opening.
    if Note::new(text).is_err() {
        return;
    }
    let Some(key) = test_signing_key(&cp.origin) else {
        return;
    };
    let note = match cp.sign(&[&key]) {
        Ok(note) => note,
        Err(e) => panic!("cannot sign a parsed checkpoint: {e}"),
    };
    let keys = [key.verifier_key().clone()];
    match open_checkpoint(&note, &keys, Some(&cp.origin)) {
        Ok(opened) => assert_eq!(opened.checkpoint, cp),
        Err(e) => panic!("signed checkpoint does not open: {e}"),
    }
}
