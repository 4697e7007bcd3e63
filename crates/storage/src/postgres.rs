//! The PostgreSQL store: the system of record in production.
//!
//! Connections come from a deadpool pool. Integration is one transaction
//! that first moves the tree head with a conditional `UPDATE` (the
//! compare-and-swap: a concurrent writer blocks on the row and then finds
//! the condition false), then bulk-inserts entries and full tiles with
//! `UNNEST`, so a batch of thousands of entries is a handful of statements.
//! A large batch's first half is inserted meanwhile by a second connection
//! and committed just before it (see [`PostgresStore::write`]); entries a
//! failure leaves beyond the head are never read, and are removed before
//! the log is written again.
//!
//! Entries keep only their bytes and dedup key (`migrations/V3`): lookups
//! go through indexes on expressions, and each query below spells its
//! index's expression exactly, or PostgreSQL would not use the index. The
//! dedup key's is a hash index over the key and the log ID, checked by
//! every append against the whole log. Leaf hashes and evidence digests
//! are looked up through btrees keyed by bucket of positions first
//! (`migrations/V5`), so that appends touch only the newest bucket's
//! pages; a lookup probes every bucket.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use evault_core::Hash;
use evault_core::tile::FULL_TILE_BYTES;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::signer::LegacySignerRecord;
use crate::{
    AppliedMigration, CHECKPOINTS_KEPT, Erasure, EvidenceStore, Integration, LogStore,
    PRUNED_AT_ONCE, PruneSchedule, Result, SignedHead, StorageError, StoredEvidence, TreeHead,
    check_batch,
};

mod embedded_migrations {
    refinery::embed_migrations!("../../migrations");
}

/// The advisory lock held while migrating, so that replicas starting
/// together apply each migration once ("evault" in ASCII).
const MIGRATION_LOCK: i64 = 0x6576_6175_6c74;

/// Where the log's migrations keep their history: refinery's default,
/// named here because [`PostgresStore::applied_migrations`] reads it.
const LOG_HISTORY: &str = "refinery_schema_history";

/// The first key of the advisory locks on evidence digests ("evid" in
/// ASCII; see [`lock_evidence`]).
const EVIDENCE_LOCK: i32 = 0x6576_6964;

/// The last millisecond PostgreSQL's TIMESTAMPTZ holds,
/// 294276-12-31T23:59:59.999Z, counted from the Unix epoch.
const MAX_TIMESTAMP_MS: u64 = 9_224_318_015_999_999;

pub(crate) fn pg_error(e: tokio_postgres::Error) -> StorageError {
    // A statement cut by `statement_timeout` is the database being slow
    // or stuck, not a bad request: retrying later may succeed.
    if e.code() == Some(&SqlState::QUERY_CANCELED) {
        return StorageError::Unavailable(e.to_string());
    }
    if e.as_db_error().is_some() {
        StorageError::Backend(e.to_string())
    } else {
        StorageError::Unavailable(e.to_string())
    }
}

/// A uniqueness failure while writing a batch: what it names is already
/// logged (the primary keys are unique constraints, the dedup key's is an
/// exclusion constraint), and the batch is refused whole.
fn already_logged(e: tokio_postgres::Error, what: &str) -> StorageError {
    match e.code() {
        Some(code)
            if *code == SqlState::UNIQUE_VIOLATION || *code == SqlState::EXCLUSION_VIOLATION =>
        {
            StorageError::InvalidBatch(format!("{what} is already logged: {e}"))
        }
        _ => pg_error(e),
    }
}

pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> StorageError {
    StorageError::Unavailable(e.to_string())
}

/// PostgreSQL's BIGINT holds sizes and indices below 2^63.
pub(crate) fn int(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StorageError::InvalidBatch(format!("{v} exceeds 2^63 - 1")))
}

pub(crate) fn uint(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StorageError::Corrupt(format!("negative value {v}")))
}

pub(crate) fn hash(bytes: &[u8], what: &str) -> Result<Hash> {
    Hash::from_slice(bytes).ok_or_else(|| StorageError::Corrupt(what.to_string()))
}

/// Milliseconds since the Unix epoch as a TIMESTAMPTZ parameter, exactly:
/// tokio-postgres sends a `SystemTime` as whole microseconds, with no
/// floating point on the way. A time beyond PostgreSQL's range is refused
/// here rather than overflowing in the conversion.
fn timestamp(ms: u64) -> Result<SystemTime> {
    if ms > MAX_TIMESTAMP_MS {
        return Err(StorageError::InvalidBatch(format!(
            "{ms} ms after 1970 is beyond PostgreSQL's last timestamp"
        )));
    }
    UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .ok_or_else(|| {
            StorageError::InvalidBatch(format!("{ms} ms after 1970 overflows the clock"))
        })
}

/// The inverse of [`timestamp`]: whole milliseconds since the Unix epoch
/// (the stores write only those; a finer time written by hand is cut to
/// its millisecond).
fn millis(time: SystemTime, what: &str) -> Result<u64> {
    time.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
        .ok_or_else(|| StorageError::Corrupt(format!("{what} before 1970")))
}

/// Applies every pending migration in `migrations/`, under an advisory
/// lock. Returns the versions applied now (empty when up to date).
pub async fn migrate(database_url: &str) -> Result<Vec<u32>> {
    migrate_to(database_url, None).await
}

/// Applies pending migrations up to version `target` (all with `None`),
/// under an advisory lock. Returns the versions applied now. A database
/// that holds the signer's record is refused, writing nothing: the log
/// and the record of what was signed for it must not share a failure
/// domain ([`crate::signer`]).
pub async fn migrate_to(database_url: &str, target: Option<u32>) -> Result<Vec<u32>> {
    let mut runner = embedded_migrations::migrations::runner();
    runner.set_migration_table_name(LOG_HISTORY);
    if let Some(version) = target {
        let version = i32::try_from(version)
            .map_err(|_| StorageError::Backend(format!("no migration version {version}")))?;
        runner = runner.set_target(refinery::Target::Version(version));
    }
    let apart = Apart {
        table: crate::signer::SIGNER_TABLE,
        holder: "the signer's record",
    };
    migrate_locked(database_url, MIGRATION_LOCK, runner, apart).await
}

/// A table whose presence shows that a database belongs to another
/// failure domain than the one about to be migrated into it.
pub(crate) struct Apart {
    /// Its name, looked up through the session's `search_path`.
    pub(crate) table: &'static str,
    /// What holding it means, for the error.
    pub(crate) holder: &'static str,
}

