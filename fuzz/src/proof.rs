//! Inclusion and consistency proofs, from two sides.
//!
//! The first [`HEADER`] bytes shape a real tree: its leaf count, the batches
//! it is integrated in (optionally resuming from the stored tiles between
//! them), and the index and sizes to prove. Tiles, roots and proofs are
//! checked against a naive RFC 9162 implementation kept here, proofs must
//! verify, and one flipped bit must make them fail.
//!
//! The remaining bytes go to the verifiers raw: index or sizes, leaf hash or
//! roots, and proof hashes of any length. They must never panic, and what
//! they accept must be consistent with their inputs.

use std::collections::HashMap;
use std::sync::LazyLock;

use evault_core::proof::{ProofError, root_from_inclusion_proof};
use evault_core::tile::{TILE_WIDTH, TileId};
use evault_core::{
    HASH_SIZE, Hash, Integrator, TileReader, TreeReader, empty_root, leaf_hash, node_hash,
    verify_consistency, verify_inclusion,
};

/// Most leaves in the real tree: two full level-0 tiles and a partial one,
/// and a level-1 tile of two hashes.
const MAX_LEAVES: u64 = 700;
/// Bytes that shape the real tree; the rest of the input is raw proof data.
const HEADER: usize = 15;

/// Leaf `i` is the leaf hash of `i` as eight big-endian bytes.
static LEAVES: LazyLock<Vec<Hash>> = LazyLock::new(|| {
    (0..MAX_LEAVES)
        .map(|i| leaf_hash(&i.to_be_bytes()))
        .collect()
});

/// Reads fixed-width fields, as zeros once the input runs out.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        let hi = self.u8();
        u16::from_be_bytes([hi, self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let got = self.bytes(8);
        b[..got.len()].copy_from_slice(got);
        u64::from_be_bytes(b)
    }

    /// A byte string prefixed by its length as one byte.
    fn blob(&mut self) -> &'a [u8] {
        let n = self.u8();
        self.bytes(usize::from(n))
    }
}

/// Tiles as a backend stores them: the latest version of each tile, from
/// which a read of a narrower width takes the prefix.
#[derive(Default)]
struct Tiles(HashMap<(u8, u64), Vec<u8>>);

impl TileReader for Tiles {
    type Error = String;

    fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        let stored = self
            .0
            .get(&(tile.level, tile.index))
            .ok_or_else(|| format!("{} was never written", tile.path()))?;
        stored
            .get(..usize::from(tile.width) * HASH_SIZE)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("{} is only {} bytes", tile.path(), stored.len()))
    }
}

/// RFC 9162 §2.1.1: where MTH splits a list of `n ≥ 2` leaves.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]), straight from the definition.
pub(crate) fn mth(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            let k = split(leaves.len());
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]) of RFC 9162 §2.1.3.1.
fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split(leaves.len());
    let (mut proof, sibling) = if m < k {
        (path(m, &leaves[..k]), mth(&leaves[k..]))
    } else {
        (path(m - k, &leaves[k..]), mth(&leaves[..k]))
    };
    proof.push(sibling);
    proof
}

/// SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1.
fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete {
            Vec::new()
        } else {
            vec![mth(leaves)]
        };
    }
    let k = split(n);
    let (mut proof, sibling) = if m <= k {
        (subproof(m, &leaves[..k], complete), mth(&leaves[k..]))
    } else {
        (subproof(m - k, &leaves[k..], false), mth(&leaves[..k]))
    };
    proof.push(sibling);
    proof
}

/// The proof with one bit flipped, chosen by `flip`; `None` if the chosen
/// hash is empty or there is no hash at all.
fn flip_bit<P: AsRef<[u8]>>(proof: &[P], flip: u16) -> Option<Vec<Vec<u8>>> {
    let mut proof: Vec<Vec<u8>> = proof.iter().map(|h| h.as_ref().to_vec()).collect();
    let count = proof.len();
    let hash = proof.get_mut(usize::from(flip >> 8) % count.max(1))?;
    let bit = usize::from(flip & 0xff) % (hash.len() * 8).max(1);
    *hash.get_mut(bit / 8)? ^= 1 << (bit % 8);
    Some(proof)
}

fn as_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or_else(|_| panic!("{n} does not fit usize"))
}

