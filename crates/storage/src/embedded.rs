//! The embedded store: one redb file in a data directory, no server.
//!
//! redb gives serialisable transactions with copy-on-write pages: a commit
//! that returns is on disk, and a crash at any moment leaves the last
//! committed state. Every write transaction here, and in the signer's file
//! ([`crate::signer::SignerFile`]), commits in two phases
//! (`WriteTransaction::set_two_phase_commit`): redb's default single-phase
//! commit writes the new commit slot and flips to it behind one `fsync`,
//! trusting a checksum to reject a slot the disk only partly wrote; in two
//! phases the slot is made durable before it is made current, so a crash
//! can never leave the file pointing at a commit that is not wholly on
//! disk, whatever order the disk wrote its pages in. It costs a second
//! `fsync` per commit. One process holds the file at a time (redb locks
//! it), which is exactly the embedded case: `evault up` runs every role in
//! that one process.
//!
//! redb is synchronous; every call runs on tokio's blocking pool.
//!
//! Like PostgreSQL, the file holds full tiles only, each inserted once;
//! partial tiles are derived when read ([`crate::tiles`]). Files written
//! before that rule held partial tiles too: opening such a file removes
//! them once, and records the format so later opens do not look again.
//!
//! Also like PostgreSQL, the lookups by leaf hash and by evidence digest
//! are keyed by the entry's bucket of positions first (`bucket`), so
//! that appends change the last bucket's pages of them only; files written
//! before (format 2) are brought to that layout when opened
//! (`bucket_lookups`).
//!
//! The signer's record is not kept here: it lives in a file of its own
//! ([`crate::signer::SignerFile`]), so that restoring this file from a
//! backup cannot roll it back too. Files written before that kept it in a
//! `signer_heads` table, which is read once to move it
//! ([`LegacySignerRecord`]).

use std::path::Path;
use std::sync::Arc;

use evault_core::Hash;
use evault_core::tile::FULL_TILE_BYTES;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError,
    WriteTransaction,
};

use crate::signer::{LegacySignerRecord, decode_signed};
use crate::{
    AppliedMigration, Erasure, EvidenceStore, Integration, LogStore, Result, SignedHead,
    StorageError, StoredEvidence, TreeHead, check_batch,
};

/// origin → log ID
const LOGS: TableDefinition<'_, &str, u64> = TableDefinition::new("logs");
/// log ID → head: size (u64 BE) ‖ root
const HEADS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("tree_heads");
/// (log ID, index) → entry bytes
const ENTRIES: TableDefinition<'_, (u64, u64), &[u8]> = TableDefinition::new("entries");
/// (log ID, dedup key) → index
const DEDUP: TableDefinition<'_, (u64, &[u8]), u64> = TableDefinition::new("dedup_keys");
/// (log ID, bucket, leaf hash) → the first index in the bucket with that
/// leaf hash. A bucket is [`BUCKET_WIDTH`] positions (see [`bucket`]).
const LEAVES: TableDefinition<'_, (u64, u64, &[u8]), u64> =
    TableDefinition::new("leaf_hashes_by_bucket");
/// (log ID, bucket, evidence SHA-256, index) → ()
const EVIDENCE: TableDefinition<'_, (u64, u64, &[u8], u64), ()> =
    TableDefinition::new("evidence_entries_by_bucket");
/// Format 2's lookups, keyed by hash first: replaced by [`LEAVES`] and
/// [`EVIDENCE`] and dropped by [`bucket_lookups`].
const LEAVES_V2: TableDefinition<'_, (u64, &[u8]), u64> = TableDefinition::new("leaf_hashes");
const EVIDENCE_V2: TableDefinition<'_, (u64, &[u8], u64), ()> =
    TableDefinition::new("evidence_entries");
/// (log ID, tile level, tile index) → a full tile's 8192 bytes of hashes
const TILES: TableDefinition<'_, (u64, u8, u64), &[u8]> = TableDefinition::new("tiles");
/// (log ID, tree size) → checkpoint note
const CHECKPOINTS: TableDefinition<'_, (u64, u64), &[u8]> = TableDefinition::new("checkpoints");
/// origin → last signed head: size (u64 BE) ‖ root ‖ checkpoint note. The
/// signer's record as files written before [`crate::signer::SignerFile`]
/// kept it; no longer created, only read once and dropped.
const LEGACY_SIGNED: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("signer_heads");

