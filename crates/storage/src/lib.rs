//! The vault's storage: what tree and signer keep, behind one set of
//! guarantees with two backends.
//!
//! - [`postgres::PostgresStore`]: PostgreSQL (tokio-postgres, deadpool), the
//!   system of record in production; schema in `migrations/`, applied by
//!   [`postgres::migrate`].
//! - [`embedded::EmbeddedStore`]: one data directory, no server (redb), for
//!   `evault up` and small installs.
//!
//! The signer's record of what it signed is never kept with the log: it
//! has stores of its own, a file ([`signer::SignerFile`]) or a database
//! ([`signer::SignerDatabase`]), each refusing storage that holds a log, so
//! that restoring the log's storage from a backup cannot roll the record
//! back with it.
//!
//! The stores pass one conformance suite (`tests/conformance.rs`), the log
//! stores its log tests and the signer's stores its signer tests. The log
//! is stored as entries and full hash tiles only, each written once; the
//! tree is never loaded into memory.
//!
//! Partial tiles are never stored: [`tiles::read_tiles`], the one way every
//! role reads tiles, derives them from the entries and full tiles below
//! with `evault-core`'s tile functions, through a bounded cache. Beyond
//! that I/O glue, and checking that a batch's derived fields (leaf hashes,
//! evidence digests, which tiles it completes) agree with its entries, this
//! crate neither hashes nor verifies (that is `evault-core`'s) nor decides
//! anything: it keeps what it is given, atomically, and says when a
//! compare-and-swap found the world changed.
//!
//! Evidence bytes are kept beside the log, content-addressed, and may be
//! erased ([`EvidenceStore::erase_evidence`]): the bytes go, a tombstone
//! saying who erased them, when and why stays for ever, and the entries
//! naming their digest are untouched, so every proof still verifies.

/// Checkpoints a store keeps per log: the latest this many. A checkpoint
/// is stored per batch, so keeping all would grow the log's storage by a
/// row per batch for ever; a proof against a checkpoint pruned since is
/// `NOT_FOUND`, and one against the latest, with a consistency proof from
/// the older size, says the same. Every checkpoint signed stays in the
/// audit trail (`checkpoint.signed`).
pub const CHECKPOINTS_KEPT: usize = 4096;

/// A store prunes a log's checkpoints at the first publication of the log
/// after it opens and at every this-many-th after: finding the oldest to
/// keep walks the latest [`CHECKPOINTS_KEPT`] in their index (half a
/// millisecond on PostgreSQL), which every batch would otherwise wait
/// for. Between prunes a log holds up to this many more.
pub const PRUNE_EVERY: u64 = 64;

/// Checkpoints removed at most by one prune: a log holding a long history
/// (from before pruning) sheds it over many batches, never in one long
/// statement.
pub const PRUNED_AT_ONCE: usize = 1024;

/// Publications of each log by one store, counted to prune every
/// [`PRUNE_EVERY`]-th.
#[derive(Debug, Default)]
pub(crate) struct PruneSchedule(std::sync::Mutex<std::collections::HashMap<String, u64>>);

impl PruneSchedule {
    /// Whether this publication of `origin` prunes its checkpoints.
    pub(crate) fn due(&self, origin: &str) -> bool {
        let mut published = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = match published.get_mut(origin) {
            Some(count) => count,
            None => published.entry(origin.to_string()).or_default(),
        };
        let due = *count % PRUNE_EVERY == 0;
        *count += 1;
        due
    }
}

pub mod embedded;
pub mod postgres;
mod redb_threads;
pub mod signer;
pub mod tiles;

use std::future::Future;

use evault_core::tile::{FULL_TILE_BYTES, MAX_TILE_LEVEL, TILE_WIDTH, level_width};
use evault_core::{Hash, TileId};

/// A tree head: how many entries, which root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of entries.
    pub size: u64,
    /// Root hash of the tree of that size.
    pub root: Hash,
}

