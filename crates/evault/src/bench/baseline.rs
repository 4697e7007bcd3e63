//! The floor to compare the vault with: PostgreSQL taking the same rows
//! by raw binary `COPY`, with no log, no proofs and no gRPC in between.

use std::time::{Duration, Instant};

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

use crate::outcome::{Failure, usage};

/// What the `COPY` took.
#[derive(Clone, Copy, Debug)]
pub(super) struct Baseline {
    /// Rows copied and committed.
    pub(super) rows: u64,
    /// Rows per transaction.
    pub(super) batch_size: u64,
    /// From the first row to the last commit.
    pub(super) elapsed: Duration,
}

impl Baseline {
    /// Rows per second.
    pub(super) fn rate(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64()
    }
}

fn failure(what: &str, e: tokio_postgres::Error) -> Failure {
    // The error's own text is often only its kind ("db error"); the
    // reason is its source.
    match std::error::Error::source(&e) {
        Some(reason) => usage(format!("--baseline-copy: {what}: {e}: {reason}")),
        None => usage(format!("--baseline-copy: {what}: {e}")),
    }
}

async fn connect(url: &str) -> Result<Client, Failure> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| failure("--database-url", e))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Copies `rows` rows, `row(n)` giving row n's entry and unique key, into
/// a scratch table (a BIGINT primary key, the entry, the unique 32-byte
/// key: the shape of the vault's entries), committing every `batch_size`
/// rows as the vault commits a batch. The table is created first, outside
/// the timing, and dropped afterwards whatever happened, Ctrl-C included.
pub(super) async fn copy(
    url: &str,
    table: &str,
    rows: u64,
    batch_size: u64,
    row: impl Fn(u64) -> Result<(Vec<u8>, [u8; 32]), Failure>,
) -> Result<Baseline, Failure> {
    let mut client = connect(url).await?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (\
                 idx BIGINT PRIMARY KEY, \
                 entry BYTEA NOT NULL, \
                 dedup_key BYTEA NOT NULL UNIQUE)"
        ))
        .await
        .map_err(|e| failure("create the scratch table", e))?;
    let copied = tokio::select! {
        copied = fill(&mut client, table, rows, batch_size, row) => copied,
        _ = tokio::signal::ctrl_c() => Err(usage("--baseline-copy: interrupted")),
    };
    // An unfinished COPY and its transaction were abandoned above, which
    // queues their rollback ahead of the drop on the same session.
    let dropped = match client.batch_execute(&drop_sql(table)).await {
        Ok(()) => Ok(()),
        // The session broke: try a new one.
        Err(_) => match connect(url).await {
            Ok(fresh) => fresh
                .batch_execute(&drop_sql(table))
                .await
                .map_err(|e| e.to_string()),
            Err(failure) => Err(message(failure)),
        },
    };
    match (copied, dropped) {
        (copied, Ok(())) => copied,
        (copied, Err(e)) => {
            let left = format!("the scratch table {table} is left behind, drop it by hand: {e}");
            Err(match copied {
                Ok(_) => usage(format!("--baseline-copy: {left}")),
                Err(failure) => usage(format!("{}; {left}", message(failure))),
            })
        }
    }
}

fn message(failure: Failure) -> String {
    match failure {
        Failure::Invalid(m) | Failure::Usage(m) => m,
    }
}

fn drop_sql(table: &str) -> String {
    format!("DROP TABLE IF EXISTS {table}")
}

async fn fill(
    client: &mut Client,
    table: &str,
    rows: u64,
    batch_size: u64,
    row: impl Fn(u64) -> Result<(Vec<u8>, [u8; 32]), Failure>,
) -> Result<Baseline, Failure> {
    let statement = format!("COPY {table} (idx, entry, dedup_key) FROM STDIN (FORMAT binary)");
    let started = Instant::now();
    let mut n = 0;
    while n < rows {
        let end = rows.min(n + batch_size);
        let transaction = client
            .transaction()
            .await
            .map_err(|e| failure("begin", e))?;
        let sink = transaction
            .copy_in(&statement)
            .await
            .map_err(|e| failure("COPY", e))?;
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(
            sink,
            &[Type::INT8, Type::BYTEA, Type::BYTEA]
        ));
        for i in n..end {
            let (entry, key) = row(i)?;
            let idx = i as i64;
            writer
                .as_mut()
                .write(&[&idx, &entry, &key.as_slice()])
                .await
                .map_err(|e| failure("COPY", e))?;
        }
        writer
            .as_mut()
            .finish()
            .await
            .map_err(|e| failure("COPY", e))?;
        transaction
            .commit()
            .await
            .map_err(|e| failure("commit", e))?;
        n = end;
    }
    Ok(Baseline {
        rows,
        batch_size,
        elapsed: started.elapsed(),
    })
}
