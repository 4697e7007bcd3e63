//! The batcher: gathers entries from every caller and hands them to tree
//! in batches, flushing when a batch is full or its oldest entry has waited
//! long enough; then answers each caller with its own receipt.
//!
//! Its queue is bounded: when it is full, a caller is told so at once
//! (`RESOURCE_EXHAUSTED` with retry advice) rather than left waiting.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use evault_proto::v1::sequencer_service_client::SequencerServiceClient;
use evault_proto::v1::{Receipt, SequenceEntry, SequenceRequest, SequenceResponse};
use evault_storage::LogStore;
use evault_tree::{NewEntry, Publisher, Sequenced, SequencedBatch, Sequencer, sequence_status};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use tonic::transport::Channel;

/// Whoever sequences batches: the tree in this process or a remote one.
pub trait SequenceBatch: Send + Sync + 'static {
    /// Sequences `batch` and answers for each entry, in order.
    fn sequence(
        &self,
        batch: Vec<NewEntry>,
    ) -> impl Future<Output = Result<SequencedBatch, Status>> + Send;
}

impl<S: LogStore, P: Publisher> SequenceBatch for Sequencer<S, P> {
    async fn sequence(&self, batch: Vec<NewEntry>) -> Result<SequencedBatch, Status> {
        Sequencer::sequence(self, &batch)
            .await
            .map_err(sequence_status)
    }
}

/// How long ingest waits for some tree to be the active sequencer before
/// failing a batch: long enough for a standby to take over.
pub const FAILOVER_WINDOW: Duration = Duration::from_secs(10);
const FAILOVER_PAUSE: Duration = Duration::from_millis(200);

/// Trees reached over gRPC: the active sequencer and its standbys. Calls
/// go to the one that answered last; when it is unavailable (gone, or a
/// standby), the next is tried.
pub struct RemoteTree {
    origin: String,
    clients: Vec<SequencerServiceClient<Channel>>,
    current: AtomicUsize,
}

impl RemoteTree {
    /// The trees at `endpoints` sequencing `origin`, connected lazily.
    pub fn new(endpoints: &[String], origin: &str) -> Result<Self, String> {
        if endpoints.is_empty() {
            return Err("no tree address".into());
        }
        let clients = endpoints
            .iter()
            .map(|endpoint| {
                let channel = Channel::from_shared(endpoint.clone())
                    .map_err(|e| format!("tree address {endpoint:?}: {e}"))?
                    .connect_lazy();
                Ok(SequencerServiceClient::new(channel)
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20))
            })
            .collect::<Result<_, String>>()?;
        Ok(RemoteTree {
            origin: origin.to_string(),
            clients,
            current: AtomicUsize::new(0),
        })
    }

    /// Sends `request` to the active tree. While none is (a standby is
    /// taking over, or all are starting), keeps trying for
    /// [`FAILOVER_WINDOW`]: retrying is safe, since tree drops entries whose
    /// dedup key is already logged.
    async fn call(&self, request: SequenceRequest) -> Result<SequenceResponse, Status> {
        let deadline = tokio::time::Instant::now() + FAILOVER_WINDOW;
        loop {
            let start = self.current.load(Ordering::Relaxed);
            let mut last = Status::unavailable("no tree answered");
            for offset in 0..self.clients.len() {
                let at = (start + offset) % self.clients.len();
                match self.clients[at].clone().sequence(request.clone()).await {
                    Ok(response) => {
                        self.current.store(at, Ordering::Relaxed);
                        return Ok(response.into_inner());
                    }
                    Err(status) if status.code() == tonic::Code::Unavailable => last = status,
                    Err(status) => return Err(status),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(last);
            }
            tokio::time::sleep(FAILOVER_PAUSE).await;
        }
    }
}

