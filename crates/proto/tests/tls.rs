//! Mutual TLS against real servers on port 0, with certificates made here:
//! a signer-like server that admits only `tree`, and callers of every kind.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use evault_proto::guard::ConnectionLimits;
use evault_proto::tls::{PeerPolicy, RoleTls, ServerTls};
use evault_proto::v1::signer_service_client::SignerServiceClient;
use evault_proto::v1::signer_service_server::{SignerService, SignerServiceServer};
use evault_proto::v1::{
    GetVerifierKeysRequest, GetVerifierKeysResponse, SignCheckpointRequest, SignCheckpointResponse,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
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
}

struct Server {
    url: String,
    served: Counting,
}

impl Server {
    async fn start(tls: ServerTls) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let served = Counting::default();
        let router = evault_proto::tls::secure(evault_proto::transport::server(), Some(&tls))
            .expect("TLS server")
            .add_service(SignerServiceServer::new(served.clone()));
        tokio::spawn(
            router.serve_with_incoming(evault_proto::transport::incoming(
                listener,
                ConnectionLimits::default(),
            )),
        );
        Server { url, served }
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
    let gateway = Server::start(ca.role("gateway").public_server()).await;
    let anonymous = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem));
    gateway.call(&anonymous).await.expect("served");
    // Nor does it check the names of those who present one.
    gateway.call(&ca.client("anyone")).await.expect("served");
    assert_eq!(gateway.served(), 2);
}
