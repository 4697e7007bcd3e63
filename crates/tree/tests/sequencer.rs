//! The sequencer on both stores (embedded, and a real PostgreSQL in a
//! schema of its own), with the signer in process. After every step every
//! receipt handed out is verified again, and every checkpoint is checked to
//! extend the previous one. Faults are injected around the commit and
//! around signing, of both kinds: failed with nothing persisted, and failed
//! although persisted. The log must never fork and never lose an entry it
//! acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use evault_core::{
    Checkpoint, EvidenceEntry, Hash, Receipt, SigningKey, VerifierKey, open_checkpoint,
    verify_consistency,
};
use evault_signer::{CheckpointSigner, SignRequest};
use evault_storage::embedded::EmbeddedStore;
use evault_storage::postgres::{PostgresStore, migrate};
use evault_storage::signer::{SIGNER_FILE, SignerFile};
use evault_storage::{Integration, LogStore, Result as StoreResult, StorageError, TreeHead};
use evault_tree::{
    LogReader, NewEntry, PublishError, Publisher, SequenceError, SequencedBatch, Sequencer,
};

const ORIGIN: &str = "vault.example/tree-test";

/// A store in `schema`, migrated from empty.
async fn postgres_store(schema: &evault_test_support::PgSchema) -> PostgresStore {
    migrate(&schema.url).await.expect("migrate");
    PostgresStore::connect(&schema.url, 8).expect("pool")
}

/// A store that can be told to fail its next integration, before or after
/// committing it, and that counts the entries and full tiles read from it.
#[derive(Clone)]
struct Faulty<S> {
    inner: S,
    fail_before: Arc<AtomicBool>,
    fail_after: Arc<AtomicBool>,
    /// Loads of the log (`create_log`, its first read) to fail from now.
    fail_loads: Arc<AtomicU64>,
    entries_read: Arc<AtomicU64>,
    full_tiles_read: Arc<AtomicU64>,
    dedup_lookups: Arc<AtomicU64>,
}

impl<S: LogStore + Clone> Faulty<S> {
    fn new(inner: S) -> Self {
        Faulty {
            inner,
            fail_before: Arc::new(AtomicBool::new(false)),
            fail_after: Arc::new(AtomicBool::new(false)),
            fail_loads: Arc::new(AtomicU64::new(0)),
            entries_read: Arc::new(AtomicU64::new(0)),
            full_tiles_read: Arc::new(AtomicU64::new(0)),
            dedup_lookups: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Entries and full tiles read since the last call.
    fn reads(&self) -> (u64, u64) {
        (
            self.entries_read.swap(0, Ordering::SeqCst),
            self.full_tiles_read.swap(0, Ordering::SeqCst),
        )
    }
}

impl<S: LogStore> LogStore for Faulty<S> {
    async fn create_log(&self, origin: &str) -> StoreResult<TreeHead> {
        let failing = self
            .fail_loads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StorageError::Unavailable(
                "injected: database unreachable".into(),
            ));
        }
        self.inner.create_log(origin).await
    }
    async fn head(&self, origin: &str) -> StoreResult<TreeHead> {
        self.inner.head(origin).await
    }
    async fn integrate(&self, origin: &str, batch: Integration<'_>) -> StoreResult<()> {
        if self.fail_before.swap(false, Ordering::SeqCst) {
            return Err(StorageError::Unavailable(
                "injected: connection lost before commit".into(),
            ));
        }
        self.inner.integrate(origin, batch).await?;
        if self.fail_after.swap(false, Ordering::SeqCst) {
            return Err(StorageError::Unavailable(
                "injected: connection lost after commit".into(),
            ));
        }
        Ok(())
    }
    async fn publish(&self, origin: &str, size: u64, checkpoint: &[u8]) -> StoreResult<()> {
        self.inner.publish(origin, size, checkpoint).await
    }
    async fn checkpoint(&self, origin: &str, size: Option<u64>) -> StoreResult<Option<Vec<u8>>> {
        self.inner.checkpoint(origin, size).await
    }
    async fn read_full_tiles(
        &self,
        origin: &str,
        positions: &[(u8, u64)],
    ) -> StoreResult<Vec<Vec<u8>>> {
        self.full_tiles_read
            .fetch_add(positions.len() as u64, Ordering::SeqCst);
        self.inner.read_full_tiles(origin, positions).await
    }
    async fn read_entries(
        &self,
        origin: &str,
        start: u64,
        count: u64,
    ) -> StoreResult<Vec<Vec<u8>>> {
        self.entries_read.fetch_add(count, Ordering::SeqCst);
        self.inner.read_entries(origin, start, count).await
    }
    async fn find_dedup(&self, origin: &str, keys: &[[u8; 32]]) -> StoreResult<Vec<Option<u64>>> {
        self.dedup_lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.find_dedup(origin, keys).await
    }
    async fn find_leaf(&self, origin: &str, leaf: Hash) -> StoreResult<Option<u64>> {
        self.inner.find_leaf(origin, leaf).await
    }
    async fn find_evidence(
        &self,
        origin: &str,
        sha256: [u8; 32],
        from: u64,
        limit: u32,
    ) -> StoreResult<Vec<u64>> {
        self.inner.find_evidence(origin, sha256, from, limit).await
    }
    async fn applied_migrations(&self) -> StoreResult<Vec<evault_storage::AppliedMigration>> {
        self.inner.applied_migrations().await
    }
}

