//! `Receipt::parse` and `Receipt::verify`: receipts are canonical, and one
//! that verifies under the tessera test key proves the entry that log really
//! holds at that index: an inclusion proof cannot be bent to another entry.

use std::sync::LazyLock;

use evault_core::{Receipt, VerifierKey, leaf_hash, verify_inclusion};

use super::{TESSERA_ENTRIES, TESSERA_KEY, TESSERA_ORIGIN, verifier_key};

static KEYS: LazyLock<[VerifierKey; 1]> = LazyLock::new(|| [verifier_key(TESSERA_KEY)]);

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Ok(receipt) = Receipt::parse(data) else {
        return;
    };
    let bytes = receipt.to_bytes();
    assert_eq!(bytes, data, "accepted receipt is not canonical");
    assert_eq!(Receipt::parse(&bytes).as_ref(), Ok(&receipt));
    assert!(receipt.proof.len() <= 64);

    let Ok(verified) = receipt.verify(&*KEYS, None) else {
        return;
    };
    let cp = &verified.checkpoint;
    assert_eq!(cp.origin, TESSERA_ORIGIN);
    assert!(
        verified.index < cp.size,
        "index {} in a tree of {}",
        verified.index,
        cp.size
    );
    let expected = usize::try_from(verified.index)
        .ok()
        .and_then(|i| TESSERA_ENTRIES.get(i))
        .unwrap_or_else(|| panic!("index {} is beyond the test log", verified.index));
    assert_eq!(
        verified.entry,
        expected.as_bytes(),
        "receipt proves a forged entry at index {}",
        verified.index
    );
    assert_eq!(verified.leaf_hash, leaf_hash(&verified.entry));
    assert_eq!(
        verify_inclusion(
            verified.index,
            cp.size,
            verified.leaf_hash.as_bytes(),
            &receipt.proof,
            cp.root.as_bytes()
        ),
        Ok(())
    );
    assert!(receipt.verify(&*KEYS, Some("another.example/log")).is_err());
}
