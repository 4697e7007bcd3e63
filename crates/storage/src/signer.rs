//! The signer's record, in a failure domain of its own.
//!
//! The signer remembers, per origin, the last head it signed and the
//! checkpoint it signed for it, and signs only heads that extend it. That
//! record protects the log only if it survives whatever happens to the
//! log's storage: kept in the same database or file, one restore of an old
//! backup (or one failover to a lagging replica) would roll both back
//! together, and the signer would then sign a second tree at a size it had
//! already signed, a fork under the log's own key. So the record is never
//! kept beside the log:
//!
//! - [`SignerFile`]: a redb file of its own (`evault up` keeps it as
//!   `DATA_DIR/signer.redb`, even when the log is in PostgreSQL);
//! - [`SignerDatabase`]: a PostgreSQL database of its own, with its own
//!   migrations (`migrations-signer/`, history in `signer_schema_history`).
//!
//! Each refuses, when opened, a file or database that holds the log
//! ([`StorageError::NotApart`]), and the log's migrations refuse a
//! database holding the record. Versions before these stores kept the
//! record in the log's storage (a `signer_heads` table);
//! [`adopt_legacy_record`] moves it once.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use crate::embedded::{backend, begin_write, blocking, decode_head, encode_head};
use crate::postgres::{Apart, config, hash, int, migrate_locked, pg_error, pool, pool_error, uint};
use crate::{Result, SignedHead, SignerStore, StorageError, TreeHead};

/// The signer's table, in its file and in its database: origin → the last
/// head signed and its checkpoint. The log's migrations refuse a database
/// holding it.
pub const SIGNER_TABLE: &str = "signed_heads";

/// The table that shows a file or database holds a log: the tree heads.
const LOG_TABLE: &str = "tree_heads";

/// The file `evault up` keeps the signer's record in, in its data
/// directory.
pub const SIGNER_FILE: &str = "signer.redb";

/// origin → size (u64 BE) ‖ root ‖ checkpoint note
const SIGNED: TableDefinition<'_, &str, &[u8]> = TableDefinition::new(SIGNER_TABLE);

/// Where the signer's database keeps its schema history: not refinery's
/// default, which is the log's, so neither set of migrations ever reads
/// the other's.
const SIGNER_HISTORY: &str = "signer_schema_history";

/// The advisory lock held while migrating the signer's database ("signer"
/// in ASCII), another than the log's.
const SIGNER_MIGRATION_LOCK: i64 = 0x7369_676e_6572;

mod signer_migrations {
    refinery::embed_migrations!("../../migrations-signer");
}

pub(crate) fn encode_signed(signed: &SignedHead) -> Vec<u8> {
    let mut out = encode_head(&signed.head);
    out.extend_from_slice(&signed.checkpoint);
    out
}

pub(crate) fn decode_signed(bytes: &[u8]) -> Result<SignedHead> {
    Ok(SignedHead {
        head: decode_head(bytes)?,
        checkpoint: bytes
            .get(40..)
            .ok_or_else(|| StorageError::Corrupt("signed head".into()))?
            .to_vec(),
    })
}

/// What recording `signed` over the current record does.
#[derive(Debug, PartialEq, Eq)]
enum Transition {
    /// Replace the record (or create it).
    Write,
    /// `signed` is the record already: nothing to write.
    Recorded,
}

/// Decides whether `signed` may become `origin`'s record, the current one
/// being `current` and the caller expecting `previous`: compare-and-swap
/// on the head, and a record that only grows. A size the record already
/// holds keeps its checkpoint: another one for it is refused, never
/// written over.
fn transition(
    origin: &str,
    current: Option<&SignedHead>,
    previous: Option<TreeHead>,
    signed: &SignedHead,
) -> Result<Transition> {
    if current.map(|c| c.head) != previous {
        return Err(StorageError::HeadMoved {
            expected: previous.map_or(0, |h| h.size),
            found: current.map_or(0, |c| c.head.size),
        });
    }
    match current {
        Some(current) if signed.head.size < current.head.size => {
            Err(StorageError::Conflict(format!(
                "the signer's record of {origin:?} only grows: size {} cannot replace size {}",
                signed.head.size, current.head.size
            )))
        }
        Some(current) if signed.head.size == current.head.size => {
            if signed == current {
                Ok(Transition::Recorded)
            } else {
                Err(StorageError::Conflict(format!(
                    "the signer's record of {origin:?} holds another checkpoint for size {}",
                    signed.head.size
                )))
            }
        }
        _ => Ok(Transition::Write),
    }
}

/// The signer's record in a redb file of its own.
#[derive(Clone)]
pub struct SignerFile {
    db: Arc<Database>,
}

/// Pages of the signer's file kept in memory: it holds one small record
/// per origin.
const SIGNER_PAGE_CACHE: usize = 1 << 20;

