//! `SequencerService` and `TreeService` over gRPC: conversion at the edge,
//! field-precise `INVALID_ARGUMENT`, one exhaustive error-to-status map;
//! and gRPC health, which says whether this tree sequences.

use std::future::Future;
use std::sync::Arc;

use evault_core::{EvidenceEntry, Hash};
use evault_proto::guard::GuardedIncoming;
use evault_proto::tls::ServerTls;
use evault_proto::v1::audit_service_server::{AuditService, AuditServiceServer};
use evault_proto::v1::get_inclusion_proof_request::Leaf;
use evault_proto::v1::sequencer_service_server::{SequencerService, SequencerServiceServer};
use evault_proto::v1::tree_service_server::{TreeService, TreeServiceServer};
use evault_proto::v1::{
    Checkpoint as WireCheckpoint, FindEntriesRequest, FindEntriesResponse, GetCheckpointRequest,
    GetCheckpointResponse, GetConsistencyProofRequest, GetConsistencyProofResponse,
    GetEntriesRequest, GetEntriesResponse, GetInclusionProofRequest, GetInclusionProofResponse,
    LogEntry, RecordRequest, RecordResponse, SequenceRequest, SequenceResponse, SequencedEntry,
    TreeServiceGetVerifierKeysRequest, TreeServiceGetVerifierKeysResponse,
};
use evault_storage::{LogStore, StorageError};
use tokio::sync::watch;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::publish::{PublishError, Publisher};
use crate::reader::{LogReader, Published, ReadError};
use crate::sequencer::{NewEntry, SequenceError, Sequencer};
use crate::trail::{AuditEvent, AuditRecorder};

/// The most entries one `Sequence` call may carry.
pub const MAX_BATCH: usize = 4096;
/// The most events one `AuditService.Record` call may carry.
const MAX_EVENTS: usize = 1024;
/// Default and largest page of `FindEntries`.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// The active sequencer of a tree, once it leads its log: `None` while it
/// stands by. Watched, so that health follows promotion.
type Active<S, P> = watch::Sender<Option<Arc<Sequencer<S, P>>>>;

/// Both gRPC services of the tree role.
///
/// A standby tree serves reads but refuses `Sequence` with `UNAVAILABLE`
/// until it is promoted, when it wins the log's leadership.
pub struct TreeGrpc<S, P> {
    origin: String,
    sequencer: Arc<Active<S, P>>,
    reader: Arc<LogReader<S>>,
    /// Asked for the signing keys, by a standby as by the active tree.
    publisher: Arc<P>,
}

impl<S, P> Clone for TreeGrpc<S, P> {
    fn clone(&self) -> Self {
        TreeGrpc {
            origin: self.origin.clone(),
            sequencer: Arc::clone(&self.sequencer),
            reader: Arc::clone(&self.reader),
            publisher: Arc::clone(&self.publisher),
        }
    }
}

impl<S: LogStore, P: Publisher> TreeGrpc<S, P> {
    /// Serves `sequencer` and `reader`, which must be of the same log.
    pub fn new(sequencer: Sequencer<S, P>, reader: LogReader<S>) -> Self {
        Self::from_shared(Arc::new(sequencer), reader)
    }

    /// Serves a sequencer shared with an in-process ingest.
    pub fn from_shared(sequencer: Arc<Sequencer<S, P>>, reader: LogReader<S>) -> Self {
        let tree = Self::standby(
            sequencer.origin(),
            reader,
            Arc::clone(sequencer.publisher()),
        );
        tree.promote(sequencer);
        tree
    }

    /// A standby: reads only, until [`TreeGrpc::promote`]. `publisher`
    /// is asked for the signer's verifier keys.
    pub fn standby(origin: &str, reader: LogReader<S>, publisher: Arc<P>) -> Self {
        TreeGrpc {
            origin: origin.to_string(),
            sequencer: Arc::new(watch::Sender::new(None)),
            reader: Arc::new(reader),
            publisher,
        }
    }

