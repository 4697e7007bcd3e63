//! The audit trail of a running vault, as an auditor checks it: `evault
//! audit` verifies the trail and its chain of the log's checkpoints and
//! prints the events (as text, as JSON, since a kept checkpoint), across a
//! restart; the trail's tiles pass `evault fsck` with the keys the gateway
//! lists under `/audit/verifier-keys`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use evault_core::trail::audit_origin;
use evault_core::{open_checkpoint, parse_verifier_keys};
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

fn start_up(data: &Path, database_url: Option<&str>) -> ServerProcess {
    ServerProcess::up(env!("CARGO_BIN_EXE_evault"), data, database_url)
}

/// Appends `count` new files from number `from` on, as one client run.
fn append(server: &str, data: &Path, dir: &Path, from: u32, count: u32) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let files: Vec<String> = (from..from + count)
        .map(|i| {
            let path = dir.join(format!("evidence-{i:04}.txt"));
            std::fs::write(&path, format!("audited evidence {i}\n")).expect("write");
            path.display().to_string()
        })
        .collect();
    let token = data.join("dev-token").display().to_string();
    let receipts = dir.join("receipts").display().to_string();
    let mut args = vec![
        "append",
        "--server",
        server,
        "--token-file",
        &token,
        "--receipts",
        &receipts,
    ];
    args.extend(files.iter().map(String::as_str));
    ok(&run(&args));
}

/// `GET url`: the status and body.
fn get(url: &str) -> (u16, Vec<u8>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let body = response.body_mut().read_to_vec().expect("body");
    (response.status().as_u16(), body)
}

fn audit(server: &str, vkey: &Path, extra: &[&str]) -> Output {
    let vkey = vkey.display().to_string();
    let mut args = vec!["audit", "--server", server, "--vkey-file", &vkey];
    args.extend(extra);
    run(&args)
}

/// The lines of `evault audit --json`: the events, then the summary.
fn json_lines(out: &str) -> (Vec<Value>, Value) {
    let mut lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let summary = lines.pop().expect("a summary line");
    assert_eq!(summary["verified"], Value::Bool(true), "{summary}");
    (lines, summary)
}

/// The log's latest size.
fn log_size(server: &str) -> u64 {
    let out = ok(&run(&["checkpoint", "--server", server, "--json"]));
    let checkpoint: Value = serde_json::from_str(out.trim()).expect("JSON");
    checkpoint["size"].as_u64().expect("size")
}

