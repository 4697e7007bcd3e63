//! `GET /verifier-keys`: the verifier keys signing the log's checkpoints
//! now, one per line, the format of `evault up`'s `DATA_DIR/verifier-key`
//! and of every `--vkey-file`. Asked of tree (`TreeService.GetVerifierKeys`)
//! at each request: keys change only when the signer restarts with others,
//! and a verifier asks rarely.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use evault_proto::v1::TreeServiceGetVerifierKeysRequest;
use evault_proto::v1::tree_service_server::TreeService;

/// The route, answered by `tree` (in process, or a [`crate::TreeProxy`]).
pub fn verifier_keys_routes<T: TreeService>(tree: T) -> axum::Router {
    axum::Router::new()
        .route("/verifier-keys", axum::routing::get(verifier_keys::<T>))
        .with_state(Arc::new(tree))
}

async fn verifier_keys<T: TreeService>(State(tree): State<Arc<T>>) -> Response {
    let request = tonic::Request::new(TreeServiceGetVerifierKeysRequest {});
    match tree.get_verifier_keys(request).await {
        Ok(response) => {
            let body: String = response
                .into_inner()
                .verifier_keys
                .iter()
                .map(|k| format!("{k}\n"))
                .collect();
            (
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                    // A rotation changes the list: always ask again.
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
                .into_response()
        }
        Err(status) => {
            let code = match status.code() {
                tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => {
                    tracing::error!(%status, "listing the verifier keys failed");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            (code, format!("verifier keys: {}\n", status.message())).into_response()
        }
    }
}