/// evidence SHA-256 → evidence bytes
const EVIDENCE_BYTES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("evidence");

/// evidence SHA-256 → its tombstone once erased: (erased at, in ms since
/// the Unix epoch; erased by; reason). Kept for ever, in place of the
/// bytes, which it keeps from being stored again.
const ERASURES: TableDefinition<'_, &[u8], (u64, &str, &str)> =
    TableDefinition::new("evidence_erasures");

/// name → value: facts about the file itself (its format).
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// The key in [`META`] of the file's format.
const FORMAT_KEY: &str = "format";
/// The keys in [`META`], `bucketed/<log ID>`, of the first bucket whose
/// lookups are not yet built while a file moves to format 3.
const BUCKETED_KEY: &str = "bucketed";
/// Format 3: the lookups by leaf hash and by evidence digest are keyed by
/// the entry's bucket of positions first. Format 2 keyed them by the hash
/// first; format 1 (no `meta` entry) also kept each level's latest partial
/// tile.
const FORMAT: u64 = 3;

/// Positions per bucket of the lookups by leaf hash and by digest, as
/// PostgreSQL's (`migrations/V5__bucketed_lookups.sql`).
const BUCKET_WIDTH: u64 = 1 << 16;

/// The bucket of the entry at `index`. Keyed by bucket first, the lookups
/// by leaf hash and by digest take every append in the last bucket's
/// pages, so a batch's commit writes a few pages of each rather than a page
/// per entry anywhere in them; a lookup probes one key per bucket. Only the
/// dedup keys, whose uniqueness spans the whole log, stay keyed by hash.
fn bucket(index: u64) -> u64 {
    index / BUCKET_WIDTH
}

/// The buckets holding the first `size` entries, from `from`'s on.
fn buckets(from: u64, size: u64) -> std::ops::Range<u64> {
    bucket(from)..size.div_ceil(BUCKET_WIDTH)
}

/// The file inside the data directory.
pub const DATABASE_FILE: &str = "vault.redb";

pub(crate) fn backend(e: impl Into<redb::Error>) -> StorageError {
    match e.into() {
        redb::Error::DatabaseAlreadyOpen => {
            StorageError::Unavailable("the data directory is in use by another process".into())
        }
        other => StorageError::Backend(other.to_string()),
    }
}

pub(crate) fn encode_head(head: &TreeHead) -> Vec<u8> {
    let mut out = head.size.to_be_bytes().to_vec();
    out.extend_from_slice(head.root.as_bytes());
    out
}

pub(crate) fn decode_head(bytes: &[u8]) -> Result<TreeHead> {
    let corrupt = || StorageError::Corrupt("tree head".into());
    let size = u64::from_be_bytes(
        bytes
            .get(..8)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?,
    );
    let root = Hash::from_slice(bytes.get(8..40).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
    Ok(TreeHead { size, root })
}

/// A write transaction that commits in two phases (see the module's top
/// doc). Every write to a redb file of the vault starts here.
pub(crate) fn begin_write(db: &Database) -> Result<WriteTransaction> {
    let mut txn = db.begin_write().map_err(backend)?;
    txn.set_two_phase_commit(true);
    Ok(txn)
}

/// The embedded store.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    pruning: Arc<crate::PruneSchedule>,
}

/// Bytes of database pages the embedded store keeps in memory. The
/// process holds several times this: cached pages sit among the buffers
/// of commits freed since, which the allocator cannot hand back to the
/// system while a cached page shares their memory. From a young log to
/// millions of entries, 16 MiB served appends as fast as 32 MiB, and
/// proofs within a tenth, at a peak 50 to 85 MiB lower
/// (docs/benchmarks.md).
const PAGE_CACHE: usize = 16 << 20;

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::Backend(format!("{}: {e}", dir.display())))?;
        // redb caches up to 1 GiB of pages by default, which a growing log
        // fills: the store's memory would grow with the log. The lookups
        // that touch pages at random (dedup keys, leaf hashes, digests)
        // get little from a bigger cache anyway; the kernel's page cache
        // still holds what fits.
        let db = Database::builder()
            .set_cache_size(PAGE_CACHE)
            .create(dir.join(DATABASE_FILE))
            .map_err(backend)?;
        // Every table exists from the start, so readers never meet a
        // missing one.
        let txn = begin_write(&db)?;
        txn.open_table(LOGS).map_err(backend)?;
        txn.open_table(HEADS).map_err(backend)?;
        txn.open_table(ENTRIES).map_err(backend)?;
        txn.open_table(DEDUP).map_err(backend)?;
        txn.open_table(LEAVES).map_err(backend)?;
        txn.open_table(EVIDENCE).map_err(backend)?;
        txn.open_table(TILES).map_err(backend)?;
        txn.open_table(CHECKPOINTS).map_err(backend)?;
        txn.open_table(EVIDENCE_BYTES).map_err(backend)?;
        txn.open_table(ERASURES).map_err(backend)?;
        let format = upgrade(&txn)?;
        txn.commit().map_err(backend)?;
        if format < FORMAT {
            bucket_lookups(&db)?;
        }
        Ok(EmbeddedStore {
            db: Arc::new(db),
            pruning: Arc::default(),
        })
    }
}

