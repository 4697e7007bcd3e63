//! The audit trail's writer: the second log, `<origin>/audit`, of what
//! happened to the first.
//!
//! The log's sequencer tells the trail of every checkpoint it stores and
//! every refusal of the signer ([`Observed`]); the tree process records
//! what it does itself (taking the lead). One task turns these into
//! [`AuditRecord`]s, each pinning the log's latest signed head at that
//! moment, and sequences them in batches into the trail's own
//! [`Sequencer`]: the same tiles, checkpoints, signer and consistency
//! checks as the log. A change in the keys signing the log's checkpoints
//! is recorded as `key.added` / `key.removed` before the checkpoint that
//! shows it.
//!
//! The log waits for the trail: when the trail's queue is full, storing
//! the log's next checkpoint waits for room, so the log never runs ahead
//! of its record by more than the queue. Records queued when the process
//! dies are lost. The next leader repairs what matters: it records the
//! log's latest checkpoint if the trail has not, and reckons key changes
//! from the trail's last `checkpoint.signed` record, so a rotation is
//! never missed. The chain of `checkpoint.signed` records may then have a
//! gap, which `evault audit` tolerates because consecutive recorded
//! checkpoints are still checked for consistency.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use evault_core::hash::sha256;
use evault_core::trail::{
    AuditRecord, CHECKPOINT_SIGNED, KEY_ADDED, KEY_REMOVED, LEADER_ACQUIRED, MIGRATION_APPLIED,
    PinnedHead, SIGNER_REFUSED, pinned_head_value,
};
use evault_core::{Checkpoint, Note, empty_root};
use evault_storage::{AppliedMigration, LogStore, TreeHead};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::publish::Publisher;
use crate::sequencer::{NewEntry, SequenceError, Sequencer};

/// Records waiting to be sequenced into the trail, at most.
const QUEUE: usize = 1024;
/// Records sequenced in one batch of the trail, at most.
const BATCH: usize = 1024;
/// The least time between two batches of the trail. The trail's batches
/// take the same signer and storage as the log's; without a floor, a busy
/// vault would sign and store a trail checkpoint for each of its own, in
/// the way of the next append. With it, the trail commits at most five
/// times a second from what is merely observed, at once when it has been
/// quiet, and lags the log by at most about this much. A flush (someone
/// waiting for a record, such as a read of evidence) does not linger.
const LINGER: Duration = Duration::from_millis(200);

/// Something to record, as it happened.
pub(crate) enum Observed {
    /// The log stored this checkpoint note.
    Signed(Vec<u8>),
    /// The signer refused to sign `new` as extending `old`.
    Refused {
        old: TreeHead,
        new: TreeHead,
        reason: String,
    },
    /// Anything else; sequenced under `dedup` when given (an event
    /// recorded again under the same key is logged once), else under the
    /// record's own digest.
    Event {
        event: AuditEvent,
        dedup: Option<[u8; 32]>,
    },
    /// Sequence what is queued now, and answer once it is in the trail.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Observed {
    /// `event`, under its record's own digest.
    fn event(event: AuditEvent) -> Observed {
        Observed::Event { event, dedup: None }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An event to record in the audit trail: what happened, who did it, and
/// the event's own members (docs/audit.md). The trail adds the time and
/// the log's latest signed head.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    /// What happened, e.g. [`evault_core::trail::EVIDENCE_READ`].
    pub event: String,
    /// Who did it, when a caller did.
    pub principal: Option<String>,
    /// The event's own members.
    pub fields: BTreeMap<String, Value>,
}

/// Why events were not recorded: they may be, later, or not at all; the
/// caller must not act as if they were.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit trail did not record the events: {0}")]
pub struct NotRecorded(pub String);

/// Where a role that witnesses events records them: the trail itself, in
/// the process that leads the log ([`AuditTrail`]), or the tree leading it,
/// over gRPC ([`crate::RemoteAudit`]).
pub trait AuditRecorder: Send + Sync + 'static {
    /// Records `events`, in order, answering once they are in the trail.
    fn record(
        &self,
        events: Vec<AuditEvent>,
    ) -> impl std::future::Future<Output = Result<(), NotRecorded>> + Send;
}

