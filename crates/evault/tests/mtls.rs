//! Mutual TLS between the roles as their users run it: `evault dev-certs`,
//! the four roles as separate processes on PostgreSQL, an append through
//! the gateway, evidence read through it and recorded by the leading tree;
//! and the signer refusing every caller but tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use evault_core::{Receipt, parse_verifier_keys};
use evault_proto::tls::RoleTls;
use evault_proto::v1::GetVerifierKeysRequest;
use evault_proto::v1::signer_service_client::SignerServiceClient;
use evault_test_support::{Roles, succeeded};
use tonic::transport::{Certificate, ClientTlsConfig};

fn evault() -> Command {
    evault_test_support::command(env!("CARGO_BIN_EXE_evault"))
}

fn run(args: &[&str]) -> Output {
    evault().args(args).output().expect("run evault")
}

/// A usage error (exit 2) whose message says `what`.
fn refused(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(what), "{stderr}");
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The certificates `evault dev-certs` wrote to `dir`.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn make(dir: PathBuf) -> Certs {
        succeeded(&run(&["dev-certs", "--out", &path(&dir)]));
        Certs { dir }
    }

    fn ca(&self) -> String {
        path(&self.dir.join("ca.pem"))
    }

    /// The TLS flags of `role`.
    fn flags(&self, role: &str) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            path(&self.dir.join(format!("{role}.pem"))),
            "--tls-key".into(),
            path(&self.dir.join(format!("{role}-key.pem"))),
            "--tls-ca".into(),
            self.ca(),
        ]
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).expect("read certificate file")
    }

    /// A client presenting `role`'s certificate from this set, trusting
    /// `trusted`'s CA for the server.
    fn client(&self, role: &str, trusted: &Certs) -> ClientTlsConfig {
        RoleTls::from_pem(
            &self.read(&format!("{role}.pem")),
            &self.read(&format!("{role}-key.pem")),
            Some(&trusted.read("ca.pem")),
        )
        .expect("material")
        .client()
        .expect("client TLS")
    }
}

#[test]
fn dev_certs_keeps_keys_private_and_files_unless_forced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("certs");
    let certs = Certs::make(dir.clone());
    for role in ["signer", "tree", "ingest", "gateway", "metrics"] {
        let material = RoleTls::from_pem(
            &certs.read(&format!("{role}.pem")),
            &certs.read(&format!("{role}-key.pem")),
            Some(&certs.read("ca.pem")),
        );
        assert!(material.is_ok(), "{role}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let key = dir.join(format!("{role}-key.pem"));
            let mode = std::fs::metadata(&key).expect("stat").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{}", key.display());
        }
    }
    let ca = certs.read("ca.pem");
    refused(&run(&["dev-certs", "--out", &path(&dir)]), "--force");
    assert_eq!(certs.read("ca.pem"), ca, "an existing CA was overwritten");
    succeeded(&run(&["dev-certs", "--out", &path(&dir), "--force"]));
    assert_ne!(certs.read("ca.pem"), ca, "--force made no new CA");
}

