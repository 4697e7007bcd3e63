//! Integration: adding sequenced leaves to the tree, producing the hash
//! tiles a backend stores and the new root.
//!
//! The integrator holds only the right edge of the tree: at each tile level
//! the partial tile still filling up (fewer than 256 hashes) and, beside it,
//! the compact range of that partial tile (at most eight perfect-subtree
//! roots). Memory is therefore bounded by the height of the tree, whatever
//! its size, and each leaf costs one leaf hash plus, amortised, one node hash.

use crate::hash::{HASH_SIZE, Hash, empty_root, fold_right, leaf_hash, node_hash};
use crate::proof::{ProveError, TileReader};
use crate::tile::{MAX_TILE_LEVEL, TILE_WIDTH, TileId, level_width};

/// The right edge of one tile level.
#[derive(Clone, Debug, Default)]
struct LevelEdge {
    /// Index of the partial tile within its level.
    tile_index: u64,
    /// The partial tile's hashes, concatenated (fewer than 256).
    hashes: Vec<u8>,
    /// Compact range of the partial tile: roots of its perfect subtrees,
    /// largest (left-most) first.
    range: Vec<Hash>,
    /// Whether `hashes` grew since the last [`Integrator::take_partial_tiles`].
    dirty: bool,
}

impl LevelEdge {
    fn count(&self) -> u64 {
        (self.hashes.len() / HASH_SIZE) as u64
    }

    /// Adds a hash; returns the tile's root when the tile has just filled.
    fn push(&mut self, h: Hash) -> Option<Hash> {
        let mut carry = self.count();
        self.hashes.extend_from_slice(&h.0);
        self.dirty = true;
        let mut acc = h;
        while carry & 1 == 1 {
            // The compact range always has one root per set bit of count.
            let left = self.range.pop().unwrap_or_default();
            acc = node_hash(&left, &acc);
            carry >>= 1;
        }
        self.range.push(acc);
        (self.count() == TILE_WIDTH).then_some(acc)
    }
}

/// Builds the tiles of a growing tree.
#[derive(Clone, Debug, Default)]
pub struct Integrator {
    size: u64,
    levels: Vec<LevelEdge>,
}

impl Integrator {
    /// An integrator for the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Continues the tree of `size` leaves whose tiles are in `source`: only
    /// the partial tile of each level is read.
    pub fn resume<R: TileReader>(size: u64, source: &mut R) -> Result<Self, ProveError<R::Error>> {
        let mut integrator = Integrator {
            size,
            levels: Vec::new(),
        };
        for level in 0..=MAX_TILE_LEVEL {
            let count = level_width(level, size);
            if count == 0 {
                break;
            }
            let mut edge = LevelEdge {
                tile_index: count / TILE_WIDTH,
                ..LevelEdge::default()
            };
            let width = count % TILE_WIDTH;
            if width > 0 {
                let tile = TileId {
                    level,
                    index: edge.tile_index,
                    width: width as u16,
                };
                let bytes = source.read_tile(tile).map_err(|source| ProveError::Read {
                    path: tile.path(),
                    source,
                })?;
                if bytes.len() != width as usize * HASH_SIZE {
                    return Err(ProveError::TileLength {
                        path: tile.path(),
                        len: bytes.len(),
                        want: width as usize * HASH_SIZE,
                    });
                }
                for chunk in bytes.chunks_exact(HASH_SIZE) {
                    edge.push(Hash::from_slice(chunk).unwrap_or_default());
                }
                edge.dirty = false;
            }
            integrator.levels.push(edge);
        }
        Ok(integrator)
    }

    /// Number of leaves integrated so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds one entry (hashing it as a leaf). Every tile that fills up is
    /// passed to `full_tile` as it completes, with its 8 KiB of hashes.
    pub fn append_entry(&mut self, entry: &[u8], full_tile: &mut impl FnMut(TileId, &[u8])) {
        self.append_leaf(leaf_hash(entry), full_tile);
    }

