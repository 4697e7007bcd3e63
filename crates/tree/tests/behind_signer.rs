//! Tree never sequences on storage that does not hold what the signer
//! signed: storage behind the signer's record (a restored backup, a
//! lagging replica) and storage forked from it are refused, with nothing
//! integrated and nothing signed, until the storage is repaired; a
//! checkpoint the signer signed but whose answer was lost is stored from
//! the signer's record. On both stores (embedded, and a real PostgreSQL in
//! schemas of their own), with the signer in process, and once over gRPC
//! with the signer and tree as real servers on port 0.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use evault_core::{
    Checkpoint, EvidenceEntry, Integrator, Note, SigningKey, VerifierKey, leaf_hash,
    open_checkpoint, verify_consistency,
};
use evault_signer::{CheckpointSigner, SignRequest};
use evault_storage::embedded::EmbeddedStore;
use evault_storage::postgres::{PostgresStore, migrate};
use evault_storage::signer::{SIGNER_FILE, SignerFile};
use evault_storage::{Integration, LogStore, SignedHead, StoredEntry, TreeHead, evidence_digest};
use evault_test_support::PgSchema;
use evault_tree::{
    Divergence, LogReader, NewEntry, PublishError, Publisher, SequenceError, Sequencer,
};

const ORIGIN: &str = "vault.example/behind-signer";

/// The log's signer, shared by every sequencer of a test (the primary and
/// the restored or replicated stores), counting what it is asked to sign
/// and able to lose its next answer after signing.
#[derive(Clone)]
struct Signer {
    inner: Arc<CheckpointSigner<SignerFile>>,
    keys: Vec<VerifierKey>,
    signs: Arc<AtomicU64>,
    lose_next_answer: Arc<AtomicBool>,
    _dir: Arc<tempfile::TempDir>,
}

impl Signer {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, _) = SigningKey::generate(ORIGIN).expect("key");
        let keys = vec![key.verifier_key().clone()];
        let store = SignerFile::open(&dir.path().join(SIGNER_FILE)).expect("signer file");
        Signer {
            inner: Arc::new(
                CheckpointSigner::new(ORIGIN, vec![Box::new(key)], store).expect("signer"),
            ),
            keys,
            signs: Arc::default(),
            lose_next_answer: Arc::default(),
            _dir: Arc::new(dir),
        }
    }

    async fn record(&self) -> SignedHead {
        self.inner
            .latest(ORIGIN)
            .await
            .expect("record")
            .expect("signed")
    }

    fn signs(&self) -> u64 {
        self.signs.load(Ordering::SeqCst)
    }
}

impl Publisher for Signer {
    async fn sign(&self, request: SignRequest) -> Result<Vec<u8>, PublishError> {
        self.signs.fetch_add(1, Ordering::SeqCst);
        let note = Publisher::sign(self.inner.as_ref(), request).await?;
        if self.lose_next_answer.swap(false, Ordering::SeqCst) {
            return Err(PublishError::Unavailable(
                "injected: answer lost after signing".into(),
            ));
        }
        Ok(note)
    }

    async fn latest(&self, origin: &str) -> Result<Option<SignedHead>, PublishError> {
        Publisher::latest(self.inner.as_ref(), origin).await
    }

    async fn verifier_keys(&self, origin: &str) -> Result<Vec<String>, PublishError> {
        Publisher::verifier_keys(self.inner.as_ref(), origin).await
    }
}

/// Where a test's stores live: each call of `store` gives a new, empty
/// one (a primary, a restored backup, a replica).
trait Backend {
    type Store: LogStore + Clone;
    async fn store(&mut self) -> Self::Store;
    async fn cleanup(self);
}

#[derive(Default)]
struct Embedded(Vec<tempfile::TempDir>);

impl Backend for Embedded {
    type Store = EmbeddedStore;
    async fn store(&mut self) -> EmbeddedStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("store");
        self.0.push(dir);
        store
    }
    async fn cleanup(self) {}
}