impl SignerFile {
    /// Opens (creating if needed) the signer's file at `path`. A file that
    /// holds a log (the embedded store's `vault.redb`) is refused with
    /// [`StorageError::NotApart`]; another process holding the file is
    /// [`StorageError::Unavailable`].
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StorageError::Backend(format!("{}: {e}", dir.display())))?;
        }
        let db = Database::builder()
            .set_cache_size(SIGNER_PAGE_CACHE)
            .create(path)
            .map_err(backend)?;
        let txn = begin_write(&db)?;
        let holds_log = txn
            .list_tables()
            .map_err(backend)?
            .any(|table| table.name() == LOG_TABLE);
        if holds_log {
            return Err(StorageError::NotApart(format!(
                "{} holds a log (table {LOG_TABLE:?}); the signer needs a file of its own",
                path.display()
            )));
        }
        txn.open_table(SIGNED).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(SignerFile { db: Arc::new(db) })
    }
}

impl SignerStore for SignerFile {
    async fn last_signed(&self, origin: &str) -> Result<Option<SignedHead>> {
        let origin = origin.to_string();
        blocking(&self.db, move |db| {
            let txn = db.begin_read().map_err(backend)?;
            let table = txn.open_table(SIGNED).map_err(backend)?;
            let found = table.get(origin.as_str()).map_err(backend)?;
            found.map(|g| decode_signed(g.value())).transpose()
        })
        .await
    }

    async fn record_signed(
        &self,
        origin: &str,
        previous: Option<TreeHead>,
        signed: &SignedHead,
    ) -> Result<()> {
        let origin = origin.to_string();
        let signed = signed.clone();
        blocking(&self.db, move |db| {
            let txn = begin_write(db)?;
            {
                let mut table = txn.open_table(SIGNED).map_err(backend)?;
                let current = table
                    .get(origin.as_str())
                    .map_err(backend)?
                    .map(|g| decode_signed(g.value()))
                    .transpose()?;
                if transition(&origin, current.as_ref(), previous, &signed)? == Transition::Recorded
                {
                    return Ok(());
                }
                table
                    .insert(origin.as_str(), encode_signed(&signed).as_slice())
                    .map_err(backend)?;
            }
            txn.commit().map_err(backend)
        })
        .await
    }
}

/// Applies the signer's pending migrations (`migrations-signer/`) to the
/// database at `database_url`, under an advisory lock of their own.
/// Returns the versions applied now. A database holding a log is refused
/// with [`StorageError::NotApart`], writing nothing.
pub async fn migrate_signer(database_url: &str) -> Result<Vec<u32>> {
    let mut runner = signer_migrations::migrations::runner();
    runner.set_migration_table_name(SIGNER_HISTORY);
    let apart = Apart {
        table: LOG_TABLE,
        holder: "a log",
    };
    migrate_locked(database_url, SIGNER_MIGRATION_LOCK, runner, apart).await
}

/// The signer's record in a PostgreSQL database of its own.
#[derive(Clone)]
pub struct SignerDatabase {
    pool: Pool,
}

impl SignerDatabase {
    /// Migrates the database at `database_url` ([`migrate_signer`], which
    /// refuses a database holding a log) and returns a store over it with
    /// at most `max_connections` connections.
    pub async fn open(database_url: &str, max_connections: usize) -> Result<Self> {
        migrate_signer(database_url).await?;
        Ok(SignerDatabase {
            pool: pool(config(database_url)?, max_connections)?,
        })
    }

    /// The connection pool's use at this moment, as deadpool counts it:
    /// what the `evault_db_pool_*` metrics report.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }
}

/// The record of `origin` as `client` sees it, locked for the rest of its
/// transaction when `lock`.
async fn read_record(
    client: &impl GenericClient,
    origin: &str,
    lock: bool,
) -> Result<Option<SignedHead>> {
    let sql = if lock {
        "SELECT size, root, checkpoint FROM signed_heads WHERE origin = $1 FOR UPDATE"
    } else {
        "SELECT size, root, checkpoint FROM signed_heads WHERE origin = $1"
    };
    let row = client.query_opt(sql, &[&origin]).await.map_err(pg_error)?;
    row.map(|r| {
        Ok(SignedHead {
            head: TreeHead {
                size: uint(r.get(0))?,
                root: hash(r.get(1), "signed root")?,
            },
            checkpoint: r.get(2),
        })
    })
    .transpose()
}