/// A signer that can be told to fail its next request, before or after
/// signing and recording it.
#[derive(Clone)]
struct FlakySigner {
    inner: Arc<CheckpointSigner<SignerFile>>,
    fail_before: Arc<AtomicBool>,
    fail_after: Arc<AtomicBool>,
}

impl Publisher for FlakySigner {
    async fn sign(&self, request: SignRequest) -> Result<Vec<u8>, PublishError> {
        if self.fail_before.swap(false, Ordering::SeqCst) {
            return Err(PublishError::Unavailable(
                "injected: signer unreachable".into(),
            ));
        }
        let note = Publisher::sign(self.inner.as_ref(), request).await?;
        if self.fail_after.swap(false, Ordering::SeqCst) {
            return Err(PublishError::Unavailable(
                "injected: answer lost after signing".into(),
            ));
        }
        Ok(note)
    }

    async fn latest(
        &self,
        origin: &str,
    ) -> Result<Option<evault_storage::SignedHead>, PublishError> {
        Publisher::latest(self.inner.as_ref(), origin).await
    }

    async fn verifier_keys(&self, origin: &str) -> Result<Vec<String>, PublishError> {
        Publisher::verifier_keys(self.inner.as_ref(), origin).await
    }
}

/// Everything a test drives, and everything it has been told.
struct Harness<S: LogStore + Clone> {
    store: Faulty<S>,
    signer: FlakySigner,
    keys: Vec<VerifierKey>,
    sequencer: Sequencer<Faulty<S>, FlakySigner>,
    /// Receipts acknowledged so far: (receipt, entry).
    receipts: Vec<Receipt>,
    /// Checkpoints seen, in order.
    checkpoints: Vec<Checkpoint>,
    next: u32,
}

fn evidence_entry(n: u32) -> Vec<u8> {
    EvidenceEntry {
        digest: evault_core::hash::sha256(format!("evidence {n}").as_bytes()),
        size: u64::from(n),
        received_ms: 1_795_960_341_000 + u64::from(n),
        media_type: "text/plain".into(),
        name: Some(format!("file-{n}.txt")),
        principal: "tester".into(),
        labels: Default::default(),
    }
    .encode()
    .expect("entry")
}

fn key_of(n: u32) -> [u8; 32] {
    evault_core::hash::sha256(format!("dedup {n}").as_bytes())
}

impl<S: LogStore + Clone> Harness<S> {
    async fn new(store: S, signer_dir: &std::path::Path) -> Self {
        let (key, _) = SigningKey::generate(ORIGIN).expect("key");
        let keys = vec![key.verifier_key().clone()];
        let signer = FlakySigner {
            inner: Arc::new(
                CheckpointSigner::new(
                    ORIGIN,
                    vec![Box::new(key)],
                    SignerFile::open(&signer_dir.join(SIGNER_FILE)).expect("signer store"),
                )
                .expect("signer"),
            ),
            fail_before: Arc::new(AtomicBool::new(false)),
            fail_after: Arc::new(AtomicBool::new(false)),
        };
        let store = Faulty::new(store);
        let sequencer = Sequencer::open(ORIGIN, store.clone(), signer.clone())
            .await
            .expect("open");
        let mut harness = Harness {
            store,
            signer,
            keys,
            sequencer,
            receipts: vec![],
            checkpoints: vec![],
            next: 0,
        };
        let first = LogReader::new(ORIGIN, harness.store.clone())
            .checkpoint(0)
            .await
            .expect("empty checkpoint");
        harness.observe(&first.note).await;
        harness
    }