#[derive(Default)]
struct Postgres(Vec<PgSchema>);

impl Backend for Postgres {
    type Store = PostgresStore;
    async fn store(&mut self) -> PostgresStore {
        let schema = PgSchema::create("evault_behind").await;
        migrate(&schema.url).await.expect("migrate");
        let store = PostgresStore::connect(&schema.url, 4).expect("pool");
        self.0.push(schema);
        store
    }
    async fn cleanup(self) {
        for schema in self.0 {
            schema.drop_schema().await;
        }
    }
}

/// Entries `from..to` of a history named `history`: two histories share
/// no entry.
fn entries(from: u32, to: u32, history: &str) -> Vec<NewEntry> {
    (from..to)
        .map(|n| {
            let entry = EvidenceEntry {
                digest: evault_core::hash::sha256(format!("{history} {n}").as_bytes()),
                size: u64::from(n),
                received_ms: 1_795_960_341_000,
                media_type: "text/plain".into(),
                name: None,
                principal: "tester".into(),
                labels: Default::default(),
            };
            NewEntry {
                dedup_key: entry.dedup_key().expect("dedup key"),
                entry: entry.encode().expect("entry"),
            }
        })
        .collect()
}

/// Writes `entries` after what `store` holds, without sequencer or signer:
/// what copying a replica's rows, or a store's own divergent history,
/// leaves behind.
async fn extend(store: &impl LogStore, entries: Vec<Vec<u8>>) {
    let old = store.create_log(ORIGIN).await.expect("create");
    let logged = store
        .read_entries(ORIGIN, 0, old.size)
        .await
        .expect("entries");
    let mut tree = Integrator::new();
    tree.integrate_full_tiles(logged.iter().map(|e| leaf_hash(e)));
    let stored: Vec<StoredEntry> = entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| StoredEntry {
            index: old.size + i as u64,
            leaf_hash: leaf_hash(&entry),
            dedup_key: EvidenceEntry::decode(&entry)
                .and_then(|e| e.dedup_key())
                .expect("dedup key"),
            evidence_sha256: evidence_digest(&entry),
            entry,
        })
        .collect();
    let tiles = tree.integrate_full_tiles(stored.iter().map(|e| e.leaf_hash));
    let new = TreeHead {
        size: tree.size(),
        root: tree.root(),
    };
    let batch = Integration {
        old,
        new,
        entries: &stored,
        tiles: &tiles,
    };
    store.integrate(ORIGIN, batch).await.expect("integrate");
}

/// Brings `to` up to `size` entries of `from`, with `from`'s checkpoint at
/// that size: a replica catching up, or a backup rolled forward.
async fn replicate(from: &impl LogStore, to: &impl LogStore, size: u64) {
    let have = to.create_log(ORIGIN).await.expect("create").size;
    let missing = from
        .read_entries(ORIGIN, have, size - have)
        .await
        .expect("entries");
    extend(to, missing).await;
    if let Some(note) = from
        .checkpoint(ORIGIN, Some(size))
        .await
        .expect("checkpoint")
    {
        to.publish(ORIGIN, size, &note).await.expect("publish");
    }
}

/// A primary store holding a log of 20 entries in two batches, both
/// signed.
async fn primary<B: Backend>(backend: &mut B, signer: &(impl Publisher + Clone)) -> B::Store {
    let store = backend.store().await;
    let sequencer = Sequencer::open(ORIGIN, store.clone(), signer.clone())
        .await
        .expect("open");
    for (from, to) in [(0, 10), (10, 20)] {
        sequencer
            .sequence(&entries(from, to, "signed"))
            .await
            .expect("sequence");
    }
    store
}

fn head_of(note: &[u8]) -> TreeHead {
    let checkpoint = Checkpoint::parse(Note::parse(note).expect("note").text()).expect("cp");
    TreeHead {
        size: checkpoint.size,
        root: checkpoint.root,
    }
}

