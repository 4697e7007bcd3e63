//! Reading proofs from storage: plan, fetch the tiles at once, resolve.
//!
//! Full tiles never change, so they are kept in a bounded cache shared by
//! all requests; partial tiles change with every batch and are always read
//! fresh (or taken from the batch that just wrote them).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use evault_core::{Hash, ProofPlan, TileId, TileReader, TreeReader};
use evault_storage::{LogStore, StorageError};

/// A bounded cache of full tiles, evicting the oldest first.
pub(crate) struct TileCache {
    capacity: usize,
    inner: Mutex<Cached>,
}

/// The cached tiles, and their keys in insertion order for eviction.
#[derive(Default)]
struct Cached {
    tiles: HashMap<(u8, u64), Vec<u8>>,
    order: VecDeque<(u8, u64)>,
}

impl TileCache {
    /// A cache holding at most `capacity` full tiles (8 KiB each).
    pub(crate) fn new(capacity: usize) -> Self {
        TileCache {
            capacity,
            inner: Mutex::new(Cached::default()),
        }
    }

    fn get(&self, tile: &TileId) -> Option<Vec<u8>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tiles.get(&(tile.level, tile.index)).cloned()
    }

    fn put(&self, tile: &TileId, bytes: &[u8]) {
        if !tile.is_full() || self.capacity == 0 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let key = (tile.level, tile.index);
        if inner.tiles.insert(key, bytes.to_vec()).is_none() {
            inner.order.push_back(key);
            while inner.order.len() > self.capacity {
                if let Some(old) = inner.order.pop_front() {
                    inner.tiles.remove(&old);
                }
            }
        }
    }
}

/// Tiles gathered for a set of plans.
pub(crate) struct Gathered(HashMap<(u8, u64), Vec<u8>>);

impl Gathered {
    pub(crate) fn from_tiles(tiles: impl IntoIterator<Item = (TileId, Vec<u8>)>) -> Self {
        Gathered(
            tiles
                .into_iter()
                .map(|(t, b)| ((t.level, t.index), b))
                .collect(),
        )
    }
}

impl TileReader for Gathered {
    type Error = String;

    fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        let bytes = self
            .0
            .get(&(tile.level, tile.index))
            .ok_or_else(|| format!("{} was not gathered", tile.path()))?;
        bytes
            .get(..usize::from(tile.width) * evault_core::HASH_SIZE)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("{} is narrower than needed", tile.path()))
    }
}

/// Resolves `plans` against the tree of `size` entries in `store`, taking
/// tiles from `fresh` (just written), then the cache, then storage.
pub(crate) async fn prove<S: LogStore>(
    store: &S,
    origin: &str,
    cache: &TileCache,
    size: u64,
    fresh: &[(TileId, Vec<u8>)],
    plans: &[ProofPlan],
) -> Result<Vec<Vec<Hash>>, StorageError> {
    let mut wanted: Vec<TileId> = plans.iter().flat_map(|p| p.tiles(size)).collect();
    wanted.sort();
    wanted.dedup();
    let mut gathered = HashMap::new();
    let fresh: HashMap<(u8, u64), &Vec<u8>> =
        fresh.iter().map(|(t, b)| ((t.level, t.index), b)).collect();
    let mut missing = Vec::new();
    for tile in wanted {
        let key = (tile.level, tile.index);
        if let Some(bytes) = fresh.get(&key) {
            gathered.insert(key, (*bytes).clone());
        } else if let Some(bytes) = tile.is_full().then(|| cache.get(&tile)).flatten() {
            gathered.insert(key, bytes);
        } else {
            missing.push(tile);
        }
    }
    if !missing.is_empty() {
        let read = store.read_tiles(origin, &missing).await?;
        for (tile, bytes) in missing.iter().zip(read) {
            cache.put(tile, &bytes);
            gathered.insert((tile.level, tile.index), bytes);
        }
    }
    let mut tiles = Gathered(gathered);
    let mut reader = TreeReader::new(size, &mut tiles);
    plans
        .iter()
        .map(|plan| {
            reader
                .prove(plan)
                .map_err(|e| StorageError::Corrupt(e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(index: u64) -> TileId {
        TileId {
            level: 0,
            index,
            width: 256,
        }
    }

    #[test]
    fn cache_holds_at_most_its_capacity_and_never_partial_tiles() {
        let cache = TileCache::new(2);
        for i in 0..3 {
            cache.put(&full(i), &[i as u8; 8192]);
        }
        assert_eq!(cache.get(&full(0)), None, "the oldest is evicted");
        assert_eq!(cache.get(&full(2)).map(|b| b[0]), Some(2));
        let partial = TileId {
            level: 0,
            index: 9,
            width: 3,
        };
        cache.put(&partial, &[1; 96]);
        assert_eq!(cache.get(&partial), None);
    }
}
