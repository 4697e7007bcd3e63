//! Mutual TLS between the roles: who may call whom, by certificate.
//!
//! Each role holds a certificate and key signed by the vault's CA
//! ([`RoleTls`]). An internal role (signer, tree, ingest) completes a TLS
//! handshake only with callers presenting a certificate from that CA, and
//! then serves only its natural callers, recognised by the DNS names of
//! their certificates ([`PeerPolicy`], enforced by [`PeerCheck`] before any
//! service sees a request): a caller with no certificate, or one from
//! another CA, never gets past the handshake; a caller with a valid
//! certificate under the wrong name gets `PERMISSION_DENIED`; a scraper's
//! certificate ([`SCRAPER`]) reads the role's metrics and nothing else
//! ([`SCRAPE_PATH`]). Calling out,
//! a role presents its own certificate and trusts only the CA
//! ([`endpoint`]). The gateway's public listener speaks TLS without asking
//! for a client certificate ([`RoleTls::public_server`]), and offers both
//! HTTP/2 and HTTP/1.1 (ALPN `h2` and `http/1.1`), for the readers of the
//! tile API as much as for gRPC clients ([`PublicTls::incoming`]).
//!
//! It does not issue or renew certificates (cert-manager does in
//! Kubernetes, `evault dev-certs` for local runs), check revocation, or
//! reload files while running: renewed certificates take effect when the
//! process restarts.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};
use tower::layer::util::Stack;
use tower::{Layer, Service};

use crate::guard::{GuardedIncoming, GuardedStream};

/// How long a TLS handshake may take, on either end: a peer that stalls
/// mid-handshake holds nothing for longer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS material, or an address to reach a role at, cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The role's certificate chain is missing or malformed.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The role's private key is missing, malformed, or not the key of its
    /// certificate.
    #[error("private key: {0}")]
    Key(String),
    /// The CA certificate is missing or cannot serve as a trust anchor.
    #[error("CA certificate: {0}")]
    Ca(String),
    /// Mutual TLS needs the CA, to authenticate peers.
    #[error("no CA certificate: peers cannot be authenticated without one")]
    NoCa,
    /// The address's scheme contradicts the TLS setting: `https://` is
    /// for TLS, `http://` for plaintext, never silently the other.
    #[error("{url:?}: {reason}")]
    Scheme {
        /// The address.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The address is not one a channel can be opened to.
    #[error("{url:?}: {source}")]
    Address {
        /// The address.
        url: String,
        /// Why tonic refused it.
        source: tonic::transport::Error,
    },
}

/// A role's TLS material, checked when read: its certificate chain and
/// private key, and the CA that signs its peers' certificates.
#[derive(Clone)]
pub struct RoleTls {
    identity: Identity,
    ca: Option<Certificate>,
    /// The same identity, for the public listener, which terminates TLS
    /// itself ([`PublicTls`]).
    public: Arc<rustls::ServerConfig>,
}

