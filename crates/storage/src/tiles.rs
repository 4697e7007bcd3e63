//! Reading hash tiles: full tiles as stored, partial tiles derived.
//!
//! A store keeps full tiles only, each written once. A partial tile is a
//! function of what lies below it: `0/N.p/W` is the leaf hashes of entries
//! `256·N ..256·N + W`, and `L/N.p/W` (L ≥ 1) the roots of the full tiles
//! `L-1/256·N ..256·N + W`. [`read_tiles`] is the one way the vault reads
//! tiles (proofs, a sequencer resuming, the tlog-tiles HTTP API), so every
//! reader serves the same bytes for the same path, and those bytes are the
//! ones `evault_core::Integrator` produces (pinned by a golden test).
//!
//! Derivation reads up to 255 entries or 255 full tiles, so a
//! [`TileCache`] keeps the partial tiles it derived as well as full tiles.
//! A partial tile only grows, and its first `W` hashes never change, so the
//! cache keeps the widest version of each and serves any narrower one as
//! its prefix; a wider one is derived by reading only what was added since.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash as StdHash;
use std::sync::{Arc, Mutex};

use evault_core::tile::{TILE_WIDTH, TileId, tile_at, tile_from_entries, tile_from_tiles};
use evault_core::{HASH_SIZE, TileNodes};

use crate::{LogStore, Result, StorageError};

/// Partial tiles a cache keeps: a tree has one per level, and a reader
/// serving a few recent checkpoints needs a few of those.
const PARTIAL_CAPACITY: usize = 64;

