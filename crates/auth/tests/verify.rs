//! Tokens against a real JWKS server: what is accepted, and each attack
//! refused with `UNAUTHENTICATED` and a short reason.

use std::sync::Arc;

use evault_auth::{JwksSource, JwtConfig, JwtVerifier, MAX_TOKEN_BYTES, Principal, Scope};
use evault_test_support::jwks::{
    AUDIENCE, ISSUER, JwksServer, TestKey, claims, hs256_token, unix_now, unsigned_token,
};
use serde_json::json;
use tonic::Code;

fn config(server: &JwksServer) -> JwtConfig {
    JwtConfig {
        source: JwksSource::Url(server.url()),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
    }
}

/// A JWKS server publishing `keys`, and a verifier of its tokens.
async fn provider(keys: &[&TestKey]) -> (JwksServer, Arc<JwtVerifier>) {
    let server = JwksServer::start();
    for key in keys {
        server.add(key);
    }
    let verifier = JwtVerifier::start(config(&server)).await.expect("verifier");
    (server, verifier)
}

/// Asserts `token` is refused as unauthenticated for `reason`, and that
/// the refusal gives nothing of the token away.
async fn assert_refused(verifier: &JwtVerifier, token: &str, reason: &str) {
    let status = verifier.verify(token).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), reason);
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!status.message().contains(part), "{status:?}");
    }
}

async fn assert_accepted(verifier: &JwtVerifier, token: &str, expected: Principal) {
    assert_eq!(verifier.verify(token).await.expect("accepted"), expected);
}

#[tokio::test]
async fn accepts_rs256_es256_and_eddsa_tokens() {
    let keys = [
        TestKey::rsa("rsa-1"),
        TestKey::ec("ec-1"),
        TestKey::ed25519("ed-1"),
    ];
    let (_server, verifier) = provider(&keys.iter().collect::<Vec<_>>()).await;
    for (key, (sub, scope)) in keys.iter().zip([
        ("alice", Scope::Append),
        ("bob", Scope::Read),
        ("carol", Scope::Admin),
    ]) {
        let token = key.sign(&claims(sub, scope.as_str()));
        assert_accepted(&verifier, &token, Principal::new(sub, [scope])).await;
    }
}

#[tokio::test]
async fn scopes_come_from_scope_and_scp_and_unknown_ones_are_ignored() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;

    let spaced = key.sign(&claims(
        "alice",
        "openid evault.read  evault.append profile",
    ));
    let principal = verifier.verify(&spaced).await.expect("accepted");
    assert_eq!(principal.scopes(), &[Scope::Append, Scope::Read]);

    let mut listed = claims("alice", "");
    listed.as_object_mut().expect("claims").remove("scope");
    listed["scp"] = json!(["evault.admin", "email"]);
    let principal = verifier.verify(&key.sign(&listed)).await.expect("accepted");
    assert_eq!(principal.scopes(), &[Scope::Admin]);

    let mut none = claims("alice", "");
    none.as_object_mut().expect("claims").remove("scope");
    let principal = verifier.verify(&key.sign(&none)).await.expect("accepted");
    assert_eq!(principal, Principal::new("alice", []));
}

#[tokio::test]
async fn accepts_a_token_without_kid_by_trying_the_keys_of_its_algorithm() {
    let first = TestKey::ed25519("ed-1");
    let second = TestKey::ed25519("ed-2");
    let rsa = TestKey::rsa("rsa-1");
    let (_server, verifier) = provider(&[&first, &rsa, &second]).await;
    let header = json!({ "alg": "EdDSA", "typ": "JWT" });
    let token = second.sign_with_header(&header, &claims("alice", "evault.read"));
    assert_accepted(&verifier, &token, Principal::new("alice", [Scope::Read])).await;

    let ec = TestKey::ec("ec-1");
    let token = ec.sign_with_header(&json!({ "alg": "ES256" }), &claims("alice", ""));
    assert_refused(&verifier, &token, "no key for the token's algorithm").await;
}

#[tokio::test]
async fn refuses_alg_none() {
    let key = TestKey::rsa("rsa-1");
    let (_server, verifier) = provider(&[&key]).await;
    for alg in ["none", "None", "NONE"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": "rsa-1" });
        let token = unsigned_token(&header, &claims("mallory", "evault.admin"));
        assert_refused(
            &verifier,
            &token,
            "algorithm not accepted (RS256, ES256, EdDSA only)",
        )
        .await;
    }
}

#[tokio::test]
async fn refuses_hs256_signed_with_the_rsa_public_key() {
    let key = TestKey::rsa("rsa-1");
    let (server, verifier) = provider(&[&key]).await;
    let header = json!({ "alg": "HS256", "typ": "JWT", "kid": "rsa-1" });
    let forged_claims = claims("mallory", "evault.admin");
    // The public key as the attacker may find it: DER, or the JWK's
    // modulus as published.
    let jwk = &server.document()["keys"][0];
    for secret in [
        key.public_key_der(),
        jwk["n"].as_str().expect("n").as_bytes().to_vec(),
        jwk.to_string().into_bytes(),
    ] {
        let token = hs256_token(&secret, &header, &forged_claims);
        assert_refused(
            &verifier,
            &token,
            "algorithm not accepted (RS256, ES256, EdDSA only)",
        )
        .await;
    }
}

