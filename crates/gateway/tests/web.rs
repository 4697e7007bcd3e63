//! The gateway as browsers and tools meet it: gRPC-web (binary and text,
//! over plain HTTP/1.1) answering what native gRPC answers, CORS only for
//! the origins named, server reflection listing the public services and
//! nothing internal, and the UI's headers on every response.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use evault_auth::{AuthLayer, JwtVerifier, LocalIssuer, Policy};
use evault_core::SigningKey;
use evault_gateway::{Cors, TileApi, serve};
use evault_ingest::{BatchConfig, Batcher, IngestGrpc};
use evault_proto::guard::ConnectionLimits;
use evault_proto::v1::tree_service_client::TreeServiceClient;
use evault_proto::v1::tree_service_server::TreeServiceServer;
use evault_proto::v1::{AppendRequest, GetCheckpointRequest, GetCheckpointResponse};
use evault_signer::CheckpointSigner;
use evault_storage::embedded::EmbeddedStore;
use evault_storage::signer::{SIGNER_FILE, SignerFile};
use evault_tree::{LogReader, Sequencer, TreeGrpc};
use prost::Message as _;

const ORIGIN: &str = "vault.example/web-test";

/// `evault up`'s shape on a port of its own, with `cors`; the base URL.
async fn start(cors: Cors) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("store");
    let (key, _) = SigningKey::generate(ORIGIN).expect("key");
    let signer_store = SignerFile::open(&dir.path().join(SIGNER_FILE)).expect("signer file");
    let signer = CheckpointSigner::new(ORIGIN, vec![Box::new(key)], signer_store).expect("signer");
    let sequencer = Arc::new(
        Sequencer::open(ORIGIN, store.clone(), signer)
            .await
            .expect("tree"),
    );
    let issuer = dir.path().join("issuer");
    LocalIssuer::open_or_create(&issuer).expect("issuer");
    let verifier = JwtVerifier::start(LocalIssuer::config(&issuer))
        .await
        .expect("verifier");
    let auth = AuthLayer::new(verifier, Policy::new(true));
    let batcher = Batcher::start(Arc::clone(&sequencer), BatchConfig::default());
    let ingest = IngestGrpc::new(auth.clone(), None, store.clone(), batcher);
    let tree = TreeGrpc::from_shared(sequencer, LogReader::new(ORIGIN, store.clone()));
    let grpc = tonic::service::Routes::new(ingest.into_service())
        .add_service(TreeServiceServer::new(tree));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(serve(
        evault_proto::transport::incoming(listener, ConnectionLimits::default()),
        grpc,
        TileApi::new(ORIGIN, store).routes(),
        None,
        cors,
        std::future::pending(),
    ));
    (dir, base)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

