//! Identity and access as callers meet them: `evault up` with its local
//! issuer, and with an identity provider's JWKS (file and URL), appended
//! to over gRPC with tokens good and bad.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use evault_core::EvidenceEntry;
use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::tree_service_client::TreeServiceClient;
use evault_proto::v1::{AppendRequest, EvidenceStatement, GetCheckpointRequest};
use evault_test_support::ServerProcess;
use evault_test_support::jwks::{
    AUDIENCE, ISSUER, JwksServer, TestKey, claims, hs256_token, unix_now, unsigned_token,
};
use serde_json::json;
use tonic::Code;
use tonic::metadata::MetadataValue;

fn evault() -> Command {
    evault_test_support::command(env!("CARGO_BIN_EXE_evault"))
}

fn up(data: &Path, extra: &[&str]) -> ServerProcess {
    let mut command = evault();
    command.args(["up", "--listen", "127.0.0.1:0", "--data-dir"]);
    command.arg(data).args(extra);
    ServerProcess::start(command)
}

fn ok(out: &Output) -> String {
    evault_test_support::succeeded(out)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn statement(tag: &str) -> EvidenceStatement {
    let content = format!("identity evidence {tag} {}", unix_now());
    EvidenceStatement {
        sha256: evault_core::hash::sha256(content.as_bytes()).to_vec(),
        size: content.len() as u64,
        media_type: "text/plain".into(),
        name: format!("{tag}.txt"),
        labels: vec![],
        content: None,
    }
}

/// Appends one statement with these `authorization` headers (none, one,
/// or several): the entry logged, or the status.
async fn append_with(
    url: &str,
    headers: &[&str],
    tag: &str,
) -> Result<EvidenceEntry, tonic::Status> {
    let mut client = IngestServiceClient::connect(url.to_string())
        .await
        .expect("connect");
    let mut request = tonic::Request::new(AppendRequest {
        statement: Some(statement(tag)),
    });
    for header in headers {
        let value: MetadataValue<_> = header.parse().expect("header value");
        request.metadata_mut().append("authorization", value);
    }
    let receipt = client
        .append(request)
        .await?
        .into_inner()
        .receipt
        .expect("receipt");
    Ok(EvidenceEntry::decode(&receipt.entry).expect("entry"))
}

async fn append(url: &str, token: &str, tag: &str) -> Result<EvidenceEntry, tonic::Status> {
    append_with(url, &[&format!("Bearer {token}")], tag).await
}

fn refused(result: Result<EvidenceEntry, tonic::Status>, code: Code, case: &str) -> String {
    match result {
        Ok(entry) => panic!("{case}: appended as {}", entry.principal),
        Err(status) => {
            assert_eq!(status.code(), code, "{case}: {status:?}");
            status.message().to_string()
        }
    }
}

#[test]
fn up_runs_a_local_issuer_whose_dev_token_appends_and_mints_more() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let vault = up(&data, &[]);

    // dev-token is a JWT signed by the key jwks.json publishes.
    let token = std::fs::read_to_string(data.join("dev-token")).expect("dev-token");
    let token = token.trim().to_string();
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("jwks.json")).expect("jwks.json"))
            .expect("JSON");
    let kid = jwks["keys"][0]["kid"].as_str().expect("kid").to_string();
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    let header = token.split('.').next().expect("header");
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
            .expect("base64url header"),
    )
    .expect("header JSON");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], kid.as_str());

    let rt = runtime();
    let entry = rt
        .block_on(append(&vault.url, &token, "dev"))
        .expect("the dev token appends");
    assert_eq!(entry.principal, "dev");

    // `evault token` mints from the same issuer: alice appends as alice,
    // a reader cannot append, and another vault's tokens mean nothing.
    let mint = |sub: &str, scope: &str, dir: &Path| {
        ok(&evault()
            .args(["token", "--data-dir"])
            .arg(dir)
            .args(["--sub", sub, "--scope", scope, "--ttl", "10m"])
            .output()
            .expect("evault token"))
        .trim()
        .to_string()
    };
    let alice = mint("alice", "evault.append", &data);
    let entry = rt
        .block_on(append(&vault.url, &alice, "alice"))
        .expect("alice");
    assert_eq!(entry.principal, "alice");
    let reader = mint("rita", "evault.read", &data);
    let message = refused(
        rt.block_on(append(&vault.url, &reader, "rita")),
        Code::PermissionDenied,
        "a reader appending",
    );
    assert!(message.contains("evault.append"), "{message}");
    let stranger = mint("mallory", "evault.append", &tmp.path().join("elsewhere"));
    refused(
        rt.block_on(append(&vault.url, &stranger, "mallory")),
        Code::Unauthenticated,
        "another issuer's key",
    );
    // The old plain development token is gone: nothing but a JWT counts.
    refused(
        rt.block_on(append(&vault.url, &"ab".repeat(32), "plain")),
        Code::Unauthenticated,
        "a plain random token",
    );
    // Reads stay public.
    rt.block_on(async {
        let mut tree = TreeServiceClient::connect(vault.url.clone())
            .await
            .expect("connect");
        tree.get_checkpoint(GetCheckpointRequest {})
            .await
            .expect("a public read");
    });
}