    fn batch(&mut self, n: u32) -> Vec<NewEntry> {
        (0..n)
            .map(|_| {
                self.next += 1;
                NewEntry {
                    entry: evidence_entry(self.next),
                    dedup_key: key_of(self.next),
                }
            })
            .collect()
    }

    /// Sequences a batch of `n` new entries and acknowledges it.
    async fn log(&mut self, n: u32) {
        let batch = self.batch(n);
        let answer = self.sequencer.sequence(&batch).await.expect("sequence");
        self.acknowledge(&batch, answer).await;
    }

    /// Verifies a checkpoint and that it extends the previous one.
    async fn observe(&mut self, note: &[u8]) {
        let cp = open_checkpoint(note, &self.keys, Some(ORIGIN))
            .expect("checkpoint verifies")
            .checkpoint;
        if let Some(prev) = self.checkpoints.last() {
            assert!(
                cp.size >= prev.size,
                "checkpoint shrank from {} to {}",
                prev.size,
                cp.size
            );
            if prev.size > 0 {
                let reader = LogReader::new(ORIGIN, self.store.clone());
                let (proof, _) = reader
                    .consistency(prev.size, cp.size)
                    .await
                    .expect("consistency proof");
                verify_consistency(
                    prev.size,
                    cp.size,
                    &proof,
                    prev.root.as_bytes(),
                    cp.root.as_bytes(),
                )
                .expect("checkpoint extends the previous one");
            }
        }
        self.checkpoints.push(cp);
    }

    /// Records an acknowledged batch's receipts and re-verifies every
    /// receipt ever acknowledged, against its own checkpoint and against
    /// the latest one.
    async fn acknowledge(&mut self, batch: &[NewEntry], answer: SequencedBatch) {
        self.observe(&answer.checkpoint).await;
        assert_eq!(answer.entries.len(), batch.len());
        for (sent, got) in batch.iter().zip(&answer.entries) {
            if !got.duplicate {
                assert_eq!(got.entry, sent.entry);
            }
            self.receipts.push(Receipt {
                extra: Some(got.entry.clone()),
                index: got.index,
                proof: got.proof.clone(),
                checkpoint: answer.checkpoint.clone(),
            });
        }
        self.reverify().await;
    }

    async fn reverify(&self) {
        let reader = LogReader::new(ORIGIN, self.store.clone());
        let latest = self.checkpoints.last().expect("a checkpoint").size;
        for receipt in &self.receipts {
            receipt
                .verify(&self.keys, Some(ORIGIN))
                .expect("receipt verifies");
            let (proof, published) = reader
                .inclusion(receipt.index, latest)
                .await
                .expect("proof");
            let again = Receipt {
                proof,
                checkpoint: published.note,
                ..receipt.clone()
            };
            again
                .verify(&self.keys, Some(ORIGIN))
                .expect("entry still in the latest tree");
        }
    }
}

async fn batches_get_receipts_that_verify<S: LogStore + Clone>(store: S) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    for n in [1, 3, 256, 300, 2] {
        let batch = h.batch(n);
        let answer = h.sequencer.sequence(&batch).await.expect("sequence");
        assert!(answer.entries.iter().all(|e| !e.duplicate));
        h.acknowledge(&batch, answer).await;
    }
    assert_eq!(h.checkpoints.last().expect("cp").size, 562);
}