async fn storage_behind_the_signer_is_refused_until_rolled_forward<B: Backend>(mut backend: B) {
    let signer = Signer::new();
    let primary = primary(&mut backend, &signer).await;
    let signed = signer.record().await;
    assert_eq!(signed.head.size, 20);

    // A backup taken at 10 entries, restored.
    let restored = backend.store().await;
    replicate(&primary, &restored, 10).await;
    let signs = signer.signs();
    let sequencer = Sequencer::open(ORIGIN, restored.clone(), signer.clone())
        .await
        .expect("opens, refusing");
    assert!(!*sequencer.sequencing().borrow(), "reports not sequencing");
    for _ in 0..2 {
        match sequencer.sequence(&entries(20, 25, "new")).await {
            Err(SequenceError::Diverged(Divergence::Behind { stored, signed: at })) => {
                assert_eq!(stored.size, 10);
                assert_eq!(at, signed.head);
            }
            other => panic!("{other:?}"),
        }
    }
    // Nothing integrated, nothing signed: the signer's record is the one
    // it had, and it was never asked for a signature.
    assert_eq!(restored.head(ORIGIN).await.expect("head").size, 10);
    assert_eq!(signer.record().await, signed);
    assert_eq!(signer.signs(), signs);

    // Rolled forward from the primary, which holds the signed head: the
    // same sequencer resumes, without a restart.
    replicate(&primary, &restored, 20).await;
    let answer = sequencer
        .sequence(&entries(20, 25, "new"))
        .await
        .expect("resumes");
    assert!(*sequencer.sequencing().borrow(), "reports sequencing again");
    assert_eq!(answer.entries[0].index, 20);
    let cp = open_checkpoint(&answer.checkpoint, &signer.keys, Some(ORIGIN))
        .expect("verifies")
        .checkpoint;
    let (proof, _) = LogReader::new(ORIGIN, restored.clone())
        .consistency(20, cp.size)
        .await
        .expect("proof");
    verify_consistency(
        20,
        cp.size,
        &proof,
        signed.head.root.as_bytes(),
        cp.root.as_bytes(),
    )
    .expect("the new checkpoint extends the one signed before the restore");
    backend.cleanup().await;
}

async fn storage_forked_from_the_signer_is_refused<B: Backend>(mut backend: B) {
    let signer = Signer::new();
    let primary = primary(&mut backend, &signer).await;
    let signed = signer.record().await;
    // Replicas that share the first 10 entries and then hold others: as
    // many as were signed (the fork is at the signed size), and more.
    for size in [20, 30] {
        let forked = backend.store().await;
        replicate(&primary, &forked, 10).await;
        extend(
            &forked,
            entries(10, size, "forked")
                .into_iter()
                .map(|e| e.entry)
                .collect(),
        )
        .await;
        let signs = signer.signs();
        let sequencer = Sequencer::open(ORIGIN, forked.clone(), signer.clone())
            .await
            .expect("opens, refusing");
        assert!(!*sequencer.sequencing().borrow());
        match sequencer.sequence(&entries(40, 45, "new")).await {
            Err(SequenceError::Diverged(Divergence::Forked {
                stored_root,
                stored_size,
                signed: at,
            })) => {
                assert_eq!(stored_size, u64::from(size));
                assert_eq!(at, signed.head);
                assert_ne!(stored_root, signed.head.root);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            forked.head(ORIGIN).await.expect("head").size,
            u64::from(size)
        );
        assert_eq!(signer.record().await, signed);
        assert_eq!(signer.signs(), signs);
    }
    backend.cleanup().await;
}

async fn a_lost_answer_is_repaired_from_the_signers_record<B: Backend>(mut backend: B) {
    let signer = Signer::new();
    let store = primary(&mut backend, &signer).await;
    let sequencer = Sequencer::open(ORIGIN, store.clone(), signer.clone())
        .await
        .expect("open");
    signer.lose_next_answer.store(true, Ordering::SeqCst);
    assert!(matches!(
        sequencer.sequence(&entries(20, 30, "signed")).await,
        Err(SequenceError::Publish(PublishError::Unavailable(_)))
    ));
    let signed = signer.record().await;
    assert_eq!(signed.head.size, 30, "signed and recorded");
    let latest = store.checkpoint(ORIGIN, None).await.expect("latest");
    assert_eq!(head_of(&latest.expect("checkpoint")).size, 20, "not stored");

    // Opening again stores the signer's checkpoint rather than asking for
    // another signature.
    drop(sequencer);
    let signs = signer.signs();
    let sequencer = Sequencer::open(ORIGIN, store.clone(), signer.clone())
        .await
        .expect("reopen");
    assert_eq!(signer.signs(), signs, "nothing asked to be signed");
    assert!(*sequencer.sequencing().borrow());
    assert_eq!(
        store.checkpoint(ORIGIN, None).await.expect("latest"),
        Some(signed.checkpoint)
    );
    let answer = sequencer
        .sequence(&entries(30, 31, "signed"))
        .await
        .expect("goes on");
    assert_eq!(answer.entries[0].index, 30);
    backend.cleanup().await;
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Embedded::default()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Postgres::default()).await;
                }
            )*
        }
    };
}

