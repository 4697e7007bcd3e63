//! Evidence custody on a running vault, as its users meet it: uploaded
//! bytes read back with `evault evidence get` and erased with `evault
//! evidence erase`, each recorded in the audit trail before it happens;
//! receipts still verify after erasure, a later read says when, by whom
//! and why, and the bytes are never taken again. Refused callers are
//! recorded as counts, not one record each; on PostgreSQL every migration
//! applied is recorded once, however often the vault restarts.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use evault_test_support::ServerProcess;
use serde_json::Value;

fn evault() -> Command {
    evault_test_support::command(env!("CARGO_BIN_EXE_evault"))
}

fn run(args: &[&str]) -> Output {
    evault().args(args).output().expect("run evault")
}

fn ok(out: &Output) -> String {
    evault_test_support::succeeded(out)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn start_up(data: &Path, database_url: Option<&str>) -> ServerProcess {
    ServerProcess::up(env!("CARGO_BIN_EXE_evault"), data, database_url)
}

fn sha256_hex(bytes: &[u8]) -> String {
    evault_core::hash::hex(&evault_core::hash::sha256(bytes))
}

/// A token of the vault's local issuer for `sub` with `scope`.
fn token(data: &Path, sub: &str, scope: &str) -> String {
    ok(&run(&[
        "token",
        "--data-dir",
        &data.display().to_string(),
        "--sub",
        sub,
        "--scope",
        scope,
    ]))
    .trim()
    .to_string()
}

/// The trail's events once `done` holds for them, polling `evault audit
/// --json` for at most a minute (refusals are recorded per window).
fn audited_until(server: &str, vkey: &Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let vkey = vkey.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = run(&["audit", "--server", server, "--vkey-file", &vkey, "--json"]);
        if out.status.code() == Some(0) {
            let mut lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str(l).expect("JSON line"))
                .collect();
            let summary = lines.pop().expect("summary");
            assert_eq!(summary["verified"], Value::Bool(true), "{summary}");
            if done(&lines) {
                return lines;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the trail never held what was expected: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

fn custody_of_uploaded_evidence(database_url: Option<&str>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let vkey = data.join("verifier-key");
    let server = start_up(&data, database_url);
    let url = server.url.clone();
    let dev = data.join("dev-token").display().to_string();

    let content = b"the incident's memory image, in short\n".to_vec();
    let digest = sha256_hex(&content);
    let file = tmp.path().join("memory.img");
    std::fs::write(&file, &content).expect("write");
    let receipts = tmp.path().join("receipts");
    let receipts_arg = receipts.display().to_string();
    let file_arg = file.display().to_string();
    let upload = || {
        run(&[
            "append",
            "--server",
            &url,
            "--token-file",
            &dev,
            "--receipts",
            &receipts_arg,
            "--upload",
            &file_arg,
        ])
    };
    ok(&upload());

    // Read back, checked against the digest.
    let out_file = tmp.path().join("read-back");
    ok(&run(&[
        "evidence",
        "get",
        "--server",
        &url,
        "--token-file",
        &dev,
        "-o",
        &out_file.display().to_string(),
        &digest,
    ]));
    assert_eq!(std::fs::read(&out_file).expect("read back"), content);

    // Reading needs evault.read even though the log's reads are public;
    // erasing needs evault.admin.
    let appender = token(&data, "build-bot", "evault.append");
    let out = run(&[
        "evidence", "get", "--server", &url, "--token", &appender, &digest,
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("PermissionDenied"),
        "{}",
        stderr(&out)
    );
    let reader = token(&data, "auditor", "evault.read");
    let out = run(&[
        "evidence", "erase", "--server", &url, "--token", &reader, "--reason", "no", &digest,
    ]);
    assert!(
        stderr(&out).contains("PermissionDenied"),
        "{}",
        stderr(&out)
    );
    for _ in 0..3 {
        let out = run(&[
            "evidence",
            "get",
            "--server",
            &url,
            "--token",
            "not.a.token",
            &digest,
        ]);
        assert!(stderr(&out).contains("Unauthenticated"), "{}", stderr(&out));
    }
    // A reason is required; an unknown digest is not found.
    let out = run(&[
        "evidence",
        "erase",
        "--server",
        &url,
        "--token-file",
        &dev,
        "--reason",
        " ",
        &digest,
    ]);
    assert!(stderr(&out).contains("InvalidArgument"), "{}", stderr(&out));
    let unknown = sha256_hex(b"never uploaded");
    let out = run(&[
        "evidence",
        "get",
        "--server",
        &url,
        "--token-file",
        &dev,
        &unknown,
    ]);
    assert!(
        stderr(&out).contains("NotFound") && stderr(&out).contains("was uploaded"),
        "{}",
        stderr(&out)
    );

    // Erasure: the bytes go, who, when and why stay.
    let erased = ok(&run(&[
        "evidence",
        "erase",
        "--server",
        &url,
        "--token-file",
        &dev,
        "--reason",
        "court order 2026-117",
        &digest,
    ]));
    assert!(
        erased.starts_with(&format!("{digest} erased at "))
            && erased.contains(" by dev: court order 2026-117"),
        "{erased}"
    );
    let out = run(&[
        "evidence",
        "get",
        "--server",
        &url,
        "--token-file",
        &dev,
        &digest,
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = stderr(&out);
    assert!(
        said.contains("NotFound")
            && said.contains("was erased at ")
            && said.contains("by dev: court order 2026-117"),
        "{said}"
    );
    let again = ok(&run(&[
        "evidence",
        "erase",
        "--server",
        &url,
        "--token-file",
        &dev,
        "--reason",
        "a second order",
        &digest,
    ]));
    assert!(
        again.contains("was already erased") && again.contains("court order 2026-117"),
        "the first erasure stands: {again}"
    );

    // The entry stays: its receipt still verifies, offline.
    let receipt = std::fs::read_dir(&receipts)
        .expect("receipts")
        .next()
        .expect("one receipt")
        .expect("entry")
        .path();
    ok(&run(&[
        "verify",
        "--vkey-file",
        &vkey.display().to_string(),
        &receipt.display().to_string(),
    ]));
    // The same bytes are never stored again.
    let out = upload();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        said.contains("FailedPrecondition") || said.contains("erased"),
        "{said}"
    );

    // The trail holds each read and erasure, and the refusals as counts.
    let events = audited_until(&url, &vkey, |events| {
        let denied: u64 = named(events, "auth.denied")
            .iter()
            .map(|e| e["count"].as_u64().unwrap_or(0))
            .sum();
        !named(events, "evidence.erased").is_empty() && denied >= 5
    });
    let reads = named(&events, "evidence.read");
    assert_eq!(reads.len(), 1, "one successful read: {reads:?}");
    assert_eq!(reads[0]["principal"], Value::from("dev"));
    assert_eq!(reads[0]["sha256"], Value::from(digest.as_str()));
    assert_eq!(reads[0]["size"], Value::from(content.len()));
    let erasures = named(&events, "evidence.erased");
    assert_eq!(erasures.len(), 1, "{erasures:?}");
    assert_eq!(erasures[0]["reason"], Value::from("court order 2026-117"));
    assert_eq!(erasures[0]["principal"], Value::from("dev"));
    let denied = named(&events, "auth.denied");
    let count_of = |principal: Value, code: &str| -> u64 {
        denied
            .iter()
            .filter(|e| e["principal"] == principal && e["code"] == code)
            .map(|e| e["count"].as_u64().expect("count"))
            .sum()
    };
    assert_eq!(count_of(Value::Null, "UNAUTHENTICATED"), 3);
    assert_eq!(count_of(Value::from("build-bot"), "PERMISSION_DENIED"), 1);
    assert_eq!(count_of(Value::from("auditor"), "PERMISSION_DENIED"), 1);
    let unauthenticated: Vec<_> = denied.iter().filter(|e| e["principal"].is_null()).collect();
    assert!(
        unauthenticated.len() <= 2,
        "three refusals alike make one record per window: {unauthenticated:?}"
    );

    if database_url.is_some() {
        // Every migration of the log's database, recorded once, and once
        // only across a restart.
        let migrations = |events: &[Value]| -> Vec<u64> {
            named(events, "migration.applied")
                .iter()
                .map(|e| e["version"].as_u64().expect("version"))
                .collect()
        };
        let versions = migrations(&events);
        assert!(versions.len() >= 4, "{versions:?}");
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
        server.stop();
        let server = start_up(&data, database_url);
        let events = audited_until(&server.url, &vkey, |events| {
            named(events, "leader.acquired").len() == 2
        });
        assert_eq!(migrations(&events), versions);
        server.kill();
    } else {
        server.kill();
    }
}

#[test]
fn embedded_vault_keeps_custody_of_evidence() {
    custody_of_uploaded_evidence(None);
}

#[test]
fn postgres_vault_keeps_custody_of_evidence_and_records_its_migrations() {
    let schema = evault_test_support::PgSchema::create_blocking("evault_custody");
    custody_of_uploaded_evidence(Some(&schema.url));
    schema.drop_blocking();
}
