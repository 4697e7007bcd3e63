//! `TreeService` requests through the tree's real handlers, over a log
//! whose contents are known ([`super::world`]).
//!
//! Input: one byte choosing the method (its value modulo 6:
//! `GetCheckpoint`, `GetInclusionProof`, `GetConsistencyProof`,
//! `GetEntries`, `FindEntries`, `GetVerifierKeys`), then the request's
//! protobuf encoding. A refusal is the caller's (`INVALID_ARGUMENT`,
//! `OUT_OF_RANGE`, `NOT_FOUND`), never the server's: storage is healthy.
//! An answer must be exactly the log's: checkpoints signed by the log's
//! key, proofs that verify against them, entries at the indices they
//! claim, searches that miss nothing and return nothing else.

use evault_core::{Checkpoint, leaf_hash, open_checkpoint, verify_consistency, verify_inclusion};
use evault_proto::v1::get_inclusion_proof_request::Leaf;
use evault_proto::v1::tree_service_server::TreeService;
use evault_proto::v1::{
    Checkpoint as WireCheckpoint, FindEntriesRequest, GetCheckpointRequest,
    GetConsistencyProofRequest, GetEntriesRequest, GetInclusionProofRequest, LogEntry,
    TreeServiceGetVerifierKeysRequest,
};
use evault_storage::evidence_digest;
use prost::Message as _;
use tonic::{Code, Status};

use super::world::{BATCHES, ENTRIES, ORIGIN, World, world};

/// Most entries one `GetEntries` answer holds.
const MAX_ENTRIES: u64 = 1000;
/// `FindEntries` page sizes: the default, and the largest.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Some((&which, message)) = data.split_first() else {
        return;
    };
    let w = world();
    match which % 6 {
        0 => {
            if let Ok(request) = GetCheckpointRequest::decode(message) {
                get_checkpoint(w, request);
            }
        }
        1 => {
            if let Ok(request) = GetInclusionProofRequest::decode(message) {
                get_inclusion_proof(w, request);
            }
        }
        2 => {
            if let Ok(request) = GetConsistencyProofRequest::decode(message) {
                get_consistency_proof(w, request);
            }
        }
        3 => {
            if let Ok(request) = GetEntriesRequest::decode(message) {
                get_entries(w, request);
            }
        }
        4 => {
            if let Ok(request) = FindEntriesRequest::decode(message) {
                find_entries(w, request);
            }
        }
        _ => {
            if let Ok(request) = TreeServiceGetVerifierKeysRequest::decode(message) {
                let keys = w
                    .block_on(w.tree.get_verifier_keys(tonic::Request::new(request)))
                    .unwrap_or_else(|status| panic!("keys refused: {status:?}"))
                    .into_inner()
                    .verifier_keys;
                assert_eq!(keys, [w.keys[0].to_string()]);
            }
        }
    }
}

/// A refusal the caller earned, with a message.
fn refused(status: &Status, codes: &[Code]) {
    assert!(codes.contains(&status.code()), "{status:?}");
    assert!(!status.message().is_empty(), "{status:?}");
}

/// The size of the checkpoint a request for `size` entries (`0`: the
/// latest) must be answered with: the latest one's, which is always kept.
fn published(size: u64) -> Option<u64> {
    let latest = ENTRIES as u64;
    (size == 0 || size == latest).then_some(latest)
}

/// Whether a request for the checkpoint of `size` entries may be answered
/// with the checkpoint of `answered` entries: that of the size asked for
/// (an earlier one only if the log had that size after a batch: whether
/// those are kept is the store's choice), or the latest for `0`.
fn answers(size: u64, answered: u64) -> bool {
    published(size) == Some(answered) || (size == answered && BATCHES.contains(&(size as usize)))
}

/// Opens a checkpoint the tree sent and checks its parts agree with it.
fn opened(w: &World, wire: Option<WireCheckpoint>) -> Checkpoint {
    let Some(wire) = wire else {
        panic!("an answer without its checkpoint");
    };
    let signed = open_checkpoint(&wire.note, &w.keys[..1], Some(ORIGIN))
        .unwrap_or_else(|e| panic!("the tree sent a checkpoint it did not sign: {e}"));
    let checkpoint = signed.checkpoint;
    assert_eq!(wire.origin, checkpoint.origin);
    assert_eq!(wire.size, checkpoint.size);
    assert_eq!(wire.root_hash, checkpoint.root.as_bytes());
    assert_eq!(
        w.root(checkpoint.size),
        Some(checkpoint.root),
        "the checkpoint is not of the log's tree"
    );
    checkpoint
}

fn get_checkpoint(w: &World, request: GetCheckpointRequest) {
    let answer = w
        .block_on(w.tree.get_checkpoint(tonic::Request::new(request)))
        .unwrap_or_else(|status| panic!("latest checkpoint refused: {status:?}"))
        .into_inner();
    assert_eq!(opened(w, answer.checkpoint).size, ENTRIES as u64);
}

