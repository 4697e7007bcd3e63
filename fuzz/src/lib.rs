//! The fuzz targets, one module each (`run` takes one input and panics when
//! a property fails), and the fixtures they share: the published test keys
//! and the known contents of the test-vector log under `../shared/testdata`.
//!
//! The targets assert properties that only hold because these keys are
//! fixed: a note or checkpoint that verifies under them can only be one the
//! key holder signed, so the fuzzer can never produce a new one.
//!
//! The bodies live here rather than in `fuzz_targets/` so that the
//! workspace's tests replay the committed corpora and crash inputs through
//! exactly the code the fuzzer runs (`crates/gateway/tests/fuzz_regressions.rs`
//! includes this file as a module). Paths inside therefore go through
//! `super::`, never `crate::`.

pub mod append;
pub mod audit_record;
pub mod bundle;
pub mod checkpoint;
pub mod entry;
pub mod evidence;
pub mod note;
pub mod proof;
pub mod receipt;
pub mod sequence;
pub mod signer;
pub mod tile_path;
pub mod tree_read;
pub mod verifier_key;
pub mod world;

/// A target's body: runs one input, panicking when a property fails.
pub type Run = fn(&[u8]);

/// Every target by name, as `cargo fuzz list` names it.
pub const TARGETS: [(&str, Run); 14] = [
    ("append", append::run),
    ("audit_record", audit_record::run),
    ("bundle", bundle::run),
    ("checkpoint", checkpoint::run),
    ("entry", entry::run),
    ("evidence", evidence::run),
    ("note", note::run),
    ("proof", proof::run),
    ("receipt", receipt::run),
    ("sequence", sequence::run),
    ("signer", signer::run),
    ("tile_path", tile_path::run),
    ("tree_read", tree_read::run),
    ("verifier_key", verifier_key::run),
];

use evault_core::{SigningKey, VerifierKey};

/// Verifier key of the signed-note vectors (golang.org/x/mod/sumdb/note).
pub const NEUMANN_KEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

/// The only text [`NEUMANN_KEY`] ever signed.
pub const NEUMANN_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                                then you don't know what your problem is.\n";

/// Verifier key of the tessera test log in `tessera-log/`.
pub const TESSERA_KEY: &str =
    "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx";

/// Origin of the tessera test log, the name of [`TESSERA_KEY`].
pub const TESSERA_ORIGIN: &str = "example.com/log/testdata";

/// The tessera test log's entries, in order; no checkpoint of it is larger.
pub const TESSERA_ENTRIES: [&str; 15] = [
    "one", "two", "three", "four", "five", "six", "seven", "eit", "nain", "ten", "ileven", "twelf",
    "threeten", "fourten", "fivten",
];

/// PKCS#8 v1 document of the tessera log's published test seed. Used to sign
/// checkpoints under any origin: the signature round trip does not depend on
/// which name the key carries.
const TEST_SEED_PKCS8: [u8; 48] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
    0xec, 0xa6, 0x63, 0xf4, 0x99, 0x01, 0x7d, 0x23, 0x65, 0xc2, 0x7c, 0x7a, 0x76, 0x79, 0x15, 0x8d,
    0x43, 0xcf, 0xec, 0x13, 0x30, 0xbd, 0xb2, 0x59, 0x29, 0x0a, 0xfb, 0xd0, 0xd2, 0x17, 0x77, 0xa0,
];

/// Parses one of the constant keys above.
///
/// # Panics
///
/// If the constant does not parse, which is a bug in the core, not in the
/// input under test.
pub fn verifier_key(text: &str) -> VerifierKey {
    match VerifierKey::parse(text) {
        Ok(key) => key,
        Err(e) => panic!("fixture key {text} does not parse: {e}"),
    }
}

/// The test seed as a signing key named `name`; `None` when `name` is not a
/// valid key name.
pub fn test_signing_key(name: &str) -> Option<SigningKey> {
    SigningKey::from_pkcs8(name, &TEST_SEED_PKCS8).ok()
}
