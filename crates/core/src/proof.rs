//! RFC 9162 §2.1.3–2.1.4 inclusion and consistency proofs: verification
//! with the exact semantics of transparency-dev/merkle, and construction
//! from any source of C2SP tiles.
//!
//! Verification takes hashes as byte slices rather than [`Hash`](struct@Hash) because a
//! verifier must give a precise answer for malformed input too (a root of
//! the wrong length, a proof hash cut short), not merely refuse to parse it.

use std::collections::HashMap;

use crate::hash::{HASH_SIZE, Hash, fold_right, node_hash};
use crate::tile::{TileId, locate_node, tile_at};

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("index {index} is not below tree size {size}")]
    IndexBeyondSize {
        /// Claimed leaf index.
        index: u64,
        /// Claimed tree size.
        size: u64,
    },
    /// A hash in the input does not have [`HASH_SIZE`] bytes.
    #[error("{what} is {len} bytes long, not {HASH_SIZE}")]
    HashLength {
        /// Which input: the leaf hash or a numbered proof hash.
        what: String,
        /// Its length.
        len: usize,
    },
    /// The proof has the wrong number of hashes for its sizes.
    #[error("proof has {got} hashes, {want} expected")]
    ProofSize {
        /// Hashes given.
        got: usize,
        /// Hashes the sizes call for.
        want: usize,
    },
    /// The second tree is smaller than the first: a rollback.
    #[error("tree size {size2} is smaller than the earlier size {size1}")]
    Shrinks {
        /// Size of the earlier tree.
        size1: u64,
        /// Size of the later tree.
        size2: u64,
    },
    /// Consistency with the empty tree proves nothing and is refused.
    #[error("a consistency proof from the empty tree is meaningless")]
    FromEmptyTree,
    /// Equal sizes need an empty proof.
    #[error("tree sizes are equal but the proof is not empty")]
    ProofForEqualSizes,
    /// Different sizes need a non-empty proof.
    #[error("the proof is empty")]
    EmptyProof,
    /// The proof leads to a different root than the one claimed.
    #[error("the proof leads to root {calculated}, not the expected one")]
    RootMismatch {
        /// Root the proof leads to.
        calculated: String,
    },
}

fn to_hash(what: impl FnOnce() -> String, bytes: &[u8]) -> Result<Hash, ProofError> {
    Hash::from_slice(bytes).ok_or_else(|| ProofError::HashLength {
        what: what(),
        len: bytes.len(),
    })
}

fn proof_hashes<P: AsRef<[u8]>>(proof: &[P]) -> Result<Vec<Hash>, ProofError> {
    proof
        .iter()
        .enumerate()
        .map(|(i, p)| to_hash(|| format!("proof hash {i}"), p.as_ref()))
        .collect()
}

fn expect_root(calculated: Hash, root: &[u8]) -> Result<(), ProofError> {
    if calculated.as_bytes() == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch {
            calculated: calculated.to_base64(),
        })
    }
}

/// How many proof hashes are interior (below the point where the paths of
/// `index` and the last leaf meet) and how many lie on the right border.
fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    // Above 2^63 leaves the paths can part at the very top: nothing is left
    // of the index for the border then.
    let border = index.checked_shr(inner).unwrap_or(0).count_ones() as usize;
    let inner = inner as usize;
    (inner, border)
}

fn chain_inner(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    proof.iter().enumerate().fold(seed, |acc, (i, h)| {
        if (index >> i) & 1 == 0 {
            node_hash(&acc, h)
        } else {
            node_hash(h, &acc)
        }
    })
}

fn chain_inner_right(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    proof.iter().enumerate().fold(seed, |acc, (i, h)| {
        if (index >> i) & 1 == 1 {
            node_hash(h, &acc)
        } else {
            acc
        }
    })
}

fn chain_border_right(seed: Hash, proof: &[Hash]) -> Hash {
    proof.iter().fold(seed, |acc, h| node_hash(h, &acc))
}

/// The root an inclusion proof leads to for leaf `index` in a tree of
/// `size` leaves.
pub fn root_from_inclusion_proof<P: AsRef<[u8]>>(
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    proof: &[P],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexBeyondSize { index, size });
    }
    let leaf = to_hash(|| "leaf hash".to_string(), leaf_hash)?;
    let (inner, border) = decompose(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::ProofSize {
            got: proof.len(),
            want: inner + border,
        });
    }
    let proof = proof_hashes(proof)?;
    let acc = chain_inner(leaf, &proof[..inner], index);
    Ok(chain_border_right(acc, &proof[inner..]))
}