impl SequenceBatch for RemoteTree {
    async fn sequence(&self, batch: Vec<NewEntry>) -> Result<SequencedBatch, Status> {
        let request = SequenceRequest {
            origin: self.origin.clone(),
            entries: batch
                .into_iter()
                .map(|e| SequenceEntry {
                    entry: e.entry,
                    dedup_key: e.dedup_key.to_vec(),
                })
                .collect(),
        };
        let response = self.call(request).await?;
        let entries = response
            .entries
            .into_iter()
            .map(|e| {
                let proof = e
                    .inclusion_proof
                    .iter()
                    .map(|h| evault_core::Hash::from_slice(h))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        Status::internal("tree sent a proof hash that is not 32 bytes")
                    })?;
                Ok(Sequenced {
                    index: e.index,
                    duplicate: e.duplicate,
                    entry: e.entry,
                    proof,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let size = evault_core::Note::parse(&response.checkpoint)
            .ok()
            .and_then(|n| evault_core::Checkpoint::parse(n.text()).ok())
            .map(|c| c.size)
            .ok_or_else(|| Status::internal("tree sent a malformed checkpoint"))?;
        Ok(SequencedBatch {
            checkpoint: response.checkpoint,
            size,
            entries,
        })
    }
}

/// How the batcher batches.
#[derive(Clone, Copy, Debug)]
pub struct BatchConfig {
    /// Flush when this many entries wait.
    pub max_batch: usize,
    /// Flush when the oldest waiting entry has waited this long.
    pub max_age: Duration,
    /// Entries that may wait in all; beyond, callers are pushed back.
    pub backlog: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 4096,
            max_age: Duration::from_millis(5),
            backlog: 65_536,
        }
    }
}

/// A receipt and whether it is a duplicate's.
pub type Answer = Result<(Receipt, bool), Status>;

struct Waiting {
    entry: NewEntry,
    reply: oneshot::Sender<Answer>,
}

/// A handle to the batcher task; cloning it shares the queue.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Waiting>,
}

/// How long a pushed-back caller should wait before retrying.
pub const PUSHBACK: Duration = Duration::from_millis(100);

impl Batcher {
    /// Starts the batcher task feeding `tree`.
    pub fn start<T: SequenceBatch>(tree: Arc<T>, config: BatchConfig) -> Self {
        let (queue, waiting) = mpsc::channel(config.backlog.max(1));
        tokio::spawn(run(tree, config, waiting));
        Batcher { queue }
    }

    /// Queues `entry`; the receiver gets its receipt once it is durable and
    /// signed. Fails at once with `RESOURCE_EXHAUSTED` when the backlog is
    /// full.
    pub fn submit(&self, entry: NewEntry) -> Result<oneshot::Receiver<Answer>, Status> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Waiting { entry, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => pushback(),
                mpsc::error::TrySendError::Closed(_) => {
                    Status::unavailable("ingest is shutting down")
                }
            })?;
        Ok(answer)
    }
}

/// `RESOURCE_EXHAUSTED` with the gRPC retry-pushback advice.
pub fn pushback() -> Status {
    let mut status = Status::resource_exhausted(format!(
        "the append backlog is full; retry in {} ms",
        PUSHBACK.as_millis()
    ));
    if let Ok(value) = PUSHBACK.as_millis().to_string().parse() {
        status
            .metadata_mut()
            .insert("grpc-retry-pushback-ms", value);
    }
    status
}

async fn run<T: SequenceBatch>(
    tree: Arc<T>,
    config: BatchConfig,
    mut waiting: mpsc::Receiver<Waiting>,
) {
    while let Some(first) = waiting.recv().await {
        let deadline = tokio::time::Instant::now() + config.max_age;
        let mut batch = vec![first];
        while batch.len() < config.max_batch {
            tokio::select! {
                next = waiting.recv() => match next {
                    Some(w) => batch.push(w),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let entries: Vec<NewEntry> = batch.iter().map(|w| w.entry.clone()).collect();
        match tree.sequence(entries).await {
            Ok(sequenced) => {
                for (w, e) in batch.into_iter().zip(sequenced.entries) {
                    let receipt = Receipt {
                        index: e.index,
                        entry: e.entry,
                        inclusion_proof: e.proof.iter().map(|h| h.as_bytes().to_vec()).collect(),
                        checkpoint: sequenced.checkpoint.clone(),
                    };
                    // A caller that went away no longer needs its answer.
                    let _ = w.reply.send(Ok((receipt, e.duplicate)));
                }
            }
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "batch not sequenced");
                for w in batch {
                    let _ = w.reply.send(Err(status.clone()));
                }
            }
        }
    }
}