impl RoleTls {
    /// Reads PEM: `cert` is the role's chain (its own certificate first),
    /// `key` its private key (PKCS#8, PKCS#1 or SEC1), `ca` the CA's
    /// certificate. Every problem a handshake would meet later (no
    /// certificate, a key that is not the certificate's, a CA that cannot
    /// be a trust anchor) is an error now.
    pub fn from_pem(cert: &[u8], key: &[u8], ca: Option<&[u8]>) -> Result<Self, TlsError> {
        let chain = certificates(cert).map_err(TlsError::Certificate)?;
        webpki::EndEntityCert::try_from(&chain[0])
            .map_err(|e| TlsError::Certificate(format!("not an X.509 certificate: {e}")))?;
        let private = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
            pem::Error::NoItemsFound => TlsError::Key("no PEM private key".into()),
            other => TlsError::Key(other.to_string()),
        })?;
        let provider = rustls::crypto::ring::default_provider();
        let certified = rustls::sign::CertifiedKey::from_der(chain, private, &provider)
            .map_err(|e| TlsError::Key(format!("not the certificate's key: {e}")))?;
        let mut public = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Key(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        // HTTP/2 first: a gRPC client offers only `h2`, and must get it.
        public.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let ca = match ca {
            Some(pem) => {
                let mut roots = rustls::RootCertStore::empty();
                for anchor in certificates(pem).map_err(TlsError::Ca)? {
                    roots.add(anchor).map_err(|e| TlsError::Ca(e.to_string()))?;
                }
                Some(Certificate::from_pem(pem))
            }
            None => None,
        };
        Ok(RoleTls {
            identity: Identity::from_pem(cert, key),
            ca,
            public: Arc::new(public),
        })
    }

    /// Serving internal services: callers must present a certificate from
    /// the CA, and only `callers` are served.
    pub fn internal_server(&self, callers: PeerPolicy) -> Result<ServerTls, TlsError> {
        let ca = self.ca.clone().ok_or(TlsError::NoCa)?;
        Ok(ServerTls {
            config: ServerTlsConfig::new()
                .identity(self.identity.clone())
                .client_ca_root(ca)
                .timeout(HANDSHAKE_TIMEOUT),
            callers: Arc::new(callers),
        })
    }

    /// Serving the public: TLS, HTTP/2 or HTTP/1.1, and no client
    /// certificate asked for.
    pub fn public_server(&self) -> PublicTls {
        PublicTls {
            acceptor: TlsAcceptor::from(Arc::clone(&self.public)),
        }
    }

    /// Calling other roles: presents this role's certificate, and trusts
    /// only the CA for the role called, which must hold a certificate for
    /// the host name (or IP address) it is called at.
    pub fn client(&self) -> Result<ClientTlsConfig, TlsError> {
        let ca = self.ca.clone().ok_or(TlsError::NoCa)?;
        Ok(ClientTlsConfig::new()
            .ca_certificate(ca)
            .identity(self.identity.clone())
            .timeout(HANDSHAKE_TIMEOUT))
    }
}

/// The certificates of a PEM text, at least one.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate".into());
    }
    Ok(certs)
}

/// The callers a role serves, by the DNS names in their certificates.
///
/// A certificate names an allowed peer when one of its subject alternative
/// DNS names equals the allowed name or starts with it followed by a dot,
/// ignoring case: `tree.evault.svc.cluster.local` and `TREE` are `tree`;
/// `treehouse` is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPolicy {
    names: Vec<String>,
}