/// Runs `runner` on the database at `database_url` under the advisory lock
/// `lock`, so that replicas starting together apply each migration once,
/// after checking, under the same lock, that the database does not hold
/// `apart.table`. Returns the versions applied now.
pub(crate) async fn migrate_locked(
    database_url: &str,
    lock: i64,
    runner: refinery::Runner,
    apart: Apart,
) -> Result<Vec<u32>> {
    let (mut client, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .map_err(pg_error)?;
    let driver = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&lock])
        .await
        .map_err(pg_error)?;
    let report = match holds_table(&client, apart.table).await {
        Ok(false) => runner
            .run_async(&mut client)
            .await
            .map_err(|e| StorageError::Backend(format!("migration failed: {e}"))),
        Ok(true) => Err(StorageError::NotApart(format!(
            "the database holds {} (table {:?}); give each its own database",
            apart.holder, apart.table
        ))),
        Err(e) => Err(e),
    };
    // The lock also goes when the session ends; unlocking is a courtesy.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&lock])
        .await;
    drop(client);
    let _ = driver.await;
    Ok(report?
        .applied_migrations()
        .iter()
        .map(|m| m.version() as u32)
        .collect())
}

/// Whether `table` is visible through the session's `search_path`: the
/// schema a store's statements would use.
async fn holds_table(client: &tokio_postgres::Client, table: &str) -> Result<bool> {
    let row = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(pg_error)?;
    Ok(row.get(0))
}

/// Leadership of one log: a PostgreSQL session-level advisory lock held on
/// a connection of its own, as a lease. It ends when dropped, when the
/// process dies, when the connection breaks, and when either side stops
/// hearing from the other: the database, not a replica count, decides who
/// sequences.
///
/// The lock's session is never idle: the leader asks the database
/// something every [`HEARTBEAT`], and gives up leading when an answer
/// takes over [`HEARTBEAT_TIMEOUT`] (a partition, a stalled or failed-over
/// database). The database ends the session, releasing the lock for a
/// standby, once it has heard nothing for [`LEASE`]
/// (`idle_session_timeout`), whatever happened to the leader's host;
/// without it, a dead host's session would hold the lock until the
/// server's TCP keep-alives gave up, hours later. The leader gives up
/// before the database lets go: [`HEARTBEAT`] + [`HEARTBEAT_TIMEOUT`]
/// is under [`LEASE`].
pub struct Leadership {
    watch: tokio::task::JoinHandle<String>,
}

/// How often the leader shows the database it is there.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// How long an answer to a heartbeat may take before the leader stops
/// leading.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long the database keeps the lock of a leader it does not hear
/// from.
pub const LEASE: Duration = Duration::from_secs(3);

impl Leadership {
    /// Whether the lock is still held, as far as this process knows.
    pub fn is_held(&self) -> bool {
        !self.watch.is_finished()
    }

    /// Completes when the lock is lost, saying why.
    pub async fn lost(&mut self) -> String {
        match (&mut self.watch).await {
            Ok(reason) => reason,
            Err(error) => format!("the leadership task failed: {error}"),
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        // The task owns the lock's connection: ending it ends the session
        // and releases the lock at once.
        self.watch.abort();
    }
}

/// Keeps the lock's session busy until it fails; returns why it did.
async fn heartbeat(
    client: tokio_postgres::Client,
    mut connection: tokio::task::JoinHandle<()>,
) -> String {
    loop {
        tokio::select! {
            _ = &mut connection => return "the lock's connection ended".to_string(),
            () = tokio::time::sleep(HEARTBEAT) => {}
        }
        match tokio::time::timeout(HEARTBEAT_TIMEOUT, client.simple_query("SELECT 1")).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return format!("the lock's session failed: {error}"),
            Err(_) => {
                return format!(
                    "the database did not answer within {} ms",
                    HEARTBEAT_TIMEOUT.as_millis()
                );
            }
        }
    }
}

/// The advisory-lock key of `origin`'s leadership.
fn leader_key(origin: &str) -> i64 {
    let digest = evault_core::hash::sha256(format!("evault leader\n{origin}").as_bytes());
    i64::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ])
}

/// How long opening a connection may take, unless the URL says
/// (`connect_timeout`): a database that does not answer fails the call
/// instead of holding it for the kernel's minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// TCP keep-alives on every connection: a peer gone without closing (a
/// host down, a partition) breaks the connection within seconds of
/// silence, and unacknowledged writes within [`TCP_USER_TIMEOUT`].
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a caller waits for a pooled connection, for one to be made,
/// and for one to be checked before reuse.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one statement may run on a pooled connection: every
/// statement of the vault touches a batch's rows or fewer, so one that
/// runs this long is stuck behind a lock or a failing disk, and holding
/// the sequencer behind it would stop the log.
const STATEMENT_TIMEOUT: &str = "-c statement_timeout=30000";

/// How long one store operation may take in all, from the wait for a
/// connection to the last row: a little over the statement timeout, so
/// that a slow statement is ended by the server first (see
/// [`PostgresStore::with_operation_timeout`]).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(35);

/// The connection settings of a libpq-style URL, with the vault's
/// timeouts and keep-alives where the URL sets none.
pub(crate) fn config(database_url: &str) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = database_url
        .parse()
        .map_err(|e| StorageError::Backend(format!("database URL: {e}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(TCP_USER_TIMEOUT);
    Ok(config)
}

/// Adds a session setting (`-c name=value`) to those the URL gives.
fn with_option(config: &mut tokio_postgres::Config, option: &str) {
    let options = match config.get_options() {
        Some(given) => format!("{given} {option}"),
        None => option.to_string(),
    };
    config.options(&options);
}

/// A pool of at most `max_connections` connections made with `config`,
/// connecting lazily.
pub(crate) fn pool(config: tokio_postgres::Config, max_connections: usize) -> Result<Pool> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_connections)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()
        .map_err(|e| StorageError::Backend(e.to_string()))
}

/// The session setting that plans every statement with its parameters and
/// the table as it is now (see [`PostgresStore::connect`]).
const CUSTOM_PLANS: &str = "-c plan_cache_mode=force_custom_plan";

