//! The identity provider of a development vault: a key and a JWKS file in
//! its data directory.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::json;

use crate::ttl::check_ttl;
use crate::{JwksSource, JwtConfig, Scope};

/// The private key, in the data directory.
const KEY_FILE: &str = "issuer-key";
/// The public key as a JWKS, beside it.
const JWKS_FILE: &str = "jwks.json";
const PEM_LABEL: &str = "PRIVATE KEY";

/// The local issuer: an Ed25519 key in DATA_DIR/issuer-key (PKCS#8 PEM,
/// mode 0600, created once and never replaced) and its public half in
/// DATA_DIR/jwks.json, which a [`crate::JwtVerifier`] reads like any
/// identity provider's JWKS ([`LocalIssuer::config`]).
pub struct LocalIssuer {
    /// The JWK thumbprint (RFC 7638) of the public key: stable for as
    /// long as the key is.
    kid: String,
    key: EncodingKey,
    /// The public key, for the JWKS.
    public: Vec<u8>,
}

impl LocalIssuer {
    /// The `iss` of the tokens it mints.
    pub const ISSUER: &'static str = "evault-local";
    /// The `aud` of the tokens it mints.
    pub const AUDIENCE: &'static str = "evault";

    /// The issuer of `data_dir`, created (key and JWKS) if it has none yet.
    /// The JWKS is written again from the key when it differs, so that it
    /// always holds the key's public half.
    pub fn open_or_create(data_dir: &Path) -> Result<LocalIssuer, String> {
        let in_dir = |e: std::io::Error| format!("{}: {e}", data_dir.display());
        std::fs::create_dir_all(data_dir).map_err(in_dir)?;
        let key_path = data_dir.join(KEY_FILE);
        if !key_path.exists() {
            create_key(&key_path)?;
        }
        let issuer = LocalIssuer::open(data_dir)?;
        let jwks_path = LocalIssuer::jwks_path(data_dir);
        let jwks = issuer.jwks();
        if std::fs::read_to_string(&jwks_path).ok().as_deref() != Some(jwks.as_str()) {
            replace_file(&jwks_path, jwks.as_bytes(), 0o644)?;
        }
        Ok(issuer)
    }

    /// The existing issuer of `data_dir`; an error naming the missing file
    /// when there is none.
    pub fn open(data_dir: &Path) -> Result<LocalIssuer, String> {
        let key_path = data_dir.join(KEY_FILE);
        let pem = std::fs::read_to_string(&key_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "no local issuer in {}: {} is missing (`evault up` or `evault token` creates it)",
                    data_dir.display(),
                    key_path.display()
                )
            } else {
                format!("{}: {e}", key_path.display())
            }
        })?;
        let not_a_key = || format!("{}: not a PKCS#8 Ed25519 key", key_path.display());
        let pkcs8 = pem_decode(&pem).ok_or_else(not_a_key)?;
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| not_a_key())?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(LocalIssuer {
            kid: thumbprint(&public),
            key: EncodingKey::from_ed_der(&pkcs8),
            public,
        })
    }

    /// Where the issuer's JWKS is: DATA_DIR/jwks.json.
    pub fn jwks_path(data_dir: &Path) -> PathBuf {
        data_dir.join(JWKS_FILE)
    }

    /// What a verifier of this issuer's tokens is configured with.
    pub fn config(data_dir: &Path) -> JwtConfig {
        JwtConfig {
            source: JwksSource::File(LocalIssuer::jwks_path(data_dir)),
            issuer: LocalIssuer::ISSUER.into(),
            audience: LocalIssuer::AUDIENCE.into(),
        }
    }

    /// The key id its tokens name.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A token for principal `sub` holding `scopes`, valid from now for
    /// `ttl` (more than zero, at most a year).
    pub fn mint(&self, sub: &str, scopes: &[Scope], ttl: Duration) -> Result<String, String> {
        if sub.is_empty() {
            return Err("a token's sub (the principal) must not be empty".into());
        }
        let ttl = check_ttl(ttl).map_err(|e| format!("token lifetime: {e}"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the clock is before 1970".to_owned())?
            .as_secs();
        let scope = scopes
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let claims = json!({
            "iss": LocalIssuer::ISSUER,
            "aud": LocalIssuer::AUDIENCE,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs(),
            "scope": scope,
        });
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("signing the token: {e}"))
    }

    /// The JWKS document of the public key.
    fn jwks(&self) -> String {
        let jwks = json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(&self.public),
                "alg": "EdDSA",
                "use": "sig",
                "kid": self.kid,
            }]
        });
        format!("{jwks:#}\n")
    }
}

impl fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over its
/// JWK's required members in lexical order, base64url.
fn thumbprint(public: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}

/// Generates the key and puts it at `path` unless a key is there already.
/// The key is written whole elsewhere and then linked in place, so that
/// `path` never holds half a key, and a concurrent creator's key (linked
/// first) is kept.
fn create_key(path: &Path) -> Result<(), String> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| "generating the issuer key failed".to_owned())?;
    let partial = partial_path(path);
    write_new(&partial, pem_encode(pkcs8.as_ref()).as_bytes(), 0o600)?;
    let linked = std::fs::hard_link(&partial, path);
    let _ = std::fs::remove_file(&partial);
    match linked {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Replaces `path` with `bytes` atomically: readers see the old file or
/// the new one.
fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let partial = partial_path(path);
    write_new(&partial, bytes, mode)?;
    std::fs::rename(&partial, path).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("{}: {e}", path.display())
    })?;
    sync_parent(path)
}

