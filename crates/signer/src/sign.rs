//! Signing a checkpoint only when it extends the last one signed.

use std::sync::Arc;

use evault_core::trail::audit_origin;
use evault_core::{Checkpoint, Hash, NoteSigner, VerifierKey, verify_consistency};
use evault_storage::{SignedHead, SignerStore, StorageError, TreeHead};
use tracing::Instrument as _;

/// A request to sign the checkpoint of `new`.
#[derive(Clone, Debug)]
pub struct SignRequest {
    /// The log.
    pub origin: String,
    /// The head the caller believes was signed last (the empty head if none).
    pub old: TreeHead,
    /// The head to sign.
    pub new: TreeHead,
    /// Consistency proof from `old` to `new`.
    pub proof: Vec<Hash>,
}

/// Why a checkpoint was not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The signer holds no key for this origin.
    #[error("no signing key for origin {0:?}")]
    UnknownOrigin(String),
    /// The caller's idea of the last signed head is not the signer's.
    #[error("the last head signed for {origin:?} has size {recorded}, not {claimed}")]
    StaleHead {
        /// The log.
        origin: String,
        /// Size the signer recorded.
        recorded: u64,
        /// Size the caller claimed.
        claimed: u64,
    },
    /// The new head is smaller than the last one signed.
    #[error("refusing a rollback of {origin:?} from size {recorded} to {requested}")]
    Rollback {
        /// The log.
        origin: String,
        /// Size last signed.
        recorded: u64,
        /// Size asked for.
        requested: u64,
    },
    /// The new head does not extend the last one signed.
    #[error(
        "refusing a fork of {origin:?}: size {requested} does not extend the signed size {recorded}: {reason}"
    )]
    Fork {
        /// The log.
        origin: String,
        /// Size last signed.
        recorded: u64,
        /// Size asked for.
        requested: u64,
        /// Why the proof failed.
        reason: String,
    },
    /// Another signer replica recorded a head first; nothing was signed.
    #[error("another signer advanced {0:?} concurrently; retry")]
    Raced(String),
    /// The signer's storage failed; nothing was signed.
    #[error("signer storage: {0}")]
    Storage(StorageError),
    /// A signing key failed (a token unreachable, a session that could not
    /// be reopened); nothing was signed or recorded.
    #[error("signing key failed: {0}")]
    Key(String),
}

/// One key the signer holds: in memory ([`evault_core::SigningKey`], from
/// a key file) or in a token ([`crate::TokenKey`]).
pub type LogKey = Box<dyn NoteSigner>;

/// Signs checkpoints for one origin with one or more keys, remembering
/// what it signed.
pub struct CheckpointSigner<S> {
    origin: String,
    /// The keys, under the log's name.
    keys: Arc<[Arc<dyn NoteSigner>]>,
    /// The same keys under the audit trail's name
    /// ([`evault_core::trail::audit_origin`]).
    audit_origin: String,
    audit_keys: Arc<[Arc<dyn NoteSigner>]>,
    store: S,
    /// Times every signature request.
    metrics: &'static evault_metrics::SignerMetrics,
}

/// A key signing under another name: the log's keys sign its audit trail
/// under the trail's origin, so one set of keys vouches for both logs and
/// a rotation rotates both.
struct Renamed {
    key: Arc<dyn NoteSigner>,
    verifier: VerifierKey,
}

impl NoteSigner for Renamed {
    fn verifier_key(&self) -> &VerifierKey {
        &self.verifier
    }

    fn sign_text(&self, text: &[u8]) -> Result<Vec<u8>, String> {
        self.key.sign_text(text)
    }
}