impl SignerStore for SignerDatabase {
    async fn last_signed(&self, origin: &str) -> Result<Option<SignedHead>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        read_record(&client, origin, false).await
    }

    async fn record_signed(
        &self,
        origin: &str,
        previous: Option<TreeHead>,
        signed: &SignedHead,
    ) -> Result<()> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(pg_error)?;
        // The row lock holds a second signer replica at this point until
        // this transaction ends; it then finds the record moved.
        let current = read_record(&tx, origin, true).await?;
        if transition(origin, current.as_ref(), previous, signed)? == Transition::Recorded {
            return Ok(());
        }
        let (size, root) = (int(signed.head.size)?, signed.head.root.as_bytes());
        let written = match current {
            Some(_) => tx
                .execute(
                    "UPDATE signed_heads SET size = $2, root = $3, checkpoint = $4, signed_at = now()
                     WHERE origin = $1",
                    &[&origin, &size, &root, &signed.checkpoint],
                )
                .await
                .map_err(pg_error)?,
            // No row to lock: a replica racing to create it makes this
            // insert find the key taken.
            None => tx
                .execute(
                    "INSERT INTO signed_heads (origin, size, root, checkpoint)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (origin) DO NOTHING",
                    &[&origin, &size, &root, &signed.checkpoint],
                )
                .await
                .map_err(pg_error)?,
        };
        if written != 1 {
            drop(tx);
            let found = self.last_signed(origin).await?.map_or(0, |s| s.head.size);
            return Err(StorageError::HeadMoved {
                expected: previous.map_or(0, |h| h.size),
                found,
            });
        }
        tx.commit().await.map_err(pg_error)
    }
}

/// The signer's record as versions before [`SignerFile`] and
/// [`SignerDatabase`] kept it: in the log's own storage (a `signer_heads`
/// table). Read once, to move it into the signer's store.
pub trait LegacySignerRecord: Send + Sync {
    /// Every origin's record kept beside the log, if any.
    fn legacy_signed_heads(&self)
    -> impl Future<Output = Result<Vec<(String, SignedHead)>>> + Send;

    /// Removes the record kept beside the log, once it has moved.
    fn forget_legacy_signed_heads(&self) -> impl Future<Output = Result<()>> + Send;
}

/// Moves the signer's record out of the log's storage `log`, where earlier
/// versions kept it, into the signer's own store `signer`: an origin's
/// legacy record is copied when `signer` holds none for that origin (a
/// record the signer's store holds is never replaced: it is at least as
/// recent), then the legacy record is removed, so that it moves once and
/// cannot come back later over a newer one. Returns the origins copied,
/// with the heads they were recorded at.
pub async fn adopt_legacy_record(
    log: &impl LegacySignerRecord,
    signer: &impl SignerStore,
) -> Result<Vec<(String, TreeHead)>> {
    let legacy = log.legacy_signed_heads().await?;
    if legacy.is_empty() {
        return Ok(Vec::new());
    }
    let mut adopted = Vec::new();
    for (origin, signed) in legacy {
        if let Some(own) = signer.last_signed(&origin).await? {
            tracing::info!(
                %origin,
                legacy_size = signed.head.size,
                size = own.head.size,
                "the signer's store already holds a record; the one kept beside the log is dropped"
            );
            continue;
        }
        signer.record_signed(&origin, None, &signed).await?;
        tracing::warn!(
            %origin,
            size = signed.head.size,
            root = %evault_core::hash::hex(signed.head.root.as_bytes()),
            "moved the signer's record out of the log's storage into the signer's own store"
        );
        adopted.push((origin, signed.head));
    }
    // Only once every record has a home: a crash before this point copies
    // nothing twice (each origin now has its own record) and removes the
    // legacy record on the next start.
    log.forget_legacy_signed_heads().await?;
    Ok(adopted)
}

#[cfg(test)]
mod tests {
    use evault_core::Hash;

    use super::*;

    fn signed(size: u64, note: &str) -> SignedHead {
        SignedHead {
            head: TreeHead {
                size,
                root: Hash([size as u8; 32]),
            },
            checkpoint: note.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_record_moves_by_compare_and_swap_and_only_grows() {
        let five = signed(5, "five");
        let head = Some(five.head);
        assert_eq!(
            transition("o", None, None, &five).expect("first"),
            Transition::Write
        );
        assert!(matches!(
            transition("o", Some(&five), None, &signed(6, "six")),
            Err(StorageError::HeadMoved {
                expected: 0,
                found: 5
            })
        ));
        assert_eq!(
            transition("o", Some(&five), head, &signed(6, "six")).expect("grows"),
            Transition::Write
        );
        assert_eq!(
            transition("o", Some(&five), head, &five).expect("again"),
            Transition::Recorded
        );
        assert!(matches!(
            transition("o", Some(&five), head, &signed(5, "another note")),
            Err(StorageError::Conflict(_))
        ));
        assert!(matches!(
            transition("o", Some(&five), head, &signed(4, "four")),
            Err(StorageError::Conflict(_))
        ));
    }
}
