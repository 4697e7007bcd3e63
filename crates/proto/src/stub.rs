//! A real `IngestService` server on port 0 for this crate's tests, with the
//! vault's transport, and a client that sends whatever bytes it is given
//! as messages.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use bytes::BufMut as _;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::{Stream, StreamExt as _};
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstDecoder;

use crate::guard::ConnectionLimits;
use crate::inflight::RequestBytesLimit;
use crate::v1::ingest_service_server::{IngestService, IngestServiceServer};
use crate::v1::{AppendRequest, AppendResponse, AppendStreamRequest, AppendStreamResponse};

/// Answers `Append` once it gets a permit of `answer` (after saying on
/// `entered` that it is waiting), and each message of `AppendStream` at
/// once, ending the stream with the error of a message that failed.
pub(crate) struct Stub {
    pub(crate) answer: Arc<Semaphore>,
    pub(crate) entered: mpsc::UnboundedSender<()>,
}

type Answers = Pin<Box<dyn Stream<Item = Result<AppendStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngestService for Stub {
    async fn append(
        &self,
        _request: Request<AppendRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        let _ = self.entered.send(());
        self.answer
            .acquire()
            .await
            .map_err(|_| Status::unavailable("stopped"))?
            .forget();
        Ok(Response::new(AppendResponse::default()))
    }

    type AppendStreamStream = Answers;

    async fn append_stream(
        &self,
        request: Request<Streaming<AppendStreamRequest>>,
    ) -> Result<Response<Answers>, Status> {
        let answers = request.into_inner().map(|r| {
            r.map(|r| AppendStreamResponse {
                request_id: r.request_id,
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

/// Serves `stub` on port 0 with request bytes bounded by `limit`; its URL.
pub(crate) async fn serve(stub: Stub, limit: RequestBytesLimit) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let incoming = crate::transport::incoming(listener, ConnectionLimits::default());
    tokio::spawn(
        crate::transport::server()
            .layer(limit)
            .add_service(IngestServiceServer::new(stub).max_decoding_message_size(16 << 20))
            .serve_with_incoming(incoming),
    );
    url
}

/// A gRPC client of the server at `url`.
pub(crate) async fn client(url: &str) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = crate::transport::endpoint(url)
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    grpc
}

/// Sends byte strings as they are, as messages; decodes answers of type
/// `U`.
pub(crate) struct Raw<U>(PhantomData<U>);

impl<U> Default for Raw<U> {
    fn default() -> Self {
        Raw(PhantomData)
    }
}

impl<U: prost::Message + Default + Send + 'static> Codec for Raw<U> {
    type Encode = Vec<u8>;
    type Decode = U;
    type Encoder = RawEncoder;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ProstDecoder<U> {
        ProstDecoder::new(BufferSettings::default())
    }
}

pub(crate) struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}
