//! The vault's Prometheus metrics: one registry per process, the handles
//! each role counts with, and the `GET /metrics` route that encodes them.
//!
//! A role asks for its handles when it starts ([`ingest`], [`tree`],
//! [`signer`]); that registers its metrics, once per process, so a process
//! running several roles (`evault up`) exposes each of them once and a
//! process running one role exposes only that role's. What only a scrape
//! can know is computed at scrape time: the age of the latest checkpoint,
//! the batcher's backlog ([`IngestMetrics::watch_backlog`]), the database
//! pools' use ([`watch_pool`]) and the process's own CPU, memory and file
//! descriptors, read from `/proc/self` on Linux and reported by no other
//! system. [`routes`] serves the registry for the gateway's router,
//! [`role_routes`] for the internal roles' gRPC servers; both answer in the
//! Prometheus text format, version 0.0.4 ([`CONTENT_TYPE`]).
//!
//! Why a crate of its own: every role needs it, and no role should need
//! another role's crate for it. Inside `evault-proto` it would have cost
//! no new crate, but that crate is the wire and nothing else; metrics are
//! not a contract between roles. So this crate depends on nothing of the
//! vault's but the one path `evault-proto`'s mutual TLS lets a scraper
//! read ([`PATH`]), and the roles' crates depend on it.
//!
//! It does not decide what an outcome is (ingest maps its answers to
//! [`AppendOutcome`]), keep history, push anywhere, or guard the route:
//! the scrape port's exposure is the deployment's to restrict
//! (`docs/metrics.md`).

mod process;
mod scrape;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use scrape::{CONTENT_TYPE, PATH, role_routes, routes};

/// One label and its value.
type Label = [(&'static str, &'static str); 1];

/// A family of histograms made with fixed buckets.
type Histograms = Family<Label, Histogram, fn() -> Histogram>;

/// The process's registry: the metrics of every role started in it, and
/// the process's own.
fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let mut registry = Registry::default();
            registry.register_collector(Box::new(process::Process));
            Mutex::new(registry)
        })
        .lock()
        // The registry holds no invariant a panic could break halfway.
        .unwrap_or_else(PoisonError::into_inner)
}

/// Every metric registered in this process, in the Prometheus text format
/// (version 0.0.4).
pub fn encode() -> Result<String, fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry())?;
    Ok(text)
}

/// What became of an append, as `evault_appends_total` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Logged now: answered with the receipt of a new entry.
    Logged,
    /// Logged before (same dedup key): answered with the original's receipt.
    Duplicate,
    /// Refused for what it said: a statement or entry not valid.
    Invalid,
    /// Refused for now, by policy: the principal's rate, a full backlog,
    /// a caller without the right.
    Refused,
    /// Not logged because something failed: storage, the tree, the signer.
    Failed,
}

impl AppendOutcome {
    /// Every outcome, in the order of the enum.
    pub const ALL: [AppendOutcome; 5] = [
        AppendOutcome::Logged,
        AppendOutcome::Duplicate,
        AppendOutcome::Invalid,
        AppendOutcome::Refused,
        AppendOutcome::Failed,
    ];

    /// Its `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            AppendOutcome::Logged => "logged",
            AppendOutcome::Duplicate => "duplicate",
            AppendOutcome::Invalid => "invalid",
            AppendOutcome::Refused => "refused",
            AppendOutcome::Failed => "failed",
        }
    }

    /// Whether the append was answered with a receipt.
    fn receipted(self) -> bool {
        match self {
            AppendOutcome::Logged | AppendOutcome::Duplicate => true,
            AppendOutcome::Invalid | AppendOutcome::Refused | AppendOutcome::Failed => false,
        }
    }
}

/// Seconds from accepting a statement to having its receipt: from a
/// millisecond (an idle embedded vault) to half a minute (a failover).
const APPEND_SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A scrape-time source: `None` once what it reads is gone.
type Source<T> = Box<dyn Fn() -> Option<T> + Send + Sync>;

/// Ingest's metrics.
pub struct IngestMetrics {
    appends: Family<Label, Counter>,
    append_duration: Histogram,
    evidence_bytes: Counter,
    backlog: Arc<Backlog>,
}

/// Ingest's metrics, registered in the process's registry on first use.
pub fn ingest() -> &'static IngestMetrics {
    static INGEST: OnceLock<IngestMetrics> = OnceLock::new();
    INGEST.get_or_init(|| {
        let metrics = IngestMetrics {
            appends: Family::default(),
            append_duration: Histogram::new(APPEND_SECONDS),
            evidence_bytes: Counter::default(),
            backlog: Arc::default(),
        };
        // Every outcome from the start, at 0: a rate over a series that
        // appears only with its first event misses that event.
        for outcome in AppendOutcome::ALL {
            let _ = metrics.appends.get_or_create(&[("outcome", outcome.as_str())]);
        }
        let mut registry = registry();
        registry.register(
            "evault_appends",
            "Appends ingest answered, unary and streamed, by outcome",
            metrics.appends.clone(),
        );
        registry.register(
            "evault_append_duration_seconds",
            "Seconds from ingest accepting a statement to having its receipt, for appends answered with one",
            metrics.append_duration.clone(),
        );
        registry.register(
            "evault_evidence_bytes_stored",
            "Bytes of uploaded evidence ingest stored",
            metrics.evidence_bytes.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&metrics.backlog)));
        metrics
    })
}

