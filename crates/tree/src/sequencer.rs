//! Sequencing, integration and publication of batches, for one log.
//!
//! One batch at a time: sequencing gives the new entries contiguous indices
//! after dropping those already logged (by dedup key); integration turns
//! their leaf hashes into tiles; both are committed in one storage
//! transaction that moves the tree head by compare-and-swap. Publication
//! then gets the new head signed and stores the checkpoint. Only then are
//! indices and proofs handed out: an index is never given for an entry that
//! is not durable and covered by a signed checkpoint.
//!
//! Nothing is sequenced on storage that does not hold what the signer has
//! signed. When it opens the log, and before it integrates again after
//! the signer refused or the log moved under it, the sequencer compares
//! the stored head with the signer's record ([`Publisher::latest`]). A
//! store behind that record (a restored backup, a lagging replica), or one
//! whose tree at the signed size has another root (a fork), would make
//! the next checkpoint a second tree at a size already signed: the
//! sequencer refuses every batch instead ([`Divergence`]), says so on
//! health ([`Sequencer::sequencing`]) and in the log, and looks again on
//! each batch, so that it resumes once storage is repaired
//! (`docs/runbooks/storage-behind-signer.md`).

use std::collections::HashMap;

use std::sync::Arc;

use evault_core::hash::hex;
use evault_core::tile::partial_tiles_for_size;
use evault_core::trail::AuditRecord;
use evault_core::{
    Checkpoint, EvidenceEntry, Hash, Integrator, Note, ProofPlan, TileId, leaf_hash,
};
use evault_signer::SignRequest;
use evault_storage::tiles::{TileCache, read_tiles};
use evault_storage::{Integration, LogStore, SignedHead, StorageError, StoredEntry, TreeHead};
use tokio::sync::{Mutex, watch};
use tracing::Instrument as _;

use crate::publish::{PublishError, Publisher};
use crate::tiles::{Gathered, prove, prove_inclusions};
use crate::trail::Observed;

/// One entry to sequence.
#[derive(Clone, Debug)]
pub struct NewEntry {
    /// The canonical evidence entry.
    pub entry: Vec<u8>,
    /// Idempotency key: an entry with a key already logged is not logged
    /// again; the original is returned instead.
    pub dedup_key: [u8; 32],
}

/// An entry of a sequenced batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequenced {
    /// Its index in the log.
    pub index: u64,
    /// Whether it was logged before (by an earlier request with its key).
    pub duplicate: bool,
    /// The logged entry: for a duplicate, the original one.
    pub entry: Vec<u8>,
    /// Inclusion proof in the tree of the batch's checkpoint.
    pub proof: Vec<Hash>,
}

/// The answer to a batch.
#[derive(Clone, Debug)]
pub struct SequencedBatch {
    /// The signed checkpoint covering every entry of the batch.
    pub checkpoint: Vec<u8>,
    /// Its tree size.
    pub size: u64,
    /// The batch's entries, in request order.
    pub entries: Vec<Sequenced>,
}

/// Why a batch was not sequenced. Nothing the caller sent was acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    /// An entry is not a canonical evidence entry.
    #[error("entries[{position}]: {reason}")]
    InvalidEntry {
        /// Its position in the batch.
        position: usize,
        /// Why.
        reason: String,
    },
    /// Another sequencer moved the log; this one has reloaded and the
    /// batch may be retried.
    #[error("the log moved under this sequencer (another one is active): {0}")]
    NotLeader(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The checkpoint could not be signed. The entries may be durable; they
    /// will be covered by the next checkpoint that is.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The log's storage does not hold what the signer signed: nothing is
    /// sequenced until it does.
    #[error("refusing to sequence: {0}; see docs/runbooks/storage-behind-signer.md")]
    Diverged(Divergence),
}

