//! `evault bench` against a real vault (`evault up`, embedded store): each
//! mode's JSON report is complete and consistent, the COPY baseline runs
//! in the real PostgreSQL and leaves nothing behind, a failed append fails
//! the run, and bad flags are usage errors. Timings are only checked for
//! sanity: they depend on the machine.

use std::path::PathBuf;
use std::process::{Command, Output};

use evault_test_support::ServerProcess;
use serde_json::Value;

fn evault() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_evault"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("EVAULT_") {
            command.env_remove(var);
        }
    }
    command.env("RUST_LOG", "warn");
    command
}

/// `evault up` on a fresh data directory and port; killed when dropped.
struct Vault {
    server: ServerProcess,
    token: PathBuf,
    /// Removed after the server is killed (fields drop in order).
    _data: tempfile::TempDir,
}

impl Vault {
    fn start() -> Vault {
        let data = tempfile::tempdir().expect("tempdir");
        let mut command = evault();
        command
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path());
        Vault {
            server: ServerProcess::start(command),
            token: data.path().join("dev-token"),
            _data: data,
        }
    }

    fn bench(&self, args: &[&str]) -> Output {
        evault()
            .args(["bench", "--server", &self.server.url, "--token-file"])
            .arg(&self.token)
            .args(args)
            .output()
            .expect("run evault bench")
    }
}

fn shown(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON report of a run that exited with `status`.
fn report(out: &Output, status: i32) -> Value {
    assert_eq!(out.status.code(), Some(status), "{}", shown(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", shown(out)))
}

fn number(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {value}"))
}

/// `count` calls made, each answered with what was asked (`answers`), at a
/// plausible rate.
fn assert_complete(report: &Value, mode: &str, answers: &str, count: u64) {
    assert_eq!(report["mode"], mode, "{report}");
    assert_eq!(report["count"], count, "{report}");
    assert_eq!(report[answers], count, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["error_codes"], serde_json::json!({}), "{report}");
    assert!(number(report, "seconds") > 0.0, "{report}");
    let rate = number(report, "rate");
    assert!(rate > 0.0, "{report}");
    let implied = report[answers].as_f64().unwrap_or_default() / number(report, "seconds");
    assert!((rate - implied).abs() <= implied * 1e-3 + 1e-3, "{report}");
}

fn assert_ordered_latencies(report: &Value) {
    let latency = &report["latency_ms"];
    let [p50, p90, p99, max] = ["p50", "p90", "p99", "max"].map(|key| number(latency, key));
    assert!(
        0.0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max,
        "{report}"
    );
}

#[test]
fn stream_appends_get_a_receipt_each() {
    let vault = Vault::start();
    let run = report(
        &vault.bench(&["--mode", "stream", "--count", "200", "--json"]),
        0,
    );
    assert_complete(&run, "stream", "receipts", 200);
    assert_eq!(run["load"], "stream");
    assert_eq!(run["duplicates"], 0);
    assert!(run.get("latency_ms").is_none(), "{run}");
    assert!(run.get("baseline").is_none(), "{run}");

    let text = vault.bench(&["--mode", "stream", "--count", "50"]);
    assert_eq!(text.status.code(), Some(0), "{}", shown(&text));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("50 receipts"), "{text}");
    assert!(text.contains("appends/s"), "{text}");
}

#[test]
fn unary_closed_loop_reports_ordered_latency_percentiles() {
    let vault = Vault::start();
    let run = report(
        &vault.bench(&[
            "--mode",
            "unary",
            "--count",
            "200",
            "--concurrency",
            "8",
            "--json",
        ]),
        0,
    );
    assert_complete(&run, "unary", "receipts", 200);
    assert_eq!(run["load"], "closed");
    assert_eq!(run["concurrency"], 8);
    assert_eq!(run["duplicates"], 0);
    assert_ordered_latencies(&run);
}

#[test]
fn unary_open_loop_keeps_its_schedule() {
    let vault = Vault::start();
    let run = report(
        &vault.bench(&[
            "--mode", "unary", "--rate", "500", "--count", "200", "--json",
        ]),
        0,
    );
    assert_complete(&run, "unary", "receipts", 200);
    assert_eq!(run["load"], "open");
    assert_eq!(number(&run, "target_rate"), 500.0);
    assert!(number(&run, "max_send_lag_ms") >= 0.0, "{run}");
    assert_ordered_latencies(&run);
    // The last of 200 calls at 500/s is scheduled 0.398 s in.
    assert!(number(&run, "seconds") >= 0.398, "{run}");
}

#[test]
fn proofs_are_served_for_random_entries_and_the_sampled_ones_verify() {
    let vault = Vault::start();
    let empty = vault.bench(&["--mode", "proofs", "--count", "10"]);
    assert_eq!(empty.status.code(), Some(2), "{}", shown(&empty));
    assert!(
        String::from_utf8_lossy(&empty.stderr).contains("empty"),
        "{}",
        shown(&empty)
    );

    report(
        &vault.bench(&["--mode", "stream", "--count", "300", "--json"]),
        0,
    );
    let run = report(
        &vault.bench(&[
            "--mode",
            "proofs",
            "--count",
            "200",
            "--concurrency",
            "8",
            "--json",
        ]),
        0,
    );
    assert_complete(&run, "proofs", "proofs", 200);
    assert_eq!(run["tree_size"], 300);
    assert_eq!(run["verified"], 128);
    assert_eq!(run["refuted"], 0);
    assert_ordered_latencies(&run);

    let open = report(
        &vault.bench(&[
            "--mode", "proofs", "--rate", "1000", "--count", "50", "--json",
        ]),
        0,
    );
    assert_complete(&open, "proofs", "proofs", 50);
    assert_eq!(open["load"], "open");
    assert_eq!(open["verified"], 50);
    assert_ordered_latencies(&open);
}

#[test]
fn a_duration_bounds_the_run_instead_of_a_count() {
    let vault = Vault::start();
    let run = report(
        &vault.bench(&[
            "--mode",
            "unary",
            "--duration",
            "1s",
            "--concurrency",
            "4",
            "--json",
        ]),
        0,
    );
    let count = run["count"].as_u64().expect("count");
    assert!(count > 0, "{run}");
    assert_complete(&run, "unary", "receipts", count);
    // Every worker stops only once it sees the second has passed.
    assert!(number(&run, "seconds") >= 1.0, "{run}");
}

#[test]
fn baseline_copy_reports_the_ratio_and_drops_its_scratch_table() {
    let schema = evault_test_support::PgSchema::create_blocking("evault_bench");
    let vault = Vault::start();
    let run = report(
        &vault.bench(&[
            "--mode",
            "stream",
            "--count",
            "300",
            "--baseline-copy",
            "--database-url",
            &schema.url,
            "--batch-size",
            "128",
            "--json",
        ]),
        0,
    );
    assert_complete(&run, "stream", "receipts", 300);
    let baseline = &run["baseline"];
    assert_eq!(baseline["rows"], 300, "{run}");
    assert_eq!(baseline["batch_size"], 128, "{run}");
    let copy_rate = number(baseline, "rate");
    assert!(copy_rate > 0.0, "{run}");
    let expected = number(&run, "rate") / copy_rate;
    assert!(
        (number(&run, "ratio") - expected).abs() <= expected * 1e-3 + 1e-6,
        "{run}"
    );

    let left: i64 = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let (client, connection) = tokio_postgres::connect(
                &evault_test_support::database_url(),
                tokio_postgres::NoTls,
            )
            .await
            .expect("PostgreSQL");
            tokio::spawn(connection);
            client
                .query_one(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
                    &[&schema.name],
                )
                .await
                .expect("count tables")
                .get(0)
        });
    assert_eq!(left, 0, "the scratch table is still in {}", schema.name);
    schema.drop_blocking();
}

