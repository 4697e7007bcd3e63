//! Forwarding `IngestService`, `EvidenceService` and `TreeService` to the
//! ingest and tree roles, when they run as processes of their own. The caller's
//! credentials travel with each call; the gateway decides nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use evault_proto::failover::Failover;
use evault_proto::telemetry::{Traced, traced};
use evault_proto::v1::evidence_service_client::EvidenceServiceClient;
use evault_proto::v1::evidence_service_server::EvidenceService;
use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::ingest_service_server::IngestService;
use evault_proto::v1::tree_service_client::TreeServiceClient;
use evault_proto::v1::tree_service_server::TreeService;
use evault_proto::v1::{
    AppendRequest, AppendResponse, AppendStreamRequest, AppendStreamResponse, EraseEvidenceRequest,
    EraseEvidenceResponse, FindEntriesRequest, FindEntriesResponse, GetCheckpointRequest,
    GetCheckpointResponse, GetConsistencyProofRequest, GetConsistencyProofResponse,
    GetEntriesRequest, GetEntriesResponse, GetEvidenceRequest, GetEvidenceResponse,
    GetInclusionProofRequest, GetInclusionProofResponse, TreeServiceGetVerifierKeysRequest,
    TreeServiceGetVerifierKeysResponse,
};
use tokio_stream::{Stream, StreamExt as _};
use tonic::metadata::MetadataMap;
use tonic::transport::ClientTlsConfig;
use tonic::{Request, Response, Status, Streaming};

use evault_proto::transport::{MAX_ANSWER, MAX_MESSAGE, within};

/// A lazily connected channel to `role` at `endpoint`, its calls carrying
/// the gateway's trace context.
fn channel(endpoint: &str, role: &str, tls: Option<&ClientTlsConfig>) -> Result<Traced, String> {
    Ok(traced(
        evault_proto::tls::endpoint(endpoint, tls)
            .map_err(|e| format!("{role} address {e}"))?
            .connect_lazy(),
    ))
}

/// A request carrying `message` and the caller's credentials.
fn forward<T>(metadata: &MetadataMap, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(auth) = metadata.get("authorization") {
        request.metadata_mut().insert("authorization", auth.clone());
    }
    request
}

/// `IngestService`, answered by a remote ingest.
#[derive(Clone)]
pub struct IngestProxy {
    client: IngestServiceClient<Traced>,
}

impl IngestProxy {
    /// Forwards to the ingest at `endpoint`, connected lazily: an
    /// `https://` address under mutual TLS with `tls`, `http://` without.
    pub fn new(endpoint: &str, tls: Option<&ClientTlsConfig>) -> Result<Self, String> {
        Ok(IngestProxy {
            client: IngestServiceClient::new(channel(endpoint, "ingest", tls)?)
                .max_decoding_message_size(MAX_ANSWER)
                .max_encoding_message_size(MAX_MESSAGE),
        })
    }
}

/// `EvidenceService`, answered by a remote ingest, which keeps the
/// evidence and records each read and erasure.
#[derive(Clone)]
pub struct EvidenceProxy {
    client: EvidenceServiceClient<Traced>,
}

impl EvidenceProxy {
    /// Forwards to the ingest at `endpoint`, as [`IngestProxy::new`].
    pub fn new(endpoint: &str, tls: Option<&ClientTlsConfig>) -> Result<Self, String> {
        Ok(EvidenceProxy {
            client: EvidenceServiceClient::new(channel(endpoint, "ingest", tls)?)
                .max_decoding_message_size(MAX_ANSWER)
                .max_encoding_message_size(MAX_MESSAGE),
        })
    }
}

#[tonic::async_trait]
impl EvidenceService for EvidenceProxy {
    async fn get_evidence(
        &self,
        request: Request<GetEvidenceRequest>,
    ) -> Result<Response<GetEvidenceResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        within(
            "ingest",
            self.client
                .clone()
                .get_evidence(forward(&metadata, message)),
        )
        .await
    }

    async fn erase_evidence(
        &self,
        request: Request<EraseEvidenceRequest>,
    ) -> Result<Response<EraseEvidenceResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        within(
            "ingest",
            self.client
                .clone()
                .erase_evidence(forward(&metadata, message)),
        )
        .await
    }
}

