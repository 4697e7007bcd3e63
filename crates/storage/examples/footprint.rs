//! Measures what a log costs in PostgreSQL as it grows: appends `COUNT`
//! 85-byte evidence entries (default 1,000,000) through
//! `PostgresStore::find_dedup` and `PostgresStore::integrate` in batches
//! of 4096, with real tiles from `evault_core::Integrator`, as tree does;
//! then prints the rate at the start and at the end of the run, the time
//! each batch's dedup lookup and commit took, and the bytes per entry of
//! every table and index (TOAST included).
//!
//! ```text
//! cargo run --release -p evault-storage --example footprint -- [COUNT]
//! ```
//!
//! It works in a fresh schema of its own (`evault_footprint_…`) in the
//! database at `DATABASE_URL` (default: the local test cluster), and leaves
//! it in place for inspection; `DROP SCHEMA … CASCADE` removes it.

use std::time::{Duration, Instant};

use evault_core::{EvidenceEntry, Integrator, leaf_hash};
use evault_storage::postgres::{PostgresStore, migrate};
use evault_storage::{Integration, LogStore, StoredEntry, TreeHead, evidence_digest};

const ORIGIN: &str = "footprint.example/log";
const BATCH: u64 = 4096;

/// Entry `i`: a version-1 evidence entry of exactly 85 bytes.
fn entry(i: u64) -> StoredEntry {
    let entry = EvidenceEntry {
        digest: evault_core::hash::sha256(&i.to_be_bytes()),
        size: i,
        received_ms: 1_795_960_341_000 + i,
        media_type: "text/plain".into(),
        name: None,
        principal: "tester@example.org".into(),
        labels: Default::default(),
    }
    .encode()
    .expect("entry");
    StoredEntry {
        index: i,
        leaf_hash: leaf_hash(&entry),
        dedup_key: evault_core::hash::sha256(&[b"dedup".as_slice(), &i.to_be_bytes()].concat()),
        evidence_sha256: evidence_digest(&entry),
        entry,
    }
}

/// Appends per second over `batches`, and the median and slowest
/// dedup-plus-commit time of one batch.
fn summary(batches: &[(u64, Duration)]) -> String {
    let entries: u64 = batches.iter().map(|b| b.0).sum();
    let total: Duration = batches.iter().map(|b| b.1).sum();
    let mut times: Vec<Duration> = batches.iter().map(|b| b.1).collect();
    times.sort();
    format!(
        "{:>8.0} entries/s; per batch of {BATCH}: median {:.1} ms, slowest {:.1} ms",
        entries as f64 / total.as_secs_f64(),
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    )
}

#[tokio::main]
async fn main() {
    let count: u64 = std::env::args()
        .nth(1)
        .map(|c| c.parse().expect("COUNT is a number"))
        .unwrap_or(1_000_000);
    assert_eq!(entry(0).entry.len(), 85);
    let schema = evault_test_support::PgSchema::create("evault_footprint").await;
    let (admin, connection) =
        tokio_postgres::connect(&evault_test_support::database_url(), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    let (url, schema) = (schema.url, schema.name);
    println!("schema {schema}, kept for inspection");
    migrate(&url).await.expect("migrate");
    let store = PostgresStore::connect(&url, 2).expect("pool");
    store.create_log(ORIGIN).await.expect("create");

    let mut tree = Integrator::new();
    let mut timings: Vec<(u64, Duration)> = Vec::new();
    let mut dedup_time = Duration::ZERO;
    let started = Instant::now();
    while tree.size() < count {
        let old = TreeHead {
            size: tree.size(),
            root: tree.root(),
        };
        let n = BATCH.min(count - old.size);
        let entries: Vec<StoredEntry> = (old.size..old.size + n).map(entry).collect();
        let keys: Vec<[u8; 32]> = entries.iter().map(|e| e.dedup_key).collect();
        let tiles = tree.integrate_full_tiles(entries.iter().map(|e| e.leaf_hash));
        let new = TreeHead {
            size: tree.size(),
            root: tree.root(),
        };
        let at = Instant::now();
        let logged = store.find_dedup(ORIGIN, &keys).await.expect("dedup");
        assert!(logged.iter().all(Option::is_none));
        dedup_time += at.elapsed();
        store
            .integrate(
                ORIGIN,
                Integration {
                    old,
                    new,
                    entries: &entries,
                    tiles: &tiles,
                },
            )
            .await
            .expect("integrate");
        timings.push((n, at.elapsed()));
        if tree.size() % (BATCH * 64) == 0 {
            eprintln!("{} entries, {:.0?}", tree.size(), started.elapsed());
        }
    }
    let first = timings
        .iter()
        .scan(0, |seen, t| {
            let keep = *seen < 10_000;
            *seen += t.0;
            keep.then_some(*t)
        })
        .collect::<Vec<_>>();
    let last = &timings[timings.len().saturating_sub(first.len())..];
    println!("{count} entries of 85 bytes in batches of {BATCH}");
    println!(
        "first {:>7} entries: {}",
        first.iter().map(|t| t.0).sum::<u64>(),
        summary(&first)
    );
    println!(
        "last  {:>7} entries: {}",
        last.iter().map(|t| t.0).sum::<u64>(),
        summary(last)
    );
    println!("whole run:              {}", summary(&timings));
    println!(
        "of which find_dedup: {:.1} ms per batch on average",
        dedup_time.as_secs_f64() * 1e3 / timings.len() as f64
    );

    let rows = admin
        .query(
            "SELECT c.relname::TEXT, pg_relation_size(c.oid)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'i')
               AND c.relname IN ('entries', 'tiles', 'entries_pkey', 'entries_dedup_key_once',
                                 'entries_by_leaf_hash', 'entries_by_evidence_v1', 'tiles_pkey')
             ORDER BY 2 DESC",
            &[&schema],
        )
        .await
        .expect("sizes");
    for row in rows {
        let bytes: i64 = row.get(1);
        println!(
            "{:<24} {:>6.1} MB {:>6.1} bytes/entry",
            row.get::<_, String>(0),
            bytes as f64 / 1e6,
            bytes as f64 / count as f64
        );
    }
    let total: i64 = admin
        .query_one(
            &format!(
                "SELECT pg_total_relation_size('{schema}.entries') + pg_total_relation_size('{schema}.tiles')"
            ),
            &[],
        )
        .await
        .expect("total")
        .get(0);
    let toast: i64 = admin
        .query_one(
            &format!(
                "SELECT pg_total_relation_size(reltoastrelid) FROM pg_class WHERE oid = '{schema}.tiles'::regclass"
            ),
            &[],
        )
        .await
        .expect("toast")
        .get(0);
    println!(
        "tiles' TOAST (with index) {:>6.1} MB {:>6.1} bytes/entry",
        toast as f64 / 1e6,
        toast as f64 / count as f64
    );
    println!(
        "entries + tiles, all included: {:.1} MB, {:.1} bytes/entry ({:.2} × the entry size)",
        total as f64 / 1e6,
        total as f64 / count as f64,
        total as f64 / count as f64 / 85.0
    );
}
