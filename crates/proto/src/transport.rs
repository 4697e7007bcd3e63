//! How the contracts travel: the HTTP/2 settings every role uses on both
//! ends of a connection, kept in one place so that no role drifts.
//!
//! Two settings decide whether the vault is fast and whether it keeps a
//! client's stream:
//!
//! - **`TCP_NODELAY`** on every accepted and every outgoing socket. Without
//!   it, a small response (headers, one message, trailers: several small
//!   writes) waits for the peer's delayed ACK, and every call costs about
//!   40 ms however idle the vault is.
//! - **Flow-control windows sized to h2's data-frame budget.** h2 charges
//!   every buffered, unread DATA frame under 256 bytes for its framing
//!   overhead, against a budget of half the connection window, and answers
//!   a connection that exhausts it with `GOAWAY ENHANCE_YOUR_CALM`. A stream
//!   whose reader pauses (the vault pushing back while a batch is signed)
//!   lets the client fill the *stream* window with frames as small as the
//!   client likes to send; grpc-python and grpc-go send one frame per
//!   message. So the stream window is kept small and the connection window
//!   large: a full stream window of 60-byte messages costs well under the
//!   budget, and so do several such streams stalled at once. See
//!   `docs/services.md` (streams) for the arithmetic.

use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::{Endpoint, Server};
use tower::layer::util::{Identity, Stack};

use crate::guard::{ConnectionLimits, GuardedIncoming};

/// Bytes a peer may send on one stream before the reader takes them.
pub const STREAM_WINDOW: u32 = 256 << 10;

/// Bytes a peer may send on one connection, all streams together, before
/// they are read. h2's budget for small frames is half of it.
pub const CONNECTION_WINDOW: u32 = 16 << 20;

/// The largest gRPC message any role takes or sends, on either end of
/// every connection: one statement with its evidence bytes (an upload,
/// forwarded by the gateway as it came), and a batch to tree with its
/// answer. One figure for every role, so that no hop refuses what the
/// hop before it accepted (`docs/limits.md`).
pub const MAX_MESSAGE: usize = 16 << 20;

/// The largest answer any role or client decodes: an answer repeats at
/// most one request's payload (evidence read back, a batch's entries)
/// with what the vault adds to it (metadata, proofs, a checkpoint).
pub const MAX_ANSWER: usize = MAX_MESSAGE + (64 << 10);

/// Entry bytes one message carries at most when it carries many entries:
/// a batch from ingest to tree, a page of `GetEntries`. Entries are up to
/// 64 KiB each, so 4096 of them could be 256 MiB; bounded here, a batch
/// and its answer (entries, plus at most 64 proof hashes per entry) stay
/// well under [`MAX_MESSAGE`] and no caller's large entry fails a batch.
pub const MAX_ENTRY_BYTES: usize = 4 << 20;

/// How many entries, of `lengths` bytes each from the first, fit in
/// `max_bytes`: at least one, so that a batch always carries an entry and
/// a reader paging through the log always moves on (an entry is at most
/// 64 KiB, far below any byte bound).
pub fn entries_within(lengths: impl IntoIterator<Item = usize>, max_bytes: usize) -> usize {
    let mut bytes = 0;
    let mut fit = 0;
    for length in lengths {
        bytes += length;
        if bytes > max_bytes {
            return fit.max(1);
        }
        fit += 1;
    }
    fit
}

