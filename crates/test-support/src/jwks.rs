//! An identity provider for tests of caller authentication: signing keys
//! ([`TestKey`]) whose public halves a JWKS server on 127.0.0.1
//! ([`JwksServer`]) publishes, and forgers of the tokens an attacker would
//! try (unsigned, HMAC-signed with a public key).
//!
//! The server runs on a thread of its own with plain blocking sockets, so
//! it serves plain `#[test]` functions and any tokio runtime alike. It
//! answers every request on every path with the current JWKS, one request
//! per connection, and counts what it served.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents,
};
use serde_json::{Value, json};

/// The issuer of test tokens ([`claims`]).
pub const ISSUER: &str = "https://idp.test.example";
/// The audience of test tokens ([`claims`]).
pub const AUDIENCE: &str = "evault-test";

/// The claims of a token from [`ISSUER`] for [`AUDIENCE`] naming `sub` and
/// holding `scope` (space-separated), issued now and valid for five
/// minutes. Tests change members to make the token they need.
pub fn claims(sub: &str, scope: &str) -> Value {
    let now = unix_now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "scope": scope,
    })
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Test-only RSA private keys (see `keys/README.md`): generating 2048-bit
/// RSA keys in every test would be slow.
const RSA_FIXTURES: [&str; 2] = [
    include_str!("../keys/test-only-rsa-1.pem"),
    include_str!("../keys/test-only-rsa-2.pem"),
];

/// A signing key of a test identity provider, with its key id.
pub struct TestKey {
    kid: String,
    /// What [`TestKey::jwk`] says in its `alg` member (absent when `None`).
    jwk_alg: Option<String>,
    pair: Pair,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl TestKey {
    /// The first RSA fixture key (RS256) under `kid`.
    pub fn rsa(kid: &str) -> TestKey {
        TestKey::rsa_fixture(kid, 0)
    }

    /// RSA fixture key number `n` (0 or 1: two distinct keys) under `kid`.
    pub fn rsa_fixture(kid: &str, n: usize) -> TestKey {
        let pair = RsaKeyPair::from_pkcs8(&pem_der(RSA_FIXTURES[n])).expect("RSA fixture");
        TestKey::new(kid, "RS256", Pair::Rsa(pair))
    }

    /// A fresh P-256 key (ES256) under `kid`.
    pub fn ec(kid: &str) -> TestKey {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("P-256 key");
        TestKey::new(kid, "ES256", Pair::Ec(pair))
    }

    /// A fresh Ed25519 key (EdDSA) under `kid`.
    pub fn ed25519(kid: &str) -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 key");
        TestKey::new(kid, "EdDSA", Pair::Ed25519(pair))
    }

    fn new(kid: &str, alg: &str, pair: Pair) -> TestKey {
        TestKey {
            kid: kid.to_owned(),
            jwk_alg: Some(alg.to_owned()),
            pair,
        }
    }

    /// The same key, published with `alg` as its JWK's `alg` member, or
    /// with none.
    pub fn with_jwk_alg(mut self, alg: Option<&str>) -> TestKey {
        self.jwk_alg = alg.map(str::to_owned);
        self
    }

