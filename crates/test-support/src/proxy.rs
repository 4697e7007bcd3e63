//! A TCP proxy a test puts between two parts of the vault (a role and the
//! role it calls, a role and PostgreSQL) to break what crosses: stall
//! every connection (bytes held, nothing closed, as a partition or a
//! frozen peer looks), and cut them (closed at once, as a crash or a
//! restart looks). Real sockets on both sides; nothing is simulated.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with the bytes of its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// Passes them.
    Passing,
    /// Holds them: connections stay open, nothing gets through either way.
    Stalled,
}

/// A proxy to one address, on a port of its own; it stops when dropped.
pub struct TcpProxy {
    addr: SocketAddr,
    flow: Arc<watch::Sender<Flow>>,
    /// Bumped by every cut: connections older than the cut close.
    cuts: Arc<watch::Sender<u64>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// A proxy on 127.0.0.1 (port 0) to `target`, passing.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let flow = Arc::new(watch::Sender::new(Flow::Passing));
        let cuts = Arc::new(watch::Sender::new(0u64));
        let accepting = tokio::spawn({
            let (flow, cuts) = (Arc::clone(&flow), Arc::clone(&cuts));
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay(client, target, flow.subscribe(), cuts.subscribe()));
                }
            }
        });
        TcpProxy {
            addr,
            flow,
            cuts,
            accepting,
        }
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Holds every byte from now on, both ways, on every connection, new
    /// ones included; nothing is closed.
    pub fn stall(&self) {
        self.flow.send_replace(Flow::Stalled);
    }

    /// Passes bytes again, those held first.
    pub fn resume(&self) {
        self.flow.send_replace(Flow::Passing);
    }

    /// Closes every connection open now; new ones pass.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

async fn relay(
    client: TcpStream,
    target: SocketAddr,
    flow: watch::Receiver<Flow>,
    mut cuts: watch::Receiver<u64>,
) {
    cuts.mark_unchanged();
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pump(client_read, server_write, flow.clone()) => {}
        () = pump(server_read, client_write, flow) => {}
        _ = cuts.changed() => {}
    }
    // Both halves of both sockets drop here: the connection is closed.
}

/// Copies from `from` to `to` while the flow passes; ends when either
/// side closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut flow: watch::Receiver<Flow>,
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if flow.wait_for(|f| *f == Flow::Passing).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The host and port a libpq-style URL names (one of each).
fn host_port(url: &str) -> (String, u16) {
    let config: tokio_postgres::Config = url.parse().expect("database URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => panic!("{url}: not a TCP host"),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

/// The address of the database at `url`, for a proxy to lead to.
pub fn database_addr(url: &str) -> SocketAddr {
    use std::net::ToSocketAddrs as _;
    let (host, port) = host_port(url);
    (host.as_str(), port)
        .to_socket_addrs()
        .expect("resolve the database host")
        .next()
        .expect("an address for the database host")
}

/// `url` with its host and port replaced by `addr`: the same database,
/// through a proxy.
pub fn database_url_via(url: &str, addr: SocketAddr) -> String {
    let (host, port) = host_port(url);
    let authority = format!("{host}:{port}");
    assert!(url.contains(&authority), "{url} does not name {authority}");
    url.replacen(&authority, &addr.to_string(), 1)
}