#[test]
fn tls_flags_are_checked_before_a_role_serves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::make(tmp.path().join("certs"));
    let key = tmp.path().join("signing.key");
    succeeded(&run(&[
        "keygen",
        "--origin",
        "vault.example/flags",
        "--key-file",
        &path(&key),
    ]));
    let signer = |tls: &[&str]| {
        let mut args = vec![
            "serve",
            "signer",
            "--data-dir",
            tmp.path().to_str().expect("utf-8 path"),
            "--origin",
            "vault.example/flags",
            "--key-file",
            key.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend(tls);
        run(&args)
    };
    let cert = path(&certs.dir.join("signer.pem"));
    let signer_key = path(&certs.dir.join("signer-key.pem"));
    let ca = certs.ca();
    refused(
        &signer(&["--tls-cert", &cert]),
        "--tls-cert needs --tls-key",
    );
    refused(
        &signer(&["--tls-cert", &cert, "--tls-key", &signer_key]),
        "--tls-cert needs --tls-ca on the signer",
    );
    refused(&signer(&["--tls-ca", &ca]), "--tls-ca needs --tls-cert");
    refused(
        &signer(&[
            "--tls-cert",
            "/nonexistent.pem",
            "--tls-key",
            &signer_key,
            "--tls-ca",
            &ca,
        ]),
        "--tls-cert /nonexistent.pem",
    );
    refused(
        &signer(&["--tls-cert", &cert, "--tls-key", &cert, "--tls-ca", &ca]),
        "--tls-key",
    );
    let tree_key = path(&certs.dir.join("tree-key.pem"));
    refused(
        &signer(&["--tls-cert", &cert, "--tls-key", &tree_key, "--tls-ca", &ca]),
        "not the certificate's key",
    );
    refused(
        &signer(&["--allow-peer", "tree"]),
        "--allow-peer needs mutual TLS",
    );
}

/// A caller refused in the TLS handshake, with `alert`: the call fails in
/// the transport, with no answer from the server.
///
/// Under TLS 1.3 the client learns of the refusal only once it has sent
/// its request, and how depends on timing: it reads the server's alert,
/// or finds the connection already closed (a failed write, a reset, a
/// request cancelled). When it did read an alert, the alert is `alert`.
fn assert_handshake_refused(status: &tonic::Status, alert: &str) {
    let transport = std::error::Error::source(status)
        .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some());
    assert!(transport, "{status:?}");
    let seen = format!("{status:?}");
    assert!(
        !seen.contains("alert") || seen.contains(&format!("alert: {alert}")),
        "{seen}"
    );
}

/// Asks the signer at `url` for its keys, as a caller with `tls`.
fn call_signer(url: &str, tls: &ClientTlsConfig) -> Result<Vec<String>, tonic::Status> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let channel = evault_proto::tls::endpoint(url, Some(tls))
            .expect("endpoint")
            .connect_lazy();
        SignerServiceClient::new(channel)
            .get_verifier_keys(GetVerifierKeysRequest {
                origin: ORIGIN.into(),
            })
            .await
            .map(|r| r.into_inner().verifier_keys)
    })
}

const ORIGIN: &str = "vault.example/mtls";

