//! Where the signer keeps its record of what it signed: a file or a
//! database of its own, never the log's ([`evault_storage::signer`]), so
//! that restoring the log's storage from a backup cannot roll it back.

use std::path::{Path, PathBuf};

use clap::Args;
use evault_storage::embedded::{DATABASE_FILE, EmbeddedStore};
use evault_storage::signer::{
    LegacySignerRecord, SIGNER_FILE, SignerDatabase, SignerFile, adopt_legacy_record,
};

use crate::outcome::{Failure, usage};

/// Connections to the signer's database: it signs one head at a time per
/// log, each a read and a write of one row.
const SIGNER_CONNECTIONS: usize = 4;

/// The signer's own store, for `evault serve signer`.
#[derive(Args, Debug, Clone)]
pub(crate) struct SignerStorageArgs {
    /// PostgreSQL URL of the signer's own database (its migrations are
    /// applied on start). Never the log's: a database holding the log's
    /// tables is refused, since restoring it would roll back the record of
    /// what was signed. Without it, DATA_DIR/signer.redb.
    #[arg(long, env = "EVAULT_SIGNER_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// Directory of the signer's own file (`signer.redb`), used without
    /// --database-url.
    #[arg(long, env = "EVAULT_DATA_DIR", default_value = "evault-data")]
    pub(crate) data_dir: PathBuf,
}

/// The signer's store chosen by flags, ready to use.
pub(crate) enum SignerStorage {
    File(SignerFile),
    Database(SignerDatabase),
}

impl SignerStorageArgs {
    pub(crate) async fn open(&self) -> Result<SignerStorage, Failure> {
        match &self.database_url {
            Some(url) => {
                let database = SignerDatabase::open(url, SIGNER_CONNECTIONS)
                    .await
                    .map_err(|e| usage(format!("--database-url: {e}")))?;
                let watched = database.clone();
                evault_metrics::watch_pool(evault_metrics::Database::Signer, move || {
                    Some(crate::vault::pool_use(&watched.pool_status()))
                });
                Ok(SignerStorage::Database(database))
            }
            None => {
                let file = signer_file(&self.data_dir)?;
                // A signer of an earlier version kept its record in the
                // embedded store of its data directory.
                if self.data_dir.join(DATABASE_FILE).exists() {
                    let legacy = EmbeddedStore::open(&self.data_dir).map_err(|e| {
                        usage(format!("--data-dir {}: {e}", self.data_dir.display()))
                    })?;
                    adopt_legacy(&legacy, &file).await?;
                }
                Ok(SignerStorage::File(file))
            }
        }
    }
}

/// Runs `$body` with the signer's store, whichever it is.
macro_rules! with_signer_store {
    ($storage:expr, $store:ident => $body:expr) => {
        match $storage {
            $crate::signer_store::SignerStorage::File($store) => $body,
            $crate::signer_store::SignerStorage::Database($store) => $body,
        }
    };
}
pub(crate) use with_signer_store;

/// The signer's own file in the data directory `dir`: `evault up` keeps
/// it there whatever holds the log, PostgreSQL included.
pub(crate) fn signer_file(dir: &Path) -> Result<SignerFile, Failure> {
    let path = dir.join(SIGNER_FILE);
    SignerFile::open(&path).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// Moves the signer's record out of the log's storage, where earlier
/// versions kept it, into the signer's own file: once, and never over a
/// record the file already holds.
pub(crate) async fn adopt_legacy(
    log: &impl LegacySignerRecord,
    signer: &SignerFile,
) -> Result<(), Failure> {
    adopt_legacy_record(log, signer)
        .await
        .map(drop)
        .map_err(|e| {
            usage(format!(
                "moving the signer's record out of the log's storage: {e}"
            ))
        })
}
