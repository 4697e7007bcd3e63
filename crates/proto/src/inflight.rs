//! A bound on the request bytes a server holds at once, across all its
//! connections and calls.
//!
//! HTTP/2 flow control bounds what one stream or connection may send
//! unread, not what a server holds once it has read it: a thousand
//! concurrent unary calls of 16 MiB are 16 GiB, read as fast as the
//! network allows and kept while each call waits its turn. This layer
//! reserves every request data frame's bytes from one budget before the
//! service sees them; a frame that does not fit ends its request at once
//! with `RESOURCE_EXHAUSTED`, telling the caller to retry (pushback), not
//! with a slow death of the process.
//!
//! The bytes of a gRPC message stay reserved until the call has been
//! answered (a unary call's handler keeps the decoded message to the end)
//! or, on a stream, until the message is complete and the call's response
//! has begun (each message is then the handler's, bounded by its own flow
//! control). Bytes of a message still arriving are reserved until it
//! completes or the request ends. Requests that are not gRPC count the
//! same way, as one message per request.
//!
//! The bound is on bytes, not fairness: one caller that sends a large
//! message slowly holds its share of the budget for as long as it takes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

/// The default bound: four requests of ingest's largest message.
pub const DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT: usize = 64 << 20;

/// The budget of request bytes in flight, as a tower layer for a tonic
/// server. Clones share the budget: one value for the whole process.
#[derive(Clone, Debug)]
pub struct RequestBytesLimit {
    budget: Arc<Semaphore>,
    max_bytes: usize,
}

impl RequestBytesLimit {
    /// A budget of `max_bytes`, shared by every service it layers.
    pub fn new(max_bytes: usize) -> Self {
        let max_bytes = max_bytes.min(Semaphore::MAX_PERMITS);
        RequestBytesLimit {
            budget: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
        }
    }

    fn refused(&self) -> Status {
        Status::resource_exhausted(format!(
            "request bytes in flight over {}; retry",
            self.max_bytes
        ))
    }
}

impl Default for RequestBytesLimit {
    /// [`DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT`].
    fn default() -> Self {
        RequestBytesLimit::new(DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT)
    }
}

impl<S> Layer<S> for RequestBytesLimit {
    type Service = LimitRequestBytes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitRequestBytes {
            inner,
            limit: self.clone(),
        }
    }
}

/// A service whose request bodies draw on a [`RequestBytesLimit`].
#[derive(Clone, Debug)]
pub struct LimitRequestBytes<S> {
    inner: S,
    limit: RequestBytesLimit,
}

impl<S, ResBody> Service<http::Request<Body>> for LimitRequestBytes<S>
where
    S: Service<http::Request<Body>, Response = http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let held = Arc::new(Held::default());
        let limit = self.limit.clone();
        let body_held = Arc::clone(&held);
        let request = request.map(|inner| {
            Body::new(LimitedBody {
                inner,
                limit,
                receiving: None,
                framing: Framing::default(),
                held: body_held,
                refused: false,
            })
        });
        ResponseFuture {
            inner: Box::pin(self.inner.call(request)),
            answered: Answered(held),
        }
    }
}

/// The response of a [`LimitRequestBytes`] service; once it is ready (or
/// dropped), the call counts as answered.
pub struct ResponseFuture<F> {
    inner: Pin<Box<F>>,
    answered: Answered,
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let output = ready!(this.inner.as_mut().poll(cx));
        this.answered.0.answer();
        Poll::Ready(output)
    }
}

/// Marks its call answered when dropped, whether it was or was abandoned.
struct Answered(Arc<Held>);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.answer();
    }
}

/// The reservations of one call's complete messages, shared by its body
/// and its response.
#[derive(Debug, Default)]
struct Held(Mutex<HeldState>);

#[derive(Debug, Default)]
struct HeldState {
    answered: bool,
    /// Bytes of complete messages, kept until the call is answered.
    complete: Option<OwnedSemaphorePermit>,
}

