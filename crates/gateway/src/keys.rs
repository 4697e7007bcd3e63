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
    match current_keys(tree.as_ref()).await {
        Ok(keys) => key_lines(keys.iter()),
        Err(response) => response,
    }
}

/// The keys signing the log's checkpoints now, as tree lists them, one
/// `<name>+<key ID>+<base64 key>` string each; or the answer to give when
/// tree cannot say.
pub(crate) async fn current_keys<T: TreeService>(tree: &T) -> Result<Vec<String>, Response> {
    let request = tonic::Request::new(TreeServiceGetVerifierKeysRequest {});
    match tree.get_verifier_keys(request).await {
        Ok(response) => Ok(response.into_inner().verifier_keys),
        Err(status) => {
            let code = match status.code() {
                tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => {
                    tracing::error!(%status, "listing the verifier keys failed");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            Err((code, format!("verifier keys: {}\n", status.message())).into_response())
        }
    }
}

/// `keys` as the answer: one per line, never cached.
pub(crate) fn key_lines<K: std::fmt::Display>(keys: impl Iterator<Item = K>) -> Response {
    let body: String = keys.map(|k| format!("{k}\n")).collect();
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