/// Checks that `proof` proves leaf `index`, with hash `leaf_hash`, is in
/// the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion<P: AsRef<[u8]>>(
    index: u64,
    size: u64,
    leaf_hash: &[u8],
    proof: &[P],
    root: &[u8],
) -> Result<(), ProofError> {
    expect_root(
        root_from_inclusion_proof(index, size, leaf_hash, proof)?,
        root,
    )
}

/// Checks that `proof` proves the tree of `size2` leaves with root `root2`
/// extends the tree of `size1` leaves with root `root1`.
pub fn verify_consistency<P: AsRef<[u8]>>(
    size1: u64,
    size2: u64,
    proof: &[P],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size2 < size1 {
        return Err(ProofError::Shrinks { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::FromEmptyTree);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::ProofForEqualSizes);
        }
        // Equal trees are consistent exactly when their roots are equal,
        // whatever those roots look like.
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch {
                calculated: crate::hash::hex(root1),
            })
        };
    }
    if proof.is_empty() {
        return Err(ProofError::EmptyProof);
    }
    let (inner, border) = decompose(size1 - 1, size2);
    let shift = size1.trailing_zeros() as usize;
    let inner = inner - shift;
    // The proof starts with the root of the largest perfect subtree ending at
    // size1, unless that subtree is the whole first tree, whose root we know.
    let proof = proof_hashes(proof)?;
    let (seed, rest) = if size1 == 1 << shift {
        (to_hash(|| "first root".to_string(), root1)?, &proof[..])
    } else {
        (proof[0], &proof[1..])
    };
    let want = proof.len() - rest.len() + inner + border;
    if proof.len() != want {
        return Err(ProofError::ProofSize {
            got: proof.len(),
            want,
        });
    }
    let mask = (size1 - 1) >> shift;
    let hash1 = chain_border_right(
        chain_inner_right(seed, &rest[..inner], mask),
        &rest[inner..],
    );
    expect_root(hash1, root1)?;
    let hash2 = chain_border_right(chain_inner(seed, &rest[..inner], mask), &rest[inner..]);
    expect_root(hash2, root2)
}

/// A source of hash tiles: a database, a directory, an HTTP mirror.
pub trait TileReader {
    /// What the source fails with.
    type Error;

    /// Returns the tile's hashes, concatenated: `32 · tile.width` bytes.
    fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, Self::Error>;

    /// The root of the `count` hashes (a power of two) of `tile` from
    /// `offset`, when the source has it at hand, such as a cache holding a
    /// full tile's [`TileNodes`]. `None`, the default, makes the reader
    /// hash it from the tile's bytes.
    fn subtree_root(&mut self, tile: TileId, offset: usize, count: usize) -> Option<Hash> {
        let _ = (tile, offset, count);
        None
    }
}

/// One full tile and every node inside it: its 256 hashes and, computed
/// the first time a root is asked, the 255 roots above them within the
/// tile.
///
/// A proof asks each tile it crosses for up to eight subtree roots, the
/// largest covering 128 of its hashes; recomputing those costs about 250
/// node hashes per tile and proof. A reader that serves many proofs from
/// the same tiles keeps their nodes instead (another 8 KiB a tile) and
/// answers by lookup. Full tiles never change, so neither do their nodes.
#[derive(Debug)]
pub struct TileNodes {
    hashes: Vec<u8>,
    /// Heights 1 to 8, lowest first: 128, 64, …, 1 roots.
    inner: std::sync::OnceLock<Vec<Hash>>,
}

impl TileNodes {
    /// The full tile `hashes` (exactly 256 hashes), or `None` for anything
    /// else.
    pub fn of_full_tile(hashes: Vec<u8>) -> Option<TileNodes> {
        (hashes.len() == crate::tile::TILE_WIDTH as usize * HASH_SIZE).then(|| TileNodes {
            hashes,
            inner: std::sync::OnceLock::new(),
        })
    }

    /// The tile's 256 hashes, concatenated.
    pub fn hashes(&self) -> &[u8] {
        &self.hashes
    }