    /// Makes this tree the active sequencer of its log.
    pub fn promote(&self, sequencer: Arc<Sequencer<S, P>>) {
        // Promotion happens once per process; a second one changes nothing.
        self.sequencer.send_if_modified(|active| {
            if active.is_some() {
                return false;
            }
            *active = Some(sequencer);
            true
        });
    }

    /// Keeps `reporter` saying what this tree serves, until the returned
    /// future is dropped: `TreeService` (reads) while it runs;
    /// `SequencerService` only while this tree is the log's active
    /// sequencer and does not refuse to sequence
    /// ([`Sequencer::sequencing`]): `NOT_SERVING` as a standby, and while
    /// the log's storage diverges from what the signer signed.
    pub async fn report_health(&self, reporter: HealthReporter) {
        let sequencer_service = <SequencerServiceServer<Self> as NamedService>::NAME;
        for service in ["", <TreeServiceServer<Self> as NamedService>::NAME] {
            reporter
                .set_service_status(service, ServingStatus::Serving)
                .await;
        }
        reporter
            .set_service_status(sequencer_service, ServingStatus::NotServing)
            .await;
        let mut promoted = self.sequencer.subscribe();
        let active = promoted
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|active| active.clone());
        if let Some(sequencer) = active {
            let mut sequencing = sequencer.sequencing();
            loop {
                let status = if *sequencing.borrow_and_update() {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                reporter.set_service_status(sequencer_service, status).await;
                if sequencing.changed().await.is_err() {
                    break;
                }
            }
        }
        std::future::pending().await
    }
}

/// The roles that call tree, by certificate name: under mutual TLS, ingest
/// (which sequences) and gateway (which reads).
pub const CALLERS: &[&str] = &["ingest", "gateway"];

/// Runs `SequencerService`, `TreeService`, `AuditService` and gRPC health
/// (`grpc.health.v1.Health`, see [`TreeGrpc::report_health`]) on
/// `incoming` until `shutdown` completes: over TLS and for the callers it
/// admits with `tls`, in plaintext without. The same port serves the
/// process's metrics (`GET /metrics`, over HTTP/1.1 too, for scrapers
/// that do not speak HTTP/2).
/// `incoming` is a listener's connections within their limits
/// ([`evault_proto::transport::incoming`]).
pub async fn serve<S: LogStore, P: Publisher>(
    incoming: GuardedIncoming,
    tree: TreeGrpc<S, P>,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let served = evault_proto::tls::secure(
        evault_proto::transport::server().accept_http1(true),
        tls.as_ref(),
    )?
    .add_routes(evault_metrics::role_routes())
    .add_service(health)
    .add_service(
        SequencerServiceServer::new(tree.clone())
            .max_decoding_message_size(evault_proto::transport::MAX_MESSAGE),
    )
    .add_service(
        TreeServiceServer::new(tree.clone())
            .max_decoding_message_size(evault_proto::transport::MAX_MESSAGE),
    )
    .add_service(
        AuditServiceServer::new(tree.clone())
            .max_decoding_message_size(evault_proto::transport::MAX_MESSAGE),
    )
    .serve_with_incoming_shutdown(incoming, shutdown);
    tokio::select! {
        result = served => result,
        () = tree.report_health(reporter) => Ok(()),
    }
}

fn storage_status(error: StorageError) -> Status {
    let message = error.to_string();
    match error {
        StorageError::Unavailable(_) | StorageError::HeadMoved { .. } => {
            Status::unavailable(message)
        }
        StorageError::NoSuchLog(_) => Status::not_found(message),
        StorageError::InvalidBatch(_)
        | StorageError::Corrupt(_)
        | StorageError::Conflict(_)
        | StorageError::NotApart(_)
        | StorageError::Erased(_)
        | StorageError::Backend(_) => Status::internal(message),
    }
}