fn get_inclusion_proof(w: &World, request: GetInclusionProofRequest) {
    let asked = request.clone();
    let answer = match w.block_on(w.tree.get_inclusion_proof(tonic::Request::new(request))) {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            refused(
                &status,
                &[Code::InvalidArgument, Code::NotFound, Code::OutOfRange],
            );
            let size = published(asked.tree_size);
            let provable = match (&asked.leaf, size) {
                (Some(Leaf::Index(i)), Some(size)) => *i < size,
                (Some(Leaf::LeafHash(hash)), Some(size)) => w
                    .leaves
                    .iter()
                    .take(size as usize)
                    .any(|leaf| leaf.as_bytes() == hash.as_slice()),
                _ => false,
            };
            assert!(
                !provable,
                "refused a provable leaf: {status:?} for {asked:?}"
            );
            return;
        }
    };
    let checkpoint = opened(w, answer.checkpoint);
    assert!(
        answers(asked.tree_size, checkpoint.size),
        "asked for size {}, answered {}",
        asked.tree_size,
        checkpoint.size
    );
    assert_eq!(answer.tree_size, checkpoint.size);
    let index = answer.index;
    match asked.leaf {
        Some(Leaf::Index(i)) => assert_eq!(index, i),
        Some(Leaf::LeafHash(hash)) => {
            // The lowest index holding that leaf.
            let first = w
                .leaves
                .iter()
                .position(|leaf| leaf.as_bytes() == hash.as_slice());
            assert_eq!(first, Some(index as usize));
        }
        None => panic!("proved a request naming no leaf"),
    }
    let leaf = w.leaves[index as usize];
    verify_inclusion(
        index,
        checkpoint.size,
        leaf.as_bytes(),
        &answer.inclusion_proof,
        checkpoint.root.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("inclusion proof of {index} does not verify: {e}"));
}

fn get_consistency_proof(w: &World, request: GetConsistencyProofRequest) {
    let asked = request;
    let answer = match w.block_on(w.tree.get_consistency_proof(tonic::Request::new(asked))) {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            refused(&status, &[Code::InvalidArgument, Code::NotFound]);
            let provable = published(asked.second_size).is_some_and(|s| asked.first_size <= s);
            assert!(
                !provable,
                "refused a provable pair: {status:?} for {asked:?}"
            );
            return;
        }
    };
    let checkpoint = opened(w, answer.checkpoint);
    assert!(
        answers(asked.second_size, checkpoint.size),
        "asked for size {}, answered {}",
        asked.second_size,
        checkpoint.size
    );
    assert_eq!(answer.second_size, checkpoint.size);
    assert_eq!(answer.first_size, asked.first_size);
    let first = asked.first_size;
    if first == 0 || first == checkpoint.size {
        assert!(answer.consistency_proof.is_empty(), "a proof for nothing");
        return;
    }
    let Some(old_root) = w.root(first) else {
        panic!("proved a first size {first} beyond the log");
    };
    verify_consistency(
        first,
        checkpoint.size,
        &answer.consistency_proof,
        old_root.as_bytes(),
        checkpoint.root.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("consistency {first}..{} fails: {e}", checkpoint.size));
}

/// Checks that entries are the log's own, at their indices.
fn logged(w: &World, entries: &[LogEntry]) {
    for e in entries {
        let logged = usize::try_from(e.index).ok().and_then(|i| w.entries.get(i));
        assert_eq!(logged, Some(&e.entry), "entry {} is not the log's", e.index);
    }
}

fn get_entries(w: &World, request: GetEntriesRequest) {
    let asked = request;
    let answer = match w.block_on(w.tree.get_entries(tonic::Request::new(asked))) {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            refused(&status, &[Code::InvalidArgument, Code::OutOfRange]);
            assert!(
                asked.count == 0 || asked.start >= ENTRIES as u64,
                "refused a readable range: {status:?} for {asked:?}"
            );
            return;
        }
    };
    let entries = answer.entries;
    let most = u64::from(asked.count)
        .min(MAX_ENTRIES)
        .min(ENTRIES as u64 - asked.start);
    assert!(!entries.is_empty() && entries.len() as u64 <= most);
    for (e, index) in entries.iter().zip(asked.start..) {
        assert_eq!(e.index, index, "a gap in the entries");
    }
    logged(w, &entries);
}

fn find_entries(w: &World, request: FindEntriesRequest) {
    let asked = request;
    let answer = match w.block_on(w.tree.find_entries(tonic::Request::new(asked.clone()))) {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            refused(&status, &[Code::InvalidArgument]);
            let token_ok = asked.page_token.is_empty() || asked.page_token.parse::<u64>().is_ok();
            assert!(
                asked.sha256.len() != 32 || !token_ok,
                "refused a valid search: {status:?} for {asked:?}"
            );
            return;
        }
    };
    let from = match asked.page_token.as_str() {
        "" => 0,
        token => token
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("accepted the page token {token:?}")),
    };
    let limit = match asked.page_size {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    } as usize;
    // Every entry naming the digest from `from` on, in index order.
    let all: Vec<u64> = (0..ENTRIES as u64)
        .filter(|&i| i >= from)
        .filter(|&i| {
            evidence_digest(&w.entries[i as usize])
                .as_ref()
                .map(|d| d.as_slice())
                == Some(asked.sha256.as_slice())
        })
        .collect();
    let found: Vec<u64> = answer.entries.iter().map(|e| e.index).collect();
    assert_eq!(
        found,
        all[..all.len().min(limit)],
        "the page is not the entries naming the digest"
    );
    logged(w, &answer.entries);
    for e in &answer.entries {
        assert_eq!(leaf_hash(&e.entry), w.leaves[e.index as usize]);
    }
    let next = &answer.next_page_token;
    if all.len() > limit {
        assert_eq!(next, &all[limit].to_string(), "the next page is lost");
    } else {
        assert!(next.is_empty(), "a next page of nothing: {next:?}");
    }
}
