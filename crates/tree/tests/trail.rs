//! The audit trail as tree writes it: every checkpoint of the log, a change
//! of keys, the lead taken, each as a record in a second log signed by the
//! same keys under the trail's name.

use std::sync::Arc;
use std::time::Duration;

use evault_core::trail::{
    AuditRecord, CHECKPOINT_SIGNED, KEY_ADDED, KEY_REMOVED, LEADER_ACQUIRED, audit_origin,
    audit_verifier_keys,
};
use evault_core::{EvidenceEntry, SigningKey, VerifierKey, open_checkpoint};
use evault_signer::{CheckpointSigner, LogKey};
use evault_storage::LogStore;
use evault_storage::embedded::EmbeddedStore;
use evault_storage::signer::{SIGNER_FILE, SignerFile};
use evault_tree::{AuditTrail, NewEntry, Sequencer};

const ORIGIN: &str = "vault.example/trail";

fn entry(n: u32) -> NewEntry {
    let entry = EvidenceEntry {
        digest: evault_core::hash::sha256(format!("evidence {n}").as_bytes()),
        size: u64::from(n),
        received_ms: 1_795_960_341_000 + u64::from(n),
        media_type: "text/plain".into(),
        name: None,
        principal: "tester".into(),
        labels: Default::default(),
    }
    .encode()
    .expect("entry");
    NewEntry {
        dedup_key: evault_core::hash::sha256(&entry),
        entry,
    }
}

type Signer = Arc<CheckpointSigner<SignerFile>>;

/// The log and its trail, started as `evault up` starts them.
async fn start(
    dir: &std::path::Path,
    store: &EmbeddedStore,
    keys: Vec<LogKey>,
) -> Sequencer<EmbeddedStore, Signer> {
    // A restarted test's previous trail writer lets go of the signer's
    // file once it has drained its queue: wait for it, polling.
    let mut opened = SignerFile::open(&dir.join(SIGNER_FILE));
    for _ in 0..200 {
        if opened.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        opened = SignerFile::open(&dir.join(SIGNER_FILE));
    }
    let signer = Arc::new(
        CheckpointSigner::new(ORIGIN, keys, opened.expect("signer file")).expect("signer"),
    );
    let log = Sequencer::open(ORIGIN, store.clone(), Arc::clone(&signer))
        .await
        .expect("log");
    let trail = Sequencer::open_audit_trail(ORIGIN, store.clone(), signer)
        .await
        .expect("trail");
    AuditTrail::start(&log, trail, "test:1")
        .await
        .expect("start");
    log
}

