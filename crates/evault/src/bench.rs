//! `evault bench`: how fast a running vault appends and serves proofs,
//! measured so that the figures can be trusted: every append counted is a
//! receipt, open-loop latencies include the waits a stall causes, served
//! proofs are checked, and PostgreSQL's own COPY speed can be put beside
//! the vault's.

mod baseline;
mod latency;
mod load;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use evault_core::hash::sha256;
use evault_core::{Checkpoint, EvidenceEntry, Note, leaf_hash, verify_inclusion};
use evault_proto::v1::append_stream_response::Outcome as StreamOutcome;
use evault_proto::v1::get_inclusion_proof_request::Leaf;
use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::tree_service_client::TreeServiceClient;
use evault_proto::v1::{
    AppendRequest, AppendStreamRequest, EvidenceStatement, GetCheckpointRequest,
    GetInclusionProofRequest,
};
use rand::Rng as _;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Status};

use self::baseline::Baseline;
use self::load::{Limit, Tally};
use crate::client::{ServerArgs, TokenArgs, fetch_entry, rpc_failure};
use crate::outcome::{Failure, Outcome, invalid, usage};

/// Calls a run makes when neither --count nor --duration is given.
const DEFAULT_COUNT: u64 = 10_000;

/// Served proofs kept, uniformly at random, to verify after the run.
const SAMPLE: usize = 128;

/// The principal `evault up`'s development token names, which the vault
/// writes into each entry; the baseline's rows carry it too, so they are
/// as long as the vault's (another authenticator's names differ by a few
/// bytes).
const DEV_PRINCIPAL: &str = "dev";

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Appends, over one AppendStream carrying every statement.
    Stream,
    /// Appends, one Append call each.
    Unary,
    /// Inclusion proofs of random entries of the latest checkpoint.
    Proofs,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Stream => "stream",
            Mode::Unary => "unary",
            Mode::Proofs => "proofs",
        }
    }
}

/// Measure a running vault: appends per second, or proofs per second.
///
/// --mode stream sends fresh statements over one AppendStream. --mode
/// unary sends one Append call per statement: --concurrency calls in
/// flight, each waiting for its answer before the next (closed loop), or,
/// with --rate, on a fixed schedule whatever the answers (open loop; each
/// latency runs from the call's scheduled send time, so a stall counts
/// against every call it held back). --mode proofs fetches the latest
/// checkpoint and asks inclusion proofs for uniformly random entries below
/// its size, closed or open loop as unary; a random sample of the proofs
/// served is verified against the checkpoint's root afterwards.
///
/// Each statement is for evidence no other statement names, so every one
/// becomes a new entry, and an append counts once its receipt is back:
/// the entry is durable and covered by a signed checkpoint. The log keeps
/// the entries: run it against a test vault.
///
/// A run stops after --count calls or --duration, whichever comes first
/// (10000 calls when neither is given). With --baseline-copy it then
/// copies as many rows, shaped like the vault's entries, into a scratch
/// table of the PostgreSQL at --database-url with binary COPY, committing
/// every --batch-size rows, drops the table, and reports the vault's rate
/// as a fraction of COPY's.
///
/// Latencies (unary and proofs) are reported as p50, p90, p99 and max, in
/// milliseconds, within 1% above the exact values. Exit status 1 when any
/// call failed or a sampled proof does not verify.
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    token: TokenArgs,
    /// What to measure.
    #[arg(long, env = "EVAULT_BENCH_MODE", value_enum, default_value_t = Mode::Stream)]
    mode: Mode,
    /// Calls to make (statements to append, proofs to ask); 10000 when
    /// --duration is not given either.
    #[arg(long, env = "EVAULT_BENCH_COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// How long to keep issuing calls, e.g. `30s`, `2m`, `500ms`.
    #[arg(long, env = "EVAULT_BENCH_DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Unary or proof calls in flight at once (closed loop).
    #[arg(long, env = "EVAULT_BENCH_CONCURRENCY", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Issue unary or proof calls at this many per second, on schedule
    /// whatever the answers (open loop), instead of --concurrency.
    #[arg(long, env = "EVAULT_BENCH_RATE", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Print one JSON object instead of text.
    #[arg(long, env = "EVAULT_BENCH_JSON")]
    json: bool,
    /// Before the run, time PostgreSQL's binary COPY of as many rows like
    /// the vault's, to compare the vault's rate with.
    #[arg(long, env = "EVAULT_BENCH_BASELINE_COPY", requires = "database_url")]
    baseline_copy: bool,
    /// The PostgreSQL for --baseline-copy (a scratch table is created in
    /// it and dropped).
    #[arg(long, env = "EVAULT_BENCH_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Rows per COPY transaction: the ingest batcher's largest batch.
    #[arg(long, env = "EVAULT_BENCH_BATCH_SIZE",
          default_value_t = evault_ingest::BatchConfig::default().max_batch as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    batch_size: u64,
}

