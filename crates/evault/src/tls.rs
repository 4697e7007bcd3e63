//! The TLS flags of `evault serve <role>`: the role's certificate, key and
//! CA, and the peers an internal role serves.

use std::path::{Path, PathBuf};

use clap::Args;
use clap::builder::NonEmptyStringValueParser;
use evault_proto::tls::{PeerPolicy, PublicTls, RoleTls, ServerTls, TlsError};
use tonic::transport::ClientTlsConfig;

use crate::outcome::{Failure, usage};

/// TLS, from PEM files (`evault dev-certs` makes a set for local runs).
#[derive(Args, Debug, Clone)]
pub(crate) struct TlsArgs {
    /// This role's certificate (chain, its own first): presented to its
    /// callers and to the roles it calls.
    #[arg(long, env = "EVAULT_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert.
    #[arg(long, env = "EVAULT_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The CA of the vault's roles: the only one trusted for the roles this
    /// one calls (whose addresses are then https://), and, on an internal
    /// role, the one its callers' certificates must come from.
    #[arg(long, env = "EVAULT_TLS_CA", value_name = "FILE")]
    tls_ca: Option<PathBuf>,
}

/// TLS of an internal role (signer, tree, ingest): mutual, and for its
/// natural callers alone unless told otherwise.
#[derive(Args, Debug, Clone)]
pub(crate) struct InternalTlsArgs {
    #[command(flatten)]
    tls: TlsArgs,
    /// A peer allowed to call this role, by a DNS name of its certificate:
    /// `tree` admits `tree` and `tree.<anything>`, not `treehouse`. Repeat
    /// for several. Default: the role's natural callers (signer: tree;
    /// tree: ingest, gateway; ingest: gateway).
    #[arg(
        long = "allow-peer",
        env = "EVAULT_ALLOW_PEER",
        value_name = "NAME",
        value_delimiter = ',',
        value_parser = NonEmptyStringValueParser::new()
    )]
    allow_peer: Vec<String>,
}

/// A role's TLS, both ways; `None` where it speaks plaintext. `S` is how
/// its listener speaks it: mutual TLS on an internal role, [`PublicTls`]
/// on the gateway.
pub(crate) struct RoleTlsConfig<S = ServerTls> {
    /// For its own listener.
    pub(crate) server: Option<S>,
    /// For the roles it calls.
    pub(crate) client: Option<ClientTlsConfig>,
}

impl<S> RoleTlsConfig<S> {
    /// The scheme of the listener's address.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.server.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

impl TlsArgs {
    /// The files, read and checked; `None` without --tls-cert.
    fn load(&self) -> Result<Option<RoleTls>, Failure> {
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => return Err(usage("--tls-cert needs --tls-key")),
            (None, Some(_)) => return Err(usage("--tls-key needs --tls-cert")),
            (None, None) if self.tls_ca.is_some() => {
                return Err(usage(
                    "--tls-ca needs --tls-cert and --tls-key: a role presents its own certificate to the roles it calls",
                ));
            }
            (None, None) => return Ok(None),
        };
        let ca = self.tls_ca.as_deref();
        let material = RoleTls::from_pem(
            &read("--tls-cert", cert)?,
            &read("--tls-key", key)?,
            ca.map(|ca| read("--tls-ca", ca)).transpose()?.as_deref(),
        );
        let flag = |flag: &str, path: Option<&Path>, message: String| match path {
            Some(path) => usage(format!("{flag} {}: {message}", path.display())),
            None => usage(format!("{flag}: {message}")),
        };
        match material {
            Ok(material) => Ok(Some(material)),
            Err(TlsError::Certificate(message)) => Err(flag("--tls-cert", Some(cert), message)),
            Err(TlsError::Key(message)) => Err(flag("--tls-key", Some(key), message)),
            Err(TlsError::Ca(message)) => Err(flag("--tls-ca", ca, message)),
            Err(other @ (TlsError::NoCa | TlsError::Scheme { .. } | TlsError::Address { .. })) => {
                Err(usage(other))
            }
        }
    }

    /// The gateway's: TLS on its public listener without asking for client
    /// certificates, and, with a CA, mutual TLS to ingest and tree.
    pub(crate) fn public(&self) -> Result<RoleTlsConfig<PublicTls>, Failure> {
        let Some(material) = self.load()? else {
            return Ok(RoleTlsConfig {
                server: None,
                client: None,
            });
        };
        Ok(RoleTlsConfig {
            server: Some(material.public_server()),
            client: self
                .tls_ca
                .is_some()
                .then(|| material.client())
                .transpose()
                .map_err(usage)?,
        })
    }
}

impl InternalTlsArgs {
    /// The TLS of the internal role `role`, serving `callers` unless
    /// --allow-peer says otherwise.
    pub(crate) fn internal(&self, role: &str, callers: &[&str]) -> Result<RoleTlsConfig, Failure> {
        let Some(material) = self.tls.load()? else {
            if !self.allow_peer.is_empty() {
                return Err(usage(
                    "--allow-peer needs mutual TLS (--tls-cert, --tls-key, --tls-ca)",
                ));
            }
            return Ok(RoleTlsConfig {
                server: None,
                client: None,
            });
        };
        if self.tls.tls_ca.is_none() {
            return Err(usage(format!(
                "--tls-cert needs --tls-ca on the {role}: without the CA it could not authenticate its callers"
            )));
        }
        let policy = if self.allow_peer.is_empty() {
            PeerPolicy::new(callers.iter().copied())
        } else {
            PeerPolicy::new(self.allow_peer.iter().cloned())
        };
        tracing::info!(role, peers = ?policy.names(), "mutual TLS: serving only these peers");
        Ok(RoleTlsConfig {
            server: Some(material.internal_server(policy).map_err(usage)?),
            client: Some(material.client().map_err(usage)?),
        })
    }
}

/// The bytes of the file `path` given as `flag`.
fn read(flag: &str, path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| usage(format!("{flag} {}: {e}", path.display())))
}
