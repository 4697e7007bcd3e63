//! Property tests against an independent implementation (rs_merkle with the
//! RFC 6962 hasher): roots and inclusion proofs built from tiles equal
//! rs_merkle's, every consistency proof between sizes up to 300 verifies,
//! and changing any proof byte makes verification fail.

use std::collections::BTreeMap;

use evault_core::hash::HASH_SIZE;
use evault_core::{Hash, Integrator, TileId, TileReader, TreeReader, leaf_hash, node_hash};
use evault_core::{verify_consistency, verify_inclusion};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// RFC 6962 hashing for rs_merkle: interior nodes get the 0x01 prefix and a
/// lone right-most node is promoted unchanged, as RFC 9162 splits trees.
#[derive(Clone)]
pub(crate) struct Rfc6962;

/// rs_merkle's tree with RFC 6962 hashing.
pub(crate) type Rfc6962Tree = rs_merkle::MerkleTree<Rfc6962>;

impl rs_merkle::Hasher for Rfc6962 {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        evault_core::hash::sha256(data)
    }

    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(right) => node_hash(&Hash(*left), &Hash(*right)).0,
            None => *left,
        }
    }
}

/// Tiles in memory, as a backend stores them: the latest version of each.
#[derive(Default)]
pub(crate) struct MemoryTiles(pub(crate) BTreeMap<(u8, u64), Vec<u8>>);

impl MemoryTiles {
    pub(crate) fn store(&mut self, tiles: Vec<(TileId, Vec<u8>)>) {
        for (tile, bytes) in tiles {
            self.0.insert((tile.level, tile.index), bytes);
        }
    }
}

impl TileReader for MemoryTiles {
    type Error = String;

    fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        let bytes = self
            .0
            .get(&(tile.level, tile.index))
            .ok_or("no such tile")?;
        bytes
            .get(..usize::from(tile.width) * HASH_SIZE)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "tile narrower than asked".to_string())
    }
}

fn random_leaves(rng: &mut StdRng, n: usize) -> Vec<Hash> {
    (0..n)
        .map(|_| {
            let len = rng.random_range(0..120);
            let entry: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            leaf_hash(&entry)
        })
        .collect()
}

fn build(leaves: &[Hash]) -> MemoryTiles {
    let mut tiles = MemoryTiles::default();
    let mut tree = Integrator::new();
    // Several batches, so partial tiles are rewritten as a real log does.
    for chunk in leaves.chunks(97) {
        tiles.store(tree.integrate(chunk.iter().copied()));
    }
    tiles
}

/// Every single-bit change of every proof hash must break verification.
fn each_tampered(proof: &[Hash], mut check: impl FnMut(&[Hash]) -> bool) {
    for i in 0..proof.len() {
        for byte in 0..HASH_SIZE {
            let mut bad = proof.to_vec();
            bad[i].0[byte] ^= 1 << (byte % 8);
            assert!(!check(&bad), "tampered proof hash {i} byte {byte} verified");
        }
    }
}

#[test]
fn roots_and_inclusion_proofs_equal_rs_merkle() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    let leaves = random_leaves(&mut rng, 3000);
    let mut tiles = build(&leaves);
    let mut all = build(&leaves);
    let mut sizes = vec![1, 2, 3, 255, 256, 257, 511, 512, 513, 2048, 3000];
    sizes.extend((0..12).map(|_| rng.random_range(1..=3000u64)));
    let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
    for size in sizes {
        let oracle = Rfc6962Tree::from_leaves(&raw[..size as usize]);
        let mut reader = TreeReader::new(3000, &mut tiles);
        let root = reader.root(size).expect("root");
        assert_eq!(Some(root.0), oracle.root(), "root at size {size}");
        let mut integrator = Integrator::new();
        integrator.integrate(leaves[..size as usize].iter().copied());
        assert_eq!(integrator.root(), root);

        let indices: Vec<u64> = if size <= 300 {
            (0..size).collect()
        } else {
            (0..40)
                .map(|_| rng.random_range(0..size))
                .chain([0, size - 1])
                .collect()
        };
        for index in indices {
            let proof = reader.inclusion_proof(index, size).expect("proof");
            // The plan names every tile the proof needs: a reader holding
            // only those gives the same proof.
            let plan = evault_core::ProofPlan::inclusion(index, size).expect("plan");
            let mut only = MemoryTiles::default();
            for tile in plan.tiles(3000) {
                only.0
                    .insert((tile.level, tile.index), all.read_tile(tile).expect("tile"));
            }
            assert_eq!(
                TreeReader::new(3000, &mut only)
                    .prove(&plan)
                    .expect("planned"),
                proof
            );
            let expected: Vec<Hash> = oracle
                .proof(&[index as usize])
                .proof_hashes()
                .iter()
                .map(|h| Hash(*h))
                .collect();
            assert_eq!(proof, expected, "inclusion proof of {index} in {size}");
            let leaf = leaves[index as usize];
            verify_inclusion(index, size, leaf.as_bytes(), &proof, root.as_bytes())
                .expect("verifies");
            if index % 7 == 0 {
                each_tampered(&proof, |bad| {
                    verify_inclusion(index, size, leaf.as_bytes(), bad, root.as_bytes()).is_ok()
                });
            }
        }
    }
}

#[test]
fn every_consistency_proof_up_to_300_verifies_and_tampering_fails() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    let leaves = random_leaves(&mut rng, 300);
    let mut tiles = build(&leaves);
    let mut reader = TreeReader::new(300, &mut tiles);
    let roots: Vec<Hash> = (0..=300).map(|n| reader.root(n).expect("root")).collect();
    for size2 in 1..=300u64 {
        for size1 in 1..=size2 {
            let proof = reader.consistency_proof(size1, size2).expect("proof");
            let (r1, r2) = (roots[size1 as usize], roots[size2 as usize]);
            verify_consistency(size1, size2, &proof, r1.as_bytes(), r2.as_bytes())
                .unwrap_or_else(|e| panic!("{size1} → {size2}: {e}"));
            if (size1 * 31 + size2) % 53 == 0 {
                each_tampered(&proof, |bad| {
                    verify_consistency(size1, size2, bad, r1.as_bytes(), r2.as_bytes()).is_ok()
                });
                // A proof for other sizes does not pass for these.
                if size1 > 1 {
                    assert!(
                        verify_consistency(
                            size1 - 1,
                            size2,
                            &proof,
                            roots[size1 as usize - 1].as_bytes(),
                            r2.as_bytes()
                        )
                        .is_err()
                    );
                }
            }
        }
    }
}

#[test]
fn proofs_are_refused_outside_the_stored_tree() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0003);
    let mut tiles = build(&random_leaves(&mut rng, 10));
    let mut reader = TreeReader::new(10, &mut tiles);
    assert!(reader.inclusion_proof(10, 10).is_err());
    assert!(reader.inclusion_proof(0, 11).is_err());
    assert!(reader.consistency_proof(0, 5).is_err());
    assert!(reader.consistency_proof(6, 5).is_err());
    assert!(reader.root(11).is_err());
    assert_eq!(reader.consistency_proof(5, 5).expect("equal sizes"), vec![]);
}
