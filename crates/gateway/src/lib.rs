//! The vault's **gateway** role: the public edge, on one port.
//!
//! - native gRPC for `IngestService`, `EvidenceService` and `TreeService`:
//!   served in process by `evault up`, or forwarded to the ingest and tree
//!   roles ([`IngestProxy`], [`EvidenceProxy`], [`TreeProxy`]) by `evault
//!   serve gateway`;
//! - the C2SP tlog-tiles HTTP read API ([`TileApi`]): `/checkpoint`
//!   (`no-cache`), `/tile/<L>/<N>[.p/<W>]` and `/tile/entries/<N>[.p/<W>]`
//!   (cacheable forever), only within the latest published checkpoint;
//! - `/verifier-keys` ([`verifier_keys_routes`]): the keys signing the
//!   log's checkpoints now, one verifier key per line;
//! - the audit trail under `/audit/` ([`audit_routes`]): the same tile
//!   API for the trail's origin (`<origin>/audit`), and its verifier keys;
//! - gRPC health (`grpc.health.v1.Health`); with the tree in process
//!   ([`serve_reporting`]), `IngestService` is `NOT_SERVING` while the
//!   tree refuses to sequence;
//! - gRPC-web (`application/grpc-web+proto`, `application/grpc-web-text`,
//!   over HTTP/1.1 or HTTP/2) for every gRPC service above, so browsers
//!   call the same API; CORS only for the origins named ([`Cors`]);
//! - gRPC server reflection (v1 and v1alpha) for the public services;
//! - the process's Prometheus metrics at `/metrics` (`evault_metrics`),
//!   outside the callers' authentication: operational data, not the log's,
//!   for the deployment to keep from the public (`docs/metrics.md`);
//! - the web UI at `/` ([`ui_routes`]), built from `web/` and embedded,
//!   every response with a strict Content-Security-Policy.
//!
//! The gateway reads the log's storage for tiles but never writes to it,
//! and holds no key.

mod cors;
mod keys;
mod proxy;
mod tiles;
mod trail;
mod ui;

use std::future::Future;

use evault_proto::guard::GuardedIncoming;
use evault_proto::inflight::RequestBytesLimit;
use evault_proto::tls::PublicTls;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use cors::Cors;
pub use keys::verifier_keys_routes;
pub use proxy::{EvidenceProxy, IngestProxy, TreeProxy};
pub use tiles::TileApi;
pub use trail::audit_routes;
pub use ui::{CONTENT_SECURITY_POLICY, ui_embedded, ui_routes};

/// The public services, reported healthy while the gateway serves.
const SERVICES: [&str; 3] = evault_proto::PUBLIC_SERVICES;

/// The service whose health follows whether appends can be sequenced.
const APPENDS: &str = "evault.v1.IngestService";

/// Serves `grpc` (the public services), gRPC health and the HTTP routes
/// `http` on `incoming`, until `shutdown` completes: HTTP/1.1 and HTTP/2 on
/// one port, with the vault's transport settings (`TCP_NODELAY`, windows
/// sized to h2's data-frame budget) like every other role. Over TLS with
/// `tls` ([`RoleTls::public_server`](evault_proto::tls::RoleTls::public_server)):
/// HTTP/1.1 and HTTP/2 still, and no client certificate asked for. The
/// request bytes it holds stay within
/// the [`RequestBytesLimit`] of `incoming`'s limits.
/// `incoming` is a listener's connections within their limits
/// ([`evault_proto::transport::incoming`]).
pub async fn serve(
    incoming: GuardedIncoming,
    grpc: tonic::service::Routes,
    http: axum::Router,
    tls: Option<PublicTls>,
    cors: Cors,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // Whether a forwarded append can succeed is the tree's to report, on
    // its own health.
    let (_always, appending) = watch::channel(true);
    serve_reporting(incoming, grpc, http, tls, cors, appending, shutdown).await
}