impl<S: SignerStore> CheckpointSigner<S> {
    /// A signer for `origin`. Every key must be named after the origin
    /// (the checkpoint's first line), and no key may be given twice. Every
    /// key signs every checkpoint, in the order given: during a rotation
    /// the note carries the old key's line and the new one's.
    pub fn new(origin: &str, keys: Vec<LogKey>, store: S) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("a signer needs at least one key".into());
        }
        for (i, key) in keys.iter().enumerate() {
            let verifier = key.verifier_key();
            if verifier.name() != origin {
                return Err(format!(
                    "key {verifier} is not named after origin {origin:?}"
                ));
            }
            if keys[..i]
                .iter()
                .any(|k| k.verifier_key().key_id() == verifier.key_id())
            {
                return Err(format!("key {verifier} is given twice"));
            }
        }
        let keys: Vec<Arc<dyn NoteSigner>> = keys.into_iter().map(Arc::from).collect();
        let audit_origin = audit_origin(origin);
        let audit_keys = keys
            .iter()
            .map(|key| {
                let verifier =
                    VerifierKey::from_public_key(&audit_origin, *key.verifier_key().public_key())
                        .map_err(|e| format!("audit trail origin {audit_origin:?}: {e}"))?;
                Ok(Arc::new(Renamed {
                    key: Arc::clone(key),
                    verifier,
                }) as Arc<dyn NoteSigner>)
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(CheckpointSigner {
            origin: origin.to_string(),
            keys: keys.into(),
            audit_origin,
            audit_keys: audit_keys.into(),
            store,
            // Registered now: a scrape shows the signer's metrics before
            // its first signature.
            metrics: evault_metrics::signer(),
        })
    }

    /// The origin of the log this signer signs for (it also signs the
    /// log's audit trail).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The keys signing `origin`'s checkpoints: the log's or its audit
    /// trail's.
    fn keys_for(&self, origin: &str) -> Result<&Arc<[Arc<dyn NoteSigner>]>, SignError> {
        if origin == self.origin {
            Ok(&self.keys)
        } else if origin == self.audit_origin {
            Ok(&self.audit_keys)
        } else {
            Err(SignError::UnknownOrigin(origin.to_string()))
        }
    }

    /// The last head signed for `origin` and the checkpoint signed for it,
    /// from the signer's own record; `None` if it never signed for it.
    /// Tree compares it with the log's storage before sequencing, so that
    /// storage rolled back behind it is never built on.
    pub async fn latest(&self, origin: &str) -> Result<Option<SignedHead>, SignError> {
        self.keys_for(origin)?;
        self.store
            .last_signed(origin)
            .await
            .map_err(SignError::Storage)
    }

    /// The verifier keys of the log's signing keys, in signature-line
    /// order.
    pub fn verifier_keys(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.verifier_key().to_string())
            .collect()
    }

    /// The verifier keys signing `origin`'s checkpoints (the log's or its
    /// audit trail's), in signature-line order.
    pub fn verifier_keys_for(&self, origin: &str) -> Result<Vec<String>, SignError> {
        Ok(self
            .keys_for(origin)?
            .iter()
            .map(|k| k.verifier_key().to_string())
            .collect())
    }

    /// Signs the checkpoint of `request.new` if it extends the last head
    /// signed, records it durably, and returns the note. A repeated request
    /// for the head signed last returns the same note. Traced as a `sign`
    /// span.
    pub async fn sign(&self, request: &SignRequest) -> Result<Vec<u8>, SignError> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "sign",
            evault.role = "signer",
            evault.log = %request.origin,
            evault.tree.size = request.new.size,
        );
        let signed = self.sign_recorded(request).instrument(span).await;
        self.metrics.signing_took(started.elapsed());
        signed
    }

    /// [`CheckpointSigner::sign`], untimed.
    async fn sign_recorded(&self, request: &SignRequest) -> Result<Vec<u8>, SignError> {
        let origin = &request.origin;
        let keys = Arc::clone(self.keys_for(origin)?);
        let last = self
            .store
            .last_signed(origin)
            .await
            .map_err(SignError::Storage)?;
        let recorded = last.as_ref().map_or_else(TreeHead::empty, |s| s.head);
        if let Some(last) = &last {
            if last.head == request.new {
                return Ok(last.checkpoint.clone());
            }
        }
        if request.new.size < recorded.size {
            return Err(refuse(SignError::Rollback {
                origin: origin.clone(),
                recorded: recorded.size,
                requested: request.new.size,
            }));
        }
        if request.old != recorded {
            return Err(refuse(SignError::StaleHead {
                origin: origin.clone(),
                recorded: recorded.size,
                claimed: request.old.size,
            }));
        }
        // From the empty tree every tree is an extension; otherwise the
        // proof must lead from the recorded root to the new one.
        if recorded.size > 0 {
            verify_consistency(
                recorded.size,
                request.new.size,
                &request.proof,
                recorded.root.as_bytes(),
                request.new.root.as_bytes(),
            )
            .map_err(|e| {
                refuse(SignError::Fork {
                    origin: origin.clone(),
                    recorded: recorded.size,
                    requested: request.new.size,
                    reason: e.to_string(),
                })
            })?;
        } else if request.new.size == 0 && request.new.root != recorded.root {
            return Err(refuse(SignError::Fork {
                origin: origin.clone(),
                recorded: 0,
                requested: 0,
                reason: "the empty tree has one root".into(),
            }));
        }

        let checkpoint = Checkpoint {
            origin: origin.clone(),
            size: request.new.size,
            root: request.new.root,
            extensions: vec![],
        };
        // A token's C_Sign blocks, for as long as the HSM takes to answer.
        let checkpoint = tokio::task::spawn_blocking(move || {
            let keys: Vec<&dyn NoteSigner> = keys.iter().map(|k| k.as_ref()).collect();
            checkpoint.sign(&keys)
        })
        .await
        .map_err(|e| SignError::Key(format!("signing task failed: {e}")))?
        .map_err(|e| refuse_key(SignError::Key(e.to_string())))?;
        let signed = SignedHead {
            head: request.new,
            checkpoint,
        };
        // Recorded before it is returned: a signature that was never
        // recorded could not be checked against the next request.
        match self
            .store
            .record_signed(origin, last.map(|s| s.head), &signed)
            .await
        {
            Ok(()) => Ok(signed.checkpoint),
            Err(StorageError::HeadMoved { .. }) => {
                // Another replica recorded first. If it recorded this very
                // head (two trees, or a retry, asking at once), its note is
                // the answer, as for any repeated request; anything else
                // is a race to retry.
                let now = self
                    .store
                    .last_signed(origin)
                    .await
                    .map_err(SignError::Storage)?;
                match now {
                    Some(now) if now.head == request.new => Ok(now.checkpoint),
                    _ => Err(SignError::Raced(origin.clone())),
                }
            }
            Err(e) => Err(SignError::Storage(e)),
        }
    }
}

