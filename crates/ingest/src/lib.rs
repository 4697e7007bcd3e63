//! The vault's **ingest** role: the write front.
//!
//! Ingest authenticates callers, validates and bounds their requests,
//! stores evidence bytes, builds evidence entries
//! ([`evault_core::EvidenceEntry`] is their format), batches them and hands
//! the batches to tree for sequencing, then answers each caller with its
//! receipt. It is stateless and scales out.
//!
//! This crate reserves the role's place in the workspace; the service
//! itself (`IngestService` of `proto/evault/v1/ingest.proto`) is not built
//! yet, so the crate exports nothing. It will never hold the log, the
//! signing key or the tiles: those belong to tree and signer.
