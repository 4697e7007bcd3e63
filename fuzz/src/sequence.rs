//! `SequencerService.Sequence` requests through the tree's real handler, on
//! the active sequencer of a log whose contents are known
//! ([`super::world`]).
//!
//! Input: the `SequenceRequest`'s protobuf encoding. A batch is refused
//! with `NOT_FOUND` (another origin) or `INVALID_ARGUMENT` (naming the
//! entry), never a server error. One is accepted only if every entry is a
//! canonical evidence entry sent with its own dedup key; each answer then
//! carries an entry with that key, proven in the checkpoint answered. The
//! fuzzer cannot make a dedup key match a new entry, so what it gets
//! logged are repeats of the log's entries, answered with the originals.

use evault_core::{EvidenceEntry, leaf_hash, open_checkpoint, verify_inclusion};
use evault_proto::v1::SequenceRequest;
use evault_proto::v1::sequencer_service_server::SequencerService;
use prost::Message as _;
use tonic::Code;

use super::world::{ORIGIN, world};

/// Most entries in one batch.
const MAX_BATCH: usize = 4096;

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Ok(request) = SequenceRequest::decode(data) else {
        return;
    };
    let w = world();
    let sent = request.clone();
    // Whether each entry is one the tree must take: canonical, with its key.
    let acceptable = sent.origin == ORIGIN
        && (1..=MAX_BATCH).contains(&sent.entries.len())
        && sent.entries.iter().all(|e| {
            EvidenceEntry::decode(&e.entry)
                .and_then(|entry| entry.dedup_key())
                .is_ok_and(|key| key.as_slice() == e.dedup_key.as_slice())
        });
    let answer = match w.block_on(w.tree.sequence(tonic::Request::new(request))) {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            let expected = if sent.origin == ORIGIN {
                Code::InvalidArgument
            } else {
                Code::NotFound
            };
            assert_eq!(status.code(), expected, "{status:?}");
            assert!(!acceptable, "refused a well-formed batch: {status:?}");
            return;
        }
    };
    assert!(acceptable, "accepted a malformed batch: {sent:?}");
    let checkpoint = open_checkpoint(&answer.checkpoint, &w.keys[..1], Some(ORIGIN))
        .unwrap_or_else(|e| panic!("the tree answered a checkpoint it did not sign: {e}"))
        .checkpoint;
    assert_eq!(
        answer.entries.len(),
        sent.entries.len(),
        "one answer per entry"
    );
    for (answered, sent) in answer.entries.iter().zip(&sent.entries) {
        let entry = EvidenceEntry::decode(&answered.entry)
            .unwrap_or_else(|e| panic!("answered a non-canonical entry: {e}"));
        assert_eq!(
            entry.dedup_key().ok().as_ref().map(|k| k.as_slice()),
            Some(sent.dedup_key.as_slice()),
            "answered another statement's entry"
        );
        verify_inclusion(
            answered.index,
            checkpoint.size,
            leaf_hash(&answered.entry).as_bytes(),
            &answered.inclusion_proof,
            checkpoint.root.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("entry {} is not proven: {e}", answered.index));
    }
}