    /// Adds one leaf hash. Every tile that fills up is passed to
    /// `full_tile` as it completes.
    pub fn append_leaf(&mut self, leaf: Hash, full_tile: &mut impl FnMut(TileId, &[u8])) {
        let mut level = 0usize;
        let mut hash = leaf;
        loop {
            if level == self.levels.len() {
                self.levels.push(LevelEdge::default());
            }
            let edge = &mut self.levels[level];
            let Some(root) = edge.push(hash) else { break };
            full_tile(
                TileId {
                    level: level as u8,
                    index: edge.tile_index,
                    width: TILE_WIDTH as u16,
                },
                &edge.hashes,
            );
            edge.hashes.clear();
            edge.range.clear();
            edge.tile_index += 1;
            // A full tile leaves no partial tile behind to rewrite.
            edge.dirty = false;
            hash = root;
            level += 1;
        }
        self.size += 1;
    }

    /// The partial tiles that changed since the last call: with the full
    /// tiles already handed out, exactly what a backend must write to hold
    /// the tree at [`Integrator::size`].
    pub fn take_partial_tiles(&mut self) -> Vec<(TileId, Vec<u8>)> {
        self.levels
            .iter_mut()
            .enumerate()
            .filter(|(_, edge)| edge.dirty && !edge.hashes.is_empty())
            .map(|(level, edge)| {
                edge.dirty = false;
                let tile = TileId {
                    level: level as u8,
                    index: edge.tile_index,
                    width: edge.count() as u16,
                };
                (tile, edge.hashes.clone())
            })
            .collect()
    }

    /// Adds leaves and returns the tiles that filled up on the way, in
    /// completion order: all that a store which derives its partial tiles
    /// keeps of them.
    pub fn integrate_full_tiles(
        &mut self,
        leaves: impl IntoIterator<Item = Hash>,
    ) -> Vec<(TileId, Vec<u8>)> {
        let mut tiles = Vec::new();
        for leaf in leaves {
            self.append_leaf(leaf, &mut |tile, hashes| {
                tiles.push((tile, hashes.to_vec()))
            });
        }
        tiles
    }

