//! `evault audit`: verify a vault's audit trail, the second log of who did
//! what to the vault (`<origin>/audit`, `docs/audit.md`), check that its
//! `checkpoint.signed` records form one chain consistent with the log, and
//! print its events.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use evault_core::text::escape;
use evault_core::trail::{
    AuditRecord, CHECKPOINT_SIGNED, PinnedHead, audit_origin, audit_verifier_keys, format_utc_ms,
};
use evault_core::{
    Checkpoint, Hash, VerifierKey, audit_with_entries, empty_root, open_checkpoint,
    verify_consistency,
};
use evault_proto::v1::tree_service_client::TreeServiceClient;
use evault_proto::v1::{GetCheckpointRequest, GetConsistencyProofRequest};
use tonic::transport::Channel;

use crate::client::{ServerArgs, rpc_failure};
use crate::keys::TrustedKeys;
use crate::outcome::{Failure, Outcome, invalid, usage};
use crate::source::Source;

/// Verify the vault's audit trail and print its events.
///
/// The trail (`<server>/audit`) is audited as `fsck` audits a log: its
/// checkpoint's signature, every entry bundle, every hash tile, the root.
/// Every record must parse, and the `checkpoint.signed` records must form
/// one chain consistent with the log: sizes never decrease, one root per
/// size, consistency proofs (from the vault) between consecutive sizes and
/// from the last to the log's current checkpoint. Every record's `log` pin
/// must be a head of that chain or one the log's checkpoint extends.
/// Events are printed as the trail is read; the summary line comes only
/// when every check passed.
///
/// --vkey and --vkey-file name the log's keys (e.g. `evault up`'s
/// DATA_DIR/verifier-key), not the trail's: the trail's are derived from
/// them, the same key under the trail's name.
#[derive(Args, Debug)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    keys: TrustedKeys,
    /// Print one JSON object per event (the record plus its "index") and
    /// a JSON summary.
    #[arg(long, env = "EVAULT_JSON")]
    json: bool,
    /// An earlier checkpoint of the trail (note file, e.g. saved from
    /// `/audit/checkpoint`) it must extend; only later events are printed.
    #[arg(long, env = "EVAULT_SINCE", value_name = "CHECKPOINT")]
    since: Option<PathBuf>,
}

