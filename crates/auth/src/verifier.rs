//! Verifying bearer tokens against an identity provider's JWKS.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode};
use serde::Deserialize;
use serde_json::Value;
use tokio::task::AbortHandle;
use tonic::Status;

use crate::keys::{Alg, KeySet, VerifyingKey};
use crate::{MAX_TOKEN_BYTES, Principal, Scope};

/// Clock skew allowed on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 60;
/// Tokens remembered as verified. Clients send the same token with every
/// call until it expires, and checking a signature costs 50 to 400 µs
/// (ES256 the most): the second call of a token costs a hash.
const VERIFIED_TOKENS: usize = 4096;
/// The longest a fetched JWKS is trusted, whatever its `max-age` says.
const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);
/// How long fetching a JWKS URL may take, from connecting to the last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JWKS document read.
const MAX_JWKS_BYTES: u64 = 1 << 20;

/// Where an identity provider publishes its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS file, re-read every [`Refresh::period`].
    File(PathBuf),
    /// A JWKS URL, fetched again when its `Cache-Control: max-age` runs
    /// out, or every [`Refresh::period`] when it gives none.
    Url(String),
}

impl fmt::Display for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksSource::File(path) => write!(f, "JWKS file {}", path.display()),
            JwksSource::Url(url) => write!(f, "JWKS URL {url}"),
        }
    }
}

/// The identity provider whose tokens are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtConfig {
    /// Its keys.
    pub source: JwksSource,
    /// The `iss` every token must carry, exactly.
    pub issuer: String,
    /// The audience every token's `aud` (a string or an array) must
    /// contain.
    pub audience: String,
}

/// When the keys are loaded again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refresh {
    /// The period of reloads of a file, of a URL whose answer has no
    /// `Cache-Control: max-age`, and of the next try after a failed
    /// reload. 5 minutes by default.
    pub period: Duration,
    /// Reloads triggered by tokens naming an unknown key id happen at most
    /// once per this interval, so that made-up key ids cannot turn the
    /// vault against its identity provider. Also the shortest period a
    /// URL's `max-age` may set. 10 seconds by default.
    pub unknown_kid_interval: Duration,
}

impl Default for Refresh {
    fn default() -> Refresh {
        Refresh {
            period: Duration::from_secs(5 * 60),
            unknown_kid_interval: Duration::from_secs(10),
        }
    }
}

/// Verifies bearer tokens against an identity provider's keys, which it
/// caches and refreshes. Shared (`Arc`) by every service of a process; its
/// refresh task ends when the last `Arc` is dropped.
pub struct JwtVerifier {
    config: JwtConfig,
    refresh: Refresh,
    /// The keys tokens are verified with, replaced whole by each successful
    /// load; a failed load leaves them as they are. Written only by
    /// `load`, under `reloading`.
    keys: RwLock<Arc<KeySet>>,
    /// Held for every load, so that loads never overlap; holds when the
    /// last load for an unknown key id started.
    reloading: tokio::sync::Mutex<Option<Instant>>,
    /// The periodic refresh task, aborted when the verifier is dropped.
    refresher: OnceLock<AbortHandle>,
    /// Bumped by every load of the keys: a token verified with an earlier
    /// key set is verified again, so a retired key stops counting at once.
    generation: AtomicU64,
    /// Tokens verified, by SHA-256 of the token: the principal, until the
    /// token's `exp`, for the key set generation it was verified with.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

/// A token verified earlier.
struct Verified {
    principal: Principal,
    exp: u64,
    generation: u64,
}

impl JwtVerifier {
    /// Loads the keys of `config.source` and starts refreshing them with
    /// the default [`Refresh`] timings. Fails when the first load fails or
    /// finds no usable key.
    pub async fn start(config: JwtConfig) -> Result<Arc<JwtVerifier>, String> {
        JwtVerifier::start_with(config, Refresh::default()).await
    }

    /// [`JwtVerifier::start`] with other refresh timings.
    pub async fn start_with(
        config: JwtConfig,
        refresh: Refresh,
    ) -> Result<Arc<JwtVerifier>, String> {
        if config.issuer.is_empty() || config.audience.is_empty() {
            return Err("the JWT issuer and audience must not be empty".into());
        }
        let (keys, max_age) = fetch(&config.source)
            .await
            .map_err(|e| format!("{}: {e}", config.source))?;
        tracing::info!(source = %config.source, keys = keys.len(), "JWKS loaded");
        let verifier = Arc::new(JwtVerifier {
            config,
            refresh,
            keys: RwLock::new(Arc::new(keys)),
            reloading: tokio::sync::Mutex::new(None),
            refresher: OnceLock::new(),
            generation: AtomicU64::new(0),
            verified: Mutex::new(HashMap::new()),
        });
        let first = verifier.period(max_age);
        let task = tokio::spawn(refresh_periodically(Arc::downgrade(&verifier), first));
        let _ = verifier.refresher.set(task.abort_handle());
        Ok(verifier)
    }

