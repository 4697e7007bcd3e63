//! Connections a peer cannot hold without using them.
//!
//! A server that accepts every connection and waits on it for as long as
//! the peer likes is starved by a few hundred sockets that say nothing:
//! each holds a file descriptor, and once the process runs out of them it
//! can accept no one, however idle it is. [`GuardedIncoming`] wraps a
//! listener and bounds what a connection may hold:
//!
//! - **how many** are open at once on the listener
//!   ([`ConnectionLimits::max_connections`]): beyond the limit a new
//!   connection is accepted and closed at once, so that the kernel's
//!   backlog keeps moving and the peer learns at once instead of waiting;
//! - **how long a new one may take** to send its first complete request
//!   head, the HTTP/2 preface or an HTTP/1 head up to its blank line
//!   ([`ConnectionLimits::handshake_timeout`]): a peer trickling its
//!   headers a byte at a time is closed when the time is up;
//! - **how long one may send nothing** ([`ConnectionLimits::idle_timeout`]).
//!   Every role sends HTTP/2 keep-alive pings every 10 s on a quiet
//!   connection (`transport`), which a live client answers, so only a peer
//!   that has stopped talking is ever idle.
//!
//! Accept errors (the process out of descriptors, `EMFILE`, above all) are
//! logged and retried after a short pause: they neither end the server nor
//! spin the accept loop.
//!
//! The guard does not parse HTTP beyond finding the end of the first head,
//! and does not bound a connection's requests after it; request bodies are
//! bounded by [`crate::inflight`]. Over TLS it cannot see the head at all:
//! there the TLS handshake timeout bounds the start of a connection, and
//! the idle timeout the rest.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long accepting waits after an error that is not the peer's, such
/// as running out of file descriptors: long enough not to spin, short
/// enough that a freed descriptor is used soon.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Least time between two warnings of the same kind, so that a flood of
/// connections does not become a flood of log lines.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// What one listener lets its connections hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; a new one beyond is closed as soon as it
    /// is accepted.
    pub max_connections: usize,
    /// Time a new connection has to send its first complete request head
    /// (the HTTP/2 preface, or an HTTP/1 request line and headers).
    pub handshake_timeout: Duration,
    /// Time a connection may go without sending a byte before it is closed.
    pub idle_timeout: Duration,
    /// Request bytes the connections of this listener may hold at once,
    /// all requests together (see [`crate::inflight`]): a request beyond is
    /// refused `RESOURCE_EXHAUSTED`, so no crowd of large requests can take
    /// the process's memory.
    pub max_request_bytes: usize,
}

impl Default for ConnectionLimits {
    /// 1024 connections, 10 s to send a request head, 60 s of silence,
    /// 64 MiB of requests in flight.
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_request_bytes: crate::inflight::DEFAULT_MAX_REQUEST_BYTES_IN_FLIGHT,
        }
    }
}

/// The connections accepted on a listener, within [`ConnectionLimits`],
/// each with `TCP_NODELAY` set. The stream never ends and never fails:
/// accept errors are logged and retried.
#[derive(Debug)]
pub struct GuardedIncoming {
    listener: TcpListener,
    limits: ConnectionLimits,
    /// One permit per open connection, held by its [`GuardedStream`].
    open: Arc<Semaphore>,
    /// Set after an accept error: no accepting until it fires.
    backoff: Option<Pin<Box<Sleep>>>,
    /// Connections closed for the limit since the last warning.
    refused: u64,
    refused_warning: Warning,
    error_warning: Warning,
}

impl GuardedIncoming {
    /// Accepts on `listener` within `limits`.
    pub fn new(listener: TcpListener, limits: ConnectionLimits) -> Self {
        GuardedIncoming {
            listener,
            limits,
            open: Arc::new(Semaphore::new(
                limits.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            backoff: None,
            refused: 0,
            refused_warning: Warning::default(),
            error_warning: Warning::default(),
        }
    }

    /// The limits its connections are held to.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }
}

impl Stream for GuardedIncoming {
    type Item = Result<GuardedStream, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(backoff) = &mut this.backoff {
                ready!(backoff.as_mut().poll(cx));
                this.backoff = None;
            }
            match ready!(this.listener.poll_accept(cx)) {
                Ok((socket, _)) => {
                    let Ok(slot) = Arc::clone(&this.open).try_acquire_owned() else {
                        // Dropped: closed at once.
                        this.refused += 1;
                        if this.refused_warning.due() {
                            tracing::warn!(
                                limit = this.limits.max_connections,
                                closed = this.refused,
                                "connection limit reached; closing new connections at once"
                            );
                            this.refused = 0;
                        }
                        continue;
                    };
                    // Without it a small response waits for the peer's
                    // delayed ACK (see `transport`).
                    if let Err(error) = socket.set_nodelay(true) {
                        tracing::debug!(%error, "cannot set TCP_NODELAY");
                    }
                    return Poll::Ready(Some(Ok(GuardedStream::new(socket, this.limits, slot))));
                }
                // The peer gave up before it was accepted: nothing to wait for.
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(error) => {
                    if this.error_warning.due() {
                        tracing::warn!(%error, "accepting a connection failed; retrying shortly");
                    }
                    this.backoff = Some(Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)));
                }
            }
        }
    }
}