/// The trail's records once its latest checkpoint covers at least
/// `count` of them, checked against `keys` renamed for the trail.
async fn records(store: &EmbeddedStore, keys: &[VerifierKey], count: u64) -> Vec<AuditRecord> {
    let origin = audit_origin(ORIGIN);
    let trail_keys = audit_verifier_keys(ORIGIN, keys).expect("keys");
    // The trail is written by a task of its own: wait for it, polling.
    for _ in 0..400 {
        if let Some(note) = store.checkpoint(&origin, None).await.expect("checkpoint") {
            let checkpoint = open_checkpoint(&note, &trail_keys, Some(&origin))
                .expect("the trail's checkpoint is signed under its own name")
                .checkpoint;
            if checkpoint.size >= count {
                let entries = store
                    .read_entries(&origin, 0, checkpoint.size)
                    .await
                    .expect("entries");
                return entries
                    .iter()
                    .map(|e| AuditRecord::parse(e).expect("a record"))
                    .collect();
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the trail never held {count} records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_checkpoint_and_every_change_of_keys_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let (a, a_der) = SigningKey::generate(ORIGIN).expect("key");
    let (b, _) = SigningKey::generate(ORIGIN).expect("key");
    let a_key = a.verifier_key().clone();
    let b_key = b.verifier_key().clone();
    let id = |k: &VerifierKey| format!("{:08x}", k.key_id());

    let log = start(dir.path(), &store, vec![Box::new(a)]).await;
    for n in 0..3 {
        log.sequence(&[entry(n)]).await.expect("sequence");
    }
    let seen = records(&store, std::slice::from_ref(&a_key), 4).await;
    let events: Vec<&str> = seen.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(events[0], LEADER_ACQUIRED);
    let signed: Vec<u64> = seen
        .iter()
        .filter(|r| r.event == CHECKPOINT_SIGNED)
        .map(|r| r.fields["size"].as_u64().expect("size"))
        .collect();
    assert_eq!(signed, [1, 2, 3], "one record per checkpoint, in order");
    let last = seen.last().expect("record");
    assert_eq!(
        last.log.size, 3,
        "a checkpoint's record pins that checkpoint"
    );
    assert_eq!(last.fields["key_ids"], serde_json::json!([id(&a_key)]));
    drop(log);

    // A restart with A and B, then with B alone: each change is recorded
    // before the first checkpoint that shows it.
    let a = SigningKey::from_pkcs8(ORIGIN, &a_der).expect("key A again");
    let log = start(dir.path(), &store, vec![Box::new(a), Box::new(b)]).await;
    log.sequence(&[entry(10)]).await.expect("sequence");
    let seen = records(&store, &[a_key.clone(), b_key.clone()], 7).await;
    let tail: Vec<(&str, Option<&str>)> = seen[4..]
        .iter()
        .map(|r| {
            (
                r.event.as_str(),
                r.fields.get("key_id").and_then(|v| v.as_str()),
            )
        })
        .collect();
    assert_eq!(
        tail,
        [
            (LEADER_ACQUIRED, None),
            (KEY_ADDED, Some(id(&b_key).as_str())),
            (CHECKPOINT_SIGNED, None),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_key_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let (a, _) = SigningKey::generate(ORIGIN).expect("key");
    let (b, b_der) = SigningKey::generate(ORIGIN).expect("key");
    let (a_key, b_key) = (a.verifier_key().clone(), b.verifier_key().clone());

    let log = start(dir.path(), &store, vec![Box::new(a), Box::new(b)]).await;
    log.sequence(&[entry(0)]).await.expect("sequence");
    records(&store, &[a_key.clone(), b_key.clone()], 2).await;
    drop(log);

    let b = SigningKey::from_pkcs8(ORIGIN, &b_der).expect("key B again");
    let log = start(dir.path(), &store, vec![Box::new(b)]).await;
    log.sequence(&[entry(1)]).await.expect("sequence");
    // Records signed by A and B, then by B alone: B verifies them all.
    let seen = records(&store, &[b_key], 5).await;
    let tail: Vec<&str> = seen[2..].iter().map(|r| r.event.as_str()).collect();
    assert_eq!(tail, [LEADER_ACQUIRED, KEY_REMOVED, CHECKPOINT_SIGNED]);
    assert_eq!(
        seen[3].fields["key_id"],
        serde_json::json!(format!("{:08x}", a_key.key_id()))
    );
}

/// Serves `tree` on a port of its own; its address.
async fn serve_tree(
    tree: evault_tree::TreeGrpc<EmbeddedStore, Signer>,
) -> evault_proto::v1::audit_service_client::AuditServiceClient<tonic::transport::Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let incoming = evault_proto::transport::incoming(
        listener,
        evault_proto::guard::ConnectionLimits::default(),
    );
    tokio::spawn(evault_tree::serve(
        incoming,
        tree,
        None,
        std::future::pending(),
    ));
    evault_proto::v1::audit_service_client::AuditServiceClient::connect(url)
        .await
        .expect("connect")
}

fn witnessed(event: &str, principal: &str, fields: &str) -> evault_proto::v1::AuditEvent {
    evault_proto::v1::AuditEvent {
        event: event.into(),
        principal: principal.into(),
        fields: fields.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_roles_record_what_they_witness_and_nothing_else() {
    use evault_proto::v1::RecordRequest;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let (key, _) = SigningKey::generate(ORIGIN).expect("key");
    let keys = vec![key.verifier_key().clone()];
    let log = Arc::new(start(dir.path(), &store, vec![Box::new(key)]).await);
    let reader = evault_tree::LogReader::new(ORIGIN, store.clone());
    let mut client = serve_tree(evault_tree::TreeGrpc::from_shared(log, reader)).await;
    let record = |events| RecordRequest {
        origin: ORIGIN.into(),
        events,
    };

    client
        .record(record(vec![
            witnessed("evidence.read", "auditor", r#"{"sha256":"ab","size":3}"#),
            witnessed("auth.denied", "", r#"{"count":7,"code":"UNAUTHENTICATED"}"#),
        ]))
        .await
        .expect("recorded");
    // Answered once recorded: the records are in the trail already.
    let records = records(&store, &keys, 0).await;
    let read = records
        .iter()
        .find(|r| r.event == "evidence.read")
        .expect("the read is in the trail when Record answers");
    assert_eq!(read.principal.as_deref(), Some("auditor"));
    assert_eq!(read.fields["size"], serde_json::Value::from(3));
    let denied = records
        .iter()
        .find(|r| r.event == "auth.denied")
        .expect("denied");
    assert_eq!(denied.principal, None, "an empty principal is null");

    for (events, want) in [
        (
            vec![witnessed("checkpoint.signed", "", r#"{"size":1}"#)],
            "is not one a caller records",
        ),
        (
            vec![witnessed("key.added", "", "{}")],
            "is not one a caller records",
        ),
        (
            vec![witnessed("evidence.read", "x", "[1,2]")],
            "not a JSON object",
        ),
        (
            vec![witnessed("evidence.read", "x", r#"{"log":{"size":0}}"#)],
            "which the trail sets itself",
        ),
        (
            vec![witnessed(
                "evidence.read",
                "x",
                &format!(r#"{{"reason":"{}"}}"#, "a".repeat(70_000)),
            )],
            "would be over",
        ),
        (vec![], "1 to 1024 events"),
    ] {
        let status = client.record(record(events)).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains(want), "{}", status.message());
    }
    let status = client
        .record(RecordRequest {
            origin: "another.example/log".into(),
            events: vec![witnessed("evidence.read", "x", "{}")],
        })
        .await
        .expect_err("another log");
    assert_eq!(status.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_does_not_write_the_trail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let (key, _) = SigningKey::generate(ORIGIN).expect("key");
    let signer = Arc::new(
        CheckpointSigner::new(
            ORIGIN,
            vec![Box::new(key)],
            SignerFile::open(&dir.path().join(SIGNER_FILE)).expect("signer file"),
        )
        .expect("signer"),
    );
    let standby = evault_tree::TreeGrpc::standby(
        ORIGIN,
        evault_tree::LogReader::new(ORIGIN, store.clone()),
        Arc::new(signer),
    );
    let mut client = serve_tree(standby).await;
    let status = client
        .record(evault_proto::v1::RecordRequest {
            origin: ORIGIN.into(),
            events: vec![witnessed("evidence.read", "x", "{}")],
        })
        .await
        .expect_err("standby");
    assert_eq!(
        status.code(),
        tonic::Code::Unavailable,
        "{}",
        status.message()
    );
}