    /// The principal `token` (the bearer token alone, no scheme) names,
    /// or `UNAUTHENTICATED` with a short reason when the token is not
    /// one of the identity provider's, signed by one of its current keys,
    /// for this audience, valid now.
    ///
    /// The key is the one the header's `kid` names (the keys are reloaded
    /// first when it is unknown, at most once per
    /// [`Refresh::unknown_kid_interval`]); a token without `kid` is tried
    /// against every key of the type its `alg` needs. Keys a token carries
    /// or points to (`jwk`, `jku`, `x5u`, `x5c`) are never used.
    pub async fn verify(&self, token: &str) -> Result<Principal, Status> {
        // Before anything else: nothing unbounded is parsed.
        if token.len() > MAX_TOKEN_BYTES {
            return Err(refused("token too large"));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(digest.as_ref());
        if let Some(principal) = self.remembered(&fingerprint) {
            return Ok(principal);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let (principal, exp) = self.verify_afresh(token).await?;
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= VERIFIED_TOKENS {
            verified.clear();
        }
        verified.insert(
            fingerprint,
            Verified {
                principal: principal.clone(),
                exp,
                generation,
            },
        );
        Ok(principal)
    }

    /// The principal of a token verified before with the current keys,
    /// while it is valid (without the leeway: an old token is checked
    /// afresh).
    fn remembered(&self, fingerprint: &[u8; 32]) -> Option<Principal> {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = verified.get(fingerprint)?;
        (hit.generation == self.generation.load(Ordering::SeqCst) && unix_now() < hit.exp)
            .then(|| hit.principal.clone())
    }

    /// [`JwtVerifier::verify`] without the memory of tokens verified:
    /// the principal and the token's `exp`.
    async fn verify_afresh(&self, token: &str) -> Result<(Principal, u64), Status> {
        let header = Header::parse(token)?;
        let alg = Alg::from_name(&header.alg)
            .ok_or_else(|| refused("algorithm not accepted (RS256, ES256, EdDSA only)"))?;
        let mut keys = self.keys();
        let candidates: Vec<&VerifyingKey> = match header.kid.as_deref() {
            Some(kid) => {
                if !keys.has_kid(kid) {
                    keys = self.reload_for_unknown_kid(kid).await;
                }
                if !keys.has_kid(kid) {
                    return Err(refused("unknown key id"));
                }
                let fitting: Vec<_> = keys.with_kid(kid).filter(|k| k.alg == alg).collect();
                if fitting.is_empty() {
                    return Err(refused("the key does not fit the token's algorithm"));
                }
                fitting
            }
            // Without a key id, every key that fits the algorithm is
            // tried: what a provider with one key per algorithm expects.
            None => keys.for_alg(alg).collect(),
        };
        let validation = self.validation(alg);
        let mut refusal = refused("no key for the token's algorithm");
        for key in candidates {
            match decode::<Value>(token, &key.key, &validation) {
                Ok(data) => {
                    let exp = data.claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
                    return Ok((self.principal(data.claims)?, exp));
                }
                Err(e) => {
                    refusal = token_refusal(e.kind());
                    // The signature is checked before the claims: any
                    // other failure means this was the right key.
                    if !wrong_key(e.kind()) {
                        break;
                    }
                }
            }
        }
        Err(refusal)
    }

    fn keys(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn validation(&self, alg: Alg) -> Validation {
        let mut validation = Validation::new(alg.jwt());
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation
    }

    /// The principal of a token whose signature and registered claims
    /// passed.
    fn principal(&self, claims: Value) -> Result<Principal, Status> {
        // The JWT library also accepts an array `iss` containing the
        // issuer; a token names exactly one.
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(refused("wrong issuer"));
        }
        let name = match claims.get("sub").and_then(Value::as_str) {
            Some(sub) if !sub.is_empty() => sub.to_owned(),
            _ => return Err(refused("empty sub")),
        };
        let mut scopes = Vec::new();
        for claim in ["scope", "scp"] {
            scopes.extend(scope_claim(&claims, claim)?);
        }
        Ok(Principal::new(name, scopes))
    }

    /// The keys after a load for a token naming `kid`, unknown until then;
    /// the keys as they are when `kid` appeared meanwhile or the last such
    /// load is too recent.
    async fn reload_for_unknown_kid(&self, kid: &str) -> Arc<KeySet> {
        let mut last = self.reloading.lock().await;
        // A load may have finished while this one waited for the lock.
        let keys = self.keys();
        if keys.has_kid(kid)
            || last.is_some_and(|at| at.elapsed() < self.refresh.unknown_kid_interval)
        {
            return keys;
        }
        *last = Some(Instant::now());
        self.load().await;
        self.keys()
    }

    /// Loads the keys again, keeping the old ones when it fails, and says
    /// when to load them next.
    async fn reload(&self) -> Duration {
        let _loading = self.reloading.lock().await;
        self.load().await
    }

    /// Loads the keys; the caller holds `reloading`.
    async fn load(&self) -> Duration {
        match fetch(&self.config.source).await {
            Ok((keys, max_age)) => {
                tracing::debug!(source = %self.config.source, keys = keys.len(), "JWKS refreshed");
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                self.generation.fetch_add(1, Ordering::SeqCst);
                self.period(max_age)
            }
            Err(error) => {
                tracing::warn!(
                    source = %self.config.source,
                    %error,
                    "JWKS refresh failed; verifying with the keys already loaded"
                );
                self.refresh.period
            }
        }
    }

    /// How long keys loaded with `max_age` are used before the next load.
    fn period(&self, max_age: Option<Duration>) -> Duration {
        match max_age {
            Some(max_age) => max_age
                .max(self.refresh.unknown_kid_interval)
                .min(MAX_PERIOD),
            None => self.refresh.period,
        }
    }
}

impl Drop for JwtVerifier {
    fn drop(&mut self) {
        if let Some(task) = self.refresher.get() {
            task.abort();
        }
    }
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("config", &self.config)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

/// Reloads the keys every period while a verifier is alive. Holds only a
/// `Weak`, so that it never keeps the verifier alive.
async fn refresh_periodically(verifier: Weak<JwtVerifier>, mut period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(verifier) = verifier.upgrade() else {
            return;
        };
        period = verifier.reload().await;
    }
}

/// The keys of `source`, and how long they may be cached when it said.
async fn fetch(source: &JwksSource) -> Result<(KeySet, Option<Duration>), String> {
    let source = source.clone();
    tokio::task::spawn_blocking(move || {
        let (document, max_age) = match &source {
            JwksSource::File(path) => (std::fs::read(path).map_err(|e| e.to_string())?, None),
            JwksSource::Url(url) => get(url)?,
        };
        Ok((KeySet::parse(&document)?, max_age))
    })
    .await
    .map_err(|e| format!("loading the JWKS: {e}"))?
}

/// GETs a JWKS URL (blocking): its body and its `Cache-Control: max-age`.
fn get(url: &str) -> Result<(Vec<u8>, Option<Duration>), String> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            .http_status_as_error(false)
            .build(),
    );
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let max_age = response
        .headers()
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(max_age);
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_JWKS_BYTES)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok((body, max_age))
}