/// How the log's storage disagrees with the signer's record of the last
/// head it signed. Sequencing on such storage would have the next
/// checkpoint sign a second tree at a size already signed: a fork under
/// the log's key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Divergence {
    /// Storage holds fewer entries than the signer signed: restored from a
    /// backup older than the signer's record, or a replica that has not
    /// caught up.
    #[error(
        "the log's storage is behind what was signed: it holds size {} (root {}), the signer signed size {} (root {})",
        stored.size, hex(stored.root.as_bytes()), signed.size, hex(signed.root.as_bytes())
    )]
    Behind {
        /// The stored head.
        stored: TreeHead,
        /// The signer's last signed head.
        signed: TreeHead,
    },
    /// Storage's tree at the signed size has another root than the one
    /// signed: its entries are not the ones signed.
    #[error(
        "the log's storage forks from what was signed: its tree of size {} has root {}, the signer signed root {} (storage holds size {})",
        signed.size, hex(stored_root.as_bytes()), hex(signed.root.as_bytes()), stored_size
    )]
    Forked {
        /// The stored tree's root at the signed size.
        stored_root: Hash,
        /// The stored head's size.
        stored_size: u64,
        /// The signer's last signed head.
        signed: TreeHead,
    },
}

/// Whether the sequencer may build on its log's storage, as it last found
/// by comparing it with the signer's record.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Standing {
    /// Not compared since the log was (re)loaded or the signer refused a
    /// head: compared before anything is integrated.
    Unchecked,
    /// Storage holds every head the signer signed.
    Clear,
    /// Storage diverges from the signer's record: every batch is refused,
    /// and compared again.
    Refusing(Divergence),
}

/// What the sequencer knows of its log between batches.
///
/// Invariant: nothing is integrated beyond a head that is not yet
/// published. So the signer has recorded either the published head or the
/// committed one, never anything else, and asking it for exactly the
/// committed head always succeeds once it is reachable again, even after a
/// crash that lost its answer.
struct State {
    /// The right edge of the tree as committed: every partial tile of the
    /// committed tree, so proofs in it never derive one from storage.
    tree: Integrator,
    /// The last head known to be signed and published.
    published: TreeHead,
    /// Batches that still look their keys up before integrating: set
    /// after a batch met a logged key, counted down by batches that did
    /// not (see [`Sequencer::sequence`]).
    probe_dedup: u32,
    /// What the last comparison with the signer's record found.
    standing: Standing,
    /// Set while this state may not be storage's: a reload was needed and
    /// failed (after a commit that failed to say whether it happened).
    /// The next batch reloads before anything else.
    stale: bool,
}

/// How many batches look their dedup keys up first after one met a logged
/// key: retries come in runs (a client or an ingest retrying after a
/// failover), and a run should pay one failed insert, not one per batch.
const PROBE_AFTER_DUPLICATE: u32 = 64;

impl State {
    fn head(&self) -> TreeHead {
        TreeHead {
            size: self.tree.size(),
            root: self.tree.root(),
        }
    }

    /// The partial tiles of the committed tree, from memory.
    fn edge(&self) -> Vec<(TileId, &[u8])> {
        self.tree.partial_tiles().collect()
    }
}

/// The sequencer of one log.
pub struct Sequencer<S, P> {
    origin: String,
    store: S,
    /// Shared with the tree's read service, which lists the signer's keys.
    publisher: Arc<P>,
    cache: TileCache,
    state: Mutex<State>,
    /// False while the sequencer refuses to sequence (written under the
    /// state's lock, read by health reporting).
    sequencing: watch::Sender<bool>,
    /// What the log holds: evidence entries, or audit records.
    kind: EntryKind,
    /// Told of every checkpoint stored and every refusal, once the log's
    /// audit trail is started ([`crate::AuditTrail`]).
    trail: std::sync::OnceLock<crate::trail::AuditTrail>,
}

/// What a log's entries are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryKind {
    /// Canonical evidence entries (`docs/entry-format.md`).
    Evidence,
    /// Audit records ([`evault_core::trail::AuditRecord`]).
    Audit,
}

impl EntryKind {
    /// The log, as its metrics name it.
    fn log(self) -> evault_metrics::Log {
        match self {
            EntryKind::Evidence => evault_metrics::Log::Evidence,
            EntryKind::Audit => evault_metrics::Log::Audit,
        }
    }
}

