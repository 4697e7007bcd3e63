//! C2SP tlog-checkpoint: the signed tree head.
//!
//! The note text is the origin line, the tree size in decimal, the root
//! hash in base64, then optional extension lines. A checkpoint is trusted
//! only when signed by a key whose name is its origin.

use crate::hash::Hash;
use crate::note::{Note, NoteError, NoteSigner, VerifierKey};
use crate::tile::parse_decimal;

/// A tree head: which log, how many entries, which root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin, its unique name.
    pub origin: String,
    /// Number of entries in the tree.
    pub size: u64,
    /// Root hash of the tree.
    pub root: Hash,
    /// Extension lines (without newlines), rarely used.
    pub extensions: Vec<String>,
}

/// Why a checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The note around it is malformed or its signatures fail.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The note text is not a checkpoint body.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The checkpoint is for another log than the one expected.
    #[error("checkpoint is for origin {found:?}, expected {expected:?}")]
    Origin {
        /// Origin in the checkpoint.
        found: String,
        /// Origin the caller expected.
        expected: String,
    },
    /// Trusted keys signed it, but none named after its origin.
    #[error("checkpoint for {origin:?} is not signed by a trusted key of that name")]
    NotSignedByLog {
        /// Origin in the checkpoint.
        origin: String,
    },
}

impl Checkpoint {
    /// Parses a checkpoint body (the note text).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("text does not end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(CheckpointError::Malformed("empty origin line"));
        }
        let size = lines
            .next()
            .and_then(parse_decimal)
            .ok_or(CheckpointError::Malformed(
                "tree size is not a decimal without leading zeros",
            ))?;
        let root = lines
            .next()
            .and_then(Hash::from_base64)
            .ok_or(CheckpointError::Malformed(
                "root is not a base64 SHA-256 hash",
            ))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(CheckpointError::Malformed("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }

    /// The checkpoint body, as signed.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for ext in &self.extensions {
            text.push_str(ext);
            text.push('\n');
        }
        text
    }

    /// Signs the checkpoint with every key in `keys`, in order.
    pub fn sign<K: NoteSigner + ?Sized>(&self, keys: &[&K]) -> Result<Vec<u8>, CheckpointError> {
        let mut note = Note::new(&self.to_text())?;
        for key in keys {
            note.sign(*key)?;
        }
        Ok(note.to_bytes())
    }
}

/// A checkpoint whose log signature has been verified.
#[derive(Clone, Debug)]
pub struct SignedCheckpoint {
    /// The tree head.
    pub checkpoint: Checkpoint,
    /// The note it came in, with all its signatures.
    pub note: Note,
}

/// Parses a checkpoint note and checks it is signed by a key in `keys`
/// named after its origin; with `origin`, also that it is that log's.
pub fn open_checkpoint(
    bytes: &[u8],
    keys: &[VerifierKey],
    origin: Option<&str>,
) -> Result<SignedCheckpoint, CheckpointError> {
    let note = Note::parse(bytes)?;
    let checkpoint = Checkpoint::parse(note.text())?;
    if let Some(expected) = origin {
        if checkpoint.origin != expected {
            return Err(CheckpointError::Origin {
                found: checkpoint.origin,
                expected: expected.to_string(),
            });
        }
    }
    let signers = note.verify(keys)?;
    if !signers.iter().any(|k| k.name() == checkpoint.origin) {
        return Err(CheckpointError::NotSignedByLog {
            origin: checkpoint.origin,
        });
    }
    Ok(SignedCheckpoint { checkpoint, note })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::SigningKey;

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "vault.example/log".into(),
            size: 7,
            root: crate::hash::leaf_hash(b"r"),
            extensions: vec![],
        }
    }

    #[test]
    fn body_round_trips() {
        let mut c = cp();
        c.extensions.push("ext".into());
        assert_eq!(Checkpoint::parse(&c.to_text()), Ok(c));
    }

    #[test]
    fn rejects_malformed_bodies() {
        let root = cp().root.to_base64();
        for text in [
            format!("o\n07\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("\n7\n{root}\n"),
            "o\n7\nAAAA\n".to_string(),
            format!("o\n7\n{root}"),
            format!("o\n7\n{root}\n\n"),
            "o\n7\n".to_string(),
        ] {
            assert!(Checkpoint::parse(&text).is_err(), "{text:?} accepted");
        }
    }

    #[test]
    fn checkpoint_signed_by_a_key_of_another_name_is_rejected() {
        let (other, _) = SigningKey::generate("someone.else").expect("key");
        let bytes = cp().sign(&[&other]).expect("sign");
        let keys = [other.verifier_key().clone()];
        assert!(matches!(
            open_checkpoint(&bytes, &keys, None),
            Err(CheckpointError::NotSignedByLog { .. })
        ));
    }

    #[test]
    fn checkpoint_of_another_origin_is_rejected() {
        let (key, _) = SigningKey::generate("vault.example/log").expect("key");
        let bytes = cp().sign(&[&key]).expect("sign");
        let keys = [key.verifier_key().clone()];
        assert!(open_checkpoint(&bytes, &keys, Some("vault.example/log")).is_ok());
        assert!(matches!(
            open_checkpoint(&bytes, &keys, Some("other")),
            Err(CheckpointError::Origin { .. })
        ));
    }
}