/// Builds the tree from the header and checks tiles, roots and proofs.
fn real_tree(header: &mut Cursor<'_>) {
    let n = 1 + u64::from(header.u16()) % MAX_LEAVES;
    let leaves = &LEAVES[..as_usize(n)];
    let mut cuts = [header.u16(), header.u16()].map(|c| u64::from(c) % (n + 1));
    cuts.sort_unstable();
    let resume = header.u8();

    let mut tiles = Tiles::default();
    let mut integrator = Integrator::new();
    for (batch, span) in [0, cuts[0], cuts[1], n].windows(2).enumerate() {
        let (from, to) = (span[0], span[1]);
        if batch > 0 && (resume >> batch) & 1 == 1 {
            let resumed = match Integrator::resume(from, &mut tiles) {
                Ok(resumed) => resumed,
                Err(e) => panic!("cannot resume at {from}: {e}"),
            };
            assert_eq!(
                resumed.root(),
                integrator.root(),
                "resumed at {from} with another root"
            );
            integrator = resumed;
        }
        for (tile, bytes) in
            integrator.integrate(leaves[as_usize(from)..as_usize(to)].iter().copied())
        {
            assert_eq!(
                bytes.len(),
                usize::from(tile.width) * HASH_SIZE,
                "{}",
                tile.path()
            );
            tiles.0.insert((tile.level, tile.index), bytes);
        }
        assert_eq!(integrator.size(), to);
        assert_eq!(
            integrator.root(),
            mth(&leaves[..as_usize(to)]),
            "root at {to}"
        );
    }
    check_tiles(&tiles, leaves);

    let size2 = 1 + u64::from(header.u16()) % n;
    let size1 = 1 + u64::from(header.u16()) % size2;
    let index = u64::from(header.u16()) % size2;
    let flip = header.u16();
    let (s1, s2, i) = (as_usize(size1), as_usize(size2), as_usize(index));

    let mut reader = TreeReader::new(n, &mut tiles);
    let root = |reader: &mut TreeReader<'_, Tiles>, size: u64| match reader.root(size) {
        Ok(root) => root,
        Err(e) => panic!("no root at {size} of {n}: {e}"),
    };
    assert_eq!(root(&mut reader, 0), empty_root());
    let root2 = root(&mut reader, size2);
    let root1 = root(&mut reader, size1);
    assert_eq!(root2, mth(&leaves[..s2]), "root at {size2}");
    assert_eq!(root1, mth(&leaves[..s1]), "root at {size1}");
    assert!(reader.root(n + 1).is_err());

    let proof = match reader.inclusion_proof(index, size2) {
        Ok(proof) => proof,
        Err(e) => panic!("no inclusion proof for {index} in {size2}: {e}"),
    };
    assert_eq!(
        proof,
        path(i, &leaves[..s2]),
        "inclusion proof for {index} in {size2}"
    );
    let leaf = leaves[i].as_bytes();
    assert_eq!(
        verify_inclusion(index, size2, leaf, &proof, root2.as_bytes()),
        Ok(())
    );
    if let Some(bad) = flip_bit(&proof, flip) {
        assert!(verify_inclusion(index, size2, leaf, &bad, root2.as_bytes()).is_err());
    }
    let other = leaves[(i + 1) % s2].as_bytes();
    if size2 > 1 {
        assert!(verify_inclusion(index, size2, other, &proof, root2.as_bytes()).is_err());
    }
    assert!(reader.inclusion_proof(size2, size2).is_err());

    let proof = match reader.consistency_proof(size1, size2) {
        Ok(proof) => proof,
        Err(e) => panic!("no consistency proof from {size1} to {size2}: {e}"),
    };
    assert_eq!(
        proof,
        subproof(s1, &leaves[..s2], true),
        "consistency {size1} to {size2}"
    );
    let (r1, r2) = (root1.as_bytes(), root2.as_bytes());
    assert_eq!(verify_consistency(size1, size2, &proof, r1, r2), Ok(()));
    if let Some(bad) = flip_bit(&proof, flip) {
        assert!(verify_consistency(size1, size2, &bad, r1, r2).is_err());
    }
    assert!(reader.consistency_proof(0, size2).is_err());
}

/// Level-0 tiles hold the leaf hashes, level-1 tiles the roots of full
/// level-0 tiles.
fn check_tiles(tiles: &Tiles, leaves: &[Hash]) {
    let width = as_usize(TILE_WIDTH);
    for (&(level, index), bytes) in &tiles.0 {
        let hashes: Vec<Hash> = match level {
            0 => leaves
                .chunks(width)
                .nth(as_usize(index))
                .unwrap_or_default()
                .to_vec(),
            1 => leaves.chunks_exact(width).map(mth).collect(),
            _ => panic!("tile level {level} for {} leaves", leaves.len()),
        };
        let want: Vec<u8> = hashes.iter().flat_map(|h| h.0).collect();
        assert_eq!(bytes, &want, "tile {level}/{index}");
    }
}

/// Feeds raw bytes to the verifiers.
fn raw(input: &mut Cursor<'_>) {
    let (a, b) = (input.u64(), input.u64());
    let (first, second) = (input.blob(), input.blob());
    let count = input.u8() % 80;
    let proof: Vec<&[u8]> = (0..count).map(|_| input.blob()).collect();
    let flip = input.u16();

    let inclusion = verify_inclusion(a, b, first, &proof, second);
    if a >= b {
        assert!(matches!(inclusion, Err(ProofError::IndexBeyondSize { .. })));
    }
    if inclusion.is_ok() {
        assert_eq!(
            root_from_inclusion_proof(a, b, first, &proof).map(|r| r.0.to_vec()),
            Ok(second.to_vec())
        );
        // Every proof hash enters the root, so none can change.
        if let Some(bad) = flip_bit(&proof, flip) {
            assert!(verify_inclusion(a, b, first, &bad, second).is_err());
        }
    }

    let consistency = verify_consistency(a, b, &proof, first, second);
    if a == b && a > 0 && proof.is_empty() {
        assert_eq!(consistency.is_ok(), first == second);
    }
    if consistency.is_ok() {
        assert!(0 < a && a <= b, "consistency from {a} to {b} accepted");
        if a == b {
            assert!(proof.is_empty() && first == second);
        } else {
            assert!(first.len() == HASH_SIZE && second.len() == HASH_SIZE);
            assert!(proof.iter().all(|h| h.len() == HASH_SIZE));
            if let Some(bad) = flip_bit(&proof, flip) {
                assert!(verify_consistency(a, b, &bad, first, second).is_err());
            }
        }
    }
}

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let (header, rest) = data.split_at(data.len().min(HEADER));
    real_tree(&mut Cursor(header));
    raw(&mut Cursor(rest));
}