type AppendStream = Pin<Box<dyn Stream<Item = Result<AppendStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for IngestProxy {
    async fn append(
        &self,
        request: Request<AppendRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        within(
            "ingest",
            self.client.clone().append(forward(&metadata, message)),
        )
        .await
    }

    type AppendStreamStream = AppendStream;

    async fn append_stream(
        &self,
        request: Request<Streaming<AppendStreamRequest>>,
    ) -> Result<Response<AppendStream>, Status> {
        let (metadata, _, inbound) = request.into_parts();
        // A broken inbound stream ends the forwarded one; ingest then
        // answers what it received.
        let outbound = inbound.map_while(Result::ok);
        let responses = within(
            "ingest",
            self.client
                .clone()
                .append_stream(forward(&metadata, outbound)),
        )
        .await
        .map_err(evault_proto::transport::stream_end)?
        .into_inner()
        // Ingest lost mid-stream (restarted, killed): the caller is
        // told to retry, which is safe since appends are idempotent.
        .map(|response| response.map_err(evault_proto::transport::stream_end));
        Ok(Response::new(Box::pin(responses)))
    }
}

/// `TreeService`, answered by remote trees: reads go to the tree that
/// answered last, and to the next when it is unavailable (any tree, the
/// active one or a standby, serves reads).
#[derive(Clone)]
pub struct TreeProxy {
    trees: Arc<Failover<TreeServiceClient<Traced>>>,
}

impl TreeProxy {
    /// Forwards to the trees at `endpoints`, connected lazily.
    pub fn new(endpoints: &[String], tls: Option<&ClientTlsConfig>) -> Result<Self, String> {
        let trees = Failover::connect_lazy(endpoints, "tree", tls, |channel| {
            TreeServiceClient::new(channel).max_decoding_message_size(MAX_ANSWER)
        })?;
        Ok(TreeProxy {
            trees: Arc::new(trees),
        })
    }

    /// One round over the trees: a read waits for no failover, since any
    /// tree serves it.
    async fn call<M, T, F, Fut>(&self, request: Request<M>, call: F) -> Result<Response<T>, Status>
    where
        M: Clone,
        F: Fn(TreeServiceClient<Traced>, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let (metadata, _, message) = request.into_parts();
        self.trees
            .call(std::time::Duration::ZERO, |tree| {
                call(tree, forward(&metadata, message.clone()))
            })
            .await
    }
}

#[tonic::async_trait]
impl TreeService for TreeProxy {
    async fn get_checkpoint(
        &self,
        request: Request<GetCheckpointRequest>,
    ) -> Result<Response<GetCheckpointResponse>, Status> {
        self.call(request, |mut c, r| async move { c.get_checkpoint(r).await })
            .await
    }

    async fn get_verifier_keys(
        &self,
        request: Request<TreeServiceGetVerifierKeysRequest>,
    ) -> Result<Response<TreeServiceGetVerifierKeysResponse>, Status> {
        self.call(
            request,
            |mut c, r| async move { c.get_verifier_keys(r).await },
        )
        .await
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<GetInclusionProofRequest>,
    ) -> Result<Response<GetInclusionProofResponse>, Status> {
        self.call(
            request,
            |mut c, r| async move { c.get_inclusion_proof(r).await },
        )
        .await
    }

    async fn get_consistency_proof(
        &self,
        request: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<GetConsistencyProofResponse>, Status> {
        self.call(request, |mut c, r| async move {
            c.get_consistency_proof(r).await
        })
        .await
    }

    async fn get_entries(
        &self,
        request: Request<GetEntriesRequest>,
    ) -> Result<Response<GetEntriesResponse>, Status> {
        self.call(request, |mut c, r| async move { c.get_entries(r).await })
            .await
    }

    async fn find_entries(
        &self,
        request: Request<FindEntriesRequest>,
    ) -> Result<Response<FindEntriesResponse>, Status> {
        self.call(request, |mut c, r| async move { c.find_entries(r).await })
            .await
    }
}
