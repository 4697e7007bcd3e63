//! gRPC health (`grpc.health.v1`), as the tests read a server's.

use tonic_health::pb::HealthCheckRequest;
pub use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Waits until the server at `url` reports `want` for `service`, following
/// its health with `Watch` rather than polling on a clock: what the server
/// says first, then each change. Panics if the server ends the stream
/// first.
pub async fn reaches(url: &str, service: &str, want: ServingStatus) {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .expect("endpoint")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("health of {url}: {e}"));
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("watch")
        .into_inner();
    while let Some(status) = watch.message().await.expect("health") {
        if status.status == want as i32 {
            return;
        }
    }
    panic!("{url} ended its health stream before {service} was {want:?}");
}