impl Held {
    fn state(&self) -> std::sync::MutexGuard<'_, HeldState> {
        // The state is two fields set in one step each; a panic elsewhere
        // cannot leave them half-changed.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds the bytes of complete messages until the call is answered,
    /// or releases them now if it has been.
    fn complete(&self, bytes: OwnedSemaphorePermit) {
        let mut state = self.state();
        if !state.answered {
            merge(&mut state.complete, bytes);
        }
    }

    fn answer(&self) {
        let released = {
            let mut state = self.state();
            state.answered = true;
            state.complete.take()
        };
        drop(released);
    }
}

fn merge(into: &mut Option<OwnedSemaphorePermit>, permit: OwnedSemaphorePermit) {
    match into {
        Some(held) => held.merge(permit),
        None => *into = Some(permit),
    }
}

/// A request body whose data frames are reserved before they pass.
struct LimitedBody {
    inner: Body,
    limit: RequestBytesLimit,
    /// Bytes of the message still arriving.
    receiving: Option<OwnedSemaphorePermit>,
    framing: Framing,
    held: Arc<Held>,
    /// The budget ran out: the request has ended with the refusal.
    refused: bool,
}

impl LimitedBody {
    fn reserve(&mut self, data: &[u8]) -> Result<(), Status> {
        if data.is_empty() {
            return Ok(());
        }
        let permit = u32::try_from(data.len())
            .ok()
            .and_then(|n| {
                Arc::clone(&self.limit.budget)
                    .try_acquire_many_owned(n)
                    .ok()
            })
            .ok_or_else(|| self.limit.refused())?;
        let earlier = self.receiving.as_ref().map_or(0, |p| p.num_permits());
        merge(&mut self.receiving, permit);
        let completed = self.framing.consume(data);
        if completed > 0 {
            let complete = self
                .receiving
                .as_mut()
                .and_then(|p| p.split(earlier + completed));
            if let Some(complete) = complete {
                self.held.complete(complete);
            }
        }
        Ok(())
    }
}

