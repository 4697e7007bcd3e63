//! Ingest on a real gRPC server (port 0), in front of a real tree and
//! signer on the embedded store: authentication, validation, receipts,
//! retries, streaming, evidence upload and pushback; and the custody of
//! uploaded evidence (`EvidenceService`), with the audit trail as a
//! recorder that keeps what it is told and can be made to fail.

use std::sync::Arc;
use std::time::Duration;

use evault_auth::{AuthLayer, JwtVerifier, LocalIssuer, Policy, Scope};
use evault_core::hash::sha256;
use evault_core::{EvidenceEntry, Hash, Receipt, SigningKey, VerifierKey};
use evault_ingest::{
    BatchConfig, Batcher, EvidenceGrpc, IngestGrpc, RateLimit, SequenceBatch, serve,
};
use evault_proto::v1::append_stream_response::Outcome;
use evault_proto::v1::evidence_service_client::EvidenceServiceClient;
use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::{
    AppendRequest, AppendStreamRequest, EraseEvidenceRequest, EvidenceStatement,
    GetEvidenceRequest, Label, Receipt as WireReceipt,
};
use evault_signer::CheckpointSigner;
use evault_storage::EvidenceStore;
use evault_storage::embedded::EmbeddedStore;
use evault_storage::signer::{SIGNER_FILE, SignerFile};
use evault_tree::{AuditEvent, AuditRecorder, NewEntry, NotRecorded, SequencedBatch, Sequencer};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const ORIGIN: &str = "vault.example/ingest-test";
/// One local issuer for the whole test binary, and its token for `dev`
/// with every scope: verified like any identity provider's.
fn issuer() -> &'static (tempfile::TempDir, String) {
    static ISSUER: std::sync::OnceLock<(tempfile::TempDir, String)> = std::sync::OnceLock::new();
    ISSUER.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = LocalIssuer::open_or_create(dir.path()).expect("issuer");
        let token = issuer
            .mint("dev", &Scope::ALL, Duration::from_secs(3600))
            .expect("token");
        (dir, token)
    })
}

async fn auth() -> AuthLayer {
    let verifier = JwtVerifier::start(LocalIssuer::config(issuer().0.path()))
        .await
        .expect("verifier");
    AuthLayer::new(verifier, Policy::new(true))
}

type Tree = Sequencer<EmbeddedStore, CheckpointSigner<SignerFile>>;

struct Vault {
    _dir: tempfile::TempDir,
    store: EmbeddedStore,
    keys: Vec<VerifierKey>,
    addr: std::net::SocketAddr,
    audit: Arc<Recorder>,
}

/// Stands for the audit trail: keeps the events it is told, or refuses
/// them while `failing`. The trail itself is tested with the tree, and
/// end to end in `evault`'s tests; here what matters is what ingest does
/// when a record is, or is not, taken.
#[derive(Default)]
struct Recorder {
    events: std::sync::Mutex<Vec<AuditEvent>>,
    failing: std::sync::atomic::AtomicBool,
}

impl AuditRecorder for Recorder {
    async fn record(&self, events: Vec<AuditEvent>) -> Result<(), NotRecorded> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(NotRecorded("the trail is away".into()));
        }
        self.events.lock().expect("lock").extend(events);
        Ok(())
    }
}

impl Recorder {
    fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().expect("lock").clone()
    }
}

/// Slows every batch down, to fill the backlog on purpose.
struct Slow(Arc<Tree>);

impl SequenceBatch for Slow {
    async fn sequence(&self, batch: Vec<NewEntry>) -> Result<SequencedBatch, Status> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        SequenceBatch::sequence(self.0.as_ref(), batch).await
    }
}

async fn start(config: BatchConfig, slow: bool) -> Vault {
    start_limited(config, slow, None).await
}

