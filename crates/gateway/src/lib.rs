//! The vault's **gateway** role: the public edge, on one port.
//!
//! - native gRPC for `IngestService` and `TreeService`: served in process
//!   by `evault up`, or forwarded to the ingest and tree roles
//!   ([`IngestProxy`], [`TreeProxy`]) by `evault serve gateway`;
//! - the C2SP tlog-tiles HTTP read API ([`TileApi`]): `/checkpoint`
//!   (`no-cache`), `/tile/<L>/<N>[.p/<W>]` and `/tile/entries/<N>[.p/<W>]`
//!   (cacheable forever), only within the latest published checkpoint;
//! - gRPC health (`grpc.health.v1.Health`).
//!
//! The gateway reads the log's storage for tiles but never writes to it,
//! and holds no key.

mod proxy;
mod tiles;

use std::future::Future;

use tokio::net::TcpListener;
use tonic_health::ServingStatus;

pub use proxy::{IngestProxy, TreeProxy};
pub use tiles::TileApi;

/// The public services, reported healthy while the gateway serves.
const SERVICES: [&str; 2] = ["evault.v1.IngestService", "evault.v1.TreeService"];

/// Serves `grpc` (the public services), gRPC health and the HTTP routes
/// `http` on `listener`, until `shutdown` completes: HTTP/1.1 and HTTP/2 on
/// one port, with the vault's transport settings (`TCP_NODELAY`, windows
/// sized to h2's data-frame budget) like every other role.
pub async fn serve(
    listener: TcpListener,
    grpc: tonic::service::Routes,
    http: axum::Router,
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
    let router = grpc.add_service(health).into_axum_router().merge(http);
    evault_proto::transport::server()
        .accept_http1(true)
        .add_routes(tonic::service::Routes::from(router))
        .serve_with_incoming_shutdown(evault_proto::transport::incoming(listener), shutdown)
        .await
}
