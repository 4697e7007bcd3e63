//! Recording in the audit trail from another process: ingest and gateway
//! hand what they witness to the tree that leads the log.

use std::time::Duration;

use evault_proto::failover::Failover;
use evault_proto::telemetry::Traced;
use evault_proto::v1::audit_service_client::AuditServiceClient;
use evault_proto::v1::{AuditEvent as WireEvent, RecordRequest};
use tonic::transport::ClientTlsConfig;

use crate::trail::{AuditEvent, AuditRecorder, NotRecorded};

/// How long a record is offered to the trees before giving up: long
/// enough for a standby to take the lead.
const FAILOVER_WINDOW: Duration = Duration::from_secs(10);

/// The trees of one log, asked to record events in its audit trail: the
/// one leading records, standbys answer `UNAVAILABLE` and the next is
/// tried.
pub struct RemoteAudit {
    origin: String,
    trees: Failover<AuditServiceClient<Traced>>,
}

impl RemoteAudit {
    /// The trees at `endpoints` serving `origin`, connected lazily:
    /// `https://` addresses under mutual TLS with `tls`, `http://` ones
    /// without.
    pub fn new(
        endpoints: &[String],
        origin: &str,
        tls: Option<&ClientTlsConfig>,
    ) -> Result<Self, String> {
        Ok(RemoteAudit {
            origin: origin.to_string(),
            trees: Failover::connect_lazy(endpoints, "tree", tls, AuditServiceClient::new)?,
        })
    }
}

impl AuditRecorder for RemoteAudit {
    /// Offers the events to the tree that answered last, then the others,
    /// for ten seconds. An answer lost after the tree recorded
    /// them makes the next offer record them again: the trail may hold an
    /// event twice, never miss one that was acted on.
    async fn record(&self, events: Vec<AuditEvent>) -> Result<(), NotRecorded> {
        let request = RecordRequest {
            origin: self.origin.clone(),
            events: events
                .into_iter()
                .map(|e| WireEvent {
                    event: e.event,
                    principal: e.principal.unwrap_or_default(),
                    fields: serde_json::Value::Object(e.fields.into_iter().collect()).to_string(),
                })
                .collect(),
        };
        self.trees
            .call(FAILOVER_WINDOW, |mut tree| {
                let request = request.clone();
                async move { tree.record(request).await }
            })
            .await
            .map(drop)
            .map_err(|status| {
                NotRecorded(format!(
                    "tree answered {:?}: {}",
                    status.code(),
                    status.message()
                ))
            })
    }
}
