//! The gateway on a real port, in front of real ingest, tree and signer:
//! in process (as `evault up` runs it) and forwarding to separate servers
//! (as `evault serve gateway` runs it). Appends go through it, the
//! tlog-tiles API serves the log with the right headers, and a full audit
//! of the log over HTTP passes. Evidence read through it is recorded in
//! the audit trail: in process, and across the processes' hop from ingest
//! to the tree's `AuditService`.

use std::sync::Arc;
use std::time::Duration;

use evault_auth::{AuthLayer, JwtVerifier, LocalIssuer, Policy, Scope};
use evault_core::hash::sha256;
use evault_core::tile::{BundleId, TileId, full_tile_root};
use evault_core::{Hash, LogSource, Receipt, SigningKey, VerifierKey, audit};
use evault_gateway::{EvidenceProxy, IngestProxy, TileApi, TreeProxy, serve, verifier_keys_routes};
use evault_ingest::{BatchConfig, Batcher, EvidenceGrpc, IngestGrpc};
use evault_proto::guard::{ConnectionLimits, GuardedIncoming};
use evault_proto::v1::evidence_service_client::EvidenceServiceClient;
use evault_proto::v1::evidence_service_server::EvidenceServiceServer;
use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::ingest_service_server::IngestServiceServer;
use evault_proto::v1::tree_service_client::TreeServiceClient;
use evault_proto::v1::tree_service_server::TreeServiceServer;
use evault_proto::v1::{
    AppendRequest, AppendStreamRequest, EvidenceStatement, GetCheckpointRequest,
    GetEvidenceRequest, TreeServiceGetVerifierKeysRequest,
};
use evault_signer::CheckpointSigner;
use evault_storage::embedded::EmbeddedStore;
use evault_storage::signer::{SIGNER_FILE, SignerFile};
use evault_tree::{AuditTrail, LogReader, RemoteAudit, Sequencer, TreeGrpc};
use tonic::Request;

const ORIGIN: &str = "vault.example/gateway-test";
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

struct Vault {
    _dir: tempfile::TempDir,
    keys: Vec<VerifierKey>,
    base: String,
    store: EmbeddedStore,
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, format!("http://{addr}"))
}

/// The connections of `listener`, within the default limits.
fn incoming(listener: tokio::net::TcpListener) -> GuardedIncoming {
    evault_proto::transport::incoming(listener, ConnectionLimits::default())
}

/// Starts the roles; with `separate`, tree and ingest get their own ports
/// and the gateway forwards to them.
async fn start(separate: bool) -> Vault {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let (key, _) = SigningKey::generate(ORIGIN).expect("key");
    let keys = vec![key.verifier_key().clone()];
    let signer_store = SignerFile::open(&dir.path().join(SIGNER_FILE)).expect("signer file");
    let signer =
        Arc::new(CheckpointSigner::new(ORIGIN, vec![Box::new(key)], signer_store).expect("signer"));
    let sequencer = Arc::new(
        Sequencer::open(ORIGIN, store.clone(), Arc::clone(&signer))
            .await
            .expect("tree"),
    );
    let trail = AuditTrail::start(
        &sequencer,
        Sequencer::open_audit_trail(ORIGIN, store.clone(), signer)
            .await
            .expect("trail"),
        "gateway-test",
    )
    .await
    .expect("trail");
    let batcher = Batcher::start(Arc::clone(&sequencer), BatchConfig::default());
    let ingest = IngestGrpc::new(auth().await, None, store.clone(), batcher);
    let tree = TreeGrpc::from_shared(sequencer, LogReader::new(ORIGIN, store.clone()));
    let tiles = TileApi::new(ORIGIN, store.clone()).routes();
    let (grpc, tiles) = if separate {
        let (tree_listener, tree_url) = listener().await;
        tokio::spawn(evault_tree::serve(
            incoming(tree_listener),
            tree,
            None,
            std::future::pending(),
        ));
        let (ingest_listener, ingest_url) = listener().await;
        let audit = RemoteAudit::new(std::slice::from_ref(&tree_url), ORIGIN, None).expect("audit");
        tokio::spawn(evault_ingest::serve(
            incoming(ingest_listener),
            ingest,
            EvidenceGrpc::new(auth().await, store.clone(), Arc::new(audit)),
            None,
            std::future::pending(),
        ));
        let tree = TreeProxy::new(&[tree_url], None).expect("proxy");
        (
            tonic::service::Routes::new(IngestServiceServer::new(
                IngestProxy::new(&ingest_url, None).expect("proxy"),
            ))
            .add_service(EvidenceServiceServer::new(
                EvidenceProxy::new(&ingest_url, None).expect("proxy"),
            ))
            .add_service(TreeServiceServer::new(tree.clone())),
            tiles.merge(verifier_keys_routes(tree)),
        )
    } else {
        let evidence = EvidenceGrpc::new(auth().await, store.clone(), Arc::new(trail));
        (
            tonic::service::Routes::new(ingest.into_service())
                .add_service(evidence.into_service())
                .add_service(TreeServiceServer::new(tree.clone())),
            tiles.merge(verifier_keys_routes(tree)),
        )
    };
    let (gateway_listener, base) = listener().await;
    tokio::spawn(serve(
        incoming(gateway_listener),
        grpc,
        tiles,
        None,
        evault_gateway::Cors::same_origin(),
        std::future::pending(),
    ));
    Vault {
        _dir: dir,
        keys,
        base,
        store,
    }
}