/// The `max-age` directive of a `Cache-Control` value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| value.trim().trim_matches('"').parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

/// The members of a token's header looked at before its signature.
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

impl Header {
    fn parse(token: &str) -> Result<Header, Status> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refused("malformed token"));
        };
        let json = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| refused("malformed token"))?;
        serde_json::from_slice(&json).map_err(|_| refused("malformed token header"))
    }
}

/// The scopes of the `scope` or `scp` claim: a space-separated string or
/// an array of strings (providers use both for both). Unknown scopes are
/// ignored.
fn scope_claim(claims: &Value, claim: &str) -> Result<Vec<Scope>, Status> {
    let names: Vec<&str> = match claims.get(claim) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(list)) => list.split_whitespace().collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or_else(|| refused("malformed scope claim"))?,
        Some(_) => return Err(refused("malformed scope claim")),
    };
    Ok(names.into_iter().filter_map(|n| n.parse().ok()).collect())
}

/// Whether a failed decoding means only that this key did not sign the
/// token, so that another key may be tried.
fn wrong_key(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidKeyFormat
    )
}

/// The refusal for a token the JWT library refused: a short reason, never
/// the token, a claim's value or the key.
fn token_refusal(kind: &ErrorKind) -> Status {
    refused(match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidKeyFormat => "bad signature",
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "missing exp",
            "iss" => "missing iss",
            "aud" => "missing aud",
            "sub" => "missing sub",
            _ => "missing claim",
        },
        ErrorKind::InvalidClaimFormat(_) => "malformed claim",
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => "algorithm not accepted (RS256, ES256, EdDSA only)",
        // The library's other refusals (a header it will not honour, bad
        // base64 or JSON, anything added later) all mean the token is
        // not one this vault reads.
        _ => "malformed token",
    })
}

fn refused(reason: &str) -> Status {
    Status::unauthenticated(reason)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age("max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(
            max_age("public, Max-Age = 60 , must-revalidate"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age("max-age=\"20\""), Some(Duration::from_secs(20)));
        assert_eq!(max_age("s-maxage=300"), None);
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

    #[test]
    fn scopes_come_from_a_string_or_an_array() {
        let claims = serde_json::json!({
            "scope": "evault.append  other evault.read",
            "scp": ["evault.admin", "x"],
            "bad": 7,
            "bad_items": ["evault.read", 7],
        });
        assert_eq!(
            scope_claim(&claims, "scope").expect("scope"),
            [Scope::Append, Scope::Read]
        );
        assert_eq!(scope_claim(&claims, "scp").expect("scp"), [Scope::Admin]);
        assert!(scope_claim(&claims, "absent").expect("absent").is_empty());
        assert!(scope_claim(&claims, "bad").is_err());
        assert!(scope_claim(&claims, "bad_items").is_err());
    }
}