    fn inner(&self) -> &[Hash] {
        self.inner.get_or_init(|| {
            let mut level: Vec<Hash> = self
                .hashes
                .chunks_exact(HASH_SIZE)
                .filter_map(Hash::from_slice)
                .collect();
            let mut inner = Vec::with_capacity(255);
            while level.len() > 1 {
                level = level
                    .chunks_exact(2)
                    .map(|pair| node_hash(&pair[0], &pair[1]))
                    .collect();
                inner.extend_from_slice(&level);
            }
            inner
        })
    }

    /// The root of the `count` hashes from `offset`, where `count` is a
    /// power of two and `offset` a multiple of it, as a proof asks.
    pub fn root(&self, offset: usize, count: usize) -> Option<Hash> {
        if !count.is_power_of_two() || offset % count != 0 || offset >= 256 {
            return None;
        }
        if count == 1 {
            return Hash::from_slice(
                self.hashes
                    .get(offset * HASH_SIZE..(offset + 1) * HASH_SIZE)?,
            );
        }
        let height = count.trailing_zeros();
        // Heights 1 up to this one's hold 128 + 64 + … roots: 256 - 512 >> h.
        let start = 256 - (512 >> height);
        self.inner().get(start + offset / count).copied()
    }
}

/// Why a proof or root could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProveError<E> {
    /// The tile source failed.
    #[error("reading {path}: {source}")]
    Read {
        /// Path of the tile that could not be read.
        path: String,
        /// The source's error.
        source: E,
    },
    /// The tile source returned a tile of the wrong length.
    #[error("tile {path} has {len} bytes, {want} expected")]
    TileLength {
        /// Path of the tile.
        path: String,
        /// Bytes returned.
        len: usize,
        /// Bytes expected.
        want: usize,
    },
    /// The request lies outside the tree the reader was opened at.
    #[error("{0}")]
    OutOfRange(String),
}

/// The leaf ranges whose tree hashes make up a proof, in proof order.
///
/// Planning is separate from hashing so that a caller with asynchronous
/// storage can learn which tiles a proof needs ([`ProofPlan::tiles`]),
/// fetch them all at once, then resolve the plan with a [`TreeReader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofPlan {
    ranges: Vec<(u64, u64)>,
}

impl ProofPlan {
    /// The RFC 9162 §2.1.3 inclusion proof of leaf `index` in the tree of
    /// `size` leaves.
    pub fn inclusion(index: u64, size: u64) -> Result<Self, String> {
        if index >= size {
            return Err(format!("index {index} is not below tree size {size}"));
        }
        let mut ranges = Vec::new();
        plan_path(index, 0, size, &mut ranges);
        Ok(ProofPlan { ranges })
    }

    /// The RFC 9162 §2.1.4 consistency proof from the tree of `size1`
    /// leaves to the tree of `size2` leaves.
    pub fn consistency(size1: u64, size2: u64) -> Result<Self, String> {
        if size1 == 0 || size1 > size2 {
            return Err(format!(
                "no consistency proof from size {size1} to size {size2}"
            ));
        }
        let mut ranges = Vec::new();
        plan_subproof(size1, 0, size2, true, &mut ranges);
        Ok(ProofPlan { ranges })
    }

    /// The root of the tree of `size` leaves, as a one-element plan.
    pub fn root(size: u64) -> Self {
        ProofPlan {
            ranges: if size == 0 { vec![] } else { vec![(0, size)] },
        }
    }

    /// The highest leaf index (exclusive) the plan touches.
    pub fn extent(&self) -> u64 {
        self.ranges.iter().map(|r| r.1).max().unwrap_or(0)
    }

    /// The tiles of a tree of `stored_size` leaves that resolving the plan
    /// reads, sorted and without repeats.
    pub fn tiles(&self, stored_size: u64) -> Vec<TileId> {
        self.tiles_knowing(stored_size, &RangeRoots::new())
    }

    /// [`ProofPlan::tiles`], for a reader that already knows the roots of
    /// the `known` ranges and so reads no tile for them.
    pub fn tiles_knowing(&self, stored_size: u64, known: &RangeRoots) -> Vec<TileId> {
        let mut tiles: Vec<TileId> = self
            .ranges
            .iter()
            .filter(|range| !known.contains_key(range))
            .flat_map(|&(lo, hi)| range_nodes(lo, hi))
            .filter_map(|(height, index)| {
                let at = locate_node(height, index);
                tile_at(at.level, at.tile_index, stored_size)
            })
            .collect();
        tiles.sort();
        tiles.dedup();
        tiles
    }
}