impl PeerPolicy {
    /// Serves the peers named `names` (an empty name names no one).
    pub fn new<N: Into<String>>(names: impl IntoIterator<Item = N>) -> Self {
        PeerPolicy {
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    /// The allowed names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether a certificate with these DNS names is an allowed peer.
    pub fn admits<'a>(&self, dns_names: impl IntoIterator<Item = &'a str>) -> bool {
        dns_names.into_iter().any(|presented| {
            self.names
                .iter()
                .any(|allowed| names_peer(allowed, presented))
        })
    }
}

/// Whether the DNS name `presented` names the peer `allowed`: the same
/// name, or a name under it (`allowed` and a dot), in any case. Compared
/// as bytes, so no input can split a character.
fn names_peer(allowed: &str, presented: &str) -> bool {
    let (allowed, presented) = (allowed.as_bytes(), presented.as_bytes());
    !allowed.is_empty()
        && presented
            .get(..allowed.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(allowed))
        && matches!(presented.get(allowed.len()), None | Some(b'.'))
}

/// The path of a role's metrics (`GET /metrics`, served by
/// `evault-metrics` on every role's port).
pub const SCRAPE_PATH: &str = "/metrics";

/// The certificate name of a metrics scraper. Under mutual TLS a
/// certificate from the vault's CA naming it may read [`SCRAPE_PATH`] on
/// any internal role, and call none of its services: a scraper never
/// holds a certificate that could ask the signer for a signature.
pub const SCRAPER: &str = "metrics";

/// Whether a caller whose certificate has the DNS names `names` may
/// request `path`: the callers a role serves may request anything, a
/// scraper ([`SCRAPER`]) only [`SCRAPE_PATH`].
fn allowed(callers: &PeerPolicy, path: &str, names: &[&str]) -> bool {
    callers.admits(names.iter().copied())
        || (path == SCRAPE_PATH && names.iter().any(|name| names_peer(SCRAPER, name)))
}

/// How an internal role's server speaks mutual TLS, and whom it serves.
#[derive(Clone)]
pub struct ServerTls {
    config: ServerTlsConfig,
    callers: Arc<PeerPolicy>,
}

/// `server`, speaking `tls` and serving only the callers it admits; or, as
/// it is (plaintext, every caller served) without.
pub fn secure<L>(
    server: Server<L>,
    tls: Option<&ServerTls>,
) -> Result<Server<Stack<PeerCheck, L>>, tonic::transport::Error> {
    let (server, callers) = match tls {
        Some(tls) => (
            server.tls_config(tls.config.clone())?,
            Some(Arc::clone(&tls.callers)),
        ),
        None => (server, None),
    };
    Ok(server.layer(PeerCheck { callers }))
}

/// How the public listener speaks TLS: no client certificate asked for,
/// and HTTP/2 or HTTP/1.1 as the client offers (ALPN `h2`, `http/1.1`).
///
/// tonic's own TLS (`Server::tls_config`) offers only `h2`, so a client
/// that offers only `http/1.1` (curl --http1.1, a tile reader) would fail
/// the handshake; the listener terminates TLS here instead, and the server
/// serves the decrypted connections as it does plaintext ones.
#[derive(Clone)]
pub struct PublicTls {
    acceptor: TlsAcceptor,
}

impl PublicTls {
    /// The connections of `incoming`, each once its TLS handshake has
    /// completed. Handshakes run side by side, each in a task of its own
    /// and within 10 s: a client that stalls delays no one else. A failed handshake is logged and its connection closed.
    /// Serve them with `serve_with_incoming_shutdown`, without
    /// `tls_config`.
    pub fn incoming(&self, incoming: GuardedIncoming) -> TlsIncoming {
        TlsIncoming {
            acceptor: self.acceptor.clone(),
            incoming,
            handshakes: JoinSet::new(),
        }
    }
}

/// The connections of a listener after their TLS handshakes, in the order
/// the handshakes complete ([`PublicTls::incoming`]). Like the listener's,
/// the stream never ends and never fails. Dropping it abandons the
/// handshakes under way.
pub struct TlsIncoming {
    acceptor: TlsAcceptor,
    incoming: GuardedIncoming,
    /// At most one per connection the listener holds, so bounded by its
    /// connection limit.
    handshakes: JoinSet<std::io::Result<TlsStream<GuardedStream>>>,
}

impl Stream for TlsIncoming {
    type Item = Result<TlsStream<GuardedStream>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        // Every connection accepted so far starts its handshake; this
        // leaves the listener's waker registered.
        while let Poll::Ready(Some(Ok(connection))) = Pin::new(&mut this.incoming).poll_next(cx) {
            let handshake = this.acceptor.accept(connection);
            this.handshakes.spawn(async move {
                tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
                    .await
                    .unwrap_or_else(|_| {
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "TLS handshake timed out",
                        ))
                    })
            });
        }
        loop {
            // No handshake under way: the next connection wakes us.
            let Some(done) = ready!(this.handshakes.poll_join_next(cx)) else {
                return Poll::Pending;
            };
            match done {
                Ok(Ok(connection)) => return Poll::Ready(Some(Ok(connection))),
                Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                Err(error) => tracing::warn!(%error, "TLS handshake task failed"),
            }
        }
    }
}

/// A client endpoint for the role at `url`, with the vault's transport
/// settings ([`crate::transport::endpoint`]): mutual TLS with `tls`, for
/// an `https://` address; plaintext without, for an `http://` one. A
/// mismatch is an error, never a silent downgrade to plaintext or a
/// channel that can never connect.
pub fn endpoint(url: &str, tls: Option<&ClientTlsConfig>) -> Result<Endpoint, TlsError> {
    let address = |source| TlsError::Address {
        url: url.to_string(),
        source,
    };
    let scheme = |reason| TlsError::Scheme {
        url: url.to_string(),
        reason,
    };
    let endpoint = crate::transport::endpoint(url).map_err(address)?;
    let https = endpoint.uri().scheme_str() == Some("https");
    match tls {
        Some(tls) if https => endpoint.tls_config(tls.clone()).map_err(address),
        Some(_) => Err(scheme("TLS is on, so the address must be https://")),
        None if https => Err(scheme("https:// needs TLS, which is off (no CA given)")),
        None => Ok(endpoint),
    }
}

/// A tower layer serving only the callers a [`PeerPolicy`] admits; others
/// get `PERMISSION_DENIED` before any service sees their request. Without
/// a policy, every request passes.
#[derive(Debug, Clone)]
pub struct PeerCheck {
    callers: Option<Arc<PeerPolicy>>,
}