#[tokio::test]
async fn refuses_every_other_algorithm() {
    let key = TestKey::rsa("rsa-1");
    let (_server, verifier) = provider(&[&key]).await;
    for alg in [
        "HS256", "HS384", "HS512", "RS384", "RS512", "PS256", "ES384", "ES512", "Ed25519", "rs256",
    ] {
        let header = json!({ "alg": alg, "kid": "rsa-1" });
        let token = key.sign_with_header(&header, &claims("mallory", "evault.admin"));
        assert_refused(
            &verifier,
            &token,
            "algorithm not accepted (RS256, ES256, EdDSA only)",
        )
        .await;
    }
}

#[tokio::test]
async fn refuses_expired_tokens() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;
    let mut expired = claims("alice", "evault.read");
    expired["exp"] = json!(unix_now() - 120);
    assert_refused(&verifier, &key.sign(&expired), "token expired").await;
}

#[tokio::test]
async fn allows_a_minute_of_clock_skew() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;
    let mut skewed = claims("alice", "evault.read");
    skewed["exp"] = json!(unix_now() - 30);
    skewed["nbf"] = json!(unix_now() + 30);
    assert!(verifier.verify(&key.sign(&skewed)).await.is_ok());
}

#[tokio::test]
async fn refuses_tokens_not_yet_valid() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;
    let mut early = claims("alice", "evault.read");
    early["nbf"] = json!(unix_now() + 300);
    assert_refused(&verifier, &key.sign(&early), "token not yet valid").await;
}

#[tokio::test]
async fn refuses_tokens_without_exp() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;
    let mut forever = claims("alice", "evault.read");
    forever.as_object_mut().expect("claims").remove("exp");
    assert_refused(&verifier, &key.sign(&forever), "missing exp").await;
}

#[tokio::test]
async fn refuses_wrong_audience() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;
    for aud in [json!("another-service"), json!(["a", "b"]), json!([])] {
        let mut other = claims("alice", "evault.read");
        other["aud"] = aud;
        assert_refused(&verifier, &key.sign(&other), "wrong audience").await;
    }
    let mut missing = claims("alice", "evault.read");
    missing.as_object_mut().expect("claims").remove("aud");
    assert_refused(&verifier, &key.sign(&missing), "missing aud").await;
}

#[tokio::test]
async fn accepts_an_audience_array_containing_the_audience() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;
    let mut several = claims("alice", "evault.read");
    several["aud"] = json!(["another-service", AUDIENCE]);
    assert!(verifier.verify(&key.sign(&several)).await.is_ok());
}

#[tokio::test]
async fn refuses_wrong_issuer() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;
    for iss in [
        json!("https://evil.example"),
        json!(format!("{ISSUER}/")),
        json!([ISSUER]),
        json!([ISSUER, "https://evil.example"]),
    ] {
        let mut foreign = claims("alice", "evault.read");
        foreign["iss"] = iss;
        assert_refused(&verifier, &key.sign(&foreign), "wrong issuer").await;
    }
    let mut missing = claims("alice", "evault.read");
    missing.as_object_mut().expect("claims").remove("iss");
    assert_refused(&verifier, &key.sign(&missing), "missing iss").await;
}

#[tokio::test]
async fn refuses_a_missing_or_empty_sub() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;
    assert_refused(
        &verifier,
        &key.sign(&claims("", "evault.read")),
        "empty sub",
    )
    .await;
    let mut missing = claims("alice", "evault.read");
    missing.as_object_mut().expect("claims").remove("sub");
    assert_refused(&verifier, &key.sign(&missing), "missing sub").await;
}

#[tokio::test]
async fn refuses_a_malformed_scope_claim() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;
    let mut malformed = claims("alice", "");
    malformed["scope"] = json!({ "evault.admin": true });
    assert_refused(&verifier, &key.sign(&malformed), "malformed scope claim").await;
}

#[tokio::test]
async fn refuses_unknown_kid() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;
    let stranger = TestKey::ed25519("ed-2");
    let token = stranger.sign(&claims("mallory", "evault.admin"));
    assert_refused(&verifier, &token, "unknown key id").await;
}

#[tokio::test]
async fn refuses_a_token_signed_by_another_key_under_a_known_kid() {
    let key = TestKey::rsa_fixture("rsa-1", 0);
    let (_server, verifier) = provider(&[&key]).await;
    let impostor = TestKey::rsa_fixture("rsa-1", 1);
    let token = impostor.sign(&claims("mallory", "evault.admin"));
    assert_refused(&verifier, &token, "bad signature").await;
}