/// From how many entries a batch's entries are written by two connections
/// at once, half each.
const WRITTEN_AHEAD_FROM: usize = 512;

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// origin → log ID, as committed: a log's ID never changes and a log
    /// is never removed, so each origin is looked up once, not on every
    /// call.
    log_ids: Arc<Mutex<HashMap<String, i64>>>,
    /// When each log's checkpoints are next pruned.
    pruning: Arc<PruneSchedule>,
    /// See [`PostgresStore::with_operation_timeout`].
    operation_timeout: Duration,
    /// The logs known to hold no entry beyond their head: each log's
    /// first write in this process looks first, and so does the write
    /// after one that failed (see [`PostgresStore::write`]).
    clear_beyond_head: Arc<Mutex<HashSet<i64>>>,
}

impl PostgresStore {
    /// A store over the database at `database_url` (a libpq-style URL),
    /// with at most `max_connections` connections. Connects lazily.
    pub fn connect(database_url: &str, max_connections: usize) -> Result<Self> {
        let mut config = config(database_url)?;
        // Statements are prepared once per connection, and PostgreSQL
        // switches a prepared statement to a generic plan after a few
        // runs, chosen with the table's statistics of that moment. A log
        // starts empty and grows by millions between two ANALYZEs: a plan
        // made at 500 entries (a sequential scan is cheapest there) would
        // scan the whole table for every batch at a million. Custom plans
        // cost a planning pass per statement (tens of microseconds) and
        // follow the table as it grows.
        with_option(&mut config, CUSTOM_PLANS);
        with_option(&mut config, STATEMENT_TIMEOUT);
        Ok(PostgresStore {
            pool: pool(config, max_connections)?,
            log_ids: Arc::default(),
            pruning: Arc::default(),
            operation_timeout: OPERATION_TIMEOUT,
            clear_beyond_head: Arc::default(),
        })
    }

    /// Tries once to become the leader of `origin` on the database at
    /// `database_url`; `None` when another process leads.
    pub async fn try_lead(database_url: &str, origin: &str) -> Result<Option<Leadership>> {
        let mut config = config(database_url)?;
        with_option(
            &mut config,
            &format!("-c idle_session_timeout={}", LEASE.as_millis()),
        );
        let (client, connection) = config.connect(NoTls).await.map_err(pg_error)?;
        let connection = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::error!(%error, "leadership connection lost");
            }
        });
        let row = tokio::time::timeout(
            HEARTBEAT_TIMEOUT,
            client.query_one("SELECT pg_try_advisory_lock($1)", &[&leader_key(origin)]),
        )
        .await
        .map_err(|_| StorageError::Unavailable("the database did not answer".into()))?
        .map_err(pg_error)?;
        if row.get::<_, bool>(0) {
            Ok(Some(Leadership {
                watch: tokio::spawn(heartbeat(client, connection)),
            }))
        } else {
            drop(client);
            let _ = connection.await;
            Ok(None)
        }
    }

    /// The connection pool's use at this moment, as deadpool counts it:
    /// what the `evault_db_pool_*` metrics report.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// How long one operation (a batch's commit, a read) may take in all
    /// before it is given up as `Unavailable`: [`OPERATION_TIMEOUT`]
    /// unless set here. The server's `statement_timeout` ends a statement
    /// stuck in the database; this ends one whose database went silent
    /// (a frozen server, a connection that swallows what it is sent),
    /// where nothing would come back at all.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// `operation`, given up after the operation timeout.
    async fn bounded<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout(self.operation_timeout, operation)
            .await
            .unwrap_or_else(|_| {
                Err(StorageError::Unavailable(format!(
                    "the database did not answer within {} ms",
                    self.operation_timeout.as_millis()
                )))
            })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A second connection if one is free (or may be opened) at once;
    /// `None` rather than waiting for one, which could wait on the caller.
    async fn spare_client(&self) -> Option<deadpool_postgres::Object> {
        let at_once = deadpool_postgres::Timeouts {
            wait: Some(Duration::ZERO),
            ..self.pool.timeouts()
        };
        self.pool.timeout_get(&at_once).await.ok()
    }

    /// Writes `batch` into log `id` and moves its head, on `client` and,
    /// for a batch of at least [`WRITTEN_AHEAD_FROM`] entries, a second
    /// connection at once if one is free.
    ///
    /// The second connection writes the batch's first half in a
    /// transaction of its own (PostgreSQL runs one statement on one core,
    /// and maintaining the entries' indexes is most of a batch's work:
    /// docs/benchmarks.md). It starts once `client`'s transaction has
    /// moved the head by compare-and-swap, which locks the head's row
    /// until it ends; it commits once that transaction has written
    /// everything else, and that transaction commits right after. If the
    /// second commit fails, the first half stays beyond the head: not in
    /// the log, never read, and removed under the head's lock before the
    /// log is written again ([`remove_beyond_head`]).
    async fn write(
        &self,
        client: &mut deadpool_postgres::Object,
        id: i64,
        batch: &Integration<'_>,
    ) -> Result<()> {
        let mut ahead = if batch.entries.len() >= WRITTEN_AHEAD_FROM {
            self.spare_client().await
        } else {
            None
        };
        let split = batch.entries.len() / 2;
        if ahead.is_some() {
            // A dedup key in both halves would leave each transaction
            // waiting for the other to end, until the statement timeout:
            // the database cannot see that they are one batch. Refused
            // here instead, as the database refuses a repeat within one
            // transaction.
            let first: HashSet<&[u8; 32]> = batch.entries[..split]
                .iter()
                .map(|e| &e.dedup_key)
                .collect();
            if let Some(e) = batch.entries[split..]
                .iter()
                .find(|e| first.contains(&e.dedup_key))
            {
                return Err(StorageError::InvalidBatch(format!(
                    "entry {} repeats a dedup key of the same batch",
                    e.index
                )));
            }
        }
        let tx = client.transaction().await.map_err(pg_error)?;
        // The head's row is locked from here on. Had another writer of the
        // log been between its two commits, this one waited for it here,
        // before writing anything the other could in turn wait on.
        move_head(&tx, id, batch).await?;
        let Some(ahead) = ahead.as_mut() else {
            write_batch(&tx, id, batch, 0).await?;
            return tx.commit().await.map_err(pg_error);
        };
        let ahead = ahead.transaction().await.map_err(pg_error)?;
        let (written, written_ahead) = tokio::join!(
            write_batch(&tx, id, batch, split),
            write_ahead(&ahead, id, &batch.entries[..split]),
        );
        // Either failing drops both transactions, which rolls them back.
        written?;
        written_ahead?;
        ahead.commit().await.map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)
    }

    /// The ID of the log `origin`, from memory once it has been read.
    async fn log_id(&self, client: &impl GenericClient, origin: &str) -> Result<i64> {
        let known = self
            .log_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(origin)
            .copied();
        if let Some(id) = known {
            return Ok(id);
        }
        let id = log_id(client, origin).await?;
        self.log_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(origin.to_string(), id);
        Ok(id)
    }
}

