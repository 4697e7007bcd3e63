//! The services behind the request targets, as the roles run them: a tree
//! (sequencer and reader on the embedded store) whose log holds
//! [`ENTRIES`] entries, sequenced in [`BATCHES`], a signer whose
//! record is the head of [`SIGNED_SIZE`] entries, and evidence custody
//! holding [`STORED_EVIDENCE`]. Built once per process, in a temporary
//! directory, on a runtime the targets block on.
//!
//! The request targets' seeds name these exact contents (origin, entries,
//! digests, heads): `request_seeds.py` writes them, and changes with them.

use std::sync::{Arc, LazyLock};

use evault_auth::{AuthLayer, JwtVerifier, LocalIssuer, Policy, Principal, Scope};
use evault_core::hash::sha256;
use evault_core::{EvidenceEntry, Hash, VerifierKey, leaf_hash};
use evault_ingest::EvidenceGrpc;
use evault_signer::{CheckpointSigner, SignRequest, SignerGrpc};
use evault_storage::embedded::EmbeddedStore;
use evault_storage::signer::{SIGNER_FILE, SignerFile};
use evault_storage::{EvidenceStore, TreeHead};
use evault_tree::{
    AuditEvent, AuditRecorder, LogReader, NewEntry, NotRecorded, Sequencer, TreeGrpc,
};
use tokio::runtime::Runtime;

use super::proof::mth;
use super::test_signing_key;

/// The log's origin.
pub const ORIGIN: &str = "vault.example/fuzz";
/// The principal every request is made as.
pub const PRINCIPAL: &str = "alice";
/// Entries in the log.
pub const ENTRIES: usize = 20;
/// The log's size after each batch sequenced. Each was published; the
/// store keeps the latest checkpoint (of all [`ENTRIES`]), and whether it
/// keeps the earlier ones is its choice.
pub const BATCHES: [usize; 3] = [1, 7, ENTRIES];
/// The size of the head the signer recorded last.
pub const SIGNED_SIZE: usize = 7;
/// The evidence custody holds (until a request erases it).
pub const STORED_EVIDENCE: [&[u8]; 2] = [&[0], &[1]];

type Store = EmbeddedStore;

/// Stands for the audit trail in front of evidence custody: takes every
/// event. What the trail accepts is the `audit_record` target's matter.
pub struct Recorder;

impl AuditRecorder for Recorder {
    async fn record(&self, _events: Vec<AuditEvent>) -> Result<(), NotRecorded> {
        Ok(())
    }
}

/// The running services and what they hold.
pub struct World {
    runtime: Runtime,
    /// Sequences, reads, and records audit events (without a trail).
    pub tree: TreeGrpc<Store, CheckpointSigner<SignerFile>>,
    /// A signer apart from the tree's, for the `signer` target.
    pub signer: SignerGrpc<SignerFile>,
    /// Evidence custody.
    pub evidence: EvidenceGrpc<Store, Recorder>,
    /// The log's verifier key, and the audit trail's.
    pub keys: Vec<VerifierKey>,
    /// The log's entries, in index order.
    pub entries: Vec<Vec<u8>>,
    /// Their leaf hashes.
    pub leaves: Vec<Hash>,
}

impl World {
    /// Runs `future` to completion on the services' runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The root of the log's first `size` entries.
    pub fn root(&self, size: u64) -> Option<Hash> {
        let size = usize::try_from(size).ok()?;
        self.leaves.get(..size).map(mth)
    }

    /// A request as the authentication layer hands it on.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .extensions_mut()
            .insert(Principal::new(PRINCIPAL, Scope::ALL));
        request
    }
}

/// Entry `i` of the log: evidence digests repeat every three entries, so
/// that a search finds several pages.
pub fn entry(i: usize) -> EvidenceEntry {
    EvidenceEntry {
        digest: sha256(&[(i % 3) as u8]),
        size: 1,
        received_ms: 1_700_000_000_000 + i as u64,
        media_type: "text/plain".into(),
        name: Some(format!("item-{i}")),
        principal: PRINCIPAL.into(),
        labels: Default::default(),
    }
}

fn signer(dir: &std::path::Path, name: &str) -> CheckpointSigner<SignerFile> {
    let key = test_signing_key(ORIGIN).expect("the origin is a valid key name");
    let path = dir.join(name);
    std::fs::create_dir_all(&path).expect("signer directory");
    let store = SignerFile::open(&path.join(SIGNER_FILE)).expect("signer file");
    CheckpointSigner::new(ORIGIN, vec![Box::new(key)], store).expect("signer")
}

/// The services, started on first use.
pub fn world() -> &'static World {
    static WORLD: LazyLock<World> = LazyLock::new(start);
    &WORLD
}

fn start() -> World {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path();
    let entries: Vec<Vec<u8>> = (0..ENTRIES)
        .map(|i| entry(i).encode().expect("entry encodes"))
        .collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let (tree, signer, evidence) = runtime.block_on(async {
        let store = EmbeddedStore::open(&root.join("log")).expect("store");
        let sequencer = Sequencer::open(ORIGIN, store.clone(), signer(root, "tree-signer"))
            .await
            .expect("sequencer");
        let mut from = 0;
        for to in BATCHES {
            let batch: Vec<NewEntry> = (from..to)
                .map(|i| NewEntry {
                    entry: entries[i].clone(),
                    dedup_key: entry(i).dedup_key().expect("dedup key"),
                })
                .collect();
            sequencer.sequence(&batch).await.expect("batch sequenced");
            from = to;
        }
        let tree = TreeGrpc::new(sequencer, LogReader::new(ORIGIN, store.clone()));

        let checkpoints = signer(root, "signer");
        let head = TreeHead {
            size: SIGNED_SIZE as u64,
            root: mth(&leaves[..SIGNED_SIZE]),
        };
        let first = SignRequest {
            origin: ORIGIN.into(),
            old: TreeHead::empty(),
            new: head,
            proof: Vec::new(),
        };
        checkpoints.sign(&first).await.expect("first head signed");

        for content in STORED_EVIDENCE {
            store
                .put_evidence(sha256(content), content)
                .await
                .expect("evidence stored");
        }
        let issuer = root.join("issuer");
        LocalIssuer::open_or_create(&issuer).expect("issuer");
        let verifier = JwtVerifier::start(LocalIssuer::config(&issuer))
            .await
            .expect("verifier");
        let auth = AuthLayer::new(verifier, Policy::new(true));
        let evidence = EvidenceGrpc::new(auth, store, Arc::new(Recorder));
        (tree, SignerGrpc::new(checkpoints), evidence)
    });
    // The stores keep their files open and nothing opens one again, so the
    // directory can go now: the world is a static, never dropped, and
    // would otherwise leave a directory behind after every run.
    drop(dir);
    let key = test_signing_key(ORIGIN).expect("the origin is a valid key name");
    let audit = evault_core::trail::audit_origin(ORIGIN);
    let audit_key = test_signing_key(&audit).expect("the audit origin is a valid key name");
    World {
        runtime,
        tree,
        signer,
        evidence,
        keys: vec![key.verifier_key().clone(), audit_key.verifier_key().clone()],
        entries,
        leaves,
    }
}
