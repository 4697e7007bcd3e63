//! C2SP tlog-tiles geometry: which tiles and entry bundles a tree of a given
//! size has, where each interior node lives inside them, and the URL paths
//! `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`.
//!
//! A tile at level `L` holds up to 256 consecutive hashes of tree level
//! `8·L`; the nodes of the seven levels in between are not stored but
//! recomputed from the tile below them. A backend that keeps only tiles can
//! therefore answer for every complete subtree of the log.
//!
//! Only full tiles need storing: a partial tile is derivable from what lies
//! below it ([`tile_from_entries`] at level 0, [`tile_from_tiles`] above),
//! and the tile bytes are the same whichever way they were produced.

use std::fmt;

use crate::hash::{HASH_SIZE, Hash, leaf_hash};
use crate::proof::perfect_root;

/// Tree levels spanned by one tile (C2SP tlog-tiles fixes it at 8).
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile, and entries in a full bundle.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// The highest tile level a 64-bit tree size can need.
pub const MAX_TILE_LEVEL: u8 = 7;

/// One hash tile: its level, its index within the level, and how many
/// hashes it holds (256 for a full tile, fewer for the right edge).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// Tile level `L`: the tile holds hashes of tree level `8·L`.
    pub level: u8,
    /// Index `N` of the tile within its level.
    pub index: u64,
    /// Number of hashes, 1 to 256.
    pub width: u16,
}

/// One entry bundle: the entries at indices `256·index ..` of which there
/// are `width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId {
    /// Index `N` of the bundle.
    pub index: u64,
    /// Number of entries, 1 to 256.
    pub width: u16,
}

/// A resource of the tlog-tiles read API, parsed from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`
    Hashes(TileId),
    /// `tile/entries/<N>[.p/<W>]`
    Entries(BundleId),
}

/// Why a string is not a canonical tlog-tiles path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a tlog-tiles path: {reason}")]
pub struct TilePathError {
    reason: &'static str,
}

fn bad(reason: &'static str) -> TilePathError {
    TilePathError { reason }
}

impl TileId {
    /// Whether the tile holds all 256 hashes and will never change.
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The path of the tile, `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!(
            "tile/{}/{}{}",
            self.level,
            format_index(self.index),
            partial_suffix(self.width)
        )
    }
}

impl BundleId {
    /// Whether the bundle holds all 256 entries and will never change.
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// Index of the first entry in the bundle.
    pub fn first_entry(&self) -> u64 {
        self.index * TILE_WIDTH
    }

    /// The path of the bundle, `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!(
            "tile/entries/{}{}",
            format_index(self.index),
            partial_suffix(self.width)
        )
    }
}

impl fmt::Display for TilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TilePath::Hashes(t) => f.write_str(&t.path()),
            TilePath::Entries(b) => f.write_str(&b.path()),
        }
    }
}

impl TilePath {
    /// Parses a path relative to the log's base URL. Only the canonical
    /// spelling is accepted (no leading zeros in `L` or `W`, no redundant
    /// `x000/` groups, no `.p/256`), so that one resource has one path.
    pub fn parse(path: &str) -> Result<TilePath, TilePathError> {
        let rest = path
            .strip_prefix("tile/")
            .ok_or(bad("missing tile/ prefix"))?;
        let (kind, rest) = rest.split_once('/').ok_or(bad("missing tile index"))?;
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index_part, w)) => {
                let w = parse_decimal(w).ok_or(bad("partial width is not a decimal"))?;
                if w == 0 || w >= TILE_WIDTH {
                    return Err(bad("partial width must be 1 to 255"));
                }
                (index_part, w as u16)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let index = parse_index(index_part)?;
        if kind == "entries" {
            return Ok(TilePath::Entries(BundleId { index, width }));
        }
        let level = parse_decimal(kind).ok_or(bad("level is neither a decimal nor entries"))?;
        if level > u64::from(MAX_TILE_LEVEL) {
            return Err(bad("level above what a 64-bit tree needs"));
        }
        Ok(TilePath::Hashes(TileId {
            level: level as u8,
            index,
            width,
        }))
    }
}

fn partial_suffix(width: u16) -> String {
    if u64::from(width) == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    }
}

/// `N` as groups of three digits, all but the last prefixed with `x`:
/// 1234067 → `x001/x234/067`.
fn format_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn parse_index(text: &str) -> Result<u64, TilePathError> {
    let groups: Vec<&str> = text.split('/').collect();
    let (last, leading) = groups.split_last().ok_or(bad("empty index"))?;
    let mut n: u64 = 0;
    for (i, g) in leading.iter().enumerate() {
        let digits = g
            .strip_prefix('x')
            .ok_or(bad("index group without x prefix"))?;
        let v = three_digits(digits)?;
        if i == 0 && v == 0 {
            return Err(bad("index has a leading x000 group"));
        }
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(v))
            .ok_or(bad("index out of range"))?;
    }
    let last = three_digits(last)?;
    let n = n
        .checked_mul(1000)
        .and_then(|n| n.checked_add(last))
        .ok_or(bad("index out of range"))?;
    // Every tile and bundle starts at a leaf index below 2^64.
    if n.checked_mul(TILE_WIDTH).is_none() {
        return Err(bad("index out of range"));
    }
    Ok(n)
}