/// Runs `f` with `db` on the redb threads ([`crate::redb_threads`]): redb
/// is synchronous.
pub(crate) async fn blocking<T: Send + 'static>(
    db: &Arc<Database>,
    f: impl FnOnce(&Database) -> Result<T> + Send + 'static,
) -> Result<T> {
    let db = Arc::clone(db);
    crate::redb_threads::run(move || f(&db)).await
}

/// Brings a file of format 1 to format 2, dropping the partial tiles it
/// stored, which nothing reads any more and which would stand where full
/// tiles are later inserted (a scan of the tiles table, once per file),
/// and returns the file's format. A new file is written in [`FORMAT`]
/// from the start.
fn upgrade(txn: &redb::WriteTransaction) -> Result<u64> {
    let mut meta = txn.open_table(META).map_err(backend)?;
    let format = meta.get(FORMAT_KEY).map_err(backend)?.map(|g| g.value());
    if let Some(format) = format {
        return Ok(format);
    }
    let logs = txn.open_table(LOGS).map_err(backend)?;
    let format = if logs.is_empty().map_err(backend)? {
        FORMAT
    } else {
        let mut tiles = txn.open_table(TILES).map_err(backend)?;
        tiles
            .retain(|_, hashes| hashes.len() == FULL_TILE_BYTES)
            .map_err(backend)?;
        2
    };
    meta.insert(FORMAT_KEY, format).map_err(backend)?;
    Ok(format)
}

/// Brings a file of format 2 to format 3: builds the lookups by leaf hash
/// and by digest, keyed by bucket, from the entries themselves (what
/// `integrate` checks them against), then drops format 2's tables.
///
/// One write transaction per bucket of each log, so the pages a
/// transaction holds stay those of one bucket, whatever the log's size;
/// each records how far it got, so an open interrupted midway carries on
/// from there.
fn bucket_lookups(db: &Database) -> Result<()> {
    let logs: Vec<(u64, u64)> = {
        let txn = db.begin_read().map_err(backend)?;
        let logs = txn.open_table(LOGS).map_err(backend)?;
        let ids: Vec<u64> = logs
            .iter()
            .map_err(backend)?
            .map(|row| row.map(|(_, id)| id.value()).map_err(backend))
            .collect::<Result<_>>()?;
        ids.into_iter()
            .map(|id| Ok((id, read_head(&txn, id)?.size)))
            .collect::<Result<_>>()?
    };
    for (id, size) in logs {
        let progress = format!("{BUCKETED_KEY}/{id}");
        loop {
            let txn = begin_write(db)?;
            {
                let mut meta = txn.open_table(META).map_err(backend)?;
                let next = meta
                    .get(progress.as_str())
                    .map_err(backend)?
                    .map_or(0, |g| g.value());
                if next >= buckets(0, size).end {
                    break;
                }
                let entries = txn.open_table(ENTRIES).map_err(backend)?;
                let mut leaves = txn.open_table(LEAVES).map_err(backend)?;
                let mut evidence = txn.open_table(EVIDENCE).map_err(backend)?;
                let first = next * BUCKET_WIDTH;
                let end = first.saturating_add(BUCKET_WIDTH).min(size);
                for row in entries.range((id, first)..(id, end)).map_err(backend)? {
                    let (key, entry) = row.map_err(backend)?;
                    let (index, entry) = (key.value().1, entry.value());
                    let leaf = evault_core::leaf_hash(entry);
                    let digest = crate::evidence_digest(entry);
                    add_lookups(
                        &mut leaves,
                        &mut evidence,
                        id,
                        index,
                        &leaf,
                        digest.as_ref(),
                    )?;
                }
                meta.insert(progress.as_str(), next + 1).map_err(backend)?;
            }
            txn.commit().map_err(backend)?;
        }
    }
    let txn = begin_write(db)?;
    {
        let mut meta = txn.open_table(META).map_err(backend)?;
        meta.retain(|key, _| !key.starts_with(BUCKETED_KEY))
            .map_err(backend)?;
        meta.insert(FORMAT_KEY, FORMAT).map_err(backend)?;
    }
    txn.delete_table(LEAVES_V2).map_err(backend)?;
    txn.delete_table(EVIDENCE_V2).map_err(backend)?;
    txn.commit().map_err(backend)
}

