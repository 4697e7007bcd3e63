//! Trace context on the wire: W3C `traceparent` (and `tracestate`) in the
//! gRPC metadata of every call between roles, and read from every call a
//! role serves.
//!
//! - Serving, [`ServerTrace`] (in every role's [`crate::transport::server`])
//!   opens a `grpc.server` span for each call to a vault service
//!   (`/evault.…`) and makes the caller's `traceparent`, if any, its
//!   parent. Health checks, reflection, metrics and the tile API get no
//!   span: they are polled, and would bury the appends.
//! - Calling, [`Propagate`] puts the current span's context into the
//!   outgoing metadata; [`traced`] wraps a channel with it, and every
//!   internal client is built on such a channel ([`Traced`]).
//!
//! Both go through OpenTelemetry's global propagator, which is a no-op
//! until the process installs one (the `evault` binary does, only when an
//! OTLP endpoint is configured). With tracing off, a span here is a
//! disabled `tracing` span and nothing is read or written.
//!
//! It does not export anything, choose a sampler or install a subscriber:
//! that is the process's business, not the wire's.

use std::task::{Context, Poll};

use opentelemetry::propagation::{Extractor, Injector};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing::instrument::Instrumented;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The prefix of the paths of the vault's own services, the calls that
/// get a server span.
const VAULT_SERVICES: &str = "/evault.";

/// A tower layer opening a server span for each call to a vault service,
/// child of the caller's `traceparent` when it sent one.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerTrace;

impl<S> Layer<S> for ServerTrace {
    type Service = ServerTraced<S>;

    fn layer(&self, inner: S) -> ServerTraced<S> {
        ServerTraced { inner }
    }
}

/// A service behind a [`ServerTrace`].
#[derive(Debug, Clone)]
pub struct ServerTraced<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for ServerTraced<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let span = server_span(&request);
        self.inner.call(request).instrument(span)
    }
}

/// The span of a call served: `grpc.server`, named in trace viewers by
/// the method (`evault.v1.SequencerService/Sequence`), its parent the
/// caller's trace context. No span for anything but a vault service.
pub fn server_span<B>(request: &http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    if !path.starts_with(VAULT_SERVICES) {
        return tracing::Span::none();
    }
    let name = &path[1..];
    let (service, method) = name.split_once('/').unwrap_or((name, ""));
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
    );
    if !span.is_disabled() {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&Headers(request.headers()))
        });
        // Fails only once the span has started, which it has not.
        let _ = span.set_parent(parent);
    }
    span
}

/// A tonic interceptor that sends the current span's trace context with
/// each call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Propagate;

impl Interceptor for Propagate {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject(request.metadata_mut());
        Ok(request)
    }
}

/// A channel whose calls carry the caller's trace context.
pub type Traced = InterceptedService<Channel, Propagate>;

/// `channel`, its calls carrying the current span's trace context.
pub fn traced(channel: Channel) -> Traced {
    InterceptedService::new(channel, Propagate)
}

/// Writes the current span's trace context into `metadata`, replacing any
/// there (a gateway forwards its own context, not its caller's).
pub fn inject(metadata: &mut MetadataMap) {
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut Metadata(metadata));
    });
}

/// Request headers, read as a propagation carrier.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Outgoing gRPC metadata, written as a propagation carrier.
struct Metadata<'a>(&'a mut MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        // A propagator writes only valid header names and values; one
        // that did not would lose its context, not the call.
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_vault_services_get_a_span() {
        let request = |path: &str| {
            http::Request::builder()
                .uri(path)
                .body(())
                .expect("request")
        };
        for path in [
            "/grpc.health.v1.Health/Check",
            "/metrics",
            "/checkpoint",
            "/tile/0/000",
        ] {
            assert!(server_span(&request(path)).is_none(), "{path}");
        }
    }

    #[test]
    fn injected_metadata_is_what_an_extractor_reads() {
        let mut metadata = MetadataMap::new();
        Metadata(&mut metadata).set(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string(),
        );
        let headers = metadata.into_headers();
        assert_eq!(
            Headers(&headers).get("traceparent"),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(Headers(&headers).keys(), ["traceparent"]);
    }
}