/// Full tiles kept in memory for proofs (8 KiB each, 16 KiB once their
/// nodes are computed: at most 8 MiB). The full tiles of each committed
/// batch go in, so receipts for recent entries never read a tile back; a
/// sequencer proves only recent entries (and retried ones), so it needs
/// the latest tiles, not the whole log's: reads of old entries are the
/// `LogReader`'s, with a cache of its own.
const TILE_CACHE: usize = 512;

impl<S: LogStore, P: Publisher> Sequencer<S, P> {
    /// Opens the log `origin` (creating it if new), resumes its tree from
    /// the stored tiles, compares it with the signer's record, and
    /// publishes any head not yet signed (after a crash between
    /// integration and publication).
    ///
    /// Storage that diverges from the signer's record does not fail the
    /// opening: the sequencer opens refusing to sequence
    /// ([`Sequencer::sequencing`] is false, every batch fails with
    /// [`SequenceError::Diverged`]), so that reads go on being served and
    /// it resumes once storage is repaired. A signer that cannot be
    /// reached leaves the comparison to the first batch.
    pub async fn open(origin: &str, store: S, publisher: P) -> Result<Self, SequenceError> {
        Self::open_kind(origin, store, publisher, EntryKind::Evidence).await
    }

    /// Opens the audit trail of the log `origin`
    /// ([`evault_core::trail::audit_origin`]), whose entries are audit
    /// records, as [`Sequencer::open`] opens a log.
    pub async fn open_audit_trail(
        origin: &str,
        store: S,
        publisher: P,
    ) -> Result<Self, SequenceError> {
        let origin = evault_core::trail::audit_origin(origin);
        Self::open_kind(&origin, store, publisher, EntryKind::Audit).await
    }

    async fn open_kind(
        origin: &str,
        store: S,
        publisher: P,
        kind: EntryKind,
    ) -> Result<Self, SequenceError> {
        let cache = TileCache::new(TILE_CACHE);
        let state = load(origin, &store, &cache).await?;
        let sequencer = Sequencer {
            origin: origin.to_string(),
            store,
            publisher: Arc::new(publisher),
            cache,
            state: Mutex::new(state),
            sequencing: watch::Sender::new(true),
            kind,
            trail: std::sync::OnceLock::new(),
        };
        {
            let mut state = sequencer.state.lock().await;
            match sequencer.stand(&mut state).await {
                Ok(()) => {
                    sequencer.publish(&mut state).await?;
                    // The latest checkpoint, found or just stored: its age
                    // counts from now, since not every store keeps when it
                    // was stored.
                    evault_metrics::tree()
                        .checkpoint_stored(sequencer.kind.log(), state.published.size);
                }
                // Said on every batch, on health, and logged by `stand`.
                Err(SequenceError::Diverged(_)) => {}
                Err(SequenceError::Publish(PublishError::Unavailable(reason))) => {
                    tracing::warn!(
                        origin = %sequencer.origin,
                        %reason,
                        "cannot ask the signer what it signed; comparing before the first batch"
                    );
                }
                Err(error) => return Err(error),
            }
        }
        Ok(sequencer)
    }