/// Moves log `id`'s head by compare-and-swap from `batch.old` to
/// `batch.new` in `tx`, whose row then stays locked until `tx` ends.
async fn move_head(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    batch: &Integration<'_>,
) -> Result<()> {
    let update = prepared(
        tx,
        "UPDATE tree_heads SET size = $2, root = $3, updated_at = now()
         WHERE log_id = $1 AND size = $4 AND root = $5",
    )
    .await?;
    let moved = tx
        .execute(
            &update,
            &[
                &id,
                &int(batch.new.size)?,
                &batch.new.root.as_bytes(),
                &int(batch.old.size)?,
                &batch.old.root.as_bytes(),
            ],
        )
        .await
        .map_err(pg_error)?;
    if moved != 1 {
        let found = read_head(tx, id).await?;
        // Dropping the transaction rolls it back.
        return Err(StorageError::HeadMoved {
            expected: batch.old.size,
            found: found.size,
        });
    }
    Ok(())
}

/// Writes `batch`'s entries from `from` on and its full tiles, in `tx`.
async fn write_batch(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    batch: &Integration<'_>,
    from: usize,
) -> Result<()> {
    insert_entries(tx, id, &batch.entries[from..]).await?;
    let levels: Vec<i16> = batch
        .tiles
        .iter()
        .map(|(t, _)| i16::from(t.level))
        .collect();
    let tile_indices: Vec<i64> = batch
        .tiles
        .iter()
        .map(|(t, _)| int(t.index))
        .collect::<Result<_>>()?;
    let hashes: Vec<&[u8]> = batch.tiles.iter().map(|(_, h)| h.as_slice()).collect();
    // Full tiles are written once: a second write of one is refused,
    // never an update.
    let insert = prepared(
        tx,
        "INSERT INTO tiles (log_id, level, idx, hashes)
         SELECT $1, * FROM UNNEST($2::SMALLINT[], $3::BIGINT[], $4::BYTEA[])",
    )
    .await?;
    tx.execute(&insert, &[&id, &levels, &tile_indices, &hashes])
        .await
        .map_err(|e| already_logged(e, "a tile"))?;
    Ok(())
}

/// Removes log `id`'s entries beyond its head, left by a batch whose first
/// half committed and whose second did not, and returns how many there
/// were. The head's row is locked first, so no batch can be between its
/// two commits meanwhile (each holds that lock from before its first
/// commit until its second): whatever lies beyond the head then belongs
/// to no batch that can still complete.
async fn remove_beyond_head(client: &impl GenericClient, id: i64) -> Result<u64> {
    let remove = prepared(
        client,
        "WITH head AS (SELECT size FROM tree_heads WHERE log_id = $1 FOR UPDATE)
         DELETE FROM entries WHERE log_id = $1 AND idx >= (SELECT size FROM head)",
    )
    .await?;
    let removed = client.execute(&remove, &[&id]).await.map_err(pg_error)?;
    if removed > 0 {
        tracing::warn!(
            log_id = id,
            removed,
            "removed entries beyond the head, left by a batch whose commit did not complete"
        );
    }
    Ok(removed)
}

/// Writes `entries`, the first part of a batch, in `tx`, committed
/// without waiting for its flush: the batch's own commit follows it and
/// flushes the log's WAL up to there, this one included.
async fn write_ahead(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    entries: &[crate::StoredEntry],
) -> Result<()> {
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await
        .map_err(pg_error)?;
    insert_entries(tx, id, entries).await
}

/// Inserts `entries` of log `id`. The leaf hash and evidence digest are
/// not stored: the indexes compute them from the entry bytes
/// (`check_batch` has made sure the batch's own values agree).
async fn insert_entries(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    entries: &[crate::StoredEntry],
) -> Result<()> {
    let indices: Vec<i64> = entries
        .iter()
        .map(|e| int(e.index))
        .collect::<Result<_>>()?;
    let bytes: Vec<&[u8]> = entries.iter().map(|e| e.entry.as_slice()).collect();
    let keys: Vec<&[u8]> = entries.iter().map(|e| e.dedup_key.as_slice()).collect();
    let insert = prepared(
        tx,
        "INSERT INTO entries (log_id, idx, entry, dedup_key)
         SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BYTEA[], $4::BYTEA[])",
    )
    .await?;
    tx.execute(&insert, &[&id, &indices, &bytes, &keys])
        .await
        .map_err(|e| already_logged(e, "a dedup key or index"))?;
    Ok(())
}

/// `sql` prepared on `client`'s connection, once per connection: the
/// statements of the hot paths (integration, lookups, proofs' reads) are
/// then not parsed again on each call. They are planned on each call all
/// the same (custom plans, see [`PostgresStore::connect`]).
async fn prepared(client: &impl GenericClient, sql: &str) -> Result<tokio_postgres::Statement> {
    client.prepare_cached(sql).await.map_err(pg_error)
}

/// The dedup keys among `$2` logged in log `$1`, with their indices: one
/// bitmap scan of the exclusion constraint's hash index probing every key
/// (`= ANY` over an array). A join, or a subquery per key, is estimated
/// so costly on a batch of thousands of keys that PostgreSQL either scans
/// the whole log or compiles the plan with JIT first (tens of
/// milliseconds for a lookup that takes two).
///
/// This lookup and the two below read only entries within the head: an
/// entry beyond it is not in the log (see [`PostgresStore::write`]).
const FIND_DEDUP: &str = "SELECT dedup_key, idx FROM entries
     WHERE dedup_key || int8send(log_id) = ANY (ARRAY(
         SELECT key || int8send($1::BIGINT) FROM UNNEST($2::BYTEA[]) AS want (key)))
       AND idx < (SELECT size FROM tree_heads WHERE log_id = $1)";

