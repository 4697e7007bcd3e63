//! One conformance suite, run against both backends: the embedded store in
//! a temporary directory and PostgreSQL at `DATABASE_URL` (each test in a
//! schema of its own, migrated from empty); and the signer's record in its
//! own file and in its own database, kept apart from any log. PostgreSQL
//! is never mocked; if it cannot be reached the PostgreSQL tests fail, they
//! do not skip.

use std::collections::BTreeMap;

use evault_core::tile::tiles_for_size;
use evault_core::trail::{self, AuditRecord, PinnedHead};
use evault_core::{
    EvidenceEntry, Hash, Integrator, TileId, TileReader, TreeReader, leaf_hash, verify_inclusion,
};
use evault_storage::embedded::EmbeddedStore;
use evault_storage::postgres::{PostgresStore, migrate, migrate_to};
use evault_storage::signer::{
    LegacySignerRecord, SignerDatabase, SignerFile, adopt_legacy_record, migrate_signer,
};
use evault_storage::tiles::{TileCache, read_tiles};
use evault_storage::{
    CHECKPOINTS_KEPT, Erasure, EvidenceStore, Integration, LogStore, PRUNE_EVERY, SignedHead,
    SignerStore, StorageError, StoredEntry, StoredEvidence, TreeHead, evidence_digest,
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
    tiles: Tiles,
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

/// Entry `index`: every third one a version-1 evidence entry naming one of
/// two evidence digests (by parity), the others bytes of another version,
/// which name no evidence.
fn entry(index: u64, tag: &str) -> StoredEntry {
    let bytes = if index % 3 == 0 {
        EvidenceEntry {
            digest: evault_core::hash::sha256(format!("evidence {}", index % 2).as_bytes()),
            size: index,
            received_ms: 1_795_960_341_000 + index,
            media_type: "text/plain".into(),
            name: Some(format!("entry {index} {tag}")),
            principal: "tester".into(),
            labels: BTreeMap::new(),
        }
        .encode()
        .expect("entry")
    } else {
        format!("entry {index} {tag}").into_bytes()
    };
    StoredEntry {
        index,
        leaf_hash: leaf_hash(&bytes),
        dedup_key: evault_core::hash::sha256(format!("key {index} {tag}").as_bytes()),
        evidence_sha256: evidence_digest(&bytes),
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
    let tiles = tree.integrate_full_tiles(entries.iter().map(|e| e.leaf_hash));
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

/// The next batch of `count` entries, integrated into `store`.
async fn integrate_next(
    store: &impl LogStore,
    tree: &mut Integrator,
    count: u64,
    tag: &str,
) -> Batch {
    let batch = next_batch(tree, count, tag);
    store
        .integrate(ORIGIN, batch.integration())
        .await
        .expect("integrate");
    batch
}

/// Tiles and their bytes.
type Tiles = Vec<(TileId, Vec<u8>)>;

/// Tiles read back from a store, for building proofs in the test.
struct Fetched(std::collections::HashMap<(u8, u64), Vec<u8>>);

/// Every tile of the tree of `size` entries of the log `origin`, as
/// readers read them.
async fn fetch_all(store: &impl LogStore, origin: &str, size: u64) -> Fetched {
    let wanted: Vec<TileId> = tiles_for_size(size).collect();
    let tiles = read_tiles(store, origin, size, &wanted, &TileCache::new(16))
        .await
        .expect("tiles");
    Fetched(
        wanted
            .iter()
            .zip(tiles)
            .map(|(t, b)| ((t.level, t.index), b))
            .collect(),
    )
}

impl TileReader for Fetched {
    type Error = String;
    fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        self.0
            .get(&(tile.level, tile.index))
            .cloned()
            .ok_or_else(|| format!("{} not fetched", tile.path()))
    }
}

/// Checks, from what `store` serves, that the tree of `size` entries of
/// the log `origin` has `root`, and that each entry at `indices` proves its
/// inclusion and is found by its leaf hash.
async fn assert_log_proves(
    store: &impl LogStore,
    origin: &str,
    size: u64,
    root: Hash,
    indices: &[u64],
) {
    let mut fetched = fetch_all(store, origin, size).await;
    let mut reader = TreeReader::new(size, &mut fetched);
    assert_eq!(reader.root(size).expect("root"), root);
    let entries = store.read_entries(origin, 0, size).await.expect("entries");
    for &index in indices {
        let proof = reader.inclusion_proof(index, size).expect("proof");
        let leaf = leaf_hash(&entries[index as usize]);
        verify_inclusion(index, size, leaf.as_bytes(), &proof, root.as_bytes()).expect("verifies");
        assert_eq!(
            store.find_leaf(origin, leaf).await.expect("leaf"),
            Some(index)
        );
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
        let batch = integrate_next(&store, &mut tree, count, tag).await;
        assert_eq!(store.head(ORIGIN).await.expect("head"), batch.new);
    }
    let size = tree.size();
    assert_eq!(size, 803);

    assert_log_proves(
        &store,
        ORIGIN,
        size,
        tree.root(),
        &[0, 1, 255, 256, 301, 802],
    )
    .await;
    assert_eq!(
        store.read_entries(ORIGIN, 300, 3).await.expect("slice")[0],
        entry(300, "b").entry
    );
    assert!(matches!(
        store.read_entries(ORIGIN, 800, 4).await,
        Err(StorageError::Corrupt(_))
    ));
    let cache = TileCache::new(16);
    for beyond in [
        TileId {
            level: 0,
            index: 4,
            width: 1,
        },
        TileId {
            level: 0,
            index: 3,
            width: 36,
        },
    ] {
        assert!(matches!(
            read_tiles(&store, ORIGIN, size, &[beyond], &cache).await,
            Err(StorageError::Corrupt(_))
        ));
    }
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

/// Batches of thousands of entries (PostgreSQL writes each over two
/// connections, half each) read back, prove, and are found by every
/// lookup in both halves.
async fn large_batches_read_back_and_prove(store: impl LogStore) {
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    let mut logged = Vec::new();
    for (count, tag) in [(2000, "large"), (999, "larger")] {
        let batch = integrate_next(&store, &mut tree, count, tag).await;
        assert_eq!(store.head(ORIGIN).await.expect("head"), batch.new);
        logged.extend(batch.entries);
    }
    let size = tree.size();
    assert_log_proves(
        &store,
        ORIGIN,
        size,
        tree.root(),
        &[0, 999, 1000, 1999, 2000, 2998],
    )
    .await;
    let read = store.read_entries(ORIGIN, 0, size).await.expect("entries");
    assert_eq!(read.len(), logged.len());
    assert!(read.iter().zip(&logged).all(|(r, e)| *r == e.entry));
    for i in [0, 999, 1000, 1999, 2499, 2998] {
        let e = &logged[i];
        assert_eq!(
            store.find_leaf(ORIGIN, e.leaf_hash).await.expect("leaf"),
            Some(i as u64)
        );
        assert_eq!(
            store
                .find_dedup(ORIGIN, &[e.dedup_key])
                .await
                .expect("dedup"),
            [Some(i as u64)]
        );
    }
}

async fn only_full_tiles_are_stored_each_once(store: impl LogStore) {
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    let first = next_batch(&mut tree, 300, "full");
    assert_eq!(first.tiles.len(), 1, "0/000 completes");

    // A partial tile is refused, even beside the right full ones.
    let mut partial = first.tiles.clone();
    let mut edge = tree.clone();
    partial.extend(
        edge.take_partial_tiles()
            .into_iter()
            .filter(|(t, _)| t.level == 0),
    );
    // A completed full tile left out, or one given twice, or cut short.
    let missing: Tiles = Vec::new();
    let twice = [first.tiles.clone(), first.tiles.clone()].concat();
    let mut short = first.tiles.clone();
    short[0].1.truncate(8160);
    for tiles in [&partial, &missing, &twice, &short] {
        let batch = Integration {
            tiles,
            ..first.integration()
        };
        match store.integrate(ORIGIN, batch).await {
            Err(StorageError::InvalidBatch(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.head(ORIGIN).await.expect("head"), TreeHead::empty());

    store
        .integrate(ORIGIN, first.integration())
        .await
        .expect("integrate");
    assert_eq!(
        store
            .read_full_tiles(ORIGIN, &[(0, 0)])
            .await
            .expect("full"),
        [first.tiles[0].1.clone()]
    );
    // The partial tiles of the tree are nowhere in the store.
    for position in [(0, 1), (1, 0)] {
        assert!(matches!(
            store.read_full_tiles(ORIGIN, &[position]).await,
            Err(StorageError::Corrupt(_))
        ));
    }
}

async fn derived_tiles_equal_the_integrators(store: impl LogStore) {
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    // The tiles of the tree at every size reached: full tiles as they
    // complete, partial ones as the integrator holds them at that size.
    let mut full: BTreeMap<(u8, u64), Vec<u8>> = BTreeMap::new();
    let mut sizes: Vec<(u64, Tiles)> = Vec::new();
    let shared = TileCache::new(64);
    for (round, count) in [1, 2, 252, 1, 256, 700, 3, 255, 1, 300, 513]
        .into_iter()
        .enumerate()
    {
        let batch = integrate_next(&store, &mut tree, count, &format!("round {round}")).await;
        full.extend(
            batch
                .tiles
                .iter()
                .map(|(t, b)| ((t.level, t.index), b.clone())),
        );
        let size = tree.size();
        let expected: Tiles = tiles_for_size(size)
            .map(|t| {
                let bytes = match full.get(&(t.level, t.index)) {
                    Some(bytes) if t.is_full() => bytes.clone(),
                    _ => tree
                        .partial_tiles()
                        .find(|(p, _)| *p == t)
                        .map(|(_, b)| b.to_vec())
                        .expect("partial tile"),
                };
                (t, bytes)
            })
            .collect();
        // Read at the head, through a cache that has seen every smaller
        // size (so partial tiles are extended, not derived afresh).
        let wanted: Vec<TileId> = expected.iter().map(|(t, _)| *t).collect();
        let read = read_tiles(&store, ORIGIN, size, &wanted, &shared)
            .await
            .expect("read");
        for ((tile, want), got) in expected.iter().zip(&read) {
            assert_eq!(got, want, "{} at size {size}", tile.path());
        }
        sizes.push((size, expected));
    }
    assert_eq!(tree.size(), 2284);
    // Every earlier size reads the same as when it was the head, now that
    // the store holds full tiles where those trees had partial ones.
    for (size, expected) in &sizes {
        let wanted: Vec<TileId> = expected.iter().map(|(t, _)| *t).collect();
        let read = read_tiles(&store, ORIGIN, *size, &wanted, &TileCache::new(4))
            .await
            .expect("read earlier size");
        for ((tile, want), got) in expected.iter().zip(&read) {
            assert_eq!(got, want, "{} at earlier size {size}", tile.path());
        }
    }
    // A partial width of a tile that is full in the tree asked about is
    // the prefix of the stored full tile.
    let narrow = TileId {
        level: 0,
        index: 2,
        width: 7,
    };
    let read = read_tiles(&store, ORIGIN, tree.size(), &[narrow], &TileCache::new(0))
        .await
        .expect("narrow");
    assert_eq!(read[0], full[&(0, 2)][..7 * 32]);
}

async fn derived_fields_must_agree_with_the_entry(store: impl LogStore) {
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    let mut wrong_leaf = next_batch(&mut tree.clone(), 4, "w");
    wrong_leaf.entries[1].leaf_hash = leaf_hash(b"another entry");
    let mut wrong_evidence = next_batch(&mut tree.clone(), 4, "w");
    wrong_evidence.entries[2].evidence_sha256 = Some([9; 32]);
    let mut missing_evidence = next_batch(&mut tree, 4, "w");
    missing_evidence.entries[3].evidence_sha256 = None;
    for batch in [wrong_leaf, wrong_evidence, missing_evidence] {
        match store.integrate(ORIGIN, batch.integration()).await {
            Err(StorageError::InvalidBatch(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.head(ORIGIN).await.expect("head"), TreeHead::empty());
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

    let mut again = next_batch(&mut tree.clone(), 2, "y");
    again.entries[1].dedup_key = first.entries[2].dedup_key;
    assert!(matches!(
        store.integrate(ORIGIN, again.integration()).await,
        Err(StorageError::InvalidBatch(_))
    ));
    // Twice in one batch is refused as well.
    let mut twice = next_batch(&mut tree.clone(), 3, "z");
    twice.entries[2].dedup_key = twice.entries[0].dedup_key;
    assert!(matches!(
        store.integrate(ORIGIN, twice.integration()).await,
        Err(StorageError::InvalidBatch(_))
    ));
    assert_eq!(store.head(ORIGIN).await.expect("head"), first.new);
    // So is a key repeated far apart in a large batch (which PostgreSQL
    // writes over two connections, half each).
    let mut apart = next_batch(&mut tree.clone(), 1000, "w");
    apart.entries[900].dedup_key = apart.entries[100].dedup_key;
    assert!(matches!(
        store.integrate(ORIGIN, apart.integration()).await,
        Err(StorageError::InvalidBatch(_))
    ));
    assert_eq!(store.head(ORIGIN).await.expect("head"), first.new);
    assert_eq!(
        store
            .find_dedup(ORIGIN, &[apart.entries[100].dedup_key])
            .await
            .expect("dedup"),
        [None]
    );

    // The same entry bytes under another key are a second entry; lookups
    // by leaf hash find the first.
    let mut repeat = next_batch(&mut tree.clone(), 1, "r");
    repeat.entries[0].entry = first.entries[1].entry.clone();
    repeat.entries[0].leaf_hash = first.entries[1].leaf_hash;
    repeat.entries[0].evidence_sha256 = first.entries[1].evidence_sha256;
    let mut tree = Integrator::new();
    tree.integrate(first.entries.iter().map(|e| e.leaf_hash));
    repeat.tiles = tree.integrate_full_tiles([repeat.entries[0].leaf_hash]);
    repeat.new = TreeHead {
        size: tree.size(),
        root: tree.root(),
    };
    store
        .integrate(ORIGIN, repeat.integration())
        .await
        .expect("same bytes, new key");
    assert_eq!(
        store
            .find_leaf(ORIGIN, first.entries[1].leaf_hash)
            .await
            .expect("leaf"),
        Some(1)
    );
    assert_eq!(
        store
            .find_dedup(ORIGIN, &[repeat.entries[0].dedup_key])
            .await
            .expect("dedup"),
        [Some(4)]
    );
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
    integrate_next(&store, &mut tree, 5, "p").await;
    store.publish(ORIGIN, 5, b"cp5").await.expect("publish");
    store
        .publish(ORIGIN, 5, b"cp5")
        .await
        .expect("publish again");
    // One checkpoint per size: another note for a published size is
    // refused, and the first one stays.
    assert!(matches!(
        store.publish(ORIGIN, 5, b"another cp5").await,
        Err(StorageError::Conflict(_))
    ));
    assert!(matches!(
        store.publish(ORIGIN, 0, b"another cp0").await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        store.checkpoint(ORIGIN, Some(5)).await.expect("at 5"),
        Some(b"cp5".to_vec())
    );
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

    // A checkpoint per batch, for ever, would grow the store by a row per
    // batch: the latest CHECKPOINTS_KEPT stay, and the older ones go at the
    // store's first publication of the log and every PRUNE_EVERY-th after.
    let last = 5 + CHECKPOINTS_KEPT as u64 + 2 * PRUNE_EVERY + 10;
    integrate_next(&store, &mut tree, last - 5, "q").await;
    for size in 6..=last {
        store
            .publish(ORIGIN, size, format!("cp{size}").as_bytes())
            .await
            .expect("publish");
    }
    // The last prune was at most PRUNE_EVERY - 1 publications ago.
    let oldest_kept = last + 1 - CHECKPOINTS_KEPT as u64;
    let oldest_possible = oldest_kept - (PRUNE_EVERY - 1);
    for gone in [0, 5, oldest_possible - 1] {
        assert_eq!(
            store.checkpoint(ORIGIN, Some(gone)).await.expect("at"),
            None,
            "{gone}"
        );
    }
    for kept in [oldest_kept, last] {
        assert_eq!(
            store.checkpoint(ORIGIN, Some(kept)).await.expect("at"),
            Some(format!("cp{kept}").into_bytes()),
            "{kept}"
        );
    }
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

/// A signer's record of a head of `size` entries, its root made of the
/// byte `root`, signed as `note`.
fn signed(size: u64, root: u8, note: &str) -> SignedHead {
    SignedHead {
        head: TreeHead {
            size,
            root: Hash([root; 32]),
        },
        checkpoint: note.as_bytes().to_vec(),
    }
}

/// A head once recorded is the floor of every later one: the record
/// never shrinks, a recorded size never gets another checkpoint, and
/// recording exactly the record again changes nothing.
async fn signer_record_only_grows(store: impl SignerStore) {
    let five = signed(5, 5, "note 5");
    store
        .record_signed(ORIGIN, None, &five)
        .await
        .expect("first");
    store
        .record_signed(ORIGIN, Some(five.head), &five)
        .await
        .expect("the same record again");
    let other_note = signed(5, 5, "another note 5");
    let other_root = signed(5, 55, "note 5");
    let smaller = signed(3, 3, "note 3");
    for refused in [&other_note, &other_root, &smaller] {
        match store.record_signed(ORIGIN, Some(five.head), refused).await {
            Err(StorageError::Conflict(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        store.last_signed(ORIGIN).await.expect("last"),
        Some(five),
        "the record is unchanged"
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
        Some(StoredEvidence::Content(b"the report".to_vec()))
    );
}

/// An erasure by `by` at `ms`, for `reason`.
fn erasure(ms: u64, by: &str, reason: &str) -> Erasure {
    Erasure {
        erased_at_ms: ms,
        erased_by: by.into(),
        reason: reason.into(),
    }
}

/// The erasure most tests make: 2026-11-29T13:52:21.123Z.
fn court_order() -> Erasure {
    erasure(
        1_795_960_341_123,
        "legal@example.org",
        "court order 17/2026",
    )
}

/// Evidence `content`, uploaded to `store`: its digest.
async fn uploaded(store: &impl EvidenceStore, content: &[u8]) -> [u8; 32] {
    let sha = evault_core::hash::sha256(content);
    store.put_evidence(sha, content).await.expect("upload");
    sha
}

/// Erased evidence reads as its erasure, exactly; other evidence and the
/// log are untouched: the entries naming the digest are still found,
/// read back and prove their inclusion.
async fn erased_evidence_reads_as_its_erasure(store: impl LogStore + EvidenceStore) {
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    let batch = integrate_next(&store, &mut tree, 12, "erasure").await;
    // Entries 0 and 6 name "evidence 0", entries 3 and 9 "evidence 1".
    let erased = uploaded(&store, b"evidence 0").await;
    let kept = uploaded(&store, b"evidence 1").await;
    assert_eq!(
        store
            .find_evidence(ORIGIN, erased, 0, 10)
            .await
            .expect("find"),
        [0, 6]
    );

    let order = court_order();
    assert_eq!(
        store.erase_evidence(erased, &order).await.expect("erase"),
        Some(order.clone())
    );
    assert_eq!(
        store.evidence(erased).await.expect("read"),
        Some(StoredEvidence::Erased(order))
    );
    assert_eq!(
        store.evidence(kept).await.expect("other evidence"),
        Some(StoredEvidence::Content(b"evidence 1".to_vec()))
    );
    assert_eq!(store.head(ORIGIN).await.expect("head"), batch.new);
    assert_eq!(
        store
            .find_evidence(ORIGIN, erased, 0, 10)
            .await
            .expect("find"),
        [0, 6]
    );
    assert_eq!(
        store.read_entries(ORIGIN, 0, 12).await.expect("entries"),
        batch
            .entries
            .iter()
            .map(|e| e.entry.clone())
            .collect::<Vec<_>>()
    );
    assert_log_proves(&store, ORIGIN, 12, tree.root(), &[0, 6]).await;
}

/// A second erasure writes nothing and answers with the first, which
/// stands: who erased the evidence, and when, is never rewritten.
async fn the_first_erasure_stands(store: impl EvidenceStore) {
    let sha = uploaded(&store, b"the report").await;
    let first = court_order();
    assert_eq!(
        store.erase_evidence(sha, &first).await.expect("erase"),
        Some(first.clone())
    );
    let second = erasure(1_800_000_000_000, "dpo@example.org", "data subject request");
    assert_eq!(
        store.erase_evidence(sha, &second).await.expect("again"),
        Some(first.clone())
    );
    assert_eq!(
        store.evidence(sha).await.expect("read"),
        Some(StoredEvidence::Erased(first))
    );
}

/// Erasing evidence never uploaded writes nothing, not even a tombstone:
/// the evidence can still be uploaded afterwards.
async fn erasing_unknown_evidence_writes_nothing(store: impl EvidenceStore) {
    let sha = evault_core::hash::sha256(b"never sent");
    assert_eq!(
        store
            .erase_evidence(sha, &court_order())
            .await
            .expect("erase"),
        None
    );
    assert_eq!(store.evidence(sha).await.expect("read"), None);
    store
        .put_evidence(sha, b"never sent")
        .await
        .expect("upload after");
    assert_eq!(
        store.evidence(sha).await.expect("read"),
        Some(StoredEvidence::Content(b"never sent".to_vec()))
    );
}

/// Once erased, the same bytes are refused, with the erasure, and nothing
/// is stored: an upload never undoes an erasure.
async fn erased_evidence_is_never_stored_again(store: impl EvidenceStore) {
    let sha = uploaded(&store, b"the report").await;
    let order = court_order();
    store.erase_evidence(sha, &order).await.expect("erase");
    let refused = store
        .put_evidence(sha, b"the report")
        .await
        .expect_err("upload of erased evidence");
    assert_eq!(
        refused.to_string(),
        "evidence was erased at 2026-11-29T13:52:21.123Z by legal@example.org: \
         court order 17/2026"
    );
    assert!(
        matches!(&refused, StorageError::Erased(first) if *first == order),
        "{refused:?}"
    );
    assert_eq!(
        store.evidence(sha).await.expect("read"),
        Some(StoredEvidence::Erased(order))
    );
}

/// Times are kept to the millisecond, from the epoch to the last one
/// PostgreSQL holds.
async fn erasure_times_are_kept_to_the_millisecond(store: impl EvidenceStore) {
    for ms in [0, 1, 999, 1_795_960_341_123, 9_224_318_015_999_999] {
        let sha = uploaded(&store, format!("erased at {ms}").as_bytes()).await;
        let at = erasure(ms, "legal@example.org", "timing");
        store.erase_evidence(sha, &at).await.expect("erase");
        assert_eq!(
            store.evidence(sha).await.expect("read"),
            Some(StoredEvidence::Erased(at)),
            "{ms}"
        );
    }
}

/// An upload racing an erasure of the same digest never leaves bytes
/// behind an erasure that returned: either the upload came first (and the
/// erasure took its bytes), or it came after and was refused. Evidence
/// first uploaded in the race is erased only if the erasure came second.
async fn uploads_racing_erasures_never_outlive_them(store: impl EvidenceStore) {
    for round in 0..20 {
        let content = format!("raced {round}").into_bytes();
        let sha = evault_core::hash::sha256(&content);
        let stored_before = round % 2 == 0;
        if stored_before {
            store.put_evidence(sha, &content).await.expect("upload");
        }
        let order = court_order();
        let (put, erased) = tokio::join!(
            store.put_evidence(sha, &content),
            store.erase_evidence(sha, &order)
        );
        let erased = erased.expect("erase");
        match (&put, &erased) {
            (Ok(()), _) | (Err(StorageError::Erased(_)), Some(_)) => {}
            other => panic!("round {round}: {other:?}"),
        }
        if stored_before {
            assert_eq!(erased, Some(order.clone()), "round {round}");
        }
        let expected = match erased {
            Some(order) => StoredEvidence::Erased(order),
            None => StoredEvidence::Content(content),
        };
        assert_eq!(
            store.evidence(sha).await.expect("read"),
            Some(expected),
            "round {round}"
        );
    }
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
    large_batches_read_back_and_prove,
    only_full_tiles_are_stored_each_once,
    derived_tiles_equal_the_integrators,
    derived_fields_must_agree_with_the_entry,
    stale_head_is_refused_and_nothing_written,
    racing_integrations_commit_once,
    dedup_keys_are_never_logged_twice,
    malformed_batches_are_refused,
    checkpoints_are_published_per_size,
    evidence_is_content_addressed,
    erased_evidence_reads_as_its_erasure,
    the_first_erasure_stands,
    erasing_unknown_evidence_writes_nothing,
    erased_evidence_is_never_stored_again,
    erasure_times_are_kept_to_the_millisecond,
    uploads_racing_erasures_never_outlive_them,
);

/// The signer's own database: a schema of the test's own, migrated with
/// the signer's migrations alone.
async fn signer_database(schema: &Schema) -> SignerDatabase {
    SignerDatabase::open(&schema.url, 4)
        .await
        .expect("signer database")
}

macro_rules! signer_conformance {
    ($($name:ident),* $(,)?) => {
        mod signer_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let path = dir.path().join(evault_storage::signer::SIGNER_FILE);
                    super::$name(super::SignerFile::open(&path).expect("open")).await;
                }
            )*
        }
        mod signer_database {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let schema = super::Schema::create("evault_signer").await;
                    super::$name(super::signer_database(&schema).await).await;
                    schema.drop_schema().await;
                }
            )*
        }
    };
}

signer_conformance!(
    signer_state_moves_by_compare_and_swap,
    signer_record_only_grows,
);

/// The signer's record and the log never share a database: the signer
/// refuses one holding a log, and the log's migrations refuse one holding
/// the signer's record. Neither writes anything into the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_database_and_log_refuse_to_share_a_database() {
    let log = new_schema().await;
    migrate(&log.url).await.expect("log");
    match SignerDatabase::open(&log.url, 2).await {
        Err(StorageError::NotApart(message)) => {
            assert!(message.contains("tree_heads"), "{message}")
        }
        Ok(_) => panic!("the signer opened the log's database"),
        Err(other) => panic!("{other:?}"),
    }
    let signer = Schema::create("evault_signer").await;
    assert_eq!(migrate_signer(&signer.url).await.expect("signer"), [1]);
    match migrate(&signer.url).await {
        Err(StorageError::NotApart(message)) => {
            assert!(message.contains("signed_heads"), "{message}")
        }
        other => panic!("the log migrated into the signer's database: {other:?}"),
    }
    let tables = |schema: &Schema| {
        let name = schema.name.clone();
        async move {
            let (client, connection) = tokio_postgres::connect(
                &evault_test_support::database_url(),
                tokio_postgres::NoTls,
            )
            .await
            .expect("connect");
            tokio::spawn(connection);
            let rows = client
                .query(
                    "SELECT table_name::TEXT FROM information_schema.tables
                     WHERE table_schema = $1 ORDER BY 1",
                    &[&name],
                )
                .await
                .expect("tables");
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    let in_log = tables(&log).await;
    assert!(
        !in_log.contains(&"signed_heads".to_string())
            && !in_log.contains(&"signer_schema_history".to_string()),
        "{in_log:?}"
    );
    // The signer's migrations keep their own history, never refinery's
    // default (the log's).
    assert_eq!(
        tables(&signer).await,
        ["signed_heads", "signer_schema_history"]
    );
    log.drop_schema().await;
    signer.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_migrations_apply_once_and_rerun_as_a_no_op() {
    let schema = Schema::create("evault_signer").await;
    let (a, b) = tokio::join!(migrate_signer(&schema.url), migrate_signer(&schema.url));
    let mut all = a.expect("first");
    all.extend(b.expect("second"));
    assert_eq!(all, [1]);
    assert_eq!(
        migrate_signer(&schema.url).await.expect("again"),
        Vec::<u32>::new()
    );
    schema.drop_schema().await;
}

/// Checks that the database at `url` refuses each of `statements` as an
/// integrity violation: what its triggers refuse when tried by hand.
async fn assert_refused_in_sql(url: &str, statements: &[&str]) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    for sql in statements {
        let error = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::INTEGRITY_CONSTRAINT_VIOLATION),
            "{sql}: {error}"
        );
    }
}

/// The database itself refuses to move the signer's record backwards or
/// to delete it, should someone try by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_database_refuses_a_rollback_made_in_sql() {
    let schema = Schema::create("evault_signer").await;
    let store = signer_database(&schema).await;
    let nine = signed(9, 9, "note 9");
    store
        .record_signed(ORIGIN, None, &nine)
        .await
        .expect("record");
    assert_refused_in_sql(
        &schema.url,
        &[
            "UPDATE signed_heads SET size = 3",
            "UPDATE signed_heads SET checkpoint = 'other'",
            "DELETE FROM signed_heads",
        ],
    )
    .await;
    assert_eq!(store.last_signed(ORIGIN).await.expect("last"), Some(nine));
    schema.drop_schema().await;
}

/// A copy of the embedded file holds the checkpoints stored before it,
/// whether or not another commit followed (`LogStore::publish`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_checkpoints_outlive_the_store_that_stored_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tree = Integrator::new();
    {
        let store = EmbeddedStore::open(dir.path()).expect("open");
        store.create_log(ORIGIN).await.expect("create");
        integrate_next(&store, &mut tree, 5, "a").await;
        store.publish(ORIGIN, 5, b"cp5").await.expect("publish");
        integrate_next(&store, &mut tree, 5, "b").await;
        store.publish(ORIGIN, 10, b"cp10").await.expect("publish");
    }
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store.checkpoint(ORIGIN, Some(5)).await.expect("at 5"),
        Some(b"cp5".to_vec())
    );
    assert_eq!(
        store.checkpoint(ORIGIN, None).await.expect("latest"),
        Some(b"cp10".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_file_refuses_the_logs_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(EmbeddedStore::open(dir.path()).expect("log"));
    match SignerFile::open(&dir.path().join(evault_storage::embedded::DATABASE_FILE)) {
        Err(StorageError::NotApart(message)) => {
            assert!(message.contains("tree_heads"), "{message}")
        }
        Ok(_) => panic!("the signer opened the log's file"),
        Err(other) => panic!("{other:?}"),
    }
}

/// The record of a head as files and databases written before the signer
/// had a store of its own kept it: `signer_heads` in the log's storage.
fn legacy(size: u64) -> SignedHead {
    signed(size, size as u8, &format!("legacy note {size}"))
}

/// The legacy record moves into the signer's store once: copied for an
/// origin the signer's store has no record of, never over one it has, and
/// removed from the log's storage so that it cannot come back.
async fn legacy_record_moves_once(log: impl LegacySignerRecord, signer: impl SignerStore) {
    let own = signed(40, 40, "own note");
    signer
        .record_signed("vault.example/newer", None, &own)
        .await
        .expect("own record");
    let moved = adopt_legacy_record(&log, &signer).await.expect("adopt");
    assert_eq!(moved, [(ORIGIN.to_string(), legacy(12).head)]);
    assert_eq!(
        signer.last_signed(ORIGIN).await.expect("moved"),
        Some(legacy(12))
    );
    assert_eq!(
        signer
            .last_signed("vault.example/newer")
            .await
            .expect("kept"),
        Some(own),
        "a record of the signer's own is never replaced"
    );
    assert_eq!(log.legacy_signed_heads().await.expect("gone"), []);
    assert_eq!(adopt_legacy_record(&log, &signer).await.expect("again"), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_legacy_record_moves_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(EmbeddedStore::open(dir.path()).expect("log"));
    {
        const LEGACY: redb::TableDefinition<'_, &str, &[u8]> =
            redb::TableDefinition::new("signer_heads");
        let db = redb::Database::create(dir.path().join(evault_storage::embedded::DATABASE_FILE))
            .expect("redb");
        let txn = db.begin_write().expect("write");
        {
            let mut table = txn.open_table(LEGACY).expect("legacy table");
            for (origin, signed) in [(ORIGIN, legacy(12)), ("vault.example/newer", legacy(30))] {
                let mut value = signed.head.size.to_be_bytes().to_vec();
                value.extend_from_slice(signed.head.root.as_bytes());
                value.extend_from_slice(&signed.checkpoint);
                table.insert(origin, value.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
    }
    let log = EmbeddedStore::open(dir.path()).expect("reopen");
    let signer = SignerFile::open(&dir.path().join(evault_storage::signer::SIGNER_FILE))
        .expect("signer file");
    legacy_record_moves_once(log, signer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_legacy_record_moves_once() {
    let schema = new_schema().await;
    let log = store(&schema).await;
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    for (origin, signed) in [(ORIGIN, legacy(12)), ("vault.example/newer", legacy(30))] {
        client
            .execute(
                "INSERT INTO signer_heads (origin, size, root, checkpoint) VALUES ($1, $2, $3, $4)",
                &[
                    &origin,
                    &(signed.head.size as i64),
                    &signed.head.root.as_bytes(),
                    &signed.checkpoint,
                ],
            )
            .await
            .expect("legacy row");
    }
    let signer_schema = Schema::create("evault_signer").await;
    legacy_record_moves_once(log, signer_database(&signer_schema).await).await;
    schema.drop_schema().await;
    signer_schema.drop_schema().await;
}

/// Whether the last commit of the redb file at `path` was made in two
/// phases: redb records it in the file header's flags byte (after the
/// 9-byte magic number), bit 4. Read while the file is open: closing it
/// makes a commit of redb's own.
fn committed_in_two_phases(path: &std::path::Path) -> bool {
    let header = std::fs::read(path).expect("read");
    header[9] & 4 != 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_files_commit_in_two_phases() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The probe itself: a commit redb makes by default is single-phase.
    let plain = dir.path().join("plain.redb");
    {
        const T: redb::TableDefinition<'_, u64, u64> = redb::TableDefinition::new("t");
        let db = redb::Database::create(&plain).expect("redb");
        let txn = db.begin_write().expect("write");
        txn.open_table(T).expect("t").insert(1, 1).expect("insert");
        txn.commit().expect("commit");
        assert!(!committed_in_two_phases(&plain));
    }

    let log = EmbeddedStore::open(&dir.path().join("log")).expect("log");
    let mut tree = Integrator::new();
    let batch = next_batch(&mut tree, 3, "2pc");
    log.create_log(ORIGIN).await.expect("create");
    log.integrate(ORIGIN, batch.integration())
        .await
        .expect("integrate");
    log.publish(ORIGIN, 3, b"cp3").await.expect("publish");
    assert!(committed_in_two_phases(
        &dir.path()
            .join("log")
            .join(evault_storage::embedded::DATABASE_FILE)
    ));

    let path = dir.path().join(evault_storage::signer::SIGNER_FILE);
    let signer = SignerFile::open(&path).expect("signer");
    signer
        .record_signed(ORIGIN, None, &legacy(3))
        .await
        .expect("record");
    assert!(committed_in_two_phases(&path));
}

/// The embedded store in `dir`, holding the log, empty.
async fn open_embedded_log(dir: &std::path::Path) -> EmbeddedStore {
    let store = EmbeddedStore::open(dir).expect("open");
    store.create_log(ORIGIN).await.expect("create");
    store
}

/// The embedded store in `dir`, holding the log with `batch` integrated.
async fn embedded_log(dir: &std::path::Path, batch: &Batch) -> EmbeddedStore {
    let store = open_embedded_log(dir).await;
    store
        .integrate(ORIGIN, batch.integration())
        .await
        .expect("integrate");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tree = Integrator::new();
    let batch = next_batch(&mut tree, 20, "durable");
    {
        let _open = embedded_log(dir.path(), &batch).await;
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

/// Uploads and erases evidence in `store`, then checks that the store
/// `reopen` makes of it (after closing it) still holds the erasure and
/// refuses the bytes.
async fn erasure_survives_reopening<S, F>(store: S, reopen: impl FnOnce(S) -> F)
where
    S: EvidenceStore,
    F: std::future::Future<Output = S>,
{
    let sha = uploaded(&store, b"the report").await;
    let order = court_order();
    store.erase_evidence(sha, &order).await.expect("erase");
    let store = reopen(store).await;
    assert_eq!(
        store.evidence(sha).await.expect("read"),
        Some(StoredEvidence::Erased(order.clone()))
    );
    assert!(matches!(
        store.put_evidence(sha, b"the report").await,
        Err(StorageError::Erased(first)) if first == order
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_erasure_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let store = EmbeddedStore::open(&path).expect("open");
    erasure_survives_reopening(store, |store| async move {
        drop(store);
        EmbeddedStore::open(&path).expect("reopen")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_erasure_survives_reopening() {
    let schema = new_schema().await;
    let url = schema.url.clone();
    erasure_survives_reopening(store(&schema).await, |store| async move {
        drop(store);
        PostgresStore::connect(&url, 2).expect("reconnect")
    })
    .await;
    schema.drop_schema().await;
}

/// Waits until `count` sessions named `application` wait for a lock.
async fn until_waiting(watcher: &tokio_postgres::Client, application: &str, count: i64) {
    for _ in 0..1000 {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&application],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if waiting >= count {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{count} sessions of {application} never waited for a lock");
}

/// The interleaving that would store erased evidence again, forced: an
/// erasure has deleted the bytes but not yet committed (it waits on a
/// tombstone another session holds uncommitted) when an upload of the
/// same bytes starts. The upload waits for the erasure, then is refused;
/// no bytes are left behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_upload_waits_for_an_erasure_in_progress() {
    let schema = new_schema().await;
    migrate(&schema.url).await.expect("migrate");
    let application = format!("evault_erasure_race_{}", std::process::id());
    let store =
        PostgresStore::connect(&format!("{}&application_name={application}", schema.url), 4)
            .expect("pool");
    let sha = uploaded(&store, b"the report").await;
    let connect = || async {
        let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
    };
    let watcher = connect().await;
    let mut holder = connect().await;
    let held = holder.transaction().await.expect("begin");
    held.execute(
        "INSERT INTO evidence_erasures (sha256, erased_at, erased_by, reason)
         VALUES ($1, now(), 'the test', 'held open')",
        &[&sha.as_slice()],
    )
    .await
    .expect("hold a tombstone");

    let erase = tokio::spawn({
        let store = store.clone();
        async move { store.erase_evidence(sha, &court_order()).await }
    });
    until_waiting(&watcher, &application, 1).await;
    let put = tokio::spawn({
        let store = store.clone();
        async move { store.put_evidence(sha, b"the report").await }
    });
    until_waiting(&watcher, &application, 2).await;
    held.rollback().await.expect("let the erasure commit");

    assert_eq!(
        erase.await.expect("erase task").expect("erase"),
        Some(court_order())
    );
    assert!(matches!(
        put.await.expect("upload task"),
        Err(StorageError::Erased(first)) if first == court_order()
    ));
    let left: i64 = watcher
        .query_one(
            "SELECT count(*) FROM evidence WHERE sha256 = $1",
            &[&sha.as_slice()],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "erased bytes stored again");
    drop(store);
    schema.drop_schema().await;
}

/// PostgreSQL refuses an erasure it cannot keep as given, and erases
/// nothing: a time beyond its last timestamp (the end of the year 294276),
/// and, as a last line behind the callers' own validation, an empty
/// principal or reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_erasures_it_cannot_keep() {
    let schema = new_schema().await;
    let store = store(&schema).await;
    let sha = uploaded(&store, b"the report").await;
    for (unkept, beyond_range) in [
        (
            erasure(9_224_318_016_000_000, "legal@example.org", "late"),
            true,
        ),
        (erasure(u64::MAX, "legal@example.org", "late"), true),
        (erasure(1_795_960_341_123, "", "court order 17/2026"), false),
        (erasure(1_795_960_341_123, "legal@example.org", ""), false),
    ] {
        match store.erase_evidence(sha, &unkept).await {
            Err(StorageError::InvalidBatch(_)) if beyond_range => {}
            Err(StorageError::Backend(_)) if !beyond_range => {}
            other => panic!("{unkept:?}: {other:?}"),
        }
    }
    assert_eq!(
        store.evidence(sha).await.expect("read"),
        Some(StoredEvidence::Content(b"the report".to_vec()))
    );
    schema.drop_schema().await;
}

/// The database itself keeps an erasure as it was made: a tombstone is
/// never rewritten or removed by hand in SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_erasures_stand_against_sql() {
    let schema = new_schema().await;
    let store = store(&schema).await;
    let sha = uploaded(&store, b"the report").await;
    let order = court_order();
    store.erase_evidence(sha, &order).await.expect("erase");
    assert_refused_in_sql(
        &schema.url,
        &[
            "UPDATE evidence_erasures SET reason = 'another reason'",
            "UPDATE evidence_erasures SET erased_at = now()",
            "DELETE FROM evidence_erasures",
        ],
    )
    .await;
    assert_eq!(
        store.evidence(sha).await.expect("read"),
        Some(StoredEvidence::Erased(order))
    );
    schema.drop_schema().await;
}

/// A data directory written before full-tiles-only (format 1) held each
/// level's latest partial tile too. Opening it drops them, so the full
/// tiles later completed at their positions are inserted like any other,
/// and every tile reads as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_opens_a_directory_holding_partial_tiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tree = Integrator::new();
    let first = next_batch(&mut tree, 300, "format 1");
    drop(embedded_log(dir.path(), &first).await);
    // Make the file what format 1 left: the partial tiles stored beside
    // the full one, and no format recorded.
    {
        use embedded_file::{META, TILES, file};
        let db = file(dir.path());
        let txn = db.begin_write().expect("write");
        {
            let mut tiles = txn.open_table(TILES).expect("tiles");
            for (tile, hashes) in tree.partial_tiles() {
                tiles
                    .insert((1, tile.level, tile.index), hashes)
                    .expect("partial tile");
            }
            txn.open_table(META)
                .expect("meta")
                .remove("format")
                .expect("forget the format");
        }
        txn.commit().expect("commit");
    }
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    let second = next_batch(&mut tree, 300, "format 2");
    assert_eq!(
        second
            .tiles
            .iter()
            .map(|(t, _)| t.path())
            .collect::<Vec<_>>(),
        ["tile/0/001"],
        "completes the tile format 1 stored partially"
    );
    store
        .integrate(ORIGIN, second.integration())
        .await
        .expect("integrate over the dropped partial tile");
    let mut fetched = fetch_all(&store, ORIGIN, tree.size()).await;
    assert_eq!(
        TreeReader::new(tree.size(), &mut fetched)
            .root(tree.size())
            .expect("root"),
        tree.root()
    );
}

/// Tables of the embedded store's file, for tests that write it as an
/// earlier format left it: the lookups as format 3 keys them (bucket of
/// 65,536 positions first) and as format 2 did (hash first).
mod embedded_file {
    pub(crate) const TILES: redb::TableDefinition<'_, (u64, u8, u64), &[u8]> =
        redb::TableDefinition::new("tiles");
    pub(crate) const LEAVES: redb::TableDefinition<'_, (u64, u64, &[u8]), u64> =
        redb::TableDefinition::new("leaf_hashes_by_bucket");
    pub(crate) const EVIDENCE: redb::TableDefinition<'_, (u64, u64, &[u8], u64), ()> =
        redb::TableDefinition::new("evidence_entries_by_bucket");
    pub(crate) const LEAVES_V2: redb::TableDefinition<'_, (u64, &[u8]), u64> =
        redb::TableDefinition::new("leaf_hashes");
    pub(crate) const EVIDENCE_V2: redb::TableDefinition<'_, (u64, &[u8], u64), ()> =
        redb::TableDefinition::new("evidence_entries");
    pub(crate) const HEADS: redb::TableDefinition<'_, u64, &[u8]> =
        redb::TableDefinition::new("tree_heads");
    pub(crate) const META: redb::TableDefinition<'_, &str, u64> =
        redb::TableDefinition::new("meta");
    pub(crate) const ENTRIES: redb::TableDefinition<'_, (u64, u64), &[u8]> =
        redb::TableDefinition::new("entries");

    pub(crate) fn file(dir: &std::path::Path) -> redb::Database {
        redb::Database::create(dir.join(evault_storage::embedded::DATABASE_FILE)).expect("redb")
    }

    pub(crate) fn table_names(dir: &std::path::Path) -> Vec<String> {
        use redb::{ReadableDatabase, TableHandle};
        let db = file(dir);
        let txn = db.begin_read().expect("read");
        txn.list_tables()
            .expect("tables")
            .map(|t| t.name().to_string())
            .collect()
    }
}

/// Lookups by leaf hash and by digest in the embedded store probe every
/// bucket of 65,536 positions up to the head, and nothing beyond it.
/// The rows are written straight into the file, as a log of 200,001
/// entries would hold them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_lookups_reach_every_bucket_up_to_the_head() {
    use embedded_file::*;
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open_embedded_log(dir.path()).await);
    let (early, late, beyond) = (
        leaf_hash(b"early"),
        leaf_hash(b"late"),
        leaf_hash(b"beyond"),
    );
    let sha = [7u8; 32];
    {
        let db = file(dir.path());
        let txn = db.begin_write().expect("write");
        {
            let mut head = 200_001u64.to_be_bytes().to_vec();
            head.extend_from_slice(&[1; 32]);
            txn.open_table(HEADS)
                .expect("heads")
                .insert(1, head.as_slice())
                .expect("head");
            let mut leaves = txn.open_table(LEAVES).expect("leaves");
            for (leaf, index) in [
                (&early, 65_535u64),
                (&late, 65_538),
                (&late, 131_073),
                (&beyond, 200_001),
            ] {
                leaves
                    .insert((1, index >> 16, leaf.as_bytes()), index)
                    .expect("leaf");
            }
            let mut evidence = txn.open_table(EVIDENCE).expect("evidence");
            for index in [3u64, 65_535, 65_538, 131_073, 200_001] {
                evidence
                    .insert((1, index >> 16, sha.as_slice(), index), ())
                    .expect("evidence");
            }
        }
        txn.commit().expect("commit");
    }
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store.find_leaf(ORIGIN, early).await.expect("leaf"),
        Some(65_535)
    );
    assert_eq!(
        store.find_leaf(ORIGIN, late).await.expect("leaf"),
        Some(65_538)
    );
    assert_eq!(store.find_leaf(ORIGIN, beyond).await.expect("leaf"), None);
    for (from, limit, want) in [
        (0, 10, vec![3, 65_535, 65_538, 131_073]),
        (65_536, 10, vec![65_538, 131_073]),
        (65_539, 10, vec![131_073]),
        (0, 2, vec![3, 65_535]),
        (65_536, 1, vec![65_538]),
        (200_001, 10, vec![]),
    ] {
        assert_eq!(
            store
                .find_evidence(ORIGIN, sha, from, limit)
                .await
                .expect("evidence"),
            want,
            "from {from}, at most {limit}"
        );
    }
}

/// A data directory written in format 2 kept its lookups keyed by hash
/// first. Opening it moves them into the tables keyed by bucket and drops
/// the old ones, and every lookup answers as before, then and after more
/// appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_moves_format_2_lookups_into_buckets() {
    use embedded_file::*;
    use redb::ReadableTable;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tree = Integrator::new();
    let first = next_batch(&mut tree, 300, "format 2");
    drop(embedded_log(dir.path(), &first).await);
    // Make the file what format 2 left: the same rows keyed by hash first.
    {
        let db = file(dir.path());
        let txn = db.begin_write().expect("write");
        {
            let leaves = txn.open_table(LEAVES).expect("leaves");
            let mut old = txn.open_table(LEAVES_V2).expect("old leaves");
            for row in leaves.iter().expect("rows") {
                let (key, index) = row.expect("row");
                let (id, _, leaf) = key.value();
                old.insert((id, leaf), index.value()).expect("old leaf");
            }
            let evidence = txn.open_table(EVIDENCE).expect("evidence");
            let mut old = txn.open_table(EVIDENCE_V2).expect("old evidence");
            for row in evidence.iter().expect("rows") {
                let (key, _) = row.expect("row");
                let (id, _, sha, index) = key.value();
                old.insert((id, sha, index), ()).expect("old evidence");
            }
            txn.open_table(META)
                .expect("meta")
                .insert("format", 2)
                .expect("format 2");
        }
        txn.delete_table(LEAVES).expect("drop leaves");
        txn.delete_table(EVIDENCE).expect("drop evidence");
        txn.commit().expect("commit");
    }
    let names = table_names(dir.path());
    assert!(names.contains(&"leaf_hashes".to_string()), "{names:?}");
    assert!(
        !names.contains(&"leaf_hashes_by_bucket".to_string()),
        "{names:?}"
    );

    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    let second = integrate_next(&store, &mut tree, 300, "format 3").await;
    let sha0 = evault_core::hash::sha256(b"evidence 0");
    let naming: Vec<u64> = (0..600).filter(|i| i % 6 == 0).collect();
    assert_eq!(
        store
            .find_evidence(ORIGIN, sha0, 0, 1000)
            .await
            .expect("evidence"),
        naming
    );
    assert_eq!(
        store
            .find_evidence(ORIGIN, sha0, 250, 3)
            .await
            .expect("evidence"),
        [252, 258, 264]
    );
    for e in first.entries.iter().chain(&second.entries).step_by(37) {
        assert_eq!(
            store.find_leaf(ORIGIN, e.leaf_hash).await.expect("leaf"),
            Some(e.index)
        );
    }
    drop(store);
    let names = table_names(dir.path());
    assert!(!names.contains(&"leaf_hashes".to_string()), "{names:?}");
    assert!(
        !names.contains(&"evidence_entries".to_string()),
        "{names:?}"
    );
}

/// Moving a file to format 3 builds its lookups one bucket at a time and
/// records each: an open interrupted after some buckets carries on from
/// the next one. Here the record says bucket 0 is done (it is not, so its
/// entries stay unfound, which shows it is not built again), and bucket 1
/// is built from the entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_upgrade_carries_on_from_the_bucket_it_reached() {
    use embedded_file::*;
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open_embedded_log(dir.path()).await);
    let sha = [9u8; 32];
    let bytes = |i: u64| -> Vec<u8> {
        if i == 10 || i == 65_540 {
            let mut v1 = vec![1u8];
            v1.extend_from_slice(&sha);
            v1.extend_from_slice(format!("entry {i}").as_bytes());
            v1
        } else {
            format!("entry {i}").into_bytes()
        }
    };
    {
        let db = file(dir.path());
        let txn = db.begin_write().expect("write");
        {
            let mut entries = txn.open_table(ENTRIES).expect("entries");
            for i in 0..70_000 {
                entries.insert((1, i), bytes(i).as_slice()).expect("entry");
            }
            let mut head = 70_000u64.to_be_bytes().to_vec();
            head.extend_from_slice(&[1; 32]);
            txn.open_table(HEADS)
                .expect("heads")
                .insert(1, head.as_slice())
                .expect("head");
            let mut meta = txn.open_table(META).expect("meta");
            meta.insert("format", 2).expect("format 2");
            meta.insert("bucketed/1", 1).expect("bucket 0 done");
        }
        txn.commit().expect("commit");
    }
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store
            .find_leaf(ORIGIN, leaf_hash(&bytes(65_537)))
            .await
            .expect("leaf"),
        Some(65_537)
    );
    assert_eq!(
        store
            .find_leaf(ORIGIN, leaf_hash(&bytes(5)))
            .await
            .expect("leaf"),
        None
    );
    assert_eq!(
        store
            .find_evidence(ORIGIN, sha, 0, 10)
            .await
            .expect("evidence"),
        [65_540]
    );
    drop(store);
    let db = file(dir.path());
    let txn = redb::ReadableDatabase::begin_read(&db).expect("read");
    let meta = txn.open_table(META).expect("meta");
    assert_eq!(
        meta.get("format").expect("format").map(|g| g.value()),
        Some(3)
    );
    assert!(
        meta.get("bucketed/1").expect("record").is_none(),
        "the record is gone"
    );
}

/// The log's migrations as `migrations/` holds them: the version and name
/// of each `V<version>__<name>.sql`, in version order.
fn migration_files() -> Vec<(u32, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut files: Vec<(u32, String)> = std::fs::read_dir(&dir)
        .expect("migrations")
        .filter_map(|file| {
            let file = file.expect("file").file_name().into_string().ok()?;
            let (version, name) = file.strip_prefix('V')?.split_once("__")?;
            Some((
                version.parse().expect("version"),
                name.strip_suffix(".sql")?.to_string(),
            ))
        })
        .collect();
    files.sort();
    files
}

/// Checks that the history `store` reports is every migration in
/// `migrations/`, in order, each with when it was applied and its
/// checksum.
async fn assert_history_is_every_migration(store: &impl LogStore) {
    let history = store.applied_migrations().await.expect("history");
    let listed: Vec<(u32, String)> = history
        .iter()
        .map(|m| (m.version, m.name.clone()))
        .collect();
    assert_eq!(listed, migration_files());
    for migration in &history {
        assert!(!migration.applied_on.is_empty(), "{migration:?}");
        assert!(migration.checksum.parse::<u64>().is_ok(), "{migration:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_from_empty_and_rerun_as_a_no_op() {
    let schema = new_schema().await;
    let store = PostgresStore::connect(&schema.url, 2).expect("pool");
    assert_eq!(
        store.applied_migrations().await.expect("no history yet"),
        []
    );
    let applied = migrate(&schema.url).await.expect("migrate");
    assert_eq!(applied, [1, 2, 3, 4, 5]);
    assert_eq!(
        migration_files(),
        [
            (1, "log".to_string()),
            (2, "evidence".to_string()),
            (3, "lean_entries".to_string()),
            (4, "evidence_erasure".to_string()),
            (5, "bucketed_lookups".to_string()),
        ]
    );
    assert_history_is_every_migration(&store).await;
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    let batch = integrate_next(&store, &mut tree, 10, "kept").await;
    let history = store.applied_migrations().await.expect("history");
    assert_eq!(
        migrate(&schema.url).await.expect("again"),
        Vec::<u32>::new()
    );
    assert_eq!(store.head(ORIGIN).await.expect("head"), batch.new);
    assert_eq!(
        store.applied_migrations().await.expect("history"),
        history,
        "a migration run that applies nothing records nothing"
    );
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_has_no_migrations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    assert_eq!(store.applied_migrations().await.expect("history"), []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_version_once() {
    let schema = new_schema().await;
    let (a, b) = tokio::join!(migrate(&schema.url), migrate(&schema.url));
    let mut all = a.expect("first");
    all.extend(b.expect("second"));
    all.sort();
    assert_eq!(all, [1, 2, 3, 4, 5]);
    schema.drop_schema().await;
}

/// Writes the log `origin`, its entries in `batches`, as the schema at
/// `version` (1 to 3) held it and the store of that time wrote it, in one
/// transaction, and publishes `checkpoint` for its final size. Before V3:
/// entries with their leaf hash and evidence digest, and after each batch
/// every tile that changed upserted, partial tiles included. V3: entries
/// with their bytes and dedup key only, and each full tile inserted once.
/// Returns the tree and the full tiles written.
async fn write_log_at(
    url: &str,
    version: u32,
    origin: &str,
    batches: &[Vec<StoredEntry>],
    checkpoint: &[u8],
) -> (Integrator, BTreeMap<(u8, u64), Vec<u8>>) {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let tx = client.transaction().await.expect("begin");
    let id: i64 = tx
        .query_one(
            "INSERT INTO logs (origin) VALUES ($1) RETURNING id",
            &[&origin],
        )
        .await
        .expect("log")
        .get(0);
    let mut tree = Integrator::new();
    let mut full = BTreeMap::new();
    for entries in batches {
        for e in entries {
            let index = e.index as i64;
            if version < 3 {
                tx.execute(
                    "INSERT INTO entries (log_id, idx, entry, leaf_hash, dedup_key, evidence_sha256)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &id,
                        &index,
                        &e.entry,
                        &e.leaf_hash.as_bytes(),
                        &e.dedup_key.as_slice(),
                        &e.evidence_sha256.as_ref().map(|d| d.as_slice()),
                    ],
                )
                .await
            } else {
                tx.execute(
                    "INSERT INTO entries (log_id, idx, entry, dedup_key) VALUES ($1, $2, $3, $4)",
                    &[&id, &index, &e.entry, &e.dedup_key.as_slice()],
                )
                .await
            }
            .expect("entry");
        }
        let leaves = entries.iter().map(|e| e.leaf_hash);
        let (tiles, insert) = if version < 3 {
            (
                tree.integrate(leaves),
                "INSERT INTO tiles (log_id, level, idx, hashes) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (log_id, level, idx) DO UPDATE SET hashes = EXCLUDED.hashes",
            )
        } else {
            (
                tree.integrate_full_tiles(leaves),
                "INSERT INTO tiles (log_id, level, idx, hashes) VALUES ($1, $2, $3, $4)",
            )
        };
        for (tile, hashes) in tiles {
            tx.execute(
                insert,
                &[&id, &i16::from(tile.level), &(tile.index as i64), &hashes],
            )
            .await
            .expect("tile");
            if tile.is_full() {
                full.insert((tile.level, tile.index), hashes);
            }
        }
    }
    tx.execute(
        "INSERT INTO tree_heads (log_id, size, root) VALUES ($1, $2, $3)",
        &[&id, &(tree.size() as i64), &tree.root().as_bytes()],
    )
    .await
    .expect("head");
    tx.execute(
        "INSERT INTO checkpoints (log_id, size, note) VALUES ($1, $2, $3)",
        &[&id, &(tree.size() as i64), &checkpoint],
    )
    .await
    .expect("checkpoint");
    tx.commit().await.expect("commit");
    (tree, full)
}

/// The entries of the main log written before an upgrade, in batches of
/// `counts` entries.
fn logged_before_upgrade(counts: &[u64]) -> Vec<Vec<StoredEntry>> {
    let mut next = 0;
    counts
        .iter()
        .enumerate()
        .map(|(round, &count)| {
            let batch = (next..next + count)
                .map(|i| entry(i, &format!("before the upgrade, batch {round}")))
                .collect();
            next += count;
            batch
        })
        .collect()
}

/// The audit trail of the main log `logged`, as tree and signer write it:
/// a tree taking the lead of the empty log, then a checkpoint signed at
/// 300 entries and one at all of them, each record pinning the head just
/// signed.
fn audit_records(logged: &[StoredEntry]) -> Vec<AuditRecord> {
    let head = |size: usize| {
        let mut tree = Integrator::new();
        tree.integrate(logged[..size].iter().map(|e| e.leaf_hash));
        PinnedHead {
            size: size as u64,
            root: tree.root(),
        }
    };
    let signed = |time_ms: u64, size: usize| {
        let head = head(size);
        AuditRecord {
            time_ms,
            event: trail::CHECKPOINT_SIGNED.into(),
            principal: None,
            log: head,
            fields: [
                ("size".to_string(), head.size.into()),
                (
                    "root".to_string(),
                    trail::pinned_head_value(&head)["root"].clone(),
                ),
                ("key_ids".to_string(), vec!["5f0e4a1c"].into()),
            ]
            .into_iter()
            .collect(),
        }
    };
    let leader = AuditRecord {
        time_ms: 1_795_960_341_000,
        event: trail::LEADER_ACQUIRED.into(),
        principal: None,
        log: head(0),
        fields: [("instance".to_string(), "tree-0".into())]
            .into_iter()
            .collect(),
    };
    vec![
        leader,
        signed(1_795_960_342_250, 300),
        signed(1_795_960_343_500, logged.len()),
    ]
}

/// `records` as the audit trail's entries, from index 0.
fn audit_entries(records: &[AuditRecord]) -> Vec<StoredEntry> {
    records
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let bytes = record.to_bytes();
            StoredEntry {
                index: index as u64,
                leaf_hash: leaf_hash(&bytes),
                dedup_key: evault_core::hash::sha256(&bytes),
                evidence_sha256: evidence_digest(&bytes),
                entry: bytes,
            }
        })
        .collect()
}

/// Checks that `store` serves the log `origin` as `tree` and the `full`
/// tiles written before an upgrade: the same head, the same tiles byte for
/// byte (the full ones kept, the partial ones derived), and an inclusion
/// proof of each entry at `indices`.
async fn assert_serves_as_before(
    store: &PostgresStore,
    origin: &str,
    tree: &Integrator,
    full: &BTreeMap<(u8, u64), Vec<u8>>,
    indices: &[u64],
) {
    let size = tree.size();
    assert_eq!(
        store.head(origin).await.expect("head"),
        TreeHead {
            size,
            root: tree.root()
        },
        "{origin}"
    );
    let wanted: Vec<TileId> = tiles_for_size(size).collect();
    let read = read_tiles(store, origin, size, &wanted, &TileCache::new(16))
        .await
        .expect("tiles");
    for (tile, got) in wanted.iter().zip(&read) {
        let want = match full.get(&(tile.level, tile.index)) {
            Some(bytes) => bytes.clone(),
            None => tree
                .partial_tiles()
                .find(|(t, _)| t == tile)
                .map(|(_, b)| b.to_vec())
                .expect("partial"),
        };
        assert_eq!(got, &want, "{origin}: {}", tile.path());
    }
    assert_log_proves(store, origin, size, tree.root(), indices).await;
}

/// Every migration after the first upgrades a database that already holds
/// a log, its audit trail and uploaded evidence, and all of it stays intact:
/// V3 rewrites the entries without their derivable columns and drops the
/// stored partial tiles, and the same tiles, proofs and lookups are served
/// from what remains, for both logs; the audit records read back as
/// written; the evidence reads back as uploaded, and can be erased (V4);
/// lookups by leaf hash and digest find the old rows through V5's
/// bucketed indexes; and the history lists every migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_migration_upgrades_a_database_holding_a_log() {
    let latest = 5;
    let audit = trail::audit_origin(ORIGIN);
    let logged = logged_before_upgrade(&[100, 200, 5, 295]);
    let records = audit_records(&logged.concat());
    let audit_logged = audit_entries(&records);
    let audit_batches = [audit_logged[..1].to_vec(), audit_logged[1..].to_vec()];
    // Named by the odd (kept) and even (erased) evidence entries.
    let (kept, erased) = (b"evidence 1".as_slice(), b"evidence 0".as_slice());
    let (kept_sha, erased_sha) = (
        evault_core::hash::sha256(kept),
        evault_core::hash::sha256(erased),
    );
    for from in 1..latest {
        let schema = new_schema().await;
        assert_eq!(
            migrate_to(&schema.url, Some(from))
                .await
                .expect("old schema"),
            (1..=from).collect::<Vec<_>>()
        );
        let (mut tree, full) = write_log_at(
            &schema.url,
            from,
            ORIGIN,
            &logged,
            b"checkpoint before the upgrade",
        )
        .await;
        let size = tree.size();
        assert_eq!(size, 600);
        let (audit_tree, audit_full) = write_log_at(
            &schema.url,
            from,
            &audit,
            &audit_batches,
            b"audit checkpoint before the upgrade",
        )
        .await;
        assert_eq!(audit_tree.size(), 3);
        if from >= 2 {
            // The bytes as V2's `evidence` table holds them.
            let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            for (sha, content) in [(kept_sha, kept), (erased_sha, erased)] {
                client
                    .execute(
                        "INSERT INTO evidence (sha256, content) VALUES ($1, $2)",
                        &[&sha.as_slice(), &content],
                    )
                    .await
                    .expect("evidence");
            }
        }

        let upgraded = migrate(&schema.url).await.expect("upgrade");
        assert_eq!(upgraded, (from + 1..=latest).collect::<Vec<_>>());
        let store = PostgresStore::connect(&schema.url, 2).expect("pool");
        assert_history_is_every_migration(&store).await;

        // Both logs: the same heads and tiles as before the upgrade (for
        // the main log 0/002.p/88 and 1/000.p/2 are derived, for the audit
        // trail its one partial tile), and their proofs.
        assert_serves_as_before(&store, ORIGIN, &tree, &full, &[0, 299, 599]).await;
        assert_serves_as_before(&store, &audit, &audit_tree, &audit_full, &[0, 1, 2]).await;
        assert_eq!(
            store
                .read_full_tiles(ORIGIN, &[(0, 0), (0, 1)])
                .await
                .expect("full tiles kept")
                .len(),
            2
        );
        assert!(
            matches!(
                store.read_full_tiles(ORIGIN, &[(0, 2)]).await,
                Err(StorageError::Corrupt(_))
            ),
            "no partial tile is stored"
        );
        let read: Vec<AuditRecord> = store
            .read_entries(&audit, 0, 3)
            .await
            .expect("audit entries")
            .iter()
            .map(|bytes| AuditRecord::parse(bytes).expect("audit record"))
            .collect();
        assert_eq!(read, records);
        assert_eq!(
            store.checkpoint(&audit, None).await.expect("audit cp"),
            Some(b"audit checkpoint before the upgrade".to_vec())
        );

        // Lookups through the new indexes over the old rows.
        let original = entry(299, "before the upgrade, batch 1");
        assert_eq!(
            store
                .find_dedup(ORIGIN, &[original.dedup_key])
                .await
                .expect("dedup"),
            [Some(299)]
        );
        assert_eq!(
            store
                .find_leaf(ORIGIN, original.leaf_hash)
                .await
                .expect("leaf"),
            Some(299)
        );
        let named = |parity: u64| -> Vec<u64> {
            (0..size)
                .filter(|i| i % 3 == 0 && i % 2 == parity)
                .collect()
        };
        assert_eq!(
            store
                .find_evidence(ORIGIN, kept_sha, 0, 1000)
                .await
                .expect("evidence"),
            named(1)
        );
        assert_eq!(
            store.checkpoint(ORIGIN, None).await.expect("cp"),
            Some(b"checkpoint before the upgrade".to_vec())
        );

        // The evidence: as uploaded (before V2 there was nowhere to keep
        // it, so it is uploaded now), then erased on the new schema
        // without touching the entries naming it.
        if from < 2 {
            for content in [kept, erased] {
                uploaded(&store, content).await;
            }
        }
        for (sha, content) in [(kept_sha, kept), (erased_sha, erased)] {
            assert_eq!(
                store.evidence(sha).await.expect("evidence"),
                Some(StoredEvidence::Content(content.to_vec()))
            );
        }
        let order = court_order();
        assert_eq!(
            store
                .erase_evidence(erased_sha, &order)
                .await
                .expect("erase"),
            Some(order.clone())
        );
        assert_eq!(
            store.evidence(erased_sha).await.expect("erased"),
            Some(StoredEvidence::Erased(order))
        );
        assert!(matches!(
            store.put_evidence(erased_sha, erased).await,
            Err(StorageError::Erased(_))
        ));
        assert_eq!(
            store
                .find_evidence(ORIGIN, erased_sha, 0, 1000)
                .await
                .expect("entries naming erased evidence"),
            named(0)
        );

        // The log keeps growing on the new schema, and the uniqueness of
        // dedup keys holds for the rows written before it.
        let mut repeat = next_batch(&mut tree.clone(), 1, "after upgrade");
        repeat.entries[0].dedup_key = original.dedup_key;
        assert!(matches!(
            store.integrate(ORIGIN, repeat.integration()).await,
            Err(StorageError::InvalidBatch(_))
        ));
        let more = next_batch(&mut tree, 5, "after upgrade");
        store
            .integrate(ORIGIN, more.integration())
            .await
            .expect("integrate after");
        drop(store);
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

/// A leader cut off from the database (its connection stalled: a
/// partition, a frozen database host) stops believing it leads within
/// seconds, and the database lets a standby lead without waiting for the
/// leader's TCP connection to time out (hours, by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_database_gives_up_and_a_standby_leads() {
    use evault_test_support::proxy::{TcpProxy, database_addr, database_url_via};

    let schema = new_schema().await;
    let proxy = TcpProxy::start(database_addr(&schema.url)).await;
    let mut leader = PostgresStore::try_lead(&database_url_via(&schema.url, proxy.addr()), ORIGIN)
        .await
        .expect("try")
        .expect("leads");
    proxy.stall();
    let reason = tokio::time::timeout(std::time::Duration::from_secs(60), leader.lost())
        .await
        .expect("the leader noticed it no longer hears the database");
    assert!(reason.contains("did not answer"), "{reason}");
    assert!(!leader.is_held());
    let mut standby = None;
    for _ in 0..600 {
        standby = PostgresStore::try_lead(&schema.url, ORIGIN)
            .await
            .expect("try");
        if standby.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        standby.is_some(),
        "the database kept the lock of a silent leader"
    );
    drop(proxy);
    schema.drop_schema().await;
}

/// A database that stops answering (here: every connection stalled by a
/// proxy, bytes taken and never answered, as a frozen server behaves)
/// fails the store's calls as `Unavailable` within its timeouts, both a
/// call on a connection already open and one that must connect anew;
/// once the database answers again, so does the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_fails_calls_instead_of_holding_them() {
    use evault_test_support::proxy::{TcpProxy, database_addr, database_url_via};

    let schema = new_schema().await;
    let proxy = TcpProxy::start(database_addr(&schema.url)).await;
    let url = database_url_via(&schema.url, proxy.addr());
    migrate(&url).await.expect("migrate");
    let store = PostgresStore::connect(&url, 2)
        .expect("pool")
        .with_operation_timeout(std::time::Duration::from_secs(2));
    store.create_log(ORIGIN).await.expect("create");
    proxy.stall();
    let bound = std::time::Duration::from_secs(60);
    let on_open = tokio::time::timeout(bound, store.head(ORIGIN))
        .await
        .expect("the call on an open connection returned");
    assert!(
        matches!(on_open, Err(StorageError::Unavailable(_))),
        "{on_open:?}"
    );
    let fresh = PostgresStore::connect(&url, 2).expect("pool");
    let connecting = tokio::time::timeout(bound, fresh.head(ORIGIN))
        .await
        .expect("the call that had to connect returned");
    assert!(
        matches!(connecting, Err(StorageError::Unavailable(_))),
        "{connecting:?}"
    );
    proxy.resume();
    proxy.cut();
    let mut head = store.head(ORIGIN).await;
    for _ in 0..50 {
        if head.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        head = store.head(ORIGIN).await;
    }
    assert_eq!(head.expect("answers again"), TreeHead::empty());
    drop(proxy);
    schema.drop_schema().await;
}

/// A connection of the test's own to `schema`, for writing what the store
/// never would.
async fn raw_client(schema: &Schema) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Rows beyond the head, as a large batch leaves them when its first half
/// committed and its second did not: entries `from..from + count` of `tag`.
async fn leave_beyond_head(client: &tokio_postgres::Client, from: u64, count: u64, tag: &str) {
    for i in from..from + count {
        let e = entry(i, tag);
        client
            .execute(
                "INSERT INTO entries (log_id, idx, entry, dedup_key)
                 SELECT id, $2, $3, $4 FROM logs WHERE origin = $1",
                &[&ORIGIN, &(i as i64), &e.entry, &e.dedup_key.as_slice()],
            )
            .await
            .expect("left beyond the head");
    }
}

/// Entries beyond the head are not in the log: no lookup returns them,
/// and the next write removes them and writes its own in their places,
/// whether they were there before this store first wrote (a process that
/// died between a batch's two commits) or appeared after (another
/// process's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_beyond_the_head_are_not_in_the_log() {
    let schema = new_schema().await;
    let store = store(&schema).await;
    let client = raw_client(&schema).await;
    store.create_log(ORIGIN).await.expect("create");
    let mut tree = Integrator::new();
    integrate_next(&store, &mut tree, 10, "kept").await;

    for (round, writer) in [
        (0, store.clone()),
        (1, PostgresStore::connect(&schema.url, 4).expect("pool")),
    ] {
        let tag = format!("round {round}");
        let size = tree.size();
        leave_beyond_head(&client, size, 6, &tag).await;
        let orphan = entry(size + 2, &tag);
        assert_eq!(
            store
                .find_dedup(ORIGIN, &[orphan.dedup_key])
                .await
                .expect("dedup"),
            [None],
            "round {round}"
        );
        assert_eq!(
            store
                .find_leaf(ORIGIN, orphan.leaf_hash)
                .await
                .expect("leaf"),
            None
        );
        // The batch reuses the left entries' positions and dedup keys.
        let batch = next_batch(&mut tree, 8, &tag);
        writer
            .integrate(ORIGIN, batch.integration())
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let read = store.read_entries(ORIGIN, size, 8).await.expect("entries");
        assert!(read.iter().zip(&batch.entries).all(|(r, e)| *r == e.entry));
        assert_eq!(
            store
                .find_dedup(ORIGIN, &[orphan.dedup_key])
                .await
                .expect("dedup"),
            [Some(size + 2)]
        );
        let rows: i64 = client
            .query_one("SELECT count(*) FROM entries", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(
            rows as u64,
            tree.size(),
            "round {round}: nothing left beyond the head"
        );
    }
    schema.drop_schema().await;
}

/// Lookups by leaf hash and by evidence digest probe every bucket of
/// 65,536 positions up to the head, from the asked position's on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_reach_every_bucket_up_to_the_head() {
    let schema = new_schema().await;
    let store = store(&schema).await;
    let client = raw_client(&schema).await;
    store.create_log(ORIGIN).await.expect("create");
    // Entries at far positions, written in SQL: a lookup reads only the
    // rows, not the tree. Every third position names evidence "1"
    // (odd) or "0" (even).
    let at = [3u64, 65_535, 65_538, 131_073, 200_001];
    for &i in &at {
        leave_beyond_head(&client, i, 1, "far").await;
    }
    client
        .execute(
            "UPDATE tree_heads SET size = 200001 FROM logs WHERE logs.id = tree_heads.log_id AND origin = $1",
            &[&ORIGIN],
        )
        .await
        .expect("head");
    let odd = evault_core::hash::sha256(b"evidence 1");
    let even = evault_core::hash::sha256(b"evidence 0");
    assert_eq!(
        store.find_evidence(ORIGIN, odd, 0, 10).await.expect("odd"),
        [3, 65_535, 131_073],
        "200,001 is beyond the head"
    );
    assert_eq!(
        store
            .find_evidence(ORIGIN, even, 0, 10)
            .await
            .expect("even"),
        [65_538]
    );
    assert_eq!(
        store
            .find_evidence(ORIGIN, odd, 65_536, 10)
            .await
            .expect("from"),
        [131_073]
    );
    assert_eq!(
        store.find_evidence(ORIGIN, odd, 0, 2).await.expect("limit"),
        [3, 65_535]
    );
    for &i in &at[..4] {
        assert_eq!(
            store
                .find_leaf(ORIGIN, entry(i, "far").leaf_hash)
                .await
                .expect("leaf"),
            Some(i)
        );
    }
    assert_eq!(
        store
            .find_leaf(ORIGIN, entry(200_001, "far").leaf_hash)
            .await
            .expect("leaf"),
        None
    );
    assert_eq!(
        store
            .find_leaf(ORIGIN, entry(4, "far").leaf_hash)
            .await
            .expect("leaf"),
        None
    );
    schema.drop_schema().await;
}
