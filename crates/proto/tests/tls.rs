//! Mutual TLS against real servers on port 0, with certificates made here:
//! a signer-like server that admits only `tree`, and callers of every kind;
//! and the public listener, serving HTTP/2 and HTTP/1.1 over TLS.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use evault_proto::guard::{ConnectionLimits, GuardedIncoming};
use evault_proto::tls::{PeerPolicy, PublicTls, RoleTls, ServerTls};
use evault_proto::v1::signer_service_client::SignerServiceClient;
use evault_proto::v1::signer_service_server::{SignerService, SignerServiceServer};
use evault_proto::v1::{
    GetSignedHeadRequest, GetSignedHeadResponse, GetVerifierKeysRequest, GetVerifierKeysResponse,
    SignCheckpointRequest, SignCheckpointResponse,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tonic::transport::{Certificate, ClientTlsConfig};
use tonic::{Code, Request, Response, Status};

/// A certificate authority made for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The material of a role named `name`, reachable at 127.0.0.1.
    fn role(&self, name: &str) -> RoleTls {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![name.to_string(), "127.0.0.1".to_string()])
            .expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        RoleTls::from_pem(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            Some(self.pem.as_bytes()),
        )
        .expect("material")
    }

    fn client(&self, name: &str) -> ClientTlsConfig {
        self.role(name).client().expect("client TLS")
    }
}

/// A `SignerService` that counts the requests reaching it.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

#[tonic::async_trait]
impl SignerService for Counting {
    async fn sign_checkpoint(
        &self,
        _: Request<SignCheckpointRequest>,
    ) -> Result<Response<SignCheckpointResponse>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(SignCheckpointResponse::default()))
    }

    async fn get_verifier_keys(
        &self,
        _: Request<GetVerifierKeysRequest>,
    ) -> Result<Response<GetVerifierKeysResponse>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(GetVerifierKeysResponse {
            verifier_keys: vec!["served".into()],
        }))
    }

    async fn get_signed_head(
        &self,
        _: Request<GetSignedHeadRequest>,
    ) -> Result<Response<GetSignedHeadResponse>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(GetSignedHeadResponse::default()))
    }
}

struct Server {
    url: String,
    served: Counting,
}

/// A listener on port 0, its connections within the default limits, and
/// its `https://` address.
async fn listen() -> (GuardedIncoming, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let incoming = evault_proto::transport::incoming(listener, ConnectionLimits::default());
    (incoming, url)
}

impl Server {
    async fn start(tls: ServerTls) -> Server {
        let (incoming, url) = listen().await;
        let served = Counting::default();
        let router = evault_proto::tls::secure(evault_proto::transport::server(), Some(&tls))
            .expect("TLS server")
            .add_service(SignerServiceServer::new(served.clone()));
        tokio::spawn(router.serve_with_incoming(incoming));
        Server { url, served }
    }

    /// A server on a public listener, as the gateway's: HTTP/1.1 and
    /// HTTP/2, over `tls`.
    async fn public(tls: PublicTls) -> Server {
        let (incoming, url) = listen().await;
        let served = Counting::default();
        let router = evault_proto::transport::server()
            .accept_http1(true)
            .add_service(SignerServiceServer::new(served.clone()));
        tokio::spawn(router.serve_with_incoming(tls.incoming(incoming)));
        Server { url, served }
    }

    fn addr(&self) -> &str {
        self.url.trim_start_matches("https://")
    }

    /// A signer that serves only `tree`, under `ca`.
    async fn signer(ca: &Ca) -> Server {
        let tls = ca
            .role("signer")
            .internal_server(PeerPolicy::new(["tree"]))
            .expect("server TLS");
        Server::start(tls).await
    }

    async fn call(&self, tls: &ClientTlsConfig) -> Result<Vec<String>, Status> {
        let channel = evault_proto::tls::endpoint(&self.url, Some(tls))
            .expect("endpoint")
            .connect_lazy();
        SignerServiceClient::new(channel)
            .get_verifier_keys(GetVerifierKeysRequest::default())
            .await
            .map(|r| r.into_inner().verifier_keys)
    }

    fn served(&self) -> usize {
        self.served.0.load(Ordering::SeqCst)
    }
}

/// A refusal in the handshake, for `reason` (a TLS alert, or the client's
/// own certificate error): the call fails in the transport, with no
/// answer from the server, and nothing reached the service.
///
/// Under TLS 1.3 a client learns that the server refused its certificate
/// only once it has sent its request, and how depends on timing: it reads
/// the alert, or finds the connection already closed (a failed write, a
/// reset, a request cancelled). Whatever reason it did learn is `reason`.
fn assert_handshake_refused(server: &Server, result: Result<Vec<String>, Status>, reason: &str) {
    let status = result.expect_err("the handshake must fail");
    let transport = std::error::Error::source(&status)
        .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some());
    assert!(transport, "{status:?}");
    let seen = format!("{status:?}");
    let learned = seen.contains("alert") || seen.contains("invalid peer certificate");
    assert!(!learned || seen.contains(reason), "{seen}");
    assert_eq!(server.served(), 0);
}

