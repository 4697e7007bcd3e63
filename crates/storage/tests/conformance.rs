//! One conformance suite, run against both backends: the embedded store in
//! a temporary directory and PostgreSQL at `DATABASE_URL` (each test in a
//! schema of its own, migrated from empty). PostgreSQL is never mocked; if
//! it cannot be reached the PostgreSQL tests fail, they do not skip.

use evault_core::{Hash, Integrator, TileId, TileReader, TreeReader, leaf_hash, verify_inclusion};
use evault_storage::embedded::EmbeddedStore;
use evault_storage::postgres::{PostgresStore, migrate, migrate_to};
use evault_storage::{
    EvidenceStore, Integration, LogStore, SignedHead, SignerStore, StorageError, StoredEntry,
    TreeHead,
};

const ORIGIN: &str = "vault.example/storage-test";

/// A schema of the test's own, migrated from empty by [`store`].
type Schema = evault_test_support::PgSchema;

async fn new_schema() -> Schema {
    Schema::create("evault_storage").await
}

async fn store(schema: &Schema) -> PostgresStore {
    migrate(&schema.url).await.expect("migrate");
    PostgresStore::connect(&schema.url, 4).expect("pool")
}

/// A log's worth of entries, integrated the way tree does it.
struct Batch {
    old: TreeHead,
    new: TreeHead,
    entries: Vec<StoredEntry>,
    tiles: Vec<(TileId, Vec<u8>)>,
}

impl Batch {
    fn integration(&self) -> Integration<'_> {
        Integration {
            old: self.old,
            new: self.new,
            entries: &self.entries,
            tiles: &self.tiles,
        }
    }
}

fn entry(index: u64, tag: &str) -> StoredEntry {
    let bytes = format!("entry {index} {tag}").into_bytes();
    StoredEntry {
        index,
        leaf_hash: leaf_hash(&bytes),
        dedup_key: evault_core::hash::sha256(format!("key {index} {tag}").as_bytes()),
        evidence_sha256: (index % 3 == 0)
            .then(|| evault_core::hash::sha256(format!("evidence {}", index % 2).as_bytes())),
        entry: bytes,
    }
}

fn next_batch(tree: &mut Integrator, count: u64, tag: &str) -> Batch {
    let old = TreeHead {
        size: tree.size(),
        root: tree.root(),
    };
    let entries: Vec<StoredEntry> = (old.size..old.size + count)
        .map(|i| entry(i, tag))
        .collect();
    let tiles = tree.integrate(entries.iter().map(|e| e.leaf_hash));
    Batch {
        old,
        new: TreeHead {
            size: tree.size(),
            root: tree.root(),
        },
        entries,
        tiles,
    }
}

/// Tiles read back from a store, for building proofs in the test.
struct Fetched(std::collections::HashMap<(u8, u64), Vec<u8>>);

impl TileReader for Fetched {
    type Error = String;
    fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        self.0
            .get(&(tile.level, tile.index))
            .cloned()
            .ok_or_else(|| format!("{} not fetched", tile.path()))
    }
}

async fn create_log_is_idempotent_and_starts_empty(store: impl LogStore) {
    assert!(matches!(
        store.head(ORIGIN).await,
        Err(StorageError::NoSuchLog(_))
    ));
    assert_eq!(
        store.create_log(ORIGIN).await.expect("create"),
        TreeHead::empty()
    );
    assert_eq!(
        store.create_log(ORIGIN).await.expect("again"),
        TreeHead::empty()
    );
    assert_eq!(store.head(ORIGIN).await.expect("head"), TreeHead::empty());
    assert_eq!(
        store.checkpoint(ORIGIN, None).await.expect("checkpoint"),
        None
    );
}