impl TreeHead {
    /// The head of an empty log.
    pub fn empty() -> Self {
        TreeHead {
            size: 0,
            root: evault_core::empty_root(),
        }
    }
}

/// One sequenced entry, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its index in the log.
    pub index: u64,
    /// The entry bytes.
    pub entry: Vec<u8>,
    /// SHA-256(0x00 ‖ entry), for lookups by leaf hash. Must agree with
    /// `entry`: a store may index it or recompute it.
    pub leaf_hash: Hash,
    /// The idempotency key: the same key is never logged twice.
    pub dedup_key: [u8; 32],
    /// The evidence digest the entry names, for lookups by evidence. Must
    /// be [`evidence_digest`] of `entry`: a store may index it or read it
    /// from the entry bytes.
    pub evidence_sha256: Option<[u8; 32]>,
}

/// The evidence digest an entry is found by: bytes 1..33 of a version-1
/// entry (first byte `0x01`, see `docs/entry-format.md`), `None` for any
/// other entry. PostgreSQL's `entries_by_evidence_v1` index computes the
/// same function; a later entry version adds a branch here and an index
/// there.
pub fn evidence_digest(entry: &[u8]) -> Option<[u8; 32]> {
    match entry {
        [1, digest @ ..] => digest.get(..32)?.try_into().ok(),
        _ => None,
    }
}

/// What one integration writes: entries `old.size ..new.size` and the full
/// tiles they complete, moving the head from `old` to `new`.
#[derive(Debug)]
pub struct Integration<'a> {
    /// The head the batch was integrated onto.
    pub old: TreeHead,
    /// The head after the batch.
    pub new: TreeHead,
    /// The new entries, indices `old.size ..new.size` in order.
    pub entries: &'a [StoredEntry],
    /// The full tiles completed by the batch, each exactly once, as
    /// `evault_core::Integrator::integrate_full_tiles` returns them. Partial
    /// tiles are never stored (readers derive them), so a batch carrying
    /// one is refused.
    pub tiles: &'a [(TileId, Vec<u8>)],
}

/// A checkpoint signer recorded as signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHead {
    /// The head signed.
    pub head: TreeHead,
    /// The signed checkpoint note.
    pub checkpoint: Vec<u8>,
}

/// Who erased a piece of evidence, when, and why: kept for ever in place
/// of the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Erasure {
    /// When, in milliseconds since the Unix epoch.
    pub erased_at_ms: u64,
    /// The principal who erased it.
    pub erased_by: String,
    /// Why, as they gave it (never empty).
    pub reason: String,
}

/// What the vault holds of one piece of evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredEvidence {
    /// The bytes, as uploaded.
    Content(Vec<u8>),
    /// The bytes were erased; this says by whom, when and why.
    Erased(Erasure),
}

/// One schema migration applied to the log's database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version: the `<n>` of `migrations/V<n>__<name>.sql`.
    pub version: u32,
    /// Its name: the `<name>` of `migrations/V<n>__<name>.sql`.
    pub name: String,
    /// When it was applied, as the migration history records it.
    pub applied_on: String,
    /// The migration's checksum, as the history records it.
    pub checksum: String,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The log has not been created.
    #[error("log {0:?} does not exist")]
    NoSuchLog(String),
    /// A compare-and-swap found another head than expected: someone else
    /// wrote first. Nothing was written.
    #[error("head moved: expected size {expected}, found size {found}")]
    HeadMoved {
        /// Size the caller expected.
        expected: u64,
        /// Size found.
        found: u64,
    },
    /// The batch is not shaped as its heads say (indices, counts), or a
    /// value given is beyond what the backend holds (a number past 2^63 − 1
    /// or a time past PostgreSQL's last one). Nothing was written.
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// Something the log must hold is absent or malformed: corruption, or a
    /// read beyond the tree.
    #[error("storage is missing or holds malformed {0}")]
    Corrupt(String),
    /// The backend cannot be reached now; retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Something is already stored where a value is written once (a
    /// checkpoint for a tree size, the signer's record at a size), and it
    /// is not the value given: refused, never written over. Nothing was
    /// written.
    #[error("refused to write over what is stored: {0}")]
    Conflict(String),
    /// The signer's record and a log were to share one database or file:
    /// restoring one from a backup would roll the other back with it.
    /// Nothing was written.
    #[error("the log and the signer's record must be kept apart: {0}")]
    NotApart(String),
    /// The evidence was erased: its bytes are gone and are never stored
    /// again. Nothing was written.
    #[error(
        "evidence was erased at {} by {}: {}",
        evault_core::trail::format_utc_ms(.0.erased_at_ms),
        .0.erased_by,
        .0.reason
    )]
    Erased(Erasure),
    /// The backend failed.
    #[error("storage failed: {0}")]
    Backend(String),
}

