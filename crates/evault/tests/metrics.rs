//! Prometheus metrics as an operator scrapes them: `GET /metrics` over
//! HTTP/1.1 on every process's port, from `evault up` (every role in one
//! process, each role's metrics once) and from the four roles run apart on
//! PostgreSQL (each role's own, on its own port).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use evault_test_support::exposition::{Sample, parse, value};
use evault_test_support::{PgSchema, ServerProcess, succeeded};

const EVAULT: &str = env!("CARGO_BIN_EXE_evault");

fn evault() -> Command {
    evault_test_support::command(EVAULT)
}

fn run(args: &[&str]) -> Output {
    evault().args(args).output().expect("run evault")
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// `count` small files in `dir`, and their bytes together.
fn write_files(dir: &Path, count: usize) -> (Vec<PathBuf>, usize) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut bytes = 0;
    let files = (0..count)
        .map(|i| {
            let file = dir.join(format!("evidence-{i:03}.txt"));
            let text = format!("evidence counted by the metrics, number {i}\n");
            bytes += text.len();
            std::fs::write(&file, text).expect("write");
            file
        })
        .collect();
    (files, bytes)
}

/// Appends `files` (their bytes uploaded) through `server`.
fn append(server: &str, token: &Path, files: &[PathBuf]) {
    let mut args = vec![
        "append".to_string(),
        "--server".into(),
        server.into(),
        "--token-file".into(),
        path(token),
        "--upload".into(),
    ];
    args.extend(files.iter().map(|f| path(f)));
    succeeded(&evault().args(&args).output().expect("append"));
}

/// What `url`'s port serves at `/metrics`, to an HTTP/1.1 client with no
/// token, parsed as Prometheus parses it.
fn scrape(url: &str) -> Vec<Sample> {
    let response = ureq::get(format!("{url}/metrics"))
        .call()
        .unwrap_or_else(|e| panic!("GET {url}/metrics: {e}"));
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    parse(&response.into_body().read_to_string().expect("body"))
}

/// The value of a series that must be there.
fn must(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}"))
}

fn has_family(samples: &[Sample], prefix: &str) -> bool {
    samples.iter().any(|s| s.name.starts_with(prefix))
}

/// What every process reports about itself, on Linux.
fn assert_process_metrics(samples: &[Sample]) {
    if cfg!(target_os = "linux") {
        assert!(must(samples, "process_resident_memory_bytes", &[]) > 0.0);
        assert!(must(samples, "process_open_fds", &[]) > 0.0);
        assert!(must(samples, "process_start_time_seconds", &[]) > 1.0e9);
        assert!(must(samples, "process_cpu_seconds_total", &[]) >= 0.0);
    }
}

#[test]
fn up_counts_appends_and_exposes_every_role_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let server = ServerProcess::up(EVAULT, &data, None);
    let token = data.join("dev-token");
    let (files, bytes) = write_files(&tmp.path().join("files"), 20);
    append(&server.url, &token, &files);
    // The same files again: logged before, so answered as duplicates.
    append(&server.url, &token, &files);

    // `parse` refuses a family described twice: each role's metrics are
    // there once, though the process runs all four.
    let m = scrape(&server.url);
    let appends = |outcome| must(&m, "evault_appends_total", &[("outcome", outcome)]);
    assert!(appends("logged") >= 20.0, "{}", appends("logged"));
    assert!(appends("duplicate") >= 20.0, "{}", appends("duplicate"));
    for outcome in ["invalid", "refused", "failed"] {
        assert_eq!(appends(outcome), 0.0, "{outcome}");
    }
    assert!(must(&m, "evault_append_duration_seconds_count", &[]) >= 40.0);
    assert!(must(&m, "evault_evidence_bytes_stored_total", &[]) >= (2 * bytes) as f64);
    assert!(must(&m, "evault_tree_size", &[("log", "evidence")]) >= 20.0);
    assert!(must(&m, "evault_batch_entries_count", &[("log", "evidence")]) >= 1.0);
    assert!(must(&m, "evault_batch_entries_sum", &[("log", "evidence")]) >= 40.0);
    let age = must(&m, "evault_checkpoint_age_seconds", &[("log", "evidence")]);
    assert!((0.0..600.0).contains(&age), "{age}");
    for role in ["tree", "signer"] {
        assert!(
            must(
                &m,
                "evault_signing_duration_seconds_count",
                &[("role", role)]
            ) >= 1.0
        );
    }
    assert_eq!(must(&m, "evault_ingest_backlog", &[]), 0.0);
    // The embedded store has no connection pool to report.
    assert!(!has_family(&m, "evault_db_pool"));
    assert_process_metrics(&m);
}

const ORIGIN: &str = "vault.example/metrics";