/// The inclusion proofs of many leaves of one tree, planned as one: each
/// range any of them needs appears once in [`InclusionPlans::plan`], so a
/// [`TreeReader`] resolves it once however many proofs share it. A batch's
/// proofs share most of theirs: planned one by one, each of `n` leaves
/// looks up some `log2(size)` ranges; planned together, `n` leaves need
/// about `2n` ranges in all.
///
/// The ranges are found level by level, leaf to root: at height `h` the
/// leaf's ancestor is node `m >> h`, and its proof holds the root of the
/// ancestor's sibling `s = (m >> h) ^ 1`, leaves `[s·2^h, (s+1)·2^h)` cut
/// at the tree's size, unless the sibling starts beyond the tree. That is
/// RFC 9162's PATH, which splits at the largest power of two, walked from
/// the other end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionPlans {
    size: u64,
    plan: ProofPlan,
    /// Where each height's ranges start in the plan, sorted by start
    /// within a height; one more entry marks the end of the last.
    heights: Vec<usize>,
}

impl InclusionPlans {
    /// Plans the inclusion proofs of `indices` (in any order, repeats
    /// allowed) in the tree of `size` leaves.
    pub fn new(indices: &[u64], size: u64) -> Result<Self, String> {
        if let Some(&index) = indices.iter().find(|&&i| i >= size) {
            return Err(format!("index {index} is not below tree size {size}"));
        }
        let mut ancestors = indices.to_vec();
        ancestors.sort_unstable();
        ancestors.dedup();
        let mut ranges = Vec::new();
        let mut heights = vec![0];
        // Below the root's height: the root of a tree of `size` leaves is
        // at the bit length of `size - 1`.
        let tree_height = 64 - size.saturating_sub(1).leading_zeros();
        for height in 0..tree_height {
            let mut level: Vec<(u64, u64)> = ancestors
                .iter()
                .filter_map(|&a| sibling_range(a ^ 1, height, size))
                .collect();
            // Siblings of sorted ancestors are sorted but for the two
            // children of one parent, which swap.
            level.sort_unstable();
            level.dedup();
            ranges.extend(level);
            heights.push(ranges.len());
            for a in &mut ancestors {
                *a >>= 1;
            }
            ancestors.dedup();
        }
        Ok(InclusionPlans {
            size,
            plan: ProofPlan { ranges },
            heights,
        })
    }

    /// Every range the proofs need, to resolve with [`TreeReader::prove`].
    pub fn plan(&self) -> &ProofPlan {
        &self.plan
    }

    /// The inclusion proof of `index`, from `resolved`, the plan's ranges
    /// resolved in order; `None` if `index` was not planned or `resolved`
    /// is not the plan's.
    pub fn proof(&self, index: u64, resolved: &[Hash]) -> Option<Vec<Hash>> {
        if index >= self.size || resolved.len() != self.plan.ranges.len() {
            return None;
        }
        let mut proof = Vec::with_capacity(self.heights.len() - 1);
        for (height, bounds) in (0u32..).zip(self.heights.windows(2)) {
            let Some(range) = sibling_range((index >> height) ^ 1, height, self.size) else {
                continue;
            };
            let level = &self.plan.ranges[bounds[0]..bounds[1]];
            let at = level.binary_search(&range).ok()?;
            proof.push(resolved[bounds[0] + at]);
        }
        Some(proof)
    }
}

/// The leaves `[lo, hi)` under node `sibling` at `height`, cut at `size`;
/// `None` if it starts at or beyond `size`.
fn sibling_range(sibling: u64, height: u32, size: u64) -> Option<(u64, u64)> {
    let lo = sibling.checked_mul(1u64.checked_shl(height)?)?;
    (lo < size).then(|| (lo, lo.saturating_add(1 << height).min(size)))
}

/// PATH(m, D[lo:hi]) of RFC 9162 §2.1.3.1, leaf to root.
fn plan_path(m: u64, lo: u64, hi: u64, out: &mut Vec<(u64, u64)>) {
    if hi - lo == 1 {
        return;
    }
    let k = split_point(hi - lo);
    if m < lo + k {
        plan_path(m, lo, lo + k, out);
        out.push((lo + k, hi));
    } else {
        plan_path(m, lo + k, hi, out);
        out.push((lo, lo + k));
    }
}

