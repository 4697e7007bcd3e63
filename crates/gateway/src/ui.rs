//! The web UI: the built assets of `web/` (embedded at build time from
//! `web/dist/`, see `build.rs`), served at `/` with headers that keep a
//! browser from running anything but them.
//!
//! The UI holds no data: it is static code that talks to the same public
//! API as any client (gRPC-web on this port), and verifies what it gets
//! in the page. So it is served to anyone, even when the log's reads are
//! closed; the calls it makes then need a token like any other.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Every built asset: URL path, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The page's one document.
const INDEX: &str = "/index.html";

/// Scripts, styles, images, fonts and connections from this origin only;
/// no inline script or style, no `eval`, no plugins, no `<base>`, and no
/// framing (clickjacking). Untrusted data (names, labels, principals) is
/// rendered as text by the UI; this is the second line if it ever is not.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether the UI was built into this binary.
pub fn ui_embedded() -> bool {
    ASSETS.iter().any(|(path, _, _)| *path == INDEX)
}

/// `/` (the UI's page) and every built asset. Content-hashed assets
/// (`/assets/…`, named by Vite after their content) are cached for ever;
/// the page is revalidated, so a new build is picked up at once.
pub fn ui_routes() -> Router {
    let mut router = Router::new();
    for &(path, content_type, bytes) in ASSETS {
        let immutable = path.starts_with("/assets/");
        let serve = move || async move { asset(content_type, bytes, immutable) };
        router = router.route(path, get(serve));
        if path == INDEX {
            router = router.route("/", get(serve));
        }
    }
    router
}

fn asset(content_type: &'static str, bytes: &'static [u8], immutable: bool) -> Response {
    let cache = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ],
        bytes,
    )
        .into_response()
}

/// The headers every response of the gateway carries, the UI's first: a
/// page of another origin cannot frame or sniff any of them.
pub(crate) fn browser_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}