/// A gRPC-web frame: flags, big-endian length, payload.
fn frame(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The message and the trailers of a gRPC-web answer's body.
fn unframe(mut body: &[u8]) -> (Option<Vec<u8>>, String) {
    let (mut message, mut trailers) = (None, String::new());
    while body.len() >= 5 {
        let len = u32::from_be_bytes(body[1..5].try_into().expect("length")) as usize;
        let payload = &body[5..5 + len];
        if body[0] & 0x80 != 0 {
            trailers = String::from_utf8(payload.to_vec()).expect("trailers");
        } else {
            message = Some(payload.to_vec());
        }
        body = &body[5 + len..];
    }
    (message, trailers)
}

/// POSTs `message` to `path` over HTTP/1.1 as gRPC-web (`text`: base64):
/// the response's headers (lowercase name, value) and the body, decoded.
fn grpc_web(
    base: &str,
    path: &str,
    message: &[u8],
    text: bool,
) -> (Vec<(String, String)>, Vec<u8>) {
    let content_type = if text {
        "application/grpc-web-text"
    } else {
        "application/grpc-web+proto"
    };
    let body = frame(0, message);
    let body = if text {
        BASE64.encode(&body).into_bytes()
    } else {
        body
    };
    let mut response = agent()
        .post(&format!("{base}{path}"))
        .header("content-type", content_type)
        .header("accept", content_type)
        .header("x-grpc-web", "1")
        .send(&body[..])
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(response.status().as_u16(), 200, "{path}");
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let raw = response.body_mut().read_to_vec().expect("body");
    let raw = if text { decode_text(&raw) } else { raw };
    (headers, raw)
}

/// A `grpc-web-text` body: base64, each frame possibly encoded apart
/// (padding inside the body).
fn decode_text(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        // A chunk ends after its padding, or at the end.
        let end = rest
            .iter()
            .position(|&b| b == b'=')
            .map_or(rest.len(), |at| {
                at + rest[at..].iter().take_while(|&&b| b == b'=').count()
            });
        out.extend(BASE64.decode(&rest[..end]).expect("base64 answer"));
        rest = &rest[end..];
    }
    out
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_answers_as_native_grpc_does() {
    let (_dir, base) = start(Cors::same_origin()).await;
    let native = TreeServiceClient::connect(base.clone())
        .await
        .expect("connect")
        .get_checkpoint(GetCheckpointRequest {})
        .await
        .expect("native")
        .into_inner();
    let request = GetCheckpointRequest {}.encode_to_vec();
    for text in [false, true] {
        let base = base.clone();
        let request = request.clone();
        let (headers, body) = tokio::task::spawn_blocking(move || {
            grpc_web(
                &base,
                "/evault.v1.TreeService/GetCheckpoint",
                &request,
                text,
            )
        })
        .await
        .expect("join");
        assert!(
            header(&headers, "content-type").is_some_and(|t| t.starts_with("application/grpc-web")),
            "{headers:?}"
        );
        let (message, trailers) = unframe(&body);
        let answer =
            GetCheckpointResponse::decode(&message.expect("a message")[..]).expect("decodes");
        assert_eq!(answer, native, "text={text}");
        assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
    }

    // A refusal is the same status as over gRPC, readable by a browser.
    let base2 = base.clone();
    let (headers, body) = tokio::task::spawn_blocking(move || {
        grpc_web(
            &base2,
            "/evault.v1.IngestService/Append",
            &AppendRequest { statement: None }.encode_to_vec(),
            false,
        )
    })
    .await
    .expect("join");
    let status = header(&headers, "grpc-status")
        .map(str::to_string)
        .or_else(|| {
            let (_, trailers) = unframe(&body);
            trailers
                .lines()
                .find_map(|l| l.strip_prefix("grpc-status:").map(|s| s.trim().to_string()))
        });
    assert_eq!(
        status.as_deref(),
        Some("16"),
        "UNAUTHENTICATED: {headers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_the_origins_named() {
    let (_dir, closed) = start(Cors::same_origin()).await;
    let (_dir2, open) = start(Cors::allow(&["https://app.example".into()]).expect("origin")).await;
    tokio::task::spawn_blocking(move || {
        let preflight = |base: &str, origin: &str| {
            agent()
                .options(&format!("{base}/evault.v1.TreeService/GetCheckpoint"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type,x-grpc-web,authorization",
                )
                .call()
                .expect("preflight")
        };
        let allowed = preflight(&open, "https://app.example");
        let headers = allowed.headers();
        assert_eq!(
            headers
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok()),
            Some("https://app.example")
        );
        let allowed_headers = headers
            .get("access-control-allow-headers")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(
            allowed_headers.contains("authorization"),
            "{allowed_headers}"
        );
        let other = preflight(&open, "https://evil.example");
        assert!(other.headers().get("access-control-allow-origin").is_none());
        let same_origin_only = preflight(&closed, "https://app.example");
        assert!(
            same_origin_only
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );

        // An answer to an allowed origin exposes the gRPC status headers.
        let response = agent()
            .post(&format!("{open}/evault.v1.TreeService/GetCheckpoint"))
            .header("origin", "https://app.example")
            .header("content-type", "application/grpc-web+proto")
            .send(&frame(0, &[])[..])
            .expect("call");
        let exposed = response
            .headers()
            .get("access-control-expose-headers")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
            assert!(exposed.contains(name), "{name} in {exposed:?}");
        }
    })
    .await
    .expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_public_services_and_nothing_internal() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let (_dir, base) = start(Cors::same_origin()).await;
    let channel = tonic::transport::Channel::from_shared(base)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut client = ServerReflectionClient::new(channel.clone());
    let ask = |request: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(vec![
            ask(MessageRequest::ListServices(String::new())),
            ask(MessageRequest::FileContainingSymbol(
                "evault.v1.TreeService".into(),
            )),
            ask(MessageRequest::FileContainingSymbol(
                "evault.v1.SequencerService".into(),
            )),
        ]))
        .await
        .expect("reflection")
        .into_inner();
    let listed = match answers
        .message()
        .await
        .expect("answer")
        .and_then(|a| a.message_response)
    {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    for public in evault_proto::PUBLIC_SERVICES
        .iter()
        .chain(&["grpc.health.v1.Health"])
    {
        assert!(listed.iter().any(|s| s == public), "{public} in {listed:?}");
    }
    for internal in ["SequencerService", "SignerService", "AuditService"] {
        assert!(
            !listed.iter().any(|s| s.ends_with(internal)),
            "{internal} in {listed:?}"
        );
    }
    assert!(matches!(
        answers
            .message()
            .await
            .expect("answer")
            .and_then(|a| a.message_response),
        Some(MessageResponse::FileDescriptorResponse(_))
    ));
    let hidden = answers.message().await;
    assert!(
        match &hidden {
            Err(status) => status.code() == tonic::Code::NotFound,
            Ok(answer) => matches!(
                answer.as_ref().and_then(|a| a.message_response.as_ref()),
                Some(MessageResponse::ErrorResponse(_))
            ),
        },
        "an internal service is not described: {hidden:?}"
    );

    // v1alpha, for older tools.
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as Alpha;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    let mut alpha = Alpha::new(channel);
    let mut answers = alpha
        .server_reflection_info(tokio_stream::iter(vec![
            tonic_reflection::pb::v1alpha::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(AlphaRequest::ListServices(String::new())),
            },
        ]))
        .await
        .expect("v1alpha")
        .into_inner();
    assert!(answers.message().await.expect("answer").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_is_served_with_a_strict_content_security_policy() {
    assert!(
        evault_gateway::ui_embedded(),
        "web/dist/index.html is built into the binary"
    );
    let (_dir, base) = start(Cors::same_origin()).await;
    tokio::task::spawn_blocking(move || {
        let get = |path: &str| {
            let mut response = agent().get(&format!("{base}{path}")).call().expect("get");
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let body = response.body_mut().read_to_vec().expect("body");
            (response.status().as_u16(), headers, body)
        };
        let (status, headers, page) = get("/");
        assert_eq!(status, 200);
        assert_eq!(
            header(&headers, "content-type"),
            Some("text/html; charset=utf-8")
        );
        let page = String::from_utf8(page).expect("html");
        // Every script the page loads is a file of this origin.
        let scripts: Vec<&str> = page
            .split("<script")
            .skip(1)
            .map(|s| s.split('>').next().unwrap_or(""))
            .collect();
        assert!(!scripts.is_empty(), "{page}");
        assert!(
            scripts.iter().all(|s| s.contains("src=\"/")),
            "no inline script: {page}"
        );
        let asset = page
            .split("src=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a script's path")
            .to_string();
        for path in [
            "/",
            "/index.html",
            asset.as_str(),
            "/checkpoint",
            "/no-such-page",
        ] {
            let (_, headers, _) = get(path);
            assert_eq!(
                header(&headers, "content-security-policy"),
                Some(evault_gateway::CONTENT_SECURITY_POLICY),
                "{path}"
            );
            assert_eq!(
                header(&headers, "x-content-type-options"),
                Some("nosniff"),
                "{path}"
            );
            assert_eq!(
                header(&headers, "referrer-policy"),
                Some("no-referrer"),
                "{path}"
            );
        }
        let (status, headers, _) = get(&asset);
        assert_eq!(status, 200);
        assert!(
            header(&headers, "cache-control").is_some_and(|c| c.contains("immutable")),
            "{headers:?}"
        );
    })
    .await
    .expect("join");
}
