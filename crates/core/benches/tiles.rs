//! Building the tiles of a million-entry log, and proofs from them, beside
//! rs_merkle's `from_leaves` and `tlog_tiles::stored_hashes` on the same
//! entries. Leaf hashing is included everywhere. Run with
//! `cargo bench -p evault-core --bench tiles`; figures in docs/benchmarks.md.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use evault_core::hash::HASH_SIZE;
use evault_core::{Hash, Integrator, TileId, TileReader, TreeReader, leaf_hash, node_hash};
use evault_core::{verify_consistency, verify_inclusion};

const ENTRIES: usize = 1_000_000;
const ENTRY_SIZE: usize = 100;

/// One million 100-byte entries, all different.
fn entries() -> Vec<Vec<u8>> {
    (0..ENTRIES as u64)
        .map(|i| {
            let mut e = vec![0x5a; ENTRY_SIZE];
            e[..8].copy_from_slice(&i.to_be_bytes());
            e
        })
        .collect()
}

#[derive(Clone)]
struct Rfc6962;

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

/// The stored hashes of tlog_tiles' layout, in memory.
struct StoredHashes(Vec<tlog_tiles::Hash>);

impl tlog_tiles::HashReader for StoredHashes {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
    }
}

#[derive(Default)]
struct MemoryTiles(HashMap<(u8, u64), Vec<u8>>);

impl TileReader for MemoryTiles {
    type Error = ();
    fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, ()> {
        let bytes = self.0.get(&(tile.level, tile.index)).ok_or(())?;
        Ok(bytes[..usize::from(tile.width) * HASH_SIZE].to_vec())
    }
}

fn build_tiles(c: &mut Criterion) {
    let entries = entries();
    let mut group = c.benchmark_group("build_1m_entries");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ENTRIES as u64));

    group.bench_function("evault_integrator", |b| {
        b.iter(|| {
            let mut tree = Integrator::new();
            let mut tiles: Vec<(TileId, Vec<u8>)> = Vec::with_capacity(ENTRIES / 255 + 8);
            for e in &entries {
                tree.append_entry(e, &mut |tile, hashes| tiles.push((tile, hashes.to_vec())));
            }
            tiles.extend(tree.take_partial_tiles());
            black_box((tree.root(), tiles))
        })
    });

    group.bench_function("rs_merkle_from_leaves", |b| {
        b.iter(|| {
            let leaves: Vec<[u8; 32]> = entries.iter().map(|e| leaf_hash(e).0).collect();
            black_box(rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&leaves).root())
        })
    });

    group.bench_function("tlog_tiles_stored_hashes", |b| {
        b.iter(|| {
            let mut stored = StoredHashes(Vec::with_capacity(2 * ENTRIES));
            for (n, e) in entries.iter().enumerate() {
                let new = tlog_tiles::stored_hashes(n as u64, e, &stored).expect("stored hashes");
                stored.0.extend(new);
            }
            black_box(stored.0.len())
        })
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    let mut tiles = MemoryTiles::default();
    let mut tree = Integrator::new();
    for (tile, bytes) in tree.integrate(entries().iter().map(|e| leaf_hash(e))) {
        tiles.0.insert((tile.level, tile.index), bytes);
    }
    let size = ENTRIES as u64;
    let root = tree.root();
    let mut group = c.benchmark_group("proofs_1m_tree");
    let mut index = 0u64;
    group.bench_function(BenchmarkId::new("inclusion", "build"), |b| {
        b.iter(|| {
            index = (index + 7919) % size;
            black_box(
                TreeReader::new(size, &mut tiles)
                    .inclusion_proof(index, size)
                    .expect("proof"),
            )
        })
    });
    let proof = TreeReader::new(size, &mut tiles)
        .inclusion_proof(123_457, size)
        .expect("proof");
    let leaf = leaf_hash(&entries()[123_457]);
    group.bench_function(BenchmarkId::new("inclusion", "verify"), |b| {
        b.iter(|| {
            verify_inclusion(123_457, size, leaf.as_bytes(), &proof, root.as_bytes()).expect("ok")
        })
    });
    let mut first = 1u64;
    group.bench_function(BenchmarkId::new("consistency", "build"), |b| {
        b.iter(|| {
            first = (first + 104_729) % (size - 1) + 1;
            black_box(
                TreeReader::new(size, &mut tiles)
                    .consistency_proof(first, size)
                    .expect("proof"),
            )
        })
    });
    let mut reader = TreeReader::new(size, &mut tiles);
    let old_root = reader.root(654_321).expect("root");
    let proof = reader.consistency_proof(654_321, size).expect("proof");
    group.bench_function(BenchmarkId::new("consistency", "verify"), |b| {
        b.iter(|| {
            verify_consistency(654_321, size, &proof, old_root.as_bytes(), root.as_bytes())
                .expect("ok")
        })
    });
    group.finish();
}

/// Every benchmark of this file, with criterion's command-line options.
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    build_tiles(&mut c);
    proofs(&mut c);
}

criterion_main!(benches);