/// `30s`, `2m`, `500ms`, `1.5h`: a number and a unit.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = || format!("{text:?}: expected a number and a unit (ms, s, m, h), like 30s");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(expected)?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| expected())?;
    let seconds = match unit {
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(expected()),
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?}: must be longer than zero"))
}

/// Calls per second, above zero.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?}: expected calls per second above 0, like 1000"
        )),
    }
}

/// Evidence that no other statement of any run names: its digest, size,
/// type and name, as a client states them.
fn evidence(run: u128, n: u64) -> EvidenceEntry {
    let content = format!("bench {run} evidence {n}");
    EvidenceEntry {
        digest: sha256(content.as_bytes()),
        size: content.len() as u64,
        received_ms: 0,
        media_type: "text/plain".into(),
        name: Some(format!("bench-{n}.txt")),
        principal: String::new(),
        labels: BTreeMap::new(),
    }
}

fn statement(run: u128, n: u64) -> EvidenceStatement {
    let e = evidence(run, n);
    EvidenceStatement {
        sha256: e.digest.to_vec(),
        size: e.size,
        media_type: e.media_type,
        name: e.name.unwrap_or_default(),
        labels: vec![],
        content: None,
    }
}

/// Statement `n`'s entry encoded as ingest encodes it, and a 32-byte key
/// as unique and as random as its dedup key.
fn stored_row(run: u128, n: u64, received_ms: u64) -> Result<(Vec<u8>, [u8; 32]), Failure> {
    let mut entry = evidence(run, n);
    entry.principal = DEV_PRINCIPAL.into();
    entry.received_ms = received_ms;
    let bytes = entry
        .encode()
        .map_err(|e| usage(format!("--baseline-copy: entry {n}: {e}")))?;
    let key = sha256(&bytes);
    Ok((bytes, key))
}

/// How single calls are issued.
#[derive(Clone, Copy, Debug)]
enum Pace {
    /// This many in flight, each waiting for its answer.
    Closed(u32),
    /// On schedule at this many per second.
    Open(f64),
}

/// What a run measures, and with which client.
enum Target {
    Stream(IngestServiceClient<Channel>, MetadataValue<Ascii>),
    Unary(IngestServiceClient<Channel>, MetadataValue<Ascii>, Pace),
    Proofs(TreeServiceClient<Channel>, Pace),
}

/// What a proofs run checked of the proofs served.
#[derive(Debug)]
struct ProofCheck {
    tree_size: u64,
    verified: u64,
    /// Sampled proofs that do not lead to the root, and why.
    refuted: Vec<String>,
}

/// The measured part of a run.
#[derive(Debug)]
struct Measured {
    tally: Tally,
    elapsed: Duration,
    /// Appends answered as duplicates of an earlier entry (none expected).
    duplicates: Option<u64>,
    proofs: Option<ProofCheck>,
}

