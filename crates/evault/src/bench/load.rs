//! Driving calls at the vault, in one of two ways.
//!
//! - Closed loop: a fixed number of calls in flight, each issuing the
//!   next when answered. It finds the most the vault takes, but a slow
//!   answer delays the calls behind it, so its latencies describe a client
//!   that waits, not the vault's answers to a steady load.
//! - Open loop: calls issued on a fixed schedule whatever the answers, and
//!   each latency measured from the call's scheduled send time, so a
//!   stall is charged to every call it held back (no coordinated omission).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::latency::Latencies;
use crate::outcome::{Failure, usage};

/// Open-loop calls that may await answers at once. Beyond, the schedule
/// waits for answers: memory stays bounded if the vault stalls, and the
/// wait still counts in every delayed call's latency. It matches the
/// ingest backlog, past which the vault pushes back anyway.
const MAX_IN_FLIGHT: usize = 65_536;

/// When a run stops issuing calls.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limit {
    /// At most this many calls.
    pub(super) count: Option<u64>,
    /// No call is issued (or, open loop, scheduled) this long after the
    /// run's start or later.
    pub(super) duration: Option<Duration>,
}

impl Limit {
    /// Whether call `n` may go at `since_start` into the run.
    pub(super) fn allows(&self, n: u64, since_start: Duration) -> bool {
        self.count.is_none_or(|count| n < count)
            && self.duration.is_none_or(|duration| since_start < duration)
    }
}

/// What a run's calls came to.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Calls issued.
    pub(super) sent: u64,
    /// Calls answered with what was asked (a receipt, a proof).
    pub(super) ok: u64,
    /// Failed calls by gRPC code.
    pub(super) errors: BTreeMap<String, u64>,
    /// The first failure's code and message, to show why.
    pub(super) first_error: Option<String>,
    /// Latencies of the answered calls, where measured.
    pub(super) latencies: Latencies,
    /// Open loop: how far behind its schedule a call was sent, at worst. A
    /// large lag means the client, not the vault, could not keep up.
    pub(super) max_send_lag: Option<Duration>,
}

impl Tally {
    /// Counts one call's outcome; `latency` of an answered call, if known.
    pub(super) fn record(&mut self, result: Result<(), tonic::Status>, latency: Option<Duration>) {
        match result {
            Ok(()) => {
                self.ok += 1;
                if let Some(latency) = latency {
                    self.latencies.record(latency);
                }
            }
            Err(status) => self.fail(&status, 1),
        }
    }

    /// Counts `calls` failed with `status`. A call the connection broke
    /// under (the vault was killed, or its connection cut) counts as
    /// `Unavailable`, as the vault's own roles report it, not as the
    /// `Unknown` that tonic's client gives it.
    pub(super) fn fail(&mut self, status: &tonic::Status, calls: u64) {
        let status = &evault_proto::transport::broken_call("the vault", status.clone());
        *self
            .errors
            .entry(format!("{:?}", status.code()))
            .or_default() += calls;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{:?}: {}", status.code(), status.message()));
        }
    }

    /// Failed calls.
    pub(super) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.ok += other.ok;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies.merge(&other.latencies);
    }
}

fn lost_task(e: tokio::task::JoinError) -> Failure {
    usage(format!("a benchmark task failed: {e}"))
}

/// Runs `call(n)` for n = 0, 1, … with `concurrency` in flight until
/// `limit`; returns the tally and the time until the last answer.
pub(super) async fn closed_loop<F, Fut>(
    call: F,
    concurrency: usize,
    limit: Limit,
) -> Result<(Tally, Duration), Failure>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let call = call.clone();
        let next = Arc::clone(&next);
        workers.spawn(async move {
            let mut tally = Tally::default();
            loop {
                let sent = Instant::now();
                let n = next.fetch_add(1, Ordering::Relaxed);
                if !limit.allows(n, sent - started) {
                    return tally;
                }
                tally.sent += 1;
                let result = call(n).await;
                tally.record(result, Some(sent.elapsed()));
            }
        });
    }
    let mut total = Tally::default();
    while let Some(done) = workers.join_next().await {
        total.merge(done.map_err(lost_task)?);
    }
    Ok((total, started.elapsed()))
}