fn three_digits(g: &str) -> Result<u64, TilePathError> {
    if g.len() != 3 || !g.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("index group is not three digits"));
    }
    g.parse()
        .map_err(|_| bad("index group is not three digits"))
}

/// A decimal with no sign and no leading zeros.
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

/// Number of hashes the tree of `tree_size` leaves stores at tile level
/// `level`: the count of complete subtrees of height `8·level`.
pub fn level_width(level: u8, tree_size: u64) -> u64 {
    tree_size
        .checked_shr(TILE_HEIGHT * u32::from(level))
        .unwrap_or(0)
}

/// The hash tiles a tree of `tree_size` leaves has, level by level, each
/// level's full tiles and then its partial one. A full tile appears at every
/// size after it fills; a partial tile only at the size it describes.
pub fn tiles_for_size(tree_size: u64) -> impl Iterator<Item = TileId> {
    (0..=MAX_TILE_LEVEL)
        .take_while(move |&level| level_width(level, tree_size) > 0)
        .flat_map(move |level| {
            spans(level_width(level, tree_size)).map(move |(index, width)| TileId {
                level,
                index,
                width,
            })
        })
}

/// The entry bundles of a tree of `tree_size` leaves.
pub fn bundles_for_size(tree_size: u64) -> impl Iterator<Item = BundleId> {
    spans(tree_size).map(|(index, width)| BundleId { index, width })
}

/// The tile (or bundle) at `index` of a level holding `count` items, with
/// the width it has at that count; `None` if the level does not reach it.
pub fn tile_at(level: u8, index: u64, tree_size: u64) -> Option<TileId> {
    let count = level_width(level, tree_size);
    let start = index.checked_mul(TILE_WIDTH)?;
    (start < count).then(|| TileId {
        level,
        index,
        width: (count - start).min(TILE_WIDTH) as u16,
    })
}

fn spans(count: u64) -> impl Iterator<Item = (u64, u16)> {
    (0..count.div_ceil(TILE_WIDTH))
        .map(move |i| (i, (count - i * TILE_WIDTH).min(TILE_WIDTH) as u16))
}

/// Bytes of a full tile: 256 hashes of 32 bytes.
pub const FULL_TILE_BYTES: usize = TILE_WIDTH as usize * HASH_SIZE;

/// The Merkle root of a full tile's 256 hashes: the hash the tile
/// contributes to the level above (tile level `L + 1` holds the roots of the
/// full tiles of level `L`). `None` unless `hashes` is exactly
/// [`FULL_TILE_BYTES`] long.
pub fn full_tile_root(hashes: &[u8]) -> Option<Hash> {
    (hashes.len() == FULL_TILE_BYTES).then(|| perfect_root(hashes))
}

/// The level-0 tile over `entries` (at most 256, consecutive, starting at
/// a multiple of 256): their leaf hashes, concatenated. Given the entries
/// `256·N ..256·N + W`, this is tile `0/N` of width `W`.
pub fn tile_from_entries<E: AsRef<[u8]>>(entries: impl IntoIterator<Item = E>) -> Vec<u8> {
    entries
        .into_iter()
        .flat_map(|entry| leaf_hash(entry.as_ref()).0)
        .collect()
}

/// The tile one level above `full_tiles` (at most 256 consecutive full
/// tiles of one level, starting at a multiple of 256): the root of each,
/// concatenated. Given the full tiles `L/256·N ..L/256·N + W`, this is tile
/// `L+1/N` of width `W`. `None` if one of them is not a full tile.
pub fn tile_from_tiles<T: AsRef<[u8]>>(full_tiles: impl IntoIterator<Item = T>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for tile in full_tiles {
        out.extend_from_slice(&full_tile_root(tile.as_ref())?.0);
    }
    Some(out)
}

/// The partial tile of each level of a tree of `tree_size` leaves, lowest
/// level first: the right edge, all that changes as the tree grows. A level
/// whose hashes fill whole tiles has none.
pub fn partial_tiles_for_size(tree_size: u64) -> impl Iterator<Item = TileId> {
    (0..=MAX_TILE_LEVEL)
        .take_while(move |&level| level_width(level, tree_size) > 0)
        .filter_map(move |level| {
            tile_at(level, level_width(level, tree_size) / TILE_WIDTH, tree_size)
        })
}