#[test]
fn closed_reads_need_the_read_scope_over_grpc_and_http() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let vault = up(&data, &["--public-reads=false"]);
    let dev = std::fs::read_to_string(data.join("dev-token")).expect("dev-token");
    let dev = dev.trim().to_string();
    let mint = |sub: &str, scope: &str| {
        ok(&evault()
            .args(["token", "--data-dir"])
            .arg(&data)
            .args(["--sub", sub, "--scope", scope])
            .output()
            .expect("evault token"))
        .trim()
        .to_string()
    };
    let writer = mint("wanda", "evault.append");
    let rt = runtime();
    rt.block_on(append(&vault.url, &dev, "closed"))
        .expect("append");

    let checkpoint = |token: Option<&str>| {
        rt.block_on(async {
            let mut tree = TreeServiceClient::connect(vault.url.clone())
                .await
                .expect("connect");
            let mut request = tonic::Request::new(GetCheckpointRequest {});
            if let Some(token) = token {
                let value: MetadataValue<_> = format!("Bearer {token}").parse().expect("header");
                request.metadata_mut().insert("authorization", value);
            }
            tree.get_checkpoint(request).await.map(|_| ())
        })
    };
    let anonymous = checkpoint(None).expect_err("an anonymous read");
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    let denied = checkpoint(Some(&writer)).expect_err("a writer reading");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("evault.read"), "{denied:?}");
    checkpoint(Some(&dev)).expect("a reader reads");

    // The tile API answers the same, in HTTP's words.
    let get = |token: Option<&str>| {
        let mut request = ureq::get(format!("{}/checkpoint", vault.url));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        match request.call() {
            Ok(response) => response.status().as_u16(),
            Err(ureq::Error::StatusCode(code)) => code,
            Err(e) => panic!("GET /checkpoint: {e}"),
        }
    };
    assert_eq!(get(None), 401);
    assert_eq!(get(Some(&writer)), 403);
    assert_eq!(get(Some(&dev)), 200);
}

#[test]
fn token_refuses_bad_usage_with_exit_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (args, says) in [
        (
            vec!["--sub", "a", "--scope", "evault.write"],
            "unknown scope",
        ),
        (vec!["--sub", "a", "--ttl", "0s"], "ttl"),
        (vec!["--sub", " ", "--scope", "evault.read"], "--sub"),
    ] {
        let out = evault()
            .args(["token", "--data-dir"])
            .arg(tmp.path())
            .args(&args)
            .output()
            .expect("evault token");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn up_with_a_jwks_file_accepts_rs256_es256_and_eddsa_and_records_the_sub() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let idp = JwksServer::start();
    let keys = [
        TestKey::rsa("rsa-1"),
        TestKey::ec("ec-1"),
        TestKey::ed25519("ed-1"),
    ];
    for key in &keys {
        idp.add(key);
    }
    let jwks = tmp.path().join("jwks.json");
    idp.write_file(&jwks);
    let data = tmp.path().join("data");
    let vault = up(
        &data,
        &[
            "--jwks-file",
            &jwks.display().to_string(),
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
        ],
    );
    // An identity provider named: no local issuer, no development token.
    assert!(!data.join("dev-token").exists());
    assert!(!data.join("jwks.json").exists());

    let rt = runtime();
    for key in &keys {
        let sub = format!("svc-{}", key.alg());
        let token = key.sign(&claims(&sub, "evault.append"));
        let entry = rt
            .block_on(append(&vault.url, &token, key.alg()))
            .unwrap_or_else(|e| panic!("{}: {e:?}", key.alg()));
        assert_eq!(entry.principal, sub);
        // Scopes as an `scp` array, as some providers send them.
        let mut with_scp = claims(&sub, "");
        with_scp["scp"] = json!(["evault.read", "evault.append"]);
        with_scp.as_object_mut().expect("object").remove("scope");
        rt.block_on(append(&vault.url, &key.sign(&with_scp), "scp"))
            .unwrap_or_else(|e| panic!("{} with scp: {e:?}", key.alg()));
    }
}

