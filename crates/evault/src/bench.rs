//! `evault bench`: how many appends per second a running vault takes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use evault_proto::v1::append_stream_response::Outcome as StreamOutcome;
use evault_proto::v1::{AppendRequest, AppendStreamRequest, EvidenceStatement};
use tokio::sync::Semaphore;

use crate::client::{ServerArgs, TokenArgs, rpc_failure};
use crate::outcome::{Outcome, invalid, usage};

/// How the statements are sent.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// One AppendStream carrying every statement.
    Stream,
    /// One Append call per statement, several at once.
    Unary,
}

/// Measure appends per second against a running vault.
///
/// Sends --count fresh statements (each for distinct evidence, so every
/// one becomes a new entry) and reports the rate at which receipts came
/// back: every receipt is for a durable entry covered by a signed
/// checkpoint. The log keeps the entries: run it against a test vault.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    token: TokenArgs,
    /// Statements to append.
    #[arg(long, env = "EVAULT_BENCH_COUNT", default_value_t = 10_000)]
    count: u64,
    /// Stream or unary calls.
    #[arg(long, env = "EVAULT_BENCH_MODE", value_enum, default_value_t = Mode::Stream)]
    mode: Mode,
    /// Unary calls in flight at once.
    #[arg(long, env = "EVAULT_BENCH_CONCURRENCY", default_value_t = 256)]
    concurrency: usize,
}

fn statement(run: u128, n: u64) -> EvidenceStatement {
    let content = format!("bench {run} evidence {n}");
    EvidenceStatement {
        sha256: evault_core::hash::sha256(content.as_bytes()).to_vec(),
        size: content.len() as u64,
        media_type: "text/plain".into(),
        name: format!("bench-{n}.txt"),
        labels: vec![],
        content: None,
    }
}

pub(crate) fn run(args: BenchArgs) -> Outcome {
    let header = args.token.header()?;
    // Distinct per run, so a second run logs new entries, not duplicates.
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    runtime.block_on(async move {
        let mut client = args.server.ingest().await?;
        let started = Instant::now();
        let mut latencies: Vec<Duration> = Vec::new();
        let mut failed = 0u64;
        match args.mode {
            Mode::Stream => {
                let requests = (0..args.count).map(move |n| AppendStreamRequest {
                    request_id: n,
                    statement: Some(statement(run_id, n)),
                });
                let mut request = tonic::Request::new(tokio_stream::iter(requests));
                request.metadata_mut().insert("authorization", header);
                let mut responses = client
                    .append_stream(request)
                    .await
                    .map_err(|s| rpc_failure("append", &s))?
                    .into_inner();
                while let Some(r) = responses
                    .message()
                    .await
                    .map_err(|s| rpc_failure("append", &s))?
                {
                    if !matches!(r.outcome, Some(StreamOutcome::Receipt(_))) {
                        failed += 1;
                    }
                }
            }
            Mode::Unary => {
                let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
                let mut calls = Vec::with_capacity(args.count as usize);
                for n in 0..args.count {
                    let permit = Arc::clone(&permits)
                        .acquire_owned()
                        .await
                        .map_err(|e| usage(e.to_string()))?;
                    let mut client = client.clone();
                    let header = header.clone();
                    calls.push(tokio::spawn(async move {
                        let mut request = tonic::Request::new(AppendRequest {
                            statement: Some(statement(run_id, n)),
                        });
                        request.metadata_mut().insert("authorization", header);
                        let sent = Instant::now();
                        let ok = client.append(request).await.is_ok();
                        drop(permit);
                        (ok, sent.elapsed())
                    }));
                }
                for call in calls {
                    let (ok, latency) = call.await.map_err(|e| usage(e.to_string()))?;
                    failed += u64::from(!ok);
                    latencies.push(latency);
                }
            }
        }
        let elapsed = started.elapsed();
        let rate = args.count as f64 / elapsed.as_secs_f64();
        println!(
            "{:?}: {} appends in {:.2} s: {:.0} appends/s, {} failed",
            args.mode,
            args.count,
            elapsed.as_secs_f64(),
            rate,
            failed
        );
        if !latencies.is_empty() {
            latencies.sort();
            let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
            println!(
                "latency per append: p50 {:.1} ms, p99 {:.1} ms",
                at(0.5).as_secs_f64() * 1e3,
                at(0.99).as_secs_f64() * 1e3
            );
        }
        if failed > 0 {
            return Err(invalid(format!("{failed} appends failed")));
        }
        Ok(())
    })
}