/// Where the complete subtree at tree level `height`, position `index`
/// lives: in tile `(height / 8, ·)`, as the root of `2^(height % 8)`
/// consecutive hashes starting at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLocation {
    /// Tile level holding the node's descendants.
    pub level: u8,
    /// Tile index within that level.
    pub tile_index: u64,
    /// Position of the first descendant hash within the tile.
    pub offset: usize,
    /// How many consecutive hashes the node covers (a power of two ≤ 256).
    pub count: usize,
}

/// Locates node `(height, index)` in the tile layout.
pub fn locate_node(height: u32, index: u64) -> NodeLocation {
    let level = height / TILE_HEIGHT;
    let within = height % TILE_HEIGHT;
    let first = index << within;
    NodeLocation {
        level: level as u8,
        tile_index: first >> TILE_HEIGHT,
        offset: (first % TILE_WIDTH) as usize,
        count: 1 << within,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(level: u8, index: u64, width: u16) -> TilePath {
        TilePath::Hashes(TileId {
            level,
            index,
            width,
        })
    }

    #[test]
    fn formats_paths_with_x_groups_and_partial_suffix() {
        assert_eq!(hashes(0, 0, 256).to_string(), "tile/0/000");
        assert_eq!(hashes(1, 1234067, 256).to_string(), "tile/1/x001/x234/067");
        assert_eq!(hashes(2, 1000, 7).to_string(), "tile/2/x001/000.p/7");
        let b = TilePath::Entries(BundleId {
            index: 5,
            width: 15,
        });
        assert_eq!(b.to_string(), "tile/entries/005.p/15");
    }

    #[test]
    fn parses_every_formatted_path_back() {
        for index in [0, 1, 999, 1000, 1001, 1234067, u64::MAX / 256] {
            for width in [1, 255, 256] {
                for level in [0, 3, MAX_TILE_LEVEL] {
                    let p = hashes(level, index, width);
                    assert_eq!(TilePath::parse(&p.to_string()), Ok(p));
                }
                let e = TilePath::Entries(BundleId { index, width });
                assert_eq!(TilePath::parse(&e.to_string()), Ok(e));
            }
        }
    }

    #[test]
    fn rejects_non_canonical_paths() {
        for p in [
            "tile/0/0",
            "tile/00/000",
            "tile/0/x000/001",
            "tile/0/001.p/256",
            "tile/0/001.p/0",
            "tile/0/001.p/07",
            "tile/0/1000",
            "tile/0/x1/000",
            "tile/8/000",
            "tile/data/000",
            "tiles/0/000",
            "tile/0/",
            "tile/0/000/",
            "tile/entries/x000",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
        ] {
            assert!(TilePath::parse(p).is_err(), "{p} accepted");
        }
    }

    #[test]
    fn lists_the_tiles_of_a_tree() {
        assert_eq!(tiles_for_size(0).count(), 0);
        let at = |n| tiles_for_size(n).map(|t| t.path()).collect::<Vec<_>>();
        assert_eq!(at(1), ["tile/0/000.p/1"]);
        assert_eq!(at(256), ["tile/0/000", "tile/1/000.p/1"]);
        assert_eq!(at(257), ["tile/0/000", "tile/0/001.p/1", "tile/1/000.p/1"]);
        let big = at(65536 + 3);
        assert_eq!(big.len(), 256 + 1 + 1 + 1);
        assert_eq!(
            big[255..],
            [
                "tile/0/255",
                "tile/0/256.p/3",
                "tile/1/000",
                "tile/2/000.p/1"
            ]
        );
        assert_eq!(
            BundleId {
                index: 3,
                width: 256
            }
            .first_entry(),
            768
        );
        assert_eq!(
            bundles_for_size(513).map(|b| b.path()).collect::<Vec<_>>(),
            [
                "tile/entries/000",
                "tile/entries/001",
                "tile/entries/002.p/1"
            ]
        );
    }

    #[test]
    fn locates_nodes_inside_tiles() {
        assert_eq!(
            locate_node(0, 300),
            NodeLocation {
                level: 0,
                tile_index: 1,
                offset: 44,
                count: 1
            }
        );
        assert_eq!(
            locate_node(3, 33),
            NodeLocation {
                level: 0,
                tile_index: 1,
                offset: 8,
                count: 8
            }
        );
        assert_eq!(
            locate_node(8, 5),
            NodeLocation {
                level: 1,
                tile_index: 0,
                offset: 5,
                count: 1
            }
        );
        assert_eq!(
            locate_node(17, 1),
            NodeLocation {
                level: 2,
                tile_index: 0,
                offset: 2,
                count: 2
            }
        );
    }
}
