//! The vault's **tree** role: the log itself.
//!
//! [`Sequencer`] takes batches of entries through the three stages of an
//! append: sequencing (dedup, contiguous indices), integration (tiles and
//! the new root, committed with the tree head's compare-and-swap) and
//! publication (a checkpoint from signer, stored). Only then does it hand
//! out indices and inclusion proofs. [`LogReader`] serves checkpoints,
//! proofs and entries from stored tiles through a bounded cache, never by
//! loading the tree into memory. [`serve`] runs `SequencerService` and
//! `TreeService` over gRPC, under mutual TLS for ingest and gateway alone
//! ([`CALLERS`]) when given a certificate, and the process's metrics on
//! the same port (batch sizes, tree size, checkpoint age and signing
//! latency, `evault_metrics`).
//!
//! Every checkpoint stored, every refusal of the signer, every change of
//! leader and every migration applied is recorded in the log's audit
//! trail, a second log (`<origin>/audit`) sequenced the same way
//! ([`AuditTrail`], [`Sequencer::open_audit_trail`]). What other roles
//! witness (refused callers, reads and erasures of evidence) they hand to
//! the leading tree's `AuditService` ([`RemoteAudit`]), which records it
//! with the same stamps; no caller can record what tree does itself.
//!
//! Tree never holds a signing key: checkpoints come from a [`Publisher`],
//! the signer in this process or one reached over gRPC ([`RemoteSigner`]).
//! Nor does it keep the signer's record of what was signed; it asks for
//! it, and refuses to sequence on storage that does not hold what was
//! signed ([`Divergence`]): `SequencerService` then answers
//! `FAILED_PRECONDITION` and reports `NOT_SERVING` on gRPC health.

mod grpc;
mod publish;
mod reader;
mod remote_audit;
mod sequencer;
mod tiles;
mod trail;

pub use grpc::{CALLERS, MAX_BATCH, TreeGrpc, sequence_status, serve};
pub use publish::{PublishError, Publisher, RemoteSigner};
pub use reader::{LogReader, MAX_ENTRIES_PER_READ, Published, ReadError};
pub use remote_audit::RemoteAudit;
pub use sequencer::{Divergence, NewEntry, SequenceError, Sequenced, SequencedBatch, Sequencer};
pub use trail::{AuditEvent, AuditRecorder, AuditTrail, NotRecorded};
