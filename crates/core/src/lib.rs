//! The Merkle Evidence Vault's verifiable core.
//!
//! Everything a party needs to check the vault's claims, and nothing more:
//! RFC 9162 tree hashing, inclusion and consistency proofs (built from C2SP
//! tiles and verified), the C2SP tlog-tiles layout, signed notes and
//! checkpoints (Ed25519), entry bundles, tlog-proof receipts, the
//! evidence-entry codec, a streaming audit of a whole published log, and
//! the rule for characters that may not be shown to people ([`text`]), and
//! the records of the audit trail, the vault's second log ([`trail`]).
//!
//! This crate does no I/O and has no async: it never opens a file, a socket
//! or a database. Callers hand it bytes, or implement [`TileReader`] or
//! [`LogSource`] over their own storage. It is the library the vault's
//! services build on and the one a client links to verify receipts offline.

pub mod audit;
pub mod bundle;
pub mod checkpoint;
pub mod entry;
pub mod hash;
pub mod integrate;
pub mod note;
pub mod proof;
pub mod receipt;
pub mod text;
pub mod tile;
pub mod trail;

pub use audit::{AuditError, AuditReport, LogSource, audit, audit_with_entries};
pub use bundle::{BundleError, MAX_ENTRY_SIZE, encode_bundle, parse_bundle};
pub use checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint, open_checkpoint};
pub use entry::{EntryError, EvidenceEntry};
pub use hash::{HASH_SIZE, Hash, empty_root, leaf_hash, node_hash};
pub use integrate::Integrator;
pub use note::{
    KeyError, Note, NoteError, NoteSigner, SigningKey, VerifierKey, parse_verifier_keys,
};
pub use proof::{
    InclusionPlans, ProofError, ProofPlan, ProveError, RangeRoots, TileNodes, TileReader,
    TreeReader, verify_consistency, verify_inclusion,
};
pub use receipt::{Receipt, ReceiptError, VerifiedReceipt};
pub use tile::{BundleId, TileId, TilePath, TilePathError};