    /// Every level's partial tile as it stands at [`Integrator::size`],
    /// lowest level first, whether or not it changed lately: the right edge
    /// of the tree, which readers of a store holding only full tiles would
    /// otherwise derive.
    pub fn partial_tiles(&self) -> impl Iterator<Item = (TileId, &[u8])> + '_ {
        self.levels
            .iter()
            .enumerate()
            .filter(|(_, edge)| !edge.hashes.is_empty())
            .map(|(level, edge)| {
                let tile = TileId {
                    level: level as u8,
                    index: edge.tile_index,
                    width: edge.count() as u16,
                };
                (tile, edge.hashes.as_slice())
            })
    }

    /// Adds leaves and returns every tile written on the way: the full ones
    /// in completion order, then the changed partial ones.
    pub fn integrate(&mut self, leaves: impl IntoIterator<Item = Hash>) -> Vec<(TileId, Vec<u8>)> {
        let mut tiles = Vec::new();
        for leaf in leaves {
            self.append_leaf(leaf, &mut |tile, hashes| {
                tiles.push((tile, hashes.to_vec()))
            });
        }
        tiles.extend(self.take_partial_tiles());
        tiles
    }

    /// The root of the tree of [`Integrator::size`] leaves.
    pub fn root(&self) -> Hash {
        // Higher levels cover leaves further left, so their subtrees come
        // first; within a level, the compact range is already left to right.
        let roots: Vec<Hash> = self
            .levels
            .iter()
            .rev()
            .flat_map(|edge| edge.range.iter().copied())
            .collect();
        fold_right(&roots).unwrap_or_else(empty_root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tile::{full_tile_root, partial_tiles_for_size, tile_from_entries, tile_from_tiles};
    use std::collections::BTreeMap;

    struct Tiles(BTreeMap<(u8, u64), Vec<u8>>);

    impl TileReader for Tiles {
        type Error = String;
        fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
            let bytes = self.0.get(&(tile.level, tile.index)).ok_or("missing")?;
            Ok(bytes[..usize::from(tile.width) * HASH_SIZE].to_vec())
        }
    }

    #[test]
    fn resumed_integrator_continues_the_same_tree() {
        let leaves: Vec<Hash> = (0..70_000u32)
            .map(|i| leaf_hash(&i.to_be_bytes()))
            .collect();
        let mut whole = Integrator::new();
        let mut stored = Tiles(BTreeMap::new());
        for (tile, bytes) in whole.integrate(leaves.iter().copied()) {
            stored.0.insert((tile.level, tile.index), bytes);
        }

        let mut first = Integrator::new();
        let mut tiles = Tiles(BTreeMap::new());
        for (tile, bytes) in first.integrate(leaves[..65_790].iter().copied()) {
            tiles.0.insert((tile.level, tile.index), bytes);
        }
        let mut resumed = Integrator::resume(65_790, &mut tiles).expect("resume");
        assert_eq!(resumed.root(), first.root());
        for (tile, bytes) in resumed.integrate(leaves[65_790..].iter().copied()) {
            tiles.0.insert((tile.level, tile.index), bytes);
        }
        assert_eq!(resumed.root(), whole.root());
        assert_eq!(tiles.0, stored.0);
    }

    /// The partial tiles of the tree at `tree.size()`, derived the way a
    /// store holding only full tiles derives them, equal the integrator's.
    fn assert_edge_derives(tree: &Integrator, entries: &[Vec<u8>], full: &Tiles) {
        let size = tree.size();
        let edge: Vec<(TileId, &[u8])> = tree.partial_tiles().collect();
        assert_eq!(
            edge.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            partial_tiles_for_size(size).collect::<Vec<_>>(),
            "partial tiles listed at size {size}"
        );
        for (tile, bytes) in edge {
            let first = tile.index * TILE_WIDTH;
            let below = first..first + u64::from(tile.width);
            let derived = if tile.level == 0 {
                tile_from_entries(&entries[below.start as usize..below.end as usize])
            } else {
                tile_from_tiles(below.map(|i| &full.0[&(tile.level - 1, i)]))
                    .expect("full tiles below")
            };
            assert_eq!(derived, bytes, "{} at size {size}", tile.path());
        }
    }

    #[test]
    fn partial_tiles_derive_from_the_entries_and_full_tiles_below() {
        let entries: Vec<Vec<u8>> = (0..2 * 65_536 + 300u32)
            .map(|i| format!("entry {i}").into_bytes())
            .collect();
        let mut tree = Integrator::new();
        let mut full = Tiles(BTreeMap::new());
        let mut checked = 0;
        for (i, entry) in entries.iter().enumerate() {
            let size = i as u64;
            let near = |edge: u64| size.abs_diff(edge) <= 1 || size.abs_diff(edge + 255) <= 1;
            if size < 2000 || near(65_536) || near(2 * 65_536) {
                assert_edge_derives(&tree, &entries, &full);
                checked += 1;
            }
            tree.append_entry(entry, &mut |tile, hashes| {
                full.0.insert((tile.level, tile.index), hashes.to_vec());
            });
        }
        assert_eq!(checked, 2000 + 12);
    }

    #[test]
    fn full_tiles_only_integration_leaves_the_same_tree() {
        let leaves: Vec<Hash> = (0..1000u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut both = Integrator::new();
        let mut full_only = Integrator::new();
        let mut written = Vec::new();
        for chunk in leaves.chunks(97) {
            both.integrate(chunk.iter().copied());
            written.extend(full_only.integrate_full_tiles(chunk.iter().copied()));
        }
        assert_eq!(full_only.root(), both.root());
        assert_eq!(
            written.iter().map(|(t, _)| t.path()).collect::<Vec<_>>(),
            ["tile/0/000", "tile/0/001", "tile/0/002"]
        );
        let edge: Vec<String> = full_only.partial_tiles().map(|(t, _)| t.path()).collect();
        assert_eq!(edge, ["tile/0/003.p/232", "tile/1/000.p/3"]);
        assert!(
            tile_from_tiles([vec![0u8; 32]]).is_none(),
            "not a full tile"
        );
        let mut first_tile = Integrator::new();
        first_tile.integrate(leaves[..256].iter().copied());
        assert_eq!(full_tile_root(&written[0].1), Some(first_tile.root()));
    }

    #[test]
    fn untouched_partial_tiles_are_not_rewritten() {
        let mut integrator = Integrator::new();
        integrator.integrate((0..300u32).map(|i| leaf_hash(&i.to_be_bytes())));
        let written = integrator.integrate([leaf_hash(b"one more")]);
        assert_eq!(
            written.iter().map(|(t, _)| t.path()).collect::<Vec<_>>(),
            ["tile/0/001.p/45"]
        );
    }
}
