//! The registry is the process's, shared by every test here: each test
//! uses series no other test touches, or counts by differences.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use evault_test_support::exposition::{Sample, parse, value};
use tower::ServiceExt as _;

use super::*;

fn scraped() -> Vec<Sample> {
    parse(&encode().expect("encodes"))
}

fn appends(samples: &[Sample], outcome: &str) -> f64 {
    value(samples, "evault_appends_total", &[("outcome", outcome)]).expect("an appends series")
}

#[test]
fn encoded_metrics_parse_as_prometheus_text_and_count_appends() {
    let ingest = ingest();
    let before = scraped();
    let accepted = Instant::now();
    ingest.answered(AppendOutcome::Logged, accepted);
    ingest.answered(AppendOutcome::Logged, accepted);
    ingest.answered(AppendOutcome::Duplicate, accepted);
    ingest.answered(AppendOutcome::Refused, accepted);
    ingest.evidence_stored(1000);
    tree().batch_sequenced(Log::Evidence, 3);
    tree().checkpoint_stored(Log::Evidence, 3);
    tree().signing_took(Duration::from_millis(2));
    signer().signing_took(Duration::from_millis(1));
    watch_pool(Database::Log, || {
        Some(PoolUse {
            max: 16,
            in_use: 2,
            idle: 3,
            waiting: 0,
        })
    });
    let after = scraped();

    let grew = |outcome| appends(&after, outcome) - appends(&before, outcome);
    assert_eq!(grew("logged"), 2.0);
    assert_eq!(grew("duplicate"), 1.0);
    assert_eq!(grew("refused"), 1.0);
    // Every outcome is there from the start, at 0 until it happens.
    for outcome in AppendOutcome::ALL {
        assert!(
            value(
                &before,
                "evault_appends_total",
                &[("outcome", outcome.as_str())]
            )
            .is_some()
        );
    }
    // Only the receipted ones are timed.
    let timed =
        |s: &[Sample]| value(s, "evault_append_duration_seconds_count", &[]).expect("count");
    assert_eq!(timed(&after) - timed(&before), 3.0);
    let stored = |s: &[Sample]| value(s, "evault_evidence_bytes_stored_total", &[]).expect("bytes");
    assert_eq!(stored(&after) - stored(&before), 1000.0);

    for (name, labels) in [
        ("evault_batch_entries_count", &[("log", "evidence")][..]),
        ("evault_tree_size", &[("log", "evidence")]),
        ("evault_checkpoint_age_seconds", &[("log", "evidence")]),
        ("evault_signing_duration_seconds_count", &[("role", "tree")]),
        (
            "evault_signing_duration_seconds_count",
            &[("role", "signer")],
        ),
        (
            "evault_db_pool_connections",
            &[("database", "log"), ("state", "in_use")],
        ),
        (
            "evault_db_pool_connections",
            &[("database", "log"), ("state", "idle")],
        ),
        ("evault_db_pool_max_connections", &[("database", "log")]),
        ("evault_db_pool_waiting", &[("database", "log")]),
        ("evault_ingest_backlog", &[]),
    ] {
        assert!(value(&after, name, labels).is_some(), "{name} {labels:?}");
    }
    #[cfg(target_os = "linux")]
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(value(&after, name, &[]).is_some(), "{name}");
    }
    // A histogram's buckets are cumulative and end at +Inf with its count.
    let inf = value(
        &after,
        "evault_append_duration_seconds_bucket",
        &[("le", "+Inf")],
    );
    assert_eq!(inf, Some(timed(&after)));
}

#[test]
fn a_checkpoint_sets_the_tree_size_and_starts_its_age() {
    tree().checkpoint_stored(Log::Audit, 5);
    let samples = scraped();
    assert_eq!(
        value(&samples, "evault_tree_size", &[("log", "audit")]),
        Some(5.0)
    );
    let age = value(
        &samples,
        "evault_checkpoint_age_seconds",
        &[("log", "audit")],
    )
    .expect("age");
    assert!((0.0..5.0).contains(&age), "{age}");
}

#[test]
fn the_backlog_sums_live_queues_and_forgets_gone_ones() {
    let gone = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&gone);
    ingest().watch_backlog(move || (!flag.load(Ordering::SeqCst)).then_some(7));
    ingest().watch_backlog(|| Some(2));
    let backlog = || value(&scraped(), "evault_ingest_backlog", &[]).expect("backlog");
    assert_eq!(backlog(), 9.0);
    gone.store(true, Ordering::SeqCst);
    assert_eq!(backlog(), 2.0);
}

#[test]
fn pools_of_one_database_are_reported_together() {
    for (in_use, idle) in [(3, 1), (1, 2)] {
        watch_pool(Database::Signer, move || {
            Some(PoolUse {
                max: 4,
                in_use,
                idle,
                waiting: 1,
            })
        });
    }
    let samples = scraped();
    let signer = |name, state: Option<&'static str>| {
        let mut labels = vec![("database", "signer")];
        labels.extend(state.map(|s| ("state", s)));
        value(&samples, name, &labels).expect(name)
    };
    assert_eq!(signer("evault_db_pool_connections", Some("in_use")), 4.0);
    assert_eq!(signer("evault_db_pool_connections", Some("idle")), 3.0);
    assert_eq!(signer("evault_db_pool_max_connections", None), 8.0);
    assert_eq!(signer("evault_db_pool_waiting", None), 2.0);
}

async fn get(router: axum::Router, path: &str) -> axum::response::Response {
    router
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible")
}

#[tokio::test]
async fn the_route_serves_the_registry_as_prometheus_text() {
    ingest();
    let response = get(routes(), "/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(CONTENT_TYPE.as_bytes())
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let samples = parse(std::str::from_utf8(&body).expect("UTF-8"));
    assert!(value(&samples, "evault_appends_total", &[("outcome", "logged")]).is_some());
}

#[tokio::test]
async fn a_roles_routes_serve_metrics_and_leave_other_paths_to_grpc() {
    let scrape = get(role_routes().into_axum_router(), "/metrics").await;
    assert_eq!(scrape.status(), StatusCode::OK);
    let unknown = get(role_routes().into_axum_router(), "/evault.v1.Nothing/Call").await;
    let status = tonic::Status::from_header_map(unknown.headers()).expect("a gRPC status");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
}

/// The Grafana dashboard names only metrics the vault exports: a renamed
/// metric must take its panel along.
#[test]
fn the_dashboard_queries_only_metrics_the_vault_exports() {
    // Every family there is, with a series each.
    tree().batch_sequenced(Log::Evidence, 1);
    tree().checkpoint_stored(Log::Evidence, 1);
    signer();
    watch_pool(Database::Log, || Some(PoolUse::default()));
    let exported: Vec<String> = scraped().into_iter().map(|s| s.name).collect();
    let dashboard = include_str!("../../../deploy/grafana/evault-dashboard.json");
    let mut queried = 0;
    for prefix in ["evault_", "process_"] {
        for (at, _) in dashboard.match_indices(prefix) {
            let name: String = dashboard[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if cfg!(not(target_os = "linux")) && prefix == "process_" {
                continue;
            }
            assert!(exported.contains(&name), "the dashboard queries {name}");
            queried += 1;
        }
    }
    assert!(queried >= 20, "{queried}");
}