/// The first index in log `$1` whose entry has leaf hash `$2`, through
/// `entries_by_leaf_hash`: one probe per bucket of 65,536 positions up to
/// the head (`migrations/V5`), each entry found checked against the whole
/// hash. The same entry may be logged more than once (under different
/// dedup keys), hence the minimum. `log_id + 0` keeps the planner from
/// walking the primary key for `log_id` instead.
const FIND_LEAF: &str = "SELECT min(idx) FROM entries
     WHERE ((idx >> 16) << 32)
           | ('x' || encode(substring(sha256('\\x00'::bytea || entry) FROM 1 FOR 4), 'hex'))::bit(32)::bigint
           = ANY (ARRAY(
               SELECT (bucket << 32) | ('x' || encode(substring($2::BYTEA FROM 1 FOR 4), 'hex'))::bit(32)::bigint
               FROM generate_series(0, (SELECT (size - 1) >> 16 FROM tree_heads WHERE log_id = $1))
                   AS b (bucket)))
       AND sha256('\\x00'::bytea || entry) = $2
       AND log_id + 0 = $1
       AND idx < (SELECT size FROM tree_heads WHERE log_id = $1)";

/// Indices in log `$1` of the version-1 entries naming evidence `$2`, from
/// `$3` on, at most `$4`, through `entries_by_evidence_v1`, probed as
/// [`FIND_LEAF`] probes its index, from `$3`'s bucket on. The version
/// condition repeats the index's predicate, which lets the planner use it.
const FIND_EVIDENCE: &str = "SELECT idx FROM entries
     WHERE substring(entry FROM 1 FOR 1) = '\\x01'::bytea
       AND ((idx >> 16) << 32)
           | ('x' || encode(substring(entry FROM 2 FOR 4), 'hex'))::bit(32)::bigint
           = ANY (ARRAY(
               SELECT (bucket << 32) | ('x' || encode(substring($2::BYTEA FROM 1 FOR 4), 'hex'))::bit(32)::bigint
               FROM generate_series($3::BIGINT >> 16,
                                    (SELECT (size - 1) >> 16 FROM tree_heads WHERE log_id = $1))
                   AS b (bucket)))
       AND substring(entry FROM 2 FOR 32) = $2
       AND log_id + 0 = $1
       AND idx >= $3 AND idx < (SELECT size FROM tree_heads WHERE log_id = $1)
     ORDER BY idx LIMIT $4";

async fn log_id(client: &impl GenericClient, origin: &str) -> Result<i64> {
    let select = prepared(client, "SELECT id FROM logs WHERE origin = $1").await?;
    let row = client
        .query_opt(&select, &[&origin])
        .await
        .map_err(pg_error)?;
    row.map(|r| r.get(0))
        .ok_or_else(|| StorageError::NoSuchLog(origin.to_string()))
}

async fn read_head(client: &impl GenericClient, id: i64) -> Result<TreeHead> {
    let select = prepared(
        client,
        "SELECT size, root FROM tree_heads WHERE log_id = $1",
    )
    .await?;
    let row = client.query_one(&select, &[&id]).await.map_err(pg_error)?;
    Ok(TreeHead {
        size: uint(row.get(0))?,
        root: hash(row.get(1), "tree head root")?,
    })
}

