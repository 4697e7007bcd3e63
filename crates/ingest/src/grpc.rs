//! `IngestService` over gRPC: authenticate, validate, store evidence,
//! queue, answer with the receipt.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use evault_metrics::{AppendOutcome, IngestMetrics};
use evault_proto::guard::GuardedIncoming;
use evault_proto::inflight::RequestBytesLimit;
use evault_proto::tls::ServerTls;
use evault_proto::v1::append_stream_response::Outcome;
use evault_proto::v1::ingest_service_server::{IngestService, IngestServiceServer};
use evault_proto::v1::{
    AppendError, AppendRequest, AppendResponse, AppendStreamRequest, AppendStreamResponse,
    EvidenceStatement,
};
use evault_storage::{EvidenceStore, StorageError};
use evault_tree::{AuditRecorder, NewEntry};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::Instrument as _;

use evault_auth::{AuthLayer, AuthService, Principal};
use tower::Layer as _;

use crate::batcher::{Answer, Batcher};
use crate::evidence::EvidenceGrpc;
use crate::limit::PrincipalLimiter;
use crate::statement::accept;

/// Requests one stream may have in flight; beyond, the server stops
/// reading and HTTP/2 flow control holds the client back. Twice a full
/// batch, so that one stream alone fills the next batch while tree works
/// on the current one.
pub const STREAM_WINDOW: usize = 8192;
/// Requests all streams together may have in flight. Each holds its
/// receipt (about a kilobyte) until its stream sends it, so this bounds the
/// memory of clients that stream faster than they read.
pub const STREAMS_IN_FLIGHT: usize = 32_768;
/// Answers buffered per stream beyond those HTTP/2 is sending.
const STREAM_OUT: usize = 64;
/// Largest request message: a statement with its evidence bytes.
pub use evault_proto::transport::MAX_MESSAGE;

/// The gRPC face of ingest.
pub struct IngestGrpc<E> {
    auth: AuthLayer,
    inner: Arc<Inner<E>>,
}

struct Inner<E> {
    evidence: E,
    /// Appends per principal, when limited.
    limiter: Option<PrincipalLimiter>,
    batcher: Batcher,
    /// Shared by every stream: one permit per request in flight.
    streams_in_flight: Arc<Semaphore>,
    /// Counts every append answered, and the evidence stored.
    metrics: &'static IngestMetrics,
}