on_both_stores!(
    storage_behind_the_signer_is_refused_until_rolled_forward,
    storage_forked_from_the_signer_is_refused,
    a_lost_answer_is_repaired_from_the_signers_record,
);

/// A running sequencer whose database is restored from an older backup
/// underneath it (or fails over to a lagging replica) finds the log moved,
/// and then compares with the signer before it integrates anything: it
/// refuses, rather than sequencing a second tree at sizes already signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_rolled_back_under_a_running_sequencer_is_refused() {
    let signer = Signer::new();
    let schema = PgSchema::create("evault_behind").await;
    migrate(&schema.url).await.expect("migrate");
    let store = PostgresStore::connect(&schema.url, 4).expect("pool");
    let sequencer = Sequencer::open(ORIGIN, store.clone(), signer.clone())
        .await
        .expect("open");
    let at_ten = sequencer
        .sequence(&entries(0, 10, "signed"))
        .await
        .expect("sequence");
    sequencer
        .sequence(&entries(10, 20, "signed"))
        .await
        .expect("sequence");
    let signed = signer.record().await;

    // What restoring the database as it was at 10 entries leaves.
    let ten = head_of(&at_ten.checkpoint);
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let tx_sql = format!(
        "BEGIN;
         DELETE FROM checkpoints WHERE size > 10;
         DELETE FROM entries WHERE idx >= 10;
         UPDATE tree_heads SET size = 10, root = '\\x{}';
         COMMIT;",
        evault_core::hash::hex(ten.root.as_bytes())
    );
    client.batch_execute(&tx_sql).await.expect("roll back");

    let signs = signer.signs();
    assert!(matches!(
        sequencer.sequence(&entries(20, 25, "new")).await,
        Err(SequenceError::NotLeader(_))
    ));
    match sequencer.sequence(&entries(20, 25, "new")).await {
        Err(SequenceError::Diverged(Divergence::Behind { stored, signed: at })) => {
            assert_eq!(stored, ten);
            assert_eq!(at, signed.head);
        }
        other => panic!("{other:?}"),
    }
    assert!(!*sequencer.sequencing().borrow());
    assert_eq!(store.head(ORIGIN).await.expect("head"), ten);
    assert_eq!(signer.record().await, signed);
    assert_eq!(signer.signs(), signs);
    drop((client, store));
    schema.drop_schema().await;
}