impl LogStore for PostgresStore {
    async fn create_log(&self, origin: &str) -> Result<TreeHead> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_error)?;
            let inserted = tx
                .query_opt(
                    "INSERT INTO logs (origin) VALUES ($1) ON CONFLICT (origin) DO NOTHING RETURNING id",
                    &[&origin],
                )
                .await
                .map_err(pg_error)?;
            if let Some(row) = inserted {
                let id: i64 = row.get(0);
                let empty = TreeHead::empty();
                tx.execute(
                    "INSERT INTO tree_heads (log_id, size, root) VALUES ($1, 0, $2)",
                    &[&id, &empty.root.as_bytes()],
                )
                .await
                .map_err(pg_error)?;
            }
            let id = log_id(&tx, origin).await?;
            let head = read_head(&tx, id).await?;
            tx.commit().await.map_err(pg_error)?;
            Ok(head)
        })
        .await
    }

    async fn head(&self, origin: &str) -> Result<TreeHead> {
        self.bounded(async {
            let client = self.client().await?;
            let id = self.log_id(&client, origin).await?;
            read_head(&client, id).await
        })
        .await
    }

    async fn integrate(&self, origin: &str, batch: Integration<'_>) -> Result<()> {
        self.bounded(async {
            check_batch(&batch)?;
            let mut client = self.client().await?;
            let id = self.log_id(&client, origin).await?;
            // Unknown until this write succeeds: a failed or abandoned one
            // may leave entries beyond the head.
            let was_clean = self
                .clear_beyond_head
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if !was_clean {
                remove_beyond_head(&client, id).await?;
            }
            let mut written = self.write(&mut client, id, &batch).await;
            if was_clean && matches!(written, Err(StorageError::InvalidBatch(_))) {
                // Another process's failed write may have left entries
                // beyond the head since this one last looked: if so, they
                // are what the batch collided with.
                if remove_beyond_head(&client, id).await? > 0 {
                    written = self.write(&mut client, id, &batch).await;
                }
            }
            written?;
            self.clear_beyond_head
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id);
            Ok(())
        })
        .await
    }

    async fn publish(&self, origin: &str, size: u64, checkpoint: &[u8]) -> Result<()> {
        self.bounded(async {
            let client = self.client().await?;
            let id = self.log_id(&client, origin).await?;
            let pruned = if self.pruning.due(origin) {
                PRUNED_AT_ONCE as i64
            } else {
                // LIMIT 0 ends the prune before its index walk.
                0
            };
            // One statement, its own transaction, and not flushed before it
            // returns (see `LogStore::publish`): `set_config(…, true)` turns
            // synchronous commit off for this transaction alone, and the
            // next batch's commit flushes it with its own. One round trip
            // where BEGIN, SET LOCAL and COMMIT took four.
            //
            // A checkpoint is written once per size: a second, different note
            // for a size is never an update (two notes for one size would be
            // two claims about one tree, and the first may have been served).
            // The latest CHECKPOINTS_KEPT are kept; what is older is pruned
            // at every PRUNE_EVERY-th publication, PRUNED_AT_ONCE at most.
            let insert = prepared(
                &client,
                "WITH stored AS (
                     INSERT INTO checkpoints (log_id, size, note)
                     SELECT $1, $2, $3 FROM tree_heads WHERE log_id = $1 AND size >= $2
                     ON CONFLICT (log_id, size) DO NOTHING
                     RETURNING size
                 ), superseded AS (
                     DELETE FROM checkpoints WHERE log_id = $1 AND size IN (
                         SELECT size FROM checkpoints WHERE log_id = $1
                         ORDER BY size DESC OFFSET $4 LIMIT $5)
                 )
                 SELECT (SELECT count(*) FROM stored),
                        set_config('synchronous_commit', 'off', true)",
            )
            .await?;
            let kept = CHECKPOINTS_KEPT as i64 - 1;
            let stored: i64 = client
                .query_one(&insert, &[&id, &int(size)?, &checkpoint, &kept, &pruned])
                .await
                .map_err(pg_error)?
                .get(0);
            if stored == 1 {
                return Ok(());
            }
            let select = prepared(
                &client,
                "SELECT note FROM checkpoints WHERE log_id = $1 AND size = $2",
            )
            .await?;
            let existing = client
                .query_opt(&select, &[&id, &int(size)?])
                .await
                .map_err(pg_error)?;
            match existing.map(|row| row.get::<_, Vec<u8>>(0)) {
                Some(note) if note == checkpoint => Ok(()),
                Some(_) => Err(StorageError::Conflict(format!(
                    "another checkpoint is stored for size {size}"
                ))),
                None => Err(StorageError::InvalidBatch(format!(
                    "checkpoint for size {size} beyond the log's head"
                ))),
            }
        })
        .await
    }

    async fn checkpoint(&self, origin: &str, size: Option<u64>) -> Result<Option<Vec<u8>>> {
        self.bounded(async {
            let client = self.client().await?;
            let id = self.log_id(&client, origin).await?;
            let row = match size {
                Some(size) => {
                    let select = prepared(
                        &client,
                        "SELECT note FROM checkpoints WHERE log_id = $1 AND size = $2",
                    )
                    .await?;
                    client.query_opt(&select, &[&id, &int(size)?]).await
                }
                None => {
                    let select = prepared(
                        &client,
                        "SELECT note FROM checkpoints WHERE log_id = $1 ORDER BY size DESC LIMIT 1",
                    )
                    .await?;
                    client.query_opt(&select, &[&id]).await
                }
            }
            .map_err(pg_error)?;
            Ok(row.map(|r| r.get(0)))
        })
        .await
    }

    async fn read_full_tiles(&self, origin: &str, positions: &[(u8, u64)]) -> Result<Vec<Vec<u8>>> {
        self.bounded(async {
            let client = self.client().await?;
            let id = self.log_id(&client, origin).await?;
            let levels: Vec<i16> = positions.iter().map(|p| i16::from(p.0)).collect();
            let indices: Vec<i64> = positions.iter().map(|p| int(p.1)).collect::<Result<_>>()?;
            let select = prepared(
                &client,
                "SELECT want.ord, tiles.hashes
                 FROM UNNEST($2::SMALLINT[], $3::BIGINT[]) WITH ORDINALITY AS want (level, idx, ord)
                 LEFT JOIN tiles ON tiles.log_id = $1 AND tiles.level = want.level AND tiles.idx = want.idx
                 ORDER BY want.ord",
            )
            .await?;
            let rows = client
                .query(&select, &[&id, &levels, &indices])
                .await
                .map_err(pg_error)?;
            positions
                .iter()
                .zip(rows)
                .map(|(&(level, index), row)| {
                    let bytes: Option<Vec<u8>> = row.get(1);
                    bytes
                        .filter(|b| b.len() == FULL_TILE_BYTES)
                        .ok_or_else(|| StorageError::Corrupt(format!("full tile {level}/{index}")))
                })
                .collect()
        })
        .await
    }

    async fn read_entries(&self, origin: &str, start: u64, count: u64) -> Result<Vec<Vec<u8>>> {
        self.bounded(async {
            let client = self.client().await?;
            let id = self.log_id(&client, origin).await?;
            let end = start.saturating_add(count);
            let select = prepared(
                &client,
                "SELECT entry FROM entries WHERE log_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
            )
            .await?;
            let rows = client
                .query(&select, &[&id, &int(start)?, &int(end)?])
                .await
                .map_err(pg_error)?;
            if rows.len() as u64 != count {
                return Err(StorageError::Corrupt(format!("entries {start}..{end}")));
            }
            Ok(rows.into_iter().map(|r| r.get(0)).collect())
        })
        .await
    }

    async fn find_dedup(&self, origin: &str, keys: &[[u8; 32]]) -> Result<Vec<Option<u64>>> {
        self.bounded(async {
            let client = self.client().await?;
            let id = self.log_id(&client, origin).await?;
            let wanted: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
            let rows = client
                .query(&prepared(&client, FIND_DEDUP).await?, &[&id, &wanted])
                .await
                .map_err(pg_error)?;
            let mut logged = HashMap::with_capacity(rows.len());
            for row in rows {
                let key: Vec<u8> = row.get(0);
                logged.insert(key, uint(row.get(1))?);
            }
            Ok(keys
                .iter()
                .map(|k| logged.get(k.as_slice()).copied())
                .collect())
        })
        .await
    }

    async fn find_leaf(&self, origin: &str, leaf: Hash) -> Result<Option<u64>> {
        self.bounded(async {
            let client = self.client().await?;
            let id = self.log_id(&client, origin).await?;
            let row = client
                .query_one(
                    &prepared(&client, FIND_LEAF).await?,
                    &[&id, &leaf.as_bytes()],
                )
                .await
                .map_err(pg_error)?;
            row.get::<_, Option<i64>>(0).map(uint).transpose()
        })
        .await
    }

    async fn find_evidence(
        &self,
        origin: &str,
        sha256: [u8; 32],
        from: u64,
        limit: u32,
    ) -> Result<Vec<u64>> {
        self.bounded(async {
            let client = self.client().await?;
            let id = self.log_id(&client, origin).await?;
            let rows = client
                .query(
                    &prepared(&client, FIND_EVIDENCE).await?,
                    &[&id, &sha256.as_slice(), &int(from)?, &i64::from(limit)],
                )
                .await
                .map_err(pg_error)?;
            rows.into_iter().map(|r| uint(r.get(0))).collect()
        })
        .await
    }

    async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>> {
        self.bounded(async {
            let client = self.client().await?;
            let select = format!(
                "SELECT version, name, applied_on, checksum FROM {LOG_HISTORY} ORDER BY version"
            );
            let rows = match client.query(&select, &[]).await {
                Ok(rows) => rows,
                // refinery creates its history with the first migration: a
                // database never migrated has none, and nothing applied.
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => return Ok(Vec::new()),
                Err(e) => return Err(pg_error(e)),
            };
            rows.iter().map(applied_migration).collect()
        })
        .await
    }
}