/// A bounded map, evicting the oldest insertion first.
struct Bounded<K, V> {
    capacity: usize,
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Copy + Eq + StdHash, V> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Bounded {
            capacity,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        if self.map.insert(key, value).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

/// Tiles of one log kept in memory between reads: full tiles (which never
/// change) and derived partial tiles (whose prefixes never change), each
/// bounded. A cache serves one log: its keys carry no origin.
pub struct TileCache {
    inner: Mutex<Cached>,
}

struct Cached {
    /// (level, index) → a full tile, with its inner nodes once a proof
    /// asked for them.
    full: Bounded<(u8, u64), Arc<TileNodes>>,
    /// (level, index) → the widest partial tile derived at that position.
    partial: Bounded<(u8, u64), Vec<u8>>,
}

impl TileCache {
    /// A cache of at most `full_tiles` full tiles (8 KiB each) and a few
    /// dozen partial ones.
    pub fn new(full_tiles: usize) -> Self {
        TileCache {
            inner: Mutex::new(Cached {
                full: Bounded::new(full_tiles),
                partial: Bounded::new(PARTIAL_CAPACITY),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        // The cache holds no invariant a panic could break half-way.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a full tile known to be stored, such as one a sequencer has
    /// just committed, so that reads need not fetch it again.
    pub fn insert_full(&self, level: u8, index: u64, hashes: &[u8]) {
        if let Some(tile) = TileNodes::of_full_tile(hashes.to_vec()) {
            self.lock().full.insert((level, index), Arc::new(tile));
        }
    }

    /// The full tile at (`level`, `index`), if cached: its hashes, and the
    /// roots within it that proofs ask for, computed once per tile.
    pub fn full_tile(&self, level: u8, index: u64) -> Option<Arc<TileNodes>> {
        self.lock().full.map.get(&(level, index)).cloned()
    }

    fn full(&self, key: (u8, u64)) -> Option<Vec<u8>> {
        self.full_tile(key.0, key.1).map(|t| t.hashes().to_vec())
    }

    /// The cached partial tile at `key`: its first `width` hashes if it is
    /// that wide, otherwise all it has (for extending).
    fn partial(&self, key: (u8, u64), width: u16) -> Option<Vec<u8>> {
        let inner = self.lock();
        let bytes = inner.partial.map.get(&key)?;
        Some(bytes[..bytes.len().min(usize::from(width) * HASH_SIZE)].to_vec())
    }

    fn insert_partial(&self, key: (u8, u64), bytes: &[u8]) {
        let mut inner = self.lock();
        match inner.partial.map.get_mut(&key) {
            Some(known) if known.len() >= bytes.len() => {}
            Some(known) => *known = bytes.to_vec(),
            None => inner.partial.insert(key, bytes.to_vec()),
        }
    }
}

/// The tiles `tiles` of the tree of `size` entries in `store`, each exactly
/// `32 · width` bytes, in the order asked.
///
/// `size` is a tree size the store holds (its head, or a published
/// checkpoint's): a tile full at `size` is read from the store (a narrower
/// width of it is its prefix), a partial one is derived from the entries or
/// full tiles below. A tile that is not in the tree of `size` entries (or
/// wider than there) is [`StorageError::Corrupt`], like any read beyond
/// the tree.
pub async fn read_tiles<S: LogStore>(
    store: &S,
    origin: &str,
    size: u64,
    tiles: &[TileId],
    cache: &TileCache,
) -> Result<Vec<Vec<u8>>> {
    let mut found: Vec<Option<Vec<u8>>> = vec![None; tiles.len()];
    let mut stored = Vec::new();
    let mut derived = Vec::new();
    for (slot, tile) in tiles.iter().enumerate() {
        let in_tree = tile_at(tile.level, tile.index, size).filter(|t| t.width >= tile.width);
        let Some(in_tree) = in_tree else {
            return Err(StorageError::Corrupt(format!(
                "{} (beyond the tree of {size} entries)",
                tile.path()
            )));
        };
        if in_tree.is_full() {
            stored.push(slot);
        } else {
            derived.push(slot);
        }
    }

    let positions: Vec<(u8, u64)> = stored
        .iter()
        .map(|&slot| (tiles[slot].level, tiles[slot].index))
        .collect();
    for (slot, bytes) in stored
        .iter()
        .zip(full_tiles(store, origin, &positions, cache).await?)
    {
        found[*slot] = Some(prefix(bytes, tiles[*slot].width));
    }
    for slot in derived {
        found[slot] = Some(derive(store, origin, tiles[slot], cache).await?);
    }
    Ok(found.into_iter().flatten().collect())
}

fn prefix(mut bytes: Vec<u8>, width: u16) -> Vec<u8> {
    bytes.truncate(usize::from(width) * HASH_SIZE);
    bytes
}

/// Full tiles at `positions`, from the cache where it has them and in one
/// read from the store for the rest.
async fn full_tiles<S: LogStore>(
    store: &S,
    origin: &str,
    positions: &[(u8, u64)],
    cache: &TileCache,
) -> Result<Vec<Vec<u8>>> {
    let mut found: Vec<Option<Vec<u8>>> = positions.iter().map(|&p| cache.full(p)).collect();
    let mut missing: Vec<(u8, u64)> = positions
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(p, _)| *p)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        let read = store.read_full_tiles(origin, &missing).await?;
        let read: HashMap<(u8, u64), Vec<u8>> = missing.into_iter().zip(read).collect();
        for (position, slot) in positions.iter().zip(&mut found) {
            if slot.is_none() {
                let bytes = read.get(position).cloned().ok_or_else(|| {
                    StorageError::Corrupt(format!("full tile {}/{}", position.0, position.1))
                })?;
                cache.insert_full(position.0, position.1, &bytes);
                *slot = Some(bytes);
            }
        }
    }
    Ok(found.into_iter().flatten().collect())
}

/// Derives partial tile `tile`, extending what the cache already knows of
/// it by the hashes added since.
async fn derive<S: LogStore>(
    store: &S,
    origin: &str,
    tile: TileId,
    cache: &TileCache,
) -> Result<Vec<u8>> {
    let key = (tile.level, tile.index);
    let mut bytes = cache.partial(key, tile.width).unwrap_or_default();
    let known = (bytes.len() / HASH_SIZE) as u64;
    let width = u64::from(tile.width);
    if known == width {
        return Ok(bytes);
    }
    let first = tile.index * TILE_WIDTH + known;
    let count = width - known;
    if tile.level == 0 {
        let entries = store.read_entries(origin, first, count).await?;
        bytes.extend(tile_from_entries(&entries));
    } else {
        let below: Vec<(u8, u64)> = (first..first + count)
            .map(|index| (tile.level - 1, index))
            .collect();
        let full = full_tiles(store, origin, &below, cache).await?;
        let roots = tile_from_tiles(&full).ok_or_else(|| {
            StorageError::Corrupt(format!("the full tiles below {}", tile.path()))
        })?;
        bytes.extend(roots);
    }
    cache.insert_partial(key, &bytes);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_holds_at_most_its_capacity_of_full_tiles() {
        let cache = TileCache::new(2);
        for i in 0..3 {
            cache.insert_full(0, i, &[i as u8; 8192]);
        }
        assert_eq!(cache.full((0, 0)), None, "the oldest is evicted");
        assert_eq!(cache.full((0, 2)).map(|b| b[0]), Some(2));
        cache.insert_full(0, 9, &[1; 96]);
        assert_eq!(cache.full((0, 9)), None, "a partial tile is not a full one");
    }

    #[test]
    fn cache_keeps_the_widest_partial_tile_and_serves_its_prefixes() {
        let cache = TileCache::new(0);
        let wide: Vec<u8> = (0..10 * 32).map(|i| i as u8).collect();
        cache.insert_partial((1, 0), &wide);
        cache.insert_partial((1, 0), &wide[..3 * 32]);
        assert_eq!(cache.partial((1, 0), 4), Some(wide[..4 * 32].to_vec()));
        assert_eq!(cache.partial((1, 0), 12), Some(wide.clone()));
        assert_eq!(cache.partial((1, 1), 1), None);
        for index in 0..PARTIAL_CAPACITY as u64 + 1 {
            cache.insert_partial((2, index), &wide[..32]);
        }
        assert_eq!(cache.partial((1, 0), 1), None, "bounded");
    }
}
