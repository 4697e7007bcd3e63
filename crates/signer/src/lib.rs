//! The vault's **signer** role: the log's key.
//!
//! Signer signs checkpoints, and only checkpoints that extend the last one
//! it signed for the origin ([`CheckpointSigner`]). It keeps its own record
//! of what it signed ([`evault_storage::SignerStore`]), so a buggy or
//! compromised tree can make it sign neither a fork, nor a rollback, nor a
//! shrunk tree: such requests fail with `FAILED_PRECONDITION` and an error
//! log line. [`serve`] runs `SignerService` over gRPC, under mutual TLS for
//! tree alone ([`CALLERS`]) when given a certificate.
//!
//! Keys are Ed25519, from PKCS#8 PEM files ([`KeyFile`], what
//! `evault keygen` writes). Several keys may sign during a rotation, each
//! adding its line to the same note. This crate verifies nothing but the
//! consistency of what it is asked to sign; receipts and logs are checked
//! with `evault-core`.

mod grpc;
mod keyfile;
mod sign;

pub use grpc::{CALLERS, SignerGrpc, serve};
pub use keyfile::{KeyFile, KeyFileError};
pub use sign::{CheckpointSigner, SignError, SignRequest};
