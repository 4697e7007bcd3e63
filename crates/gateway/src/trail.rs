//! The audit trail's read API, under `/audit/`: the trail is a log of its
//! own (origin `<origin>/audit`, [`evault_core::trail::audit_origin`]),
//! so `/audit/checkpoint` and `/audit/tile/…` are the tlog-tiles API of
//! that origin ([`TileApi`]), and `/audit/verifier-keys` lists the keys
//! that verify its checkpoints: the keys signing the log now, under the
//! audit origin's name ([`evault_core::trail::audit_verifier_keys`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use evault_core::VerifierKey;
use evault_core::trail::{audit_origin, audit_verifier_keys};
use evault_proto::v1::tree_service_server::TreeService;
use evault_storage::LogStore;

use crate::TileApi;
use crate::keys::{current_keys, key_lines};

/// The routes under `/audit/` for the log `origin`: the trail's tiles,
/// read from `store` as the log's are, and its verifier keys, derived
/// from the log's as `tree` (in process, or a [`crate::TreeProxy`])
/// lists them.
pub fn audit_routes<S: LogStore, T: TreeService>(origin: &str, store: S, tree: T) -> axum::Router {
    let keys = axum::Router::new()
        .route("/verifier-keys", axum::routing::get(verifier_keys::<T>))
        .with_state(Arc::new(TrailKeys {
            origin: origin.to_string(),
            tree,
        }));
    let trail = TileApi::new(&audit_origin(origin), store)
        .routes()
        .merge(keys);
    axum::Router::new().nest("/audit", trail)
}

/// What `/audit/verifier-keys` needs: the log's origin, to name the keys
/// after its trail, and tree, to ask for the log's keys.
struct TrailKeys<T> {
    origin: String,
    tree: T,
}

async fn verifier_keys<T: TreeService>(State(trail): State<Arc<TrailKeys<T>>>) -> Response {
    let lines = match current_keys(&trail.tree).await {
        Ok(lines) => lines,
        Err(response) => return response,
    };
    // Asked at each request, like `/verifier-keys`, so that a rotation
    // shows here at once; a key tree lists that does not parse is tree's
    // fault, not the caller's.
    let keys = match lines
        .iter()
        .map(|line| VerifierKey::parse(line))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|keys| audit_verifier_keys(&trail.origin, &keys))
    {
        Ok(keys) => keys,
        Err(error) => {
            tracing::error!(%error, "tree listed a verifier key that cannot be read");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("verifier keys: {error}\n"),
            )
                .into_response();
        }
    };
    key_lines(keys.iter())
}