pub(crate) fn run(args: BenchArgs) -> Outcome {
    let count = match (args.count, args.duration) {
        (None, None) => Some(DEFAULT_COUNT),
        (count, _) => count,
    };
    let limit = Limit {
        count,
        duration: args.duration,
    };
    if args.mode == Mode::Stream && args.rate.is_some() {
        return Err(usage(
            "--rate paces single calls: use it with --mode unary or --mode proofs",
        ));
    }
    let pace = match args.rate {
        Some(rate) => Pace::Open(rate),
        None => Pace::Closed(args.concurrency),
    };
    // The database and the rows to copy.
    let copy = if args.baseline_copy {
        if args.mode == Mode::Proofs {
            return Err(usage(
                "--baseline-copy compares appends with COPY: use --mode stream or --mode unary",
            ));
        }
        let url = args
            .database_url
            .clone()
            .ok_or_else(|| usage("--baseline-copy needs --database-url"))?;
        let rows = count.ok_or_else(|| {
            usage("--baseline-copy copies as many rows as the run appends: give --count")
        })?;
        Some((url, rows))
    } else {
        None
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Distinct per run, so a second run logs new entries, not duplicates.
    let run_id = now.as_nanos() ^ u128::from(std::process::id());
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    runtime.block_on(async move {
        // Connected before the baseline, so that an unreachable vault is
        // reported before the COPY takes its time.
        let target = match args.mode {
            Mode::Stream => {
                let header = args.token.header()?;
                Target::Stream(args.server.ingest().await?, header)
            }
            Mode::Unary => {
                let header = args.token.header()?;
                Target::Unary(args.server.ingest().await?, header, pace)
            }
            Mode::Proofs => Target::Proofs(args.server.tree().await?, pace),
        };
        let load = match &target {
            Target::Stream(..) => None,
            Target::Unary(.., pace) | Target::Proofs(_, pace) => Some(*pace),
        };
        let measured = tokio::select! {
            measured = measure(target, limit, run_id) => measured?,
            _ = tokio::signal::ctrl_c() => return Err(usage("interrupted")),
        };
        // The COPY runs after the measured load, not before: its rows, with
        // a random unique key, pass through PostgreSQL's shared buffers and
        // would push the log's own index pages out just before the load,
        // which would then pay to read them back (docs/benchmarks.md).
        let baseline = match &copy {
            Some((url, rows)) => {
                let table = format!(
                    "evault_bench_copy_{}_{}",
                    std::process::id(),
                    now.as_nanos()
                );
                let received_ms = now.as_millis() as u64;
                Some(
                    baseline::copy(url, &table, *rows, args.batch_size, |n| {
                        stored_row(run_id, n, received_ms)
                    })
                    .await?,
                )
            }
            None => None,
        };
        report(args.mode, load, &measured, baseline.as_ref(), args.json)
    })
}

async fn measure(target: Target, limit: Limit, run_id: u128) -> Result<Measured, Failure> {
    match target {
        Target::Stream(ingest, header) => stream(ingest, header, limit, run_id).await,
        Target::Unary(ingest, header, pace) => unary(ingest, header, pace, limit, run_id).await,
        Target::Proofs(tree, pace) => proofs(tree, pace, limit).await,
    }
}

/// Runs `call` closed or open loop, as `pace` says.
async fn drive<F, Fut>(call: F, pace: Pace, limit: Limit) -> Result<(Tally, Duration), Failure>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), Status>> + Send + 'static,
{
    match pace {
        Pace::Open(rate) => load::open_loop(call, rate, limit).await,
        Pace::Closed(concurrency) => load::closed_loop(call, concurrency as usize, limit).await,
    }
}