/// The log in `dir` (the embedded store), sequenced with an in-process
/// signer of a new key; and that key's verifier key.
async fn log_in(
    dir: &std::path::Path,
) -> (
    EmbeddedStore,
    Vec<VerifierKey>,
    Sequencer<EmbeddedStore, CheckpointSigner<SignerFile>>,
) {
    let store = EmbeddedStore::open(dir).expect("store");
    let (key, _) = SigningKey::generate(ORIGIN).expect("key");
    let keys = vec![key.verifier_key().clone()];
    let signer_store = SignerFile::open(&dir.join(SIGNER_FILE)).expect("signer file");
    let signer = CheckpointSigner::new(ORIGIN, vec![Box::new(key)], signer_store).expect("signer");
    let sequencer = Sequencer::open(ORIGIN, store.clone(), signer)
        .await
        .expect("tree");
    (store, keys, sequencer)
}

/// A listener on a port of its own, and its address.
async fn port_zero() -> (evault_proto::guard::GuardedIncoming, std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = evault_proto::transport::incoming(
        listener,
        evault_proto::guard::ConnectionLimits::default(),
    );
    (incoming, addr)
}

async fn start_limited(config: BatchConfig, slow: bool, rate: Option<RateLimit>) -> Vault {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, keys, sequencer) = log_in(dir.path()).await;
    let tree = Arc::new(sequencer);
    let batcher = if slow {
        Batcher::start(Arc::new(Slow(tree)), config)
    } else {
        Batcher::start(tree, config)
    };
    let ingest = IngestGrpc::new(auth().await, rate, store.clone(), batcher);
    let audit = Arc::new(Recorder::default());
    let evidence = EvidenceGrpc::new(auth().await, store.clone(), Arc::clone(&audit));
    let (incoming, addr) = port_zero().await;
    tokio::spawn(serve(
        incoming,
        ingest,
        evidence,
        None,
        std::future::pending(),
    ));
    Vault {
        _dir: dir,
        store,
        keys,
        addr,
        audit,
    }
}

async fn client(vault: &Vault) -> IngestServiceClient<Channel> {
    IngestServiceClient::connect(format!("http://{}", vault.addr))
        .await
        .expect("connect")
}

fn authed<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", issuer().1).parse().expect("header"),
    );
    request
}

fn statement(n: u32) -> EvidenceStatement {
    let content = format!("evidence number {n}").into_bytes();
    EvidenceStatement {
        sha256: sha256(&content).to_vec(),
        size: content.len() as u64,
        media_type: "text/plain".into(),
        name: format!("e{n}.txt"),
        labels: vec![Label {
            key: "case".into(),
            value: "IR-9".into(),
        }],
        content: None,
    }
}

