//! Assembling the roles: storage from flags, keys and tokens from files,
//! and the services wired to each other in one process or across several.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use evault_auth::{AuthLayer, Denials};
use evault_gateway::TileApi;
use evault_ingest::{BatchConfig, Batcher, EvidenceGrpc, IngestGrpc, RateLimit};
use evault_proto::guard::GuardedIncoming;
use evault_proto::v1::tree_service_server::TreeServiceServer;
use evault_signer::{CheckpointSigner, KeyFile, KeyFileError, LogKey};
use evault_storage::embedded::EmbeddedStore;
use evault_storage::postgres::{PostgresStore, migrate};
use evault_storage::signer::SignerFile;
use evault_storage::{EvidenceStore, LogStore};
use evault_tree::{AuditTrail, LogReader, Publisher, Sequencer, TreeGrpc};
use tokio::net::TcpListener;

use crate::denials::DenialReports;
use crate::outcome::{Failure, usage};
use crate::signing_keys::SigningKeyArgs;

/// Where the vault keeps its state: an embedded data directory, or
/// PostgreSQL.
#[derive(Args, Debug, Clone)]
pub(crate) struct StorageArgs {
    /// PostgreSQL URL (e.g. `postgres://user@host/db`); migrations are
    /// applied on start. Without it, the embedded store in --data-dir.
    #[arg(long, env = "EVAULT_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// Directory of the embedded store, keys and tokens.
    #[arg(long, env = "EVAULT_DATA_DIR", default_value = "evault-data")]
    pub(crate) data_dir: PathBuf,
    /// Most PostgreSQL connections per process.
    #[arg(long, env = "EVAULT_DATABASE_CONNECTIONS", default_value_t = 16)]
    pub(crate) database_connections: usize,
}

/// The storage chosen by flags, ready to use.
pub(crate) enum Storage {
    Embedded(EmbeddedStore),
    Postgres(PostgresStore),
}

impl StorageArgs {
    pub(crate) async fn open(&self) -> Result<Storage, Failure> {
        match &self.database_url {
            Some(url) => {
                migrate(url)
                    .await
                    .map_err(|e| usage(format!("--database-url: {e}")))?;
                let store = PostgresStore::connect(url, self.database_connections)
                    .map_err(|e| usage(format!("--database-url: {e}")))?;
                let watched = store.clone();
                evault_metrics::watch_pool(evault_metrics::Database::Log, move || {
                    Some(pool_use(&watched.pool_status()))
                });
                Ok(Storage::Postgres(store))
            }
            None => {
                let store = EmbeddedStore::open(&self.data_dir)
                    .map_err(|e| usage(format!("--data-dir {}: {e}", self.data_dir.display())))?;
                Ok(Storage::Embedded(store))
            }
        }
    }
}

/// A pool's use as the metrics report it: deadpool counts the connections
/// it holds (`size`) and those among them not lent out (`available`).
pub(crate) fn pool_use(status: &deadpool_postgres::Status) -> evault_metrics::PoolUse {
    evault_metrics::PoolUse {
        max: status.max_size,
        in_use: status.size.saturating_sub(status.available),
        idle: status.available,
        waiting: status.waiting,
    }
}

/// Runs `f` with the chosen store, whichever it is.
macro_rules! with_store {
    ($storage:expr, $store:ident => $body:expr) => {
        match $storage {
            $crate::vault::Storage::Embedded($store) => $body,
            $crate::vault::Storage::Postgres($store) => $body,
        }
    };
}
pub(crate) use with_store;

/// Files `evault up` keeps in its data directory.
pub(crate) struct DataDir {
    pub(crate) dir: PathBuf,
}

impl DataDir {
    pub(crate) fn key(&self) -> PathBuf {
        self.dir.join("signing.key")
    }
    pub(crate) fn verifier_key(&self) -> PathBuf {
        self.dir.join("verifier-key")
    }
    fn origin(&self) -> PathBuf {
        self.dir.join("origin")
    }

    /// The log's origin: the one this directory already serves, which a
    /// flag may not change; or, on first start, the flag's or the default.
    pub(crate) fn origin_for(&self, flag: Option<&str>) -> Result<String, Failure> {
        let path = self.origin();
        match std::fs::read_to_string(&path) {
            Ok(stored) => {
                let stored = stored.trim().to_string();
                if let Some(flag) = flag.filter(|f| *f != stored) {
                    return Err(usage(format!(
                        "--origin {flag:?}: {} already holds the log {stored:?}",
                        self.dir.display()
                    )));
                }
                Ok(stored)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let origin = flag.unwrap_or(DEFAULT_ORIGIN).to_string();
                if !evault_core::note::is_valid_key_name(&origin) {
                    return Err(usage(format!(
                        "--origin {origin:?}: no spaces or '+' allowed"
                    )));
                }
                write_file(&path, &format!("{origin}\n"), false)?;
                Ok(origin)
            }
            Err(e) => Err(usage(format!("{}: {e}", path.display()))),
        }
    }

