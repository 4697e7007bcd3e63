//! Publication: getting a checkpoint signed, by the signer in this process
//! or by a remote one over gRPC.

use std::future::Future;

use evault_proto::v1::signer_service_client::SignerServiceClient;
use evault_proto::v1::{SignCheckpointRequest, TreeHead as WireHead};
use evault_signer::{CheckpointSigner, SignError, SignRequest};
use evault_storage::SignerStore;
use tonic::Code;
use tonic::transport::{Channel, ClientTlsConfig};

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
}

impl<S: SignerStore> Publisher for CheckpointSigner<S> {
    async fn sign(&self, request: SignRequest) -> Result<Vec<u8>, PublishError> {
        CheckpointSigner::sign(self, &request).await.map_err(|e| {
            let message = e.to_string();
            match e {
                SignError::UnknownOrigin(_)
                | SignError::StaleHead { .. }
                | SignError::Rollback { .. }
                | SignError::Fork { .. } => PublishError::Refused(message),
                SignError::Raced(_) | SignError::Storage(_) => PublishError::Unavailable(message),
            }
        })
    }
}

/// A signer reached over gRPC.
#[derive(Clone)]
pub struct RemoteSigner {
    client: SignerServiceClient<Channel>,
}

impl RemoteSigner {
    /// A signer at `endpoint`, connected lazily: `https://signer:7403`
    /// under mutual TLS with `tls`, `http://signer:7403` without.
    pub fn new(endpoint: &str, tls: Option<&ClientTlsConfig>) -> Result<Self, String> {
        let channel = evault_proto::tls::endpoint(endpoint, tls)
            .map_err(|e| format!("signer address {e}"))?
            .connect_lazy();
        Ok(RemoteSigner {
            client: SignerServiceClient::new(channel),
        })
    }
}

fn wire(head: evault_storage::TreeHead) -> Option<WireHead> {
    Some(WireHead {
        size: head.size,
        root_hash: head.root.as_bytes().to_vec(),
    })
}

impl Publisher for RemoteSigner {
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
        match client.sign_checkpoint(wire_request).await {
            Ok(response) => Ok(response.into_inner().checkpoint),
            Err(status) => {
                let message = format!("{:?}: {}", status.code(), status.message());
                match status.code() {
                    Code::FailedPrecondition | Code::NotFound | Code::InvalidArgument => {
                        Err(PublishError::Refused(message))
                    }
                    _ => Err(PublishError::Unavailable(message)),
                }
            }
        }
    }
}
