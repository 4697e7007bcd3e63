//! `SignerService` requests through the signer's real handlers.
//!
//! Input: one byte choosing the method (its value modulo 3:
//! `SignCheckpoint`, `GetVerifierKeys`, `GetSignedHead`), then the
//! request's protobuf encoding. A malformed request (an empty origin, a
//! missing head, a hash that is not 32 bytes) is `INVALID_ARGUMENT`; a
//! well-formed one is signed or refused (`FAILED_PRECONDITION`, or
//! `NOT_FOUND` for an origin without keys), never a server error. Above
//! all, a signature is only ever given for a head that repeats or provably
//! extends the one the signer recorded last: never a fork or a rollback.

use evault_core::{open_checkpoint, verify_consistency};
use evault_proto::v1::signer_service_server::SignerService;
use evault_proto::v1::{
    GetSignedHeadRequest, GetVerifierKeysRequest, SignCheckpointRequest, TreeHead,
};
use prost::Message as _;
use tonic::Code;

use super::world::{ORIGIN, World, world};

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Some((&which, message)) = data.split_first() else {
        return;
    };
    let w = world();
    match which % 3 {
        0 => {
            if let Ok(request) = SignCheckpointRequest::decode(message) {
                sign_checkpoint(w, request);
            }
        }
        1 => {
            if let Ok(request) = GetVerifierKeysRequest::decode(message) {
                get_verifier_keys(w, request);
            }
        }
        _ => {
            if let Ok(request) = GetSignedHeadRequest::decode(message) {
                let origin = request.origin.clone();
                let head = signed_head(w, request);
                if origin == ORIGIN {
                    assert!(head.is_some(), "the signer forgot the head it signed");
                }
            }
        }
    }
}

/// The origins the signer holds keys for, with their verifier keys.
fn key_of<'w>(w: &'w World, origin: &str) -> Option<&'w evault_core::VerifierKey> {
    w.keys.iter().find(|k| k.name() == origin)
}

/// What the signer says it signed last for `request.origin`, checked.
fn signed_head(w: &World, request: GetSignedHeadRequest) -> Option<TreeHead> {
    let origin = request.origin.clone();
    let answer = match w.block_on(w.signer.get_signed_head(tonic::Request::new(request))) {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            let expected = if origin.is_empty() {
                Code::InvalidArgument
            } else {
                Code::NotFound
            };
            assert_eq!(status.code(), expected, "{status:?}");
            assert!(key_of(w, &origin).is_none(), "{status:?} for {origin:?}");
            return None;
        }
    };
    let Some(key) = key_of(w, &origin) else {
        panic!("a signed head for {origin:?}, which has no key");
    };
    let head = answer.head?;
    let signed = open_checkpoint(&answer.checkpoint, std::slice::from_ref(key), Some(&origin))
        .unwrap_or_else(|e| panic!("the signed head's checkpoint does not open: {e}"))
        .checkpoint;
    assert_eq!(signed.size, head.size);
    assert_eq!(signed.root.as_bytes(), head.root_hash.as_slice());
    Some(head)
}

fn get_verifier_keys(w: &World, request: GetVerifierKeysRequest) {
    let origin = request.origin.clone();
    match w.block_on(w.signer.get_verifier_keys(tonic::Request::new(request))) {
        Ok(answer) => {
            let Some(key) = key_of(w, &origin) else {
                panic!("keys for {origin:?}, which has none");
            };
            assert_eq!(answer.into_inner().verifier_keys, [key.to_string()]);
        }
        Err(status) => {
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
            assert!(key_of(w, &origin).is_none(), "{status:?} for {origin:?}");
        }
    }
}

/// Whether a wire head is well formed.
fn head_ok(head: &Option<TreeHead>) -> bool {
    head.as_ref().is_some_and(|h| h.root_hash.len() == 32)
}

fn sign_checkpoint(w: &World, request: SignCheckpointRequest) {
    let sent = request.clone();
    let well_formed = !sent.origin.is_empty()
        && head_ok(&sent.old_head)
        && head_ok(&sent.new_head)
        && sent.consistency_proof.iter().all(|h| h.len() == 32);
    let before = signed_head(
        w,
        GetSignedHeadRequest {
            origin: sent.origin.clone(),
        },
    );
    let answer = match w.block_on(w.signer.sign_checkpoint(tonic::Request::new(request))) {
        Ok(answer) => answer.into_inner(),
        Err(status) => {
            let expected: &[Code] = if !well_formed {
                &[Code::InvalidArgument]
            } else if key_of(w, &sent.origin).is_none() {
                &[Code::NotFound]
            } else {
                &[Code::FailedPrecondition]
            };
            assert!(expected.contains(&status.code()), "{status:?} for {sent:?}");
            return;
        }
    };
    assert!(well_formed, "signed a malformed request: {sent:?}");
    let (Some(key), Some(new)) = (key_of(w, &sent.origin), &sent.new_head) else {
        panic!("signed for {:?}, which has no key", sent.origin);
    };
    let signed = open_checkpoint(
        &answer.checkpoint,
        std::slice::from_ref(key),
        Some(&sent.origin),
    )
    .unwrap_or_else(|e| panic!("the signature does not open: {e}"))
    .checkpoint;
    assert_eq!(signed.size, new.size, "signed another size");
    assert_eq!(
        signed.root.as_bytes(),
        new.root_hash.as_slice(),
        "signed another root"
    );
    // What the signer had signed before must be what this head extends.
    match &before {
        None => {}
        // Every tree extends the empty one.
        Some(last) if last == new || last.size == 0 => {}
        Some(last) => {
            verify_consistency(
                last.size,
                new.size,
                &sent.consistency_proof,
                &last.root_hash,
                &new.root_hash,
            )
            .unwrap_or_else(|e| panic!("signed {new:?}, which does not extend {last:?}: {e}"));
        }
    }
    let after = signed_head(
        w,
        GetSignedHeadRequest {
            origin: sent.origin.clone(),
        },
    );
    assert_eq!(
        after.as_ref(),
        Some(new),
        "the signer did not record what it signed"
    );
}