pub(crate) fn run(args: AuditArgs) -> Outcome {
    let keys = args.keys.load()?;
    let since = args
        .since
        .as_ref()
        .map(|path| {
            std::fs::read(path)
                .map(|bytes| (path, bytes))
                .map_err(|e| usage(format!("--since {}: {e}", path.display())))
        })
        .transpose()?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| usage(format!("runtime: {e}")))?;
    let mut tree = runtime.block_on(args.server.tree())?;

    // The log's checkpoint names the origin, and so the trail and its keys.
    let note = runtime
        .block_on(tree.get_checkpoint(GetCheckpointRequest {}))
        .map_err(|s| rpc_failure("checkpoint", &s))?
        .into_inner()
        .checkpoint
        .map(|c| c.note)
        .ok_or_else(|| usage("the vault sent no checkpoint"))?;
    let origin = open_checkpoint(&note, &keys, None)
        .map_err(|e| invalid(format!("the log's checkpoint: {e}")))?
        .checkpoint
        .origin;
    let trail_origin = audit_origin(&origin);
    let trail_keys = audit_verifier_keys(&origin, &keys)
        .map_err(|e| usage(format!("the trail's verifier keys: {e}")))?;
    let since_size = since
        .as_ref()
        .map(|(path, bytes)| {
            open_checkpoint(bytes, &trail_keys, Some(&trail_origin))
                .map(|signed| signed.checkpoint.size)
                .map_err(|e| invalid(format!("--since {}: {e}", path.display())))
        })
        .transpose()?
        .unwrap_or(0);

    let url = format!("{}/audit", args.server.server.trim_end_matches('/'));
    let mut source = Source::open(&url, &args.server.ca)?;
    let mut chain = Chain::new(
        VaultProofs {
            runtime: &runtime,
            tree: &mut tree,
        },
        keys,
        origin,
    );
    let mut printed = 0u64;
    // The failure behind a refused entry: the audit keeps only its
    // message, and a vault out of reach (exit 2) must not turn into a
    // verdict on the trail (exit 1).
    let mut refusal = None;
    let result = audit_with_entries(
        &mut source,
        &trail_keys,
        Some(&trail_origin),
        since.as_ref().map(|(_, bytes)| bytes.as_slice()),
        &mut |_, _| {},
        &mut |index, bytes| match chain.entry(index, bytes) {
            Ok(record) => {
                if index >= since_size {
                    println!("{}", event_line(index, &record, args.json));
                    printed += 1;
                }
                Ok(())
            }
            Err(failure) => {
                let message = match &failure {
                    Failure::Invalid(m) | Failure::Usage(m) => m.clone(),
                };
                refusal = Some(failure);
                Err(message)
            }
        },
    );
    let report = match result {
        Ok(report) => report,
        Err(e) => return Err(refusal.unwrap_or_else(|| source.failure(&url, e))),
    };
    let chained = chain.finish()?;

    let trail = &report.checkpoint;
    let last = chained.last.map_or(0, |l| l.size);
    if args.json {
        let head = |size: u64, root: &Hash| {
            format!(
                "{{\"size\":{size},\"root\":{}}}",
                crate::json::string(&root.to_base64())
            )
        };
        println!(
            "{{\"verified\":true,\"trail\":{{\"origin\":{},\"size\":{},\"root\":{}}},\
             \"since\":{},\"printed\":{printed},\"checkpoints\":{},\"chain\":{},\"log\":{}}}",
            crate::json::string(&trail.origin),
            trail.size,
            crate::json::string(&trail.root.to_base64()),
            report
                .previous
                .as_ref()
                .map_or("null".to_string(), |p| p.size.to_string()),
            chained.checkpoints,
            chained
                .last
                .map_or("null".to_string(), |l| head(l.size, &l.root)),
            head(chained.log.size, &chained.log.root),
        );
    } else {
        let extends = report
            .previous
            .as_ref()
            .map(|p| format!(", extends size {}", p.size))
            .unwrap_or_default();
        println!(
            "audit trail verified: {} at size {} ({}){extends}; {printed} events printed; \
             {} checkpoint.signed records chain up to size {last}, consistent with the log \
             at size {}",
            escape(&trail.origin),
            trail.size,
            trail.root.to_base64(),
            chained.checkpoints,
            chained.log.size
        );
    }
    Ok(())
}

/// One event as printed: `index time event principal members`, or with
/// `json` the record as the vault stores it with its `"index"` first.
/// Whatever the record holds is shown escaped (`evault_core::text`), so
/// no name or reason can pass for another or rewrite the terminal.
fn event_line(index: u64, record: &AuditRecord, json: bool) -> String {
    if json {
        // The record in its canonical form, which is the stored bytes of
        // every record the vault writes: printed from what was parsed, it
        // is exactly what was checked, on one line.
        let stored = String::from_utf8_lossy(&record.to_bytes()).into_owned();
        let members = stored.strip_prefix('{').unwrap_or(&stored);
        return crate::json::escape_forbidden(&format!("{{\"index\":{index},{members}"));
    }
    let mut line = format!(
        "{index} {} {} {}",
        format_utc_ms(record.time_ms),
        escape(&record.event),
        record.principal.as_deref().map_or("-".into(), escape)
    );
    for (name, value) in &record.fields {
        line.push(' ');
        line.push_str(&escape(name));
        line.push('=');
        line.push_str(&shown(value));
    }
    line
}

/// A member's value for people: JSON's shape, with strings quoted and
/// escaped as `evault_core::text` escapes them.
fn shown(value: &serde_json::Value) -> String {
    use serde_json::Value;
    let quoted = |s: &str| format!("\"{}\"", escape(s).replace('"', "\\\""));
    match value {
        Value::String(s) => quoted(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(shown).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(members) => {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}:{}", quoted(k), shown(v)))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        other => other.to_string(),
    }
}

/// What the chain check asks of the log.
pub(crate) trait LogProofs {
    /// The RFC 9162 consistency proof from the log's tree of `first`
    /// leaves to its published checkpoint of `second` leaves (0: the
    /// latest), and that checkpoint's note. The log refusing (it has no
    /// such checkpoint, or cannot prove it) is [`Failure::Invalid`].
    fn consistency(&mut self, first: u64, second: u64) -> Result<(Vec<Vec<u8>>, Vec<u8>), Failure>;
}

/// The vault's tree, over gRPC.
struct VaultProofs<'a> {
    runtime: &'a tokio::runtime::Runtime,
    tree: &'a mut TreeServiceClient<Channel>,
}