async fn retries_get_the_original_receipt<S: LogStore + Clone>(store: S) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    let batch = h.batch(5);
    let first = h.sequencer.sequence(&batch).await.expect("sequence");
    h.acknowledge(&batch, first.clone()).await;
    // The same statements again, with new bytes (a later receive time),
    // plus one repeated inside the batch: nothing new is logged.
    let mut retry: Vec<NewEntry> = batch
        .iter()
        .enumerate()
        .map(|(i, e)| NewEntry {
            entry: evidence_entry(1000 + i as u32),
            dedup_key: e.dedup_key,
        })
        .collect();
    let fresh = h.batch(1).remove(0);
    retry.push(fresh.clone());
    retry.push(fresh);
    let answer = h.sequencer.sequence(&retry).await.expect("sequence");
    for (i, got) in answer.entries.iter().take(5).enumerate() {
        assert!(got.duplicate);
        assert_eq!(got.index, first.entries[i].index);
        assert_eq!(got.entry, batch[i].entry, "the original entry is returned");
    }
    assert!(!answer.entries[5].duplicate);
    assert!(answer.entries[6].duplicate);
    assert_eq!(answer.entries[6].index, answer.entries[5].index);
    assert_eq!(answer.size, 6);
    h.acknowledge(&retry, answer).await;
}

/// Batches without a retry never look their keys up; a batch holding a
/// logged key is refused by storage, looked up and sequenced again, and
/// the batches after it look up first.
async fn logged_keys_are_looked_up_only_after_a_retry<S: LogStore + Clone>(store: S) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    for _ in 0..2 {
        let batch = h.batch(40);
        let answer = h.sequencer.sequence(&batch).await.expect("sequence");
        h.acknowledge(&batch, answer).await;
    }
    assert_eq!(h_lookups(&h.store), 0, "fresh batches look nothing up");
    let mut retry = h.batch(10);
    retry.push(NewEntry {
        entry: evidence_entry(5000),
        dedup_key: key_of(3),
    });
    let answer = h.sequencer.sequence(&retry).await.expect("sequence");
    assert_eq!(
        h_lookups(&h.store),
        1,
        "looked up once the insert was refused"
    );
    let last = answer.entries.last().expect("answered");
    assert!(last.duplicate);
    assert_eq!(last.entry, evidence_entry(3), "the original is answered");
    assert!(answer.entries[..10].iter().all(|e| !e.duplicate));
    assert_eq!(answer.size, 90);
    h.acknowledge(&retry, answer).await;
    let batch = h.batch(5);
    let answer = h.sequencer.sequence(&batch).await.expect("sequence");
    assert_eq!(
        h_lookups(&h.store),
        1,
        "the batch after a retry looks up first"
    );
    h.acknowledge(&batch, answer).await;
}

fn h_lookups<S>(store: &Faulty<S>) -> u64 {
    store.dedup_lookups.swap(0, Ordering::SeqCst)
}

async fn invalid_entries_are_refused_and_nothing_is_logged<S: LogStore + Clone>(store: S) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    let mut batch = h.batch(3);
    batch[1].entry = b"not an evidence entry".to_vec();
    match h.sequencer.sequence(&batch).await {
        Err(SequenceError::InvalidEntry { position: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(h.store.head(ORIGIN).await.expect("head").size, 0);
}

async fn restart_continues_the_same_log<S: LogStore + Clone>(store: S) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    h.log(300).await;
    h.store.reads();
    h.sequencer = Sequencer::open(ORIGIN, h.store.clone(), h.signer.clone())
        .await
        .expect("reopen");
    // Resuming reads the right edge only: the 44 entries of the level-0
    // partial tile, and the one full tile below the level-1 partial tile.
    assert_eq!(h.store.reads(), (44, 1));
    let batch = h.batch(7);
    let answer = h
        .sequencer
        .sequence(&batch)
        .await
        .expect("sequence after restart");
    assert_eq!(answer.entries[0].index, 300);
    h.acknowledge(&batch, answer).await;
}

async fn sequencing_reads_no_tile_back<S: LogStore + Clone>(store: S) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    for n in [1, 3, 256, 300, 2, 700] {
        let batch = h.batch(n);
        h.store.reads();
        let answer = h.sequencer.sequence(&batch).await.expect("sequence");
        // Partial tiles come from the sequencer's memory and the full
        // tiles it committed from its cache: nothing is derived or read
        // back while sequencing.
        assert_eq!(h.store.reads(), (0, 0), "batch of {n}");
        h.acknowledge(&batch, answer).await;
    }
}