    /// The JWS algorithm this key signs with: RS256, ES256 or EdDSA.
    pub fn alg(&self) -> &'static str {
        match self.pair {
            Pair::Rsa(_) => "RS256",
            Pair::Ec(_) => "ES256",
            Pair::Ed25519(_) => "EdDSA",
        }
    }

    /// The public key as a JWK (`use` sig).
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.pair {
            Pair::Rsa(pair) => {
                let public: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
                json!({ "kty": "RSA", "n": b64(&public.n), "e": b64(&public.e) })
            }
            Pair::Ec(pair) => {
                // Uncompressed point: 0x04, then x and y, 32 bytes each.
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": b64(&point[1..33]),
                    "y": b64(&point[33..65]),
                })
            }
            Pair::Ed25519(pair) => {
                json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()) })
            }
        };
        jwk["kid"] = json!(self.kid);
        jwk["use"] = json!("sig");
        if let Some(alg) = &self.jwk_alg {
            jwk["alg"] = json!(alg);
        }
        jwk
    }

    /// The public key's bytes: for RSA the DER `RSAPublicKey` (PKCS#1), the
    /// bytes an algorithm-confusion attacker uses as an HMAC secret.
    pub fn public_key_der(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(pair) => pair.public().as_ref().to_vec(),
            Pair::Ec(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Ed25519(pair) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// A token for `claims`, with header `{alg, typ: JWT, kid}`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": self.alg(), "typ": "JWT", "kid": self.kid });
        self.sign_with_header(&header, claims)
    }

    /// A token for `claims` under `header` as given, signed with this key
    /// by its own algorithm whatever the header claims.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let rng = SystemRandom::new();
        let signature = match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut signature,
                )
                .expect("RSA signature");
                signature
            }
            Pair::Ec(pair) => pair
                .sign(&rng, input.as_bytes())
                .expect("ECDSA signature")
                .as_ref()
                .to_vec(),
            Pair::Ed25519(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }
}

/// An unsigned token (`alg: none` in a well-formed attack): `header` and
/// `claims` as given, and an empty signature.
pub fn unsigned_token(header: &Value, claims: &Value) -> String {
    format!("{}.", signing_input(header, claims))
}

/// A token whose signature is HMAC-SHA256 under `secret`: with `header`
/// saying HS256 and a public key as `secret`, the algorithm-confusion
/// attack on verifiers that let the token choose how the key is used.
pub fn hs256_token(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The DER inside a PEM document.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).expect("PEM body")
}

/// What the server publishes and how it answers. Shared by the test and
/// the server thread.
#[derive(Default)]
struct State {
    keys: Vec<Value>,
    /// Sent as `Cache-Control: max-age=N` when set.
    max_age: Option<u64>,
    /// Answer 500 instead of the JWKS.
    failing: bool,
    /// Requests answered, including failed ones.
    requests: usize,
}

/// A JWKS endpoint on 127.0.0.1 (port 0), stopped when dropped.
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl JwksServer {
    /// Starts serving an empty key set.
    pub fn start() -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind JWKS server");
        let addr = listener.local_addr().expect("JWKS server address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        answer(stream, &state);
                    }
                }
            }
        });
        JwksServer {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Where the JWKS is served.
    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Publishes `key`'s public half.
    pub fn add(&self, key: &TestKey) {
        self.state().keys.push(key.jwk());
    }

    /// Stops publishing the keys whose id is `kid`.
    pub fn retire(&self, kid: &str) {
        self.state().keys.retain(|jwk| jwk["kid"] != kid);
    }

    /// Sends `Cache-Control: max-age=<seconds>` from now on, or no
    /// `Cache-Control` at all.
    pub fn set_max_age(&self, seconds: Option<u64>) {
        self.state().max_age = seconds;
    }

    /// Answers 500 Internal Server Error instead of the JWKS while
    /// `failing`.
    pub fn set_failing(&self, failing: bool) {
        self.state().failing = failing;
    }

    /// Requests answered so far, failed ones included.
    pub fn requests(&self) -> usize {
        self.state().requests
    }

    /// The JWKS as served now.
    pub fn document(&self) -> Value {
        json!({ "keys": self.state().keys })
    }

    /// Writes the JWKS as served now to `path`, atomically (a reader sees
    /// the old file or the new one, never half of one).
    pub fn write_file(&self, path: &Path) {
        let partial = path.with_extension("partial");
        std::fs::write(&partial, self.document().to_string()).expect("write JWKS file");
        std::fs::rename(&partial, path).expect("replace JWKS file");
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("JWKS server state")
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request's head and answers it, closing the connection.
fn answer(mut stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let response = {
        let mut state = state.lock().expect("JWKS server state");
        state.requests += 1;
        if state.failing {
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                .to_owned()
        } else {
            let body = json!({ "keys": state.keys }).to_string();
            let cache = state
                .max_age
                .map(|s| format!("cache-control: max-age={s}\r\n"))
                .unwrap_or_default();
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{cache}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        }
    };
    let _ = stream.write_all(response.as_bytes());
}