/// Result of a storage operation.
pub type Result<T> = std::result::Result<T, StorageError>;

/// What tree keeps: entries, tiles, the head, checkpoints.
///
/// Every write is durable when it returns. [`LogStore::integrate`] is
/// atomic: all of a batch is written and the head moved, or nothing is.
pub trait LogStore: Send + Sync + 'static {
    /// Creates the log if it does not exist, and returns its head.
    fn create_log(&self, origin: &str) -> impl Future<Output = Result<TreeHead>> + Send;

    /// The log's current head.
    fn head(&self, origin: &str) -> impl Future<Output = Result<TreeHead>> + Send;

    /// Atomically checks that the head is `batch.old`, writes the entries
    /// and full tiles, and moves the head to `batch.new`. Fails with
    /// [`StorageError::HeadMoved`], writing nothing, if the head is not
    /// `batch.old`; with [`StorageError::InvalidBatch`], writing nothing,
    /// if a dedup key is already logged (or repeats within the batch), the
    /// indices are not `old.size..new.size`, an entry's leaf hash or
    /// evidence digest disagrees with its bytes, or the tiles are not
    /// exactly the full tiles the batch completes.
    ///
    /// "Writing nothing" is of the log: a store may keep entries beyond the
    /// head that a failed integration left (PostgreSQL writes a large
    /// batch over two connections). They are not in the log: no lookup
    /// returns them, and the store removes them before it writes the log
    /// again.
    fn integrate(
        &self,
        origin: &str,
        batch: Integration<'_>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Stores the signed checkpoint of the tree of `size` entries
    /// (publication). Storing the same bytes again is a no-op; other bytes
    /// for a size that has a checkpoint are refused with
    /// [`StorageError::Conflict`], writing nothing: a size has one
    /// checkpoint, which may already have been served.
    ///
    /// On PostgreSQL the write is visible at once but made durable with
    /// the next durable commit (the next batch's), not waited for: a crash
    /// of the database just after it may lose the latest checkpoint, never
    /// an entry. The signer's own record holds that checkpoint durably,
    /// and tree stores it again from there before it sequences
    /// (`Sequencer::open`), as it does for any signature whose answer was
    /// lost. That saves every batch an `fsync`, which no receipt depends
    /// on: a receipt carries the signed checkpoint itself. The embedded
    /// store flushes it: there, a crash is any kill of the one process,
    /// and a copy of the file taken after one should hold its checkpoints.
    fn publish(
        &self,
        origin: &str,
        size: u64,
        checkpoint: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;

    /// The checkpoint of the tree of `size` entries, or the latest one.
    fn checkpoint(
        &self,
        origin: &str,
        size: Option<u64>,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// The stored full tiles at `positions`, each `(level, index)`: 8192
    /// bytes each, in the order asked. A position whose full tile is not
    /// stored is [`StorageError::Corrupt`]. Partial tiles are not stored;
    /// [`tiles::read_tiles`] reads any tile of the tree.
    fn read_full_tiles(
        &self,
        origin: &str,
        positions: &[(u8, u64)],
    ) -> impl Future<Output = Result<Vec<Vec<u8>>>> + Send;

    /// The entries at indices `start ..start + count`, all of which exist.
    fn read_entries(
        &self,
        origin: &str,
        start: u64,
        count: u64,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>>> + Send;

    /// For each dedup key, the index it was logged at, if it was.
    fn find_dedup(
        &self,
        origin: &str,
        keys: &[[u8; 32]],
    ) -> impl Future<Output = Result<Vec<Option<u64>>>> + Send;

    /// The index of the first entry with this leaf hash.
    fn find_leaf(
        &self,
        origin: &str,
        leaf: Hash,
    ) -> impl Future<Output = Result<Option<u64>>> + Send;

    /// Indices of entries naming this evidence digest, ascending, from
    /// index `from` on, at most `limit` of them.
    fn find_evidence(
        &self,
        origin: &str,
        sha256: [u8; 32],
        from: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<u64>>> + Send;

    /// The schema migrations applied to the log's database, in version
    /// order, as its migration history records them: what the audit
    /// trail reports of the schema the log lives in. PostgreSQL reads
    /// refinery's history (none for a database never migrated). The
    /// embedded store has no migrations (its file brings itself up to date
    /// when opened) and returns none.
    fn applied_migrations(&self) -> impl Future<Output = Result<Vec<AppliedMigration>>> + Send;
}

/// What signer keeps: the last checkpoint it signed for each origin.
/// Kept apart from the log, in a file or database of its own
/// ([`signer`]): tree never writes it, and no log store implements it.
/// Every write is durable when it returns.
pub trait SignerStore: Send + Sync + 'static {
    /// The last head signed for `origin`.
    fn last_signed(&self, origin: &str) -> impl Future<Output = Result<Option<SignedHead>>> + Send;

    /// Records `signed` as the last head signed for `origin`, if the last
    /// recorded one is still `previous` (compare-and-swap, so two signer
    /// replicas cannot both advance from one state); otherwise
    /// [`StorageError::HeadMoved`]. The record only grows: a smaller head,
    /// or another head or checkpoint at the recorded size, is refused with
    /// [`StorageError::Conflict`]; recording exactly the current record
    /// again is a no-op.
    fn record_signed(
        &self,
        origin: &str,
        previous: Option<TreeHead>,
        signed: &SignedHead,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Evidence bytes, content-addressed by their SHA-256, and erasable.
///
/// Erasure (legal erasure) removes the bytes and keeps, in their place and
/// for ever, who erased them, when and why: the entries naming the digest
/// stay, so every proof stays valid, and the tombstone keeps the same
/// bytes from being uploaded again. Every write is durable when it
/// returns; an upload and an erasure of the same digest never interleave,
/// so once an erasure returns no bytes of that digest are stored.
pub trait EvidenceStore: Send + Sync + 'static {
    /// Stores `content` under `sha256`, which the caller has checked is its
    /// digest. Storing the same evidence again is a no-op. Evidence that
    /// was erased is never stored again: [`StorageError::Erased`], with
    /// the first erasure, writing nothing.
    fn put_evidence(
        &self,
        sha256: [u8; 32],
        content: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;

    /// What the vault holds of the evidence `sha256`: its bytes, or the
    /// erasure that removed them; `None` when it was never uploaded.
    fn evidence(
        &self,
        sha256: [u8; 32],
    ) -> impl Future<Output = Result<Option<StoredEvidence>>> + Send;

    /// Erases the evidence `sha256`. When its bytes are stored, deletes
    /// them and keeps `erasure` as their tombstone, atomically, and
    /// returns it. When it was erased already, writes nothing and returns
    /// the first erasure: that one stands, and a second never rewrites who
    /// erased it or when. When it was never uploaded, writes nothing and
    /// returns `None`.
    ///
    /// The caller validates `erasure`: a principal and a reason, neither
    /// empty. The stores keep what they are given (PostgreSQL's `CHECK`s
    /// refuse empty ones as a last line, with [`StorageError::Backend`]).
    /// PostgreSQL holds times up to the year 294276: a later
    /// `erased_at_ms` is refused there with [`StorageError::InvalidBatch`].
    fn erase_evidence(
        &self,
        sha256: [u8; 32],
        erasure: &Erasure,
    ) -> impl Future<Output = Result<Option<Erasure>>> + Send;
}

/// Checks a batch is shaped as its heads say, before any backend writes it:
/// its indices, that each entry's derived fields agree with its bytes, and
/// that its tiles are exactly the full tiles it completes.
pub(crate) fn check_batch(batch: &Integration<'_>) -> Result<()> {
    let expected = batch.new.size.checked_sub(batch.old.size);
    if expected != Some(batch.entries.len() as u64) {
        return Err(StorageError::InvalidBatch(format!(
            "{} entries move the head from {} to {}",
            batch.entries.len(),
            batch.old.size,
            batch.new.size
        )));
    }
    for (i, e) in batch.entries.iter().enumerate() {
        if e.index != batch.old.size + i as u64 {
            return Err(StorageError::InvalidBatch(format!(
                "entry {i} of the batch has index {}, expected {}",
                e.index,
                batch.old.size + i as u64
            )));
        }
        if e.leaf_hash != evault_core::leaf_hash(&e.entry) {
            return Err(StorageError::InvalidBatch(format!(
                "entry {} has a leaf hash other than its bytes'",
                e.index
            )));
        }
        if e.evidence_sha256 != evidence_digest(&e.entry) {
            return Err(StorageError::InvalidBatch(format!(
                "entry {} has an evidence digest other than the one its bytes name",
                e.index
            )));
        }
    }
    check_tiles(batch)
}

/// The batch's tiles must be the full tiles completed between its heads'
/// sizes: a partial tile would be stored for nothing (it is derived), and a
/// missing full tile would leave the tree unreadable.
fn check_tiles(batch: &Integration<'_>) -> Result<()> {
    let mut given = Vec::with_capacity(batch.tiles.len());
    for (tile, bytes) in batch.tiles {
        if !tile.is_full() {
            return Err(StorageError::InvalidBatch(format!(
                "{} is partial: only full tiles are stored",
                tile.path()
            )));
        }
        if bytes.len() != FULL_TILE_BYTES {
            return Err(StorageError::InvalidBatch(format!(
                "{} has {} bytes, not {FULL_TILE_BYTES}",
                tile.path(),
                bytes.len()
            )));
        }
        given.push((tile.level, tile.index));
    }
    given.sort_unstable();
    let completed: Vec<(u8, u64)> = (0..=MAX_TILE_LEVEL)
        .flat_map(|level| {
            let from = level_width(level, batch.old.size) / TILE_WIDTH;
            let to = level_width(level, batch.new.size) / TILE_WIDTH;
            (from..to).map(move |index| (level, index))
        })
        .collect();
    if given != completed {
        let path = |&(level, index): &(u8, u64)| {
            TileId {
                level,
                index,
                width: TILE_WIDTH as u16,
            }
            .path()
        };
        return Err(StorageError::InvalidBatch(format!(
            "the batch carries tiles [{}] but completes [{}]",
            given.iter().map(path).collect::<Vec<_>>().join(", "),
            completed.iter().map(path).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_pruned_at_its_first_publication_and_every_prune_every_th() {
        let schedule = PruneSchedule::default();
        let due: Vec<u64> = (0..3 * PRUNE_EVERY).filter(|_| schedule.due("a")).collect();
        assert_eq!(due, [0, PRUNE_EVERY, 2 * PRUNE_EVERY]);
        assert!(schedule.due("b"), "each log is counted on its own");
        assert!(!schedule.due("b"));
    }
}
