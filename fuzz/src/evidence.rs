//! `EvidenceService` requests through ingest's real handlers, made by an
//! authenticated principal.
//!
//! Input: one byte choosing the method (even: `GetEvidence`, odd:
//! `EraseEvidence`), then the request's protobuf encoding. A digest that
//! is not 32 bytes, or an erasure without a reason of 1 to 1024 bytes, is
//! `INVALID_ARGUMENT`; evidence never uploaded (or erased) is `NOT_FOUND`;
//! nothing is a server error. Bytes returned are the ones of the digest
//! asked for, and an erasure keeps who asked for it and why.

use evault_core::hash::sha256;
use evault_proto::v1::evidence_service_server::EvidenceService;
use evault_proto::v1::{EraseEvidenceRequest, GetEvidenceRequest};
use prost::Message as _;
use tonic::Code;

use super::world::{PRINCIPAL, STORED_EVIDENCE, World, world};

/// Longest reason for an erasure, in bytes.
const MAX_REASON: usize = 1024;

/// Runs one input; panics when a property fails.
pub fn run(data: &[u8]) {
    let Some((&which, message)) = data.split_first() else {
        return;
    };
    let w = world();
    if which % 2 == 0 {
        if let Ok(request) = GetEvidenceRequest::decode(message) {
            get_evidence(w, request);
        }
    } else if let Ok(request) = EraseEvidenceRequest::decode(message) {
        erase_evidence(w, request);
    }
}

/// Whether `digest` is that of evidence uploaded (erased or not).
fn uploaded(digest: &[u8]) -> bool {
    STORED_EVIDENCE
        .iter()
        .any(|content| sha256(content).as_slice() == digest)
}

fn get_evidence(w: &World, request: GetEvidenceRequest) {
    let digest = request.sha256.clone();
    match w.block_on(w.evidence.get_evidence(w.request(request))) {
        Ok(answer) => {
            let content = answer.into_inner().content;
            assert_eq!(sha256(&content).as_slice(), digest.as_slice());
        }
        Err(status) => {
            let expected = if digest.len() == 32 {
                Code::NotFound
            } else {
                Code::InvalidArgument
            };
            assert_eq!(status.code(), expected, "{status:?}");
        }
    }
}

fn erase_evidence(w: &World, request: EraseEvidenceRequest) {
    let sent = request.clone();
    let reason = sent.reason.trim();
    let well_formed = sent.sha256.len() == 32 && (1..=MAX_REASON).contains(&reason.len());
    match w.block_on(w.evidence.erase_evidence(w.request(request))) {
        Ok(answer) => {
            assert!(well_formed, "erased on a malformed request: {sent:?}");
            assert!(uploaded(&sent.sha256), "erased evidence never uploaded");
            let answer = answer.into_inner();
            let Some(erasure) = answer.erasure else {
                panic!("an erasure answered without its record");
            };
            assert_eq!(erasure.erased_by, PRINCIPAL);
            assert!(!erasure.reason.is_empty() && erasure.reason.trim() == erasure.reason);
            if !answer.already_erased {
                assert_eq!(erasure.reason, reason, "the reason was not kept as given");
            }
        }
        Err(status) => {
            let expected = if well_formed {
                Code::NotFound
            } else {
                Code::InvalidArgument
            };
            assert_eq!(status.code(), expected, "{status:?}");
            assert!(
                !well_formed || !uploaded(&sent.sha256),
                "refused to erase uploaded evidence: {status:?}"
            );
        }
    }
}