/// The gRPC status of a sequencing failure, for any front that reports one.
pub fn sequence_status(error: SequenceError) -> Status {
    let message = error.to_string();
    match error {
        SequenceError::InvalidEntry { .. } => Status::invalid_argument(message),
        SequenceError::NotLeader(_) => Status::unavailable(message),
        SequenceError::Storage(e) => storage_status(e),
        SequenceError::Publish(PublishError::Unavailable(_)) => Status::unavailable(message),
        // The signer refused a head: this sequencer re-reads the log and
        // compares it with the signer's record before its next batch. If
        // another sequencer moved the log, the retry is sequenced (here or
        // there); if storage truly diverges, the retry is refused with
        // FAILED_PRECONDITION. Either way the retry learns more.
        SequenceError::Publish(PublishError::Refused(_)) => Status::unavailable(message),
        // The log's storage must be repaired first (a runbook's work, not a
        // moment's): retrying soon cannot help, and UNAVAILABLE would have
        // ingest and clients retry as if it could.
        SequenceError::Diverged(_) => Status::failed_precondition(message),
    }
}

/// A tree size, index or position from a request: at most 2^63 − 1, as
/// every store keeps them (PostgreSQL's `bigint`). Larger ones name no
/// position any log can reach; they are the caller's mistake, said so.
fn position(field: &str, value: u64) -> Result<u64, Status> {
    if value > i64::MAX as u64 {
        return Err(Status::invalid_argument(format!(
            "{field}: {value} is beyond any log (at most {})",
            i64::MAX
        )));
    }
    Ok(value)
}

fn read_status(error: ReadError) -> Status {
    let message = error.to_string();
    match error {
        ReadError::NotFound(_) => Status::not_found(message),
        ReadError::OutOfRange(_) => Status::out_of_range(message),
        ReadError::InvalidArgument(_) => Status::invalid_argument(message),
        ReadError::Storage(e) => storage_status(e),
    }
}

fn wire_checkpoint(published: Published) -> Option<WireCheckpoint> {
    Some(WireCheckpoint {
        note: published.note,
        origin: published.checkpoint.origin,
        size: published.checkpoint.size,
        root_hash: published.checkpoint.root.as_bytes().to_vec(),
    })
}

fn hashes(proof: Vec<Hash>) -> Vec<Vec<u8>> {
    proof.into_iter().map(|h| h.as_bytes().to_vec()).collect()
}

fn sha256_field(field: &str, bytes: &[u8]) -> Result<[u8; 32], Status> {
    bytes.try_into().map_err(|_| {
        Status::invalid_argument(format!("{field} must be 32 bytes, got {}", bytes.len()))
    })
}

/// One event a caller asks to record, checked: one of the events other
/// roles witness, members that are a JSON object naming none of the
/// members every record has, and a record that fits in an entry.
fn witnessed_event(
    position: usize,
    event: evault_proto::v1::AuditEvent,
) -> Result<AuditEvent, Status> {
    use evault_core::trail::{AuditRecord, PinnedHead, WITNESSED, is_reserved_member};
    let invalid = |what: String| Status::invalid_argument(format!("events[{position}]: {what}"));
    if !WITNESSED.contains(&event.event.as_str()) {
        return Err(invalid(format!(
            "event {:?} is not one a caller records (only {})",
            event.event,
            WITNESSED.join(", ")
        )));
    }
    let fields = match serde_json::from_str::<serde_json::Value>(&event.fields) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => return Err(invalid("fields are not a JSON object".into())),
    };
    if let Some(name) = fields.keys().find(|name| is_reserved_member(name)) {
        return Err(invalid(format!(
            "fields name {name:?}, which the trail sets itself"
        )));
    }
    let event = AuditEvent {
        event: event.event,
        principal: Some(event.principal).filter(|p| !p.is_empty()),
        fields: fields.into_iter().collect(),
    };
    // The largest this record can be once stamped.
    let widest = AuditRecord {
        time_ms: u64::MAX / 4,
        event: event.event.clone(),
        principal: event.principal.clone(),
        log: PinnedHead {
            size: u64::MAX,
            root: evault_core::empty_root(),
        },
        fields: event.fields.clone(),
    };
    if widest.to_bytes().len() > usize::from(u16::MAX) {
        return Err(invalid(format!(
            "the record would be over {} bytes",
            u16::MAX
        )));
    }
    Ok(event)
}