impl LogProofs for VaultProofs<'_> {
    fn consistency(&mut self, first: u64, second: u64) -> Result<(Vec<Vec<u8>>, Vec<u8>), Failure> {
        let response = self
            .runtime
            .block_on(self.tree.get_consistency_proof(GetConsistencyProofRequest {
                first_size: first,
                second_size: second,
            }))
            .map_err(|s| match s.code() {
                // What the log cannot prove is a verdict on the log; the
                // log out of reach is none.
                tonic::Code::NotFound | tonic::Code::InvalidArgument | tonic::Code::OutOfRange => {
                    invalid(format!(
                        "the log cannot prove size {first} consistent with {}: {}",
                        if second == 0 {
                            "its latest checkpoint".to_string()
                        } else {
                            format!("size {second}")
                        },
                        s.message()
                    ))
                }
                _ => rpc_failure("consistency", &s),
            })?
            .into_inner();
        let note = response.checkpoint.map(|c| c.note).unwrap_or_default();
        Ok((response.consistency_proof, note))
    }
}

/// A tree head of the log, and the trail entry that recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    size: u64,
    root: Hash,
    index: u64,
}

/// The chain's recent heads kept to match pins against at once. A pin
/// of an older head is checked against the log's checkpoint at the end,
/// so memory stays bounded however long the trail.
const RECENT: usize = 4096;

/// The check that the trail's `checkpoint.signed` records form one chain
/// consistent with the log, and that every record pins a head of it.
/// Records are fed in index order ([`Chain::record`]), then
/// [`Chain::finish`] compares the chain with the log's checkpoint.
pub(crate) struct Chain<L> {
    log: L,
    /// The log's trusted keys and origin, for its checkpoint.
    keys: Vec<VerifierKey>,
    origin: String,
    /// The latest head recorded.
    last: Option<Link>,
    /// Heads recorded, by size, the latest `window` of them.
    recent: BTreeMap<u64, Link>,
    window: usize,
    /// Pins not yet matched with a recorded head, and the first entry
    /// pinning each: matched when their size is recorded, or proven
    /// against the log's checkpoint at the end.
    pending: BTreeMap<(u64, Hash), u64>,
    /// The last pin matched: most records pin the same head as the one
    /// before.
    matched: Option<PinnedHead>,
    checkpoints: u64,
}

/// What a chain check established.
#[derive(Debug)]
pub(crate) struct Chained {
    /// `checkpoint.signed` records read.
    pub(crate) checkpoints: u64,
    /// The last head they record.
    pub(crate) last: Option<Link>,
    /// The log's checkpoint the chain was shown consistent with.
    pub(crate) log: Checkpoint,
}

impl<L: LogProofs> Chain<L> {
    /// A check of the trail of the log `origin`, whose trusted keys are
    /// `keys`, asking `log` for proofs.
    pub(crate) fn new(log: L, keys: Vec<VerifierKey>, origin: String) -> Self {
        Chain {
            log,
            keys,
            origin,
            last: None,
            recent: BTreeMap::new(),
            window: RECENT,
            pending: BTreeMap::new(),
            matched: None,
            checkpoints: 0,
        }
    }

    /// Parses and checks the trail's entry at `index`, the one after the
    /// last checked.
    pub(crate) fn entry(&mut self, index: u64, bytes: &[u8]) -> Result<AuditRecord, Failure> {
        let record =
            AuditRecord::parse(bytes).map_err(|e| invalid(format!("entry {index}: {e}")))?;
        self.record(index, &record)?;
        Ok(record)
    }

