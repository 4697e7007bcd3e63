//! Trusted verifier keys from flags and files.

use std::path::PathBuf;

use clap::Args;
use evault_core::{VerifierKey, parse_verifier_keys};

use crate::outcome::{Failure, usage};

/// The keys a command trusts.
#[derive(Args, Debug)]
pub(crate) struct TrustedKeys {
    /// A trusted verifier key, `<name>+<key ID>+<base64 key>` (repeatable).
    #[arg(long = "vkey", env = "EVAULT_VKEY", value_name = "KEY")]
    vkeys: Vec<String>,
    /// A file of trusted verifier keys, one per line (`#` comments allowed).
    #[arg(long, env = "EVAULT_VKEY_FILE", value_name = "FILE")]
    vkey_file: Option<PathBuf>,
}

impl TrustedKeys {
    /// Parses every key given; at least one is required.
    pub(crate) fn load(&self) -> Result<Vec<VerifierKey>, Failure> {
        let mut keys = Vec::new();
        for text in &self.vkeys {
            keys.push(
                VerifierKey::parse(text).map_err(|e| usage(format!("--vkey {text:?}: {e}")))?,
            );
        }
        if let Some(path) = &self.vkey_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("--vkey-file {}: {e}", path.display())))?;
            keys.extend(
                parse_verifier_keys(&text)
                    .map_err(|e| usage(format!("--vkey-file {}: {e}", path.display())))?,
            );
        }
        if keys.is_empty() {
            return Err(usage("no trusted key: give --vkey KEY or --vkey-file FILE"));
        }
        Ok(keys)
    }
}