/// SUBPROOF(m, D[lo:hi], complete) of RFC 9162 §2.1.4.1.
fn plan_subproof(m: u64, lo: u64, hi: u64, complete: bool, out: &mut Vec<(u64, u64)>) {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push((lo, hi));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        plan_subproof(m, lo, lo + k, complete, out);
        out.push((lo + k, hi));
    } else {
        plan_subproof(m - k, lo + k, hi, false, out);
        out.push((lo, lo + k));
    }
}

/// The complete subtrees, as (height, index), of a range the RFC recursion
/// produces: `lo` is aligned to a power of two at least `hi - lo`, so the
/// range splits into subtrees of decreasing size, left to right.
fn range_nodes(lo: u64, hi: u64) -> impl Iterator<Item = (u32, u64)> {
    let mut start = lo;
    let mut remaining = hi - lo;
    std::iter::from_fn(move || {
        if remaining == 0 {
            return None;
        }
        let height = 63 - remaining.leading_zeros();
        let node = (height, start >> height);
        start += 1 << height;
        remaining -= 1 << height;
        Some(node)
    })
}

/// The roots of ranges `[lo, hi)` of leaves of one tree, by range.
pub type RangeRoots = HashMap<(u64, u64), Hash>;

/// Reads nodes, roots and proofs of a tree of known size from its tiles,
/// remembering the tiles it has read and the nodes it has computed, so that
/// many proofs of one tree share the work.
pub struct TreeReader<'r, R: TileReader> {
    size: u64,
    source: &'r mut R,
    tiles: HashMap<(u8, u64), Vec<u8>>,
    nodes: HashMap<(u32, u64), Hash>,
    /// Roots of ranges [lo, hi) that take more than one node or reach the
    /// tree's right edge, where nodes lie in partial tiles and are hashed
    /// anew: proofs of one tree end in the same few such ranges.
    ranges: RangeRoots,
}

impl<'r, R: TileReader> TreeReader<'r, R> {
    /// Opens the tree of `size` leaves stored in `source`. Proofs for any
    /// smaller size come from the same tiles: tiles only ever grow.
    pub fn new(size: u64, source: &'r mut R) -> Self {
        Self::with_ranges(size, source, RangeRoots::new())
    }

    /// Opens the tree of `size` leaves, knowing the roots of `ranges` in
    /// it, as an earlier reader of the same tree found them
    /// ([`TreeReader::into_ranges`]).
    pub fn with_ranges(size: u64, source: &'r mut R, ranges: RangeRoots) -> Self {
        TreeReader {
            size,
            source,
            tiles: HashMap::new(),
            nodes: HashMap::new(),
            ranges,
        }
    }

    /// The roots of the ranges reaching the tree's right edge that this
    /// reader knows: what proofs of the same tree would hash again.
    pub fn into_ranges(mut self) -> RangeRoots {
        let size = self.size;
        self.ranges.retain(|&(_, hi), _| hi == size);
        self.ranges
    }