impl<S> Layer<S> for PeerCheck {
    type Service = PeerChecked<S>;

    fn layer(&self, inner: S) -> PeerChecked<S> {
        PeerChecked {
            inner,
            callers: self.callers.clone(),
        }
    }
}

/// A service behind a [`PeerCheck`].
#[derive(Debug, Clone)]
pub struct PeerChecked<S> {
    inner: S,
    callers: Option<Arc<PeerPolicy>>,
}

impl<S, B, R> Service<http::Request<B>> for PeerChecked<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(callers) = &self.callers {
            if let Err(status) = admit(callers, &request) {
                let mut refusal = status.into_http();
                // A scraper reads HTTP's status, not gRPC's: a refused
                // scrape must fail, not pass for a role with no metrics.
                if request.uri().path() == SCRAPE_PATH {
                    *refusal.status_mut() = http::StatusCode::FORBIDDEN;
                }
                return Box::pin(std::future::ready(Ok(refusal)));
            }
        }
        Box::pin(self.inner.call(request))
    }
}

/// Serves the caller of `request` only if its certificate names an
/// allowed peer. Fails closed: a request that arrived without a
/// certificate (which the handshake should already have refused) is
/// refused too.
fn admit<B>(callers: &PeerPolicy, request: &http::Request<B>) -> Result<(), Status> {
    let service = request.uri().path().split('/').nth(1).unwrap_or_default();
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(TlsConnectInfo::peer_certs);
    let Some(leaf) = certs.as_deref().and_then(|chain| chain.first()) else {
        tracing::warn!(%service, "refused a caller without a certificate");
        return Err(Status::permission_denied(format!(
            "a peer without a certificate is not allowed to call {service}"
        )));
    };
    let names: Vec<&str> = match webpki::EndEntityCert::try_from(leaf) {
        Ok(cert) => cert.valid_dns_names().collect(),
        Err(_) => Vec::new(),
    };
    if allowed(callers, request.uri().path(), &names) {
        return Ok(());
    }
    let peer = if names.is_empty() {
        "without a DNS name".to_string()
    } else {
        names.join(", ")
    };
    tracing::warn!(%peer, %service, allowed = ?callers.names(), "refused a caller by certificate name");
    Err(Status::permission_denied(format!(
        "peer {peer} is not allowed to call {service}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_admits_itself_and_the_names_under_it() {
        let tree = PeerPolicy::new(["tree"]);
        assert!(tree.admits(["tree"]));
        assert!(tree.admits(["tree.evault.svc.cluster.local"]));
        assert!(tree.admits(["tree."]));
    }

    #[test]
    fn a_longer_name_with_the_same_start_is_another_peer() {
        let tree = PeerPolicy::new(["tree"]);
        assert!(!tree.admits(["treehouse"]));
        assert!(!tree.admits(["treehouse.evault.svc"]));
        assert!(!tree.admits(["tre"]));
        assert!(!tree.admits(["ingest.tree"]));
        assert!(!tree.admits(["xtree"]));
        assert!(!tree.admits(["tree-0.tree"]));
    }

    #[test]
    fn names_compare_in_any_case() {
        assert!(PeerPolicy::new(["tree"]).admits(["TREE.Evault.SVC"]));
        assert!(PeerPolicy::new(["Gateway"]).admits(["gateway"]));
    }

    #[test]
    fn any_allowed_name_and_any_presented_name_will_do() {
        let tree = PeerPolicy::new(["ingest", "gateway"]);
        assert!(tree.admits(["localhost", "gateway.evault"]));
        assert!(!tree.admits(["localhost", "signer"]));
        assert!(!tree.admits([]));
    }

    #[test]
    fn an_empty_name_admits_no_one() {
        let nobody = PeerPolicy::new([""]);
        assert!(!nobody.admits(["tree"]));
        assert!(!nobody.admits([""]));
        assert!(!nobody.admits([".tree"]));
    }

    #[test]
    fn a_scraper_reads_metrics_and_calls_nothing() {
        let signer = PeerPolicy::new(["tree"]);
        let scraper = ["metrics.monitoring.svc"];
        assert!(allowed(&signer, "/metrics", &scraper));
        assert!(!allowed(&signer, "/metrics/", &scraper));
        assert!(!allowed(
            &signer,
            "/evault.v1.SignerService/SignCheckpoint",
            &scraper
        ));
        assert!(allowed(&signer, "/metrics", &["tree"]));
        assert!(!allowed(&signer, "/metrics", &["ingest", "metricsx"]));
    }

    /// A service that answers OK and counts what reached it.
    #[derive(Clone, Default)]
    struct Counted(Arc<std::sync::atomic::AtomicUsize>);

    impl Service<http::Request<()>> for Counted {
        type Response = http::Response<String>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<http::Response<String>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready(Ok(http::Response::new("served".into())))
        }
    }

    fn call(check: PeerCheck, inner: &Counted) -> http::Response<String> {
        let request = http::Request::builder()
            .uri("/evault.v1.SignerService/SignCheckpoint")
            .body(())
            .expect("request");
        let mut service = check.layer(inner.clone());
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(service.call(request))
            .expect("infallible")
    }

    #[test]
    fn a_policy_refuses_a_request_that_came_without_tls() {
        let inner = Counted::default();
        let check = PeerCheck {
            callers: Some(Arc::new(PeerPolicy::new(["tree"]))),
        };
        let response = call(check, &inner);
        let status = Status::from_header_map(response.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            status.message(),
            "a peer without a certificate is not allowed to call evault.v1.SignerService"
        );
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn a_refused_scrape_is_forbidden_in_http_terms() {
        let inner = Counted::default();
        let check = PeerCheck {
            callers: Some(Arc::new(PeerPolicy::new(["tree"]))),
        };
        let request = http::Request::builder()
            .uri(SCRAPE_PATH)
            .body(())
            .expect("request");
        let response = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(check.layer(inner.clone()).call(request))
            .expect("infallible");
        assert_eq!(response.status(), http::StatusCode::FORBIDDEN);
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn without_a_policy_every_request_passes() {
        let inner = Counted::default();
        let response = call(PeerCheck { callers: None }, &inner);
        assert_eq!(response.body(), "served");
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    fn client_tls() -> ClientTlsConfig {
        ClientTlsConfig::new()
    }

    #[test]
    fn an_address_says_whether_tls_is_on() {
        let tls = client_tls();
        assert!(endpoint("https://tree:7402", Some(&tls)).is_ok());
        assert!(endpoint("http://tree:7402", None).is_ok());
        assert!(matches!(
            endpoint("http://tree:7402", Some(&tls)),
            Err(TlsError::Scheme { .. })
        ));
        assert!(matches!(
            endpoint("https://tree:7402", None),
            Err(TlsError::Scheme { .. })
        ));
    }

    struct Pem {
        cert: String,
        key: String,
    }

    fn self_signed(name: &str) -> Pem {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    #[test]
    fn material_is_checked_when_read() {
        let tree = self_signed("tree");
        let other = self_signed("other");
        let ca = Some(tree.cert.as_bytes());
        assert!(RoleTls::from_pem(tree.cert.as_bytes(), tree.key.as_bytes(), ca).is_ok());
        assert!(matches!(
            RoleTls::from_pem(b"", tree.key.as_bytes(), ca),
            Err(TlsError::Certificate(_))
        ));
        assert!(matches!(
            RoleTls::from_pem(tree.key.as_bytes(), tree.key.as_bytes(), ca),
            Err(TlsError::Certificate(_))
        ));
        assert!(matches!(
            RoleTls::from_pem(tree.cert.as_bytes(), tree.cert.as_bytes(), ca),
            Err(TlsError::Key(_))
        ));
        assert!(matches!(
            RoleTls::from_pem(tree.cert.as_bytes(), other.key.as_bytes(), ca),
            Err(TlsError::Key(_))
        ));
        assert!(matches!(
            RoleTls::from_pem(tree.cert.as_bytes(), tree.key.as_bytes(), Some(b"junk")),
            Err(TlsError::Ca(_))
        ));
    }

    #[test]
    fn mutual_tls_needs_the_ca() {
        let tree = self_signed("tree");
        let tls =
            RoleTls::from_pem(tree.cert.as_bytes(), tree.key.as_bytes(), None).expect("material");
        assert!(matches!(tls.client(), Err(TlsError::NoCa)));
        assert!(matches!(
            tls.internal_server(PeerPolicy::new(["ingest"])),
            Err(TlsError::NoCa)
        ));
    }
}
