//! `GET /metrics`: the registry in the Prometheus text format, on every
//! role's port.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse as _, Response};

/// Where the metrics are served, on every role's port: the one path that
/// mutual TLS lets a scraper's certificate read
/// ([`evault_proto::tls::SCRAPE_PATH`]).
pub const PATH: &str = evault_proto::tls::SCRAPE_PATH;

/// The `Content-Type` of the answer: the Prometheus text format, version
/// 0.0.4, which every Prometheus-compatible scraper reads.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// `GET /metrics`, for a router that serves HTTP already (the gateway's,
/// under `evault up` too).
pub fn routes() -> axum::Router {
    axum::Router::new().route(PATH, axum::routing::get(scrape))
}

/// The routes an internal role's gRPC server starts from: `GET /metrics`,
/// and tonic's own answer to any path no service takes (`UNIMPLEMENTED`),
/// so that adding the route changes nothing for gRPC callers. The server
/// must accept HTTP/1.1 for a scraper that does not speak HTTP/2.
pub fn role_routes() -> tonic::service::Routes {
    tonic::service::Routes::from(
        tonic::service::Routes::default()
            .into_axum_router()
            .merge(routes()),
    )
}

async fn scrape() -> Response {
    match crate::encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        // Writing to a string fails only if a collector does.
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed\n",
        )
            .into_response(),
    }
}