#[test]
fn each_role_apart_exposes_its_own_metrics_on_its_port() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let schema = PgSchema::create_blocking("evault_metrics");
    // The signer keeps its record in a database of its own.
    let signer_schema = PgSchema::create_blocking("evault_metrics_signer");
    let key = path(&tmp.path().join("signing.key"));
    let vkey = path(&tmp.path().join("verifier-key"));
    succeeded(&run(&[
        "keygen",
        "--origin",
        ORIGIN,
        "--key-file",
        &key,
        "--vkey-out",
        &vkey,
    ]));
    let issuer = tmp.path().join("issuer");
    let minted = succeeded(&run(&[
        "token",
        "--data-dir",
        &path(&issuer),
        "--sub",
        "metrics",
        "--scope",
        "evault.append",
    ]));
    let token = tmp.path().join("token");
    std::fs::write(&token, minted).expect("token");
    let jwks = path(&issuer.join("jwks.json"));
    let identity = [
        "--jwks-file",
        &jwks,
        "--jwt-issuer",
        "evault-local",
        "--jwt-audience",
        "evault",
    ];
    let with = |role: &str, extra: &[&str]| {
        let database = if role == "signer" {
            &signer_schema.url
        } else {
            &schema.url
        };
        let mut command = evault();
        command
            .args(["serve", role, "--database-url", database])
            .args(["--origin", ORIGIN, "--listen", "127.0.0.1:0"])
            .args(extra);
        ServerProcess::start(command)
    };
    let signer = with("signer", &["--key-file", &key]);
    let tree = with("tree", &["--signer", &signer.url]);
    let ingest = with("ingest", &[&["--tree", &tree.url][..], &identity].concat());
    // Reads need a token here; the metrics do not.
    let gateway = with(
        "gateway",
        &[
            &[
                "--ingest",
                &ingest.url,
                "--tree",
                &tree.url,
                "--public-reads",
                "false",
            ][..],
            &identity,
        ]
        .concat(),
    );
    let (files, bytes) = write_files(&tmp.path().join("files"), 20);
    append(&gateway.url, &token, &files);

    let m = scrape(&ingest.url);
    assert!(must(&m, "evault_appends_total", &[("outcome", "logged")]) >= 20.0);
    assert!(must(&m, "evault_append_duration_seconds_count", &[]) >= 20.0);
    assert!(must(&m, "evault_evidence_bytes_stored_total", &[]) >= bytes as f64);
    assert_eq!(must(&m, "evault_ingest_backlog", &[]), 0.0);
    assert_pool(&m, "log");
    assert!(!has_family(&m, "evault_tree_size"));
    assert!(!has_family(&m, "evault_signing_duration"));
    assert_process_metrics(&m);

    let m = scrape(&tree.url);
    assert!(must(&m, "evault_tree_size", &[("log", "evidence")]) >= 20.0);
    assert!(must(&m, "evault_batch_entries_sum", &[("log", "evidence")]) >= 20.0);
    assert!(must(&m, "evault_checkpoint_age_seconds", &[("log", "evidence")]) >= 0.0);
    assert!(
        must(
            &m,
            "evault_signing_duration_seconds_count",
            &[("role", "tree")]
        ) >= 1.0
    );
    assert!(
        value(
            &m,
            "evault_signing_duration_seconds_count",
            &[("role", "signer")]
        )
        .is_none()
    );
    assert_pool(&m, "log");
    assert!(!has_family(&m, "evault_appends"));
    assert_process_metrics(&m);

    let m = scrape(&signer.url);
    assert!(
        must(
            &m,
            "evault_signing_duration_seconds_count",
            &[("role", "signer")]
        ) >= 1.0
    );
    assert_pool(&m, "signer");
    assert!(!has_family(&m, "evault_appends"));
    assert!(!has_family(&m, "evault_tree_size"));
    assert_process_metrics(&m);

    // The gateway forwards appends and counts none; its metrics are
    // outside the callers' authentication, its reads are not.
    let m = scrape(&gateway.url);
    assert_pool(&m, "log");
    assert!(!has_family(&m, "evault_appends"));
    assert_process_metrics(&m);
    match ureq::get(format!("{}/checkpoint", gateway.url)).call() {
        Err(ureq::Error::StatusCode(401)) => {}
        other => panic!("a read without a token: {other:?}"),
    }

    drop((gateway, ingest, tree, signer));
    schema.drop_blocking();
    signer_schema.drop_blocking();
}

/// The pool of connections to `database` is reported, within its bound.
fn assert_pool(samples: &[Sample], database: &str) {
    let max = must(
        samples,
        "evault_db_pool_max_connections",
        &[("database", database)],
    );
    let in_use = must(
        samples,
        "evault_db_pool_connections",
        &[("database", database), ("state", "in_use")],
    );
    let idle = must(
        samples,
        "evault_db_pool_connections",
        &[("database", database), ("state", "idle")],
    );
    assert!(
        max >= 1.0 && in_use + idle <= max,
        "{in_use} + {idle} of {max}"
    );
    must(samples, "evault_db_pool_waiting", &[("database", database)]);
}