#[tokio::test]
async fn refuses_tampered_claims() {
    let key = TestKey::ec("ec-1");
    let (_server, verifier) = provider(&[&key]).await;
    let token = key.sign(&claims("alice", "evault.read"));
    let other = key.sign(&claims("mallory", "evault.admin"));
    let [header, _, signature] = parts(&token);
    let [_, payload, _] = parts(&other);
    let spliced = format!("{header}.{payload}.{signature}");
    assert_refused(&verifier, &spliced, "bad signature").await;
}

fn parts(token: &str) -> [&str; 3] {
    let mut parts = token.split('.');
    [(); 3].map(|()| parts.next().expect("part"))
}

#[tokio::test]
async fn refuses_tokens_over_8_kib() {
    let key = TestKey::ed25519("ed-1");
    let (server, verifier) = provider(&[&key]).await;
    let mut padded = claims("alice", "evault.read");
    padded["padding"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let token = key.sign(&padded);
    assert!(token.len() > MAX_TOKEN_BYTES);
    assert_refused(&verifier, &token, "token too large").await;
    // Refused before parsing: a huge token naming an unknown key id does
    // not even make the verifier look for it.
    let stranger = TestKey::ed25519("unknown");
    let before = server.requests();
    assert_refused(&verifier, &stranger.sign(&padded), "token too large").await;
    assert_eq!(server.requests(), before);
}

#[tokio::test]
async fn refuses_garbage() {
    let key = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&key]).await;
    assert_refused(&verifier, "", "malformed token").await;
    assert_refused(&verifier, "garbage", "malformed token").await;
    assert_refused(&verifier, "a.b", "malformed token").await;
    assert_refused(&verifier, "a.b.c.d", "malformed token").await;
    assert_refused(&verifier, "!!!.b.c", "malformed token").await;
    assert_refused(&verifier, "e30.e30.", "malformed token header").await;
    let token = key.sign(&claims("alice", "evault.read"));
    let [header, _, signature] = parts(&token);
    assert_refused(
        &verifier,
        &format!("{header}.e30.{signature}"),
        "bad signature",
    )
    .await;
}

#[tokio::test]
async fn refuses_an_es256_token_naming_an_rsa_key() {
    // Published without `alg`: only its type says it is an RSA key.
    let rsa = TestKey::rsa("shared").with_jwk_alg(None);
    let (_server, verifier) = provider(&[&rsa]).await;
    let ec = TestKey::ec("shared");
    let token = ec.sign(&claims("mallory", "evault.admin"));
    assert_refused(
        &verifier,
        &token,
        "the key does not fit the token's algorithm",
    )
    .await;
    let rs256 = rsa.sign(&claims("alice", "evault.read"));
    assert!(verifier.verify(&rs256).await.is_ok());
}

#[tokio::test]
async fn refuses_a_token_whose_alg_differs_from_its_jwk_alg() {
    // The key is RSA and the token RS256, but the provider published the
    // key for RS512 only.
    let rsa = TestKey::rsa("rsa-512").with_jwk_alg(Some("RS512"));
    let ed = TestKey::ed25519("ed-1");
    let (_server, verifier) = provider(&[&rsa, &ed]).await;
    let token = rsa.sign(&claims("mallory", "evault.admin"));
    assert_refused(&verifier, &token, "unknown key id").await;
}

#[tokio::test]
async fn start_fails_when_the_first_load_fails() {
    let config = |source| JwtConfig {
        source,
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("jwks.json");
    let error = JwtVerifier::start(config(JwksSource::File(missing.clone())))
        .await
        .expect_err("no file");
    assert!(error.contains(&missing.display().to_string()), "{error}");

    let server = JwksServer::start();
    let error = JwtVerifier::start(config(JwksSource::Url(server.url())))
        .await
        .expect_err("no keys");
    assert!(error.contains("no usable key"), "{error}");

    server.add(&TestKey::ed25519("ed-1"));
    server.set_failing(true);
    let error = JwtVerifier::start(config(JwksSource::Url(server.url())))
        .await
        .expect_err("500");
    assert!(error.contains("500"), "{error}");

    let url = server.url();
    drop(server);
    assert!(
        JwtVerifier::start(config(JwksSource::Url(url)))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn start_refuses_an_empty_issuer_or_audience() {
    let (server, _verifier) = provider(&[&TestKey::ed25519("ed-1")]).await;
    for (issuer, audience) in [("", AUDIENCE), (ISSUER, "")] {
        let config = JwtConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            ..config(&server)
        };
        assert!(JwtVerifier::start(config).await.is_err());
    }
}

#[tokio::test]
async fn verifies_from_a_jwks_file() {
    let key = TestKey::ec("ec-1");
    let server = JwksServer::start();
    server.add(&key);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    server.write_file(&path);
    let verifier = JwtVerifier::start(JwtConfig {
        source: JwksSource::File(path),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
    })
    .await
    .expect("verifier");
    let token = key.sign(&claims("alice", "evault.append"));
    let principal: Principal = verifier.verify(&token).await.expect("accepted");
    assert_eq!(principal.name, "alice");
}
