//! The codec every generated server uses: prost's, except that a request
//! whose protobuf does not decode is answered `INVALID_ARGUMENT`.
//!
//! prost's codec for tonic calls any decode error `INTERNAL`, which says the
//! server failed and pages whoever watches for it; bytes that are not the
//! message the method takes are the caller's mistake. Clients keep prost's
//! codec (see `build.rs`): a response that does not decode is the server's
//! fault, and `INTERNAL` is right there.
//!
//! Only the protobuf payload is this codec's to judge. Errors in the gRPC
//! framing around it (a message cut short by the end of the stream, an
//! unknown compression flag) are tonic's, and keep tonic's codes.

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// prost's codec with decode errors answered as the caller's mistake.
#[derive(Debug, Clone)]
pub struct RequestCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        RequestCodec(ProstCodec::default())
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

/// Decodes requests with prost, answering bytes that are not the message
/// with `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct RequestDecoder<U>(PhantomData<U>);

impl<U: prost::Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // tonic has read the framing and checked the size already; `buf`
        // holds exactly one message's bytes.
        U::decode(buf)
            .map(Some)
            .map_err(|error| Status::invalid_argument(format!("malformed request: {error}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prost::Message as _;
    use tokio::sync::{Semaphore, mpsc};
    use tonic::codegen::http::uri::PathAndQuery;

    use crate::inflight::RequestBytesLimit;
    use crate::stub::{Raw, Stub, client, serve};
    use crate::v1::{AppendResponse, AppendStreamRequest, AppendStreamResponse};

    /// Field 1 (length-delimited) whose length is a varint cut short.
    const MALFORMED: [u8; 2] = [0x0a, 0xff];

    async fn server() -> String {
        let (entered, _) = mpsc::unbounded_channel();
        let stub = Stub {
            answer: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            entered,
        };
        serve(stub, RequestBytesLimit::default()).await
    }

    fn assert_malformed(status: &tonic::Status) {
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with("malformed request: "),
            "{status:?}"
        );
    }

    #[tokio::test]
    async fn a_unary_request_that_does_not_decode_is_invalid_argument() {
        let mut grpc = client(&server().await).await;
        let status = grpc
            .unary(
                tonic::Request::new(MALFORMED.to_vec()),
                PathAndQuery::from_static("/evault.v1.IngestService/Append"),
                Raw::<AppendResponse>::default(),
            )
            .await
            .expect_err("refused");
        assert_malformed(&status);
    }

    #[tokio::test]
    async fn a_streamed_message_that_does_not_decode_is_invalid_argument() {
        let mut grpc = client(&server().await).await;
        let good = AppendStreamRequest {
            request_id: 7,
            statement: None,
        }
        .encode_to_vec();
        let mut answers = grpc
            .streaming(
                tonic::Request::new(tokio_stream::iter([good, MALFORMED.to_vec()])),
                PathAndQuery::from_static("/evault.v1.IngestService/AppendStream"),
                Raw::<AppendStreamResponse>::default(),
            )
            .await
            .expect("stream")
            .into_inner();
        let first = answers.message().await.expect("answer").expect("one");
        assert_eq!(first.request_id, 7);
        assert_malformed(&answers.message().await.expect_err("refused"));
    }
}