async fn commit_faults_never_lose_or_fork<S: LogStore + Clone>(store: S) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    h.log(10).await;

    // Failed, nothing persisted: an error, and the retry logs the batch.
    let batch = h.batch(4);
    h.store.fail_before.store(true, Ordering::SeqCst);
    assert!(h.sequencer.sequence(&batch).await.is_err());
    assert_eq!(h.store.head(ORIGIN).await.expect("head").size, 10);
    let answer = h.sequencer.sequence(&batch).await.expect("retry");
    assert!(answer.entries.iter().all(|e| !e.duplicate));
    h.acknowledge(&batch, answer).await;

    // Failed but persisted: the sequencer believes storage, not the error,
    // and answers with the committed entries.
    let batch = h.batch(4);
    h.store.fail_after.store(true, Ordering::SeqCst);
    let answer = h
        .sequencer
        .sequence(&batch)
        .await
        .expect("persisted batch is acknowledged");
    assert_eq!(answer.entries[0].index, 14);
    h.acknowledge(&batch, answer).await;
    let answer = h.sequencer.sequence(&batch).await.expect("retry");
    assert!(answer.entries.iter().all(|e| e.duplicate));
    h.acknowledge(&batch, answer).await;
}

async fn signing_faults_never_lose_or_fork<S: LogStore + Clone>(store: S) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    h.log(10).await;

    // Failed, nothing signed: no receipt; the retry finds the entries
    // logged and gets them signed.
    let batch = h.batch(3);
    h.signer.fail_before.store(true, Ordering::SeqCst);
    assert!(matches!(
        h.sequencer.sequence(&batch).await,
        Err(SequenceError::Publish(_))
    ));
    let answer = h.sequencer.sequence(&batch).await.expect("retry");
    assert!(answer.entries.iter().all(|e| e.duplicate));
    h.acknowledge(&batch, answer).await;

    // Failed but signed and recorded by the signer: the next batch first
    // asks for exactly that head again, then moves on.
    let batch = h.batch(3);
    h.signer.fail_after.store(true, Ordering::SeqCst);
    assert!(h.sequencer.sequence(&batch).await.is_err());
    let more = h.batch(2);
    let answer = h.sequencer.sequence(&more).await.expect("next batch");
    assert_eq!(answer.entries[0].index, 16);
    h.acknowledge(&more, answer).await;
    let answer = h.sequencer.sequence(&batch).await.expect("retry");
    assert!(answer.entries.iter().all(|e| e.duplicate));
    h.acknowledge(&batch, answer).await;

    // The same, then a restart before anything else: the new sequencer
    // publishes the committed head on opening.
    let batch = h.batch(2);
    h.signer.fail_after.store(true, Ordering::SeqCst);
    assert!(h.sequencer.sequence(&batch).await.is_err());
    h.sequencer = Sequencer::open(ORIGIN, h.store.clone(), h.signer.clone())
        .await
        .expect("reopen");
    let answer = h
        .sequencer
        .sequence(&batch)
        .await
        .expect("retry after restart");
    assert!(answer.entries.iter().all(|e| e.duplicate));
    h.acknowledge(&batch, answer).await;
}

/// A commit that fails to say it happened, then a reload that fails: the
/// sequencer must not go on from the head it had. The retry is answered
/// with the committed entries, as if nothing had failed.
async fn a_failed_reload_is_tried_again_before_the_next_batch<S: LogStore + Clone>(store: S) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    h.log(10).await;

    let batch = h.batch(4);
    h.store.fail_after.store(true, Ordering::SeqCst);
    h.store.fail_loads.store(1, Ordering::SeqCst);
    assert!(matches!(
        h.sequencer.sequence(&batch).await,
        Err(SequenceError::Storage(StorageError::Unavailable(_)))
    ));
    assert_eq!(h.store.head(ORIGIN).await.expect("head").size, 14);
    let answer = h
        .sequencer
        .sequence(&batch)
        .await
        .expect("the retry is answered from storage");
    let indices: Vec<u64> = answer.entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, [10, 11, 12, 13]);
    assert!(answer.entries.iter().all(|e| e.duplicate));
    h.acknowledge(&batch, answer).await;
    let batch = h.batch(2);
    let answer = h.sequencer.sequence(&batch).await.expect("next batch");
    assert_eq!(answer.entries[0].index, 14);
    h.acknowledge(&batch, answer).await;
}

