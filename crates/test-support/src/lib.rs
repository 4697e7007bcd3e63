//! Fixtures shared by the vault's tests.
//!
//! PostgreSQL is never mocked in the vault's tests: each test gets a schema
//! of its own in the real database at `DATABASE_URL`, and a URL whose
//! connections use only that schema. A test that cannot reach PostgreSQL
//! fails, loudly; it does not skip. This crate is for tests only.

use std::sync::atomic::{AtomicU32, Ordering};

/// The database tests use: `DATABASE_URL`, or the machine's local cluster.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A PostgreSQL schema of one test's own.
pub struct PgSchema {
    /// The schema's name.
    pub name: String,
    /// A database URL whose sessions see only this schema.
    pub url: String,
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} (set DATABASE_URL): {e}"));
    tokio::spawn(connection);
    client
}

impl PgSchema {
    /// Creates a fresh, empty schema named after `prefix`.
    pub async fn create(prefix: &str) -> PgSchema {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let base = database_url();
        connect(&base)
            .await
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .await
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        PgSchema { name, url }
    }

    /// [`PgSchema::create`], for tests without a runtime of their own.
    pub fn create_blocking(prefix: &str) -> PgSchema {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(Self::create(prefix))
    }

    /// [`PgSchema::drop_schema`], for tests without a runtime of their own.
    pub fn drop_blocking(self) {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(self.drop_schema());
    }

    /// Drops the schema and all it holds.
    pub async fn drop_schema(self) {
        connect(&database_url())
            .await
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .expect("drop schema");
    }
}
