//! The layer in front of services: refusals answered from the headers
//! alone, admitted requests carrying their principal, and the layer on a
//! real tonic server and on an axum router.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use evault_auth::{AuthLayer, AuthService, JwksSource, JwtConfig, JwtVerifier, Policy, Principal};
use evault_auth::{MAX_TOKEN_BYTES, Scope};
use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::tree_service_client::TreeServiceClient;
use evault_proto::v1::{AppendRequest, GetCheckpointRequest};
use evault_test_support::jwks::{AUDIENCE, ISSUER, JwksServer, TestKey, claims};
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use tonic::body::Body;
use tonic::{Code, Status};
use tower::{Layer as _, Service, ServiceExt as _};

const APPEND: &str = "/evault.v1.IngestService/Append";
const CHECKPOINT: &str = "/evault.v1.TreeService/GetCheckpoint";

/// The service behind the layer: counts its calls and keeps the principal
/// of the last one.
#[derive(Clone, Default)]
struct Inner {
    calls: Arc<AtomicUsize>,
    principal: Arc<Mutex<Option<Principal>>>,
}

impl<B> Service<http::Request<B>> for Inner {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<http::Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.principal.lock().expect("principal") = request.extensions().get().cloned();
        std::future::ready(Ok(http::Response::new("inner".to_owned())))
    }
}

/// A request body that tells whether anyone read it.
struct Watched(Arc<AtomicBool>);

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0.store(true, Ordering::SeqCst);
        Poll::Ready(None)
    }
}

struct Fixture {
    _server: JwksServer,
    key: TestKey,
    inner: Inner,
    layer: AuthLayer,
}

impl Fixture {
    async fn new(public_reads: bool) -> Fixture {
        let server = JwksServer::start();
        let key = TestKey::ed25519("ed-1");
        server.add(&key);
        let verifier = JwtVerifier::start(JwtConfig {
            source: JwksSource::Url(server.url()),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
        })
        .await
        .expect("verifier");
        Fixture {
            _server: server,
            key,
            inner: Inner::default(),
            layer: AuthLayer::new(verifier, Policy::new(public_reads)),
        }
    }

    fn service(&self) -> AuthService<Inner> {
        self.layer.layer(self.inner.clone())
    }

    fn token(&self, sub: &str, scope: &str) -> String {
        format!("Bearer {}", self.key.sign(&claims(sub, scope)))
    }

    /// Sends a request to `path` (gRPC or plain HTTP) with these
    /// authorization headers; the answer, and whether the body was read.
    async fn send(
        &self,
        path: &str,
        grpc: bool,
        authorization: &[&str],
    ) -> (http::Response<Body>, bool) {
        let read = Arc::new(AtomicBool::new(false));
        let mut request = http::Request::post(path)
            .body(Watched(Arc::clone(&read)))
            .expect("request");
        if grpc {
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        }
        for value in authorization {
            request
                .headers_mut()
                .append(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
        }
        let response = self.service().oneshot(request).await.expect("infallible");
        (response, read.load(Ordering::SeqCst))
    }

    /// Sends a gRPC request that must be refused before reaching the
    /// service or its body; the refusal.
    async fn refused(&self, path: &str, authorization: &[&str]) -> Status {
        let calls = self.calls();
        let (response, read) = self.send(path, true, authorization).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "gRPC answers in trailers"
        );
        assert!(!read, "the body was read");
        assert_eq!(self.calls(), calls, "the service was called");
        Status::from_header_map(response.headers()).expect("a gRPC status")
    }

    fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    fn principal(&self) -> Option<Principal> {
        self.inner.principal.lock().expect("principal").clone()
    }
}

async fn text(response: http::Response<Body>) -> String {
    let bytes = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 16)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("text")
}

#[tokio::test]
async fn no_authorization_header_is_unauthenticated() {
    let fixture = Fixture::new(true).await;
    let status = fixture.refused(APPEND, &[]).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "missing bearer token");
}