/// Logs a key's failure: the log cannot grow until the key signs again.
fn refuse_key(error: SignError) -> SignError {
    tracing::error!(%error, "a signing key failed");
    error
}

/// Logs a refusal: every one is either a bug in tree or an attack.
fn refuse(error: SignError) -> SignError {
    tracing::error!(%error, "signer refused to sign a checkpoint");
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use evault_core::SigningKey;
    use evault_core::{
        Integrator, TileId, TileReader, TreeReader, VerifierKey, leaf_hash, open_checkpoint,
    };
    use evault_storage::signer::{SIGNER_FILE, SignerFile};
    use std::collections::HashMap;

    const ORIGIN: &str = "vault.example/signer-test";

    /// A log grown in memory, to ask for real consistency proofs.
    #[derive(Default)]
    struct Log {
        tree: Integrator,
        tiles: HashMap<(u8, u64), Vec<u8>>,
    }

    impl TileReader for Log {
        type Error = String;
        fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
            let bytes = self.tiles.get(&(tile.level, tile.index)).ok_or("missing")?;
            Ok(bytes[..usize::from(tile.width) * 32].to_vec())
        }
    }

    impl Log {
        fn grow(&mut self, n: u64, tag: &str) -> TreeHead {
            let start = self.tree.size();
            let written = self
                .tree
                .integrate((start..start + n).map(|i| leaf_hash(format!("{tag} {i}").as_bytes())));
            for (t, b) in written {
                self.tiles.insert((t.level, t.index), b);
            }
            self.head()
        }
        fn head(&self) -> TreeHead {
            TreeHead {
                size: self.tree.size(),
                root: self.tree.root(),
            }
        }
        fn request(&mut self, old: TreeHead) -> SignRequest {
            let new = self.head();
            let proof = if old.size == 0 || old.size == new.size {
                vec![]
            } else {
                TreeReader::new(new.size, self)
                    .consistency_proof(old.size, new.size)
                    .expect("proof")
            };
            SignRequest {
                origin: ORIGIN.into(),
                old,
                new,
                proof,
            }
        }
    }

    /// A signer's record that another replica writes first, once: it
    /// records the same head just before this replica does.
    struct Raced {
        inner: SignerFile,
        racer: std::sync::atomic::AtomicBool,
    }

    impl SignerStore for Raced {
        async fn last_signed(&self, origin: &str) -> Result<Option<SignedHead>, StorageError> {
            self.inner.last_signed(origin).await
        }

        async fn record_signed(
            &self,
            origin: &str,
            previous: Option<TreeHead>,
            signed: &SignedHead,
        ) -> Result<(), StorageError> {
            if !self.racer.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let theirs = SignedHead {
                    head: signed.head,
                    checkpoint: b"the other replica's note".to_vec(),
                };
                self.inner.record_signed(origin, previous, &theirs).await?;
            }
            self.inner.record_signed(origin, previous, signed).await
        }
    }

    #[tokio::test]
    async fn a_sign_raced_for_the_same_head_answers_the_recorded_note() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, _) = SigningKey::generate(ORIGIN).expect("key");
        let store = Raced {
            inner: SignerFile::open(&dir.path().join(SIGNER_FILE)).expect("store"),
            racer: std::sync::atomic::AtomicBool::new(false),
        };
        let signer = CheckpointSigner::new(ORIGIN, vec![Box::new(key)], store).expect("signer");
        let mut log = Log::default();
        log.grow(3, "race");
        let note = signer
            .sign(&log.request(TreeHead::empty()))
            .await
            .expect("the head was signed, by the other replica");
        assert_eq!(note, b"the other replica's note");
    }

    fn signer(dir: &std::path::Path) -> CheckpointSigner<SignerFile> {
        let (key, _) = SigningKey::generate(ORIGIN).expect("key");
        let store = SignerFile::open(&dir.join(SIGNER_FILE)).expect("store");
        CheckpointSigner::new(ORIGIN, vec![Box::new(key)], store).expect("signer")
    }

    #[tokio::test]
    async fn signs_a_growing_log_and_each_checkpoint_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signer = signer(dir.path());
        let keys = [VerifierKey::parse(&signer.verifier_keys()[0]).expect("vkey")];
        let mut log = Log::default();
        let mut last = TreeHead::empty();
        for n in [1, 5, 300, 2] {
            log.grow(n, "ok");
            let note = signer.sign(&log.request(last)).await.expect("sign");
            let cp = open_checkpoint(&note, &keys, Some(ORIGIN))
                .expect("verifies")
                .checkpoint;
            assert_eq!((cp.size, cp.root), (log.head().size, log.head().root));
            last = log.head();
        }
    }

    #[tokio::test]
    async fn signer_refuses_rollback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signer = signer(dir.path());
        let mut log = Log::default();
        let small = log.grow(4, "r");
        signer
            .sign(&log.request(TreeHead::empty()))
            .await
            .expect("sign 4");
        let big = log.grow(4, "r");
        signer.sign(&log.request(small)).await.expect("sign 8");
        let rollback = SignRequest {
            origin: ORIGIN.into(),
            old: big,
            new: small,
            proof: vec![],
        };
        assert!(matches!(
            signer.sign(&rollback).await,
            Err(SignError::Rollback {
                recorded: 8,
                requested: 4,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn signer_refuses_a_fork() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signer = signer(dir.path());
        let mut honest = Log::default();
        let signed = honest.grow(10, "honest");
        signer
            .sign(&honest.request(TreeHead::empty()))
            .await
            .expect("sign");
        // Same size, other history.
        let mut forked = Log::default();
        forked.grow(10, "forked");
        let same_size = SignRequest {
            origin: ORIGIN.into(),
            old: signed,
            new: forked.head(),
            proof: vec![],
        };
        assert!(matches!(
            signer.sign(&same_size).await,
            Err(SignError::Fork { .. })
        ));
        // Larger, with a proof from the forked history's own old head.
        let forked_old = forked.head();
        forked.grow(5, "forked");
        let mut request = forked.request(forked_old);
        request.old = signed;
        assert!(matches!(
            signer.sign(&request).await,
            Err(SignError::Fork { .. })
        ));
        // The honest log still extends.
        honest.grow(5, "honest");
        signer
            .sign(&honest.request(signed))
            .await
            .expect("honest growth");
    }

    #[tokio::test]
    async fn signer_refuses_a_stale_old_head_and_repeats_the_last_signature() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signer = signer(dir.path());
        let mut log = Log::default();
        let first = log.grow(3, "s");
        let note = signer
            .sign(&log.request(TreeHead::empty()))
            .await
            .expect("sign");
        assert_eq!(
            signer
                .sign(&log.request(TreeHead::empty()))
                .await
                .expect("retry"),
            note
        );
        log.grow(3, "s");
        let stale = log.request(TreeHead::empty());
        assert!(matches!(
            signer.sign(&stale).await,
            Err(SignError::StaleHead {
                recorded: 3,
                claimed: 0,
                ..
            })
        ));
        signer
            .sign(&log.request(first))
            .await
            .expect("from the right head");
    }

    #[tokio::test]
    async fn signer_remembers_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::default();
        let head = log.grow(7, "m");
        {
            let signer = signer(dir.path());
            signer
                .sign(&log.request(TreeHead::empty()))
                .await
                .expect("sign");
        }
        let signer = signer(dir.path());
        let mut forked = Log::default();
        forked.grow(9, "other");
        let request = forked.request(TreeHead::empty());
        assert!(matches!(
            signer.sign(&request).await,
            Err(SignError::StaleHead { recorded: 7, .. })
        ));
        log.grow(1, "m");
        signer.sign(&log.request(head)).await.expect("extends");
    }

    /// Log output captured in memory.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_refusal_is_logged_as_an_error() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let dir = tempfile::tempdir().expect("tempdir");
        let signer = signer(dir.path());
        let mut log = Log::default();
        let head = log.grow(4, "l");
        signer
            .sign(&log.request(TreeHead::empty()))
            .await
            .expect("sign");
        let rollback = SignRequest {
            origin: ORIGIN.into(),
            old: head,
            new: TreeHead::empty(),
            proof: vec![],
        };
        // Tests on other threads reach the same call site with no
        // subscriber of theirs: if one registered it while this test's
        // subscriber was being set, tracing cached "nobody listens" for it.
        // Once the call site is registered, the cache is rebuilt with every
        // subscriber there is, and the refusal asked for again.
        assert!(signer.sign(&rollback).await.is_err());
        tracing::callsite::rebuild_interest_cache();
        captured.0.lock().expect("log").clear();
        assert!(signer.sign(&rollback).await.is_err());
        let text = String::from_utf8(captured.0.lock().expect("log").clone()).expect("utf-8");
        assert!(text.contains("ERROR"), "{text}");
        assert!(text.contains("refusing a rollback"), "{text}");
    }

    #[tokio::test]
    async fn unknown_origin_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let signer = signer(dir.path());
        let request = SignRequest {
            origin: "other.example/log".into(),
            old: TreeHead::empty(),
            new: TreeHead::empty(),
            proof: vec![],
        };
        assert!(matches!(
            signer.sign(&request).await,
            Err(SignError::UnknownOrigin(_))
        ));
    }
}
