//! Serving the log: checkpoints, proofs and entries, only ever within a
//! checkpoint the log has published.

use std::collections::VecDeque;
use std::sync::Mutex;

use evault_core::{Checkpoint, Hash, Note, ProofPlan, RangeRoots};
use evault_proto::transport::{MAX_ENTRY_BYTES, entries_within};
use evault_storage::tiles::TileCache;
use evault_storage::{LogStore, StorageError};

use crate::tiles::prove_knowing;

/// The most entries one read returns.
pub const MAX_ENTRIES_PER_READ: u64 = 1000;

/// Why a read cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No such checkpoint or entry.
    #[error("{0}")]
    NotFound(String),
    /// An index beyond the published tree.
    #[error("{0}")]
    OutOfRange(String),
    /// A malformed request.
    #[error("{0}")]
    InvalidArgument(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A published checkpoint: the note and its parsed body.
#[derive(Clone, Debug)]
pub struct Published {
    /// The signed note, verbatim.
    pub note: Vec<u8>,
    /// Its body.
    pub checkpoint: Checkpoint,
}

/// Reads one log.
pub struct LogReader<S> {
    origin: String,
    store: S,
    cache: TileCache,
    /// Checkpoints recently asked for by size, oldest first.
    recent: Mutex<VecDeque<Published>>,
    /// The roots of the ranges reaching the right edge of the last tree
    /// proved in, and its size. Those ranges hold the nodes of partial
    /// tiles, which are hashed, not stored: every proof in one tree ends
    /// in a few of them, and without this each proof would hash them
    /// again (most of a proof's work once the tiles are cached).
    right_edge: Mutex<(u64, RangeRoots)>,
}

/// The most right-edge ranges remembered: an inclusion proof ends in one
/// of about log2(size) of them, so this only bounds what unusual requests
/// (consistency proofs from many sizes) could add.
const RIGHT_EDGE_RANGES: usize = 1024;

/// Checkpoints kept by size.
const RECENT_CHECKPOINTS: usize = 16;

/// Full tiles kept in memory for reads (8 KiB each: 32 MiB). The latest
/// checkpoint's partial tiles, which nearly every proof reads, are kept
/// beside them once derived.
const TILE_CACHE: usize = 4096;

impl<S: LogStore> LogReader<S> {
    /// A reader of `origin` in `store`.
    pub fn new(origin: &str, store: S) -> Self {
        LogReader {
            origin: origin.to_string(),
            store,
            cache: TileCache::new(TILE_CACHE),
            recent: Mutex::new(VecDeque::new()),
            right_edge: Mutex::new((0, RangeRoots::new())),
        }
    }

    /// The published checkpoint of `size` entries; `0` for the latest.
    ///
    /// The checkpoints of a few sizes asked for by size are kept: a
    /// verifier pinned to one checkpoint asks for many proofs in it, and
    /// storage need not be asked each time. The latest is always read, so
    /// a caller never sees an older tree than one it was just shown.
    pub async fn checkpoint(&self, size: u64) -> Result<Published, ReadError> {
        if size != 0 {
            if let Some(known) = self.known(size) {
                return Ok(known);
            }
        }
        let published = self.read_checkpoint(size).await?;
        if size != 0 {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() >= RECENT_CHECKPOINTS {
                recent.pop_front();
            }
            recent.push_back(published.clone());
        }
        Ok(published)
    }

    fn known(&self, size: u64) -> Option<Published> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().find(|p| p.checkpoint.size == size).cloned()
    }

    async fn read_checkpoint(&self, size: u64) -> Result<Published, ReadError> {
        let wanted = (size != 0).then_some(size);
        let note = self
            .store
            .checkpoint(&self.origin, wanted)
            .await?
            .ok_or_else(|| {
                ReadError::NotFound(format!("no published checkpoint of size {size}"))
            })?;
        let checkpoint = Note::parse(&note)
            .ok()
            .and_then(|n| Checkpoint::parse(n.text()).ok())
            .ok_or_else(|| StorageError::Corrupt(format!("checkpoint of size {size}")))?;
        Ok(Published { note, checkpoint })
    }

    /// Proofs in the published tree of `size` entries, from its own tiles:
    /// the full ones stored, the partial ones derived (and cached), so no
    /// read of the moving head is needed.
    async fn proofs(&self, size: u64, plans: &[ProofPlan]) -> Result<Vec<Vec<Hash>>, ReadError> {
        let known = {
            let edge = self.right_edge.lock().unwrap_or_else(|p| p.into_inner());
            if edge.0 == size {
                edge.1.clone()
            } else {
                RangeRoots::new()
            }
        };
        let (proofs, found) = prove_knowing(
            &self.store,
            &self.origin,
            &self.cache,
            size,
            &[],
            plans,
            known,
        )
        .await?;
        let mut edge = self.right_edge.lock().unwrap_or_else(|p| p.into_inner());
        // The newest tree wins: readers ask mostly of the latest checkpoint.
        if size >= edge.0 && found.len() <= RIGHT_EDGE_RANGES {
            *edge = (size, found);
        }
        Ok(proofs)
    }

    /// The inclusion proof of entry `index` in the checkpoint of
    /// `tree_size` entries (`0`: the latest).
    pub async fn inclusion(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<(Vec<Hash>, Published), ReadError> {
        let published = self.checkpoint(tree_size).await?;
        let size = published.checkpoint.size;
        if index >= size {
            return Err(ReadError::OutOfRange(format!(
                "index {index} is not below the tree size {size}"
            )));
        }
        let plan = ProofPlan::inclusion(index, size).map_err(ReadError::OutOfRange)?;
        let proof = self.proofs(size, &[plan]).await?.remove(0);
        Ok((proof, published))
    }

    /// The index of the first entry with leaf hash `leaf` in the checkpoint
    /// of `tree_size` entries, with its inclusion proof.
    pub async fn inclusion_of_leaf(
        &self,
        leaf: Hash,
        tree_size: u64,
    ) -> Result<(u64, Vec<Hash>, Published), ReadError> {
        let published = self.checkpoint(tree_size).await?;
        let index = self
            .store
            .find_leaf(&self.origin, leaf)
            .await?
            .filter(|&i| i < published.checkpoint.size)
            .ok_or_else(|| {
                ReadError::NotFound(format!("no entry with leaf hash {leaf} in the tree"))
            })?;
        let (proof, published) = self.inclusion(index, published.checkpoint.size).await?;
        Ok((index, proof, published))
    }

    /// The consistency proof from `first` entries to the checkpoint of
    /// `second` entries (`0`: the latest).
    pub async fn consistency(
        &self,
        first: u64,
        second: u64,
    ) -> Result<(Vec<Hash>, Published), ReadError> {
        let published = self.checkpoint(second).await?;
        let size = published.checkpoint.size;
        if first > size {
            return Err(ReadError::InvalidArgument(format!(
                "first size {first} is larger than the second size {size}"
            )));
        }
        if first == 0 || first == size {
            return Ok((Vec::new(), published));
        }
        let plan = ProofPlan::consistency(first, size).map_err(ReadError::InvalidArgument)?;
        Ok((self.proofs(size, &[plan]).await?.remove(0), published))
    }

    /// Up to `count` entries from `start`, within the latest checkpoint.
    pub async fn entries(&self, start: u64, count: u64) -> Result<Vec<(u64, Vec<u8>)>, ReadError> {
        if count == 0 {
            return Err(ReadError::InvalidArgument(
                "count must be at least 1".into(),
            ));
        }
        let size = self.checkpoint(0).await?.checkpoint.size;
        if start >= size {
            return Err(ReadError::OutOfRange(format!(
                "start {start} is not below the tree size {size}"
            )));
        }
        let count = count.min(MAX_ENTRIES_PER_READ).min(size - start);
        let mut entries = self.store.read_entries(&self.origin, start, count).await?;
        entries.truncate(entries_within(
            entries.iter().map(Vec::len),
            MAX_ENTRY_BYTES,
        ));
        Ok((start..).zip(entries).collect())
    }

    /// Entries naming evidence `sha256`, from index `from` on, at most
    /// `limit`; and the index to continue from, if there may be more.
    pub async fn find(
        &self,
        sha256: [u8; 32],
        from: u64,
        limit: u32,
    ) -> Result<(Vec<(u64, Vec<u8>)>, Option<u64>), ReadError> {
        let size = self.checkpoint(0).await?.checkpoint.size;
        let mut indices = self
            .store
            .find_evidence(&self.origin, sha256, from, limit + 1)
            .await?;
        indices.retain(|&i| i < size);
        let mut next = (indices.len() > limit as usize).then(|| indices[limit as usize]);
        indices.truncate(limit as usize);
        let mut found = Vec::with_capacity(indices.len());
        let mut bytes = 0;
        for index in indices {
            let mut entry = self.store.read_entries(&self.origin, index, 1).await?;
            let entry = entry.pop().unwrap_or_default();
            bytes += entry.len();
            if !found.is_empty() && bytes > MAX_ENTRY_BYTES {
                // The page ends early; the token continues from here.
                next = Some(index);
                break;
            }
            found.push((index, entry));
        }
        Ok((found, next))
    }
}