/// Makes the entry at `index` of log `id` found by its leaf hash (unless an
/// earlier one in its bucket has the same) and by the evidence digest it
/// names, if any.
fn add_lookups(
    leaves: &mut redb::Table<'_, (u64, u64, &'static [u8]), u64>,
    evidence: &mut redb::Table<'_, (u64, u64, &'static [u8], u64), ()>,
    id: u64,
    index: u64,
    leaf: &Hash,
    digest: Option<&[u8; 32]>,
) -> Result<()> {
    let leaf_key = (id, bucket(index), leaf.as_bytes());
    if leaves.get(leaf_key).map_err(backend)?.is_none() {
        leaves.insert(leaf_key, index).map_err(backend)?;
    }
    if let Some(sha) = digest {
        evidence
            .insert((id, bucket(index), sha.as_slice(), index), ())
            .map_err(backend)?;
    }
    Ok(())
}

fn read_head(txn: &redb::ReadTransaction, id: u64) -> Result<TreeHead> {
    let heads = txn.open_table(HEADS).map_err(backend)?;
    let bytes = heads
        .get(id)
        .map_err(backend)?
        .ok_or_else(|| StorageError::Corrupt("tree head".into()))?;
    decode_head(bytes.value())
}

fn log_id(txn: &redb::ReadTransaction, origin: &str) -> Result<u64> {
    let logs = txn.open_table(LOGS).map_err(backend)?;
    let id = logs.get(origin).map_err(backend)?;
    id.map(|g| g.value())
        .ok_or_else(|| StorageError::NoSuchLog(origin.to_string()))
}

impl LogStore for EmbeddedStore {
    async fn create_log(&self, origin: &str) -> Result<TreeHead> {
        let origin = origin.to_string();
        blocking(&self.db, move |db| {
            let txn = begin_write(db)?;
            let head = {
                let mut logs = txn.open_table(LOGS).map_err(backend)?;
                let mut heads = txn.open_table(HEADS).map_err(backend)?;
                let existing = logs
                    .get(origin.as_str())
                    .map_err(backend)?
                    .map(|g| g.value());
                match existing {
                    Some(id) => {
                        let bytes = heads
                            .get(id)
                            .map_err(backend)?
                            .ok_or_else(|| StorageError::Corrupt("tree head".into()))?;
                        decode_head(bytes.value())?
                    }
                    None => {
                        let id = logs.len().map_err(backend)? + 1;
                        logs.insert(origin.as_str(), id).map_err(backend)?;
                        let head = TreeHead::empty();
                        heads
                            .insert(id, encode_head(&head).as_slice())
                            .map_err(backend)?;
                        head
                    }
                }
            };
            txn.commit().map_err(backend)?;
            Ok(head)
        })
        .await
    }