async fn stream(
    mut ingest: IngestServiceClient<Channel>,
    header: MetadataValue<Ascii>,
    limit: Limit,
    run_id: u128,
) -> Result<Measured, Failure> {
    let started = Instant::now();
    // Statements are made as the stream takes them, so sending stops on
    // time at the --duration; what was sent by then is still answered and
    // counted.
    let sent = Arc::new(AtomicU64::new(0));
    let taken = Arc::clone(&sent);
    let requests = (0u64..).map_while(move |n| {
        limit.allows(n, started.elapsed()).then(|| {
            taken.fetch_add(1, Ordering::Relaxed);
            AppendStreamRequest {
                request_id: n,
                statement: Some(statement(run_id, n)),
            }
        })
    });
    let mut request = tonic::Request::new(tokio_stream::iter(requests));
    request.metadata_mut().insert("authorization", header);
    let mut responses = ingest
        .append_stream(request)
        .await
        .map_err(|s| rpc_failure("append", &s))?
        .into_inner();
    let mut tally = Tally::default();
    let mut duplicates = 0;
    let broken = loop {
        match responses.message().await {
            Ok(Some(answer)) => {
                duplicates += u64::from(answer.duplicate);
                let result = match answer.outcome {
                    Some(StreamOutcome::Receipt(_)) => Ok(()),
                    Some(StreamOutcome::Error(e)) => {
                        Err(Status::new(Code::from(e.code), e.message))
                    }
                    None => Err(Status::internal("an answer with neither receipt nor error")),
                };
                tally.record(result, None);
            }
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    let elapsed = started.elapsed();
    tally.sent = sent.load(Ordering::Relaxed);
    let answered = tally.ok + tally.error_count();
    if answered < tally.sent {
        let status = broken
            .unwrap_or_else(|| Status::unavailable("the stream ended before answering these"));
        tally.fail(&status, tally.sent - answered);
    }
    Ok(Measured {
        tally,
        elapsed,
        duplicates: Some(duplicates),
        proofs: None,
    })
}

async fn unary(
    ingest: IngestServiceClient<Channel>,
    header: MetadataValue<Ascii>,
    pace: Pace,
    limit: Limit,
    run_id: u128,
) -> Result<Measured, Failure> {
    let duplicates = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&duplicates);
    let call = move |n: u64| {
        let mut ingest = ingest.clone();
        let header = header.clone();
        let duplicates = Arc::clone(&counted);
        async move {
            let mut request = tonic::Request::new(AppendRequest {
                statement: Some(statement(run_id, n)),
            });
            request.metadata_mut().insert("authorization", header);
            let answer = ingest.append(request).await?.into_inner();
            if answer.receipt.is_none() {
                return Err(Status::internal("an answer without a receipt"));
            }
            duplicates.fetch_add(u64::from(answer.duplicate), Ordering::Relaxed);
            Ok(())
        }
    };
    let (tally, elapsed) = drive(call, pace, limit).await?;
    Ok(Measured {
        tally,
        elapsed,
        duplicates: Some(duplicates.load(Ordering::Relaxed)),
        proofs: None,
    })
}

/// A uniform random sample of the proofs served (reservoir sampling),
/// verified after the timed run so that verifying costs the run nothing.
#[derive(Debug, Default)]
struct Sample {
    seen: u64,
    kept: Vec<(u64, Vec<Vec<u8>>)>,
}

impl Sample {
    fn offer(&mut self, index: u64, proof: Vec<Vec<u8>>) {
        self.seen += 1;
        if self.kept.len() < SAMPLE {
            self.kept.push((index, proof));
        } else {
            let slot = rand::rng().random_range(0..self.seen);
            if let Some(kept) = self.kept.get_mut(slot as usize) {
                *kept = (index, proof);
            }
        }
    }
}

async fn proofs(
    mut tree: TreeServiceClient<Channel>,
    pace: Pace,
    limit: Limit,
) -> Result<Measured, Failure> {
    let note = tree
        .get_checkpoint(GetCheckpointRequest {})
        .await
        .map_err(|s| rpc_failure("checkpoint", &s))?
        .into_inner()
        .checkpoint
        .ok_or_else(|| usage("the vault sent no checkpoint"))?
        .note;
    // The root as the signed note states it, not as a side field.
    let checkpoint = Note::parse(&note)
        .map_err(|e| invalid(format!("the vault's checkpoint: {e}")))
        .and_then(|n| {
            Checkpoint::parse(n.text()).map_err(|e| invalid(format!("the vault's checkpoint: {e}")))
        })?;
    let size = checkpoint.size;
    if size == 0 {
        return Err(usage(
            "the log is empty, there is nothing to prove: append first (evault bench --mode stream)",
        ));
    }
    let sample = Arc::new(Mutex::new(Sample::default()));
    let kept = Arc::clone(&sample);
    let client = tree.clone();
    let call = move |_: u64| {
        let mut tree = client.clone();
        let sample = Arc::clone(&kept);
        let index = rand::rng().random_range(0..size);
        async move {
            let answer = tree
                .get_inclusion_proof(GetInclusionProofRequest {
                    leaf: Some(Leaf::Index(index)),
                    tree_size: size,
                })
                .await?
                .into_inner();
            if (answer.index, answer.tree_size) != (index, size) {
                return Err(Status::internal(format!(
                    "asked entry {index} in tree size {size}, got entry {} in size {}",
                    answer.index, answer.tree_size
                )));
            }
            sample
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .offer(index, answer.inclusion_proof);
            Ok(())
        }
    };
    let (tally, elapsed) = drive(call, pace, limit).await?;

    let kept = std::mem::take(&mut sample.lock().unwrap_or_else(PoisonError::into_inner).kept);
    let mut check = ProofCheck {
        tree_size: size,
        verified: 0,
        refuted: Vec::new(),
    };
    for (index, proof) in kept {
        let entry = fetch_entry(&mut tree, index).await?;
        match verify_inclusion(
            index,
            size,
            leaf_hash(&entry).as_bytes(),
            &proof,
            checkpoint.root.as_bytes(),
        ) {
            Ok(()) => check.verified += 1,
            Err(e) => check.refuted.push(format!("entry {index}: {e}")),
        }
    }
    Ok(Measured {
        tally,
        elapsed,
        duplicates: None,
        proofs: Some(check),
    })
}

/// Prints the run's figures and decides its exit status; `load` is how
/// single calls were paced, `None` for a stream.
fn report(
    mode: Mode,
    load: Option<Pace>,
    measured: &Measured,
    baseline: Option<&Baseline>,
    json: bool,
) -> Outcome {
    let tally = &measured.tally;
    let seconds = measured.elapsed.as_secs_f64();
    let rate = tally.ok as f64 / seconds;
    let errors = tally.error_count();
    let latency = tally.latencies.summary();
    let answers = if mode == Mode::Proofs {
        "proofs"
    } else {
        "receipts"
    };
    if json {
        let mut out = format!("{{\"mode\":\"{}\"", mode.name());
        match load {
            None => out.push_str(",\"load\":\"stream\""),
            Some(Pace::Closed(n)) => {
                out.push_str(&format!(",\"load\":\"closed\",\"concurrency\":{n}"))
            }
            Some(Pace::Open(r)) => out.push_str(&format!(",\"load\":\"open\",\"target_rate\":{r}")),
        }
        out.push_str(&format!(
            ",\"count\":{},\"{answers}\":{},\"errors\":{errors},\"error_codes\":{{{}}}",
            tally.sent,
            tally.ok,
            tally
                .errors
                .iter()
                .map(|(code, n)| format!("{}:{n}", crate::json::string(code)))
                .collect::<Vec<_>>()
                .join(",")
        ));
        if let Some(first) = &tally.first_error {
            out.push_str(&format!(",\"first_error\":{}", crate::json::string(first)));
        }
        if let Some(duplicates) = measured.duplicates {
            out.push_str(&format!(",\"duplicates\":{duplicates}"));
        }
        if let Some(check) = &measured.proofs {
            out.push_str(&format!(
                ",\"tree_size\":{},\"verified\":{},\"refuted\":{}",
                check.tree_size,
                check.verified,
                check.refuted.len()
            ));
        }
        out.push_str(&format!(",\"seconds\":{seconds:.6},\"rate\":{rate:.3}"));
        if let Some(lag) = tally.max_send_lag {
            out.push_str(&format!(
                ",\"max_send_lag_ms\":{:.3}",
                lag.as_secs_f64() * 1e3
            ));
        }
        if let Some(l) = latency {
            out.push_str(&format!(
                ",\"latency_ms\":{{\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"max\":{:.3}}}",
                l.p50, l.p90, l.p99, l.max
            ));
        }
        if let Some(b) = baseline {
            out.push_str(&format!(
                ",\"baseline\":{{\"rows\":{},\"batch_size\":{},\"seconds\":{:.6},\"rate\":{:.3}}},\"ratio\":{:.6}",
                b.rows,
                b.batch_size,
                b.elapsed.as_secs_f64(),
                b.rate(),
                rate / b.rate()
            ));
        }
        out.push('}');
        println!("{out}");
    } else {
        let how = match load {
            None => String::new(),
            Some(Pace::Closed(n)) => format!(" ({n} in flight)"),
            Some(Pace::Open(r)) => format!(" (open loop at {r}/s)"),
        };
        let per_second = if mode == Mode::Proofs {
            "proofs/s"
        } else {
            "appends/s"
        };
        println!(
            "{}{how}: {} calls, {} {answers} in {seconds:.2} s: {rate:.0} {per_second}, {errors} errors",
            mode.name(),
            tally.sent,
            tally.ok,
        );
        if let Some(l) = latency {
            let from = match load {
                Some(Pace::Open(_)) => " (from each call's scheduled send time)",
                Some(Pace::Closed(_)) | None => "",
            };
            println!(
                "  latency{from}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.p50, l.p90, l.p99, l.max
            );
        }
        if let Some(lag) = tally.max_send_lag {
            println!(
                "  calls sent at most {:.1} ms behind schedule",
                lag.as_secs_f64() * 1e3
            );
        }
        if errors > 0 {
            let codes: Vec<String> = tally
                .errors
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            println!(
                "  errors: {}; first: {}",
                codes.join(", "),
                tally.first_error.as_deref().unwrap_or_default()
            );
        }
        if let Some(duplicates) = measured.duplicates.filter(|&d| d > 0) {
            println!("  {duplicates} answered as duplicates of earlier entries, not new ones");
        }
        if let Some(check) = &measured.proofs {
            println!(
                "  tree size {}: {} sampled proofs verified against the checkpoint's root, {} refuted",
                check.tree_size,
                check.verified,
                check.refuted.len()
            );
        }
        if let Some(b) = baseline {
            println!(
                "baseline COPY: {} rows in {:.2} s, {} per transaction: {:.0} rows/s; the vault's rate is {:.3} of it",
                b.rows,
                b.elapsed.as_secs_f64(),
                b.batch_size,
                b.rate(),
                rate / b.rate()
            );
        }
    }
    if let Some(check) = measured.proofs.as_ref().filter(|c| !c.refuted.is_empty()) {
        return Err(invalid(format!(
            "{} of {} sampled proofs do not lead to the checkpoint's root; {}",
            check.refuted.len(),
            check.refuted.len() as u64 + check.verified,
            check.refuted.join("; ")
        )));
    }
    if errors > 0 {
        return Err(invalid(format!("{errors} of {} calls failed", tally.sent)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_a_positive_length() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        for bad in ["30", "nonsense", "s", "0s", "-1s", "1d", "1.2.3s", ""] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_are_positive_and_finite() {
        assert_eq!(parse_rate("1000"), Ok(1000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        for bad in ["0", "-3", "inf", "NaN", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statements_and_baseline_rows_are_fresh_and_shaped_like_entries() {
        let a = statement(1, 7);
        assert_ne!(a.sha256, statement(1, 8).sha256);
        assert_ne!(a.sha256, statement(2, 7).sha256);
        let (entry, key) = stored_row(1, 7, 1_700_000_000_000).expect("row");
        let decoded = EvidenceEntry::decode(&entry).expect("a real entry");
        assert_eq!(decoded.digest.as_slice(), a.sha256.as_slice());
        assert_eq!(decoded.principal, DEV_PRINCIPAL);
        assert_ne!(key, stored_row(1, 8, 1_700_000_000_000).expect("row").1);
    }
}