/// A file name beside `path` that no other writer, in this process or
/// another, uses.
fn partial_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(
        ".{}.{}.partial",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    path.with_file_name(name)
}

/// Creates `path` (which must not exist) with `mode`, holding `bytes`,
/// durably.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Makes a new name in `path`'s directory durable.
fn sync_parent(path: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

fn pem_encode(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        pem.push_str(line);
        pem.push('\n');
        rest = tail;
    }
    pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    pem
}

fn pem_decode(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .trim()
        .strip_prefix(&format!("-----BEGIN {PEM_LABEL}-----"))?
        .strip_suffix(&format!("-----END {PEM_LABEL}-----"))?;
    let body: String = body.split_whitespace().collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn jwks(dir: &Path) -> Value {
        let text = std::fs::read_to_string(LocalIssuer::jwks_path(dir)).expect("jwks.json");
        serde_json::from_str(&text).expect("JSON")
    }

    #[test]
    fn open_or_create_creates_the_key_and_its_jwks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = LocalIssuer::open_or_create(dir.path()).expect("issuer");
        let jwks = jwks(dir.path());
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1);
        let key = &keys[0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], issuer.kid());
        let x = URL_SAFE_NO_PAD
            .decode(key["x"].as_str().expect("x"))
            .expect("base64url");
        assert_eq!(x, issuer.public);
        assert!(key.get("d").is_none(), "no private member in the JWKS");
        let pem = std::fs::read_to_string(dir.path().join(KEY_FILE)).expect("key");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        // Nothing half-written is left behind.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["issuer-key", "jwks.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn the_key_is_private_and_the_jwks_public() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        LocalIssuer::open_or_create(dir.path()).expect("issuer");
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .expect("stat")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(KEY_FILE), 0o600);
        assert_eq!(mode(JWKS_FILE), 0o644);
    }

    #[test]
    fn reopening_keeps_the_key_and_its_kid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = LocalIssuer::open_or_create(dir.path()).expect("issuer");
        let key = std::fs::read(dir.path().join(KEY_FILE)).expect("key");
        let again = LocalIssuer::open_or_create(dir.path()).expect("issuer");
        let opened = LocalIssuer::open(dir.path()).expect("issuer");
        assert_eq!(again.kid(), first.kid());
        assert_eq!(opened.kid(), first.kid());
        assert_eq!(std::fs::read(dir.path().join(KEY_FILE)).expect("key"), key);
        assert_eq!(jwks(dir.path())["keys"][0]["kid"], first.kid());
    }

    #[test]
    fn a_lost_jwks_is_written_again_from_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = LocalIssuer::open_or_create(dir.path()).expect("issuer");
        let path = LocalIssuer::jwks_path(dir.path());
        std::fs::write(&path, "{\"keys\": []}").expect("damage");
        LocalIssuer::open_or_create(dir.path()).expect("issuer");
        assert_eq!(jwks(dir.path())["keys"][0]["kid"], issuer.kid());
    }

    #[test]
    fn concurrent_creators_end_with_one_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kids: Vec<String> = std::thread::scope(|s| {
            let creators: Vec<_> = (0..8)
                .map(|_| s.spawn(|| LocalIssuer::open_or_create(dir.path()).expect("issuer")))
                .collect();
            creators
                .into_iter()
                .map(|c| c.join().expect("creator").kid)
                .collect()
        });
        assert!(kids.iter().all(|kid| *kid == kids[0]), "{kids:?}");
        assert_eq!(jwks(dir.path())["keys"][0]["kid"], kids[0]);
    }

    #[test]
    fn open_without_an_issuer_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let error = LocalIssuer::open(dir.path()).expect_err("no issuer");
        assert!(error.contains("no local issuer"), "{error}");
        assert!(error.contains("issuer-key"), "{error}");
        assert!(!dir.path().join(KEY_FILE).exists(), "open creates nothing");
    }

    #[test]
    fn open_refuses_a_file_that_is_not_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(KEY_FILE), "hello").expect("write");
        let error = LocalIssuer::open_or_create(dir.path()).expect_err("not a key");
        assert!(error.contains("not a PKCS#8 Ed25519 key"), "{error}");
    }

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        // RFC 8037, appendix A.3: the thumbprint of its example key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("base64url");
        assert_eq!(
            thumbprint(&x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn mint_refuses_an_empty_sub_and_bad_lifetimes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = LocalIssuer::open_or_create(dir.path()).expect("issuer");
        let hour = Duration::from_secs(3600);
        assert!(issuer.mint("", &[Scope::Read], hour).is_err());
        assert!(issuer.mint("dev", &[Scope::Read], Duration::ZERO).is_err());
        assert!(
            issuer
                .mint("dev", &[Scope::Read], Duration::from_secs(400 * 24 * 3600))
                .is_err()
        );
    }

    #[test]
    fn pem_round_trips() {
        let der: Vec<u8> = (0..=200).collect();
        assert_eq!(pem_decode(&pem_encode(&der)), Some(der));
        assert_eq!(
            pem_decode("-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----"),
            None
        );
    }
}