/// How long recording waits for the trail to take events before saying
/// they were not recorded: the trail retries a failing batch for ever, so
/// a caller must not wait for ever with it.
const RECORD_WITHIN: Duration = Duration::from_secs(10);

/// The audit trail of one log, being written.
#[derive(Clone)]
pub struct AuditTrail {
    queue: mpsc::Sender<(u64, Observed)>,
}

impl AuditTrail {
    /// Starts writing the audit trail of `log` into `trail` (opened with
    /// [`Sequencer::open_audit_trail`]), and records that this process took
    /// the lead (`leader.acquired`, naming `instance`). From here on, every
    /// checkpoint `log` stores and every refusal it meets is recorded.
    pub async fn start<S: LogStore, P: Publisher>(
        log: &Sequencer<S, P>,
        trail: Sequencer<S, P>,
        instance: &str,
    ) -> Result<AuditTrail, SequenceError> {
        let latest = log.latest_checkpoint().await?;
        let recorded = last_recorded(&trail).await?;
        let (queue, receiver) = mpsc::channel(QUEUE);
        let writer = Writer::new(latest.as_deref(), recorded.as_ref());
        tokio::spawn(writer.run(Arc::new(trail), receiver));
        let audit = AuditTrail { queue };
        log.audited_by(audit.clone());
        // Records still queued when the last leader died are lost; the
        // log's latest checkpoint, if the trail has not recorded it, is
        // recorded now, with the change of keys since the last one
        // recorded.
        if let Some(note) = latest {
            let size = read_checkpoint(&note).map_or(0, |(head, _)| head.size);
            if size > recorded.as_ref().map_or(0, |(head, _)| head.size) {
                audit.tell(Observed::Signed(note)).await;
            }
        }
        let leader = AuditEvent {
            event: LEADER_ACQUIRED.to_string(),
            principal: None,
            fields: [("instance".to_string(), Value::from(instance))].into(),
        };
        audit.tell(Observed::event(leader)).await;
        // Migrations are applied before a tree leads (by `evault migrate`,
        // or on start), so the leader records them. Each is recorded under
        // a key of its own: recording it again, as every new leader does,
        // logs nothing, and no record of which were recorded is needed.
        for migration in log.applied_migrations().await? {
            audit.tell(migration_applied(&migration)).await;
        }
        Ok(audit)
    }

    /// Queues `observed`, stamped now; waits while the queue is full.
    pub(crate) async fn tell(&self, observed: Observed) {
        if self.queue.send((now_ms(), observed)).await.is_err() {
            tracing::error!("the audit trail's writer has stopped; a record is lost");
        }
    }

    /// Waits until everything recorded so far is in the trail, at most
    /// `within`; false if that did not happen in time. A process that
    /// stops calls it last, so that a graceful stop loses no record.
    pub async fn flush(&self, within: Duration) -> bool {
        let (done, flushed) = tokio::sync::oneshot::channel();
        self.tell(Observed::Flush(done)).await;
        matches!(tokio::time::timeout(within, flushed).await, Ok(Ok(())))
    }
}

impl AuditRecorder for AuditTrail {
    async fn record(&self, events: Vec<AuditEvent>) -> Result<(), NotRecorded> {
        for event in events {
            self.tell(Observed::event(event)).await;
        }
        if self.flush(RECORD_WITHIN).await {
            Ok(())
        } else {
            Err(NotRecorded(format!(
                "not in the trail within {} s",
                RECORD_WITHIN.as_secs()
            )))
        }
    }
}

/// The record of one migration, under a dedup key naming the migration as
/// the history has it: the same migration is recorded once, whoever leads
/// and however often.
fn migration_applied(migration: &AppliedMigration) -> Observed {
    let key = format!(
        "{MIGRATION_APPLIED}\n{}\n{}\n{}\n{}",
        migration.version, migration.name, migration.applied_on, migration.checksum
    );
    Observed::Event {
        event: AuditEvent {
            event: MIGRATION_APPLIED.to_string(),
            principal: None,
            fields: [
                ("version".to_string(), Value::from(migration.version)),
                ("name".to_string(), Value::from(migration.name.as_str())),
                (
                    "applied_on".to_string(),
                    Value::from(migration.applied_on.as_str()),
                ),
                (
                    "checksum".to_string(),
                    Value::from(migration.checksum.as_str()),
                ),
            ]
            .into(),
        },
        dedup: Some(sha256(key.as_bytes())),
    }
}