#[test]
fn up_with_a_jwks_url_refuses_every_attack_and_follows_the_key_set() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let idp = JwksServer::start();
    let rsa = TestKey::rsa("rsa-1");
    let ec = TestKey::ec("ec-1");
    idp.add(&rsa);
    idp.add(&ec);
    idp.set_max_age(Some(1));
    let vault = up(
        &tmp.path().join("data"),
        &[
            "--jwks-url",
            &idp.url(),
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
        ],
    );
    let rt = runtime();
    let url = vault.url.as_str();
    let good = claims("alice", "evault.append");
    rt.block_on(append(url, &rsa.sign(&good), "good"))
        .expect("a good token");

    let now = unix_now();
    let mut expired = good.clone();
    expired["iat"] = json!(now - 7200);
    expired["nbf"] = json!(now - 7200);
    expired["exp"] = json!(now - 3600);
    let mut early = good.clone();
    early["nbf"] = json!(now + 3600);
    early["exp"] = json!(now + 7200);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("another-service");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    let mut huge = good.clone();
    huge["padding"] = json!("x".repeat(9000));
    let none = unsigned_token(&json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"}), &good);
    let hs256 = hs256_token(
        &rsa.public_key_der(),
        &json!({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}),
        &good,
    );
    let unknown = TestKey::ec("nobody");
    let cases: Vec<(&str, Vec<String>, Code)> = vec![
        ("no header", vec![], Code::Unauthenticated),
        (
            "garbage header",
            vec!["Bearer !!!garbage!!!".into()],
            Code::Unauthenticated,
        ),
        (
            "not a bearer token",
            vec!["Basic YWxpY2U6cw==".into()],
            Code::Unauthenticated,
        ),
        (
            "two authorization headers",
            vec![
                format!("Bearer {}", rsa.sign(&good)),
                format!("Bearer {}", ec.sign(&good)),
            ],
            Code::Unauthenticated,
        ),
        (
            "alg none",
            vec![format!("Bearer {none}")],
            Code::Unauthenticated,
        ),
        (
            "HS256 signed with the RSA public key",
            vec![format!("Bearer {hs256}")],
            Code::Unauthenticated,
        ),
        (
            "expired",
            vec![format!("Bearer {}", rsa.sign(&expired))],
            Code::Unauthenticated,
        ),
        (
            "not yet valid",
            vec![format!("Bearer {}", rsa.sign(&early))],
            Code::Unauthenticated,
        ),
        (
            "wrong aud",
            vec![format!("Bearer {}", rsa.sign(&wrong_aud))],
            Code::Unauthenticated,
        ),
        (
            "wrong iss",
            vec![format!("Bearer {}", rsa.sign(&wrong_iss))],
            Code::Unauthenticated,
        ),
        (
            "over 8 KiB",
            vec![format!("Bearer {}", rsa.sign(&huge))],
            Code::Unauthenticated,
        ),
        (
            "unknown kid",
            vec![format!("Bearer {}", unknown.sign(&good))],
            Code::Unauthenticated,
        ),
        (
            "only evault.read",
            vec![format!(
                "Bearer {}",
                ec.sign(&claims("rita", "evault.read"))
            )],
            Code::PermissionDenied,
        ),
    ];
    for (case, headers, code) in &cases {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let message = refused(rt.block_on(append_with(url, &headers, case)), *code, case);
        for secret in ["-----BEGIN", "\"n\":", "\"d\":"] {
            assert!(!message.contains(secret), "{case}: {message}");
        }
    }

    // A key published after start is accepted within seconds; a retired
    // one is refused after the next refresh.
    let newcomer = TestKey::ed25519("ed-new");
    idp.add(&newcomer);
    let token = newcomer.sign(&claims("newcomer", "evault.append"));
    let entry = eventually(
        || rt.block_on(append(url, &token, "newcomer")),
        "the new key",
    );
    assert_eq!(entry.principal, "newcomer");
    idp.retire("rsa-1");
    let old = rsa.sign(&good);
    let status = eventually(
        || match rt.block_on(append(url, &old, "retired")) {
            Ok(_) => Err("still accepted"),
            Err(status) => Ok(status),
        },
        "the retired key to be refused",
    );
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

/// Retries `attempt` for up to 30 seconds: a key set refreshes on its own
/// schedule (at most every 10 seconds for unknown key ids).
fn eventually<T, E: std::fmt::Debug>(mut attempt: impl FnMut() -> Result<T, E>, what: &str) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(e) if Instant::now() > deadline => panic!("waited 30 s for {what}: {e:?}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}