async fn integrated_batches_read_back_and_prove(store: impl LogStore) {
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    for (count, tag) in [(1, "a"), (300, "b"), (2, "c"), (500, "d")] {
        let batch = next_batch(&mut tree, count, tag);
        store
            .integrate(ORIGIN, batch.integration())
            .await
            .expect("integrate");
        assert_eq!(store.head(ORIGIN).await.expect("head"), batch.new);
    }
    let size = tree.size();
    assert_eq!(size, 803);

    let wanted: Vec<TileId> = evault_core::tile::tiles_for_size(size).collect();
    let tiles = store.read_tiles(ORIGIN, &wanted).await.expect("tiles");
    let mut fetched = Fetched(
        wanted
            .iter()
            .zip(tiles)
            .map(|(t, b)| ((t.level, t.index), b))
            .collect(),
    );
    let mut reader = TreeReader::new(size, &mut fetched);
    assert_eq!(reader.root(size).expect("root"), tree.root());
    let entries = store.read_entries(ORIGIN, 0, size).await.expect("entries");
    for index in [0, 1, 255, 256, 301, 802] {
        let proof = reader.inclusion_proof(index, size).expect("proof");
        let leaf = leaf_hash(&entries[index as usize]);
        verify_inclusion(index, size, leaf.as_bytes(), &proof, tree.root().as_bytes())
            .expect("verifies");
        assert_eq!(
            store.find_leaf(ORIGIN, leaf).await.expect("leaf"),
            Some(index)
        );
    }
    assert_eq!(
        store.read_entries(ORIGIN, 300, 3).await.expect("slice")[0],
        entry(300, "b").entry
    );
    assert!(matches!(
        store.read_entries(ORIGIN, 800, 4).await,
        Err(StorageError::Corrupt(_))
    ));
    let beyond = TileId {
        level: 0,
        index: 4,
        width: 1,
    };
    assert!(matches!(
        store.read_tiles(ORIGIN, &[beyond]).await,
        Err(StorageError::Corrupt(_))
    ));
    assert_eq!(
        store
            .find_leaf(ORIGIN, leaf_hash(b"absent"))
            .await
            .expect("leaf"),
        None
    );

    let even = evault_core::hash::sha256(b"evidence 0");
    let all: Vec<u64> = (0..size).filter(|i| i % 3 == 0 && i % 2 == 0).collect();
    assert_eq!(
        store
            .find_evidence(ORIGIN, even, 0, 1000)
            .await
            .expect("find"),
        all
    );
    assert_eq!(
        store.find_evidence(ORIGIN, even, 7, 2).await.expect("page"),
        [12, 18]
    );
    assert_eq!(
        store
            .find_evidence(ORIGIN, [0; 32], 0, 10)
            .await
            .expect("none"),
        Vec::<u64>::new()
    );
}