#[tokio::test]
async fn a_garbage_authorization_header_is_unauthenticated() {
    let fixture = Fixture::new(true).await;
    for (header, reason) in [
        ("Bearer garbage", "malformed token"),
        ("Bearer a.b.c", "malformed token"),
        (
            "Basic YWxpY2U6c2VjcmV0",
            "authorization is not a Bearer token",
        ),
        ("garbage", "authorization is not a Bearer token"),
    ] {
        let status = fixture.refused(APPEND, &[header]).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{header}");
        assert_eq!(status.message(), reason, "{header}");
    }
    let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
    let status = fixture.refused(APPEND, &[&huge]).await;
    assert_eq!(status.message(), "token too large");
}

#[tokio::test]
async fn two_authorization_headers_are_unauthenticated() {
    let fixture = Fixture::new(true).await;
    let token = fixture.token("alice", "evault.append");
    let status = fixture.refused(APPEND, &[&token, &token]).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "more than one authorization header");
}

#[tokio::test]
async fn a_token_without_the_append_scope_is_denied_appending() {
    let fixture = Fixture::new(true).await;
    let token = fixture.token("alice", "evault.read evault.admin");
    let status = fixture.refused(APPEND, &[&token]).await;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "missing scope evault.append");
}

#[tokio::test]
async fn an_expired_token_is_refused_before_the_service() {
    let fixture = Fixture::new(true).await;
    let mut expired = claims("alice", "evault.append");
    expired["exp"] = serde_json::json!(evault_test_support::jwks::unix_now() - 3600);
    let token = format!("Bearer {}", fixture.key.sign(&expired));
    let status = fixture.refused(APPEND, &[&token]).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "token expired");
}

#[tokio::test]
async fn an_admitted_request_reaches_the_service_with_its_principal() {
    let fixture = Fixture::new(true).await;
    let token = fixture.token("alice", "evault.append");
    let (response, _) = fixture.send(APPEND, true, &[&token]).await;
    assert_eq!(text(response).await, "inner");
    assert_eq!(fixture.calls(), 1);
    assert_eq!(
        fixture.principal(),
        Some(Principal::new("alice", [Scope::Append]))
    );
}

#[tokio::test]
async fn public_reads_pass_without_a_token_and_without_a_principal() {
    let fixture = Fixture::new(true).await;
    for (path, grpc) in [
        (CHECKPOINT, true),
        ("/grpc.health.v1.Health/Check", true),
        ("/checkpoint", false),
        ("/tile/0/000", false),
    ] {
        let calls = fixture.calls();
        let (response, _) = fixture.send(path, grpc, &[]).await;
        assert_eq!(text(response).await, "inner", "{path}");
        assert_eq!(fixture.calls(), calls + 1, "{path}");
        assert_eq!(fixture.principal(), None, "{path}");
    }
    // A token on a public path is not even read: a bad one passes too.
    let (response, _) = fixture
        .send(CHECKPOINT, true, &["Bearer garbage", "Bearer twice"])
        .await;
    assert_eq!(text(response).await, "inner");
    assert_eq!(fixture.principal(), None);
}

#[tokio::test]
async fn closed_reads_need_the_read_scope() {
    let fixture = Fixture::new(false).await;
    let status = fixture.refused(CHECKPOINT, &[]).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    let appender = fixture.token("alice", "evault.append");
    let status = fixture.refused(CHECKPOINT, &[&appender]).await;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "missing scope evault.read");

    let reader = fixture.token("bob", "evault.read");
    let (response, _) = fixture.send(CHECKPOINT, true, &[&reader]).await;
    assert_eq!(text(response).await, "inner");
    assert_eq!(
        fixture.principal(),
        Some(Principal::new("bob", [Scope::Read]))
    );
}

#[tokio::test]
async fn other_grpc_services_need_the_admin_scope() {
    let fixture = Fixture::new(true).await;
    let path = "/evault.v1.SignerService/SignCheckpoint";
    let everything_else = fixture.token("alice", "evault.append evault.read");
    let status = fixture.refused(path, &[&everything_else]).await;
    assert_eq!(status.message(), "missing scope evault.admin");
    let admin = fixture.token("root", "evault.admin");
    let (response, _) = fixture.send(path, true, &[&admin]).await;
    assert_eq!(text(response).await, "inner");
}

