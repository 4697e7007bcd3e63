//! The vault as its users run it: `evault up` (embedded and PostgreSQL)
//! and the four roles as separate processes, driven by the `evault`
//! client commands, killed with SIGKILL and restarted. No acknowledged
//! entry may be lost, and every checkpoint must extend the earlier ones.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use evault_core::{Receipt, VerifierKey, open_checkpoint, parse_verifier_keys};
use evault_test_support::ServerProcess;

fn evault() -> Command {
    evault_test_support::command(env!("CARGO_BIN_EXE_evault"))
}

fn run(args: &[&str]) -> Output {
    evault().args(args).output().expect("run evault")
}

fn ok(out: &Output) -> String {
    evault_test_support::succeeded(out)
}

/// Starts `evault <args>` and waits for it to say where it listens.
fn start_server(args: &[&str]) -> ServerProcess {
    let mut command = evault();
    command.args(args);
    ServerProcess::start(command)
}

/// A PostgreSQL schema of the test's own.
fn postgres_schema() -> evault_test_support::PgSchema {
    evault_test_support::PgSchema::create_blocking("evault_cli")
}

fn write_files(dir: &Path, from: u32, to: u32) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).expect("mkdir");
    (from..to)
        .map(|i| {
            let path = dir.join(format!("evidence-{i:05}.txt"));
            std::fs::write(&path, format!("evidence file number {i}\n")).expect("write");
            path
        })
        .collect()
}