/// Runs `call(n)` at `rate` calls per second, on schedule whatever the
/// answers, until `limit`; returns the tally and the time until the last
/// answer. Latencies run from each call's scheduled send time.
pub(super) async fn open_loop<F, Fut>(
    call: F,
    rate: f64,
    limit: Limit,
) -> Result<(Tally, Duration), Failure>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    let started = Instant::now();
    let mut total = Tally::default();
    let mut calls = JoinSet::new();
    for n in 0u64.. {
        let offset = Duration::from_secs_f64(n as f64 / rate);
        if !limit.allows(n, offset) {
            break;
        }
        let scheduled = started + offset;
        tokio::time::sleep_until(scheduled.into()).await;
        while calls.len() >= MAX_IN_FLIGHT {
            if let Some(done) = calls.join_next().await {
                let (result, latency) = done.map_err(lost_task)?;
                total.record(result, Some(latency));
            }
        }
        let lag = scheduled.elapsed();
        total.max_send_lag = Some(total.max_send_lag.map_or(lag, |max| max.max(lag)));
        let answer = call(n);
        calls.spawn(async move {
            let result = answer.await;
            (result, scheduled.elapsed())
        });
        total.sent += 1;
        while let Some(done) = calls.try_join_next() {
            let (result, latency) = done.map_err(lost_task)?;
            total.record(result, Some(latency));
        }
    }
    while let Some(done) = calls.join_next().await {
        let (result, latency) = done.map_err(lost_task)?;
        total.record(result, Some(latency));
    }
    Ok((total, started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_stops_at_the_count_or_the_deadline() {
        let by_count = Limit {
            count: Some(2),
            duration: None,
        };
        assert!(by_count.allows(1, Duration::ZERO));
        assert!(!by_count.allows(2, Duration::ZERO));
        let by_time = Limit {
            count: None,
            duration: Some(Duration::from_secs(1)),
        };
        assert!(by_time.allows(1_000_000, Duration::from_millis(999)));
        assert!(!by_time.allows(0, Duration::from_secs(1)));
    }

    #[tokio::test]
    async fn both_loops_issue_exactly_the_count_and_tally_failures_by_code() {
        let limit = Limit {
            count: Some(50),
            duration: None,
        };
        let call = |n: u64| async move {
            if n % 10 == 0 {
                Err(tonic::Status::resource_exhausted("full"))
            } else {
                Ok(())
            }
        };
        let (closed, _) = closed_loop(call, 4, limit).await.expect("closed loop");
        let (open, _) = open_loop(call, 10_000.0, limit).await.expect("open loop");
        for tally in [closed, open] {
            assert_eq!(tally.sent, 50);
            assert_eq!(tally.ok, 45);
            assert_eq!(tally.errors.get("ResourceExhausted"), Some(&5));
            assert_eq!(tally.error_count(), 5);
            assert_eq!(
                tally.first_error.as_deref(),
                Some("ResourceExhausted: full")
            );
            assert!(tally.latencies.summary().is_some());
        }
        let (closed, _) = closed_loop(call, 1, limit).await.expect("closed loop");
        assert!(closed.max_send_lag.is_none());
    }

    #[test]
    fn calls_a_broken_connection_ended_count_as_unavailable() {
        let mut tally = Tally::default();
        tally.fail(
            &tonic::Status::unknown("h2 protocol error: connection reset"),
            3,
        );
        tally.record(Err(tonic::Status::cancelled("stream reset")), None);
        tally.record(Err(tonic::Status::invalid_argument("statement")), None);
        assert_eq!(tally.errors.get("Unavailable"), Some(&4));
        assert_eq!(tally.errors.get("InvalidArgument"), Some(&1));
        assert!(!tally.errors.contains_key("Unknown"));
        assert_eq!(
            tally.first_error.as_deref(),
            Some("Unavailable: the call to the vault broke: h2 protocol error: connection reset")
        );
    }
}