    /// Checks the record at `index`, the one after the last checked.
    pub(crate) fn record(&mut self, index: u64, record: &AuditRecord) -> Result<(), Failure> {
        if record.event == CHECKPOINT_SIGNED {
            let (size, root) = signed_head(record)
                .map_err(|why| invalid(format!("entry {index}: {CHECKPOINT_SIGNED} {why}")))?;
            self.link(Link { size, root, index })?;
        }
        self.pin(index, record.log)
    }

    fn link(&mut self, link: Link) -> Result<(), Failure> {
        let Link { size, root, index } = link;
        if size == 0 && root != empty_root() {
            return Err(invalid(format!(
                "entry {index}: {CHECKPOINT_SIGNED} of size 0 with root {}, not the empty tree's",
                root.to_base64()
            )));
        }
        self.checkpoints += 1;
        if let Some(last) = self.last {
            if size < last.size {
                return Err(invalid(format!(
                    "entry {index}: {CHECKPOINT_SIGNED} of size {size} after size {} at entry {}: \
                     the log shrank",
                    last.size, last.index
                )));
            }
            if size == last.size {
                if root != last.root {
                    return Err(invalid(format!(
                        "entry {index}: {CHECKPOINT_SIGNED} of size {size} with root {}, but \
                         entry {} has root {}: the log forked",
                        root.to_base64(),
                        last.index,
                        last.root.to_base64()
                    )));
                }
                return Ok(());
            }
            let claim = format!(
                "{CHECKPOINT_SIGNED} of size {size} does not extend size {} of entry {}",
                last.size, last.index
            );
            self.prove(index, (last.size, last.root), (size, root), &claim)?;
        }
        self.last = Some(link);
        self.recent.insert(size, link);
        if self.recent.len() > self.window {
            self.recent.pop_first();
        }
        // Pins of this head seen before it was recorded.
        let pinned: Vec<((u64, Hash), u64)> = self
            .pending
            .range((size, Hash([0; 32]))..=(size, Hash([0xff; 32])))
            .map(|(k, v)| (*k, *v))
            .collect();
        for ((_, pinned_root), pinned_at) in pinned {
            mismatch(pinned_at, size, &pinned_root, &link)?;
            self.pending.remove(&(size, pinned_root));
        }
        Ok(())
    }

    fn pin(&mut self, index: u64, pin: PinnedHead) -> Result<(), Failure> {
        if self.matched == Some(pin) {
            return Ok(());
        }
        if pin.size == 0 {
            if pin.root != empty_root() {
                return Err(invalid(format!(
                    "entry {index}: pins the log at size 0 with root {}, not the empty tree's",
                    pin.root.to_base64()
                )));
            }
        } else if let Some(link) = self.recent.get(&pin.size) {
            mismatch(index, pin.size, &pin.root, link)?;
        } else {
            self.pending.entry((pin.size, pin.root)).or_insert(index);
            return Ok(());
        }
        self.matched = Some(pin);
        Ok(())
    }

    /// Checks, with the proof the log gives, that its tree of `old.0`
    /// leaves with root `old.1` grows into its published checkpoint of
    /// `new.0` leaves with root `new.1`; on failure blames entry `index`,
    /// saying `claim`. Every tree extends the empty one.
    fn prove(
        &mut self,
        index: u64,
        old: (u64, Hash),
        new: (u64, Hash),
        claim: &str,
    ) -> Result<(), Failure> {
        if old.0 == 0 {
            return Ok(());
        }
        let (proof, _) = self
            .log
            .consistency(old.0, new.0)
            .map_err(|f| at_entry(index, f))?;
        verify_consistency(old.0, new.0, &proof, old.1.as_bytes(), new.1.as_bytes())
            .map_err(|e| invalid(format!("entry {index}: {claim}: {e}")))
    }