/// Says whether a warning of one kind may be logged now.
#[derive(Debug, Default)]
struct Warning {
    last: Option<Instant>,
}

impl Warning {
    fn due(&mut self) -> bool {
        let now = Instant::now();
        let due = self
            .last
            .is_none_or(|last| now.duration_since(last) >= WARNING_INTERVAL);
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// The end of an HTTP/1 request head. The HTTP/2 preface
/// (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`) holds it too, so one search finds
/// the first complete head of either.
const HEAD_END: &[u8; 4] = b"\r\n\r\n";

/// Looks for the end of the head in `bytes`, the next bytes of the
/// connection, with `matched` bytes of [`HEAD_END`] already seen before
/// them; true once it is found.
fn head_completed(matched: &mut usize, bytes: &[u8]) -> bool {
    for &b in bytes {
        *matched = if b == HEAD_END[*matched] {
            *matched + 1
        } else if b == HEAD_END[0] {
            1
        } else {
            0
        };
        if *matched == HEAD_END.len() {
            return true;
        }
    }
    false
}

/// The first byte of a TLS connection: a handshake record (ClientHello).
/// Neither an HTTP/1 request nor the HTTP/2 preface starts with it.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// One accepted connection: the socket, closed (reads fail with
/// `TimedOut`) when it takes too long to send its first request head or
/// stays silent too long.
#[derive(Debug)]
pub struct GuardedStream {
    socket: TcpStream,
    /// Bytes of [`HEAD_END`] matched so far; `None` once the head is
    /// complete.
    head: Option<usize>,
    /// Nothing has been read yet.
    at_start: bool,
    /// Fires at the handshake deadline, then at the idle deadline, which
    /// is moved on lazily: a read only records its time.
    timer: Pin<Box<Sleep>>,
    handshake_deadline: Instant,
    last_read: Instant,
    idle_timeout: Duration,
    /// The connection's place under the listener's limit.
    _slot: OwnedSemaphorePermit,
}

impl GuardedStream {
    fn new(socket: TcpStream, limits: ConnectionLimits, slot: OwnedSemaphorePermit) -> Self {
        let now = Instant::now();
        let handshake_deadline = now + limits.handshake_timeout;
        GuardedStream {
            socket,
            head: Some(0),
            at_start: true,
            timer: Box::pin(tokio::time::sleep_until(handshake_deadline)),
            handshake_deadline,
            last_read: now,
            idle_timeout: limits.idle_timeout,
            _slot: slot,
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &TcpStream {
        &self.socket
    }

    /// Records bytes read from the peer.
    fn received(&mut self, bytes: &[u8]) {
        self.last_read = Instant::now();
        let Some(matched) = &mut self.head else {
            return;
        };
        // Over TLS the head is encrypted: the TLS handshake's own timeout
        // (`tls`) bounds the start of the connection instead.
        let tls = self.at_start && bytes.first() == Some(&TLS_HANDSHAKE_RECORD);
        self.at_start = false;
        if tls || head_completed(matched, bytes) {
            self.head = None;
            let idle_deadline = self.last_read + self.idle_timeout;
            self.timer.as_mut().reset(idle_deadline);
        }
    }

    /// Pending until the deadline in force has passed, then the error that
    /// closes the connection.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let (deadline, why) = match self.head {
                Some(_) => (self.handshake_deadline, "no complete request head in time"),
                None => (self.last_read + self.idle_timeout, "idle for too long"),
            };
            if deadline <= Instant::now() {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, why));
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.socket).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    this.received(read);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => this.poll_deadline(cx).map(Err),
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }
}