/// [`serve`], with `IngestService` reported `NOT_SERVING` on gRPC health
/// while `appending` is false: `evault up` passes its in-process tree's
/// `Sequencer::sequencing`, false while the log's storage does not hold
/// what the signer signed and appends are refused.
pub async fn serve_reporting(
    incoming: GuardedIncoming,
    grpc: tonic::service::Routes,
    http: axum::Router,
    tls: Option<PublicTls>,
    cors: Cors,
    mut appending: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for service in SERVICES {
        reporter
            .set_service_status(service, ServingStatus::Serving)
            .await;
    }
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    // Said before the first call is served, then followed.
    let now = *appending.borrow_and_update();
    report_appends(&reporter, now).await;
    let follow = follow_appends(reporter, appending);
    let router = grpc
        .add_service(health)
        .add_service(reflection_v1())
        .add_service(reflection_v1alpha())
        .into_axum_router()
        // gRPC-web is translated to gRPC before anything else sees the
        // call (the auth layer, the services), and back on the way out.
        // On the gRPC routes only: tonic-web answers every other HTTP/1.1
        // request 400 (the tiles, the UI, the metrics).
        .layer(tonic_web::GrpcWebLayer::new())
        .merge(http)
        .merge(evault_metrics::routes())
        .merge(ui_routes())
        .fallback(unrouted)
        .layer(axum::middleware::map_response(with_browser_headers));
    // CORS answers preflights and marks answers for other origins outside
    // the translation, so a refused preflight never reaches a service.
    let router = match cors.layer() {
        Some(cors) => router.layer(cors),
        None => router,
    };
    let server = evault_proto::transport::server()
        .layer(RequestBytesLimit::new(incoming.limits().max_request_bytes))
        .accept_http1(true)
        .add_routes(tonic::service::Routes::from(router));
    // TLS is terminated before the server sees a connection, not by tonic,
    // whose TLS would offer HTTP/2 alone.
    let served = async move {
        match tls {
            Some(tls) => {
                server
                    .serve_with_incoming_shutdown(tls.incoming(incoming), shutdown)
                    .await
            }
            None => {
                server
                    .serve_with_incoming_shutdown(incoming, shutdown)
                    .await
            }
        }
    };
    tokio::select! {
        result = served => result,
        () = follow => Ok(()),
    }
}

/// The gRPC reflection service (v1), describing the public services and
/// health.
fn reflection_v1() -> tonic_reflection::server::v1::ServerReflectionServer<
    impl tonic_reflection::server::v1::ServerReflection,
> {
    reflection()
        .build_v1()
        .expect("the public descriptors are well formed")
}

/// The same, for clients that still speak v1alpha (older grpcurl).
fn reflection_v1alpha() -> tonic_reflection::server::v1alpha::ServerReflectionServer<
    impl tonic_reflection::server::v1alpha::ServerReflection,
> {
    reflection()
        .build_v1alpha()
        .expect("the public descriptors are well formed")
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(evault_proto::PUBLIC_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health");
    for service in SERVICES {
        builder = builder.with_service_name(service);
    }
    builder
}

async fn with_browser_headers(mut response: axum::response::Response) -> axum::response::Response {
    ui::browser_headers(response.headers_mut());
    response
}

/// Keeps `reporter` saying whether appends are taken
/// (`evault.v1.IngestService` `SERVING` while `appending`, `NOT_SERVING`
/// otherwise): at once, then at each change, for as long as it runs.
pub async fn follow_appends(reporter: HealthReporter, mut appending: watch::Receiver<bool>) {
    loop {
        let now = *appending.borrow_and_update();
        report_appends(&reporter, now).await;
        if appending.changed().await.is_err() {
            // Nothing will change any more: the last word stands.
            return std::future::pending().await;
        }
    }
}

async fn report_appends(reporter: &HealthReporter, appending: bool) {
    let status = if appending {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    reporter.set_service_status(APPENDS, status).await;
}

/// The answer to a request no route takes. A gRPC call to a service not
/// served here is `UNIMPLEMENTED`, as gRPC clients expect; anything else
/// is HTTP's 404. tonic would answer both with its gRPC `UNIMPLEMENTED`,
/// a 200 with an empty body that an HTTP cache in front would keep.
async fn unrouted(request: axum::extract::Request) -> axum::response::Response {
    let grpc = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc"));
    if grpc {
        tonic::Status::unimplemented("").into_http()
    } else {
        use axum::response::IntoResponse as _;
        (axum::http::StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}
