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

/// How often an idle connection is probed, and how long an answer may
/// take: a peer that vanished without closing is noticed within half a
/// minute instead of never.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

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
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
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