#[test]
fn four_roles_under_mutual_tls_serve_only_their_callers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = Certs::make(tmp.path().join("certs"));
    let schema = evault_test_support::PgSchema::create_blocking("evault_mtls");
    // The signer keeps its record in a database of its own.
    let signer_schema = evault_test_support::PgSchema::create_blocking("evault_mtls_signer");
    let key = tmp.path().join("signing.key");
    let vkey = tmp.path().join("verifier-key");
    succeeded(&run(&[
        "keygen",
        "--origin",
        ORIGIN,
        "--key-file",
        &path(&key),
        "--vkey-out",
        &path(&vkey),
    ]));
    // A local issuer stands in for the organisation's identity provider.
    let issuer = tmp.path().join("issuer");
    let minted = succeeded(&run(&[
        "token",
        "--data-dir",
        &path(&issuer),
        "--sub",
        "mtls",
        "--scope",
        "evault.append",
    ]));
    let token = tmp.path().join("token");
    std::fs::write(&token, minted).expect("token");
    let Roles {
        mut signer,
        mut tree,
        mut ingest,
        mut gateway,
    } = Roles::start(
        env!("CARGO_BIN_EXE_evault"),
        ORIGIN,
        (&schema.url, &signer_schema.url),
        &key,
        &issuer,
        |role, command| {
            command.args(certs.flags(role));
            command.args(["--health-listen", "127.0.0.1:0"]);
        },
    );
    assert!(signer.url.starts_with("https://"), "{}", signer.url);

    // Probes that present no certificate (Kubernetes' gRPC probes) read
    // each role's health on its plaintext health port, and nothing else.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for (server, services) in [
        (&mut signer, &["", "evault.v1.SignerService"][..]),
        (
            &mut tree,
            &["", "evault.v1.TreeService", "evault.v1.SequencerService"][..],
        ),
        (
            &mut ingest,
            &["", "evault.v1.IngestService", "evault.v1.EvidenceService"][..],
        ),
        (
            &mut gateway,
            &["", "evault.v1.IngestService", "evault.v1.TreeService"][..],
        ),
    ] {
        let health = server.health_url();
        for service in services {
            runtime.block_on(evault_test_support::health::reaches(
                &health,
                service,
                evault_test_support::health::ServingStatus::Serving,
            ));
        }
        let metrics = ureq::get(format!("{health}/metrics")).call();
        assert!(metrics.is_err(), "the health port serves health only");
    }

    // An append through the gateway, over TLS, verifies.
    let files: Vec<String> = (0..20)
        .map(|i| {
            let file = tmp.path().join(format!("evidence-{i}.txt"));
            std::fs::write(&file, format!("evidence under mutual TLS {i}\n")).expect("write");
            path(&file)
        })
        .collect();
    let receipts = tmp.path().join("receipts");
    let mut append = vec![
        "append".to_string(),
        "--server".into(),
        gateway.url.clone(),
        "--tls-ca".into(),
        certs.ca(),
        "--token-file".into(),
        path(&token),
        "--receipts".into(),
        path(&receipts),
    ];
    append.extend(files);
    succeeded(&evault().args(&append).output().expect("append"));
    let keys = parse_verifier_keys(&std::fs::read_to_string(&vkey).expect("vkey")).expect("keys");
    let mut verified = 0;
    for entry in std::fs::read_dir(&receipts).expect("receipts") {
        let file = entry.expect("entry").path();
        if file.extension().is_some_and(|e| e == "tlog-proof") {
            let receipt = Receipt::parse(&std::fs::read(&file).expect("read")).expect("parse");
            receipt.verify(&keys, None).expect("verifies");
            verified += 1;
        }
    }
    assert_eq!(verified, 20);

    // The public reads work over the gateway's TLS too: the tile API
    // (HTTP/1.1) for fsck, gRPC for checkpoint and consistency, all
    // trusting the vault's CA.
    let ca = certs.ca();
    let vkey_file = path(&vkey);
    let audited = succeeded(&run(&[
        "fsck",
        "--vkey-file",
        &vkey_file,
        "--tls-ca",
        &ca,
        &gateway.url,
    ]));
    assert!(audited.contains("tree size  20"), "{audited}");
    let kept = path(&tmp.path().join("kept.checkpoint"));
    succeeded(&run(&[
        "checkpoint",
        "--server",
        &gateway.url,
        "--tls-ca",
        &ca,
        "-o",
        &kept,
    ]));
    succeeded(&run(&[
        "consistency",
        "--server",
        &gateway.url,
        "--tls-ca",
        &ca,
        "--vkey-file",
        &vkey_file,
        "--from",
        &kept,
    ]));
    // Without the CA, the gateway's certificate is not trusted.
    refused(
        &run(&["fsck", "--vkey-file", &vkey_file, &gateway.url]),
        &gateway.url,
    );

    // Evidence custody across the roles: ingest keeps the bytes and has
    // the leading tree record each read; the gateway has it record the
    // callers it refuses.
    let uploaded = tmp.path().join("uploaded.bin");
    std::fs::write(&uploaded, b"evidence kept under mutual TLS").expect("write");
    succeeded(&run(&[
        "append",
        "--server",
        &gateway.url,
        "--tls-ca",
        &ca,
        "--token-file",
        &path(&token),
        "--receipts",
        &path(&receipts),
        "--upload",
        &path(&uploaded),
    ]));
    let digest = evault_core::hash::hex(&evault_core::hash::sha256(
        b"evidence kept under mutual TLS",
    ));
    let reader = succeeded(&run(&[
        "token",
        "--data-dir",
        &path(&issuer),
        "--sub",
        "auditor",
        "--scope",
        "evault.read",
    ]));
    let read_back = tmp.path().join("read-back.bin");
    succeeded(&run(&[
        "evidence",
        "get",
        "--server",
        &gateway.url,
        "--tls-ca",
        &ca,
        "--token",
        reader.trim(),
        "-o",
        &path(&read_back),
        &digest,
    ]));
    assert_eq!(
        std::fs::read(&read_back).expect("read back"),
        b"evidence kept under mutual TLS"
    );
    let denied = run(&[
        "evidence",
        "get",
        "--server",
        &gateway.url,
        "--tls-ca",
        &ca,
        "--token-file",
        &path(&token),
        &digest,
    ]);
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("PermissionDenied"),
        "{denied:?}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = run(&[
            "audit",
            "--server",
            &gateway.url,
            "--tls-ca",
            &ca,
            "--vkey-file",
            &vkey_file,
            "--json",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let has = |event: &str, principal: &str| {
            text.lines().any(|l| {
                l.contains(&format!(r#""event":"{event}""#))
                    && l.contains(&format!(r#""principal":"{principal}""#))
            })
        };
        if out.status.success() && has("evidence.read", "auditor") && has("auth.denied", "mtls") {
            assert!(
                text.contains(r#""role":"gateway""#),
                "the gateway refused: {text}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the trail never recorded the read and the refusal: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    // The signer serves tree, and no one else.
    let keys = call_signer(&signer.url, &certs.client("tree", &certs)).expect("tree is served");
    assert_eq!(keys.len(), 1);
    let anonymous =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(certs.read("ca.pem")));
    let status = call_signer(&signer.url, &anonymous).expect_err("no certificate");
    assert_handshake_refused(&status, "CertificateRequired");
    let other = Certs::make(tmp.path().join("other"));
    let status = call_signer(&signer.url, &other.client("tree", &certs)).expect_err("another CA");
    assert_handshake_refused(&status, "UnknownCA");
    let status = call_signer(&signer.url, &certs.client("ingest", &certs)).expect_err("not tree");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(
        status.message(),
        "peer ingest, localhost is not allowed to call evault.v1.SignerService"
    );

    // The scraper's certificate reads every internal role's metrics, over
    // HTTP/1.1 under mutual TLS, and calls none of their services; a
    // role's certificate does not read a role it may not call.
    for role in [&signer, &tree, &ingest] {
        let text = scrape(&certs, "metrics", &role.url).expect("the scraper reads /metrics");
        assert!(text.contains("\nprocess_open_fds "), "{}: {text}", role.url);
    }
    let status = call_signer(&signer.url, &certs.client("metrics", &certs)).expect_err("a scraper");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    match scrape(&certs, "ingest", &signer.url) {
        Err(ureq::Error::StatusCode(403)) => {}
        other => panic!("ingest scraping the signer: {other:?}"),
    }

    drop((signer, tree, ingest, gateway));
    schema.drop_blocking();
    signer_schema.drop_blocking();
}

/// `GET /metrics` from `url` over HTTP/1.1, presenting `name`'s
/// certificate from `certs` and trusting its CA.
fn scrape(certs: &Certs, name: &str, url: &str) -> Result<String, ureq::Error> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
    let ca = Certificate::from_pem(&certs.read("ca.pem"))?;
    let cert = Certificate::from_pem(&certs.read(&format!("{name}.pem")))?;
    let key = PrivateKey::from_pem(&certs.read(&format!("{name}-key.pem")))?;
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&[ca]))
        .client_cert(Some(ClientCert::new_with_certs(&[cert], key)))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).build().into();
    agent
        .get(format!("{url}/metrics"))
        .call()?
        .into_body()
        .read_to_string()
}
