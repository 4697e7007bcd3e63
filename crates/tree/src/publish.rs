//! Publication: getting a checkpoint signed, by the signer in this process
//! or by a remote one over gRPC; and asking it what it signed last, which
//! tree compares with the log's storage before it sequences.

use std::future::Future;

use evault_core::Hash;
use evault_proto::telemetry::{Traced, traced};
use evault_proto::transport::within;
use evault_proto::v1::signer_service_client::SignerServiceClient;
use evault_proto::v1::{
    GetSignedHeadRequest, GetVerifierKeysRequest, SignCheckpointRequest, TreeHead as WireHead,
};
use evault_signer::{CheckpointSigner, SignError, SignRequest};
use evault_storage::{SignedHead, SignerStore, TreeHead};
use tonic::transport::ClientTlsConfig;
use tonic::{Code, Status};

/// Why a checkpoint was not signed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The signer said no: the head does not extend what it signed. Never
    /// retried blindly; it means a bug or an attack.
    #[error("signer refused: {0}")]
    Refused(String),
    /// The signer could not be reached or failed: the checkpoint may or may
    /// not have been signed and recorded.
    #[error("signer unavailable: {0}")]
    Unavailable(String),
}

/// Whoever signs checkpoints for tree.
pub trait Publisher: Send + Sync + 'static {
    /// Asks for the checkpoint of `request.new`.
    fn sign(
        &self,
        request: SignRequest,
    ) -> impl Future<Output = Result<Vec<u8>, PublishError>> + Send;

    /// The last head the signer signed for `origin`, with the checkpoint it
    /// signed for it, from the signer's own record; `None` if it never
    /// signed for that origin.
    fn latest(
        &self,
        origin: &str,
    ) -> impl Future<Output = Result<Option<SignedHead>, PublishError>> + Send;

    /// The verifier keys of the keys signing `origin`'s checkpoints now, in
    /// signature-line order.
    fn verifier_keys(
        &self,
        origin: &str,
    ) -> impl Future<Output = Result<Vec<String>, PublishError>> + Send;
}

/// One signer shared by a log's sequencer and its audit trail's.
impl<P: Publisher> Publisher for std::sync::Arc<P> {
    async fn sign(&self, request: SignRequest) -> Result<Vec<u8>, PublishError> {
        P::sign(self, request).await
    }

    async fn latest(&self, origin: &str) -> Result<Option<SignedHead>, PublishError> {
        P::latest(self, origin).await
    }

    async fn verifier_keys(&self, origin: &str) -> Result<Vec<String>, PublishError> {
        P::verifier_keys(self, origin).await
    }
}

/// Every signer error has a deliberate meaning for tree: no catch-all arm.
fn publish_error(error: SignError) -> PublishError {
    let message = error.to_string();
    match error {
        SignError::UnknownOrigin(_)
        | SignError::StaleHead { .. }
        | SignError::Rollback { .. }
        | SignError::Fork { .. } => PublishError::Refused(message),
        SignError::Raced(_) | SignError::Storage(_) | SignError::Key(_) => {
            PublishError::Unavailable(message)
        }
    }
}

impl<S: SignerStore> Publisher for CheckpointSigner<S> {
    async fn verifier_keys(&self, origin: &str) -> Result<Vec<String>, PublishError> {
        self.verifier_keys_for(origin).map_err(publish_error)
    }

    async fn sign(&self, request: SignRequest) -> Result<Vec<u8>, PublishError> {
        CheckpointSigner::sign(self, &request)
            .await
            .map_err(publish_error)
    }

    async fn latest(&self, origin: &str) -> Result<Option<SignedHead>, PublishError> {
        CheckpointSigner::latest(self, origin)
            .await
            .map_err(publish_error)
    }
}

/// A signer reached over gRPC.
#[derive(Clone)]
pub struct RemoteSigner {
    client: SignerServiceClient<Traced>,
}

impl RemoteSigner {
    /// A signer at `endpoint`, connected lazily: `https://signer:7403`
    /// under mutual TLS with `tls`, `http://signer:7403` without.
    pub fn new(endpoint: &str, tls: Option<&ClientTlsConfig>) -> Result<Self, String> {
        let channel = evault_proto::tls::endpoint(endpoint, tls)
            .map_err(|e| format!("signer address {e}"))?
            .connect_lazy();
        Ok(RemoteSigner {
            client: SignerServiceClient::new(traced(channel)),
        })
    }
}

fn wire(head: TreeHead) -> Option<WireHead> {
    Some(WireHead {
        size: head.size,
        root_hash: head.root.as_bytes().to_vec(),
    })
}

impl Publisher for RemoteSigner {
    async fn verifier_keys(&self, origin: &str) -> Result<Vec<String>, PublishError> {
        let mut client = self.client.clone();
        let request = GetVerifierKeysRequest {
            origin: origin.to_string(),
        };
        match within("the signer", client.get_verifier_keys(request)).await {
            Ok(response) => Ok(response.into_inner().verifier_keys),
            Err(status) => Err(remote_error(status)),
        }
    }

    async fn sign(&self, request: SignRequest) -> Result<Vec<u8>, PublishError> {
        let mut client = self.client.clone();
        let wire_request = SignCheckpointRequest {
            origin: request.origin,
            old_head: wire(request.old),
            new_head: wire(request.new),
            consistency_proof: request
                .proof
                .iter()
                .map(|h| h.as_bytes().to_vec())
                .collect(),
        };
        match within("the signer", client.sign_checkpoint(wire_request)).await {
            Ok(response) => Ok(response.into_inner().checkpoint),
            Err(status) => Err(remote_error(status)),
        }
    }

    async fn latest(&self, origin: &str) -> Result<Option<SignedHead>, PublishError> {
        let mut client = self.client.clone();
        let request = GetSignedHeadRequest {
            origin: origin.to_string(),
        };
        let response = within("the signer", client.get_signed_head(request))
            .await
            .map_err(remote_error)?
            .into_inner();
        let Some(head) = response.head else {
            return Ok(None);
        };
        let malformed = |what: String| PublishError::Unavailable(format!("the signer sent {what}"));
        let root = Hash::from_slice(&head.root_hash).ok_or_else(|| {
            malformed(format!(
                "a signed head whose root is {} bytes, not 32",
                head.root_hash.len()
            ))
        })?;
        if response.checkpoint.is_empty() {
            return Err(malformed(format!(
                "no checkpoint for its signed head of size {}",
                head.size
            )));
        }
        Ok(Some(SignedHead {
            head: TreeHead {
                size: head.size,
                root,
            },
            checkpoint: response.checkpoint,
        }))
    }
}

/// What a signer's status means for tree: a refusal (its answer will not
/// change by asking again) or a failure (it may have acted; ask again).
fn remote_error(status: Status) -> PublishError {
    let message = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::FailedPrecondition | Code::NotFound | Code::InvalidArgument => {
            PublishError::Refused(message)
        }
        _ => PublishError::Unavailable(message),
    }
}