/// How often an idle connection is probed, and how long an answer may
/// take: a peer that vanished without closing is noticed within half a
/// minute instead of never.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long opening a connection to another role may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one call from a role to another may take before the caller
/// gives up on it: a batch to tree, a checkpoint to the signer, a call
/// the gateway forwards. Every one of them normally takes milliseconds;
/// one that takes this long is stuck (a stalled peer, a partition), and
/// a caller holding a lock or a client's request must not wait for ever.
/// A stream's call is bounded until its answer starts, not to its end.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `call` to `role`, given up after [`CALL_TIMEOUT`] as `UNAVAILABLE`
/// (retrying may succeed, with this replica or another).
/// A call that broke in transport is `UNAVAILABLE` too ([`broken_call`]).
pub async fn within<T>(
    role: &str,
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(answer) => answer.map_err(|status| broken_call(role, status)),
        Err(_) => Err(tonic::Status::unavailable(format!(
            "{role} did not answer within {} s",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

/// A gRPC server builder with the vault's transport settings, each call
/// to a vault service in a span continuing its caller's trace
/// ([`crate::telemetry::ServerTrace`]). Serve it on [`incoming`], which
/// sets `TCP_NODELAY` on each accepted socket and bounds what connections
/// may hold.
pub fn server() -> Server<Stack<crate::telemetry::ServerTrace, Identity>> {
    Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keepalive_interval(Some(KEEP_ALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEP_ALIVE_TIMEOUT))
        .layer(crate::telemetry::ServerTrace)
}

/// The connections accepted on `listener`, each with `TCP_NODELAY` set.
/// Connections beyond `limits` are closed (see [`crate::guard`]).
pub fn incoming(listener: TcpListener, limits: ConnectionLimits) -> GuardedIncoming {
    GuardedIncoming::new(listener, limits)
}

/// A client endpoint for `url` with the vault's transport settings.
pub fn endpoint(url: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_string())?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

/// A call to `role` that broke in transport (the peer died or its
/// connection was cut mid-call: tonic says `UNKNOWN` "transport error",
/// or `CANCELLED` for a reset stream) is `UNAVAILABLE`: nothing more will
/// come of it, and retrying, with this replica or another, may succeed.
/// Every other status passes as it is.
pub fn broken_call(role: &str, status: tonic::Status) -> tonic::Status {
    match status.code() {
        tonic::Code::Unknown | tonic::Code::Cancelled => {
            tonic::Status::unavailable(format!("the call to {role} broke: {}", status.message()))
        }
        _ => status,
    }
}

/// The status that ends a stream whose connection (to the caller, or to
/// the role behind) broke. tonic reports a broken connection as `UNKNOWN`
/// or `INTERNAL` ("h2 protocol error"); to the caller it means "nothing
/// more will come on this stream, try again", which is `UNAVAILABLE`.
/// Every other status passes as it is.
pub fn stream_end(status: tonic::Status) -> tonic::Status {
    match status.code() {
        tonic::Code::Unknown | tonic::Code::Internal => {
            tonic::Status::unavailable(format!("the stream broke: {}", status.message()))
        }
        _ => status,
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt as _;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut accepted = incoming(listener, ConnectionLimits::default());
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let Some(Ok(connection)) = accepted.next().await else {
            unreachable!("the stream neither ends nor fails");
        };
        assert!(connection.get_ref().nodelay().expect("read TCP_NODELAY"));
    }

    #[test]
    fn entries_fit_their_byte_bound_and_at_least_one_goes() {
        assert_eq!(entries_within([300, 300, 300, 300], 1000), 3);
        assert_eq!(entries_within([300, 700], 1000), 2);
        assert_eq!(entries_within([2000, 1], 1000), 1);
        assert_eq!(entries_within([1, 1], 1000), 2);
        assert_eq!(entries_within([], 1000), 0);
    }

    #[test]
    fn a_call_broken_in_transport_is_unavailable() {
        for broken in [
            tonic::Status::unknown("transport error"),
            tonic::Status::cancelled("operation was canceled"),
        ] {
            let status = broken_call("tree", broken);
            assert_eq!(status.code(), tonic::Code::Unavailable);
            assert!(status.message().starts_with("the call to tree broke"));
        }
        let refused = broken_call("tree", tonic::Status::failed_precondition("diverged"));
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_answers_is_given_up_as_unavailable() {
        let never = std::future::pending::<Result<(), tonic::Status>>();
        let status = within("the signer", never).await.expect_err("given up");
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("did not answer within"));
    }

    #[test]
    fn a_broken_stream_ends_as_unavailable() {
        for broken in [
            tonic::Status::unknown("h2 protocol error: error reading a body from connection"),
            tonic::Status::internal("h2 protocol error"),
        ] {
            let status = stream_end(broken);
            assert_eq!(status.code(), tonic::Code::Unavailable);
            assert!(status.message().contains("h2 protocol error"));
        }
        let refused = stream_end(tonic::Status::invalid_argument("statement.sha256"));
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn endpoints_have_nodelay() {
        let endpoint = endpoint("http://127.0.0.1:1").expect("endpoint");
        assert!(endpoint.get_tcp_nodelay());
    }

    /// A stream window full of the smallest valid statements (about 60
    /// bytes on the wire, one DATA frame each) costs less than an eighth of
    /// h2's budget for small frames (half the connection window, 256 bytes
    /// charged per frame less its payload).
    #[test]
    fn a_stalled_stream_of_small_frames_stays_within_h2s_budget() {
        let frame = 60u64;
        let frames = u64::from(STREAM_WINDOW) / frame;
        let cost = frames * (256 - frame);
        let budget = u64::from(CONNECTION_WINDOW) / 2;
        assert!(cost * 8 < budget, "cost {cost} of budget {budget}");
    }
}
