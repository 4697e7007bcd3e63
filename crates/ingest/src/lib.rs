//! The vault's **ingest** role: the write front.
//!
//! Ingest admits only callers whose JWT `evault_auth` verified (no write
//! is unauthenticated; the entry records the token's `sub`), holds each
//! principal to its append rate when one is set ([`RateLimit`]), validates and bounds their statements with
//! field-precise `INVALID_ARGUMENT` ([`statement`]), stores uploaded
//! evidence bytes, builds the evidence entries, and queues them on the
//! [`Batcher`], which sends tree one batch at a time, each holding what
//! queued while the last was in flight (group commit), and pushes back
//! (`RESOURCE_EXHAUSTED` for a call, flow control for a stream) when its
//! backlog is full. Each caller is
//! answered with its receipt only once its entry is durable and covered by
//! a signed checkpoint. [`serve`] runs `IngestService` over gRPC, under
//! mutual TLS for gateway alone ([`CALLERS`]) when given a certificate,
//! and the process's metrics on the same port; ingest counts every append
//! it answers, by outcome, and its latency (`evault_metrics`).
//!
//! Ingest is stateless and never touches the log's storage or a key.

mod batcher;
mod evidence;
mod grpc;
mod limit;
pub mod statement;

pub use batcher::{
    Answer, BatchConfig, Batcher, FAILOVER_WINDOW, PUSHBACK, RemoteTree, SequenceBatch, pushback,
};
pub use evidence::{EvidenceGrpc, MAX_REASON};
pub use grpc::{CALLERS, IngestGrpc, MAX_MESSAGE, STREAM_WINDOW, STREAMS_IN_FLIGHT, serve};
pub use limit::{PrincipalLimiter, RateLimit};
