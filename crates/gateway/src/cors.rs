//! Cross-origin calls from browsers: none by default (the UI is served
//! from the gateway's own origin and needs none), or from the origins an
//! operator names, for a web app hosted elsewhere.

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// The origins allowed to call the gateway from a browser.
#[derive(Clone, Debug, Default)]
pub struct Cors {
    origins: Vec<HeaderValue>,
}

impl Cors {
    /// Same-origin only: no CORS header is ever sent, and a browser
    /// refuses other origins' calls.
    pub fn same_origin() -> Cors {
        Cors::default()
    }

    /// Calls from exactly these origins (`https://app.example.com`, or with
    /// a port; no path, no wildcard), as browsers send them in `Origin`.
    pub fn allow(origins: &[String]) -> Result<Cors, String> {
        let origins = origins
            .iter()
            .map(|origin| {
                check_origin(origin)?;
                HeaderValue::from_str(origin)
                    .map_err(|_| format!("--cors-origin {origin:?}: not a header value"))
            })
            .collect::<Result<_, String>>()?;
        Ok(Cors { origins })
    }

    /// The layer answering preflights and marking answers, or `None` for
    /// same-origin only.
    pub(crate) fn layer(&self) -> Option<CorsLayer> {
        if self.origins.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.origins.clone()))
                .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
                .allow_headers([
                    HeaderName::from_static("authorization"),
                    HeaderName::from_static("content-type"),
                    HeaderName::from_static("x-grpc-web"),
                    HeaderName::from_static("x-user-agent"),
                    HeaderName::from_static("grpc-timeout"),
                    HeaderName::from_static("traceparent"),
                ])
                // A gRPC-web client reads the status from these; without
                // them every failure looks like a network error.
                .expose_headers([
                    HeaderName::from_static("grpc-status"),
                    HeaderName::from_static("grpc-message"),
                    HeaderName::from_static("grpc-status-details-bin"),
                ])
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }
}

/// An origin is `scheme://host[:port]` with an http(s) scheme, nothing
/// after: browsers compare it byte for byte with what they send.
fn check_origin(origin: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("--cors-origin {origin:?}: {why}"));
    let Some((scheme, rest)) = origin.split_once("://") else {
        return bad("not scheme://host[:port]");
    };
    if scheme != "https" && scheme != "http" {
        return bad("the scheme is neither https nor http");
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '*', ' ']) {
        return bad("an origin is scheme://host[:port], without path, query or wildcard");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for good in ["https://app.example.com", "http://localhost:5173"] {
            assert!(Cors::allow(&[good.into()]).is_ok(), "{good}");
        }
        for bad in [
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/",
            "https://*.example.com",
            "*",
            "https://",
        ] {
            assert!(Cors::allow(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(Cors::same_origin().layer().is_none());
    }
}
