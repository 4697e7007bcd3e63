//! `IngestService.Append` and `AppendStream` requests through
//! `evault_ingest::statement::accept`, the conversion both handlers make
//! from the wire statement to the entry the log records.
//!
//! Input: one byte choosing the message (even: `AppendRequest`, odd:
//! `AppendStreamRequest`), then its protobuf encoding. A refusal must be
//! `INVALID_ARGUMENT` naming a field of the statement; an accepted
//! statement must become a valid, canonical entry that says what the
//! statement said, stamped with the caller and the time received, and
//! whose dedup key ignores that time.

use evault_core::EvidenceEntry;
use evault_core::hash::sha256;
use evault_ingest::statement::accept;
use evault_proto::v1::{AppendRequest, AppendStreamRequest, EvidenceStatement};
use prost::Message as _;
use tonic::Code;

use super::world::PRINCIPAL;

/// The time every statement is received at, in ms since the epoch.
const RECEIVED_MS: u64 = 1_750_000_000_000;

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Some((&which, message)) = data.split_first() else {
        return;
    };
    let statement = if which % 2 == 0 {
        match AppendRequest::decode(message) {
            Ok(request) => request.statement,
            Err(_) => return,
        }
    } else {
        match AppendStreamRequest::decode(message) {
            Ok(request) => request.statement,
            Err(_) => return,
        }
    };
    check(statement);
}

fn check(statement: Option<EvidenceStatement>) {
    let sent = statement.clone();
    let accepted = match accept("statement", statement, PRINCIPAL, RECEIVED_MS) {
        Ok(accepted) => accepted,
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(
                status.message().starts_with("statement"),
                "refusal names no field: {status:?}"
            );
            return;
        }
    };
    let Some(sent) = sent else {
        panic!("accepted a request without a statement");
    };
    let entry = &accepted.entry;
    assert_eq!(entry.validate(), Ok(()), "accepted an invalid entry");
    assert_eq!(entry.encode().as_ref(), Ok(&accepted.bytes));
    assert_eq!(
        EvidenceEntry::decode(&accepted.bytes).as_ref(),
        Ok(entry),
        "the entry does not decode back"
    );
    assert_eq!(entry.digest.as_slice(), sent.sha256.as_slice());
    assert_eq!(entry.size, sent.size);
    assert_eq!(entry.media_type, sent.media_type);
    assert_eq!(entry.name.as_deref().unwrap_or(""), sent.name);
    assert_eq!(entry.principal, PRINCIPAL);
    assert_eq!(entry.received_ms, RECEIVED_MS);
    assert_eq!(
        entry.labels.len(),
        sent.labels.len(),
        "labels lost or added"
    );
    for label in &sent.labels {
        assert_eq!(entry.labels.get(&label.key), Some(&label.value));
    }
    let retried = accept("statement", Some(sent.clone()), PRINCIPAL, RECEIVED_MS + 1)
        .unwrap_or_else(|status| panic!("a retry was refused: {status:?}"));
    assert_eq!(
        retried.dedup_key, accepted.dedup_key,
        "the time received changed the dedup key"
    );
    assert_eq!(entry.dedup_key().as_ref(), Ok(&accepted.dedup_key));
    match (&accepted.content, &sent.content) {
        (None, None) => {}
        (Some(kept), Some(content)) => {
            assert_eq!(kept, content);
            assert_eq!(kept.len() as u64, entry.size, "content of the wrong size");
            assert_eq!(sha256(kept), entry.digest, "content of another digest");
        }
        (kept, content) => panic!("content {content:?} was kept as {kept:?}"),
    }
}