/// How far back the trail is searched for its last `checkpoint.signed`
/// record: past the few other records a restart writes.
const SEARCHED: u64 = 1024;

/// The head and key IDs of the trail's last `checkpoint.signed` record,
/// within its last [`SEARCHED`] records.
async fn last_recorded<S: LogStore, P: Publisher>(
    trail: &Sequencer<S, P>,
) -> Result<Option<(PinnedHead, Vec<String>)>, SequenceError> {
    let entries = trail.last_entries(SEARCHED).await?;
    Ok(entries.iter().rev().find_map(|entry| {
        let record = AuditRecord::parse(entry).ok()?;
        if record.event != CHECKPOINT_SIGNED {
            return None;
        }
        let key_ids = record
            .fields
            .get("key_ids")?
            .as_array()?
            .iter()
            .map(|id| id.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        Some((record.log, key_ids))
    }))
}

/// Tells each waiting flush its records are in.
fn answer(flushes: Vec<tokio::sync::oneshot::Sender<()>>) {
    for done in flushes {
        // A flush that stopped waiting (it timed out) needs no answer.
        let _ = done.send(());
    }
}

/// A checkpoint note's head and signing key IDs, if it is one.
fn read_checkpoint(note: &[u8]) -> Option<(PinnedHead, Vec<String>)> {
    let note = Note::parse(note).ok()?;
    let checkpoint = Checkpoint::parse(note.text()).ok()?;
    let key_ids = note
        .signatures()
        .iter()
        .map(|s| format!("{:08x}", s.key_id))
        .collect();
    Some((
        PinnedHead {
            size: checkpoint.size,
            root: checkpoint.root,
        },
        key_ids,
    ))
}

fn head_value(head: TreeHead) -> Value {
    pinned_head_value(&PinnedHead {
        size: head.size,
        root: head.root,
    })
}

/// Turns observations into records, knowing the log's latest signed head
/// and the keys that signed it.
struct Writer {
    latest: PinnedHead,
    key_ids: Option<Vec<String>>,
}

impl Writer {
    /// A writer for a log whose latest checkpoint is `latest`, and whose
    /// trail last recorded `recorded` (a head and its key IDs): key
    /// changes are reckoned from what the trail recorded, so none is
    /// missed across a restart.
    fn new(latest: Option<&[u8]>, recorded: Option<&(PinnedHead, Vec<String>)>) -> Self {
        let latest = latest.and_then(read_checkpoint);
        Writer {
            latest: latest.as_ref().map_or(
                PinnedHead {
                    size: 0,
                    root: empty_root(),
                },
                |(head, _)| *head,
            ),
            key_ids: recorded
                .map(|(_, ids)| ids.clone())
                .or_else(|| latest.map(|(_, ids)| ids)),
        }
    }

    fn record(
        &self,
        time_ms: u64,
        event: &str,
        principal: Option<String>,
        fields: BTreeMap<String, Value>,
    ) -> AuditRecord {
        AuditRecord {
            time_ms,
            event: event.to_string(),
            principal,
            log: self.latest,
            fields,
        }
    }

    /// The records one observation makes, in order; a flush makes none,
    /// and is kept in `flushes` to be answered once the batch is in.
    fn records(
        &mut self,
        time_ms: u64,
        observed: Observed,
        flushes: &mut Vec<tokio::sync::oneshot::Sender<()>>,
    ) -> Vec<AuditRecord> {
        match observed {
            Observed::Flush(done) => {
                flushes.push(done);
                Vec::new()
            }
            Observed::Signed(note) => {
                let Some((head, key_ids)) = read_checkpoint(&note) else {
                    tracing::error!("the log stored a checkpoint the audit trail cannot read");
                    return Vec::new();
                };
                let mut records = Vec::new();
                self.latest = head;
                if let Some(before) = &self.key_ids {
                    for id in key_ids.iter().filter(|id| !before.contains(id)) {
                        records.push(self.record(
                            time_ms,
                            KEY_ADDED,
                            None,
                            [("key_id".to_string(), Value::from(id.as_str()))].into(),
                        ));
                    }
                    for id in before.iter().filter(|id| !key_ids.contains(id)) {
                        records.push(self.record(
                            time_ms,
                            KEY_REMOVED,
                            None,
                            [("key_id".to_string(), Value::from(id.as_str()))].into(),
                        ));
                    }
                }
                records.push(
                    self.record(
                        time_ms,
                        CHECKPOINT_SIGNED,
                        None,
                        [
                            ("size".to_string(), Value::from(head.size)),
                            ("root".to_string(), pinned_head_value(&head)["root"].clone()),
                            ("key_ids".to_string(), Value::from(key_ids.clone())),
                        ]
                        .into(),
                    ),
                );
                self.key_ids = Some(key_ids);
                records
            }
            Observed::Refused { old, new, reason } => vec![
                self.record(
                    time_ms,
                    SIGNER_REFUSED,
                    None,
                    [
                        (
                            "asked".to_string(),
                            serde_json::json!({"old": head_value(old), "new": head_value(new)}),
                        ),
                        ("reason".to_string(), Value::from(reason)),
                    ]
                    .into(),
                ),
            ],
            Observed::Event { event, dedup: _ } => {
                vec![self.record(time_ms, &event.event, event.principal, event.fields)]
            }
        }
    }

    /// The trail's entries for one observation: its records, each under
    /// the event's dedup key when it has one, else its own digest.
    fn entries(
        &mut self,
        time_ms: u64,
        observed: Observed,
        flushes: &mut Vec<tokio::sync::oneshot::Sender<()>>,
    ) -> Vec<NewEntry> {
        let dedup = match &observed {
            Observed::Event { dedup, .. } => *dedup,
            _ => None,
        };
        self.records(time_ms, observed, flushes)
            .iter()
            .map(|record| {
                let entry = record.to_bytes();
                NewEntry {
                    dedup_key: dedup.unwrap_or_else(|| sha256(&entry)),
                    entry,
                }
            })
            .collect()
    }

    async fn run<S: LogStore, P: Publisher>(
        mut self,
        trail: Arc<Sequencer<S, P>>,
        mut queue: mpsc::Receiver<(u64, Observed)>,
    ) {
        let mut last_batch: Option<tokio::time::Instant> = None;
        while let Some((time_ms, observed)) = queue.recv().await {
            let mut flushes = Vec::new();
            let mut batch = self.entries(time_ms, observed, &mut flushes);
            // Linger, gathering what comes, unless someone waits: a flush
            // (a read of evidence waiting to be recorded, a stop) ends the
            // linger at once.
            if let Some(last) = last_batch {
                let linger = tokio::time::sleep_until(last + LINGER);
                tokio::pin!(linger);
                while flushes.is_empty() && batch.len() < BATCH {
                    tokio::select! {
                        () = &mut linger => break,
                        next = queue.recv() => match next {
                            Some((time_ms, observed)) => {
                                batch.extend(self.entries(time_ms, observed, &mut flushes));
                            }
                            None => break,
                        },
                    }
                }
            }
            while batch.len() < BATCH {
                match queue.try_recv() {
                    Ok((time_ms, observed)) => {
                        batch.extend(self.entries(time_ms, observed, &mut flushes));
                    }
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                answer(flushes);
                continue;
            }
            // A batch is retried until the trail takes it: dropping it
            // would leave a hole no one could see.
            let mut wait = Duration::from_millis(100);
            while let Err(error) = trail.sequence(&batch).await {
                tracing::error!(%error, records = batch.len(), "the audit trail could not take records; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            last_batch = Some(tokio::time::Instant::now());
            answer(flushes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use evault_core::SigningKey;

    fn note(size: u64, keys: &[&SigningKey]) -> Vec<u8> {
        Checkpoint {
            origin: "vault.example/log".into(),
            size,
            root: evault_core::Hash::from_slice(&[size as u8; 32]).expect("hash"),
            extensions: vec![],
        }
        .sign(keys)
        .expect("sign")
    }

    #[test]
    fn a_change_of_keys_is_recorded_before_the_checkpoint_that_shows_it() {
        let (a, _) = SigningKey::generate("vault.example/log").expect("key");
        let (b, _) = SigningKey::generate("vault.example/log").expect("key");
        let id = |k: &SigningKey| format!("{:08x}", k.verifier_key().key_id());
        let mut writer = Writer::new(Some(&note(1, &[&a])), None);
        assert_eq!(writer.latest.size, 1);

        let both = writer.records(5, Observed::Signed(note(2, &[&a, &b])), &mut Vec::new());
        let events: Vec<&str> = both.iter().map(|r| r.event.as_str()).collect();
        assert_eq!(events, [KEY_ADDED, CHECKPOINT_SIGNED]);
        assert_eq!(both[0].fields["key_id"], Value::from(id(&b)));
        assert_eq!(both[1].log.size, 2, "the record pins the head it reports");
        assert_eq!(
            both[1].fields["key_ids"],
            serde_json::json!([id(&a), id(&b)])
        );

        let b_only = writer.records(6, Observed::Signed(note(3, &[&b])), &mut Vec::new());
        let events: Vec<&str> = b_only.iter().map(|r| r.event.as_str()).collect();
        assert_eq!(events, [KEY_REMOVED, CHECKPOINT_SIGNED]);
        assert_eq!(b_only[0].fields["key_id"], Value::from(id(&a)));
    }

    #[test]
    fn a_migration_is_sequenced_under_a_key_of_its_own() {
        let migration = AppliedMigration {
            version: 4,
            name: "evidence_erasure".into(),
            applied_on: "2026-11-30T04:00:00Z".into(),
            checksum: "1234".into(),
        };
        let mut writer = Writer::new(None, None);
        let first = writer.entries(1, migration_applied(&migration), &mut Vec::new());
        let later = writer.entries(99, migration_applied(&migration), &mut Vec::new());
        assert_eq!(first.len(), 1);
        assert_ne!(first[0].entry, later[0].entry, "recorded at another time");
        assert_eq!(
            first[0].dedup_key, later[0].dedup_key,
            "the same migration: logged once"
        );
        let record = AuditRecord::parse(&first[0].entry).expect("record");
        assert_eq!(record.event, MIGRATION_APPLIED);
        assert_eq!(record.fields["version"], Value::from(4));
        assert_eq!(record.fields["name"], Value::from("evidence_erasure"));
        let other = AppliedMigration {
            version: 5,
            ..migration.clone()
        };
        let other = writer.entries(1, migration_applied(&other), &mut Vec::new());
        assert_ne!(first[0].dedup_key, other[0].dedup_key);
        // Other records are keyed by their own bytes.
        let event = writer.entries(
            1,
            Observed::event(AuditEvent {
                event: LEADER_ACQUIRED.into(),
                principal: None,
                fields: BTreeMap::new(),
            }),
            &mut Vec::new(),
        );
        assert_eq!(event[0].dedup_key, sha256(&event[0].entry));
    }

    #[test]
    fn records_pin_the_latest_signed_head() {
        let (a, _) = SigningKey::generate("vault.example/log").expect("key");
        let mut writer = Writer::new(None, None);
        let first = writer.records(
            1,
            Observed::event(AuditEvent {
                event: LEADER_ACQUIRED.into(),
                principal: None,
                fields: BTreeMap::new(),
            }),
            &mut Vec::new(),
        );
        assert_eq!(first[0].log.size, 0);
        assert_eq!(first[0].log.root, empty_root());
        writer.records(2, Observed::Signed(note(9, &[&a])), &mut Vec::new());
        let refused = writer.records(
            3,
            Observed::Refused {
                old: TreeHead::empty(),
                new: TreeHead::empty(),
                reason: "a fork".into(),
            },
            &mut Vec::new(),
        );
        assert_eq!(refused[0].event, SIGNER_REFUSED);
        assert_eq!(refused[0].log.size, 9);
        assert_eq!(refused[0].fields["reason"], Value::from("a fork"));
        // Every record is one the trail's sequencer accepts.
        for record in first.iter().chain(&refused) {
            AuditRecord::parse(&record.to_bytes()).expect("parses");
        }
    }
}