/// Over gRPC, with the signer and tree as real servers: tree learns the
/// signer's record with `GetSignedHead`, answers `Sequence` with
/// `FAILED_PRECONDITION` while its storage is behind, reports
/// `SequencerService` `NOT_SERVING` (reads still `SERVING`), and serves
/// again once the storage is rolled forward.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_grpc_tree_refuses_and_reports_not_serving_while_behind() {
    use evault_proto::v1::sequencer_service_client::SequencerServiceClient;
    use evault_proto::v1::{SequenceEntry, SequenceRequest};
    use evault_test_support::health::{ServingStatus, reaches};

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    async fn listen() -> (std::net::SocketAddr, evault_proto::guard::GuardedIncoming) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let limits = evault_proto::guard::ConnectionLimits::default();
        (addr, evault_proto::transport::incoming(listener, limits))
    }

    let signer_dir = tempfile::tempdir().expect("tempdir");
    let (key, _) = SigningKey::generate(ORIGIN).expect("key");
    let keys = vec![key.verifier_key().clone()];
    let signer_store = SignerFile::open(&signer_dir.path().join(SIGNER_FILE)).expect("file");
    let signer = CheckpointSigner::new(ORIGIN, vec![Box::new(key)], signer_store).expect("signer");
    let (signer_addr, incoming) = listen().await;
    let signer_server = tokio::spawn(evault_signer::serve(
        incoming,
        signer,
        None,
        until_stopped(stopped.clone()),
    ));
    let remote = evault_tree::RemoteSigner::new(&format!("http://{signer_addr}"), None)
        .expect("remote signer");

    let mut backend = Embedded::default();
    let primary = primary(&mut backend, &remote).await;
    let signed = remote
        .latest(ORIGIN)
        .await
        .expect("GetSignedHead")
        .expect("signed");
    assert_eq!(signed.head.size, 20);
    open_checkpoint(&signed.checkpoint, &keys, Some(ORIGIN)).expect("the signed checkpoint");

    // Tree, on a backup restored at 10 entries.
    let restored = backend.store().await;
    replicate(&primary, &restored, 10).await;
    let sequencer = Sequencer::open(ORIGIN, restored.clone(), remote.clone())
        .await
        .expect("opens, refusing");
    let tree = evault_tree::TreeGrpc::new(sequencer, LogReader::new(ORIGIN, restored.clone()));
    let (tree_addr, incoming) = listen().await;
    let tree_server = tokio::spawn(evault_tree::serve(
        incoming,
        tree,
        None,
        until_stopped(stopped.clone()),
    ));
    let tree_url = format!("http://{tree_addr}");
    let sequencer_service = "evault.v1.SequencerService";
    reaches(&tree_url, sequencer_service, ServingStatus::NotServing).await;
    reaches(&tree_url, "evault.v1.TreeService", ServingStatus::Serving).await;
    reaches(&tree_url, "", ServingStatus::Serving).await;

    let mut sequencing = SequencerServiceClient::connect(tree_url.clone())
        .await
        .expect("connect");
    let request = || SequenceRequest {
        origin: ORIGIN.into(),
        entries: entries(20, 25, "new")
            .into_iter()
            .map(|e| SequenceEntry {
                entry: e.entry,
                dedup_key: e.dedup_key.to_vec(),
            })
            .collect(),
    };
    let refused = sequencing
        .sequence(request())
        .await
        .expect_err("behind the signer");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("size 10") && refused.message().contains("size 20"),
        "{}",
        refused.message()
    );
    assert_eq!(restored.head(ORIGIN).await.expect("head").size, 10);
    assert_eq!(
        remote.latest(ORIGIN).await.expect("record"),
        Some(signed.clone()),
        "nothing signed"
    );

    replicate(&primary, &restored, 20).await;
    let answer = sequencing
        .sequence(request())
        .await
        .expect("resumes")
        .into_inner();
    assert_eq!(answer.entries[0].index, 20);
    reaches(&tree_url, sequencer_service, ServingStatus::Serving).await;

    let _ = stop.send(true);
    tree_server.await.expect("join").expect("tree");
    signer_server.await.expect("join").expect("signer");
    backend.cleanup().await;
}
