//! The tower layer that puts [`Policy`] in front of a service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use tonic::body::Body;
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::{Access, Denials, JwtVerifier, MAX_TOKEN_BYTES, Policy, Principal, require};

/// The bearer token of a request's headers: exactly one `authorization`
/// header, text, `Bearer <token>` (the scheme in any case), the token at
/// most [`MAX_TOKEN_BYTES`]. `UNAUTHENTICATED` otherwise.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, Status> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(AUTHORIZATION) {
            Status::unauthenticated("more than one authorization header")
        } else {
            Status::unauthenticated("missing bearer token")
        });
    };
    // "Bearer " and some spaces around the token, at most.
    if value.len() > MAX_TOKEN_BYTES + 64 {
        return Err(Status::unauthenticated("token too large"));
    }
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization header is not text"))?;
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Status::unauthenticated(
            "authorization is not a Bearer token",
        ));
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() {
        return Err(Status::unauthenticated("missing bearer token"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Status::unauthenticated("token too large"));
    }
    Ok(token)
}

/// Puts [`Policy`] in front of a service: on a tonic `Server` or `Routes`
/// (`Server::builder().layer(...)`, `routes.into_axum_router().layer(...)`),
/// an axum router, or one tonic service (`layer.layer(FooServer::new(..))`).
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<JwtVerifier>,
    policy: Policy,
    denials: Option<Denials>,
}

impl AuthLayer {
    /// Admits the callers `verifier` verifies to what `policy` lets them
    /// do.
    pub fn new(verifier: Arc<JwtVerifier>, policy: Policy) -> AuthLayer {
        AuthLayer {
            verifier,
            policy,
            denials: None,
        }
    }

    /// Counts every refusal in `denials` too, for whoever records them.
    pub fn with_denials(mut self, denials: Denials) -> AuthLayer {
        self.denials = Some(denials);
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            verifier: Arc::clone(&self.verifier),
            policy: self.policy,
            denials: self.denials.clone(),
        }
    }
}

/// A service behind [`AuthLayer`].
///
/// A request to a public path goes through untouched (a token it carries
/// is not even read). Any other request goes through only with a verified
/// bearer token holding the scope the path needs, and with the
/// [`crate::Principal`] in its extensions. A request refused is answered
/// from its headers alone: the inner service is not called and the body
/// is never read. gRPC requests (`content-type: application/grpc*`) get a
/// trailers-only gRPC answer (`UNAUTHENTICATED` or `PERMISSION_DENIED`),
/// other requests a 401 or 403 with the reason as text. Every refusal is
/// logged at info with the path and the reason, never the token, and
/// counted in the layer's [`Denials`] when it has them.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<JwtVerifier>,
    policy: Policy,
    denials: Option<Denials>,
}

impl<S, B, ResBody> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let scope = match self.policy.access(request.uri().path()) {
            Access::Public => {
                let answer = self.inner.call(request);
                return Box::pin(async move { Ok(answer.await?.map(Body::new)) });
            }
            Access::Require(scope) => scope,
        };
        let refusal = Refusal::of(&request, self.denials.clone());
        // An outer layer of the same process admitted the caller already
        // (`evault up` guards every route, ingest its own): the principal
        // in the extensions came from a verified token, never from the
        // wire, so only the scope is left to check.
        if let Some(principal) = request.extensions().get::<Principal>() {
            if let Err(status) = require(principal, scope) {
                let answer = refusal.answer(status, Some(&principal.name));
                return Box::pin(std::future::ready(Ok(answer)));
            }
            let answer = self.inner.call(request);
            return Box::pin(async move { Ok(answer.await?.map(Body::new)) });
        }
        let token = match bearer_token(request.headers()) {
            Ok(token) => token.to_owned(),
            Err(status) => return Box::pin(std::future::ready(Ok(refusal.answer(status, None)))),
        };
        // The service made ready by `poll_ready` answers this request; a
        // clone takes its place for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = Arc::clone(&self.verifier);
        Box::pin(async move {
            let principal = match verifier.verify(&token).await {
                Ok(principal) => principal,
                Err(status) => return Ok(refusal.answer(status, None)),
            };
            if let Err(status) = require(&principal, scope) {
                return Ok(refusal.answer(status, Some(&principal.name)));
            }
            request.extensions_mut().insert(principal);
            Ok(inner.call(request).await?.map(Body::new))
        })
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for AuthService<S> {
    const NAME: &'static str = S::NAME;
}

/// How to answer a request refused.
struct Refusal {
    path: String,
    grpc: bool,
    denials: Option<Denials>,
}

impl Refusal {
    fn of<B>(request: &http::Request<B>, denials: Option<Denials>) -> Refusal {
        let grpc = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        Refusal {
            path: request.uri().path().to_owned(),
            grpc,
            denials,
        }
    }

    /// Logs and counts the refusal, and answers it.
    fn answer(self, status: Status, principal: Option<&str>) -> http::Response<Body> {
        if let Some(denials) = &self.denials {
            denials.count(principal, status.code(), status.message());
        }
        tracing::info!(
            path = self.path,
            code = ?status.code(),
            reason = status.message(),
            principal,
            "request refused"
        );
        if self.grpc {
            return status.into_http();
        }
        let denied = status.code() == Code::PermissionDenied;
        let mut response = http::Response::new(Body::new(format!("{}\n", status.message())));
        *response.status_mut() = if denied {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if !denied {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                AUTHORIZATION,
                HeaderValue::from_bytes(value).expect("header value"),
            );
        }
        headers
    }

    fn refusal(values: &[&[u8]]) -> String {
        let status = bearer_token(&headers(values)).expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated);
        status.message().to_owned()
    }

    #[test]
    fn bearer_token_takes_the_token_after_the_scheme() {
        for value in [
            &b"Bearer abc.def.ghi"[..],
            b"bearer abc.def.ghi",
            b"BEARER   abc.def.ghi",
        ] {
            assert_eq!(bearer_token(&headers(&[value])).ok(), Some("abc.def.ghi"));
        }
    }

    #[test]
    fn bearer_token_refuses_a_missing_header() {
        assert_eq!(refusal(&[]), "missing bearer token");
        assert_eq!(refusal(&[b"Bearer"]), "missing bearer token");
        assert_eq!(refusal(&[b"Bearer   "]), "missing bearer token");
    }

    #[test]
    fn bearer_token_refuses_two_headers() {
        assert_eq!(
            refusal(&[b"Bearer a.b.c", b"Bearer a.b.c"]),
            "more than one authorization header"
        );
    }

    #[test]
    fn bearer_token_refuses_other_schemes() {
        assert_eq!(
            refusal(&[b"Basic YWxpY2U6c2VjcmV0"]),
            "authorization is not a Bearer token"
        );
        assert_eq!(
            refusal(&[b"Bearerabc.def.ghi"]),
            "authorization is not a Bearer token"
        );
    }

    #[test]
    fn bearer_token_refuses_binary_headers() {
        assert_eq!(
            refusal(&[b"Bearer \xff\xfe"]),
            "authorization header is not text"
        );
    }

    #[test]
    fn bearer_token_refuses_tokens_over_8_kib() {
        let at_limit = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES));
        assert!(bearer_token(&headers(&[at_limit.as_bytes()])).is_ok());
        let over = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(refusal(&[over.as_bytes()]), "token too large");
        let far_over = format!("Bearer {}", "a".repeat(1 << 20));
        assert_eq!(refusal(&[far_over.as_bytes()]), "token too large");
    }
}
