//! Leading a log on PostgreSQL, for the processes that sequence one
//! (`serve tree`, `up --database-url`): taking the log's lock, and serving
//! only while it is held.

use std::future::Future;

use evault_storage::StorageError;
use evault_storage::postgres::{Leadership, PostgresStore};

use crate::outcome::{Failure, usage};

/// How often a process waiting to lead tries the lock: a leader that is
/// gone (its session ended, or its lease ran out) is replaced within this.
const STANDBY_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Tries to lead `origin` in the database at `url` every [`STANDBY_POLL`]
/// until it does, or until `give_up` completes. Giving up, it says why the
/// last try failed: the database's error, or `None` when another process
/// holds the lock.
pub(crate) async fn lead(
    url: &str,
    origin: &str,
    give_up: impl Future<Output = ()>,
) -> Result<Leadership, Option<StorageError>> {
    tokio::pin!(give_up);
    let mut announced = false;
    loop {
        let last = match PostgresStore::try_lead(url, origin).await {
            Ok(Some(leadership)) => return Ok(leadership),
            Ok(None) => {
                if !announced {
                    tracing::info!(%origin, "another process leads the log; standing by");
                    announced = true;
                }
                None
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reach the database to take the lead");
                Some(error)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(STANDBY_POLL) => {}
            () = &mut give_up => return Err(last),
        }
    }
}

/// Runs `served` while `leadership` holds (for ever without one): a lock
/// lost ends it, saying why, so that another process may lead.
pub(crate) async fn while_leading<T>(
    leadership: Option<&mut Leadership>,
    served: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let Some(leadership) = leadership else {
        return served.await;
    };
    tokio::select! {
        served = served => served,
        reason = leadership.lost() => {
            tracing::error!(%reason, "lost the log's leadership; stopping so another process may lead");
            Err(usage(format!("lost the log's leadership: {reason}")))
        }
    }
}