#[test]
fn a_failed_append_fails_the_run() {
    let vault = Vault::start();
    let run = report(
        &vault.bench(&[
            "--mode",
            "unary",
            "--count",
            "20",
            "--token",
            "not-the-token",
            "--json",
        ]),
        1,
    );
    assert_eq!(run["count"], 20, "{run}");
    assert_eq!(run["receipts"], 0, "{run}");
    assert_eq!(run["errors"], 20, "{run}");
    assert_eq!(run["error_codes"]["Unauthenticated"], 20, "{run}");
}

#[test]
fn bad_flags_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["--duration", "nonsense"], "--duration"),
        (&["--duration", "30"], "unit"),
        (&["--rate", "0"], "--rate"),
        (&["--count", "0"], "--count"),
        (&["--concurrency", "0"], "--concurrency"),
        (&["--mode", "stream", "--rate", "10"], "--rate"),
        (&["--baseline-copy"], "--database-url"),
        (
            &[
                "--mode",
                "proofs",
                "--baseline-copy",
                "--database-url",
                "postgres://127.0.0.1:1/none",
            ],
            "--baseline-copy",
        ),
        (
            &[
                "--duration",
                "5s",
                "--baseline-copy",
                "--database-url",
                "postgres://127.0.0.1:1/none",
            ],
            "--count",
        ),
    ];
    for (args, says) in cases {
        let out = evault()
            .args(["bench", "--server", "http://127.0.0.1:1", "--token", "t"])
            .args(*args)
            .output()
            .expect("run evault bench");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", shown(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?} should mention {says}: {}",
            shown(&out)
        );
    }
}