#[tokio::test]
async fn an_allowed_peer_is_served() {
    let ca = Ca::new("vault CA");
    let signer = Server::signer(&ca).await;
    let keys = signer.call(&ca.client("tree")).await.expect("served");
    assert_eq!(keys, ["served"]);
    // A name under the allowed one is the same peer.
    signer
        .call(&ca.client("tree.evault.svc.cluster.local"))
        .await
        .expect("served");
    assert_eq!(signer.served(), 2);
}

#[tokio::test]
async fn a_caller_without_a_certificate_fails_the_handshake() {
    let ca = Ca::new("vault CA");
    let signer = Server::signer(&ca).await;
    let anonymous = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem));
    assert_handshake_refused(
        &signer,
        signer.call(&anonymous).await,
        "CertificateRequired",
    );
    // The server goes on serving those it should.
    signer.call(&ca.client("tree")).await.expect("served");
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_the_handshake() {
    let ca = Ca::new("vault CA");
    let other = Ca::new("another CA");
    let signer = Server::signer(&ca).await;
    // Named `tree`, and trusting the right CA for the server, but signed by
    // the other one.
    let impostor = other
        .role("tree")
        .client()
        .expect("client TLS")
        .ca_certificate(Certificate::from_pem(&ca.pem));
    assert_handshake_refused(&signer, signer.call(&impostor).await, "UnknownCA");
    signer.call(&ca.client("tree")).await.expect("served");
}

#[tokio::test]
async fn a_valid_certificate_with_the_wrong_name_is_permission_denied() {
    let ca = Ca::new("vault CA");
    let signer = Server::signer(&ca).await;
    for name in ["ingest", "treehouse"] {
        let status = signer
            .call(&ca.client(name))
            .await
            .expect_err("refused by name");
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(
            status.message(),
            format!("peer {name} is not allowed to call evault.v1.SignerService")
        );
    }
    assert_eq!(signer.served(), 0);
}

#[tokio::test]
async fn a_client_trusts_only_its_ca_for_the_server() {
    let ca = Ca::new("vault CA");
    let other = Ca::new("another CA");
    let signer = Server::signer(&other).await;
    assert_handshake_refused(
        &signer,
        signer.call(&ca.client("tree")).await,
        "UnknownIssuer",
    );
}

#[tokio::test]
async fn a_public_server_asks_for_no_client_certificate() {
    let ca = Ca::new("vault CA");
    let gateway = Server::public(ca.role("gateway").public_server()).await;
    let anonymous = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem));
    gateway.call(&anonymous).await.expect("served");
    // Nor does it check the names of those who present one.
    gateway.call(&ca.client("anyone")).await.expect("served");
    assert_eq!(gateway.served(), 2);
}

/// A TLS connection to `server` that trusts `ca` and offers `alpn`.
async fn tls_connect(
    server: &Server,
    ca: &Ca,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).expect("CA PEM"))
        .expect("CA");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let socket = TcpStream::connect(server.addr()).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, socket)
        .await
        .expect("handshake")
}

#[tokio::test]
async fn a_public_server_speaks_http1_and_http2_on_one_port() {
    let ca = Ca::new("vault CA");
    let gateway = Server::public(ca.role("gateway").public_server()).await;
    // A client that offers only HTTP/1.1, as curl --http1.1 and tile
    // readers do, gets it...
    let mut http1 = tls_connect(&gateway, &ca, &[b"http/1.1"]).await;
    assert_eq!(http1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    http1
        .write_all(b"GET /checkpoint HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = Vec::new();
    http1.read_to_end(&mut response).await.expect("response");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 "), "{response}");
    // ...one that offers both gets HTTP/2...
    let both = tls_connect(&gateway, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(both.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // ...and gRPC is served on the same port.
    let anonymous = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem));
    assert_eq!(gateway.call(&anonymous).await.expect("served"), ["served"]);
}

#[tokio::test]
async fn a_stalled_handshake_does_not_hold_up_another() {
    let ca = Ca::new("vault CA");
    let gateway = Server::public(ca.role("gateway").public_server()).await;
    // One client says nothing; another starts a TLS record and stops.
    let _silent = TcpStream::connect(gateway.addr()).await.expect("connect");
    let mut stalled = TcpStream::connect(gateway.addr()).await.expect("connect");
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .expect("write");
    // Others are served long before those handshakes time out.
    let anonymous = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem));
    let served = tokio::time::timeout(Duration::from_secs(5), gateway.call(&anonymous))
        .await
        .expect("served while the others stall");
    assert_eq!(served.expect("served"), ["served"]);
    let http1 = tokio::time::timeout(
        Duration::from_secs(5),
        tls_connect(&gateway, &ca, &[b"http/1.1"]),
    )
    .await
    .expect("a handshake while the others stall");
    assert_eq!(http1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}
