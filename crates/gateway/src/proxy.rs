//! Forwarding `IngestService` and `TreeService` to the ingest and tree
//! roles, when they run as processes of their own. The caller's
//! credentials travel with each call; the gateway decides nothing.

use std::pin::Pin;

use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::ingest_service_server::IngestService;
use evault_proto::v1::tree_service_client::TreeServiceClient;
use evault_proto::v1::tree_service_server::TreeService;
use evault_proto::v1::{
    AppendRequest, AppendResponse, AppendStreamRequest, AppendStreamResponse, FindEntriesRequest,
    FindEntriesResponse, GetCheckpointRequest, GetCheckpointResponse, GetConsistencyProofRequest,
    GetConsistencyProofResponse, GetEntriesRequest, GetEntriesResponse, GetInclusionProofRequest,
    GetInclusionProofResponse,
};
use tokio_stream::{Stream, StreamExt as _};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// Largest message forwarded: a full page of entries.
const MAX_MESSAGE: usize = 64 << 20;

fn channel(endpoint: &str, role: &str) -> Result<Channel, String> {
    Ok(Channel::from_shared(endpoint.to_string())
        .map_err(|e| format!("{role} address {endpoint:?}: {e}"))?
        .connect_lazy())
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
    client: IngestServiceClient<Channel>,
}

impl IngestProxy {
    /// Forwards to the ingest at `endpoint`, connected lazily.
    pub fn new(endpoint: &str) -> Result<Self, String> {
        Ok(IngestProxy {
            client: IngestServiceClient::new(channel(endpoint, "ingest")?)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        })
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
        self.client
            .clone()
            .append(forward(&metadata, message))
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
        let responses = self
            .client
            .clone()
            .append_stream(forward(&metadata, outbound))
            .await?
            .into_inner();
        Ok(Response::new(Box::pin(responses)))
    }
}

/// `TreeService`, answered by a remote tree.
#[derive(Clone)]
pub struct TreeProxy {
    client: TreeServiceClient<Channel>,
}

impl TreeProxy {
    /// Forwards to the tree at `endpoint`, connected lazily.
    pub fn new(endpoint: &str) -> Result<Self, String> {
        Ok(TreeProxy {
            client: TreeServiceClient::new(channel(endpoint, "tree")?)
                .max_decoding_message_size(MAX_MESSAGE),
        })
    }
}

#[tonic::async_trait]
impl TreeService for TreeProxy {
    async fn get_checkpoint(
        &self,
        request: Request<GetCheckpointRequest>,
    ) -> Result<Response<GetCheckpointResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        self.client
            .clone()
            .get_checkpoint(forward(&metadata, message))
            .await
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<GetInclusionProofRequest>,
    ) -> Result<Response<GetInclusionProofResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        self.client
            .clone()
            .get_inclusion_proof(forward(&metadata, message))
            .await
    }

    async fn get_consistency_proof(
        &self,
        request: Request<GetConsistencyProofRequest>,
    ) -> Result<Response<GetConsistencyProofResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        self.client
            .clone()
            .get_consistency_proof(forward(&metadata, message))
            .await
    }

    async fn get_entries(
        &self,
        request: Request<GetEntriesRequest>,
    ) -> Result<Response<GetEntriesResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        self.client
            .clone()
            .get_entries(forward(&metadata, message))
            .await
    }

    async fn find_entries(
        &self,
        request: Request<FindEntriesRequest>,
    ) -> Result<Response<FindEntriesResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        self.client
            .clone()
            .find_entries(forward(&metadata, message))
            .await
    }
}