fn append(server: &str, token_file: &Path, receipts: &Path, files: &[PathBuf]) -> Output {
    let mut args: Vec<String> = vec![
        "append".into(),
        "--server".into(),
        server.into(),
        "--token-file".into(),
        token_file.display().to_string(),
        "--receipts".into(),
        receipts.display().to_string(),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    evault().args(&args).output().expect("append")
}

/// Starts appending `files`, waits until `acknowledged` receipts are in,
/// calls `interrupt` (which kills something), and waits for append to end.
fn interrupted_append(
    server: &str,
    token: &Path,
    receipts: &Path,
    files: &[PathBuf],
    acknowledged: usize,
    interrupt: impl FnOnce(),
) -> std::process::ExitStatus {
    let mut command = evault();
    command
        .args([
            "append",
            "--server",
            server,
            "--token-file",
            &token.display().to_string(),
        ])
        .args(["--receipts", &receipts.display().to_string()])
        .args(files.iter().map(|f| f.display().to_string()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut appending = command.spawn().expect("append");
    let mut lines = BufReader::new(appending.stdout.take().expect("stdout")).lines();
    let mut seen = 0;
    while seen < acknowledged {
        let line = lines.next().expect("append stopped early").expect("line");
        if line.contains(" index ") {
            seen += 1;
        }
    }
    interrupt();
    // Read the rest, so append never blocks on a full pipe and notices what
    // happened.
    lines.for_each(drop);
    appending.wait().expect("append exit")
}

/// Appends `files` again and again until a run succeeds (a standby may be
/// taking over), for at most ten seconds.
fn append_until_done(server: &str, token: &Path, receipts: &Path, files: &[PathBuf]) {
    for _ in 0..40 {
        if append(server, token, receipts, files).status.code() == Some(0) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    ok(&append(server, token, receipts, files));
}

fn keys(path: &Path) -> Vec<VerifierKey> {
    parse_verifier_keys(&std::fs::read_to_string(path).expect("verifier key")).expect("keys")
}

/// Verifies every receipt in `dir` and returns them.
fn verify_all(dir: &Path, keys: &[VerifierKey]) -> Vec<Receipt> {
    let mut receipts = Vec::new();
    for entry in std::fs::read_dir(dir).expect("receipts") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "tlog-proof") {
            let receipt = Receipt::parse(&std::fs::read(&path).expect("read")).expect("parse");
            receipt
                .verify(keys, None)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            receipts.push(receipt);
        }
    }
    receipts
}

/// Every receipt's entry is in the log at its index, and the log's latest
/// checkpoint extends every receipt's checkpoint.
fn still_logged(server: &str, vkey_file: &Path, receipts: &[Receipt], scratch: &Path) {
    let mut sizes: Vec<(u64, Vec<u8>)> = receipts
        .iter()
        .map(|r| {
            (
                open_checkpoint(&r.checkpoint, &keys(vkey_file), None)
                    .expect("cp")
                    .checkpoint
                    .size,
                r.checkpoint.clone(),
            )
        })
        .collect();
    sizes.sort();
    sizes.dedup_by_key(|(size, _)| *size);
    for (size, note) in sizes {
        let from = scratch.join(format!("checkpoint.{size}"));
        std::fs::write(&from, note).expect("write");
        ok(&run(&[
            "consistency",
            "--server",
            server,
            "--vkey-file",
            &vkey_file.display().to_string(),
            "--from",
            &from.display().to_string(),
        ]));
    }
    for receipt in receipts.iter().step_by(37) {
        let out = ok(&run(&[
            "proof",
            "--server",
            server,
            "--index",
            &receipt.index.to_string(),
        ]));
        let fresh = Receipt::parse(out.as_bytes()).expect("receipt");
        assert_eq!(
            fresh.extra, receipt.extra,
            "entry {} changed",
            receipt.index
        );
    }
}

enum Backend {
    Embedded,
    Postgres,
}

fn up_args(data: &Path, backend: &Backend, db: &str) -> Vec<String> {
    let mut args = vec![
        "up".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        data.display().to_string(),
    ];
    if let Backend::Postgres = backend {
        args.extend(["--database-url".into(), db.to_string()]);
    }
    args
}

fn start_up(args: &[String]) -> ServerProcess {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    start_server(&refs)
}

fn thousand_appends_verify_and_survive_restart(backend: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let schema = matches!(backend, Backend::Postgres).then(postgres_schema);
    let db = schema.as_ref().map(|s| s.url.clone()).unwrap_or_default();
    let args = up_args(&data, &backend, &db);
    let server = start_up(&args);
    let token = data.join("dev-token");
    let vkey = data.join("verifier-key");
    let receipts = tmp.path().join("receipts");
    let files = write_files(&tmp.path().join("files"), 0, 1000);

    ok(&append(&server.url, &token, &receipts, &files));
    let first = verify_all(&receipts, &keys(&vkey));
    assert_eq!(first.len(), 1000);
    let mut indices: Vec<u64> = first.iter().map(|r| r.index).collect();
    indices.sort();
    indices.dedup();
    assert_eq!(indices, (0..1000).collect::<Vec<_>>());
    for file in files.iter().step_by(100) {
        let receipt = receipts.join(format!(
            "{}.tlog-proof",
            file.file_name().expect("name").to_string_lossy()
        ));
        ok(&run(&[
            "verify",
            "--vkey-file",
            &vkey.display().to_string(),
            "--evidence",
            &file.display().to_string(),
            &receipt.display().to_string(),
        ]));
    }
    ok(&run(&[
        "fsck",
        "--vkey-file",
        &vkey.display().to_string(),
        &server.url,
    ]));
    let kept = tmp.path().join("kept.checkpoint");
    ok(&run(&[
        "checkpoint",
        "--server",
        &server.url,
        "-o",
        &kept.display().to_string(),
    ]));

    server.kill();
    let server = start_up(&args);
    let more = write_files(&tmp.path().join("files"), 1000, 1010);
    let again: Vec<PathBuf> = files[..5].iter().cloned().chain(more).collect();
    let out = ok(&append(&server.url, &token, &receipts, &again));
    assert_eq!(out.matches("(logged before)").count(), 5, "{out}");
    ok(&run(&[
        "consistency",
        "--server",
        &server.url,
        "--vkey-file",
        &vkey.display().to_string(),
        "--from",
        &kept.display().to_string(),
    ]));
    let all = verify_all(&receipts, &keys(&vkey));
    assert_eq!(all.len(), 1010);
    still_logged(&server.url, &vkey, &all, tmp.path());
    server.kill();
    if let Some(schema) = schema {
        schema.drop_blocking();
    }
}

fn sigkill_during_appends_loses_no_acknowledged_entry(backend: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let schema = matches!(backend, Backend::Postgres).then(postgres_schema);
    let db = schema.as_ref().map(|s| s.url.clone()).unwrap_or_default();
    let args = up_args(&data, &backend, &db);
    let server = start_up(&args);
    let token = data.join("dev-token");
    let vkey = data.join("verifier-key");
    let receipts = tmp.path().join("receipts");
    std::fs::create_dir_all(&receipts).expect("mkdir");
    let files = write_files(&tmp.path().join("files"), 0, 4000);

    let url = server.url.clone();
    let status = interrupted_append(&url, &token, &receipts, &files, 300, || server.kill());
    assert_ne!(
        status.code(),
        Some(0),
        "append cannot finish without the server"
    );

    let before = verify_all(&receipts, &keys(&vkey));
    assert!(before.len() >= 300, "{} receipts", before.len());
    let server = start_up(&args);
    still_logged(&server.url, &vkey, &before, tmp.path());
    ok(&append(&server.url, &token, &receipts, &files));
    let after = verify_all(&receipts, &keys(&vkey));
    assert_eq!(after.len(), 4000);
    for old in &before {
        let same = after
            .iter()
            .find(|r| r.extra == old.extra)
            .expect("still there");
        assert_eq!(same.index, old.index, "an acknowledged entry moved");
    }
    ok(&run(&[
        "fsck",
        "--vkey-file",
        &vkey.display().to_string(),
        &server.url,
    ]));
    server.kill();
    if let Some(schema) = schema {
        schema.drop_blocking();
    }
}

#[test]
fn embedded_up_appends_verifies_and_restarts() {
    thousand_appends_verify_and_survive_restart(Backend::Embedded);
}

#[test]
fn postgres_up_appends_verifies_and_restarts() {
    thousand_appends_verify_and_survive_restart(Backend::Postgres);
}

#[test]
fn embedded_sigkill_loses_no_acknowledged_entry() {
    sigkill_during_appends_loses_no_acknowledged_entry(Backend::Embedded);
}

#[test]
fn postgres_sigkill_loses_no_acknowledged_entry() {
    sigkill_during_appends_loses_no_acknowledged_entry(Backend::Postgres);
}

#[test]
fn four_roles_as_separate_processes_with_a_standby_tree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let schema = postgres_schema();
    let db = schema.url.clone();
    // The signer keeps its record in a database of its own.
    let signer_schema = postgres_schema();
    let origin = "vault.example/four-roles";
    let key = tmp.path().join("signing.key");
    let vkey = tmp.path().join("verifier-key");
    ok(&run(&[
        "keygen",
        "--origin",
        origin,
        "--key-file",
        &key.display().to_string(),
        "--vkey-out",
        &vkey.display().to_string(),
    ]));
    // A local issuer stands in for the organisation's identity provider:
    // ingest and gateway verify its tokens through its JWKS file.
    let issuer = tmp.path().join("issuer");
    let minted = ok(&run(&[
        "token",
        "--data-dir",
        &issuer.display().to_string(),
        "--sub",
        "four-roles",
        "--scope",
        "evault.append",
    ]));
    let token = tmp.path().join("token");
    std::fs::write(&token, minted).expect("token");
    let jwks = issuer.join("jwks.json").display().to_string();
    let identity = [
        "--jwks-file",
        jwks.as_str(),
        "--jwt-issuer",
        "evault-local",
        "--jwt-audience",
        "evault",
    ];
    let common = ["--origin", origin, "--listen", "127.0.0.1:0"];
    let with = |role: &str, extra: &[&str]| {
        let database = if role == "signer" {
            signer_schema.url.as_str()
        } else {
            db.as_str()
        };
        let mut args = vec!["serve", role, "--database-url", database];
        args.extend(common);
        args.extend(extra);
        start_server(&args)
    };
    let signer = with("signer", &["--key-file", &key.display().to_string()]);
    let tree = with("tree", &["--signer", &signer.url]);
    // A second tree on the same database stands by.
    let standby = with("tree", &["--signer", &signer.url]);
    let trees = format!("{},{}", tree.url, standby.url);
    let ingest = with("ingest", &[&["--tree", &trees][..], &identity].concat());
    let gateway = with(
        "gateway",
        &[&["--ingest", &ingest.url, "--tree", &trees][..], &identity].concat(),
    );

    let receipts = tmp.path().join("receipts");
    let files = write_files(&tmp.path().join("files"), 0, 300);
    ok(&append(&gateway.url, &token, &receipts, &files));
    assert_eq!(verify_all(&receipts, &keys(&vkey)).len(), 300);
    // The gateway lists the signer's key, asked of a tree, which asks the
    // signer.
    let listed = ureq::get(format!("{}/verifier-keys", gateway.url))
        .call()
        .expect("GET /verifier-keys")
        .into_body()
        .read_to_string()
        .expect("body");
    assert_eq!(listed, std::fs::read_to_string(&vkey).expect("vkey"));
    // The audit trail, through the forwarding gateway: `evault audit`
    // checks it and its chain of the log's checkpoints. The trail is
    // written just after the log, so it may take a moment to appear.
    let vkey_file = vkey.display().to_string();
    let audit = || run(&["audit", "--server", &gateway.url, "--vkey-file", &vkey_file]);
    for _ in 0..50 {
        if audit().status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let audited = ok(&audit());
    assert!(audited.contains("audit trail verified"), "{audited}");
    ok(&run(&[
        "fsck",
        "--vkey-file",
        &vkey.display().to_string(),
        &gateway.url,
    ]));
    let kept = tmp.path().join("kept.checkpoint");
    ok(&run(&[
        "checkpoint",
        "--server",
        &gateway.url,
        "-o",
        &kept.display().to_string(),
    ]));

    // The active tree dies in the middle of an append run; the standby takes
    // the lead within seconds, and the run, retried through the same
    // gateway, completes with every acknowledged entry where it was.
    let more = write_files(&tmp.path().join("files"), 300, 1300);
    interrupted_append(&gateway.url, &token, &receipts, &more, 200, || tree.kill());
    let before = verify_all(&receipts, &keys(&vkey));
    append_until_done(&gateway.url, &token, &receipts, &more);
    ok(&run(&[
        "consistency",
        "--server",
        &gateway.url,
        "--vkey-file",
        &vkey.display().to_string(),
        "--from",
        &kept.display().to_string(),
    ]));
    let all = verify_all(&receipts, &keys(&vkey));
    assert_eq!(all.len(), 1300);
    for old in &before {
        let same = all
            .iter()
            .find(|r| r.extra == old.extra)
            .expect("still there");
        assert_eq!(same.index, old.index, "an acknowledged entry moved");
    }
    still_logged(&gateway.url, &vkey, &all, tmp.path());
    ok(&run(&[
        "fsck",
        "--vkey-file",
        &vkey.display().to_string(),
        &gateway.url,
    ]));
    drop((signer, standby, ingest, gateway));
    schema.drop_blocking();
    signer_schema.drop_blocking();
}

/// Two `evault up` on one PostgreSQL database would both sequence the same
/// log: the second is refused at once, naming why, and the first goes on.
#[test]
fn a_second_up_on_the_same_database_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let schema = postgres_schema();
    let origin = "vault.example/one-up";
    let first_dir = tmp.path().join("first");
    let mut args = up_args(&first_dir, &Backend::Postgres, &schema.url);
    args.extend(["--origin".into(), origin.into()]);
    let first = start_up(&args);
    let second_dir = tmp.path().join("second");
    let mut second = up_args(&second_dir, &Backend::Postgres, &schema.url);
    second.extend(["--origin".into(), origin.into()]);
    // Spawned, not run to its end: a second `up` that is not refused
    // would serve for ever.
    let mut child = evault()
        .args(&second)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("a second `evault up` on the same log went on serving");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    assert_eq!(status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another process") && stderr.contains(origin),
        "{stderr}"
    );
    let checkpoint = run(&["checkpoint", "--server", &first.url]);
    ok(&checkpoint);
    drop(first);
    schema.drop_blocking();
}