/// One row of the log's migration history. refinery declares every column
/// but the version nullable, and writes all of them.
fn applied_migration(row: &tokio_postgres::Row) -> Result<AppliedMigration> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("migration history: {what}"));
    let text = |index: usize, what: &str| {
        row.try_get::<_, Option<String>>(index)
            .ok()
            .flatten()
            .ok_or_else(|| corrupt(what))
    };
    let version: i32 = row.try_get(0).map_err(|_| corrupt("version"))?;
    Ok(AppliedMigration {
        version: u32::try_from(version).map_err(|_| corrupt("negative version"))?,
        name: text(1, "name")?,
        applied_on: text(2, "applied_on")?,
        checksum: text(3, "checksum")?,
    })
}

impl LegacySignerRecord for PostgresStore {
    async fn legacy_signed_heads(&self) -> Result<Vec<(String, SignedHead)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT origin, size, root, checkpoint FROM signer_heads ORDER BY origin",
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows.into_iter()
            .map(|r| {
                let signed = SignedHead {
                    head: TreeHead {
                        size: uint(r.get(1))?,
                        root: hash(r.get(2), "legacy signed root")?,
                    },
                    checkpoint: r.get(3),
                };
                Ok((r.get(0), signed))
            })
            .collect()
    }

    async fn forget_legacy_signed_heads(&self) -> Result<()> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM signer_heads", &[])
            .await
            .map_err(pg_error)?;
        Ok(())
    }
}

/// Takes, for the rest of the transaction `tx`, the advisory lock of the
/// evidence `sha256`. Upload and erasure both take it before they look at
/// the evidence, so they never interleave. Without it, under READ
/// COMMITTED, an upload could find no tombstone, an erasure could then
/// delete nothing and commit its tombstone, and the upload's insert would
/// commit after it: erased evidence stored again. Taken with two 32-bit
/// keys, a key space PostgreSQL keeps apart from the one-bigint keys of
/// leadership and migrations, so no digest can ever collide with those;
/// two digests sharing their first four bytes only wait for each other.
/// It goes at commit or rollback, also when the session dies.
async fn lock_evidence(tx: &impl GenericClient, sha256: &[u8; 32]) -> Result<()> {
    let key = i32::from_be_bytes([sha256[0], sha256[1], sha256[2], sha256[3]]);
    let lock = prepared(tx, "SELECT pg_advisory_xact_lock($1, $2)").await?;
    tx.execute(&lock, &[&EVIDENCE_LOCK, &key])
        .await
        .map_err(pg_error)?;
    Ok(())
}

/// The tombstone of the evidence `sha256`, if it was erased.
async fn read_erasure(client: &impl GenericClient, sha256: &[u8; 32]) -> Result<Option<Erasure>> {
    let select = prepared(
        client,
        "SELECT erased_at, erased_by, reason FROM evidence_erasures WHERE sha256 = $1",
    )
    .await?;
    let row = client
        .query_opt(&select, &[&sha256.as_slice()])
        .await
        .map_err(pg_error)?;
    row.map(|r| {
        Ok(Erasure {
            erased_at_ms: millis(r.get(0), "erasure time")?,
            erased_by: r.get(1),
            reason: r.get(2),
        })
    })
    .transpose()
}

