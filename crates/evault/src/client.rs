//! What the client commands share: the server to talk to and the token.

use std::path::PathBuf;

use clap::Args;
use evault_proto::v1::evidence_service_client::EvidenceServiceClient;
use evault_proto::v1::ingest_service_client::IngestServiceClient;
use evault_proto::v1::tree_service_client::TreeServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::outcome::{Failure, usage};

/// Where `evault up` listens, and so where clients go, by default.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:7400";

use evault_proto::transport::{MAX_ANSWER, MAX_MESSAGE};

/// The vault to talk to.
#[derive(Args, Debug, Clone)]
pub(crate) struct ServerArgs {
    /// The vault's gateway.
    #[arg(long, env = "EVAULT_SERVER", default_value = "http://127.0.0.1:7400")]
    pub(crate) server: String,
    #[command(flatten)]
    pub(crate) ca: CaArgs,
}

/// The CA a client trusts for https:// addresses.
#[derive(Args, Debug, Clone)]
pub(crate) struct CaArgs {
    /// The CA to trust for an https:// address (PEM, e.g. the ca.pem of
    /// `evault dev-certs`, or the system's bundle of public CAs).
    #[arg(long, env = "EVAULT_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
}

impl CaArgs {
    /// The PEM text of --tls-ca; `None` without it.
    pub(crate) fn pem(&self) -> Result<Option<Vec<u8>>, Failure> {
        self.tls_ca
            .as_ref()
            .map(|path| {
                std::fs::read(path).map_err(|e| usage(format!("--tls-ca {}: {e}", path.display())))
            })
            .transpose()
    }
}

impl ServerArgs {
    async fn channel(&self) -> Result<Channel, Failure> {
        let tls = self
            .ca
            .pem()?
            .map(|pem| ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)));
        // The vault's own transport settings: TCP_NODELAY, and HTTP/2
        // keep-alive, so a vault that vanishes without closing the
        // connection is noticed within half a minute instead of never.
        evault_proto::tls::endpoint(&self.server, tls.as_ref())
            .map_err(|e| usage(format!("--server {e}")))?
            .connect()
            .await
            .map_err(|e| usage(format!("--server {}: cannot connect: {e}", self.server)))
    }

    pub(crate) async fn tree(&self) -> Result<TreeServiceClient<Channel>, Failure> {
        Ok(TreeServiceClient::new(self.channel().await?).max_decoding_message_size(MAX_ANSWER))
    }

    pub(crate) async fn evidence(&self) -> Result<EvidenceServiceClient<Channel>, Failure> {
        Ok(EvidenceServiceClient::new(self.channel().await?))
    }

    pub(crate) async fn ingest(&self) -> Result<IngestServiceClient<Channel>, Failure> {
        Ok(IngestServiceClient::new(self.channel().await?)
            .max_encoding_message_size(MAX_MESSAGE)
            .max_decoding_message_size(MAX_ANSWER))
    }
}

/// The writer's credentials.
#[derive(Args, Debug, Clone)]
pub(crate) struct TokenArgs {
    /// File holding the bearer token (what `evault up` writes).
    #[arg(
        long,
        env = "EVAULT_TOKEN_FILE",
        default_value = "evault-data/dev-token"
    )]
    token_file: PathBuf,
    /// The bearer token itself, instead of --token-file.
    #[arg(long, env = "EVAULT_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl TokenArgs {
    /// The `authorization` header value.
    pub(crate) fn header(
        &self,
    ) -> Result<tonic::metadata::MetadataValue<tonic::metadata::Ascii>, Failure> {
        let token = match &self.token {
            Some(token) => token.trim().to_string(),
            None => std::fs::read_to_string(&self.token_file)
                .map_err(|e| usage(format!("--token-file {}: {e}", self.token_file.display())))?
                .trim()
                .to_string(),
        };
        format!("Bearer {token}")
            .parse()
            .map_err(|_| usage("the token is not printable ASCII"))
    }
}

/// A gRPC failure as the command reports it. A call the connection broke
/// under is `Unavailable` (retry it), as the vault's roles report it.
pub(crate) fn rpc_failure(what: &str, status: &tonic::Status) -> Failure {
    let status = evault_proto::transport::broken_call("the vault", status.clone());
    usage(format!("{what}: {:?}: {}", status.code(), status.message()))
}

/// Entry `index` of the log, as the vault's tree serves it.
pub(crate) async fn fetch_entry(
    tree: &mut TreeServiceClient<Channel>,
    index: u64,
) -> Result<Vec<u8>, Failure> {
    tree.get_entries(evault_proto::v1::GetEntriesRequest {
        start: index,
        count: 1,
    })
    .await
    .map_err(|s| rpc_failure(&format!("entry {index}"), &s))?
    .into_inner()
    .entries
    .pop()
    .filter(|e| e.index == index)
    .map(|e| e.entry)
    .ok_or_else(|| crate::outcome::invalid(format!("the vault did not return entry {index}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_its_connection_broke_under_is_reported_as_unavailable() {
        let Failure::Usage(message) = rpc_failure(
            "append",
            &tonic::Status::unknown("h2 protocol error: error reading a body from connection"),
        ) else {
            unreachable!("a failed call is a usage failure (exit 2)");
        };
        assert_eq!(
            message,
            "append: Unavailable: the call to the vault broke: \
             h2 protocol error: error reading a body from connection"
        );
        let Failure::Usage(message) =
            rpc_failure("append", &tonic::Status::permission_denied("scope"))
        else {
            unreachable!("a failed call is a usage failure (exit 2)");
        };
        assert_eq!(message, "append: PermissionDenied: scope");
    }
}
