//! The JWKS cache: keys added, retired, unreachable, and how often the
//! identity provider is asked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use evault_auth::{JwksSource, JwtConfig, JwtVerifier, Refresh};
use evault_test_support::jwks::{AUDIENCE, ISSUER, JwksServer, TestKey, claims};
use tonic::Code;

/// Longest a test waits for a refresh that should come much sooner.
const PATIENCE: Duration = Duration::from_secs(15);

fn config(source: JwksSource) -> JwtConfig {
    JwtConfig {
        source,
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
    }
}

async fn start(server: &JwksServer, refresh: Refresh) -> Arc<JwtVerifier> {
    JwtVerifier::start_with(config(JwksSource::Url(server.url())), refresh)
        .await
        .expect("verifier")
}

fn token(key: &TestKey) -> String {
    key.sign(&claims("alice", "evault.append"))
}

async fn assert_unknown(verifier: &JwtVerifier, token: &str) {
    let status = verifier.verify(token).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "unknown key id");
}

/// Verifies `token` until the answer is `accepted` (or not), failing after
/// [`PATIENCE`].
async fn eventually(verifier: &JwtVerifier, token: &str, accepted: bool) {
    let start = Instant::now();
    while verifier.verify(token).await.is_ok() != accepted {
        assert!(
            start.elapsed() < PATIENCE,
            "still {} after {PATIENCE:?}",
            if accepted { "refused" } else { "accepted" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_key_added_after_start_is_accepted_after_the_unknown_kid_refresh() {
    let server = JwksServer::start();
    server.add(&TestKey::ed25519("old"));
    let verifier = start(&server, Refresh::default()).await;
    assert_eq!(server.requests(), 1);

    let new = TestKey::ec("new");
    server.add(&new);
    let principal = verifier.verify(&token(&new)).await.expect("accepted");
    assert_eq!(principal.name, "alice");
    assert_eq!(server.requests(), 2, "one refresh, at once");
}

#[tokio::test]
async fn a_retired_key_is_refused_after_the_periodic_refresh() {
    let server = JwksServer::start();
    let retired = TestKey::ed25519("retired");
    server.add(&retired);
    server.add(&TestKey::ed25519("kept"));
    let refresh = Refresh {
        period: Duration::from_millis(200),
        ..Refresh::default()
    };
    let verifier = start(&server, refresh).await;
    let token = token(&retired);
    assert!(verifier.verify(&token).await.is_ok());

    // Its key id is known, so nothing but the periodic refresh can drop it.
    server.retire("retired");
    eventually(&verifier, &token, false).await;
    assert_unknown(&verifier, &token).await;
}

#[tokio::test]
async fn unknown_kid_refresh_happens_at_most_once_per_interval() {
    let server = JwksServer::start();
    server.add(&TestKey::ed25519("known"));
    let interval = Duration::from_secs(2);
    let refresh = Refresh {
        period: Duration::from_secs(3600),
        unknown_kid_interval: interval,
    };
    let verifier = start(&server, refresh).await;
    let started = Instant::now();

    let strangers: Vec<String> = (0..10)
        .map(|i| token(&TestKey::ed25519(&format!("stranger-{i}"))))
        .collect();
    for token in &strangers[..5] {
        assert_unknown(&verifier, token).await;
    }
    let concurrent: Vec<_> = strangers[5..]
        .iter()
        .map(|token| {
            let verifier = Arc::clone(&verifier);
            let token = token.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in concurrent {
        let status = task.await.expect("task").expect_err("refused");
        assert_eq!(status.message(), "unknown key id");
    }
    assert_eq!(server.requests(), 2, "the first load and one refresh");

    // A key published now waits for the interval to run out.
    let late = TestKey::ec("late");
    server.add(&late);
    assert_unknown(&verifier, &token(&late)).await;
    assert!(started.elapsed() < interval, "the test ran too slowly");
    assert_eq!(server.requests(), 2);

    tokio::time::sleep(interval).await;
    assert!(verifier.verify(&token(&late)).await.is_ok());
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_cached_keys() {
    let server = JwksServer::start();
    let cached = TestKey::ed25519("cached");
    server.add(&cached);
    let refresh = Refresh {
        period: Duration::from_millis(100),
        ..Refresh::default()
    };
    let verifier = start(&server, refresh).await;

    server.set_failing(true);
    let failed_from = server.requests();
    let start = Instant::now();
    while server.requests() < failed_from + 3 {
        assert!(start.elapsed() < PATIENCE, "no refresh tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(verifier.verify(&token(&cached)).await.is_ok());
    // An unknown key id's refresh fails too, and changes nothing.
    assert_unknown(&verifier, &token(&TestKey::ed25519("stranger"))).await;
    assert!(verifier.verify(&token(&cached)).await.is_ok());

    // Once the provider is back, the next refresh is taken.
    server.set_failing(false);
    server.retire("cached");
    server.add(&TestKey::ed25519("next"));
    eventually(&verifier, &token(&cached), false).await;
}

#[tokio::test]
async fn a_vanished_jwks_server_leaves_the_cached_keys_in_use() {
    let server = JwksServer::start();
    let cached = TestKey::rsa("cached");
    server.add(&cached);
    let refresh = Refresh {
        period: Duration::from_millis(100),
        ..Refresh::default()
    };
    let verifier = start(&server, refresh).await;
    drop(server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(verifier.verify(&token(&cached)).await.is_ok());
}

#[tokio::test]
async fn cache_control_max_age_sets_the_refresh_period() {
    let server = JwksServer::start();
    let retired = TestKey::ed25519("retired");
    server.add(&retired);
    server.add(&TestKey::ed25519("kept"));
    server.set_max_age(Some(1));
    // Without max-age, the keys would be kept an hour.
    let refresh = Refresh {
        period: Duration::from_secs(3600),
        unknown_kid_interval: Duration::from_millis(100),
    };
    let verifier = start(&server, refresh).await;
    let token = token(&retired);
    assert!(verifier.verify(&token).await.is_ok());
    server.retire("retired");
    eventually(&verifier, &token, false).await;
}

#[tokio::test]
async fn max_age_never_refreshes_more_often_than_the_unknown_kid_interval() {
    let server = JwksServer::start();
    server.add(&TestKey::ed25519("key"));
    server.set_max_age(Some(0));
    let refresh = Refresh {
        period: Duration::from_secs(3600),
        unknown_kid_interval: Duration::from_millis(500),
    };
    let _verifier = start(&server, refresh).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let requests = server.requests();
    assert!((2..=4).contains(&requests), "{requests} requests");
}

#[tokio::test]
async fn a_jwks_file_is_read_again_periodically() {
    let server = JwksServer::start();
    let retired = TestKey::ed25519("retired");
    server.add(&retired);
    server.add(&TestKey::ec("kept"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    server.write_file(&path);
    let refresh = Refresh {
        period: Duration::from_millis(200),
        ..Refresh::default()
    };
    let verifier = JwtVerifier::start_with(config(JwksSource::File(path.clone())), refresh)
        .await
        .expect("verifier");
    let old = token(&retired);
    assert!(verifier.verify(&old).await.is_ok());

    server.retire("retired");
    let added = TestKey::rsa("added");
    server.add(&added);
    server.write_file(&path);
    // At once for the new key id, periodically for the retired one.
    assert!(verifier.verify(&token(&added)).await.is_ok());
    eventually(&verifier, &old, false).await;
}

#[tokio::test]
async fn the_refresh_task_ends_with_the_last_verifier() {
    let server = JwksServer::start();
    server.add(&TestKey::ed25519("key"));
    let refresh = Refresh {
        period: Duration::from_millis(50),
        ..Refresh::default()
    };
    let verifier = start(&server, refresh).await;
    let start = Instant::now();
    while server.requests() < 3 {
        assert!(start.elapsed() < PATIENCE, "no periodic refresh");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(verifier);
    // A fetch already under way may still arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = server.requests();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.requests(), after);
}