/// A sequencer commits a head and fails to get it signed; a second one
/// takes the log on from there. The first, asked again, must not keep
/// asking the signer for its old head (refused for ever): it re-reads the
/// log and carries on from where the other left it.
async fn a_sequencer_overtaken_while_unsigned_carries_on<S: LogStore + Clone>(store: S) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    h.log(5).await;

    let unsigned = h.batch(3);
    h.signer.fail_before.store(true, Ordering::SeqCst);
    assert!(matches!(
        h.sequencer.sequence(&unsigned).await,
        Err(SequenceError::Publish(PublishError::Unavailable(_)))
    ));
    let rival = Sequencer::open(ORIGIN, h.store.clone(), h.signer.clone())
        .await
        .expect("rival");
    let theirs = h.batch(4);
    let answer = rival.sequence(&theirs).await.expect("rival sequences");
    assert_eq!(answer.size, 12);
    h.acknowledge(&theirs, answer).await;

    for _ in 0..3 {
        let batch = h.batch(2);
        let answer = h
            .sequencer
            .sequence(&batch)
            .await
            .expect("the overtaken sequencer carries on");
        h.acknowledge(&batch, answer).await;
    }
    let answer = h.sequencer.sequence(&unsigned).await.expect("retry");
    let indices: Vec<u64> = answer.entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, [5, 6, 7], "the unsigned entries were kept");
    h.acknowledge(&unsigned, answer).await;
    assert_eq!(h.checkpoints.last().expect("cp").size, 18);
}

async fn racing_sequencers_never_commit_twice<S: LogStore + Clone>(store: S) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    let rival = Sequencer::open(ORIGIN, h.store.clone(), h.signer.clone())
        .await
        .expect("rival");
    for _ in 0..5 {
        let (a, b) = (h.batch(3), h.batch(3));
        let (ra, rb) = tokio::join!(h.sequencer.sequence(&a), rival.sequence(&b));
        for (batch, result) in [(a, ra), (b, rb)] {
            match result {
                Ok(answer) => h.acknowledge(&batch, answer).await,
                Err(SequenceError::NotLeader(_)) | Err(SequenceError::Publish(_)) => {
                    // Not acknowledged: it may be retried with the winner.
                }
                Err(other) => panic!("{other:?}"),
            }
        }
    }
    // Every acknowledged entry is in the log once, at its index.
    let reader = LogReader::new(ORIGIN, h.store.clone());
    let size = reader.checkpoint(0).await.expect("latest").checkpoint.size;
    let logged = reader.entries(0, size).await.expect("entries");
    for receipt in &h.receipts {
        assert_eq!(
            Some(&logged[receipt.index as usize].1),
            receipt.extra.as_ref()
        );
    }
    let mut keys: Vec<&Vec<u8>> = logged.iter().map(|(_, e)| e).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), logged.len(), "an entry was logged twice");
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    super::$name(super::EmbeddedStore::open(dir.path()).expect("store")).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let schema = evault_test_support::PgSchema::create("evault_tree").await;
                    super::$name(super::postgres_store(&schema).await).await;
                    schema.drop_schema().await;
                }
            )*
        }
    };
}

on_both_stores!(
    batches_get_receipts_that_verify,
    retries_get_the_original_receipt,
    logged_keys_are_looked_up_only_after_a_retry,
    invalid_entries_are_refused_and_nothing_is_logged,
    restart_continues_the_same_log,
    sequencing_reads_no_tile_back,
    commit_faults_never_lose_or_fork,
    signing_faults_never_lose_or_fork,
    a_failed_reload_is_tried_again_before_the_next_batch,
    a_sequencer_overtaken_while_unsigned_carries_on,
    racing_sequencers_never_commit_twice,
);