    async fn head(&self, origin: &str) -> Result<TreeHead> {
        let origin = origin.to_string();
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let id = log_id(&txn, &origin)?;
            read_head(&txn, id)
        })
        .await
    }

    async fn integrate(&self, origin: &str, batch: Integration<'_>) -> Result<()> {
        check_batch(&batch)?;
        let origin = origin.to_string();
        let (old, new) = (batch.old, batch.new);
        let entries = batch.entries.to_vec();
        let tiles = batch.tiles.to_vec();
        blocking(&self.db, move |db| {
            let txn = begin_write(db)?;
            {
                let id = {
                    let logs = txn.open_table(LOGS).map_err(backend)?;
                    let id = logs.get(origin.as_str()).map_err(backend)?;
                    id.map(|g| g.value())
                        .ok_or_else(|| StorageError::NoSuchLog(origin.clone()))?
                };
                let mut heads = txn.open_table(HEADS).map_err(backend)?;
                let current = {
                    let bytes = heads.get(id).map_err(backend)?;
                    decode_head(
                        bytes
                            .ok_or_else(|| StorageError::Corrupt("tree head".into()))?
                            .value(),
                    )?
                };
                if current != old {
                    // Dropping the transaction aborts it: nothing is written.
                    return Err(StorageError::HeadMoved {
                        expected: old.size,
                        found: current.size,
                    });
                }
                let mut entry_table = txn.open_table(ENTRIES).map_err(backend)?;
                let mut dedup = txn.open_table(DEDUP).map_err(backend)?;
                let mut leaves = txn.open_table(LEAVES).map_err(backend)?;
                let mut evidence = txn.open_table(EVIDENCE).map_err(backend)?;
                for e in &entries {
                    let previous = dedup
                        .insert((id, e.dedup_key.as_slice()), e.index)
                        .map_err(backend)?
                        .map(|g| g.value());
                    if let Some(at) = previous {
                        return Err(StorageError::InvalidBatch(format!(
                            "entry {} repeats the dedup key of entry {at}",
                            e.index
                        )));
                    }
                    entry_table
                        .insert((id, e.index), e.entry.as_slice())
                        .map_err(backend)?;
                    add_lookups(
                        &mut leaves,
                        &mut evidence,
                        id,
                        e.index,
                        &e.leaf_hash,
                        e.evidence_sha256.as_ref(),
                    )?;
                }
                let mut tile_table = txn.open_table(TILES).map_err(backend)?;
                for (tile, bytes) in &tiles {
                    // Full tiles are written once; finding one already
                    // there means this batch overlaps the stored log.
                    let previous = tile_table
                        .insert((id, tile.level, tile.index), bytes.as_slice())
                        .map_err(backend)?;
                    if previous.is_some() {
                        return Err(StorageError::InvalidBatch(format!(
                            "{} is already stored",
                            tile.path()
                        )));
                    }
                }
                heads
                    .insert(id, encode_head(&new).as_slice())
                    .map_err(backend)?;
            }
            txn.commit().map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn publish(&self, origin: &str, size: u64, checkpoint: &[u8]) -> Result<()> {
        let prune = self.pruning.due(origin);
        let origin = origin.to_string();
        let checkpoint = checkpoint.to_vec();
        blocking(&self.db, move |db| {
            let txn = begin_write(db)?;
            {
                let logs = txn.open_table(LOGS).map_err(backend)?;
                let id = logs
                    .get(origin.as_str())
                    .map_err(backend)?
                    .map(|g| g.value())
                    .ok_or_else(|| StorageError::NoSuchLog(origin.clone()))?;
                let heads = txn.open_table(HEADS).map_err(backend)?;
                let head = decode_head(
                    heads
                        .get(id)
                        .map_err(backend)?
                        .ok_or_else(|| StorageError::Corrupt("tree head".into()))?
                        .value(),
                )?;
                if size > head.size {
                    return Err(StorageError::InvalidBatch(format!(
                        "checkpoint for size {size} beyond the head's {}",
                        head.size
                    )));
                }
                let mut checkpoints = txn.open_table(CHECKPOINTS).map_err(backend)?;
                // Written once per size: another note for a size already
                // published is refused, never an update.
                let existing = checkpoints
                    .get((id, size))
                    .map_err(backend)?
                    .map(|g| g.value() == checkpoint.as_slice());
                match existing {
                    Some(true) => return Ok(()),
                    Some(false) => {
                        return Err(StorageError::Conflict(format!(
                            "another checkpoint is stored for size {size}"
                        )));
                    }
                    None => {
                        checkpoints
                            .insert((id, size), checkpoint.as_slice())
                            .map_err(backend)?;
                    }
                }
                // The latest CHECKPOINTS_KEPT stay; older ones go, at every
                // PRUNE_EVERY-th publication, a bounded number at a time
                // (as in PostgreSQL).
                if prune {
                    let superseded: Vec<u64> = checkpoints
                        .range((id, 0)..=(id, u64::MAX))
                        .map_err(backend)?
                        .rev()
                        .skip(crate::CHECKPOINTS_KEPT)
                        .take(crate::PRUNED_AT_ONCE)
                        .map(|row| row.map(|(k, _)| k.value().1))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(backend)?;
                    for old in superseded {
                        checkpoints.remove((id, old)).map_err(backend)?;
                    }
                }
            }
            txn.commit().map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn checkpoint(&self, origin: &str, size: Option<u64>) -> Result<Option<Vec<u8>>> {
        let origin = origin.to_string();
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let id = log_id(&txn, &origin)?;
            let checkpoints = txn.open_table(CHECKPOINTS).map_err(backend)?;
            let found = match size {
                Some(size) => checkpoints
                    .get((id, size))
                    .map_err(backend)?
                    .map(|g| g.value().to_vec()),
                None => checkpoints
                    .range((id, 0)..=(id, u64::MAX))
                    .map_err(backend)?
                    .next_back()
                    .transpose()
                    .map_err(backend)?
                    .map(|(_, v)| v.value().to_vec()),
            };
            Ok(found)
        })
        .await
    }

    async fn read_full_tiles(&self, origin: &str, positions: &[(u8, u64)]) -> Result<Vec<Vec<u8>>> {
        let origin = origin.to_string();
        let positions = positions.to_vec();
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let id = log_id(&txn, &origin)?;
            let table = txn.open_table(TILES).map_err(backend)?;
            positions
                .iter()
                .map(|&(level, index)| {
                    let stored = table.get((id, level, index)).map_err(backend)?;
                    stored
                        .map(|bytes| bytes.value().to_vec())
                        .filter(|bytes| bytes.len() == FULL_TILE_BYTES)
                        .ok_or_else(|| StorageError::Corrupt(format!("full tile {level}/{index}")))
                })
                .collect()
        })
        .await
    }

    async fn read_entries(&self, origin: &str, start: u64, count: u64) -> Result<Vec<Vec<u8>>> {
        let origin = origin.to_string();
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let id = log_id(&txn, &origin)?;
            let table = txn.open_table(ENTRIES).map_err(backend)?;
            let end = start.saturating_add(count);
            let entries: Vec<Vec<u8>> = table
                .range((id, start)..(id, end))
                .map_err(backend)?
                .map(|r| r.map(|(_, v)| v.value().to_vec()).map_err(backend))
                .collect::<Result<_>>()?;
            if entries.len() as u64 != count {
                return Err(StorageError::Corrupt(format!("entries {start}..{end}")));
            }
            Ok(entries)
        })
        .await
    }

    async fn find_dedup(&self, origin: &str, keys: &[[u8; 32]]) -> Result<Vec<Option<u64>>> {
        let origin = origin.to_string();
        let keys = keys.to_vec();
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let id = log_id(&txn, &origin)?;
            let table = txn.open_table(DEDUP).map_err(backend)?;
            keys.iter()
                .map(|k| {
                    Ok(table
                        .get((id, k.as_slice()))
                        .map_err(backend)?
                        .map(|g| g.value()))
                })
                .collect()
        })
        .await
    }

    async fn find_leaf(&self, origin: &str, leaf: Hash) -> Result<Option<u64>> {
        let origin = origin.to_string();
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let id = log_id(&txn, &origin)?;
            let size = read_head(&txn, id)?.size;
            let table = txn.open_table(LEAVES).map_err(backend)?;
            // Buckets in order: the first found is the first index.
            for b in buckets(0, size) {
                if let Some(index) = table.get((id, b, leaf.as_bytes())).map_err(backend)? {
                    return Ok(Some(index.value()).filter(|&index| index < size));
                }
            }
            Ok(None)
        })
        .await
    }

    async fn find_evidence(
        &self,
        origin: &str,
        sha256: [u8; 32],
        from: u64,
        limit: u32,
    ) -> Result<Vec<u64>> {
        let origin = origin.to_string();
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let id = log_id(&txn, &origin)?;
            let size = read_head(&txn, id)?.size;
            let table = txn.open_table(EVIDENCE).map_err(backend)?;
            let sha = sha256.as_slice();
            let mut found = Vec::new();
            for b in buckets(from, size) {
                let wanted = limit as usize - found.len();
                if wanted == 0 {
                    break;
                }
                for row in table
                    .range((id, b, sha, from)..(id, b, sha, size))
                    .map_err(backend)?
                    .take(wanted)
                {
                    found.push(row.map_err(backend)?.0.value().3);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>> {
        // No migrations here: the file brings itself up to date when
        // opened ([`upgrade`]), and its format is no schema history.
        Ok(Vec::new())
    }
}

/// The tombstone of the evidence `sha256` in `table`, if it was erased.
fn read_erasure(
    table: &impl ReadableTable<&'static [u8], (u64, &'static str, &'static str)>,
    sha256: &[u8; 32],
) -> Result<Option<Erasure>> {
    Ok(table.get(sha256.as_slice()).map_err(backend)?.map(|g| {
        let (erased_at_ms, erased_by, reason) = g.value();
        Erasure {
            erased_at_ms,
            erased_by: erased_by.to_string(),
            reason: reason.to_string(),
        }
    }))
}

impl LegacySignerRecord for EmbeddedStore {
    async fn legacy_signed_heads(&self) -> Result<Vec<(String, SignedHead)>> {
        blocking(&self.db, |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = match txn.open_table(LEGACY_SIGNED) {
                Ok(table) => table,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(backend(e)),
            };
            table
                .iter()
                .map_err(backend)?
                .map(|row| {
                    let (origin, value) = row.map_err(backend)?;
                    Ok((origin.value().to_string(), decode_signed(value.value())?))
                })
                .collect()
        })
        .await
    }

    async fn forget_legacy_signed_heads(&self) -> Result<()> {
        blocking(&self.db, |db| {
            let txn = begin_write(db)?;
            txn.delete_table(LEGACY_SIGNED).map_err(backend)?;
            txn.commit().map_err(backend)
        })
        .await
    }
}

// Upload and erasure each run in one write transaction, and redb runs
// write transactions one at a time: neither can interleave with the other.
impl EvidenceStore for EmbeddedStore {
    async fn put_evidence(&self, sha256: [u8; 32], content: &[u8]) -> Result<()> {
        let content = content.to_vec();
        blocking(&self.db, move |db| {
            let txn = begin_write(db)?;
            {
                let erasures = txn.open_table(ERASURES).map_err(backend)?;
                if let Some(erasure) = read_erasure(&erasures, &sha256)? {
                    // Dropping the transaction aborts it: nothing is written.
                    return Err(StorageError::Erased(erasure));
                }
                let mut table = txn.open_table(EVIDENCE_BYTES).map_err(backend)?;
                if table.get(sha256.as_slice()).map_err(backend)?.is_none() {
                    table
                        .insert(sha256.as_slice(), content.as_slice())
                        .map_err(backend)?;
                }
            }
            txn.commit().map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn evidence(&self, sha256: [u8; 32]) -> Result<Option<StoredEvidence>> {
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let erasures = txn.open_table(ERASURES).map_err(backend)?;
            if let Some(erasure) = read_erasure(&erasures, &sha256)? {
                return Ok(Some(StoredEvidence::Erased(erasure)));
            }
            let table = txn.open_table(EVIDENCE_BYTES).map_err(backend)?;
            Ok(table
                .get(sha256.as_slice())
                .map_err(backend)?
                .map(|g| StoredEvidence::Content(g.value().to_vec())))
        })
        .await
    }

    async fn erase_evidence(&self, sha256: [u8; 32], erasure: &Erasure) -> Result<Option<Erasure>> {
        let erasure = erasure.clone();
        blocking(&self.db, move |db| {
            let txn = begin_write(db)?;
            {
                // Each early return drops the transaction: nothing is
                // written.
                let mut erasures = txn.open_table(ERASURES).map_err(backend)?;
                if let Some(first) = read_erasure(&erasures, &sha256)? {
                    return Ok(Some(first));
                }
                let mut table = txn.open_table(EVIDENCE_BYTES).map_err(backend)?;
                if table.remove(sha256.as_slice()).map_err(backend)?.is_none() {
                    return Ok(None);
                }
                erasures
                    .insert(
                        sha256.as_slice(),
                        (
                            erasure.erased_at_ms,
                            erasure.erased_by.as_str(),
                            erasure.reason.as_str(),
                        ),
                    )
                    .map_err(backend)?;
            }
            txn.commit().map_err(backend)?;
            Ok(Some(erasure))
        })
        .await
    }
}