#[tokio::test]
async fn plain_http_refusals_are_401_and_403_with_a_reason() {
    let fixture = Fixture::new(false).await;
    let (response, read) = fixture.send("/checkpoint", false, &[]).await;
    assert!(!read);
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    assert!(Status::from_header_map(response.headers()).is_none());
    assert_eq!(text(response).await, "missing bearer token\n");

    let appender = fixture.token("alice", "evault.append");
    let (response, read) = fixture.send("/tile/0/000", false, &[&appender]).await;
    assert!(!read);
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(text(response).await, "missing scope evault.read\n");
    assert_eq!(fixture.calls(), 0);
}

/// A real tonic server with the layer on it, on port 0: the answers a
/// gRPC client sees.
#[tokio::test]
async fn a_tonic_server_behind_the_layer_answers_clients_with_the_refusal() {
    let fixture = Fixture::new(false).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(fixture.layer.clone())
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut ingest = IngestServiceClient::new(channel.clone());
    let append = |authorization: Option<&str>| {
        let mut request = tonic::Request::new(AppendRequest::default());
        if let Some(value) = authorization {
            request
                .metadata_mut()
                .insert("authorization", value.parse().expect("metadata"));
        }
        request
    };

    let refused = ingest.append(append(None)).await.expect_err("refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(refused.message(), "missing bearer token");

    let reader = fixture.token("bob", "evault.read");
    let refused = ingest
        .append(append(Some(&reader)))
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(refused.message(), "missing scope evault.append");

    // Admitted: on to the router, which serves no IngestService here.
    let appender = fixture.token("alice", "evault.append");
    let passed = ingest
        .append(append(Some(&appender)))
        .await
        .expect_err("no service");
    assert_eq!(passed.code(), Code::Unimplemented);

    let mut tree = TreeServiceClient::new(channel.clone());
    let refused = tree
        .get_checkpoint(GetCheckpointRequest::default())
        .await
        .expect_err("reads are closed");
    assert_eq!(refused.code(), Code::Unauthenticated);

    // Health stays public.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health");
    assert_eq!(answer.into_inner().status, 1, "SERVING");
}

/// The layer on tonic `Routes` made an axum router, and on one tonic
/// service: the two ways the roles use it.
#[tokio::test]
async fn the_layer_composes_with_routes_and_single_services() {
    let fixture = Fixture::new(true).await;
    let (_reporter, health) = tonic_health::server::health_reporter();
    let guarded = tonic::service::Routes::new(fixture.layer.layer(health))
        .into_axum_router()
        .layer(fixture.layer.clone());
    let request = http::Request::post(APPEND)
        .header(CONTENT_TYPE, "application/grpc")
        .body(axum::body::Body::empty())
        .expect("request");
    let response = guarded.oneshot(request).await.expect("infallible");
    let status = Status::from_header_map(response.headers()).expect("gRPC status");
    assert_eq!(status.code(), Code::Unauthenticated);

    let tiles = axum::Router::new()
        .route("/checkpoint", axum::routing::get(|| async { "checkpoint" }))
        .layer(fixture.layer.clone());
    let request = http::Request::get("/checkpoint")
        .body(axum::body::Body::empty())
        .expect("request");
    let response = tiles.oneshot(request).await.expect("infallible");
    assert_eq!(text(response.map(Body::new)).await, "checkpoint");
}

#[tokio::test]
async fn a_caller_admitted_by_an_outer_layer_is_only_checked_for_the_scope() {
    let fixture = Fixture::new(true).await;
    let admitted = |scopes: &[Scope]| {
        let mut request = http::Request::post(APPEND)
            .header(CONTENT_TYPE, "application/grpc")
            .body(Watched(Arc::new(AtomicBool::new(false))))
            .expect("request");
        request
            .extensions_mut()
            .insert(Principal::new("alice", scopes.iter().copied()));
        request
    };
    // No token at all: the principal an outer layer verified is enough.
    let response = fixture
        .service()
        .oneshot(admitted(&[Scope::Append]))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(fixture.calls(), 1);
    assert_eq!(fixture.principal().expect("principal").name, "alice");
    // But it must still hold this route's scope.
    let response = fixture
        .service()
        .oneshot(admitted(&[Scope::Read]))
        .await
        .expect("infallible");
    let status = Status::from_header_map(response.headers()).expect("a gRPC status");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(fixture.calls(), 1);
}
