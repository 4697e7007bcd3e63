//! `--health-listen`: a port of its own serving only gRPC health
//! (`grpc.health.v1.Health`), in plaintext, beside a role's own port.
//!
//! Kubernetes' gRPC probes speak plaintext and present no client
//! certificate, while the roles talk mutual TLS: on a role's own port a
//! probe would be refused before any health answer. This port answers
//! health and nothing else, so it opens no way in: no service of the
//! vault, no metrics. Its statuses are the role's own, kept in step with
//! what the role reports on its port.

use clap::Args;
use evault_proto::guard::ConnectionLimits;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::outcome::{Failure, usage};
use crate::vault::bind;

#[derive(Args, Debug, Clone)]
pub(crate) struct ProbeArgs {
    /// Address of a plaintext port serving only gRPC health, for probes
    /// that cannot present a client certificate (Kubernetes' gRPC
    /// probes), e.g. `0.0.0.0:8081`. Off unless given.
    #[arg(long, env = "EVAULT_HEALTH_LISTEN")]
    health_listen: Option<String>,
}

impl ProbeArgs {
    /// Starts the health port, if asked for, reporting the server (`""`)
    /// and `serving` as `SERVING`. The reporter is returned for a role
    /// whose health changes (tree's sequencer, `up`'s appends).
    pub(crate) async fn start(&self, serving: &[&str]) -> Result<Option<HealthReporter>, Failure> {
        let Some(address) = &self.health_listen else {
            return Ok(None);
        };
        let listener = bind(address).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| usage(format!("--health-listen: {e}")))?;
        let (reporter, health) = tonic_health::server::health_reporter();
        for service in std::iter::once("").chain(serving.iter().copied()) {
            reporter
                .set_service_status(service, ServingStatus::Serving)
                .await;
        }
        let incoming = evault_proto::transport::incoming(listener, ConnectionLimits::default());
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(health)
                .serve_with_incoming(incoming)
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "the health port stopped");
            }
        });
        // After the role's own address, which whoever started it reads
        // first.
        println!("  health on http://{addr} (gRPC health only)");
        Ok(Some(reporter))
    }
}