    /// Compares the chain with the log's latest checkpoint: the last head
    /// recorded must be consistent with it, and so must every pin not
    /// matched with a recorded head.
    pub(crate) fn finish(mut self) -> Result<Chained, Failure> {
        // The checkpoint first, then a proof to it: a log behind the chain
        // is told apart from one that cannot prove its history.
        let (_, note) = self.log.consistency(0, 0)?;
        let log = open_checkpoint(&note, &self.keys, Some(&self.origin))
            .map_err(|e| invalid(format!("the log's checkpoint: {e}")))?
            .checkpoint;
        if let Some(last) = self.last {
            if log.size < last.size {
                return Err(invalid(format!(
                    "entry {}: {CHECKPOINT_SIGNED} of size {}, but the log's checkpoint has \
                     size {}: the log shrank",
                    last.index, last.size, log.size
                )));
            }
            let claim = format!(
                "the log's checkpoint of size {} does not extend the last {CHECKPOINT_SIGNED}, \
                 of size {}",
                log.size, last.size
            );
            self.prove(
                last.index,
                (last.size, last.root),
                (log.size, log.root),
                &claim,
            )?;
        }
        for ((size, root), index) in std::mem::take(&mut self.pending) {
            if size > log.size {
                return Err(invalid(format!(
                    "entry {index}: pins the log at size {size}, beyond its checkpoint of size {}",
                    log.size
                )));
            }
            let claim = format!(
                "pins the log at size {size} with root {}, which its checkpoint of size {} does \
                 not extend",
                root.to_base64(),
                log.size
            );
            self.prove(index, (size, root), (log.size, log.root), &claim)?;
        }
        Ok(Chained {
            checkpoints: self.checkpoints,
            last: self.last,
            log,
        })
    }
}

/// A pin of `root` at `size` by entry `index`, against the recorded
/// head `link` of that size.
fn mismatch(index: u64, size: u64, root: &Hash, link: &Link) -> Result<(), Failure> {
    if *root == link.root {
        return Ok(());
    }
    Err(invalid(format!(
        "entry {index}: pins the log at size {size} with root {}, but entry {} records root {}",
        root.to_base64(),
        link.index,
        link.root.to_base64()
    )))
}

/// A refusal of the log, said of the entry it was asked for.
fn at_entry(index: u64, failure: Failure) -> Failure {
    match failure {
        Failure::Invalid(message) => invalid(format!("entry {index}: {message}")),
        usage @ Failure::Usage(_) => usage,
    }
}