#[tonic::async_trait]
impl<S: LogStore, P: Publisher> AuditService for TreeGrpc<S, P> {
    async fn record(
        &self,
        request: Request<RecordRequest>,
    ) -> Result<Response<RecordResponse>, Status> {
        let request = request.into_inner();
        if request.origin != self.origin {
            return Err(Status::not_found(format!(
                "this tree keeps the audit trail of {:?}, not {:?}",
                self.origin, request.origin
            )));
        }
        if request.events.is_empty() || request.events.len() > MAX_EVENTS {
            return Err(Status::invalid_argument(format!(
                "events: a call records 1 to {MAX_EVENTS} events, got {}",
                request.events.len()
            )));
        }
        let events = request
            .events
            .into_iter()
            .enumerate()
            .map(|(position, event)| witnessed_event(position, event))
            .collect::<Result<Vec<_>, Status>>()?;
        let active = self.sequencer.borrow().clone();
        let trail = active.as_ref().and_then(|s| s.audit_trail().cloned());
        let Some(trail) = trail else {
            return Err(Status::unavailable(
                "this tree does not write the audit trail: it is a standby, or starting",
            ));
        };
        trail
            .record(events)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(RecordResponse {}))
    }
}

#[tonic::async_trait]
impl<S: LogStore, P: Publisher> SequencerService for TreeGrpc<S, P> {
    async fn sequence(
        &self,
        request: Request<SequenceRequest>,
    ) -> Result<Response<SequenceResponse>, Status> {
        let request = request.into_inner();
        if request.origin != self.origin {
            return Err(Status::not_found(format!(
                "this tree sequences {:?}, not {:?}",
                self.origin, request.origin
            )));
        }
        let active = self.sequencer.borrow().clone();
        let Some(sequencer) = active else {
            return Err(Status::unavailable(
                "this tree is a standby; the log's active sequencer is another process",
            ));
        };
        if request.entries.is_empty() || request.entries.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!(
                "entries: a batch holds 1 to {MAX_BATCH} entries, got {}",
                request.entries.len()
            )));
        }
        let batch = request
            .entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let sent = sha256_field(&format!("entries[{i}].dedup_key"), &e.dedup_key)?;
                let dedup_key = EvidenceEntry::checked_digest(&e.entry)
                    .and_then(|_| EvidenceEntry::dedup_key_of(&e.entry))
                    .map_err(|err| {
                        Status::invalid_argument(format!(
                            "entries[{i}].entry is not a canonical evidence entry: {err}"
                        ))
                    })?;
                // The key decides which entry a retry is answered with; a
                // caller's key that disagrees with its entry would make one
                // principal's statement answer for another's.
                if sent != dedup_key {
                    return Err(Status::invalid_argument(format!(
                        "entries[{i}].dedup_key does not match the entry"
                    )));
                }
                Ok(NewEntry {
                    dedup_key,
                    entry: e.entry,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let sequenced = sequencer.sequence(&batch).await.map_err(sequence_status)?;
        Ok(Response::new(SequenceResponse {
            entries: sequenced
                .entries
                .into_iter()
                .map(|e| SequencedEntry {
                    index: e.index,
                    duplicate: e.duplicate,
                    entry: e.entry,
                    inclusion_proof: hashes(e.proof),
                })
                .collect(),
            checkpoint: sequenced.checkpoint,
        }))
    }
}