/// Audits until the trail has recorded the log's latest checkpoint (the
/// trail is written after the log, and may trail it briefly); returns the
/// last audit's events and summary.
fn audit_caught_up(server: &str, vkey: &Path) -> (Vec<Value>, Value) {
    let want = log_size(server);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = audit(server, vkey, &["--json"]);
        if out.status.code() == Some(0) {
            let (events, summary) = json_lines(&String::from_utf8_lossy(&out.stdout));
            if summary["chain"]["size"].as_u64() == Some(want) {
                return (events, summary);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the trail never recorded size {want}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn events_named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

fn audit_trail_of_a_running_vault(database_url: Option<&str>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let files = tmp.path().join("files");
    let vkey = data.join("verifier-key");
    let server = start_up(&data, database_url);
    let url = server.url.clone();

    for (from, count) in [(0, 5), (5, 20), (25, 3)] {
        append(&url, &data, &files, from, count);
    }
    let (events, summary) = audit_caught_up(&url, &vkey);
    let origin = {
        let note = get(&format!("{url}/checkpoint")).1;
        open_checkpoint(
            &note,
            &parse_verifier_keys(&std::fs::read_to_string(&vkey).expect("vkey")).expect("keys"),
            None,
        )
        .expect("log checkpoint")
        .checkpoint
        .origin
    };
    assert_eq!(
        summary["trail"]["origin"],
        Value::from(audit_origin(&origin))
    );
    assert_eq!(summary["log"]["size"], Value::from(28));
    let indices: Vec<u64> = events
        .iter()
        .map(|e| e["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(indices, (0..indices.len() as u64).collect::<Vec<_>>());
    assert_eq!(summary["trail"]["size"], Value::from(indices.len()));
    assert_eq!(events_named(&events, "leader.acquired").len(), 1);
    let signed = events_named(&events, "checkpoint.signed");
    assert!(signed.len() >= 3, "one per batch at least: {signed:?}");
    assert_eq!(summary["checkpoints"], Value::from(signed.len()));
    let key_id = format!(
        "{:08x}",
        parse_verifier_keys(&std::fs::read_to_string(&vkey).expect("vkey")).expect("keys")[0]
            .key_id()
    );
    for record in &signed {
        assert_eq!(record["key_ids"], serde_json::json!([key_id]), "{record}");
        assert_eq!(record["principal"], Value::Null);
        // A checkpoint.signed record pins the head it reports.
        assert_eq!(record["log"]["size"], record["size"]);
    }

    // The same, for people: one line per event, then the summary.
    let text = ok(&audit(&url, &vkey, &[]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > events.len(), "{text}");
    assert!(
        lines[0].starts_with("0 ") && lines[0].contains(" leader.acquired - instance="),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" checkpoint.signed - key_ids=[")),
        "{text}"
    );
    assert!(
        lines
            .last()
            .expect("summary")
            .starts_with(&format!("audit trail verified: {}/audit at size ", origin)),
        "{text}"
    );

    // Keep the trail's checkpoint, append more, and restart: only the
    // events after the kept size are printed, and the trail extends it.
    let (status, kept) = get(&format!("{url}/audit/checkpoint"));
    assert_eq!(status, 200);
    let kept_file = tmp.path().join("audit.checkpoint");
    std::fs::write(&kept_file, &kept).expect("write");
    let (keys_status, trail_keys) = get(&format!("{url}/audit/verifier-keys"));
    assert_eq!(keys_status, 200);
    let trail_keys_file = tmp.path().join("audit-verifier-keys");
    std::fs::write(&trail_keys_file, &trail_keys).expect("write");
    let kept_size = open_checkpoint(
        &kept,
        &parse_verifier_keys(&String::from_utf8_lossy(&trail_keys)).expect("trail keys"),
        Some(&audit_origin(&origin)),
    )
    .expect("the trail's checkpoint verifies with the listed keys")
    .checkpoint
    .size;

    server.kill();
    let server = start_up(&data, database_url);
    let url = server.url.clone();
    append(&url, &data, &files, 28, 4);
    let (all, _) = audit_caught_up(&url, &vkey);
    assert_eq!(
        events_named(&all, "leader.acquired").len(),
        2,
        "one per start"
    );
    let since = kept_file.display().to_string();
    let out = ok(&audit(&url, &vkey, &["--json", "--since", &since]));
    let (later, summary) = json_lines(&out);
    assert_eq!(summary["since"], Value::from(kept_size));
    assert_eq!(summary["printed"], Value::from(later.len()));
    assert!(!later.is_empty());
    assert!(later.iter().all(|e| e["index"].as_u64() >= Some(kept_size)));
    assert_eq!(
        later.len() as u64,
        summary["trail"]["size"].as_u64().expect("size") - kept_size
    );

    // The trail is a tlog-tiles log like any other.
    let fsck = ok(&run(&[
        "fsck",
        "--vkey-file",
        &trail_keys_file.display().to_string(),
        &format!("{url}/audit"),
    ]));
    assert!(fsck.contains(&audit_origin(&origin)), "{fsck}");

    // What cannot be trusted or reached is said so.
    let (stranger, _) = evault_core::SigningKey::generate(&origin).expect("key");
    let stranger_file = tmp.path().join("stranger-key");
    std::fs::write(&stranger_file, format!("{}\n", stranger.verifier_key())).expect("write");
    let out = audit(&url, &stranger_file, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the log's checkpoint"),
        "{out:?}"
    );
    // A checkpoint of the log is not one of the trail.
    let log_checkpoint = tmp.path().join("log.checkpoint");
    std::fs::write(&log_checkpoint, get(&format!("{url}/checkpoint")).1).expect("write");
    let out = audit(
        &url,
        &vkey,
        &["--since", &log_checkpoint.display().to_string()],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--since"),
        "{out:?}"
    );
    server.kill();
    let out = audit(&url, &vkey, &[]);
    assert_eq!(out.status.code(), Some(2), "an unreachable vault: {out:?}");
}

#[test]
fn embedded_vault_audit_trail_verifies_across_a_restart() {
    audit_trail_of_a_running_vault(None);
}

#[test]
fn postgres_vault_audit_trail_verifies_across_a_restart() {
    let schema = evault_test_support::PgSchema::create_blocking("evault_audit");
    audit_trail_of_a_running_vault(Some(&schema.url));
    schema.drop_blocking();
}