/// The head a `checkpoint.signed` record reports: `size`, `root` (base64)
/// and `key_ids`, the signing keys' IDs (8 lowercase hex digits each).
fn signed_head(record: &AuditRecord) -> Result<(u64, Hash), &'static str> {
    let size = record
        .fields
        .get("size")
        .and_then(|s| s.as_u64())
        .ok_or("has no integer size")?;
    let root = record
        .fields
        .get("root")
        .and_then(|r| r.as_str())
        .and_then(Hash::from_base64)
        .ok_or("has no base64 32-byte root")?;
    let key_id = |id: &serde_json::Value| {
        id.as_str().is_some_and(|id| {
            id.len() == 8
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    };
    match record.fields.get("key_ids").and_then(|ids| ids.as_array()) {
        Some(ids) if !ids.is_empty() && ids.iter().all(key_id) => Ok((size, root)),
        _ => Err("has no key_ids: a non-empty list of 8-hex-digit key IDs"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use evault_core::tile::TileId;
    use evault_core::{SigningKey, TileReader, TreeReader, leaf_hash};
    use serde_json::json;

    use super::*;

    const ORIGIN: &str = "vault.example/chain";

    /// A log in memory, at most 256 entries (one tile), with checkpoints
    /// published at the sizes in `published`.
    struct MemoryLog {
        leaves: Vec<Hash>,
        published: BTreeSet<u64>,
        key: SigningKey,
    }

    impl TileReader for MemoryLog {
        type Error = String;
        fn read_tile(&mut self, tile: TileId) -> Result<Vec<u8>, String> {
            assert_eq!((tile.level, tile.index), (0, 0), "one tile");
            Ok(self.leaves[..usize::from(tile.width)]
                .iter()
                .flat_map(|h| h.0)
                .collect())
        }
    }

    impl MemoryLog {
        fn new(size: u64, published: &[u64], key: SigningKey) -> Self {
            MemoryLog {
                leaves: (0..size)
                    .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
                    .collect(),
                published: published.iter().copied().collect(),
                key,
            }
        }

        fn root(&mut self, size: u64) -> Hash {
            let len = self.leaves.len() as u64;
            TreeReader::new(len, self).root(size).expect("root")
        }
    }

    impl LogProofs for MemoryLog {
        fn consistency(
            &mut self,
            first: u64,
            second: u64,
        ) -> Result<(Vec<Vec<u8>>, Vec<u8>), Failure> {
            // As the vault's tree answers.
            let second = match second {
                0 => *self.published.last().expect("a checkpoint"),
                size if self.published.contains(&size) => size,
                size => return Err(invalid(format!("no checkpoint of size {size}"))),
            };
            if first > second {
                return Err(invalid(format!(
                    "first size {first} is larger than the second size {second}"
                )));
            }
            let proof = if first == 0 || first == second {
                Vec::new()
            } else {
                let len = self.leaves.len() as u64;
                TreeReader::new(len, self)
                    .consistency_proof(first, second)
                    .expect("proof")
                    .iter()
                    .map(|h| h.0.to_vec())
                    .collect()
            };
            let note = Checkpoint {
                origin: ORIGIN.into(),
                size: second,
                root: self.root(second),
                extensions: vec![],
            }
            .sign(&[&self.key])
            .expect("sign");
            Ok((proof, note))
        }
    }

    /// A log of `size` entries with checkpoints at the sizes `published`
    /// (the largest is its latest), a chain check of it, and the log's
    /// root at any size.
    fn log_of(size: u64, published: &[u64]) -> (Chain<MemoryLog>, impl Fn(u64) -> Hash) {
        let (key, _) = SigningKey::generate(ORIGIN).expect("key");
        let keys = vec![key.verifier_key().clone()];
        let mut log = MemoryLog::new(size, published, key);
        let table: Vec<Hash> = (0..=size).map(|s| log.root(s)).collect();
        (Chain::new(log, keys, ORIGIN.into()), move |s: u64| {
            table[s as usize]
        })
    }

    fn signed(size: u64, root: Hash, pin: PinnedHead) -> AuditRecord {
        AuditRecord {
            time_ms: 1_795_960_341_123,
            event: CHECKPOINT_SIGNED.into(),
            principal: None,
            log: pin,
            fields: [
                ("size".to_string(), json!(size)),
                ("root".to_string(), json!(root.to_base64())),
                ("key_ids".to_string(), json!(["0a0b0c0d"])),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn event(name: &str, pin: PinnedHead) -> AuditRecord {
        AuditRecord {
            time_ms: 1_795_960_341_124,
            event: name.into(),
            principal: Some("alice".into()),
            log: pin,
            fields: [("instance".to_string(), json!("tree-1"))]
                .into_iter()
                .collect(),
        }
    }

    fn head(size: u64, root: Hash) -> PinnedHead {
        PinnedHead { size, root }
    }

    fn refused(result: Result<impl std::fmt::Debug, Failure>) -> String {
        match result {
            Err(Failure::Invalid(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Feeds `records` in index order and finishes.
    fn check(chain: Chain<MemoryLog>, records: &[AuditRecord]) -> Result<Chained, Failure> {
        let mut chain = chain;
        for (index, record) in (0..).zip(records) {
            chain.record(index, record)?;
        }
        chain.finish()
    }

    #[test]
    fn a_chain_of_the_logs_checkpoints_passes() {
        let (chain, root) = log_of(40, &[3, 10, 25, 40]);
        let empty = head(0, empty_root());
        let records = [
            event("leader.acquired", empty),
            // Pinned before the record of that head.
            event("leader.acquired", head(25, root(25))),
            signed(3, root(3), head(3, root(3))),
            event("key.added", head(3, root(3))),
            // A lost record leaves a gap: 10 is not recorded.
            signed(25, root(25), head(25, root(25))),
            signed(25, root(25), head(25, root(25))),
            // A pin of a head the chain does not hold, which the log's
            // checkpoint extends.
            event("signer.refused", head(10, root(10))),
        ];
        let chained = check(chain, &records).expect("consistent");
        assert_eq!(chained.checkpoints, 3);
        // The head is the first record's that gave it.
        assert_eq!(chained.last.map(|l| (l.size, l.index)), Some((25, 4)));
        assert_eq!(chained.log.size, 40);
    }

    #[test]
    fn pins_of_heads_older_than_the_window_are_proven_against_the_log() {
        let (mut chain, root) = log_of(40, &[3, 10, 25, 40]);
        chain.window = 2;
        let records = [
            signed(3, root(3), head(3, root(3))),
            signed(10, root(10), head(10, root(10))),
            signed(25, root(25), head(25, root(25))),
            event("leader.acquired", head(3, root(3))),
        ];
        let chained = check(chain, &records).expect("consistent");
        assert_eq!(chained.checkpoints, 3);

        let (mut chain, root) = log_of(40, &[3, 10, 25, 40]);
        chain.window = 2;
        let wrong = leaf_hash(b"not the log's");
        let records = [
            signed(3, root(3), head(3, root(3))),
            signed(10, root(10), head(10, root(10))),
            signed(25, root(25), head(25, root(25))),
            event("leader.acquired", head(3, wrong)),
        ];
        let message = refused(check(chain, &records));
        assert!(
            message.starts_with(&format!(
                "entry 3: pins the log at size 3 with root {}, which its checkpoint of size 40 \
                 does not extend",
                wrong.to_base64()
            )),
            "{message}"
        );
    }

    #[test]
    fn a_fork_is_refused_at_the_record_that_shows_it() {
        let (chain, root) = log_of(40, &[3, 25, 40]);
        let forked = leaf_hash(b"another tree");
        let records = [
            signed(3, root(3), head(3, root(3))),
            signed(25, forked, head(25, forked)),
        ];
        let message = refused(check(chain, &records));
        assert!(
            message.starts_with(
                "entry 1: checkpoint.signed of size 25 does not extend size 3 of entry 0"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_shrinking_chain_is_refused() {
        let (chain, root) = log_of(40, &[3, 25, 40]);
        let records = [
            signed(25, root(25), head(25, root(25))),
            signed(3, root(3), head(3, root(3))),
        ];
        assert_eq!(
            refused(check(chain, &records)),
            "entry 1: checkpoint.signed of size 3 after size 25 at entry 0: the log shrank"
        );
    }

    #[test]
    fn a_second_root_for_a_size_is_refused() {
        let (chain, root) = log_of(40, &[25, 40]);
        let other = root(24);
        let records = [
            signed(25, root(25), head(25, root(25))),
            event("leader.acquired", head(25, root(25))),
            signed(25, other, head(25, root(25))),
        ];
        assert_eq!(
            refused(check(chain, &records)),
            format!(
                "entry 2: checkpoint.signed of size 25 with root {}, but entry 0 has root {}: \
                 the log forked",
                other.to_base64(),
                root(25).to_base64()
            )
        );
    }

    #[test]
    fn a_chain_the_logs_checkpoint_does_not_extend_is_refused() {
        // The trail records size 30, a tree the log (published up to 25)
        // does not hold.
        let (chain, root) = log_of(40, &[3, 25]);
        let records = [signed(30, root(30), head(30, root(30)))];
        assert_eq!(
            refused(check(chain, &records)),
            "entry 0: checkpoint.signed of size 30, but the log's checkpoint has size 25: \
             the log shrank"
        );
        let (chain, _) = log_of(40, &[3, 25, 40]);
        let wrong = leaf_hash(b"not the log's");
        let records = [signed(3, wrong, head(3, wrong))];
        let message = refused(check(chain, &records));
        assert!(
            message.starts_with("entry 0: the log's checkpoint of size 40 does not extend"),
            "{message}"
        );
    }

    #[test]
    fn pins_must_match_the_chain_or_the_log() {
        let (chain, root) = log_of(40, &[3, 25, 40]);
        let wrong = leaf_hash(b"not the log's");
        let records = [
            signed(3, root(3), head(3, root(3))),
            event("leader.acquired", head(3, wrong)),
        ];
        assert_eq!(
            refused(check(chain, &records)),
            format!(
                "entry 1: pins the log at size 3 with root {}, but entry 0 records root {}",
                wrong.to_base64(),
                root(3).to_base64()
            )
        );

        // Pinned before it is recorded.
        let (chain, root) = log_of(40, &[3, 25, 40]);
        let records = [
            event("leader.acquired", head(25, wrong)),
            signed(25, root(25), head(25, root(25))),
        ];
        assert!(refused(check(chain, &records)).starts_with("entry 0: pins the log at size 25"));

        // Never recorded: proven against the log's checkpoint.
        let (chain, _) = log_of(40, &[3, 25, 40]);
        let records = [event("leader.acquired", head(12, wrong))];
        let message = refused(check(chain, &records));
        assert!(
            message.starts_with(&format!(
                "entry 0: pins the log at size 12 with root {}, which its checkpoint of size 40 \
                 does not extend",
                wrong.to_base64()
            )),
            "{message}"
        );
        let (chain, root) = log_of(40, &[3, 25, 40]);
        let records = [event("leader.acquired", head(41, root(40)))];
        assert_eq!(
            refused(check(chain, &records)),
            "entry 0: pins the log at size 41, beyond its checkpoint of size 40"
        );
        let (chain, _) = log_of(40, &[40]);
        let records = [event("leader.acquired", head(0, wrong))];
        assert!(refused(check(chain, &records)).contains("not the empty tree's"));
    }

    #[test]
    fn a_checkpoint_signed_record_without_its_members_is_refused() {
        let (chain, root) = log_of(40, &[40]);
        let mut chain = chain;
        let pin = head(40, root(40));
        for (member, value, why) in [
            ("size", json!("40"), "has no integer size"),
            ("root", json!("AAAA"), "has no base64 32-byte root"),
            ("key_ids", json!([]), "has no key_ids"),
            ("key_ids", json!(["0A0B0C0D"]), "has no key_ids"),
        ] {
            let mut record = signed(40, root(40), pin);
            record.fields.insert(member.into(), value);
            let message = refused(chain.record(7, &record));
            assert!(
                message.starts_with(&format!("entry 7: checkpoint.signed {why}")),
                "{member}: {message}"
            );
        }
    }

    #[test]
    fn a_record_that_does_not_parse_fails_naming_its_index() {
        let (mut chain, root) = log_of(40, &[40]);
        let good = signed(40, root(40), head(40, root(40))).to_bytes();
        assert_eq!(
            chain.entry(3, &good).expect("a record"),
            AuditRecord::parse(&good).expect("parses")
        );
        for (bytes, why) in [
            (
                &b"{\"time\":\"yesterday\",\"event\":\"x\",\"principal\":null}"[..],
                "time is not RFC 3339 UTC with milliseconds",
            ),
            (
                &good[..good.len() - 1],
                "not JSON: EOF while parsing an object",
            ),
        ] {
            let message = refused(chain.entry(4, bytes));
            assert!(
                message.starts_with(&format!("entry 4: malformed audit record: {why}")),
                "{message}"
            );
        }
    }

    #[test]
    fn events_are_printed_escaped_one_per_line() {
        let root = leaf_hash(b"root");
        let mut record = event("signer.refused", head(5, root));
        record.principal = Some("mallory\u{202e}fdp.exe".into());
        record
            .fields
            .insert("reason".into(), json!("a \"quote\"\nand\u{1b}[2J"));
        let line = event_line(12, &record, false);
        assert_eq!(
            line,
            "12 2026-11-29T13:52:21.124Z signer.refused mallory\\u{202e}fdp.exe \
             instance=\"tree-1\" reason=\"a \\\"quote\\\"\\u{a}and\\u{1b}[2J\""
        );
        let anonymous = event_line(13, &event("leader.acquired", head(5, root)), false);
        assert!(anonymous.contains(" leader.acquired alice "), "{anonymous}");

        let json_line = event_line(12, &record, true);
        assert!(!json_line.contains('\n') && !json_line.contains('\u{202e}'));
        let value: serde_json::Value = serde_json::from_str(&json_line).expect("JSON");
        assert_eq!(value["index"], json!(12));
        assert_eq!(value["principal"], json!("mallory\u{202e}fdp.exe"));
        assert_eq!(value["reason"], json!("a \"quote\"\nand\u{1b}[2J"));
        assert_eq!(value["log"]["size"], json!(5));
        assert!(json_line.starts_with("{\"index\":12,\"time\":"));
    }
}