impl IngestMetrics {
    /// Counts an append answered with `outcome`, whose statement was
    /// accepted at `accepted`; one answered with a receipt adds the time
    /// it took to the latency histogram.
    pub fn answered(&self, outcome: AppendOutcome, accepted: Instant) {
        self.appends
            .get_or_create(&[("outcome", outcome.as_str())])
            .inc();
        if outcome.receipted() {
            self.append_duration
                .observe(accepted.elapsed().as_secs_f64());
        }
    }

    /// Counts `bytes` of uploaded evidence stored.
    pub fn evidence_stored(&self, bytes: usize) {
        self.evidence_bytes.inc_by(bytes as u64);
    }

    /// Adds a batcher's queue to the backlog: `queued` says how many
    /// entries wait in it, or `None` once the batcher is gone (and is then
    /// forgotten).
    pub fn watch_backlog(&self, queued: impl Fn() -> Option<usize> + Send + Sync + 'static) {
        lock(&self.backlog.queues).push(Box::new(queued));
    }
}

/// The entries queued in ingest's batchers, summed at scrape time.
#[derive(Default)]
struct Backlog {
    queues: Mutex<Vec<Source<usize>>>,
}

impl fmt::Debug for Backlog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backlog").finish_non_exhaustive()
    }
}

impl Collector for Backlog {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let mut queued = 0;
        lock(&self.queues).retain(|queue| match queue() {
            Some(n) => {
                queued += n;
                true
            }
            None => false,
        });
        let gauge = ConstGauge::new(queued as i64);
        gauge.encode(encoder.encode_descriptor(
            "evault_ingest_backlog",
            "Entries queued in ingest's batcher, waiting for a batch.",
            None,
            gauge.metric_type(),
        )?)
    }
}

/// A log a tree sequences: the evidence log, or its audit trail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// The evidence log.
    Evidence,
    /// Its audit trail (`<origin>/audit`).
    Audit,
}

impl Log {
    /// Its `log` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Log::Evidence => "evidence",
            Log::Audit => "audit",
        }
    }

    fn index(self) -> usize {
        match self {
            Log::Evidence => 0,
            Log::Audit => 1,
        }
    }
}

/// Tree's metrics.
pub struct TreeMetrics {
    batch_entries: Histograms,
    tree_size: Family<Label, Gauge>,
    checkpoints: Arc<CheckpointTimes>,
    signing: Histogram,
}

/// Tree's metrics, registered in the process's registry on first use.
pub fn tree() -> &'static TreeMetrics {
    static TREE: OnceLock<TreeMetrics> = OnceLock::new();
    TREE.get_or_init(|| {
        let metrics = TreeMetrics {
            // Powers of two up to a full batch (4096 entries).
            batch_entries: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(1.0, 2.0, 13))
            }),
            tree_size: Family::default(),
            checkpoints: Arc::default(),
            signing: signing_duration().get_or_create_owned(&[("role", "tree")]),
        };
        let mut registry = registry();
        registry.register(
            "evault_batch_entries",
            "Entries per batch the tree sequenced (duplicates included), by log",
            metrics.batch_entries.clone(),
        );
        registry.register(
            "evault_tree_size",
            "Size of the tree of the latest checkpoint this tree stored or found, by log",
            metrics.tree_size.clone(),
        );
        registry.register_collector(Box::new(Arc::clone(&metrics.checkpoints)));
        metrics
    })
}

impl TreeMetrics {
    /// Counts a batch of `entries` sequenced into `log`.
    pub fn batch_sequenced(&self, log: Log, entries: usize) {
        self.batch_entries
            .get_or_create(&[("log", log.as_str())])
            .observe(entries as f64);
    }

    /// Says that `log`'s latest checkpoint, of a tree of `size` entries,
    /// was stored now, or found now on opening the log.
    pub fn checkpoint_stored(&self, log: Log, size: u64) {
        self.tree_size
            .get_or_create(&[("log", log.as_str())])
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        self.checkpoints.times[log.index()].store(unix_millis(), Ordering::Relaxed);
    }

    /// Counts a call to the signer that took `took`, as tree saw it.
    pub fn signing_took(&self, took: Duration) {
        self.signing.observe(took.as_secs_f64());
    }
}

/// When each log's latest checkpoint was stored (or found), in
/// milliseconds since the Unix epoch; 0 for never.
#[derive(Debug, Default)]
struct CheckpointTimes {
    times: [AtomicU64; 2],
}