/// Tree keys retries by the entry itself: a caller's dedup key that does
/// not match its entry could otherwise make one principal's statement
/// answer for another's.
#[tokio::test]
async fn sequence_over_grpc_refuses_a_dedup_key_that_is_not_its_entrys() {
    use evault_proto::v1::sequencer_service_server::SequencerService as _;
    use evault_proto::v1::{SequenceEntry, SequenceRequest};

    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("log")).expect("store");
    let (key, _) = SigningKey::generate(ORIGIN).expect("key");
    let signer = CheckpointSigner::new(
        ORIGIN,
        vec![Box::new(key)],
        SignerFile::open(&dir.path().join(SIGNER_FILE)).expect("signer store"),
    )
    .expect("signer");
    let sequencer = Sequencer::open(ORIGIN, store.clone(), signer)
        .await
        .expect("tree");
    let tree = evault_tree::TreeGrpc::new(sequencer, LogReader::new(ORIGIN, store.clone()));
    let entry = EvidenceEntry::decode(&evidence_entry(7)).expect("entry");
    let request = |dedup_key: Vec<u8>, entry: Vec<u8>| {
        tonic::Request::new(SequenceRequest {
            origin: ORIGIN.into(),
            entries: vec![SequenceEntry { entry, dedup_key }],
        })
    };

    let forged = tree
        .sequence(request(key_of(7).to_vec(), evidence_entry(7)))
        .await
        .expect_err("a key that is not the entry's");
    assert_eq!(forged.code(), tonic::Code::InvalidArgument, "{forged:?}");
    assert!(forged.message().contains("dedup_key"), "{forged:?}");
    let garbage = tree
        .sequence(request(key_of(7).to_vec(), b"not an entry".to_vec()))
        .await
        .expect_err("bytes that are no entry");
    assert_eq!(garbage.code(), tonic::Code::InvalidArgument, "{garbage:?}");
    assert_eq!(
        store.head(ORIGIN).await.expect("head").size,
        0,
        "nothing logged"
    );

    let own = entry.dedup_key().expect("key").to_vec();
    let answer = tree
        .sequence(request(own, evidence_entry(7)))
        .await
        .expect("the entry's own key")
        .into_inner();
    assert_eq!(answer.entries.len(), 1);
}

/// Positions of 2^63 and over fit no store's `bigint`: each is refused as
/// the caller's mistake (`INVALID_ARGUMENT`, naming the field), on both
/// stores, never answered `INTERNAL`.
async fn positions_beyond_any_log_are_invalid_arguments<S: LogStore + Clone>(store: S) {
    use evault_proto::v1::get_inclusion_proof_request::Leaf;
    use evault_proto::v1::tree_service_server::TreeService as _;
    use evault_proto::v1::{
        FindEntriesRequest, GetConsistencyProofRequest, GetEntriesRequest, GetInclusionProofRequest,
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = Harness::new(store, dir.path()).await;
    h.log(3).await;
    let tree = evault_tree::TreeGrpc::new(h.sequencer, LogReader::new(ORIGIN, h.store.clone()));
    let huge = 1u64 << 63;
    let digest = evault_core::hash::sha256(b"evidence 1").to_vec();
    let refusals = [
        (
            "index",
            tree.get_inclusion_proof(tonic::Request::new(GetInclusionProofRequest {
                leaf: Some(Leaf::Index(huge)),
                tree_size: 3,
            }))
            .await
            .map(drop),
        ),
        (
            "tree_size",
            tree.get_inclusion_proof(tonic::Request::new(GetInclusionProofRequest {
                leaf: Some(Leaf::Index(0)),
                tree_size: u64::MAX,
            }))
            .await
            .map(drop),
        ),
        (
            "first_size",
            tree.get_consistency_proof(tonic::Request::new(GetConsistencyProofRequest {
                first_size: huge,
                second_size: 3,
            }))
            .await
            .map(drop),
        ),
        (
            "second_size",
            tree.get_consistency_proof(tonic::Request::new(GetConsistencyProofRequest {
                first_size: 1,
                second_size: huge,
            }))
            .await
            .map(drop),
        ),
        (
            "start",
            tree.get_entries(tonic::Request::new(GetEntriesRequest {
                start: huge,
                count: 1,
            }))
            .await
            .map(drop),
        ),
        (
            "page_token",
            tree.find_entries(tonic::Request::new(FindEntriesRequest {
                sha256: digest,
                page_size: 10,
                page_token: huge.to_string(),
            }))
            .await
            .map(drop),
        ),
    ];
    for (field, answer) in refusals {
        let status = answer.expect_err(field);
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{field}: {status:?}"
        );
        assert!(status.message().starts_with(field), "{status:?}");
    }
}

mod beyond_any_log {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        super::positions_beyond_any_log_are_invalid_arguments(
            super::EmbeddedStore::open(dir.path()).expect("store"),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let schema = evault_test_support::PgSchema::create("evault_tree").await;
        super::positions_beyond_any_log_are_invalid_arguments(super::postgres_store(&schema).await)
            .await;
        schema.drop_schema().await;
    }
}
