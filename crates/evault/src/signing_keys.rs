//! The log's signing keys from flags: PKCS#8 files and keys in a PKCS#11
//! token, for `evault up` and `evault serve signer`.

use std::path::PathBuf;

use clap::Args;
use evault_signer::{KeyFile, LogKey, TokenConfig, open_token_keys};

use crate::outcome::{Failure, usage};

/// Where the log's signing keys are. Every key given signs every
/// checkpoint: key files first, in the order given, then token keys.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct SigningKeyArgs {
    /// A signing key file (PKCS#8 PEM, from `evault keygen`); repeatable.
    /// Several keys all sign every checkpoint, for a rotation.
    #[arg(
        long,
        env = "EVAULT_KEY_FILE",
        value_name = "FILE",
        value_delimiter = ','
    )]
    key_file: Vec<PathBuf>,
    /// The PKCS#11 module of the token holding keys, e.g.
    /// /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, env = "EVAULT_PKCS11_MODULE", value_name = "PATH")]
    pkcs11_module: Option<PathBuf>,
    /// The label of the token holding the keys.
    #[arg(long, env = "EVAULT_PKCS11_TOKEN", value_name = "LABEL")]
    pkcs11_token: Option<String>,
    /// The label of an Ed25519 key on the token; repeatable.
    #[arg(
        long,
        env = "EVAULT_PKCS11_KEY",
        value_name = "LABEL",
        value_delimiter = ','
    )]
    pkcs11_key: Vec<String>,
    /// The file holding the token's user PIN.
    #[arg(long, env = "EVAULT_PKCS11_PIN_FILE", value_name = "FILE")]
    pkcs11_pin_file: Option<PathBuf>,
}

impl SigningKeyArgs {
    /// The keys the flags name, each signing under `origin`; `None` when
    /// no key flag was given.
    pub(crate) fn load(&self, origin: &str) -> Result<Option<Vec<LogKey>>, Failure> {
        let mut keys: Vec<LogKey> = Vec::new();
        for path in &self.key_file {
            let key = KeyFile::load(path, origin).map_err(|e| usage(format!("--key-file {e}")))?;
            keys.push(Box::new(key));
        }
        if let Some(token) = self.token()? {
            let opened = open_token_keys(&token, &self.pkcs11_key, origin).map_err(usage)?;
            keys.extend(opened.into_iter().map(|k| Box::new(k) as LogKey));
        }
        Ok((!keys.is_empty()).then_some(keys))
    }

    /// The token, when any PKCS#11 flag is given; then all of them are
    /// needed.
    fn token(&self) -> Result<Option<TokenConfig>, Failure> {
        let given = self.pkcs11_module.is_some()
            || self.pkcs11_token.is_some()
            || !self.pkcs11_key.is_empty()
            || self.pkcs11_pin_file.is_some();
        if !given {
            return Ok(None);
        }
        let missing = |flag: &str| {
            usage(format!(
                "{flag} is required with the other --pkcs11-* flags \
                 (--pkcs11-module, --pkcs11-token, --pkcs11-key, --pkcs11-pin-file)"
            ))
        };
        if self.pkcs11_key.is_empty() {
            return Err(missing("--pkcs11-key"));
        }
        Ok(Some(TokenConfig {
            module: self
                .pkcs11_module
                .clone()
                .ok_or_else(|| missing("--pkcs11-module"))?,
            token: self
                .pkcs11_token
                .clone()
                .ok_or_else(|| missing("--pkcs11-token"))?,
            pin_file: self
                .pkcs11_pin_file
                .clone()
                .ok_or_else(|| missing("--pkcs11-pin-file"))?,
        }))
    }
}