    /// Size of the stored tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The hash of the complete subtree of height `height` at position
    /// `index` (covering leaves `index·2^height ..`).
    pub fn node(&mut self, height: u32, index: u64) -> Result<Hash, ProveError<R::Error>> {
        if let Some(hash) = self.nodes.get(&(height, index)) {
            return Ok(*hash);
        }
        let end = index
            .checked_add(1)
            .and_then(|i| i.checked_mul(1u64.checked_shl(height)?));
        if end.is_none_or(|end| end > self.size) {
            return Err(ProveError::OutOfRange(format!(
                "node at height {height}, index {index} is not complete in a tree of {} leaves",
                self.size
            )));
        }
        let at = locate_node(height, index);
        let tile = tile_at(at.level, at.tile_index, self.size).ok_or_else(|| {
            ProveError::OutOfRange(format!("no tile holds node {height}/{index}"))
        })?;
        if let Some(hash) = self.source.subtree_root(tile, at.offset, at.count) {
            self.nodes.insert((height, index), hash);
            return Ok(hash);
        }
        let bytes = match self.tiles.entry((tile.level, tile.index)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let bytes = self
                    .source
                    .read_tile(tile)
                    .map_err(|source| ProveError::Read {
                        path: tile.path(),
                        source,
                    })?;
                let want = usize::from(tile.width) * HASH_SIZE;
                if bytes.len() != want {
                    return Err(ProveError::TileLength {
                        path: tile.path(),
                        len: bytes.len(),
                        want,
                    });
                }
                e.insert(bytes)
            }
        };
        let slice = &bytes[at.offset * HASH_SIZE..(at.offset + at.count) * HASH_SIZE];
        let hash = perfect_root(slice);
        self.nodes.insert((height, index), hash);
        Ok(hash)
    }

    /// Resolves a plan into its hashes.
    pub fn prove(&mut self, plan: &ProofPlan) -> Result<Vec<Hash>, ProveError<R::Error>> {
        self.check_size(plan.extent())?;
        plan.ranges
            .iter()
            .map(|&(lo, hi)| {
                if let Some(root) = self.ranges.get(&(lo, hi)) {
                    return Ok(*root);
                }
                let roots = range_nodes(lo, hi)
                    .map(|(height, index)| self.node(height, index))
                    .collect::<Result<Vec<_>, _>>()?;
                let root = fold_right(&roots)
                    .ok_or_else(|| ProveError::OutOfRange("empty range".into()))?;
                if roots.len() > 1 || hi == self.size {
                    self.ranges.insert((lo, hi), root);
                }
                Ok(root)
            })
            .collect()
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root(&mut self, size: u64) -> Result<Hash, ProveError<R::Error>> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(crate::hash::empty_root());
        }
        Ok(self.prove(&ProofPlan::root(size))?[0])
    }

    /// The RFC 9162 inclusion proof of leaf `index` in the tree of the
    /// first `size` leaves.
    pub fn inclusion_proof(
        &mut self,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, ProveError<R::Error>> {
        self.check_size(size)?;
        let plan = ProofPlan::inclusion(index, size).map_err(ProveError::OutOfRange)?;
        self.prove(&plan)
    }

    /// The RFC 9162 consistency proof that the tree of `size2` leaves
    /// extends the tree of `size1` leaves.
    pub fn consistency_proof(
        &mut self,
        size1: u64,
        size2: u64,
    ) -> Result<Vec<Hash>, ProveError<R::Error>> {
        self.check_size(size2)?;
        let plan = ProofPlan::consistency(size1, size2).map_err(ProveError::OutOfRange)?;
        self.prove(&plan)
    }

    fn check_size(&self, size: u64) -> Result<(), ProveError<R::Error>> {
        if size > self.size {
            return Err(ProveError::OutOfRange(format!(
                "tree size {size} is beyond the stored {} leaves",
                self.size
            )));
        }
        Ok(())
    }
}

