//! The vault's **ingest** role: the write front.
//!
//! Ingest authenticates callers ([`Authenticator`]; no write is
//! unauthenticated), validates and bounds their statements with
//! field-precise `INVALID_ARGUMENT` ([`statement`]), stores uploaded
//! evidence bytes, builds the evidence entries, and queues them on the
//! [`Batcher`], which sends tree one batch at a time, each holding what
//! queued while the last was in flight (group commit), and pushes back
//! (`RESOURCE_EXHAUSTED` for a call, flow control for a stream) when its
//! backlog is full. Each caller is
//! answered with its receipt only once its entry is durable and covered by
//! a signed checkpoint. [`serve`] runs `IngestService` over gRPC.
//!
//! Ingest is stateless and never touches the log's storage or a key.

mod auth;
mod batcher;
mod grpc;
pub mod statement;

pub use auth::{Authenticator, DevToken, Principal, bearer_token};
pub use batcher::{
    Answer, BatchConfig, Batcher, FAILOVER_WINDOW, PUSHBACK, RemoteTree, SequenceBatch, pushback,
};
pub use grpc::{IngestGrpc, MAX_MESSAGE, STREAM_WINDOW, STREAMS_IN_FLIGHT, serve};
