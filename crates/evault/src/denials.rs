//! Refused callers, recorded in the audit trail: what the auth layer
//! counted in each window becomes `auth.denied` records, one per
//! principal, code and reason, whatever the number of refusals.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use evault_auth::{DenialWindow, Denials};
use evault_core::trail::{AUTH_DENIED, format_utc_ms};
use evault_tree::{AuditEvent, AuditRecorder};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// How long refusals are counted before they are recorded.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// Events kept for a later window while the trail cannot take them, at
/// most; beyond, the oldest are dropped (and logged): a trail that stays
/// away must not grow this process without bound.
const PENDING: usize = 1024;

/// The `auth.denied` events of one window of refusals by `role`.
fn events(window: DenialWindow, role: &str) -> Vec<AuditEvent> {
    let since = format_utc_ms(window.since_ms);
    window
        .counts
        .into_iter()
        .map(|count| AuditEvent {
            event: AUTH_DENIED.to_string(),
            principal: count.principal,
            fields: BTreeMap::from([
                ("code".to_string(), Value::from(count.code)),
                ("reason".to_string(), Value::from(count.reason)),
                ("count".to_string(), Value::from(count.count)),
                ("since".to_string(), Value::from(since.as_str())),
                ("role".to_string(), Value::from(role)),
            ]),
        })
        .collect()
}

/// Records the refusals of a process's auth layer, window by window.
pub(crate) struct DenialReports {
    flush: mpsc::Sender<oneshot::Sender<()>>,
}

impl DenialReports {
    /// Every [`WINDOW`], records the refusals `denials` counted by `role`
    /// (`up`, `ingest`, `gateway`) with `audit`.
    pub(crate) fn start<A: AuditRecorder>(
        denials: Denials,
        audit: Arc<A>,
        role: &'static str,
    ) -> DenialReports {
        let (flush, mut flushes) = mpsc::channel::<oneshot::Sender<()>>(4);
        tokio::spawn(async move {
            let mut pending: Vec<AuditEvent> = Vec::new();
            let mut tick = tokio::time::interval(WINDOW);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let done = tokio::select! {
                    _ = tick.tick() => None,
                    flush = flushes.recv() => match flush {
                        Some(done) => Some(done),
                        None => return,
                    },
                };
                if let Some(window) = denials.take() {
                    pending.extend(events(window, role));
                }
                if pending.len() > PENDING {
                    let dropped = pending.len() - PENDING;
                    tracing::error!(
                        dropped,
                        "the audit trail cannot take auth.denied records; dropping the oldest"
                    );
                    pending.drain(..dropped);
                }
                if !pending.is_empty() {
                    match audit.record(pending.clone()).await {
                        Ok(()) => pending.clear(),
                        Err(error) => {
                            tracing::warn!(%error, records = pending.len(), "auth.denied records kept for the next window");
                        }
                    }
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        });
        DenialReports { flush }
    }

    /// Records what is counted now, without waiting for the window's end:
    /// a process that stops calls it last.
    pub(crate) async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.flush.send(done).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_becomes_one_record_per_kind_of_refusal() {
        let denials = Denials::new();
        for _ in 0..500 {
            denials.count(None, tonic::Code::Unauthenticated, "missing bearer token");
        }
        denials.count(
            Some("reader"),
            tonic::Code::PermissionDenied,
            "needs evault.admin",
        );
        let window = denials.take().expect("refusals");
        let since = format_utc_ms(window.since_ms);
        let events = events(window, "gateway");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, AUTH_DENIED);
        assert_eq!(events[0].principal, None);
        assert_eq!(events[0].fields["count"], Value::from(500));
        assert_eq!(events[0].fields["code"], Value::from("UNAUTHENTICATED"));
        assert_eq!(events[0].fields["since"], Value::from(since));
        assert_eq!(events[0].fields["role"], Value::from("gateway"));
        assert_eq!(events[1].principal.as_deref(), Some("reader"));
        assert_eq!(
            events[1].fields["reason"],
            Value::from("needs evault.admin")
        );
    }
}