impl<E> Clone for IngestGrpc<E> {
    fn clone(&self) -> Self {
        IngestGrpc {
            auth: self.auth.clone(),
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E: EvidenceStore> IngestGrpc<E> {
    /// Ingest admitting the callers `auth` admits, holding each principal
    /// to `rate` appends when given, storing uploaded evidence in
    /// `evidence`, queueing on `batcher`.
    pub fn new(
        auth: AuthLayer,
        rate: Option<crate::limit::RateLimit>,
        evidence: E,
        batcher: Batcher,
    ) -> Self {
        IngestGrpc {
            auth,
            inner: Arc::new(Inner {
                evidence,
                limiter: rate.map(PrincipalLimiter::new),
                batcher,
                streams_in_flight: Arc::new(Semaphore::new(STREAMS_IN_FLIGHT)),
                // Registered now: a scrape shows ingest's metrics before
                // its first append.
                metrics: evault_metrics::ingest(),
            }),
        }
    }

    /// The tonic service behind authentication, with the message limit
    /// applied: a caller is refused from its headers, before any of its
    /// message is read.
    pub fn into_service(self) -> AuthService<IngestServiceServer<Self>> {
        let auth = self.auth.clone();
        auth.layer(IngestServiceServer::new(self).max_decoding_message_size(MAX_MESSAGE))
    }
}

/// The roles that call ingest, by certificate name: under mutual TLS,
/// gateway alone, which forwards the public's appends.
pub const CALLERS: &[&str] = &["gateway"];

/// Runs `IngestService` and `EvidenceService` on `incoming` until
/// `shutdown` completes: over TLS and for the callers it admits with
/// `tls`, in plaintext without, with the request bytes it holds within
/// the [`RequestBytesLimit`] of `incoming`'s limits. The same port serves
/// the process's metrics (`GET /metrics`, over HTTP/1.1 too, for
/// scrapers that do not speak HTTP/2).
/// `incoming` is a listener's connections within their limits
/// ([`evault_proto::transport::incoming`]).
pub async fn serve<E: EvidenceStore, A: AuditRecorder>(
    incoming: GuardedIncoming,
    ingest: IngestGrpc<E>,
    evidence: EvidenceGrpc<E, A>,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    evault_proto::tls::secure(
        evault_proto::transport::server()
            .layer(RequestBytesLimit::new(incoming.limits().max_request_bytes))
            .accept_http1(true),
        tls.as_ref(),
    )?
    .add_routes(evault_metrics::role_routes())
    .add_service(ingest.into_service())
    .add_service(evidence.into_service())
    .serve_with_incoming_shutdown(incoming, shutdown)
    .await
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn storage_status(error: StorageError) -> Status {
    let message = format!("storing evidence: {error}");
    match error {
        StorageError::Unavailable(_) => Status::unavailable(message),
        StorageError::Erased(_) => Status::failed_precondition(message),
        StorageError::NoSuchLog(_)
        | StorageError::HeadMoved { .. }
        | StorageError::InvalidBatch(_)
        | StorageError::Corrupt(_)
        | StorageError::Conflict(_)
        | StorageError::NotApart(_)
        | StorageError::Backend(_) => Status::internal(message),
    }
}

impl<E: EvidenceStore> Inner<E> {
    /// One unary append: admitted, prepared, queued, answered.
    async fn append(&self, request: Request<AppendRequest>) -> Answer {
        let principal = caller(&request)?;
        if let Some(limiter) = &self.limiter {
            limiter.admit(&principal)?;
        }
        let entry = self
            .prepare(&principal, request.into_inner().statement)
            .await?;
        answered(self.batcher.submit(entry)?).await
    }

    /// Validates one statement and stores its evidence bytes, if sent:
    /// the entry to queue.
    async fn prepare(
        &self,
        principal: &str,
        statement: Option<EvidenceStatement>,
    ) -> Result<NewEntry, Status> {
        let statement = accept("statement", statement, principal, now_ms())?;
        if let Some(content) = &statement.content {
            self.evidence
                .put_evidence(statement.entry.digest, content)
                .await
                .map_err(storage_status)?;
            self.metrics.evidence_stored(content.len());
        }
        Ok(NewEntry {
            entry: statement.bytes,
            dedup_key: statement.dedup_key,
        })
    }
}

async fn answered(answer: oneshot::Receiver<Answer>) -> Answer {
    answer
        .await
        .unwrap_or_else(|_| Err(Status::unavailable("ingest stopped before answering")))
}

/// What an answer counts as in `evault_appends_total`. Every status code
/// has a deliberate outcome: no catch-all arm.
fn outcome(answer: &Answer) -> AppendOutcome {
    match answer {
        Ok((_, false)) => AppendOutcome::Logged,
        Ok((_, true)) => AppendOutcome::Duplicate,
        Err(status) => match status.code() {
            // The request's own fault.
            Code::InvalidArgument | Code::OutOfRange => AppendOutcome::Invalid,
            // Not now, or not this caller: the rate, the backlog, a scope.
            Code::ResourceExhausted | Code::Unauthenticated | Code::PermissionDenied => {
                AppendOutcome::Refused
            }
            // The vault's fault, or the transport's.
            Code::Ok
            | Code::Cancelled
            | Code::Unknown
            | Code::DeadlineExceeded
            | Code::NotFound
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::Aborted
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss => AppendOutcome::Failed,
        },
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<AppendStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<E: EvidenceStore> IngestService for IngestGrpc<E> {
    async fn append(
        &self,
        request: Request<AppendRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        let accepted = Instant::now();
        let answer = self.inner.append(request).await;
        self.inner.metrics.answered(outcome(&answer), accepted);
        let (receipt, duplicate) = answer?;
        Ok(Response::new(AppendResponse {
            receipt: Some(receipt),
            duplicate,
        }))
    }

    type AppendStreamStream = ResponseStream;

    async fn append_stream(
        &self,
        request: Request<Streaming<AppendStreamRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        let principal = caller(&request)?;
        let mut requests = request.into_inner();
        let (out, responses) = mpsc::channel(STREAM_OUT);
        // Pending answers in request order, each holding its permit; the
        // bound is the stream's window: when full, or when every stream
        // together has its fill in flight, reading stops.
        // The stream's end, when reading fails, goes the same way: after
        // the answers to every request read before it, so that no entry
        // logged goes without its receipt.
        let (pending_tx, mut pending) = mpsc::channel::<Queued>(STREAM_WINDOW);
        let inner = Arc::clone(&self.inner);
        let metrics = self.inner.metrics;
        // The stream's reader runs in the stream's span, so that each
        // append it queues is a child of the call.
        let span = tracing::Span::current();
        tokio::spawn(
            async move {
                loop {
                    match requests.message().await {
                        Ok(Some(r)) => {
                            let accepted = Instant::now();
                            if let Some(limiter) = &inner.limiter {
                                limiter.wait(&principal).await;
                            }
                            let Ok(permit) =
                                Arc::clone(&inner.streams_in_flight).acquire_owned().await
                            else {
                                break;
                            };
                            let queued = match inner.prepare(&principal, r.statement).await {
                                Ok(entry) => inner.batcher.submit_waiting(entry).await,
                                Err(status) => Err(status),
                            };
                            let item = Pending {
                                request_id: r.request_id,
                                accepted,
                                queued,
                                _permit: permit,
                            };
                            if pending_tx.send(Queued::Request(item)).await.is_err() {
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(status) => {
                            let end = evault_proto::transport::stream_end(status);
                            let _ = pending_tx.send(Queued::End(end)).await;
                            break;
                        }
                    }
                }
            }
            .instrument(span),
        );
        tokio::spawn(async move {
            while let Some(queued) = pending.recv().await {
                let item = match queued {
                    Queued::Request(item) => item,
                    Queued::End(status) => {
                        let _ = out.send(Err(status)).await;
                        break;
                    }
                };
                let outcome = match item.queued {
                    Ok(answer) => answered(answer).await,
                    Err(status) => Err(status),
                };
                metrics.answered(self::outcome(&outcome), item.accepted);
                let request_id = item.request_id;
                let response = match outcome {
                    Ok((receipt, duplicate)) => AppendStreamResponse {
                        request_id,
                        outcome: Some(Outcome::Receipt(receipt)),
                        duplicate,
                    },
                    Err(status) => AppendStreamResponse {
                        request_id,
                        outcome: Some(Outcome::Error(AppendError {
                            code: status.code() as i32,
                            message: status.message().to_string(),
                        })),
                        duplicate: false,
                    },
                };
                if out.send(Ok(response)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(responses))))
    }
}

/// The principal the authentication layer admitted. Its absence means the
/// service runs without that layer, so nobody is let in.
pub(crate) fn caller<T>(request: &Request<T>) -> Result<String, Status> {
    request
        .extensions()
        .get::<Principal>()
        .map(|p| p.name.clone())
        .ok_or_else(|| Status::unauthenticated("no authenticated principal"))
}

/// What a stream's reader hands its answerer, in the order read.
enum Queued {
    /// A request, to be answered.
    Request(Pending),
    /// Reading failed: the stream ends with this status once every request
    /// before it is answered.
    End(Status),
}

/// One streamed request awaiting its answer.
struct Pending {
    request_id: u64,
    /// When its request was read.
    accepted: Instant,
    queued: Result<oneshot::Receiver<Answer>, Status>,
    /// Released once the answer is handed to the stream.
    _permit: OwnedSemaphorePermit,
}

#[cfg(test)]
mod tests {
    use evault_proto::v1::Receipt;

    use super::*;

    #[test]
    fn an_answer_counts_as_its_outcome() {
        let receipt = Receipt::default();
        assert_eq!(
            outcome(&Ok((receipt.clone(), false))),
            AppendOutcome::Logged
        );
        assert_eq!(outcome(&Ok((receipt, true))), AppendOutcome::Duplicate);
        let failed = |status: Status| outcome(&Err(status));
        assert_eq!(
            failed(Status::invalid_argument("statement.sha256")),
            AppendOutcome::Invalid
        );
        assert_eq!(failed(crate::pushback()), AppendOutcome::Refused);
        assert_eq!(
            failed(Status::permission_denied("no evault.append")),
            AppendOutcome::Refused
        );
        assert_eq!(
            failed(Status::unavailable("no tree")),
            AppendOutcome::Failed
        );
        assert_eq!(
            failed(Status::failed_precondition("refusing to sequence")),
            AppendOutcome::Failed
        );
    }
}