fn statement(n: u32) -> EvidenceStatement {
    let content = format!("gateway evidence {n}");
    EvidenceStatement {
        sha256: sha256(content.as_bytes()).to_vec(),
        size: content.len() as u64,
        media_type: "text/plain".into(),
        name: String::new(),
        labels: vec![],
        content: None,
    }
}

fn authed<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", issuer().1).parse().expect("header"),
    );
    request
}

/// The log over HTTP, for the core's audit.
struct Http(String);

impl Http {
    fn get(&self, path: &str) -> Result<(Vec<u8>, String, String), String> {
        let mut response = ureq::get(&format!("{}/{path}", self.0))
            .call()
            .map_err(|e| e.to_string())?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (content_type, cache) = (header("content-type"), header("cache-control"));
        let body = response
            .body_mut()
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok((body, content_type, cache))
    }
}

impl LogSource for Http {
    type Error = String;
    fn checkpoint(&mut self) -> Result<Vec<u8>, String> {
        self.get("checkpoint").map(|r| r.0)
    }
    fn tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        self.get(&tile.path()).map(|r| r.0)
    }
    fn bundle(&mut self, bundle: BundleId) -> Result<Vec<u8>, String> {
        self.get(&bundle.path()).map(|r| r.0)
    }
}

async fn appends_go_through_and_the_log_is_served_as_tiles(separate: bool) {
    let vault = start(separate).await;
    let mut ingest = IngestServiceClient::connect(vault.base.clone())
        .await
        .expect("connect");
    let answer = ingest
        .append(authed(AppendRequest {
            statement: Some(statement(0)),
        }))
        .await
        .expect("append through the gateway")
        .into_inner();
    let wire = answer.receipt.expect("receipt");
    let receipt = Receipt {
        extra: Some(wire.entry),
        index: wire.index,
        proof: wire
            .inclusion_proof
            .iter()
            .map(|h| Hash::from_slice(h).expect("hash"))
            .collect(),
        checkpoint: wire.checkpoint,
    };
    receipt
        .verify(&vault.keys, Some(ORIGIN))
        .expect("receipt verifies");

    let requests: Vec<AppendStreamRequest> = (1..600u32)
        .map(|n| AppendStreamRequest {
            request_id: u64::from(n),
            statement: Some(statement(n)),
        })
        .collect();
    let mut responses = ingest
        .append_stream(authed(tokio_stream::iter(requests)))
        .await
        .expect("stream through the gateway")
        .into_inner();
    let mut answered = 0;
    while let Some(r) = responses.message().await.expect("response") {
        assert!(matches!(
            r.outcome,
            Some(evault_proto::v1::append_stream_response::Outcome::Receipt(
                _
            ))
        ));
        answered += 1;
    }
    assert_eq!(answered, 599);

    let mut tree = TreeServiceClient::connect(vault.base.clone())
        .await
        .expect("connect");
    let latest = tree
        .get_checkpoint(GetCheckpointRequest {})
        .await
        .expect("checkpoint")
        .into_inner();
    assert_eq!(latest.checkpoint.expect("checkpoint").size, 600);
    let listed = tree
        .get_verifier_keys(TreeServiceGetVerifierKeysRequest {})
        .await
        .expect("verifier keys")
        .into_inner()
        .verifier_keys;
    let expected: Vec<String> = vault.keys.iter().map(ToString::to_string).collect();
    assert_eq!(listed, expected);

    let base = vault.base.clone();
    let keys = vault.keys.clone();
    tokio::task::spawn_blocking(move || {
        let http = Http(base);
        let (note, content_type, cache) = http.get("checkpoint").expect("checkpoint");
        assert_eq!(content_type, "text/plain; charset=utf-8");
        assert_eq!(cache, "no-cache");
        evault_core::open_checkpoint(&note, &keys, Some(ORIGIN)).expect("checkpoint verifies");
        let (listed, content_type, cache) = http.get("verifier-keys").expect("verifier keys");
        assert_eq!(content_type, "text/plain; charset=utf-8");
        assert_eq!(cache, "no-cache");
        assert_eq!(
            String::from_utf8(listed).expect("UTF-8"),
            format!("{}\n", keys[0])
        );
        for path in [
            "tile/0/000",
            "tile/entries/001",
            "tile/0/002.p/88",
            "tile/0/001.p/3",
        ] {
            let (_, content_type, cache) = http.get(path).expect(path);
            assert_eq!(content_type, "application/octet-stream", "{path}");
            assert_eq!(cache, "public, max-age=31536000, immutable", "{path}");
        }
        for missing in [
            "tile/0/002.p/89",
            "tile/0/003.p/1",
            "tile/entries/002",
            "tile/0/0",
            "tile/9/000",
        ] {
            let error = http.get(missing).expect_err(missing);
            assert!(error.contains("404"), "{missing}: {error}");
        }
        // Storage keeps full tiles only; partial tiles are derived and
        // must be what the tree's hashes say: a narrower width is a prefix,
        // and the level-1 tile holds the roots of the full tiles below.
        let body = |path: &str| http.get(path).expect(path).0;
        let full = [body("tile/0/000"), body("tile/0/001")];
        assert_eq!(body("tile/0/000.p/5"), full[0][..5 * 32]);
        let edge = body("tile/0/002.p/88");
        assert_eq!(edge.len(), 88 * 32);
        assert_eq!(body("tile/0/002.p/10"), edge[..10 * 32]);
        let roots: Vec<u8> = full
            .iter()
            .flat_map(|t| full_tile_root(t).expect("full tile").0)
            .collect();
        assert_eq!(body("tile/1/000.p/2"), roots);
        assert_eq!(body("tile/1/000.p/1"), roots[..32]);
        let report = audit(
            &mut Http(http.0.clone()),
            &keys,
            Some(ORIGIN),
            None,
            &mut |_, _| {},
        )
        .expect("audit");
        assert_eq!(report.checkpoint.size, 600);
        assert_eq!((report.bundles, report.tiles), (3, 4));
    })
    .await
    .expect("http checks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_gateway_serves_appends_and_tiles() {
    appends_go_through_and_the_log_is_served_as_tiles(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_gateway_serves_appends_and_tiles() {
    appends_go_through_and_the_log_is_served_as_tiles(true).await;
}

/// Uploads evidence through the gateway, reads it back through it, and
/// finds the read in the audit trail, recorded before the bytes came.
async fn evidence_read_through_the_gateway_is_audited(separate: bool) {
    use evault_storage::LogStore as _;
    let vault = start(separate).await;
    let content = format!("evidence read through a gateway, separate={separate}");
    let mut s = statement(1);
    s.content = Some(content.clone().into_bytes());
    s.sha256 = sha256(content.as_bytes()).to_vec();
    s.size = content.len() as u64;
    let channel = tonic::transport::Channel::from_shared(vault.base.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    IngestServiceClient::new(channel.clone())
        .append(authed(AppendRequest { statement: Some(s) }))
        .await
        .expect("append with upload");
    let read = EvidenceServiceClient::new(channel)
        .get_evidence(authed(GetEvidenceRequest {
            sha256: sha256(content.as_bytes()).to_vec(),
        }))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(read.content, content.as_bytes());

    let trail = evault_core::trail::audit_origin(ORIGIN);
    let size = vault.store.head(&trail).await.expect("trail head").size;
    let records: Vec<evault_core::trail::AuditRecord> = vault
        .store
        .read_entries(&trail, 0, size)
        .await
        .expect("trail entries")
        .iter()
        .map(|e| evault_core::trail::AuditRecord::parse(e).expect("record"))
        .collect();
    let reads: Vec<_> = records
        .iter()
        .filter(|r| r.event == evault_core::trail::EVIDENCE_READ)
        .collect();
    assert_eq!(reads.len(), 1, "{records:?}");
    assert_eq!(reads[0].principal.as_deref(), Some("dev"));
    assert_eq!(
        reads[0].fields["sha256"],
        serde_json::Value::from(evault_core::hash::hex(&sha256(content.as_bytes())))
    );
    assert!(reads[0].log.size >= 1, "the read pins the log's head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_read_in_process_is_audited() {
    evidence_read_through_the_gateway_is_audited(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_read_across_processes_is_audited_by_the_tree() {
    evidence_read_through_the_gateway_is_audited(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_reports_health() {
    let vault = start(false).await;
    let channel = tonic::transport::Channel::from_shared(vault.base.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "evault.v1.IngestService", "evault.v1.TreeService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("check")
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
    }
}

/// An HTTP request for a path no route serves is HTTP's 404, not gRPC's
/// empty 200 that a cache would keep; a gRPC call to a service not served
/// stays `UNIMPLEMENTED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_and_unknown_services_unimplemented() {
    let vault = start(false).await;
    let base = vault.base.clone();
    tokio::task::spawn_blocking(move || {
        let http = Http(base);
        // `/` is the web UI's page (tests/web.rs).
        for path in [
            "index.htm",
            "nope",
            "evault.v1.Nope/Get",
            "tile",
            "checkpoint/x",
        ] {
            let error = http.get(path).expect_err(path);
            assert!(error.contains("404"), "/{path}: {error}");
        }
        http.get("checkpoint").expect("a known route still answers");
    })
    .await
    .expect("http checks");

    let channel = tonic::transport::Channel::from_shared(vault.base.clone())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let status = grpc
        .unary(
            Request::new(GetCheckpointRequest {}),
            tonic::codegen::http::uri::PathAndQuery::from_static("/evault.v1.Nope/Get"),
            tonic_prost::ProstCodec::<GetCheckpointRequest, GetCheckpointRequest>::default(),
        )
        .await
        .expect_err("no such service");
    assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
}