fn verify(vault: &Vault, receipt: &WireReceipt) -> EvidenceEntry {
    let receipt = Receipt {
        extra: Some(receipt.entry.clone()),
        index: receipt.index,
        proof: receipt
            .inclusion_proof
            .iter()
            .map(|h| Hash::from_slice(h).expect("32 bytes"))
            .collect(),
        checkpoint: receipt.checkpoint.clone(),
    };
    let verified = receipt
        .verify(&vault.keys, Some(ORIGIN))
        .expect("receipt verifies");
    EvidenceEntry::decode(&verified.entry).expect("evidence entry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_valid_token() {
    let vault = start(BatchConfig::default(), false).await;
    let mut client = client(&vault).await;
    let anonymous = client
        .append(AppendRequest {
            statement: Some(statement(1)),
        })
        .await
        .expect_err("anonymous write");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let mut forged = Request::new(AppendRequest {
        statement: Some(statement(1)),
    });
    forged
        .metadata_mut()
        .insert("authorization", "Bearer guess".parse().expect("header"));
    assert_eq!(
        client.append(forged).await.expect_err("bad token").code(),
        Code::Unauthenticated
    );
    let stream = client
        .append_stream(tokio_stream::iter(vec![AppendStreamRequest {
            request_id: 1,
            statement: Some(statement(1)),
        }]))
        .await
        .expect_err("anonymous stream");
    assert_eq!(stream.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_returns_a_receipt_and_a_retry_the_original() {
    let vault = start(BatchConfig::default(), false).await;
    let mut client = client(&vault).await;
    let first = client
        .append(authed(AppendRequest {
            statement: Some(statement(1)),
        }))
        .await
        .expect("append")
        .into_inner();
    assert!(!first.duplicate);
    let receipt = first.receipt.expect("receipt");
    let entry = verify(&vault, &receipt);
    assert_eq!(entry.principal, "dev");
    assert_eq!(entry.name.as_deref(), Some("e1.txt"));

    let retry = client
        .append(authed(AppendRequest {
            statement: Some(statement(1)),
        }))
        .await
        .expect("retry")
        .into_inner();
    assert!(retry.duplicate);
    let again = retry.receipt.expect("receipt");
    assert_eq!((again.index, &again.entry), (receipt.index, &receipt.entry));
    verify(&vault, &again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_statements_name_the_field_and_log_nothing() {
    let vault = start(BatchConfig::default(), false).await;
    let mut client = client(&vault).await;
    let mut bad = statement(1);
    bad.labels.push(Label {
        key: "case".into(),
        value: "again".into(),
    });
    let status = client
        .append(authed(AppendRequest {
            statement: Some(bad),
        }))
        .await
        .expect_err("repeated label");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("statement.labels[1].key:"),
        "{}",
        status.message()
    );
    let status = client
        .append(authed(AppendRequest { statement: None }))
        .await
        .expect_err("missing");
    assert_eq!(status.code(), Code::InvalidArgument);
    use evault_storage::LogStore;
    assert_eq!(vault.store.head(ORIGIN).await.expect("head").size, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_evidence_is_checked_and_stored() {
    let vault = start(BatchConfig::default(), false).await;
    let mut client = client(&vault).await;
    let content = b"%PDF-1.7 incident report".to_vec();
    let mut s = statement(1);
    s.sha256 = sha256(&content).to_vec();
    s.size = content.len() as u64;
    s.content = Some(content.clone());
    client
        .append(authed(AppendRequest {
            statement: Some(s.clone()),
        }))
        .await
        .expect("append");
    assert_eq!(
        vault
            .store
            .evidence(sha256(&content))
            .await
            .expect("stored"),
        Some(evault_storage::StoredEvidence::Content(content))
    );

    s.content = Some(b"something else of another size".to_vec());
    let status = client
        .append(authed(AppendRequest { statement: Some(s) }))
        .await
        .expect_err("mismatch");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("statement.content:"),
        "{}",
        status.message()
    );
}

async fn evidence_client(vault: &Vault) -> EvidenceServiceClient<Channel> {
    EvidenceServiceClient::connect(format!("http://{}", vault.addr))
        .await
        .expect("connect")
}

/// Appends `content` as statement `n`, uploading it.
async fn upload(vault: &Vault, n: u32, content: &[u8]) {
    let mut s = statement(n);
    s.sha256 = sha256(content).to_vec();
    s.size = content.len() as u64;
    s.content = Some(content.to_vec());
    client(vault)
        .await
        .append(authed(AppendRequest { statement: Some(s) }))
        .await
        .expect("append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_is_read_back_only_once_the_read_is_recorded() {
    let vault = start(BatchConfig::default(), false).await;
    let content = b"disk image of host 7".to_vec();
    upload(&vault, 1, &content).await;
    let mut evidence = evidence_client(&vault).await;
    let ask = || {
        authed(GetEvidenceRequest {
            sha256: sha256(&content).to_vec(),
        })
    };

    vault
        .audit
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let status = evidence.get_evidence(ask()).await.expect_err("unrecorded");
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(vault.audit.events().is_empty());

    vault
        .audit
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let read = evidence
        .get_evidence(ask())
        .await
        .expect("read")
        .into_inner();
    assert_eq!(read.content, content);
    let events = vault.audit.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "evidence.read");
    assert_eq!(events[0].principal.as_deref(), Some("dev"));
    assert_eq!(
        events[0].fields["sha256"],
        serde_json::Value::from(evault_core::hash::hex(&sha256(&content)))
    );
    assert_eq!(
        events[0].fields["size"],
        serde_json::Value::from(content.len())
    );

    let status = evidence
        .get_evidence(authed(GetEvidenceRequest {
            sha256: vec![7; 31],
        }))
        .await
        .expect_err("short digest");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = evidence
        .get_evidence(authed(GetEvidenceRequest {
            sha256: sha256(b"never uploaded").to_vec(),
        }))
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(
        vault.audit.events().len(),
        1,
        "only reads that return bytes"
    );
    let status = evidence
        .get_evidence(Request::new(GetEvidenceRequest {
            sha256: sha256(&content).to_vec(),
        }))
        .await
        .expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_evidence_says_when_by_whom_and_why_and_is_never_stored_again() {
    let vault = start(BatchConfig::default(), false).await;
    let content = b"a witness statement, to be erased".to_vec();
    upload(&vault, 1, &content).await;
    let mut evidence = evidence_client(&vault).await;
    let erase = |reason: &str| {
        authed(EraseEvidenceRequest {
            sha256: sha256(&content).to_vec(),
            reason: reason.into(),
        })
    };

    let status = evidence
        .erase_evidence(erase("  "))
        .await
        .expect_err("no reason");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = evidence
        .erase_evidence(erase(&"x".repeat(evault_ingest::MAX_REASON + 1)))
        .await
        .expect_err("reason too long");
    assert_eq!(status.code(), Code::InvalidArgument);

    // Not recorded, not erased.
    vault
        .audit
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let status = evidence
        .erase_evidence(erase("order 1"))
        .await
        .expect_err("unrecorded");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        vault.store.evidence(sha256(&content)).await.expect("read"),
        Some(evault_storage::StoredEvidence::Content(content.clone()))
    );
    vault
        .audit
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);

    let erased = evidence
        .erase_evidence(erase("order 1"))
        .await
        .expect("erase")
        .into_inner();
    assert!(!erased.already_erased);
    let erasure = erased.erasure.expect("erasure");
    assert_eq!(erasure.erased_by, "dev");
    assert_eq!(erasure.reason, "order 1");
    let events = vault.audit.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "evidence.erased");
    assert_eq!(
        events[0].fields["reason"],
        serde_json::Value::from("order 1")
    );

    let status = evidence
        .get_evidence(authed(GetEvidenceRequest {
            sha256: sha256(&content).to_vec(),
        }))
        .await
        .expect_err("erased");
    assert_eq!(status.code(), Code::NotFound);
    assert!(
        status.message().contains(&format!(
            "was erased at {} by dev: order 1",
            erasure.erased_at
        )),
        "{}",
        status.message()
    );
    let again = evidence
        .erase_evidence(erase("order 2"))
        .await
        .expect("erase again")
        .into_inner();
    assert!(again.already_erased);
    assert_eq!(again.erasure, Some(erasure), "the first erasure stands");
    assert_eq!(vault.audit.events().len(), 1, "nothing new happened");

    // Uploading the same bytes again is refused; an append naming the
    // digest without uploading is still taken.
    let mut s = statement(2);
    s.sha256 = sha256(&content).to_vec();
    s.size = content.len() as u64;
    s.content = Some(content.clone());
    let status = client(&vault)
        .await
        .append(authed(AppendRequest {
            statement: Some(s.clone()),
        }))
        .await
        .expect_err("erased bytes");
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
    s.content = None;
    client(&vault)
        .await
        .append(authed(AppendRequest { statement: Some(s) }))
        .await
        .expect("a statement about erased evidence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_answers_every_request_in_order() {
    let vault = start(BatchConfig::default(), false).await;
    let mut client = client(&vault).await;
    let requests: Vec<AppendStreamRequest> = (0..3000u32)
        .map(|n| {
            let mut s = statement(n);
            if n == 1234 {
                s.sha256.clear();
            }
            AppendStreamRequest {
                request_id: u64::from(n) * 10,
                statement: Some(s),
            }
        })
        .collect();
    let mut responses = client
        .append_stream(authed(tokio_stream::iter(requests)))
        .await
        .expect("stream")
        .into_inner();
    let mut seen = 0u64;
    let mut indices = std::collections::BTreeSet::new();
    while let Some(response) = responses.message().await.expect("response") {
        assert_eq!(
            response.request_id,
            seen * 10,
            "answers come in request order"
        );
        match response.outcome.expect("outcome") {
            Outcome::Receipt(receipt) => {
                assert_ne!(seen, 1234);
                if seen % 97 == 0 {
                    verify(&vault, &receipt);
                }
                assert!(indices.insert(receipt.index), "index handed out twice");
            }
            Outcome::Error(error) => {
                assert_eq!(seen, 1234);
                assert_eq!(error.code, Code::InvalidArgument as i32);
                assert!(
                    error.message.starts_with("statement.sha256:"),
                    "{}",
                    error.message
                );
            }
        }
        seen += 1;
    }
    assert_eq!(seen, 3000);
    assert_eq!(indices.len(), 2999);
}

/// A stream whose reading fails (here: a message over the size limit)
/// ends with that status only after the receipts of every statement read
/// before it: each was logged, and its caller must learn where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_its_error_after_the_receipts_before_it() {
    // Batches take 300 ms: the error is known long before the receipts.
    let vault = start(BatchConfig::default(), true).await;
    let mut client = client(&vault).await.max_encoding_message_size(64 << 20);
    let mut requests: Vec<AppendStreamRequest> = (0..20u32)
        .map(|n| AppendStreamRequest {
            request_id: u64::from(n),
            statement: Some(statement(n)),
        })
        .collect();
    let oversized = vec![7u8; evault_proto::transport::MAX_MESSAGE + 1];
    requests.push(AppendStreamRequest {
        request_id: 20,
        statement: Some(EvidenceStatement {
            sha256: sha256(&oversized).to_vec(),
            size: oversized.len() as u64,
            content: Some(oversized),
            ..statement(20)
        }),
    });
    let mut responses = client
        .append_stream(authed(tokio_stream::iter(requests)))
        .await
        .expect("stream")
        .into_inner();
    let mut receipts = 0u64;
    let end = loop {
        match responses.message().await {
            Ok(Some(response)) => {
                assert_eq!(response.request_id, receipts, "in request order");
                match response.outcome.expect("outcome") {
                    Outcome::Receipt(receipt) => {
                        verify(&vault, &receipt);
                    }
                    Outcome::Error(error) => panic!("request {receipts}: {error:?}"),
                }
                receipts += 1;
            }
            Ok(None) => panic!("the stream ended without its error"),
            Err(status) => break status,
        }
    };
    assert_eq!(receipts, 20, "every statement read before the error");
    assert_eq!(end.code(), Code::OutOfRange, "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_backlog_pushes_back_with_retry_advice() {
    let config = BatchConfig {
        max_batch: 1,
        max_batch_bytes: evault_proto::transport::MAX_ENTRY_BYTES,
        backlog: 1,
        in_flight: 1,
    };
    let vault = start(config, true).await;
    let calls = (0..6u32).map(|n| {
        let addr = vault.addr;
        tokio::spawn(async move {
            let mut client = IngestServiceClient::connect(format!("http://{addr}"))
                .await
                .expect("connect");
            client
                .append(authed(AppendRequest {
                    statement: Some(statement(n)),
                }))
                .await
        })
    });
    let mut pushed_back = 0;
    for call in calls.collect::<Vec<_>>() {
        match call.await.expect("join") {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(
                    status
                        .metadata()
                        .get("grpc-retry-pushback-ms")
                        .and_then(|v| v.to_str().ok()),
                    Some("100")
                );
                pushed_back += 1;
            }
        }
    }
    assert!(
        pushed_back > 0,
        "six concurrent appends into a backlog of one never pushed back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_over_its_rate_is_told_when_to_retry_and_its_stream_held_back() {
    let rate = RateLimit::new(20.0, 3).expect("rate");
    let vault = start_limited(BatchConfig::default(), false, Some(rate)).await;
    let mut client = client(&vault).await;
    let mut refused = None;
    for n in 0..10u32 {
        if let Err(status) = client
            .append(authed(AppendRequest {
                statement: Some(statement(n)),
            }))
            .await
        {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("ten quick appends at 20/s with a burst of 3 were never refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("dev"), "{}", status.message());
    let pushback: u64 = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("grpc-retry-pushback-ms");
    assert!((1..=50).contains(&pushback), "{pushback} ms");

    // A stream over the rate is slowed, not cut: every request is answered.
    let requests: Vec<AppendStreamRequest> = (100..130u32)
        .map(|n| AppendStreamRequest {
            request_id: u64::from(n),
            statement: Some(statement(n)),
        })
        .collect();
    let mut responses = client
        .append_stream(authed(tokio_stream::iter(requests)))
        .await
        .expect("stream")
        .into_inner();
    let mut receipts = 0;
    while let Some(response) = responses.message().await.expect("response") {
        match response.outcome.expect("outcome") {
            Outcome::Receipt(_) => receipts += 1,
            Outcome::Error(error) => panic!("request {} refused: {error:?}", response.request_id),
        }
    }
    assert_eq!(receipts, 30);
}

/// A tree serving `SequencerService` on a real port, over the embedded
/// store and an in-process signer; its address, and what keeps it alive.
async fn tree_server() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _, sequencer) = log_in(dir.path()).await;
    let tree = evault_tree::TreeGrpc::new(sequencer, evault_tree::LogReader::new(ORIGIN, store));
    let (incoming, addr) = port_zero().await;
    tokio::spawn(evault_tree::serve(
        incoming,
        tree,
        None,
        std::future::pending(),
    ));
    (format!("http://{addr}"), dir)
}

/// An evidence entry of about 60 KiB: the most labels, each long.
fn large_entry(n: u32) -> NewEntry {
    let entry = EvidenceEntry {
        digest: sha256(&n.to_be_bytes()),
        size: 4,
        received_ms: 1_700_000_000_000,
        media_type: "application/octet-stream".into(),
        name: Some(format!("large-{n}")),
        principal: "dev".into(),
        labels: (0..60)
            .map(|k| (format!("label-{k:02}"), "x".repeat(1000)))
            .collect(),
    };
    let bytes = entry.encode().expect("a valid entry");
    assert!(bytes.len() > 60_000, "entry of {} bytes", bytes.len());
    NewEntry {
        dedup_key: entry.dedup_key().expect("dedup key"),
        entry: bytes,
    }
}

/// A batch carrying more than tonic's default 4 MiB to a tree in another
/// process is sequenced: every role takes the same message size, and a
/// batch's bytes are bounded below it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_large_entries_reaches_a_remote_tree() {
    let (url, _tree) = tree_server().await;
    let remote = evault_ingest::RemoteTree::new(std::slice::from_ref(&url), ORIGIN, None)
        .expect("remote tree");
    let batch: Vec<NewEntry> = (0..80).map(large_entry).collect();
    let bytes: usize = batch.iter().map(|e| e.entry.len()).sum();
    assert!(bytes > 4 << 20, "the batch holds {bytes} bytes");
    let sequenced = SequenceBatch::sequence(&remote, batch)
        .await
        .expect("a batch over 4 MiB is sequenced");
    assert_eq!(sequenced.size, 80);
    let indices: Vec<u64> = sequenced.entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, (0..80).collect::<Vec<u64>>());

    // Through the batcher, the same entries go in batches within the
    // byte bound, and every one is answered.
    let batcher = Batcher::start(
        Arc::new(evault_ingest::RemoteTree::new(&[url], ORIGIN, None).expect("remote tree")),
        BatchConfig::default(),
    );
    let answers: Vec<_> = (100..300)
        .map(|n| batcher.submit(large_entry(n)).expect("queued"))
        .collect();
    for answer in answers {
        answer.await.expect("answered").expect("sequenced");
    }
}
