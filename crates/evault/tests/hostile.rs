//! `evault up` held by a client with no token that opens connections and
//! never uses them: 300 of them, with the server allowed 256 file
//! descriptors. Silent sockets, HTTP/1 headers trickled a byte at a time,
//! and a bare HTTP/2 preface each used to hold their descriptors for as
//! long as the client liked, and the vault could accept no one else. The
//! connection guard closes them at its deadlines, so reads and appends are
//! answered within a few seconds all the same.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::tree_service_client::TreeServiceClient;
use evault_proto::v1::{AppendRequest, EvidenceStatement, GetCheckpointRequest};
use evault_test_support::ServerProcess;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

/// The server's file descriptor limit, and the connections held against it.
const DESCRIPTORS: u32 = 256;
const HELD: usize = 300;
/// The guard's deadlines for this test: short, so that it is quick.
const HANDSHAKE_TIMEOUT: &str = "1";
const IDLE_TIMEOUT: &str = "2";
/// How long a client may wait for an answer while the connections are
/// held: the deadlines above, twice over, and time to spare.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// `evault up` with `ulimit -n` at [`DESCRIPTORS`] and the short deadlines.
fn start(data: &Path) -> ServerProcess {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {DESCRIPTORS} && exec \"$@\""))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_evault"))
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(["--handshake-timeout", HANDSHAKE_TIMEOUT])
        .args(["--idle-timeout", IDLE_TIMEOUT]);
    for var in [
        "EVAULT_DATABASE_URL",
        "EVAULT_DATA_DIR",
        "EVAULT_ORIGIN",
        "EVAULT_MAX_CONNECTIONS",
        "EVAULT_JWKS_FILE",
        "EVAULT_JWKS_URL",
        "EVAULT_PUBLIC_READS",
    ] {
        command.env_remove(var);
    }
    command.env("RUST_LOG", "error");
    ServerProcess::start(command)
}

/// What each held connection does.
#[derive(Clone, Copy, Debug)]
enum Hold {
    /// Connects and says nothing.
    Silent,
    /// Sends an HTTP/1 request head a byte at a time, never ending it.
    Trickle,
    /// Sends the HTTP/2 preface and nothing more.
    Preface,
}

/// Opens [`HELD`] connections doing `how`; they stay open on this side
/// until the handle is dropped.
async fn hold(addr: &str, how: Hold) -> Vec<tokio::task::JoinHandle<()>> {
    let mut held = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        held.push(tokio::spawn(async move {
            match how {
                Hold::Silent => {}
                Hold::Preface => {
                    let _ = socket.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
                }
                Hold::Trickle => {
                    let head = b"GET /checkpoint HTTP/1.1\r\nHost: vault\r\nX-Slow: ";
                    for &b in head.iter().chain(std::iter::repeat(&b'a')) {
                        if socket.write_all(&[b]).await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            // Held until the test lets go (the task is aborted).
            std::future::pending::<()>().await;
            drop(socket);
        }));
    }
    held
}

/// `/checkpoint` over HTTP/1.1, within [`ANSWER_WITHIN`].
async fn http_checkpoint(url: &str) -> Result<Vec<u8>, String> {
    let url = format!("{url}/checkpoint");
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(ANSWER_WITHIN))
            .build()
            .into();
        agent
            .get(&url)
            .call()
            .and_then(|mut r| r.body_mut().read_to_vec())
            .map_err(|e| e.to_string())
    })
    .await
    .expect("http task")
}

/// The latest checkpoint's size over gRPC.
async fn grpc_checkpoint(url: &str) -> Result<u64, String> {
    let mut tree = TreeServiceClient::connect(url.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let answer = tree
        .get_checkpoint(GetCheckpointRequest {})
        .await
        .map_err(|e| e.to_string())?;
    Ok(answer.into_inner().checkpoint.map_or(0, |c| c.size))
}

/// Appends one statement with the token `evault up` wrote.
async fn append(url: &str, token: &str, n: usize) -> Result<u64, String> {
    let content = format!("evidence appended while held, {n}");
    let mut request = tonic::Request::new(AppendRequest {
        statement: Some(EvidenceStatement {
            sha256: evault_core::hash::sha256(content.as_bytes()).to_vec(),
            size: content.len() as u64,
            media_type: "text/plain".into(),
            name: String::new(),
            labels: vec![],
            content: None,
        }),
    });
    let bearer = format!("Bearer {token}").parse().map_err(|_| "token")?;
    request.metadata_mut().insert("authorization", bearer);
    let mut ingest = IngestServiceClient::connect(url.to_string())
        .await
        .map_err(|e| e.to_string())?;
    let answer = ingest.append(request).await.map_err(|e| e.to_string())?;
    Ok(answer.into_inner().receipt.map_or(0, |r| r.index))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_do_not_starve_reads_or_appends() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let server = start(&data);
    let addr = server.url.trim_start_matches("http://").to_string();
    let token = std::fs::read_to_string(data.join("dev-token")).expect("dev token");
    let token = token.trim();
    append(&server.url, token, 0).await.expect("first append");

    for (n, how) in [Hold::Silent, Hold::Trickle, Hold::Preface]
        .into_iter()
        .enumerate()
    {
        let held = hold(&addr, how).await;
        let started = Instant::now();
        let (note, size, index) = tokio::join!(
            http_checkpoint(&server.url),
            tokio::time::timeout(ANSWER_WITHIN, grpc_checkpoint(&server.url)),
            tokio::time::timeout(ANSWER_WITHIN, append(&server.url, token, n + 1)),
        );
        let waited = started.elapsed();
        let note = note.unwrap_or_else(|e| panic!("{how:?}: /checkpoint: {e}"));
        assert!(note.starts_with(b"vault.localhost/evidence\n"), "{how:?}");
        let size = size
            .unwrap_or_else(|_| panic!("{how:?}: GetCheckpoint timed out"))
            .unwrap_or_else(|e| panic!("{how:?}: GetCheckpoint: {e}"));
        assert!(size >= 1, "{how:?}");
        let index = index
            .unwrap_or_else(|_| panic!("{how:?}: Append timed out"))
            .unwrap_or_else(|e| panic!("{how:?}: Append: {e}"));
        assert_eq!(index, n as u64 + 1, "{how:?}");
        assert!(waited < ANSWER_WITHIN, "{how:?}: answered after {waited:?}");
        for connection in held {
            connection.abort();
        }
    }
    server.kill();
}