    /// The keys the flags name or, without key flags, the directory's own
    /// key, created on first start; and the verifier key file, one line
    /// per key, rewritten to match.
    pub(crate) fn signing_keys(
        &self,
        origin: &str,
        flags: &SigningKeyArgs,
    ) -> Result<Vec<LogKey>, Failure> {
        let keys = match flags.load(origin)? {
            Some(keys) => keys,
            None => {
                let path = self.key();
                let key = match KeyFile::load(&path, origin) {
                    Ok(key) => key,
                    Err(KeyFileError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        KeyFile::create(&path, origin).map_err(usage)?
                    }
                    Err(e) => return Err(usage(e)),
                };
                vec![Box::new(key) as LogKey]
            }
        };
        let lines: String = keys
            .iter()
            .map(|k| format!("{}\n", k.verifier_key()))
            .collect();
        write_file(&self.verifier_key(), &lines, true)?;
        Ok(keys)
    }
}

/// The origin of a log started without one.
pub(crate) const DEFAULT_ORIGIN: &str = "vault.localhost/evidence";

/// Writes `text` to `path`, readable by others only when `public`.
pub(crate) fn write_file(path: &Path, text: &str, public: bool) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if public { 0o644 } else { 0o600 });
    let mut file = options
        .open(path)
        .map_err(|e| usage(format!("{}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// Where `evault up` answers: its listener's connections, the browser
/// origins it admits, and the health port's reporter, if it has one.
pub(crate) struct Front {
    pub(crate) incoming: GuardedIncoming,
    pub(crate) cors: evault_gateway::Cors,
    pub(crate) probe: Option<tonic_health::server::HealthReporter>,
}

/// Every role in this process, serving `front` until `shutdown`: the
/// log in `store`, signed by `signer`, whose record is kept apart from it.
pub(crate) async fn run_all<S>(
    store: S,
    signer: CheckpointSigner<SignerFile>,
    auth: AuthLayer,
    rate: Option<RateLimit>,
    front: Front,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Failure>
where
    S: LogStore + EvidenceStore + Clone,
{
    let origin = signer.origin().to_string();
    let origin = origin.as_str();
    let signer = Arc::new(signer);
    let sequencer = Arc::new(
        Sequencer::open(origin, store.clone(), Arc::clone(&signer))
            .await
            .map_err(|e| usage(format!("opening the log: {e}")))?,
    );
    let trail = start_audit_trail(&sequencer, store.clone(), signer).await?;
    let denials = Denials::new();
    let auth = auth.with_denials(denials.clone());
    let reports = DenialReports::start(denials, Arc::new(trail.clone()), "up");
    let sequencing = sequencer.sequencing();
    let Front {
        incoming,
        cors,
        probe,
    } = front;
    if let Some(reporter) = probe {
        // Appends follow the sequencer, as on the vault's own port.
        tokio::spawn(evault_gateway::follow_appends(
            reporter,
            sequencer.sequencing(),
        ));
    }
    let batcher = Batcher::start(Arc::clone(&sequencer), BatchConfig::default());
    let ingest = IngestGrpc::new(auth.clone(), rate, store.clone(), batcher);
    let evidence = EvidenceGrpc::new(auth.clone(), store.clone(), Arc::new(trail.clone()));
    let tree = TreeGrpc::from_shared(sequencer, LogReader::new(origin, store.clone()));
    // Appends need a token with evault.append; reads one with evault.read
    // unless reads are public; evidence bytes one with evault.read always.
    let grpc = crate::identity::guarded(
        tonic::service::Routes::new(ingest.into_service())
            .add_service(evidence.into_service())
            .add_service(TreeServiceServer::new(tree.clone())),
        &auth,
    );
    let tiles = TileApi::new(origin, store.clone())
        .routes()
        .merge(evault_gateway::verifier_keys_routes(tree.clone()))
        .merge(evault_gateway::audit_routes(origin, store, tree))
        .layer(auth);
    let served =
        evault_gateway::serve_reporting(incoming, grpc, tiles, None, cors, sequencing, shutdown)
            .await
            .map_err(|e| usage(format!("serving: {e}")));
    reports.flush().await;
    flush_audit_trail(&trail).await;
    served
}

/// Waits, on a graceful stop, for the audit trail to hold everything
/// recorded: only a crash may lose records.
pub(crate) async fn flush_audit_trail(trail: &AuditTrail) {
    if !trail.flush(Duration::from_secs(10)).await {
        tracing::error!("stopping with audit records not yet in the trail");
    }
}

/// Starts writing the audit trail of the log `log` sequences, signed by
/// `publisher`, recording that this process leads it.
pub(crate) async fn start_audit_trail<S: LogStore, P: Publisher>(
    log: &Sequencer<S, P>,
    store: S,
    publisher: P,
) -> Result<AuditTrail, Failure> {
    let trail = Sequencer::open_audit_trail(log.origin(), store, publisher)
        .await
        .map_err(|e| usage(format!("opening the audit trail: {e}")))?;
    AuditTrail::start(log, trail, &instance())
        .await
        .map_err(|e| usage(format!("starting the audit trail: {e}")))
}

/// This process, as the audit trail names it: the host (a Kubernetes pod's
/// name) and the process ID.
fn instance() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    format!("{host}:{}", std::process::id())
}

/// Completes on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Binds `addr`, naming it in the error.
pub(crate) async fn bind(addr: &str) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| usage(format!("--listen {addr}: {e}")))
}