/// The largest power of two below `n` (n ≥ 2): where RFC 9162 splits.
fn split_point(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Root of a power-of-two run of concatenated hashes.
pub(crate) fn perfect_root(hashes: &[u8]) -> Hash {
    let mut level: Vec<Hash> = hashes
        .chunks_exact(HASH_SIZE)
        .filter_map(Hash::from_slice)
        .collect();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level.first().copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_name_the_tiles_their_proofs_read() {
        // Leaf 300 of 70,000 = 65,536 + 4,096 + 256 + 112: its path reads
        // level-0 tile 1 and level-1 tile 0 for the left half, then the
        // right edge as subtrees of 4,096 and 256 (level 1) and 112 leaves.
        let plan = ProofPlan::inclusion(300, 70_000).expect("plan");
        let paths: Vec<String> = plan.tiles(70_000).iter().map(TileId::path).collect();
        assert_eq!(
            paths,
            [
                "tile/0/001",
                "tile/0/273.p/112",
                "tile/1/000",
                "tile/1/001.p/17"
            ]
        );
        // Knowing the right edge's root, only the left half's tiles remain.
        let known = RangeRoots::from([((65_536, 70_000), Hash::default())]);
        let paths: Vec<String> = plan
            .tiles_knowing(70_000, &known)
            .iter()
            .map(TileId::path)
            .collect();
        assert_eq!(paths, ["tile/0/001", "tile/1/000"]);
        assert!(ProofPlan::inclusion(5, 5).is_err());
        assert!(ProofPlan::consistency(0, 5).is_err());
        assert_eq!(
            ProofPlan::consistency(5, 5).expect("equal").tiles(5),
            vec![]
        );
    }

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(257), 256);
    }

    #[test]
    fn proofs_in_trees_above_two_to_the_63_have_the_right_length() {
        let size = (1u64 << 63) + 1;
        let none: &[Hash] = &[];
        // Leaf 1 needs 63 hashes inside the left half and one for the
        // right-most leaf.
        assert_eq!(
            verify_inclusion(1, size, &[0; 32], none, &[0; 32]),
            Err(ProofError::ProofSize { got: 0, want: 64 })
        );
        // The last leaf needs only the root of the left half.
        assert_eq!(decompose(1 << 63, size), (0, 1));
        let one = [Hash::default()];
        assert!(verify_consistency(1, size, &one, &[0; 32], &[0; 32]).is_err());
    }

    #[test]
    fn consistency_from_empty_tree_is_refused() {
        let r = crate::hash::empty_root();
        assert_eq!(
            verify_consistency::<Hash>(0, 0, &[], r.as_bytes(), r.as_bytes()),
            Err(ProofError::FromEmptyTree)
        );
    }

    #[test]
    fn shrinking_tree_is_refused() {
        let r = crate::hash::empty_root();
        assert_eq!(
            verify_consistency::<Hash>(5, 4, &[], r.as_bytes(), r.as_bytes()),
            Err(ProofError::Shrinks { size1: 5, size2: 4 })
        );
    }

    /// Full tiles of a tree of 70,000 leaves, optionally answering subtree
    /// roots from their precomputed nodes, and counting tile reads.
    struct Stored {
        tiles: HashMap<(u8, u64), Vec<u8>>,
        nodes: Option<HashMap<(u8, u64), TileNodes>>,
        reads: usize,
    }

    impl TileReader for Stored {
        type Error = String;
        fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
            self.reads += 1;
            let bytes = self.tiles.get(&(tile.level, tile.index)).ok_or("missing")?;
            Ok(bytes[..usize::from(tile.width) * HASH_SIZE].to_vec())
        }
        fn subtree_root(&mut self, tile: TileId, offset: usize, count: usize) -> Option<Hash> {
            self.nodes
                .as_ref()?
                .get(&(tile.level, tile.index))?
                .root(offset, count)
        }
    }

    fn stored(size: u32, with_nodes: bool) -> Stored {
        let mut tiles = HashMap::new();
        let leaves = (0..size).map(|i| crate::hash::leaf_hash(&i.to_be_bytes()));
        for (tile, bytes) in crate::Integrator::new().integrate(leaves) {
            tiles.insert((tile.level, tile.index), bytes);
        }
        let nodes = with_nodes.then(|| {
            tiles
                .iter()
                .filter_map(|(k, b)| Some((*k, TileNodes::of_full_tile(b.clone())?)))
                .collect()
        });
        Stored {
            tiles,
            nodes,
            reads: 0,
        }
    }

    #[test]
    fn tile_nodes_are_the_roots_within_the_tile() {
        let hashes: Vec<u8> = (0..256u32)
            .flat_map(|i| crate::hash::leaf_hash(&i.to_be_bytes()).0)
            .collect();
        let nodes = TileNodes::of_full_tile(hashes.clone()).expect("a full tile");
        for height in 0..=8u32 {
            let count = 1usize << height;
            for offset in (0..256).step_by(count) {
                let want = perfect_root(&hashes[offset * HASH_SIZE..(offset + count) * HASH_SIZE]);
                assert_eq!(nodes.root(offset, count), Some(want), "{offset}+{count}");
            }
        }
        assert_eq!(nodes.root(3, 2), None, "not aligned");
        assert_eq!(nodes.root(0, 3), None, "not a power of two");
        assert_eq!(nodes.root(256, 1), None, "beyond the tile");
        assert!(TileNodes::of_full_tile(hashes[..32 * 255].to_vec()).is_none());
    }

    #[test]
    fn inclusion_plans_give_each_leaf_its_own_proof() {
        // Every size up to a little past a tile, with every leaf planned at
        // once; then a larger tree with a batch at its right edge, a few
        // scattered leaves and a repeat, as a sequencer's batch has.
        let mut cases: Vec<(u64, Vec<u64>)> = (1..=300).map(|n| (n, (0..n).collect())).collect();
        let mut batch: Vec<u64> = (68_000..70_000).collect();
        batch.extend([5, 69_999, 300, 65_536, 5]);
        cases.push((70_000, batch));
        cases.push((70_000, vec![0]));
        cases.push((70_000, vec![69_999]));
        let mut tiles = stored(70_000, true);
        for (size, indices) in cases {
            let mut reader = TreeReader::new(size, &mut tiles);
            let plans = InclusionPlans::new(&indices, size).expect("plan");
            let resolved = reader.prove(plans.plan()).expect("resolved");
            for &index in &indices {
                let want = reader.inclusion_proof(index, size).expect("proof");
                assert_eq!(
                    plans.proof(index, &resolved),
                    Some(want),
                    "leaf {index} of {size}"
                );
            }
        }
    }

    #[test]
    fn inclusion_plans_share_the_ranges_of_a_batch() {
        let batch: Vec<u64> = (68_000..70_000).collect();
        let plans = InclusionPlans::new(&batch, 70_000).expect("plan");
        let one_by_one: usize = batch
            .iter()
            .map(|&i| ProofPlan::inclusion(i, 70_000).expect("plan").ranges.len())
            .sum();
        let together = plans.plan().ranges.len();
        assert!(together <= 2 * batch.len() + 17, "{together} ranges");
        assert!(one_by_one > 6 * together, "{one_by_one} against {together}");
    }

    #[test]
    fn inclusion_plans_refuse_what_was_not_planned() {
        assert!(InclusionPlans::new(&[3, 10], 10).is_err());
        let plans = InclusionPlans::new(&[3], 10).expect("plan");
        let resolved = vec![Hash::default(); plans.plan().ranges.len()];
        assert!(plans.proof(3, &resolved).is_some());
        assert_eq!(plans.proof(8, &resolved), None, "not planned");
        assert_eq!(plans.proof(10, &resolved), None, "beyond the tree");
        assert_eq!(plans.proof(3, &resolved[1..]), None, "not the plan's");
        let one = InclusionPlans::new(&[0], 1).expect("plan");
        assert_eq!(one.proof(0, &[]), Some(vec![]), "a tree of one leaf");
    }

    #[test]
    fn proofs_from_tile_nodes_equal_proofs_from_tile_bytes() {
        let size = 70_000u64;
        let mut plain = stored(size as u32, false);
        let mut with_nodes = stored(size as u32, true);
        let mut a = TreeReader::new(size, &mut plain);
        let mut b = TreeReader::new(size, &mut with_nodes);
        for index in [0, 1, 255, 256, 4097, 65_535, 65_536, 69_999] {
            let plan = ProofPlan::inclusion(index, size).expect("plan");
            assert_eq!(
                a.prove(&plan).expect("proof"),
                b.prove(&plan).expect("proof")
            );
        }
        let plan = ProofPlan::consistency(12_345, size).expect("plan");
        assert_eq!(
            a.prove(&plan).expect("proof"),
            b.prove(&plan).expect("proof")
        );
        drop((a, b));
        // Only the partial tiles at the right edge had to be read.
        assert!(
            with_nodes.reads < plain.reads,
            "{} vs {}",
            with_nodes.reads,
            plain.reads
        );
        assert!(with_nodes.reads <= 3, "{} reads", with_nodes.reads);
    }

    #[test]
    fn a_reader_given_the_right_edge_neither_reads_nor_hashes_it_again() {
        let size = 70_000u64;
        // Leaves of the first 65,536, whose proofs read full tiles but for
        // the right edge.
        let plans: Vec<ProofPlan> = [3, 1_000, 40_000, 65_535]
            .into_iter()
            .map(|index| ProofPlan::inclusion(index, size).expect("plan"))
            .collect();
        let mut first = stored(size as u32, true);
        let mut reader = TreeReader::new(size, &mut first);
        let proofs: Vec<_> = plans
            .iter()
            .map(|p| reader.prove(p).expect("proof"))
            .collect();
        let edge = reader.into_ranges();
        assert!(!edge.is_empty());
        assert!(edge.keys().all(|&(_, hi)| hi == size), "{edge:?}");

        // The same proofs, with the edge known: the partial tiles that a
        // fresh reader reads (and hashes) are not touched.
        let mut second = stored(size as u32, true);
        let mut reader = TreeReader::with_ranges(size, &mut second, edge.clone());
        for (plan, proof) in plans.iter().zip(&proofs) {
            assert_eq!(&reader.prove(plan).expect("proof"), proof);
        }
        drop(reader);
        assert_eq!(second.reads, 0);

        // What it is given is what it uses.
        let mut third = stored(size as u32, true);
        let wrong: HashMap<_, _> = edge.keys().map(|&k| (k, Hash([7; 32]))).collect();
        let mut reader = TreeReader::with_ranges(size, &mut third, wrong);
        assert_ne!(&reader.prove(&plans[0]).expect("proof"), &proofs[0]);
    }
}
