//! Reading a log published in the C2SP tlog-tiles layout, from a directory
//! or an HTTP base URL.

use std::path::PathBuf;
use std::sync::Arc;

use evault_core::tile::{BundleId, TileId};
use evault_core::{LogSource, TileReader};
use ureq::tls::{PemItem, RootCerts, TlsConfig};

use crate::client::CaArgs;
use crate::outcome::{Failure, invalid, usage};

/// Upper bounds on what one resource may be: a checkpoint note, a tile,
/// a full bundle of maximal entries. A larger answer is not the log's.
const MAX_CHECKPOINT: u64 = 1 << 20;
const MAX_TILE: u64 = 256 * 32;
const MAX_BUNDLE: u64 = 256 * (2 + 65_535);

/// Where the log is read from.
pub(crate) enum Source {
    Dir(PathBuf),
    Http(HttpLog),
}

impl Source {
    /// A directory path, or a base URL starting with `http://` or
    /// `https://`. An `https://` log is trusted by the CA of `ca` if it
    /// gives one, by the public CAs (Mozilla's list) if not; with a CA, an
    /// `http://` log is refused rather than read in plaintext.
    pub(crate) fn open(log: &str, ca: &CaArgs) -> Result<Self, Failure> {
        if log.starts_with("https://") {
            return Ok(Source::Http(HttpLog::new(log, ca.pem()?.as_deref())?));
        }
        if log.starts_with("http://") {
            if ca.pem()?.is_some() {
                return Err(usage(format!(
                    "{log}: --tls-ca is given, so the address must be https://"
                )));
            }
            return Ok(Source::Http(HttpLog::new(log, None)?));
        }
        let dir = PathBuf::from(log);
        if !dir.is_dir() {
            return Err(usage(format!("{}: not a directory", dir.display())));
        }
        Ok(Source::Dir(dir))
    }

    /// How a failed read of the log ends the command: as a verdict on the
    /// log (exit 1), unless the server could not be reached at all, which
    /// says nothing about the log (exit 2).
    pub(crate) fn failure(&self, log: &str, error: impl std::fmt::Display) -> Failure {
        if let Source::Http(HttpLog {
            transport_error: Some(transport),
            ..
        }) = self
        {
            return usage(format!("{log}: {transport}"));
        }
        invalid(format!("{log}: {error}"))
    }

    fn fetch(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        match self {
            Source::Dir(dir) => {
                let file = dir.join(path);
                let len = std::fs::metadata(&file).map_err(|e| e.to_string())?.len();
                if len > limit {
                    return Err(format!("{len} bytes, more than the {limit} it can be"));
                }
                std::fs::read(&file).map_err(|e| e.to_string())
            }
            Source::Http(http) => http.fetch(path, limit),
        }
    }
}

impl LogSource for Source {
    type Error = String;

    fn checkpoint(&mut self) -> Result<Vec<u8>, String> {
        self.fetch("checkpoint", MAX_CHECKPOINT)
    }

    fn tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        self.fetch(&tile.path(), MAX_TILE)
    }

    fn bundle(&mut self, bundle: BundleId) -> Result<Vec<u8>, String> {
        self.fetch(&bundle.path(), MAX_BUNDLE)
    }
}

/// A log served over HTTP. A status other than 200 means the log lacks
/// the resource (the log is invalid); a transport failure means the audit
/// could not run, which is remembered to report it as such.
pub(crate) struct HttpLog {
    base: String,
    agent: ureq::Agent,
    transport_error: Option<String>,
}

impl HttpLog {
    /// The log at `base`, over TLS trusting only the certificates of the
    /// PEM text `ca` if given.
    fn new(base: &str, ca: Option<&[u8]>) -> Result<Self, Failure> {
        let mut config = ureq::Agent::config_builder();
        if let Some(pem) = ca {
            let mut roots = Vec::new();
            for item in ureq::tls::parse_pem(pem) {
                if let PemItem::Certificate(cert) =
                    item.map_err(|e| usage(format!("--tls-ca: {e}")))?
                {
                    roots.push(cert);
                }
            }
            if roots.is_empty() {
                return Err(usage("--tls-ca: no PEM certificate"));
            }
            config = config.tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::Specific(Arc::new(roots)))
                    .build(),
            );
        }
        Ok(HttpLog {
            base: format!("{}/", base.trim_end_matches('/')),
            agent: config.build().new_agent(),
            transport_error: None,
        })
    }

    fn fetch(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        let url = format!("{}{path}", self.base);
        match self.agent.get(&url).call() {
            Ok(mut response) => response
                .body_mut()
                .with_config()
                .limit(limit)
                .read_to_vec()
                .map_err(|e| e.to_string()),
            Err(ureq::Error::StatusCode(code)) => Err(format!("HTTP status {code}")),
            Err(e) => {
                let message = e.to_string();
                self.transport_error = Some(message.clone());
                Err(message)
            }
        }
    }
}

impl TileReader for Source {
    type Error = String;

    fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
        LogSource::tile(self, tile)
    }
}
