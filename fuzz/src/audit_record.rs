//! `AuditService.Record` requests through the tree's real handler.
//!
//! Input: the `RecordRequest`'s protobuf encoding. The tree of
//! [`super::world`] writes no audit trail, so a request that passes every
//! check is answered `UNAVAILABLE` (the caller retries on the tree that
//! writes it); one that fails a check gets `NOT_FOUND` (another origin) or
//! `INVALID_ARGUMENT` naming the event. What the checks are is modelled
//! here from the contract: an event other roles witness, fields that are a
//! JSON object naming none of the members every record has, a record that
//! fits in an entry.

use evault_core::trail::{WITNESSED, is_reserved_member};
use evault_proto::v1::audit_service_server::AuditService;
use evault_proto::v1::{AuditEvent, RecordRequest};
use prost::Message as _;
use tonic::Code;

use super::world::{ORIGIN, world};

/// Most events in one call.
const MAX_EVENTS: usize = 1024;

/// Whether `event` passes the checks whose outcome does not depend on the
/// size of the record it makes.
fn well_formed(event: &AuditEvent) -> bool {
    WITNESSED.contains(&event.event.as_str())
        && match serde_json::from_str::<serde_json::Value>(&event.fields) {
            Ok(serde_json::Value::Object(fields)) => !fields.keys().any(|k| is_reserved_member(k)),
            _ => false,
        }
}

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Ok(request) = RecordRequest::decode(data) else {
        return;
    };
    let w = world();
    let sent = request.clone();
    let status = match w.block_on(w.tree.record(tonic::Request::new(request))) {
        Ok(_) => panic!("a tree writing no trail recorded {sent:?}"),
        Err(status) => status,
    };
    if sent.origin != ORIGIN {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        return;
    }
    let counted = (1..=MAX_EVENTS).contains(&sent.events.len());
    match status.code() {
        Code::Unavailable => {
            assert!(counted, "took {} events", sent.events.len());
            assert!(
                sent.events.iter().all(well_formed),
                "passed a malformed event: {sent:?}"
            );
        }
        Code::InvalidArgument => {
            let message = status.message();
            if !counted {
                assert!(message.starts_with("events:"), "{status:?}");
                return;
            }
            // The event named must be there, and be at fault: malformed, or
            // making a record too large (which only the tree can measure).
            let position = message
                .strip_prefix("events[")
                .and_then(|rest| rest.split_once(']'))
                .and_then(|(n, _)| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("the refusal names no event: {status:?}"));
            let Some(event) = sent.events.get(position) else {
                panic!(
                    "the refusal names event {position} of {}",
                    sent.events.len()
                );
            };
            assert!(
                !well_formed(event) || message.contains("would be over"),
                "refused a well-formed event: {status:?} for {event:?}"
            );
            assert!(
                sent.events[..position].iter().all(well_formed),
                "an earlier event was malformed but {position} is named"
            );
        }
        _ => panic!("not the caller's fault: {status:?}"),
    }
}