    /// Whether this sequencer sequences: false while it refuses because
    /// the log's storage diverges from what the signer signed, true
    /// otherwise. Health reports follow it.
    pub fn sequencing(&self) -> watch::Receiver<bool> {
        self.sequencing.subscribe()
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log's last `count` committed entries (fewer in a smaller log),
    /// oldest first.
    pub(crate) async fn last_entries(&self, count: u64) -> Result<Vec<Vec<u8>>, SequenceError> {
        let size = self.state.lock().await.head().size;
        let start = size.saturating_sub(count);
        Ok(self
            .store
            .read_entries(&self.origin, start, size - start)
            .await?)
    }

    /// The latest checkpoint stored for the log, if any.
    pub(crate) async fn latest_checkpoint(&self) -> Result<Option<Vec<u8>>, SequenceError> {
        Ok(self.store.checkpoint(&self.origin, None).await?)
    }

    /// Whoever signs this log's checkpoints.
    pub fn publisher(&self) -> &Arc<P> {
        &self.publisher
    }

    /// Sequences, integrates and publishes `batch`, and returns each
    /// entry's index and inclusion proof in the new checkpoint.
    /// Traced as a `sequence` span, holding `integrate` (hashing), `commit`
    /// (the storage transaction) and `publish` (signing, storing the
    /// checkpoint).
    pub async fn sequence(&self, batch: &[NewEntry]) -> Result<SequencedBatch, SequenceError> {
        self.sequence_in_turn(batch, ()).await
    }

    /// [`Sequencer::sequence`], dropping `turn` once the log is released
    /// to the next batch (before this batch's proofs are built), or when
    /// sequencing fails: whoever forms batches learns when to form the
    /// next.
    pub async fn sequence_in_turn<T: Send>(
        &self,
        batch: &[NewEntry],
        turn: T,
    ) -> Result<SequencedBatch, SequenceError> {
        let span = tracing::info_span!(
            "sequence",
            evault.role = "tree",
            evault.log = %self.origin,
            evault.batch.entries = batch.len(),
        );
        self.sequence_traced(batch, turn).instrument(span).await
    }

    /// [`Sequencer::sequence_in_turn`], in its span.
    async fn sequence_traced<T: Send>(
        &self,
        batch: &[NewEntry],
        turn: T,
    ) -> Result<SequencedBatch, SequenceError> {
        let mut evidence = Vec::with_capacity(batch.len());
        for (position, e) in batch.iter().enumerate() {
            let invalid = |reason: String| SequenceError::InvalidEntry { position, reason };
            evidence.push(match self.kind {
                EntryKind::Evidence => Some(
                    EvidenceEntry::checked_digest(&e.entry)
                        .map_err(|err| invalid(err.to_string()))?,
                ),
                EntryKind::Audit => {
                    AuditRecord::parse(&e.entry).map_err(|err| invalid(err.to_string()))?;
                    None
                }
            });
        }
        let mut state = self.state.lock().await;
        if state.stale {
            self.reload(&mut state).await?;
        }
        self.stand(&mut state).await?;
        if state.head() != state.published {
            // A previous batch was committed but not published: finish it
            // before integrating anything new.
            match self.publish(&mut state).await {
                Ok(_) => {}
                Err(SequenceError::Publish(PublishError::Refused(reason))) => {
                    // The signer signed past the head this sequencer
                    // committed: another sequencer took the log on from
                    // it. Storage says where the log is now; compared
                    // with the signer's record, it is where to carry on.
                    tracing::warn!(
                        origin = %self.origin,
                        %reason,
                        "the log moved on past this sequencer's unsigned head; re-reading it"
                    );
                    self.reload(&mut state).await?;
                    self.stand(&mut state).await?;
                    if state.head() != state.published {
                        // Its head is another sequencer's, not yet
                        // signed: that one is active.
                        return Err(SequenceError::NotLeader(format!(
                            "size {} is committed and not yet signed",
                            state.head().size
                        )));
                    }
                }
                Err(error) => return Err(error),
            }
        }

        // Sequencing: drop what is logged already, and repeats within the
        // batch, then number the rest. Most batches hold no retry, so the
        // logged keys are not looked up first: storage refuses a batch
        // holding a logged key (the dedup constraint), writing nothing, and
        // only then is the batch looked up and sequenced again. After a
        // batch met a logged key, the next ones look up first for a while.
        let keys: Vec<[u8; 32]> = batch.iter().map(|e| e.dedup_key).collect();
        let old = state.head();
        let mut probe = state.probe_dedup > 0;
        let (mut fresh, placed) = loop {
            let logged = if probe {
                self.store.find_dedup(&self.origin, &keys).await?
            } else {
                vec![None; keys.len()]
            };
            let (fresh, placed) = place(batch, &evidence, &logged, old.size);

            // Integration, committed with the head's compare-and-swap.
            let mut tree = state.tree.clone();
            let tiles = tracing::info_span!(
                "integrate",
                evault.role = "tree",
                evault.entries = fresh.len()
            )
            .in_scope(|| tree.integrate_full_tiles(fresh.iter().map(|e| e.leaf_hash)));
            let new = TreeHead {
                size: tree.size(),
                root: tree.root(),
            };
            if fresh.is_empty() {
                break (fresh, placed);
            }
            let integration = Integration {
                old,
                new,
                entries: &fresh,
                tiles: &tiles,
            };
            let commit =
                tracing::info_span!("commit", evault.role = "tree", evault.tree.size = new.size);
            match self
                .store
                .integrate(&self.origin, integration)
                .instrument(commit)
                .await
            {
                Ok(()) => {
                    state.tree = tree;
                    for (tile, hashes) in &tiles {
                        self.cache.insert_full(tile.level, tile.index, hashes);
                    }
                }
                Err(StorageError::InvalidBatch(_)) if !probe => {
                    // A logged key, most likely: nothing was written.
                    probe = true;
                    state.probe_dedup = PROBE_AFTER_DUPLICATE;
                    continue;
                }
                Err(StorageError::HeadMoved { expected, found }) => {
                    self.reload(&mut state).await?;
                    return Err(SequenceError::NotLeader(format!(
                        "expected size {expected}, found {found}"
                    )));
                }
                Err(error) => {
                    // The commit may have happened even though it failed to
                    // say so: believe storage, never the error.
                    self.reload(&mut state).await?;
                    if state.head() != new {
                        return Err(error.into());
                    }
                }
            }
            break (fresh, placed);
        };
        if probe && placed.iter().any(|(_, duplicate)| *duplicate) {
            state.probe_dedup = PROBE_AFTER_DUPLICATE;
        } else {
            state.probe_dedup = state.probe_dedup.saturating_sub(1);
        }

        // Publication.
        let publish = tracing::info_span!("publish", evault.role = "tree");
        let checkpoint = self.publish(&mut state).instrument(publish).await?;
        let size = state.published.size;
        evault_metrics::tree().batch_sequenced(self.kind.log(), batch.len());

        // Proofs in the published tree (the committed one): partial tiles
        // from memory, full ones from the cache and storage. The tree of
        // `size` entries never changes, so the next batch may be sequenced
        // while this one's proofs are built: the log is released here,
        // with a copy of the edge it needs.
        let edge: Vec<(TileId, Vec<u8>)> = state
            .edge()
            .into_iter()
            .map(|(tile, hashes)| (tile, hashes.to_vec()))
            .collect();
        drop(state);
        drop(turn);
        // The next batch, woken by the release, waits in this worker's
        // next-task slot, which no other worker may take: it would wait
        // for the whole proof work below. Yielding lets it commit first,
        // so storage is never idle while proofs are built.
        tokio::task::yield_now().await;
        let edge: Vec<(TileId, &[u8])> = edge.iter().map(|(t, h)| (*t, h.as_slice())).collect();
        let indices: Vec<u64> = placed.iter().map(|(index, _)| *index).collect();
        let proofs = prove_inclusions(
            &self.store,
            &self.origin,
            &self.cache,
            size,
            &edge,
            &indices,
        )
        .await?;
        let originals = self.originals(&placed).await?;
        let mut entries = Vec::with_capacity(batch.len());
        for ((index, duplicate), proof) in placed.into_iter().zip(proofs) {
            let entry = if duplicate {
                originals
                    .get(&index)
                    .cloned()
                    .ok_or_else(|| StorageError::Corrupt(format!("entry {index}")))?
            } else {
                // Each fresh entry is placed once, so it can be moved out.
                fresh
                    .get_mut((index - old.size) as usize)
                    .map(|e| std::mem::take(&mut e.entry))
                    .ok_or_else(|| StorageError::Corrupt(format!("entry {index}")))?
            };
            entries.push(Sequenced {
                index,
                duplicate,
                entry,
                proof,
            });
        }
        Ok(SequencedBatch {
            checkpoint,
            size,
            entries,
        })
    }

    /// The logged entries that the duplicates of a batch stand for, read in
    /// runs of consecutive indices: a retried batch is mostly one run, so
    /// it costs a few reads rather than one per entry.
    async fn originals(
        &self,
        placed: &[(u64, bool)],
    ) -> Result<HashMap<u64, Vec<u8>>, SequenceError> {
        let mut wanted: Vec<u64> = placed
            .iter()
            .filter(|(_, dup)| *dup)
            .map(|(i, _)| *i)
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut originals = HashMap::with_capacity(wanted.len());
        let mut rest = wanted.as_slice();
        while let Some(&start) = rest.first() {
            let run = rest
                .iter()
                .enumerate()
                .take_while(|(k, i)| **i == start + *k as u64)
                .count();
            let read = self
                .store
                .read_entries(&self.origin, start, run as u64)
                .await?;
            originals.extend((start..).zip(read));
            rest = &rest[run..];
        }
        Ok(originals)
    }

    /// Makes sure the log's storage holds what the signer signed, comparing
    /// them unless the last comparison found it did and nothing has
    /// happened since that could change it. Fails with
    /// [`SequenceError::Diverged`] while it does not; nothing may be
    /// integrated or signed then.
    async fn stand(&self, state: &mut State) -> Result<(), SequenceError> {
        if state.standing == Standing::Clear {
            return Ok(());
        }
        let was = state.standing.clone();
        let refusing = matches!(was, Standing::Refusing(_));
        match self.compare(state, refusing).await {
            Ok(()) => {
                if let Standing::Refusing(divergence) = &was {
                    tracing::warn!(
                        origin = %self.origin,
                        was = %divergence,
                        "the log's storage now holds what the signer signed; sequencing resumes"
                    );
                }
                state.standing = Standing::Clear;
                self.sequencing.send_replace(true);
                Ok(())
            }
            Err(SequenceError::Diverged(divergence)) => {
                // Logged when it starts or changes, not on every batch
                // refused meanwhile.
                if was != Standing::Refusing(divergence.clone()) {
                    tracing::error!(
                        origin = %self.origin,
                        %divergence,
                        "refusing to sequence: the log's storage does not hold what the signer \
                         signed (docs/runbooks/storage-behind-signer.md)"
                    );
                }
                state.standing = Standing::Refusing(divergence.clone());
                self.sequencing.send_replace(false);
                Err(SequenceError::Diverged(divergence))
            }
            Err(error) => {
                // Not compared (a reload may have reset it): as it was,
                // and compared again on the next batch.
                state.standing = was;
                Err(error)
            }
        }
    }

    /// Compares the log's storage with the signer's record of the last
    /// head it signed, reloading the log if storage moved under it.
    ///
    /// The signer is asked first and storage read after: an honest signer
    /// signs only heads storage had committed before, so storage read
    /// later holds at least what the signer reported, even while another
    /// sequencer moves the log. When storage holds the signed head but not
    /// its checkpoint (the signer's answer was lost), the signer's
    /// checkpoint is stored: that is the normal repair.
    ///
    /// Storage that moved under a sequencer that is not `refusing` means
    /// another sequencer is active, as when a commit finds the head moved:
    /// the log is reloaded and the batch refused with
    /// [`SequenceError::NotLeader`]. Under one that refuses, it is most
    /// likely the repair: the log is reloaded and compared.
    async fn compare(&self, state: &mut State, refusing: bool) -> Result<(), SequenceError> {
        let Some(signed) = self.publisher.latest(&self.origin).await? else {
            return Ok(());
        };
        let stored = self.store.head(&self.origin).await?;
        if stored != state.head() {
            let expected = state.head().size;
            self.reload(state).await?;
            if !refusing {
                return Err(SequenceError::NotLeader(format!(
                    "expected size {expected}, found {}",
                    stored.size
                )));
            }
        }
        let head = state.head();
        if head.size < signed.head.size {
            return Err(SequenceError::Diverged(Divergence::Behind {
                stored: head,
                signed: signed.head,
            }));
        }
        let stored_root = self.root_at(state, signed.head.size).await?;
        if stored_root != signed.head.root {
            return Err(SequenceError::Diverged(Divergence::Forked {
                stored_root,
                stored_size: head.size,
                signed: signed.head,
            }));
        }
        if state.published.size < signed.head.size {
            self.adopt(state, &signed).await?;
        }
        Ok(())
    }

    /// Reads the log's head, edge and latest checkpoint from storage again.
    /// Until that succeeds, `state` is marked stale, so a failed reload is
    /// tried again before the next batch rather than leaving a head that
    /// storage may have moved past.
    async fn reload(&self, state: &mut State) -> Result<(), SequenceError> {
        state.stale = true;
        *state = load(&self.origin, &self.store, &self.cache).await?;
        Ok(())
    }

    /// The root of the committed tree's first `size` entries.
    async fn root_at(&self, state: &State, size: u64) -> Result<Hash, SequenceError> {
        let head = state.head();
        if size == head.size {
            return Ok(head.root);
        }
        if size == 0 {
            return Ok(evault_core::empty_root());
        }
        let mut roots = prove(
            &self.store,
            &self.origin,
            &self.cache,
            head.size,
            &state.edge(),
            &[ProofPlan::root(size)],
        )
        .await?;
        roots
            .pop()
            .and_then(|root| root.first().copied())
            .ok_or_else(|| StorageError::Corrupt(format!("no root at size {size}")).into())
    }

    /// Stores the checkpoint the signer signed for a head storage holds
    /// but never published (its answer was lost), after checking that it
    /// is that head's.
    async fn adopt(&self, state: &mut State, signed: &SignedHead) -> Result<(), SequenceError> {
        let names = Note::parse(&signed.checkpoint)
            .ok()
            .and_then(|note| Checkpoint::parse(note.text()).ok())
            .map(|cp| (cp.origin, cp.size, cp.root));
        if names != Some((self.origin.clone(), signed.head.size, signed.head.root)) {
            return Err(PublishError::Unavailable(format!(
                "the signer's checkpoint for its last head (size {}) is not that head's",
                signed.head.size
            ))
            .into());
        }
        self.store
            .publish(&self.origin, signed.head.size, &signed.checkpoint)
            .await?;
        evault_metrics::tree().checkpoint_stored(self.kind.log(), signed.head.size);
        tracing::info!(
            origin = %self.origin,
            size = signed.head.size,
            "stored the checkpoint the signer had signed, whose answer was lost"
        );
        state.published = signed.head;
        self.observe(Observed::Signed(signed.checkpoint.clone()))
            .await;
        Ok(())
    }

    /// Gets the committed head signed (unless it already is) and stores
    /// the checkpoint. Returns the checkpoint of the committed head.
    async fn publish(&self, state: &mut State) -> Result<Vec<u8>, SequenceError> {
        let head = state.head();
        if head == state.published {
            if let Some(note) = self.store.checkpoint(&self.origin, Some(head.size)).await? {
                return Ok(note);
            }
        }
        let note = match self.sign(state.published, state).await {
            Ok(note) => note,
            Err(error) => {
                // A refusal means the signer's record is not what this
                // sequencer believes: compare again before going on.
                if let SequenceError::Publish(PublishError::Refused(_)) = error {
                    state.standing = Standing::Unchecked;
                }
                return Err(error);
            }
        };
        self.store.publish(&self.origin, head.size, &note).await?;
        evault_metrics::tree().checkpoint_stored(self.kind.log(), head.size);
        state.published = head;
        self.observe(Observed::Signed(note.clone())).await;
        Ok(note)
    }

    /// Makes `trail` the log's audit trail: told of every checkpoint
    /// stored and every refusal from now on. Set once; a second call
    /// changes nothing.
    pub(crate) fn audited_by(&self, trail: crate::trail::AuditTrail) {
        let _ = self.trail.set(trail);
    }

    /// The log's audit trail, once it is started.
    pub fn audit_trail(&self) -> Option<&crate::trail::AuditTrail> {
        self.trail.get()
    }

    /// The migrations applied to the log's storage.
    pub(crate) async fn applied_migrations(
        &self,
    ) -> Result<Vec<evault_storage::AppliedMigration>, SequenceError> {
        Ok(self.store.applied_migrations().await?)
    }

    async fn observe(&self, observed: Observed) {
        if let Some(trail) = self.trail.get() {
            trail.tell(observed).await;
        }
    }

    /// Asks for the committed head of `state` to be signed as extending
    /// `old`.
    async fn sign(&self, old: TreeHead, state: &State) -> Result<Vec<u8>, SequenceError> {
        let new = state.head();
        let proof = if old.size == 0 || old.size == new.size {
            Vec::new()
        } else {
            let plan = ProofPlan::consistency(old.size, new.size).map_err(StorageError::Corrupt)?;
            prove(
                &self.store,
                &self.origin,
                &self.cache,
                new.size,
                &state.edge(),
                &[plan],
            )
            .await?
            .remove(0)
        };
        let request = SignRequest {
            origin: self.origin.clone(),
            old,
            new,
            proof,
        };
        let asked = std::time::Instant::now();
        let signed = self.publisher.sign(request).await;
        evault_metrics::tree().signing_took(asked.elapsed());
        match signed {
            Ok(note) => Ok(note),
            Err(e) => {
                if let PublishError::Refused(reason) = &e {
                    tracing::error!(origin = %self.origin, %reason, "signer refused a checkpoint");
                    self.observe(Observed::Refused {
                        old,
                        new,
                        reason: reason.clone(),
                    })
                    .await;
                }
                Err(SequenceError::Publish(e))
            }
        }
    }
}

/// Places a batch: each entry logged before (`logged`) or repeated within
/// the batch points at its original; the rest get the next indices after
/// `size`, in order. Returns the entries to store and, for each entry of
/// the batch, its index and whether it is a duplicate.
fn place(
    batch: &[NewEntry],
    evidence: &[Option<[u8; 32]>],
    logged: &[Option<u64>],
    size: u64,
) -> (Vec<StoredEntry>, Vec<(u64, bool)>) {
    let mut fresh: Vec<StoredEntry> = Vec::new();
    let mut first_in_batch: HashMap<[u8; 32], u64> = HashMap::new();
    let mut placed: Vec<(u64, bool)> = Vec::with_capacity(batch.len());
    for (i, e) in batch.iter().enumerate() {
        if let Some(index) = logged[i] {
            placed.push((index, true));
        } else if let Some(&index) = first_in_batch.get(&e.dedup_key) {
            placed.push((index, true));
        } else {
            let index = size + fresh.len() as u64;
            first_in_batch.insert(e.dedup_key, index);
            fresh.push(StoredEntry {
                index,
                leaf_hash: leaf_hash(&e.entry),
                dedup_key: e.dedup_key,
                evidence_sha256: evidence[i],
                entry: e.entry.clone(),
            });
            placed.push((index, false));
        }
    }
    (fresh, placed)
}

/// Loads the sequencer's state from storage: the head, the right edge of
/// the tree (its partial tiles, derived: at most 255 entries, and 255 full
/// tiles per level above 0), and the last published checkpoint.
async fn load<S: LogStore>(
    origin: &str,
    store: &S,
    cache: &TileCache,
) -> Result<State, SequenceError> {
    let head = store.create_log(origin).await?;
    let partial: Vec<TileId> = partial_tiles_for_size(head.size).collect();
    let bytes = read_tiles(store, origin, head.size, &partial, cache).await?;
    let mut edge = Gathered::from_tiles(partial.iter().copied().zip(bytes));
    let tree = Integrator::resume(head.size, &mut edge)
        .map_err(|e| StorageError::Corrupt(e.to_string()))?;
    if tree.root() != head.root {
        return Err(StorageError::Corrupt(format!(
            "the stored tiles give another root than the head at size {}",
            head.size
        ))
        .into());
    }
    let published = match store.checkpoint(origin, None).await? {
        Some(note) => {
            let note = Note::parse(&note)
                .map_err(|e| StorageError::Corrupt(format!("checkpoint: {e}")))?;
            let cp = Checkpoint::parse(note.text())
                .map_err(|e| StorageError::Corrupt(format!("checkpoint: {e}")))?;
            TreeHead {
                size: cp.size,
                root: cp.root,
            }
        }
        None => TreeHead::empty(),
    };
    // Until a first checkpoint exists, the empty tree's is owed: the
    // empty head counts as published and is signed like any other.
    Ok(State {
        tree,
        published,
        probe_dedup: 0,
        standing: Standing::Unchecked,
        stale: false,
    })
}