impl http_body::Body for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.refused {
            return Poll::Ready(None);
        }
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                if let Err(status) = this.reserve(data) {
                    this.refused = true;
                    return Poll::Ready(Some(Err(status)));
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.refused || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a byte stream is in gRPC's message framing: a 5-byte prefix
/// (compression flag, big-endian length), then that many bytes.
#[derive(Debug, Default)]
struct Framing {
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message's payload still to come.
    payload_left: u64,
}

impl Framing {
    /// Follows `data`; the number of its bytes, from its start, up to the
    /// end of the last message it completes (0 if it completes none).
    fn consume(&mut self, data: &[u8]) -> usize {
        let mut at = 0;
        let mut completed = 0;
        while at < data.len() {
            if self.prefix_len < self.prefix.len() {
                let n = (self.prefix.len() - self.prefix_len).min(data.len() - at);
                self.prefix[self.prefix_len..self.prefix_len + n]
                    .copy_from_slice(&data[at..at + n]);
                self.prefix_len += n;
                at += n;
                if self.prefix_len == self.prefix.len() {
                    let [_, a, b, c, d] = self.prefix;
                    self.payload_left = u64::from(u32::from_be_bytes([a, b, c, d]));
                }
            } else {
                let n = self.payload_left.min((data.len() - at) as u64);
                self.payload_left -= n;
                at += n as usize;
            }
            if self.prefix_len == self.prefix.len() && self.payload_left == 0 {
                self.prefix_len = 0;
                completed = at;
            }
        }
        completed
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use tokio::sync::mpsc;
    use tonic::codegen::http::uri::PathAndQuery;

    use super::*;
    use crate::stub::{Raw, Stub, client, serve};
    use crate::v1::{
        AppendRequest, AppendResponse, AppendStreamRequest, AppendStreamResponse, EvidenceStatement,
    };

    const BUDGET: usize = 100 << 10;

    /// An `Append` request of a little over `content` bytes.
    fn append(content: usize) -> Vec<u8> {
        AppendRequest {
            statement: Some(EvidenceStatement {
                content: Some(vec![7; content]),
                ..Default::default()
            }),
        }
        .encode_to_vec()
    }

    async fn call(
        grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
        request: Vec<u8>,
    ) -> Result<AppendResponse, Status> {
        grpc.ready().await.expect("ready");
        grpc.unary(
            tonic::Request::new(request),
            PathAndQuery::from_static("/evault.v1.IngestService/Append"),
            Raw::<AppendResponse>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
    }

    #[tokio::test]
    async fn a_request_beyond_the_budget_is_refused_until_earlier_ones_are_answered() {
        let answer = Arc::new(Semaphore::new(0));
        let (entered, mut entries) = mpsc::unbounded_channel();
        let stub = Stub {
            answer: Arc::clone(&answer),
            entered,
        };
        let url = serve(stub, RequestBytesLimit::new(BUDGET)).await;
        let mut grpc = client(&url).await;

        // The first call is read whole and waits for its answer: its bytes
        // stay reserved, though its body is gone.
        let mut first_client = grpc.clone();
        let first = tokio::spawn(async move { call(&mut first_client, append(60 << 10)).await });
        entries.recv().await.expect("first call in the service");
        let refused = call(&mut grpc, append(60 << 10))
            .await
            .expect_err("over the budget");
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        assert_eq!(
            refused.message(),
            format!("request bytes in flight over {BUDGET}; retry")
        );
        // A small one still fits beside it.
        let mut small_client = grpc.clone();
        let small = tokio::spawn(async move { call(&mut small_client, append(1 << 10)).await });
        entries.recv().await.expect("small call in the service");

        // Answered, their bytes are free again.
        answer.add_permits(2);
        first.await.expect("task").expect("first answered");
        small.await.expect("task").expect("small answered");
        answer.add_permits(1);
        call(&mut grpc, append(60 << 10)).await.expect("fits again");
    }

    #[tokio::test]
    async fn a_stream_holds_only_the_messages_it_has_not_handed_on() {
        let (entered, _) = mpsc::unbounded_channel();
        let stub = Stub {
            answer: Arc::new(Semaphore::new(0)),
            entered,
        };
        let url = serve(stub, RequestBytesLimit::new(BUDGET)).await;
        let mut grpc = client(&url).await;
        // Ten times the budget in all, in messages of about a kilobyte.
        let messages = 1000u64;
        let requests = (0..messages).map(|request_id| {
            AppendStreamRequest {
                request_id,
                statement: Some(EvidenceStatement {
                    media_type: "x".repeat(1000),
                    ..Default::default()
                }),
            }
            .encode_to_vec()
        });
        let mut answers = grpc
            .streaming(
                tonic::Request::new(tokio_stream::iter(requests)),
                PathAndQuery::from_static("/evault.v1.IngestService/AppendStream"),
                Raw::<AppendStreamResponse>::default(),
            )
            .await
            .expect("stream")
            .into_inner();
        let mut answered = 0;
        while let Some(answer) = answers.message().await.expect("answer") {
            assert_eq!(answer.request_id, answered);
            answered += 1;
        }
        assert_eq!(answered, messages);
    }

    fn message(len: usize) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&(len as u32).to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len));
        m
    }

    #[test]
    fn framing_finds_where_messages_end_however_frames_split_them() {
        let stream: Vec<u8> = [message(3), message(0), message(300)].concat();
        let ends = [8, 13, stream.len()];
        for frame in [1, 2, 5, 7, 64, stream.len()] {
            let mut framing = Framing::default();
            let mut seen = Vec::new();
            for (i, chunk) in stream.chunks(frame).enumerate() {
                let completed = framing.consume(chunk);
                if completed > 0 {
                    seen.push(i * frame + completed);
                }
            }
            // Each frame reports the last message it completes.
            let expected: Vec<usize> = ends
                .iter()
                .enumerate()
                .filter(|&(k, &end)| {
                    ends.get(k + 1)
                        .is_none_or(|&next| (next - 1) / frame != (end - 1) / frame)
                })
                .map(|(_, &end)| end)
                .collect();
            assert_eq!(seen, expected, "frames of {frame}");
        }
    }
}
