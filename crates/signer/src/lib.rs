//! The vault's **signer** role: the log's key.
//!
//! Signer signs checkpoints, and only checkpoints that extend the last one
//! it signed for the origin ([`CheckpointSigner`]). It keeps its own record
//! of what it signed ([`evault_storage::SignerStore`]), in a file or
//! database of its own, never the log's ([`evault_storage::signer`]), so a
//! buggy or compromised tree can make it sign neither a fork, nor a
//! rollback, nor a shrunk tree, and restoring the log's storage from a
//! backup does not roll the record back: such requests fail with
//! `FAILED_PRECONDITION` and an error log line. It tells tree what it
//! signed last (`GetSignedHead`), so that tree never builds on storage
//! behind it. [`serve`] runs `SignerService` over gRPC, under mutual TLS
//! for tree alone ([`CALLERS`]) when given a certificate, and the
//! process's metrics on the same port (signing latency, `evault_metrics`).
//!
//! Keys are Ed25519, behind one trait ([`evault_core::NoteSigner`]): in
//! PKCS#8 PEM files ([`KeyFile`], what `evault keygen` writes) or in a
//! PKCS#11 token that never lets them out ([`open_token_keys`]). Every key
//! the signer holds signs every checkpoint, each adding its line to the
//! same note, which is how a key is rotated without a flag day. This crate
//! verifies nothing but the consistency of what it is asked to sign;
//! receipts and logs are checked with `evault-core`.

mod grpc;
mod keyfile;
mod pkcs11;
mod sign;

pub use grpc::{CALLERS, SignerGrpc, serve};
pub use keyfile::{KeyFile, KeyFileError};
pub use pkcs11::{TokenConfig, TokenError, TokenKey, open_token_keys};
pub use sign::{CheckpointSigner, LogKey, SignError, SignRequest};