impl EvidenceStore for PostgresStore {
    async fn put_evidence(&self, sha256: [u8; 32], content: &[u8]) -> Result<()> {
        self.bounded(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_error)?;
            lock_evidence(&tx, &sha256).await?;
            if let Some(erasure) = read_erasure(&tx, &sha256).await? {
                // Dropping the transaction rolls it back, and releases the lock.
                return Err(StorageError::Erased(erasure));
            }
            let insert = prepared(
                &tx,
                "INSERT INTO evidence (sha256, content) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
            )
            .await?;
            tx.execute(&insert, &[&sha256.as_slice(), &content])
                .await
                .map_err(pg_error)?;
            tx.commit().await.map_err(pg_error)
        })
        .await
    }

    async fn evidence(&self, sha256: [u8; 32]) -> Result<Option<StoredEvidence>> {
        self.bounded(async {
            let client = self.client().await?;
            // One statement, so one snapshot: an erasure committing meanwhile
            // is seen whole (the tombstone) or not at all (the bytes), never
            // as neither.
            let select = prepared(
                &client,
                "SELECT evidence.content, evidence_erasures.erased_at,
                        evidence_erasures.erased_by, evidence_erasures.reason
                 FROM (SELECT $1::BYTEA AS sha256) AS wanted
                 LEFT JOIN evidence USING (sha256)
                 LEFT JOIN evidence_erasures USING (sha256)",
            )
            .await?;
            let row = client
                .query_one(&select, &[&sha256.as_slice()])
                .await
                .map_err(pg_error)?;
            // The tombstone decides: bytes beside one (only ever put there by
            // hand) are never served.
            if let Some(erased_at) = row.get::<_, Option<SystemTime>>(1) {
                return Ok(Some(StoredEvidence::Erased(Erasure {
                    erased_at_ms: millis(erased_at, "erasure time")?,
                    erased_by: row.get(2),
                    reason: row.get(3),
                })));
            }
            Ok(row
                .get::<_, Option<Vec<u8>>>(0)
                .map(StoredEvidence::Content))
        })
        .await
    }

    async fn erase_evidence(&self, sha256: [u8; 32], erasure: &Erasure) -> Result<Option<Erasure>> {
        self.bounded(async {
            let erased_at = timestamp(erasure.erased_at_ms)?;
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(pg_error)?;
            lock_evidence(&tx, &sha256).await?;
            // Each early return drops the transaction: nothing is written.
            if let Some(first) = read_erasure(&tx, &sha256).await? {
                return Ok(Some(first));
            }
            let delete = prepared(&tx, "DELETE FROM evidence WHERE sha256 = $1").await?;
            let deleted = tx
                .execute(&delete, &[&sha256.as_slice()])
                .await
                .map_err(pg_error)?;
            if deleted == 0 {
                return Ok(None);
            }
            let insert = prepared(
                &tx,
                "INSERT INTO evidence_erasures (sha256, erased_at, erased_by, reason)
                 VALUES ($1, $2, $3, $4)",
            )
            .await?;
            tx.execute(
                &insert,
                &[
                    &sha256.as_slice(),
                    &erased_at,
                    &erasure.erased_by,
                    &erasure.reason,
                ],
            )
            .await
            .map_err(pg_error)?;
            tx.commit().await.map_err(pg_error)?;
            Ok(Some(erasure.clone()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use evault_core::{EvidenceEntry, Integrator, leaf_hash};

    use super::*;
    use crate::StoredEntry;

    /// `count` distinct version-1 entries from `principal`, indices 0 on.
    fn entries(count: u64, principal: &str) -> Vec<StoredEntry> {
        (0..count)
            .map(|index| {
                let entry = EvidenceEntry {
                    digest: evault_core::hash::sha256(&index.to_be_bytes()),
                    size: index,
                    received_ms: 1_795_960_341_000,
                    media_type: "text/plain".into(),
                    name: None,
                    principal: principal.into(),
                    labels: Default::default(),
                }
                .encode()
                .expect("entry");
                StoredEntry {
                    index,
                    leaf_hash: leaf_hash(&entry),
                    dedup_key: evault_core::hash::sha256(&entry),
                    evidence_sha256: crate::evidence_digest(&entry),
                    entry,
                }
            })
            .collect()
    }

    /// The plan PostgreSQL picks for `query`, as text.
    async fn plan(
        client: &impl GenericClient,
        query: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> String {
        client
            .query(&format!("EXPLAIN {query}"), params)
            .await
            .expect("explain")
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Each lookup spells its index's expression exactly, so PostgreSQL
    /// uses the index, with statistics and without them (a young log, not
    /// yet analysed): a query that misses its index scans the whole log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_use_their_indexes() {
        let schema = evault_test_support::PgSchema::create("evault_storage_plans").await;
        migrate(&schema.url).await.expect("migrate");
        let store = PostgresStore::connect(&schema.url, 2).expect("pool");
        store.create_log("plans").await.expect("create");
        let entries = entries(3000, "planner");
        let mut tree = Integrator::new();
        let tiles = tree.integrate_full_tiles(entries.iter().map(|e| e.leaf_hash));
        let batch = Integration {
            old: TreeHead::empty(),
            new: TreeHead {
                size: tree.size(),
                root: tree.root(),
            },
            entries: &entries,
            tiles: &tiles,
        };
        store.integrate("plans", batch).await.expect("integrate");

        let client = store.client().await.expect("client");
        let id = log_id(&client, "plans").await.expect("log id");
        let leaf = entries[7].leaf_hash;
        let digest = entries[7].evidence_sha256.expect("digest");
        let keys: Vec<&[u8]> = vec![entries[7].dedup_key.as_slice()];
        for analysed in [false, true] {
            if analysed {
                client
                    .batch_execute("ANALYZE entries")
                    .await
                    .expect("analyze");
            }
            let leaf_plan = plan(&client, FIND_LEAF, &[&id, &leaf.as_bytes()]).await;
            assert!(leaf_plan.contains("entries_by_leaf_hash"), "{leaf_plan}");
            let evidence_plan = plan(
                &client,
                FIND_EVIDENCE,
                &[&id, &digest.as_slice(), &0i64, &10i64],
            )
            .await;
            assert!(
                evidence_plan.contains("entries_by_evidence_v1"),
                "{evidence_plan}"
            );
            let dedup_plan = plan(&client, FIND_DEDUP, &[&id, &keys]).await;
            assert!(
                dedup_plan.contains("entries_dedup_key_once"),
                "{dedup_plan}"
            );
            for p in [&leaf_plan, &evidence_plan, &dedup_plan] {
                assert!(
                    !p.contains("Seq Scan on entries") && !p.contains("entries_pkey"),
                    "{p}"
                );
            }
        }
        assert_eq!(store.find_leaf("plans", leaf).await.expect("leaf"), Some(7));
        drop(client);
        drop(store);
        schema.drop_schema().await;
    }

    /// A statement prepared while the log was small must not keep the plan
    /// of a small table once the log has grown (no ANALYZE in between):
    /// PostgreSQL would otherwise settle on a generic plan after five runs
    /// and scan the whole table with it forever after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plans_follow_the_log_as_it_grows() {
        let schema = evault_test_support::PgSchema::create("evault_storage_growth").await;
        migrate(&schema.url).await.expect("migrate");
        let store = PostgresStore::connect(&schema.url, 2).expect("pool");
        store.create_log("growth").await.expect("create");
        let entries = entries(3000, "grower");
        let mut tree = Integrator::new();
        let mut head = TreeHead::empty();
        let mut append = |from: usize, to: usize| {
            let tiles = tree.integrate_full_tiles(entries[from..to].iter().map(|e| e.leaf_hash));
            let new = TreeHead {
                size: tree.size(),
                root: tree.root(),
            };
            let batch = (head, new, tiles);
            head = new;
            batch
        };
        let (old, new, tiles) = append(0, 8);
        let small = Integration {
            old,
            new,
            entries: &entries[..8],
            tiles: &tiles,
        };
        store.integrate("growth", small).await.expect("integrate");

        let client = store.client().await.expect("client");
        let setting: String = client
            .query_one("SHOW plan_cache_mode", &[])
            .await
            .expect("show")
            .get(0);
        assert_eq!(setting, "force_custom_plan");
        client
            .batch_execute(&format!(
                "ANALYZE entries; PREPARE dedup (BIGINT, BYTEA[]) AS {FIND_DEDUP}"
            ))
            .await
            .expect("prepare");
        let id = log_id(&client, "growth").await.expect("log id");
        let execute = format!(
            "EXECUTE dedup ({id}, ARRAY['\\x{}'::BYTEA])",
            evault_core::hash::hex(&entries[5].dedup_key)
        );
        for _ in 0..6 {
            client.batch_execute(&execute).await.expect("execute");
        }
        let (old, new, tiles) = append(8, 3000);
        let grown = Integration {
            old,
            new,
            entries: &entries[8..],
            tiles: &tiles,
        };
        store.integrate("growth", grown).await.expect("integrate");
        let plan = plan(&client, &execute, &[]).await;
        assert!(!plan.contains("Seq Scan"), "{plan}");
        drop(client);
        drop(store);
        schema.drop_schema().await;
    }
}
