//! `SignerService` over gRPC: conversion at the edge, field-precise
//! `INVALID_ARGUMENT`, and one exhaustive map from errors to statuses.

use std::future::Future;
use std::sync::Arc;

use evault_core::Hash;
use evault_proto::guard::GuardedIncoming;
use evault_proto::tls::ServerTls;
use evault_proto::v1::signer_service_server::{SignerService, SignerServiceServer};
use evault_proto::v1::{
    GetSignedHeadRequest, GetSignedHeadResponse, GetVerifierKeysRequest, GetVerifierKeysResponse,
    SignCheckpointRequest, SignCheckpointResponse, TreeHead as WireHead,
};
use evault_storage::{SignerStore, StorageError, TreeHead};
use tonic::{Request, Response, Status};

use crate::sign::{CheckpointSigner, SignError, SignRequest};

/// The gRPC face of a [`CheckpointSigner`].
pub struct SignerGrpc<S> {
    signer: Arc<CheckpointSigner<S>>,
}

impl<S> SignerGrpc<S> {
    /// Serves `signer`.
    pub fn new(signer: CheckpointSigner<S>) -> Self {
        SignerGrpc {
            signer: Arc::new(signer),
        }
    }
}

/// The roles that call the signer, by certificate name: under mutual TLS,
/// only tree, which asks for checkpoints to be signed.
pub const CALLERS: &[&str] = &["tree"];

/// Runs `SignerService` on `incoming` until `shutdown` completes: over TLS
/// and for the callers it admits with `tls`, in plaintext without. The
/// same port serves the process's metrics (`GET /metrics`, over HTTP/1.1
/// too, for scrapers that do not speak HTTP/2).
/// `incoming` is a listener's connections within their limits
/// ([`evault_proto::transport::incoming`]).
pub async fn serve<S: SignerStore>(
    incoming: GuardedIncoming,
    signer: CheckpointSigner<S>,
    tls: Option<ServerTls>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    evault_proto::tls::secure(
        evault_proto::transport::server().accept_http1(true),
        tls.as_ref(),
    )?
    .add_routes(evault_metrics::role_routes())
    .add_service(
        SignerServiceServer::new(SignerGrpc::new(signer))
            .max_decoding_message_size(evault_proto::transport::MAX_MESSAGE),
    )
    .serve_with_incoming_shutdown(incoming, shutdown)
    .await
}

fn head(field: &str, wire: Option<WireHead>) -> Result<TreeHead, Status> {
    let wire = wire.ok_or_else(|| Status::invalid_argument(format!("{field} is required")))?;
    let root = Hash::from_slice(&wire.root_hash).ok_or_else(|| {
        Status::invalid_argument(format!(
            "{field}.root_hash must be 32 bytes, got {}",
            wire.root_hash.len()
        ))
    })?;
    Ok(TreeHead {
        size: wire.size,
        root,
    })
}

fn request(wire: SignCheckpointRequest) -> Result<SignRequest, Status> {
    if wire.origin.is_empty() {
        return Err(Status::invalid_argument("origin is required"));
    }
    let old = head("old_head", wire.old_head)?;
    let new = head("new_head", wire.new_head)?;
    let proof = wire
        .consistency_proof
        .iter()
        .enumerate()
        .map(|(i, h)| {
            Hash::from_slice(h).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "consistency_proof[{i}] must be 32 bytes, got {}",
                    h.len()
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(SignRequest {
        origin: wire.origin,
        old,
        new,
        proof,
    })
}

/// Every signer error has a deliberate status: no catch-all arm.
fn status(error: SignError) -> Status {
    let message = error.to_string();
    match error {
        SignError::UnknownOrigin(_) => Status::not_found(message),
        SignError::StaleHead { .. } | SignError::Rollback { .. } | SignError::Fork { .. } => {
            Status::failed_precondition(message)
        }
        SignError::Raced(_) => Status::aborted(message),
        SignError::Key(_) => Status::unavailable(message),
        SignError::Storage(storage) => match storage {
            StorageError::Unavailable(_) => Status::unavailable(message),
            StorageError::NoSuchLog(_)
            | StorageError::HeadMoved { .. }
            | StorageError::InvalidBatch(_)
            | StorageError::Corrupt(_)
            | StorageError::Conflict(_)
            | StorageError::NotApart(_)
            | StorageError::Erased(_)
            | StorageError::Backend(_) => Status::internal(message),
        },
    }
}

#[tonic::async_trait]
impl<S: SignerStore> SignerService for SignerGrpc<S> {
    async fn sign_checkpoint(
        &self,
        wire: Request<SignCheckpointRequest>,
    ) -> Result<Response<SignCheckpointResponse>, Status> {
        let request = request(wire.into_inner())?;
        let checkpoint = self.signer.sign(&request).await.map_err(status)?;
        Ok(Response::new(SignCheckpointResponse { checkpoint }))
    }

    async fn get_verifier_keys(
        &self,
        wire: Request<GetVerifierKeysRequest>,
    ) -> Result<Response<GetVerifierKeysResponse>, Status> {
        let origin = wire.into_inner().origin;
        let verifier_keys = self.signer.verifier_keys_for(&origin).map_err(status)?;
        Ok(Response::new(GetVerifierKeysResponse { verifier_keys }))
    }

    async fn get_signed_head(
        &self,
        wire: Request<GetSignedHeadRequest>,
    ) -> Result<Response<GetSignedHeadResponse>, Status> {
        let origin = wire.into_inner().origin;
        if origin.is_empty() {
            return Err(Status::invalid_argument("origin is required"));
        }
        let latest = self.signer.latest(&origin).await.map_err(status)?;
        Ok(Response::new(match latest {
            Some(signed) => GetSignedHeadResponse {
                head: Some(WireHead {
                    size: signed.head.size,
                    root_hash: signed.head.root.as_bytes().to_vec(),
                }),
                checkpoint: signed.checkpoint,
            },
            None => GetSignedHeadResponse::default(),
        }))
    }
}