async fn stale_head_is_refused_and_nothing_written(store: impl LogStore) {
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    let first = next_batch(&mut tree, 10, "first");
    store
        .integrate(ORIGIN, first.integration())
        .await
        .expect("integrate");
    // A second sequencer that still believes the log is empty.
    let mut stale_tree = Integrator::new();
    let stale = next_batch(&mut stale_tree, 5, "stale");
    match store.integrate(ORIGIN, stale.integration()).await {
        Err(StorageError::HeadMoved {
            expected: 0,
            found: 10,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(store.head(ORIGIN).await.expect("head"), first.new);
    assert_eq!(
        store
            .find_dedup(ORIGIN, &[stale.entries[0].dedup_key])
            .await
            .expect("dedup"),
        [None]
    );
    assert_eq!(
        store
            .find_leaf(ORIGIN, stale.entries[0].leaf_hash)
            .await
            .expect("leaf"),
        None
    );
}

async fn racing_integrations_commit_once(store: impl LogStore) {
    store.create_log(ORIGIN).await.expect("create");
    // Leaf hashes of what the winners committed, round after round.
    let mut committed: Vec<Hash> = Vec::new();
    for round in 0..5 {
        let contenders: Vec<Batch> = (0..2)
            .map(|who| {
                let mut tree = Integrator::new();
                tree.integrate(committed.iter().copied());
                next_batch(&mut tree, 3, &format!("round {round} contender {who}"))
            })
            .collect();
        let (a, b) = tokio::join!(
            store.integrate(ORIGIN, contenders[0].integration()),
            store.integrate(ORIGIN, contenders[1].integration())
        );
        assert_eq!(
            u8::from(a.is_ok()) + u8::from(b.is_ok()),
            1,
            "round {round}: {a:?} {b:?}"
        );
        let (winner, loser) = if a.is_ok() {
            (&contenders[0], &contenders[1])
        } else {
            (&contenders[1], &contenders[0])
        };
        assert_eq!(store.head(ORIGIN).await.expect("head"), winner.new);
        let lost = [loser.entries[0].dedup_key];
        assert_eq!(
            store.find_dedup(ORIGIN, &lost).await.expect("dedup"),
            [None]
        );
        committed.extend(winner.entries.iter().map(|e| e.leaf_hash));
    }
}

async fn dedup_keys_are_never_logged_twice(store: impl LogStore) {
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    let first = next_batch(&mut tree, 4, "x");
    store
        .integrate(ORIGIN, first.integration())
        .await
        .expect("integrate");
    let keys: Vec<[u8; 32]> = first
        .entries
        .iter()
        .map(|e| e.dedup_key)
        .chain([[7; 32]])
        .collect();
    assert_eq!(
        store.find_dedup(ORIGIN, &keys).await.expect("dedup"),
        [Some(0), Some(1), Some(2), Some(3), None]
    );

    let mut again = next_batch(&mut tree, 2, "y");
    again.entries[1].dedup_key = first.entries[2].dedup_key;
    assert!(matches!(
        store.integrate(ORIGIN, again.integration()).await,
        Err(StorageError::InvalidBatch(_))
    ));
    assert_eq!(store.head(ORIGIN).await.expect("head"), first.new);
}

async fn malformed_batches_are_refused(store: impl LogStore) {
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    let mut batch = next_batch(&mut tree, 3, "m");
    batch.entries[1].index = 7;
    assert!(matches!(
        store.integrate(ORIGIN, batch.integration()).await,
        Err(StorageError::InvalidBatch(_))
    ));
    batch.entries.pop();
    assert!(matches!(
        store.integrate(ORIGIN, batch.integration()).await,
        Err(StorageError::InvalidBatch(_))
    ));
    assert_eq!(store.head(ORIGIN).await.expect("head"), TreeHead::empty());
    assert!(matches!(
        store.integrate("no.such/log", batch.integration()).await,
        Err(StorageError::NoSuchLog(_)) | Err(StorageError::InvalidBatch(_))
    ));
}

async fn checkpoints_are_published_per_size(store: impl LogStore) {
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    store
        .publish(ORIGIN, 0, b"cp0")
        .await
        .expect("publish empty");
    let batch = next_batch(&mut tree, 5, "p");
    store
        .integrate(ORIGIN, batch.integration())
        .await
        .expect("integrate");
    store.publish(ORIGIN, 5, b"cp5").await.expect("publish");
    store
        .publish(ORIGIN, 5, b"cp5")
        .await
        .expect("publish again");
    assert!(matches!(
        store.publish(ORIGIN, 6, b"cp6").await,
        Err(StorageError::InvalidBatch(_))
    ));
    assert_eq!(
        store.checkpoint(ORIGIN, None).await.expect("latest"),
        Some(b"cp5".to_vec())
    );
    assert_eq!(
        store.checkpoint(ORIGIN, Some(0)).await.expect("at 0"),
        Some(b"cp0".to_vec())
    );
    assert_eq!(store.checkpoint(ORIGIN, Some(3)).await.expect("at 3"), None);
}

async fn signer_state_moves_by_compare_and_swap(store: impl SignerStore) {
    let head = |size: u64| TreeHead {
        size,
        root: Hash([size as u8; 32]),
    };
    let signed = |size: u64| SignedHead {
        head: head(size),
        checkpoint: format!("note {size}").into_bytes(),
    };
    assert_eq!(store.last_signed(ORIGIN).await.expect("none"), None);
    store
        .record_signed(ORIGIN, None, &signed(1))
        .await
        .expect("first");
    assert!(matches!(
        store.record_signed(ORIGIN, None, &signed(2)).await,
        Err(StorageError::HeadMoved { .. })
    ));
    store
        .record_signed(ORIGIN, Some(head(1)), &signed(5))
        .await
        .expect("advance");
    assert!(matches!(
        store.record_signed(ORIGIN, Some(head(1)), &signed(9)).await,
        Err(StorageError::HeadMoved {
            expected: 1,
            found: 5
        })
    ));
    assert_eq!(
        store.last_signed(ORIGIN).await.expect("last"),
        Some(signed(5))
    );
    assert_eq!(
        store.last_signed("other.origin").await.expect("other"),
        None
    );
}

async fn evidence_is_content_addressed(store: impl EvidenceStore) {
    let sha = evault_core::hash::sha256(b"the report");
    assert_eq!(store.evidence(sha).await.expect("absent"), None);
    store.put_evidence(sha, b"the report").await.expect("put");
    store
        .put_evidence(sha, b"the report")
        .await
        .expect("put again");
    assert_eq!(
        store.evidence(sha).await.expect("get"),
        Some(b"the report".to_vec())
    );
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let store = super::EmbeddedStore::open(dir.path()).expect("open");
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let schema = super::new_schema().await;
                    super::$name(super::store(&schema).await).await;
                    schema.drop_schema().await;
                }
            )*
        }
    };
}