impl Connected for GuardedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.socket.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_stream::StreamExt as _;

    use super::*;

    const SHORT: ConnectionLimits = ConnectionLimits {
        max_connections: 2,
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
        max_request_bytes: 1 << 20,
    };

    /// A listener under `limits` and its address; accepted connections
    /// are handed to `serve`, one task each.
    async fn guarded<F, Fut>(limits: ConnectionLimits, serve: F) -> std::net::SocketAddr
    where
        F: Fn(GuardedStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut incoming = GuardedIncoming::new(listener, limits);
        tokio::spawn(async move {
            while let Some(Ok(stream)) = incoming.next().await {
                tokio::spawn(serve(stream));
            }
        });
        addr
    }

    /// Reads until the connection ends, and says how: `Ok` with the bytes
    /// at EOF, or the error.
    async fn drain(mut stream: GuardedStream) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf).await? {
                0 => return Ok(all),
                n => all.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Serves by reading to the end and reporting how it ended.
    async fn reporting(
        limits: ConnectionLimits,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<io::Result<Vec<u8>>>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let addr = guarded(limits, move |stream| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(drain(stream).await);
            }
        })
        .await;
        (addr, rx)
    }

    /// Waits until the peer closes `client`: true if it did in `within`.
    async fn closed_within(client: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 16];
        matches!(
            tokio::time::timeout(within, client.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_at_the_handshake_deadline() {
        let (addr, mut ended) = reporting(SHORT).await;
        let started = Instant::now();
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let error = ended.recv().await.expect("ended").expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(waited >= SHORT.handshake_timeout, "{waited:?}");
        assert!(waited < SHORT.idle_timeout, "{waited:?}");
        assert!(closed_within(&mut client, Duration::from_secs(2)).await);
    }

    #[tokio::test]
    async fn headers_trickled_a_byte_at_a_time_do_not_extend_the_deadline() {
        let (addr, mut ended) = reporting(SHORT).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let trickle = tokio::spawn(async move {
            for b in b"GET /checkpoint HTTP/1.1\r\nHost: x\r\n" {
                if client.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let error = ended.recv().await.expect("ended").expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        trickle.abort();
    }

    #[tokio::test]
    async fn a_complete_head_moves_to_the_idle_deadline_which_each_read_extends() {
        let (addr, mut ended) = reporting(SHORT).await;
        let mut client = TcpStream::connect(addr).await.expect("connect");
        // The preface is the head of an HTTP/2 connection, sent in pieces
        // that split the blank line.
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r")
            .await
            .expect("write");
        client.write_all(b"\nSM\r\n\r\n").await.expect("write");
        // Talking more often than the idle timeout keeps it open well past
        // both deadlines...
        let started = Instant::now();
        while started.elapsed() < SHORT.idle_timeout * 2 {
            tokio::time::sleep(SHORT.idle_timeout / 3).await;
            client.write_all(b"x").await.expect("still open");
        }
        assert!(ended.try_recv().is_err(), "closed while talking");
        // ...and silence closes it.
        let error = ended.recv().await.expect("ended").expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed_at_once() {
        let (addr, mut ended) = reporting(ConnectionLimits {
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            ..SHORT
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..SHORT.max_connections {
            let mut client = TcpStream::connect(addr).await.expect("connect");
            client
                .write_all(b"GET / HTTP/1.1\r\n\r\n")
                .await
                .expect("write");
            held.push(client);
        }
        // The server has the held ones before the next arrives.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut over = TcpStream::connect(addr).await.expect("connect");
        assert!(closed_within(&mut over, Duration::from_secs(2)).await);
        // A slot freed is a slot for the next.
        drop(held.pop());
        let freed = ended.recv().await.expect("ended").expect("EOF");
        assert_eq!(freed, b"GET / HTTP/1.1\r\n\r\n");
        let mut next = TcpStream::connect(addr).await.expect("connect");
        next.write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        assert!(!closed_within(&mut next, Duration::from_millis(300)).await);
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line_however_the_bytes_are_split() {
        for head in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"\r\r\n\r\r\n\r\n",
        ] {
            let end = head
                .windows(4)
                .position(|w| w == HEAD_END)
                .expect("has an end")
                + 4;
            for split in 0..end {
                let mut matched = 0;
                assert!(!head_completed(&mut matched, &head[..split]));
                assert!(
                    head_completed(&mut matched, &head[split..end]),
                    "{head:?} split at {split}"
                );
            }
        }
    }
}