#[tonic::async_trait]
impl<S: LogStore, P: Publisher> TreeService for TreeGrpc<S, P> {
    async fn get_checkpoint(
        &self,
        _request: Request<GetCheckpointRequest>,
    ) -> Result<Response<GetCheckpointResponse>, Status> {
        let published = self.reader.checkpoint(0).await.map_err(read_status)?;
        Ok(Response::new(GetCheckpointResponse {
            checkpoint: wire_checkpoint(published),
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<GetInclusionProofRequest>,
    ) -> Result<Response<GetInclusionProofResponse>, Status> {
        let request = request.into_inner();
        let (index, proof, published) = match request.leaf {
            Some(Leaf::Index(index)) => {
                let index = position("index", index)?;
                let (proof, published) = self
                    .reader
                    .inclusion(index, position("tree_size", request.tree_size)?)
                    .await
                    .map_err(read_status)?;
                (index, proof, published)
            }
            Some(Leaf::LeafHash(bytes)) => {
                let leaf = Hash(sha256_field("leaf_hash", &bytes)?);
                self.reader
                    .inclusion_of_leaf(leaf, position("tree_size", request.tree_size)?)
                    .await
                    .map_err(read_status)?
            }
            None => return Err(Status::invalid_argument("leaf: set index or leaf_hash")),
        };
        Ok(Response::new(GetInclusionProofResponse {
            index,
            tree_size: published.checkpoint.size,
            inclusion_proof: hashes(proof),
            checkpoint: wire_checkpoint(published),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<GetConsistencyProofResponse>, Status> {
        let request = request.into_inner();
        let (proof, published) = self
            .reader
            .consistency(
                position("first_size", request.first_size)?,
                position("second_size", request.second_size)?,
            )
            .await
            .map_err(read_status)?;
        Ok(Response::new(GetConsistencyProofResponse {
            first_size: request.first_size,
            second_size: published.checkpoint.size,
            consistency_proof: hashes(proof),
            checkpoint: wire_checkpoint(published),
        }))
    }

    async fn get_entries(
        &self,
        request: Request<GetEntriesRequest>,
    ) -> Result<Response<GetEntriesResponse>, Status> {
        let request = request.into_inner();
        let entries = self
            .reader
            .entries(position("start", request.start)?, u64::from(request.count))
            .await
            .map_err(read_status)?;
        Ok(Response::new(GetEntriesResponse {
            entries: entries
                .into_iter()
                .map(|(index, entry)| LogEntry { index, entry })
                .collect(),
        }))
    }

    async fn find_entries(
        &self,
        request: Request<FindEntriesRequest>,
    ) -> Result<Response<FindEntriesResponse>, Status> {
        let request = request.into_inner();
        let sha256 = sha256_field("sha256", &request.sha256)?;
        let from = if request.page_token.is_empty() {
            0
        } else {
            let from = request.page_token.parse::<u64>().map_err(|_| {
                Status::invalid_argument("page_token: not a token this server issued")
            })?;
            position("page_token", from)?
        };
        let limit = match request.page_size {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let (found, next) = self
            .reader
            .find(sha256, from, limit)
            .await
            .map_err(read_status)?;
        Ok(Response::new(FindEntriesResponse {
            entries: found
                .into_iter()
                .map(|(index, entry)| LogEntry { index, entry })
                .collect(),
            next_page_token: next.map(|n| n.to_string()).unwrap_or_default(),
        }))
    }

    async fn get_verifier_keys(
        &self,
        _request: Request<TreeServiceGetVerifierKeysRequest>,
    ) -> Result<Response<TreeServiceGetVerifierKeysResponse>, Status> {
        let verifier_keys = self
            .publisher
            .verifier_keys(&self.origin)
            .await
            .map_err(|e| {
                let message = e.to_string();
                match e {
                    PublishError::Unavailable(_) => Status::unavailable(message),
                    // The signer holds no key for the origin tree serves:
                    // the two are configured for different logs.
                    PublishError::Refused(_) => Status::failed_precondition(message),
                }
            })?;
        Ok(Response::new(TreeServiceGetVerifierKeysResponse {
            verifier_keys,
        }))
    }
}
