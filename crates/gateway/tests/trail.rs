//! The audit trail under `/audit/`: the tlog-tiles API of the trail's own
//! origin and the keys verifying it, beside the log's, on a real port.

use std::sync::Arc;

use evault_core::tile::{BundleId, TileId};
use evault_core::trail::{AuditRecord, audit_origin, audit_verifier_keys};
use evault_core::{LogSource, SigningKey, VerifierKey, audit_with_entries, open_checkpoint};
use evault_gateway::{TileApi, TreeProxy, audit_routes, serve, verifier_keys_routes};
use evault_proto::guard::ConnectionLimits;
use evault_signer::CheckpointSigner;
use evault_storage::embedded::EmbeddedStore;
use evault_storage::signer::SignerFile;
use evault_tree::{LogReader, NewEntry, Sequencer, TreeGrpc};

const ORIGIN: &str = "vault.example/trail-test";

/// A gateway serving `http`, and its base URL.
async fn gateway(http: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(serve(
        evault_proto::transport::incoming(listener, ConnectionLimits::default()),
        tonic::service::Routes::default(),
        http,
        None,
        evault_gateway::Cors::same_origin(),
        std::future::pending(),
    ));
    base
}

/// `GET base/path`: the status, the `cache-control` header and the body.
fn get(base: &str, path: &str) -> (u16, String, Vec<u8>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut response = agent
        .get(&format!("{base}/{path}"))
        .call()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let cache = response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.body_mut().read_to_vec().expect("body");
    (response.status().as_u16(), cache, body)
}

/// The trail over HTTP, for the core's audit.
struct Http(String);

impl Http {
    fn fetch(&self, path: &str) -> Result<Vec<u8>, String> {
        match get(&self.0, path) {
            (200, _, body) => Ok(body),
            (status, _, _) => Err(format!("HTTP status {status}")),
        }
    }
}

impl LogSource for Http {
    type Error = String;
    fn checkpoint(&mut self) -> Result<Vec<u8>, String> {
        self.fetch("checkpoint")
    }
    fn tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        self.fetch(&tile.path())
    }
    fn bundle(&mut self, bundle: BundleId) -> Result<Vec<u8>, String> {
        self.fetch(&bundle.path())
    }
}

fn record(n: u32) -> Vec<u8> {
    format!(
        "{{\"time\":\"2026-11-29T13:52:21.{n:03}Z\",\"event\":\"leader.acquired\",\
         \"principal\":null,\"log\":{{\"root\":\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\",\
         \"size\":0}},\"instance\":\"tree-{n}\"}}"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_is_served_under_audit_with_its_own_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let (key, der) = SigningKey::generate(ORIGIN).expect("key");
    let keys: Vec<VerifierKey> = vec![key.verifier_key().clone()];
    let signer = CheckpointSigner::new(
        ORIGIN,
        vec![Box::new(key)],
        SignerFile::open(&dir.path().join("log-signer")).expect("signer file"),
    )
    .expect("signer");
    let log = Arc::new(
        Sequencer::open(ORIGIN, store.clone(), signer)
            .await
            .expect("log"),
    );
    // The trail's checkpoints are signed by the log's key under the
    // trail's name.
    let trail_key = SigningKey::from_pkcs8(&audit_origin(ORIGIN), &der).expect("key");
    let trail_signer = CheckpointSigner::new(
        &audit_origin(ORIGIN),
        vec![Box::new(trail_key)],
        SignerFile::open(&dir.path().join("trail-signer")).expect("signer file"),
    )
    .expect("signer");
    let tree = TreeGrpc::from_shared(log, LogReader::new(ORIGIN, store.clone()));
    let http = TileApi::new(ORIGIN, store.clone())
        .routes()
        .merge(verifier_keys_routes(tree.clone()))
        .merge(audit_routes(ORIGIN, store.clone(), tree));
    let base = gateway(http).await;
    let trail_keys = audit_verifier_keys(ORIGIN, &keys).expect("audit keys");

    let before = base.clone();
    let expected_keys = format!("{}\n", trail_keys[0]);
    tokio::task::spawn_blocking(move || {
        let (status, _, _) = get(&before, "audit/checkpoint");
        assert_eq!(status, 404, "no trail checkpoint yet");
        let (status, cache, body) = get(&before, "audit/verifier-keys");
        assert_eq!((status, cache.as_str()), (200, "no-cache"));
        assert_eq!(String::from_utf8(body).expect("UTF-8"), expected_keys);
    })
    .await
    .expect("before the first record");

    let trail = Sequencer::open_audit_trail(ORIGIN, store.clone(), trail_signer)
        .await
        .expect("trail");
    let records: Vec<Vec<u8>> = (0..300).map(record).collect();
    let batch: Vec<NewEntry> = records
        .iter()
        .map(|entry| NewEntry {
            entry: entry.clone(),
            dedup_key: evault_core::hash::sha256(entry),
        })
        .collect();
    trail.sequence(&batch).await.expect("records sequenced");

    tokio::task::spawn_blocking(move || {
        let (status, cache, note) = get(&base, "audit/checkpoint");
        assert_eq!((status, cache.as_str()), (200, "no-cache"));
        let checkpoint = open_checkpoint(&note, &trail_keys, Some(&audit_origin(ORIGIN)))
            .expect("signed by the derived key")
            .checkpoint;
        assert_eq!(checkpoint.size, 300);
        assert!(
            open_checkpoint(&note, &keys, None).is_err(),
            "the log's own key, by its own name, does not verify the trail"
        );
        let (status, cache, _) = get(&base, "audit/tile/0/000");
        assert_eq!(
            (status, cache.as_str()),
            (200, "public, max-age=31536000, immutable")
        );
        assert_eq!(get(&base, "audit/tile/0/001.p/44").0, 200);
        assert_eq!(get(&base, "audit/tile/0/001.p/45").0, 404);
        // The trail is a log apart: the log itself is still empty.
        let (status, _, note) = get(&base, "checkpoint");
        assert_eq!(status, 200);
        let log = open_checkpoint(&note, &keys, Some(ORIGIN)).expect("log checkpoint");
        assert_eq!(log.checkpoint.size, 0);

        let mut seen = Vec::new();
        let report = audit_with_entries(
            &mut Http(format!("{base}/audit")),
            &trail_keys,
            Some(&audit_origin(ORIGIN)),
            None,
            &mut |_, _| {},
            &mut |index, entry| {
                AuditRecord::parse(entry).map_err(|e| e.to_string())?;
                seen.push((index, entry.to_vec()));
                Ok(())
            },
        )
        .expect("the trail passes a full audit");
        assert_eq!(report.checkpoint.size, 300);
        let expected: Vec<(u64, Vec<u8>)> = (0..).zip(records).collect();
        assert_eq!(seen, expected);
    })
    .await
    .expect("after the records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_keys_are_unavailable_while_tree_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    // Nothing listens on port 1.
    let tree = TreeProxy::new(&["http://127.0.0.1:1".to_string()], None).expect("proxy");
    let base = gateway(audit_routes(ORIGIN, store, tree)).await;
    tokio::task::spawn_blocking(move || {
        let (status, _, body) = get(&base, "audit/verifier-keys");
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    })
    .await
    .expect("checks");
}