impl Collector for CheckpointTimes {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let mut family = encoder.encode_descriptor(
            "evault_checkpoint_age_seconds",
            "Seconds since this tree stored its log's latest checkpoint (or, after a start, found it), by log.",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        let now = unix_millis();
        for log in [Log::Evidence, Log::Audit] {
            let at = self.times[log.index()].load(Ordering::Relaxed);
            if at != 0 {
                let age = now.saturating_sub(at) as f64 / 1000.0;
                ConstGauge::new(age).encode(family.encode_family(&[("log", log.as_str())])?)?;
            }
        }
        Ok(())
    }
}

/// Seconds a checkpoint signature takes: from a tenth of a millisecond (a
/// key in memory, in process) to ten seconds (a slow token).
const SIGNING_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The signing latency, by the role that measured it: tree's call (the
/// wire included) and signer's own work. One family for both, since
/// `evault up` runs both roles in one registry.
fn signing_duration() -> &'static Histograms {
    static SIGNING: OnceLock<Histograms> = OnceLock::new();
    SIGNING.get_or_init(|| {
        let family: Histograms =
            Family::new_with_constructor(|| Histogram::new(SIGNING_SECONDS));
        registry().register(
            "evault_signing_duration_seconds",
            "Seconds a checkpoint signature took, answered or not: role=tree as tree's call to the signer, role=signer as the signer's own checks, signatures and record",
            family.clone(),
        );
        family
    })
}

/// Signer's metrics.
pub struct SignerMetrics {
    signing: Histogram,
}

/// Signer's metrics, registered in the process's registry on first use.
pub fn signer() -> &'static SignerMetrics {
    static SIGNER: OnceLock<SignerMetrics> = OnceLock::new();
    SIGNER.get_or_init(|| SignerMetrics {
        signing: signing_duration().get_or_create_owned(&[("role", "signer")]),
    })
}

impl SignerMetrics {
    /// Counts a signature request the signer took `took` over.
    pub fn signing_took(&self, took: Duration) {
        self.signing.observe(took.as_secs_f64());
    }
}

/// A PostgreSQL database a process holds a pool of connections to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    /// The log's.
    Log,
    /// The signer's own.
    Signer,
}

impl Database {
    /// Its `database` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Database::Log => "log",
            Database::Signer => "signer",
        }
    }
}

/// A connection pool's use at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// The most connections it may hold.
    pub max: usize,
    /// Connections lent out.
    pub in_use: usize,
    /// Connections open and waiting to be lent.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// Reports a pool of connections to `database`: `status` says its use, or
/// `None` once the pool is gone (and is then forgotten). Pools of the same
/// database are reported together.
pub fn watch_pool(
    database: Database,
    status: impl Fn() -> Option<PoolUse> + Send + Sync + 'static,
) {
    static POOLS: OnceLock<Arc<Pools>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| {
        let pools = Arc::<Pools>::default();
        registry().register_collector(Box::new(Arc::clone(&pools)));
        pools
    });
    lock(&pools.pools).push((database, Box::new(status)));
}

/// The database pools, read at scrape time.
#[derive(Default)]
struct Pools {
    pools: Mutex<Vec<(Database, Source<PoolUse>)>>,
}

impl fmt::Debug for Pools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pools").finish_non_exhaustive()
    }
}

impl Collector for Pools {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let mut totals: Vec<(Database, PoolUse)> = Vec::new();
        lock(&self.pools).retain(|(database, status)| {
            let Some(now) = status() else {
                return false;
            };
            match totals.iter_mut().find(|(d, _)| d == database) {
                Some((_, total)) => {
                    total.max += now.max;
                    total.in_use += now.in_use;
                    total.idle += now.idle;
                    total.waiting += now.waiting;
                }
                None => totals.push((*database, now)),
            }
            true
        });
        let gauge = prometheus_client::metrics::MetricType::Gauge;
        let mut connections = encoder.encode_descriptor(
            "evault_db_pool_connections",
            "PostgreSQL connections the pool holds, by database and state (in_use, idle).",
            None,
            gauge,
        )?;
        for (database, total) in &totals {
            for (state, n) in [("in_use", total.in_use), ("idle", total.idle)] {
                let labels = [("database", database.as_str()), ("state", state)];
                ConstGauge::new(n as i64).encode(connections.encode_family(&labels)?)?;
            }
        }
        let mut max = encoder.encode_descriptor(
            "evault_db_pool_max_connections",
            "The most PostgreSQL connections the pool may hold, by database.",
            None,
            gauge,
        )?;
        for (database, total) in &totals {
            ConstGauge::new(total.max as i64)
                .encode(max.encode_family(&[("database", database.as_str())])?)?;
        }
        let mut waiting = encoder.encode_descriptor(
            "evault_db_pool_waiting",
            "Callers waiting for a PostgreSQL connection from the pool, by database.",
            None,
            gauge,
        )?;
        for (database, total) in &totals {
            ConstGauge::new(total.waiting as i64)
                .encode(waiting.encode_family(&[("database", database.as_str())])?)?;
        }
        Ok(())
    }
}

/// Locks a list of sources; a panic in one leaves the list usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
