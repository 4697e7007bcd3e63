//! Reading proofs from storage: plan, gather the tiles at once, resolve.
//!
//! Tiles come from the right edge the caller holds in memory (a sequencer
//! knows every partial tile of the tree it just committed), then from
//! `evault_storage::tiles::read_tiles`: full tiles through its bounded
//! cache, partial tiles derived, so a reader without the edge in memory
//! gets the same bytes.

use std::collections::HashMap;
use std::sync::Arc;

use evault_core::{
    HASH_SIZE, Hash, InclusionPlans, ProofPlan, RangeRoots, TileId, TileNodes, TileReader,
    TreeReader,
};
use evault_storage::tiles::{TileCache, read_tiles};
use evault_storage::{LogStore, StorageError};

/// Tiles gathered for a set of plans: their bytes, and for full tiles in
/// the cache, the roots within them, so proofs need not rehash them.
pub(crate) struct Gathered {
    tiles: HashMap<(u8, u64), Vec<u8>>,
    nodes: HashMap<(u8, u64), Arc<TileNodes>>,
}

impl Gathered {
    pub(crate) fn from_tiles(tiles: impl IntoIterator<Item = (TileId, Vec<u8>)>) -> Self {
        Gathered {
            tiles: tiles
                .into_iter()
                .map(|(t, b)| ((t.level, t.index), b))
                .collect(),
            nodes: HashMap::new(),
        }
    }
}

impl TileReader for Gathered {
    type Error = String;

    fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        let key = (tile.level, tile.index);
        let bytes = match self.tiles.get(&key) {
            Some(bytes) => bytes.as_slice(),
            None => self
                .nodes
                .get(&key)
                .map(|full| full.hashes())
                .ok_or_else(|| format!("{} was not gathered", tile.path()))?,
        };
        bytes
            .get(..usize::from(tile.width) * HASH_SIZE)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("{} is narrower than needed", tile.path()))
    }

    fn subtree_root(&mut self, tile: TileId, offset: usize, count: usize) -> Option<Hash> {
        // Only a full tile's nodes are kept; a partial tile is hashed.
        if !tile.is_full() {
            return None;
        }
        self.nodes
            .get(&(tile.level, tile.index))?
            .root(offset, count)
    }
}

/// Resolves `plans` against the tree of `size` entries in `store`, taking
/// tiles from `edge` (tiles of that tree the caller holds, at least as wide
/// as needed), then from storage through `cache`.
pub(crate) async fn prove<S: LogStore>(
    store: &S,
    origin: &str,
    cache: &TileCache,
    size: u64,
    edge: &[(TileId, &[u8])],
    plans: &[ProofPlan],
) -> Result<Vec<Vec<Hash>>, StorageError> {
    let known = RangeRoots::new();
    let (proofs, _) = prove_knowing(store, origin, cache, size, edge, plans, known).await?;
    Ok(proofs)
}

/// The inclusion proofs of `indices` in the tree of `size`, as [`prove`]
/// would give them one plan each, but planned as one: the ranges the
/// proofs share are resolved once.
pub(crate) async fn prove_inclusions<S: LogStore>(
    store: &S,
    origin: &str,
    cache: &TileCache,
    size: u64,
    edge: &[(TileId, &[u8])],
    indices: &[u64],
) -> Result<Vec<Vec<Hash>>, StorageError> {
    let plans = InclusionPlans::new(indices, size).map_err(StorageError::Corrupt)?;
    let resolved = prove(
        store,
        origin,
        cache,
        size,
        edge,
        std::slice::from_ref(plans.plan()),
    )
    .await?
    .pop()
    .unwrap_or_default();
    indices
        .iter()
        .map(|&index| {
            plans.proof(index, &resolved).ok_or_else(|| {
                StorageError::Corrupt(format!("no proof of {index} was planned in {size}"))
            })
        })
        .collect()
}

/// [`prove`], knowing the roots of some ranges reaching the right edge of
/// the tree of `size` (`known`), and returning those known after (see
/// `TreeReader::into_ranges`).
pub(crate) async fn prove_knowing<S: LogStore>(
    store: &S,
    origin: &str,
    cache: &TileCache,
    size: u64,
    edge: &[(TileId, &[u8])],
    plans: &[ProofPlan],
    known: RangeRoots,
) -> Result<(Vec<Vec<Hash>>, RangeRoots), StorageError> {
    // Ranges whose roots are known need no tile: those reaching the right
    // edge lie in partial tiles, which would be copied for nothing.
    let mut wanted: Vec<TileId> = plans
        .iter()
        .flat_map(|p| p.tiles_knowing(size, &known))
        .collect();
    wanted.sort();
    wanted.dedup();
    let edge: HashMap<(u8, u64), &[u8]> =
        edge.iter().map(|(t, b)| ((t.level, t.index), *b)).collect();
    let mut gathered = HashMap::new();
    // Full tiles in the cache are shared, not copied: with their nodes
    // they answer every root a proof asks of them.
    let mut nodes = HashMap::new();
    let cached = |tile: &TileId| {
        tile.is_full()
            .then(|| cache.full_tile(tile.level, tile.index))
            .flatten()
    };
    let mut missing = Vec::new();
    for tile in wanted {
        let key = (tile.level, tile.index);
        match edge.get(&key) {
            Some(bytes) if bytes.len() >= usize::from(tile.width) * HASH_SIZE => {
                gathered.insert(key, bytes.to_vec());
            }
            _ => match cached(&tile) {
                Some(full) => {
                    nodes.insert(key, full);
                }
                None => missing.push(tile),
            },
        }
    }
    if !missing.is_empty() {
        let read = read_tiles(store, origin, size, &missing, cache).await?;
        for (tile, bytes) in missing.iter().zip(read) {
            let key = (tile.level, tile.index);
            match cached(tile) {
                Some(full) => {
                    nodes.insert(key, full);
                }
                None => {
                    gathered.insert(key, bytes);
                }
            }
        }
    }
    let mut tiles = Gathered {
        tiles: gathered,
        nodes,
    };
    let mut reader = TreeReader::with_ranges(size, &mut tiles, known);
    let proofs = plans
        .iter()
        .map(|plan| {
            reader
                .prove(plan)
                .map_err(|e| StorageError::Corrupt(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    Ok((proofs, reader.into_ranges()))
}