conformance!(
    create_log_is_idempotent_and_starts_empty,
    integrated_batches_read_back_and_prove,
    stale_head_is_refused_and_nothing_written,
    racing_integrations_commit_once,
    dedup_keys_are_never_logged_twice,
    malformed_batches_are_refused,
    checkpoints_are_published_per_size,
    signer_state_moves_by_compare_and_swap,
    evidence_is_content_addressed,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tree = Integrator::new();
    let batch = next_batch(&mut tree, 20, "durable");
    {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        store.create_log(ORIGIN).await.expect("create");
        store
            .integrate(ORIGIN, batch.integration())
            .await
            .expect("integrate");
        assert!(matches!(
            EmbeddedStore::open(dir.path()),
            Err(StorageError::Unavailable(_))
        ));
    }
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(store.head(ORIGIN).await.expect("head"), batch.new);
    assert_eq!(
        store.read_entries(ORIGIN, 19, 1).await.expect("entry")[0],
        batch.entries[19].entry
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_from_empty_and_rerun_as_a_no_op() {
    let schema = new_schema().await;
    let applied = migrate(&schema.url).await.expect("migrate");
    assert_eq!(applied, [1, 2]);
    let store = PostgresStore::connect(&schema.url, 2).expect("pool");
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    let batch = next_batch(&mut tree, 10, "kept");
    store
        .integrate(ORIGIN, batch.integration())
        .await
        .expect("integrate");
    assert_eq!(
        migrate(&schema.url).await.expect("again"),
        Vec::<u32>::new()
    );
    assert_eq!(store.head(ORIGIN).await.expect("head"), batch.new);
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_version_once() {
    let schema = new_schema().await;
    let (a, b) = tokio::join!(migrate(&schema.url), migrate(&schema.url));
    let mut all = a.expect("first");
    all.extend(b.expect("second"));
    all.sort();
    assert_eq!(all, [1, 2]);
    schema.drop_schema().await;
}

/// Every migration after the first upgrades a database that already holds
/// a log, and the log stays intact and verifiable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_migration_upgrades_a_database_holding_a_log() {
    let latest = 2;
    for from in 1..latest {
        let schema = new_schema().await;
        assert_eq!(
            migrate_to(&schema.url, Some(from))
                .await
                .expect("old schema"),
            (1..=from).collect::<Vec<_>>()
        );
        let store = PostgresStore::connect(&schema.url, 2).expect("pool");
        store.create_log(ORIGIN).await.expect("create");
        let mut tree = Integrator::new();
        let batch = next_batch(&mut tree, 300, "before upgrade");
        store
            .integrate(ORIGIN, batch.integration())
            .await
            .expect("integrate");
        store
            .publish(ORIGIN, 300, b"checkpoint 300")
            .await
            .expect("publish");

        let upgraded = migrate(&schema.url).await.expect("upgrade");
        assert_eq!(upgraded, (from + 1..=latest).collect::<Vec<_>>());
        assert_eq!(store.head(ORIGIN).await.expect("head"), batch.new);
        let wanted: Vec<TileId> = evault_core::tile::tiles_for_size(300).collect();
        let tiles = store.read_tiles(ORIGIN, &wanted).await.expect("tiles");
        let mut fetched = Fetched(
            wanted
                .iter()
                .zip(tiles)
                .map(|(t, b)| ((t.level, t.index), b))
                .collect(),
        );
        assert_eq!(
            TreeReader::new(300, &mut fetched).root(300).expect("root"),
            tree.root()
        );
        assert_eq!(
            store.checkpoint(ORIGIN, None).await.expect("cp"),
            Some(b"checkpoint 300".to_vec())
        );
        // And the log keeps growing on the new schema.
        let more = next_batch(&mut tree, 5, "after upgrade");
        store
            .integrate(ORIGIN, more.integration())
            .await
            .expect("integrate after");
        schema.drop_schema().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_per_log_until_it_goes() {
    let schema = new_schema().await;
    let first = PostgresStore::try_lead(&schema.url, ORIGIN)
        .await
        .expect("try")
        .expect("first leads");
    assert!(first.is_held());
    assert!(
        PostgresStore::try_lead(&schema.url, ORIGIN)
            .await
            .expect("try")
            .is_none(),
        "two leaders"
    );
    let other = PostgresStore::try_lead(&schema.url, "another/log")
        .await
        .expect("try");
    assert!(other.is_some(), "logs are led independently");
    drop(first);
    let mut next = None;
    for _ in 0..50 {
        next = PostgresStore::try_lead(&schema.url, ORIGIN)
            .await
            .expect("try");
        if next.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(next.is_some(), "leadership was not released");
    schema.drop_schema().await;
}
