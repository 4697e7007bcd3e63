//! Signing keys kept in PKCS#8 PEM files.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use evault_core::{KeyError, SigningKey, note};

/// Why a key file could not be created or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Creating the key would overwrite an existing file.
    #[error("{0} already exists; refusing to overwrite a signing key")]
    Exists(PathBuf),
    /// The file holds no usable Ed25519 key, or the name is invalid.
    #[error("{path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        source: KeyError,
    },
}

/// An Ed25519 signing key stored as a PKCS#8 PEM file.
pub struct KeyFile;

impl KeyFile {
    /// Generates a key signing under `name` and writes it to `path`
    /// (mode 0600 on Unix). Never overwrites: a lost log key cannot be
    /// recovered, and a replaced one forks the log's identity.
    pub fn create(path: &Path, name: &str) -> Result<SigningKey, KeyFileError> {
        let key_error = |source| KeyFileError::Key {
            path: path.to_path_buf(),
            source,
        };
        let io_error = |source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (key, der) = SigningKey::generate(name).map_err(key_error)?;
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists(path.to_path_buf())
            } else {
                io_error(e)
            }
        })?;
        file.write_all(note::pem_encode(&der).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_error)?;
        Ok(key)
    }

    /// Loads the key in `path` (PKCS#8, PEM or DER) to sign under `name`.
    pub fn load(path: &Path, name: &str) -> Result<SigningKey, KeyFileError> {
        let bytes = fs::read(path).map_err(|source| KeyFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let key = match std::str::from_utf8(&bytes) {
            Ok(pem) if pem.trim_start().starts_with("-----BEGIN") => {
                SigningKey::from_pem(name, pem)
            }
            _ => SigningKey::from_pkcs8(name, &bytes),
        };
        key.map_err(|source| KeyFileError::Key {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_loads_back_with_the_same_verifier_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.key");
        let key = KeyFile::create(&path, "vault.example/log").expect("create");
        let loaded = KeyFile::load(&path, "vault.example/log").expect("load");
        assert_eq!(loaded.verifier_key(), key.verifier_key());
    }

    #[test]
    fn create_refuses_to_overwrite_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.key");
        KeyFile::create(&path, "a").expect("create");
        let before = fs::read(&path).expect("read");
        assert!(matches!(
            KeyFile::create(&path, "a"),
            Err(KeyFileError::Exists(_))
        ));
        assert_eq!(fs::read(&path).expect("read"), before);
    }

    #[test]
    fn load_rejects_a_file_that_is_not_a_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.key");
        fs::write(&path, "hello").expect("write");
        assert!(matches!(
            KeyFile::load(&path, "a"),
            Err(KeyFileError::Key { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn created_key_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.key");
        KeyFile::create(&path, "a").expect("create");
        let mode = fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o077, 0);
    }
}
