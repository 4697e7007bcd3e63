//! `EvidenceService` over gRPC: custody of uploaded evidence bytes. A read
//! is recorded in the audit trail before a byte is returned, an erasure
//! before a byte is deleted: nothing happens to evidence that the trail
//! does not show.

use std::collections::BTreeMap;
use std::sync::Arc;

use evault_core::hash::hex;
use evault_core::trail::{EVIDENCE_ERASED, EVIDENCE_READ, format_utc_ms};
use evault_proto::v1::evidence_service_server::{EvidenceService, EvidenceServiceServer};
use evault_proto::v1::{
    EraseEvidenceRequest, EraseEvidenceResponse, Erasure as WireErasure, GetEvidenceRequest,
    GetEvidenceResponse,
};
use evault_storage::{Erasure, EvidenceStore, StoredEvidence};
use evault_tree::{AuditEvent, AuditRecorder};
use serde_json::Value;
use tonic::{Request, Response, Status};
use tower::Layer as _;

use evault_auth::{AuthLayer, AuthService};

use crate::grpc::{caller, now_ms, storage_status};

/// Longest reason for an erasure, in bytes.
pub const MAX_REASON: usize = 1024;

/// The gRPC face of evidence custody.
pub struct EvidenceGrpc<E, A> {
    auth: AuthLayer,
    evidence: Arc<E>,
    audit: Arc<A>,
}

impl<E, A> Clone for EvidenceGrpc<E, A> {
    fn clone(&self) -> Self {
        EvidenceGrpc {
            auth: self.auth.clone(),
            evidence: Arc::clone(&self.evidence),
            audit: Arc::clone(&self.audit),
        }
    }
}

impl<E: EvidenceStore, A: AuditRecorder> EvidenceGrpc<E, A> {
    /// Custody of the evidence in `evidence` for the callers `auth`
    /// admits, recording every read and erasure with `audit`.
    pub fn new(auth: AuthLayer, evidence: E, audit: Arc<A>) -> Self {
        EvidenceGrpc {
            auth,
            evidence: Arc::new(evidence),
            audit,
        }
    }

    /// The tonic service behind authentication; an answer may carry
    /// evidence as large as an upload may be.
    pub fn into_service(self) -> AuthService<EvidenceServiceServer<Self>> {
        let auth = self.auth.clone();
        auth.layer(
            EvidenceServiceServer::new(self)
                .max_encoding_message_size(evault_proto::transport::MAX_ANSWER)
                .max_decoding_message_size(MAX_REASON + 1024),
        )
    }

    async fn audited(&self, event: AuditEvent, what: &str) -> Result<(), Status> {
        self.audit.record(vec![event]).await.map_err(|e| {
            Status::unavailable(format!("{what}: it could not be recorded first ({e})"))
        })
    }
}

fn digest(bytes: &[u8]) -> Result<[u8; 32], Status> {
    bytes.try_into().map_err(|_| {
        Status::invalid_argument(format!("sha256 must be 32 bytes, got {}", bytes.len()))
    })
}

fn wire(erasure: &Erasure) -> WireErasure {
    WireErasure {
        erased_at: format_utc_ms(erasure.erased_at_ms),
        erased_by: erasure.erased_by.clone(),
        reason: erasure.reason.clone(),
    }
}

fn not_uploaded(sha256: &[u8; 32]) -> Status {
    Status::not_found(format!(
        "no evidence with SHA-256 {} was uploaded",
        hex(sha256)
    ))
}

fn erased(sha256: &[u8; 32], erasure: &Erasure) -> Status {
    Status::not_found(format!(
        "evidence {} was erased at {} by {}: {}",
        hex(sha256),
        format_utc_ms(erasure.erased_at_ms),
        erasure.erased_by,
        erasure.reason
    ))
}

/// The members of an evidence event: the digest in hex (as `sha256sum`
/// prints it) and the size.
fn evidence_fields(sha256: &[u8; 32], size: usize) -> BTreeMap<String, Value> {
    [
        ("sha256".to_string(), Value::from(hex(sha256))),
        ("size".to_string(), Value::from(size)),
    ]
    .into()
}

#[tonic::async_trait]
impl<E: EvidenceStore, A: AuditRecorder> EvidenceService for EvidenceGrpc<E, A> {
    async fn get_evidence(
        &self,
        request: Request<GetEvidenceRequest>,
    ) -> Result<Response<GetEvidenceResponse>, Status> {
        let principal = caller(&request)?;
        let sha256 = digest(&request.into_inner().sha256)?;
        let content = match self
            .evidence
            .evidence(sha256)
            .await
            .map_err(storage_status)?
        {
            None => return Err(not_uploaded(&sha256)),
            Some(StoredEvidence::Erased(erasure)) => return Err(erased(&sha256, &erasure)),
            Some(StoredEvidence::Content(content)) => content,
        };
        let event = AuditEvent {
            event: EVIDENCE_READ.to_string(),
            principal: Some(principal),
            fields: evidence_fields(&sha256, content.len()),
        };
        self.audited(event, "the evidence is not returned").await?;
        Ok(Response::new(GetEvidenceResponse { content }))
    }

    async fn erase_evidence(
        &self,
        request: Request<EraseEvidenceRequest>,
    ) -> Result<Response<EraseEvidenceResponse>, Status> {
        let principal = caller(&request)?;
        let request = request.into_inner();
        let sha256 = digest(&request.sha256)?;
        let reason = request.reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON {
            return Err(Status::invalid_argument(format!(
                "reason: say why the evidence is erased, in 1 to {MAX_REASON} bytes"
            )));
        }
        let size = match self
            .evidence
            .evidence(sha256)
            .await
            .map_err(storage_status)?
        {
            None => return Err(not_uploaded(&sha256)),
            Some(StoredEvidence::Erased(first)) => {
                return Ok(Response::new(EraseEvidenceResponse {
                    erasure: Some(wire(&first)),
                    already_erased: true,
                }));
            }
            Some(StoredEvidence::Content(content)) => content.len(),
        };
        let mut fields = evidence_fields(&sha256, size);
        fields.insert("reason".to_string(), Value::from(reason));
        let event = AuditEvent {
            event: EVIDENCE_ERASED.to_string(),
            principal: Some(principal.clone()),
            fields,
        };
        self.audited(event, "nothing was erased").await?;
        let erasure = Erasure {
            erased_at_ms: now_ms(),
            erased_by: principal,
            reason: reason.to_string(),
        };
        match self
            .evidence
            .erase_evidence(sha256, &erasure)
            .await
            .map_err(storage_status)?
        {
            // Another erasure came first; it stands.
            Some(first) => Ok(Response::new(EraseEvidenceResponse {
                already_erased: first != erasure,
                erasure: Some(wire(&first)),
            })),
            None => Err(not_uploaded(&sha256)),
        }
    }
}
