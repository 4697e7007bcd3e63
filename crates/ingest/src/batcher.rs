//! The batcher: gathers entries from every caller and hands them to tree
//! in batches, a bounded number in flight (group commit: what arrives
//! meanwhile forms the next batch); then answers each caller with its own
//! receipt.
//!
//! Its queue is bounded: when it is full, a caller is told so at once
//! (`RESOURCE_EXHAUSTED` with retry advice) rather than left waiting.
//!
//! Traces: each queued entry has an `append` span, child of the call that
//! queued it; each batch a `batch` span of its own, the root of a trace
//! holding what tree and signer do for it, linked to the `append` spans
//! of the entries it carries (at most [`MAX_LINKS`]). Each `append` span
//! records the batch it joined (`evault.batch.seq`, `.trace_id`,
//! `.span_id`), so either end leads to the other.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use evault_proto::failover::Failover;
use evault_proto::telemetry::Traced;
use evault_proto::v1::sequencer_service_client::SequencerServiceClient;
use evault_proto::v1::{Receipt, SequenceEntry, SequenceRequest, SequenceResponse};
use evault_storage::LogStore;
use evault_tree::{NewEntry, Publisher, Sequenced, SequencedBatch, Sequencer, sequence_status};
use opentelemetry::trace::TraceContextExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tonic::Status;
use tonic::transport::ClientTlsConfig;
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Whoever sequences batches: the tree in this process or a remote one.
pub trait SequenceBatch: Send + Sync + 'static {
    /// Sequences `batch` and answers for each entry, in order.
    fn sequence(
        &self,
        batch: Vec<NewEntry>,
    ) -> impl Future<Output = Result<SequencedBatch, Status>> + Send;

    /// [`SequenceBatch::sequence`], giving `turn` back once the log can
    /// take the next batch: the batcher forms that batch only then, so it
    /// holds every entry that arrived meanwhile. By default the turn is
    /// given back at once: a remote tree's log is not seen from here, and
    /// the tree orders the batches it is sent.
    fn sequence_in_turn(
        &self,
        batch: Vec<NewEntry>,
        turn: OwnedSemaphorePermit,
    ) -> impl Future<Output = Result<SequencedBatch, Status>> + Send {
        drop(turn);
        self.sequence(batch)
    }
}

impl<S: LogStore, P: Publisher> SequenceBatch for Sequencer<S, P> {
    async fn sequence(&self, batch: Vec<NewEntry>) -> Result<SequencedBatch, Status> {
        Sequencer::sequence(self, &batch)
            .await
            .map_err(sequence_status)
    }

    /// The turn goes back when the sequencer releases the log, before the
    /// batch's proofs are built.
    async fn sequence_in_turn(
        &self,
        batch: Vec<NewEntry>,
        turn: OwnedSemaphorePermit,
    ) -> Result<SequencedBatch, Status> {
        Sequencer::sequence_in_turn(self, &batch, turn)
            .await
            .map_err(sequence_status)
    }
}

/// How long ingest waits for some tree to be the active sequencer before
/// failing a batch: long enough for a standby to take over.
pub const FAILOVER_WINDOW: Duration = Duration::from_secs(10);

/// Trees reached over gRPC: the active sequencer and its standbys. Calls
/// go to the one that answered last; when it is unavailable (gone, or a
/// standby), the next is tried.
pub struct RemoteTree {
    origin: String,
    trees: Failover<SequencerServiceClient<Traced>>,
}

impl RemoteTree {
    /// The trees at `endpoints` sequencing `origin`, connected lazily:
    /// `https://` addresses under mutual TLS with `tls`, `http://` ones
    /// without.
    pub fn new(
        endpoints: &[String],
        origin: &str,
        tls: Option<&ClientTlsConfig>,
    ) -> Result<Self, String> {
        Ok(RemoteTree {
            origin: origin.to_string(),
            trees: Failover::connect_lazy(endpoints, "tree", tls, |channel| {
                SequencerServiceClient::new(channel)
                    .max_decoding_message_size(evault_proto::transport::MAX_ANSWER)
                    .max_encoding_message_size(evault_proto::transport::MAX_MESSAGE)
            })?,
        })
    }

    /// Sends `request` to the active tree. While none is (a standby is
    /// taking over, or all are starting), keeps trying for
    /// [`FAILOVER_WINDOW`]: retrying is safe, since tree drops entries whose
    /// dedup key is already logged.
    async fn call(&self, request: SequenceRequest) -> Result<SequenceResponse, Status> {
        self.trees
            .call(FAILOVER_WINDOW, |mut tree| {
                let request = request.clone();
                async move { Ok(tree.sequence(request).await?.into_inner()) }
            })
            .await
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
///
/// There is no timer: a batch is sent as soon as tree can take one (group
/// commit). On an idle vault the first entry goes at once, alone; while a
/// batch holds the log, every entry that arrives waits for the next one,
/// which is formed when the log is released (see
/// [`SequenceBatch::sequence_in_turn`]), so a loaded vault forms large
/// batches without ever holding an entry back for a clock.
#[derive(Clone, Copy, Debug)]
pub struct BatchConfig {
    /// The most entries one batch carries.
    pub max_batch: usize,
    /// The most entry bytes one batch carries (at least one entry goes in
    /// every batch): the batch and tree's answer must fit one message
    /// ([`evault_proto::transport::MAX_MESSAGE`]).
    pub max_batch_bytes: usize,
    /// Entries that may wait in all; beyond, callers are pushed back.
    pub backlog: usize,
    /// Batches sent to tree and not yet answered. Two let tree commit one
    /// batch while it builds the proofs of the one before: storage and
    /// hashing overlap instead of taking turns.
    pub in_flight: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 4096,
            max_batch_bytes: evault_proto::transport::MAX_ENTRY_BYTES,
            backlog: 65_536,
            in_flight: 2,
        }
    }
}

/// A receipt and whether it is a duplicate's.
pub type Answer = Result<(Receipt, bool), Status>;

struct Waiting {
    entry: NewEntry,
    reply: oneshot::Sender<Answer>,
    /// The entry's `append` span, open until its caller is answered.
    span: tracing::Span,
}

/// The most `append` spans a `batch` span links to. A full batch holds
/// 4096 entries; trace backends keep a few hundred links per span at
/// most (and the OTLP exporter sends each link with the span), so the
/// rest are counted (`evault.batch.entries`) but not linked. Each
/// `append` span names its batch whether linked or not.
pub(crate) const MAX_LINKS: usize = 128;

/// The `append` span of an entry queued now, child of the current span.
fn append_span() -> tracing::Span {
    tracing::info_span!(
        "append",
        evault.role = "ingest",
        evault.batch.seq = Empty,
        evault.batch.trace_id = Empty,
        evault.batch.span_id = Empty,
    )
}

/// The span of batch number `seq`, a trace of its own linked to the
/// spans of the first [`MAX_LINKS`] of `appends`, each of which records
/// that it joined it.
fn batch_span(seq: u64, appends: &[tracing::Span]) -> tracing::Span {
    let span = tracing::info_span!(
        parent: None,
        "batch",
        evault.role = "ingest",
        evault.batch.seq = seq,
        evault.batch.entries = appends.len(),
        evault.batch.links = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let mut links = 0;
    for append in appends.iter().take(MAX_LINKS) {
        let context = append.context();
        let linked = context.span().span_context().clone();
        if linked.is_valid() {
            span.add_link(linked);
            links += 1;
        }
    }
    span.record("evault.batch.links", links);
    let batch = span.context().span().span_context().clone();
    if batch.is_valid() {
        let (trace_id, span_id) = (batch.trace_id().to_string(), batch.span_id().to_string());
        for append in appends {
            append.record("evault.batch.seq", seq);
            append.record("evault.batch.trace_id", trace_id.as_str());
            append.record("evault.batch.span_id", span_id.as_str());
        }
    }
    span
}

/// A handle to the batcher task; cloning it shares the queue.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Waiting>,
}

/// How long a pushed-back caller should wait before retrying.
pub const PUSHBACK: Duration = Duration::from_millis(100);

impl Batcher {
    /// Starts the batcher task feeding `tree`. Its queue counts in
    /// `evault_ingest_backlog` while the batcher lives.
    pub fn start<T: SequenceBatch>(tree: Arc<T>, config: BatchConfig) -> Self {
        let (queue, waiting) = mpsc::channel(config.backlog.max(1));
        // Read at scrape time, so counting costs the appends nothing: the
        // permits taken are the entries queued.
        let watched = queue.downgrade();
        evault_metrics::ingest().watch_backlog(move || {
            watched
                .upgrade()
                .map(|queue| queue.max_capacity() - queue.capacity())
        });
        tokio::spawn(run(tree, config, waiting));
        Batcher { queue }
    }

    /// Queues `entry`; the receiver gets its receipt once it is durable and
    /// signed. Fails at once with `RESOURCE_EXHAUSTED` when the backlog is
    /// full: a unary caller is told to come back.
    pub fn submit(&self, entry: NewEntry) -> Result<oneshot::Receiver<Answer>, Status> {
        let (reply, answer) = oneshot::channel();
        let span = append_span();
        self.queue
            .try_send(Waiting { entry, reply, span })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => pushback(),
                mpsc::error::TrySendError::Closed(_) => stopped(),
            })?;
        Ok(answer)
    }

    /// Queues `entry`, waiting while the backlog is full. For streams: a
    /// stream that waits stops reading, and HTTP/2 flow control holds its
    /// sender back, so pushback needs no error and no retry.
    pub async fn submit_waiting(
        &self,
        entry: NewEntry,
    ) -> Result<oneshot::Receiver<Answer>, Status> {
        let (reply, answer) = oneshot::channel();
        let span = append_span();
        self.queue
            .send(Waiting { entry, reply, span })
            .await
            .map_err(|_| stopped())?;
        Ok(answer)
    }
}

fn stopped() -> Status {
    Status::unavailable("ingest is shutting down")
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
    let slots = Arc::new(Semaphore::new(config.in_flight.max(1)));
    // One batch at a time waits for or holds the log; the next is formed
    // when it is released, not before, so it takes in every entry that
    // arrived until the log could take it.
    let turns = Arc::new(Semaphore::new(1));
    let max_batch = config.max_batch.max(1);
    let mut batch = Vec::with_capacity(max_batch);
    // Entries taken from the queue that did not fit the last batch's
    // bytes: they lead the next one.
    let mut carried: Vec<Waiting> = Vec::new();
    let mut seq = 0u64;
    loop {
        // A slot first, then the entries: while every slot is taken,
        // arrivals queue up and make the next batch larger.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Ok(turn) = Arc::clone(&turns).acquire_owned().await else {
            return;
        };
        if carried.is_empty() {
            // Waits only while nothing is queued; then takes everything
            // already there, up to a full batch.
            if waiting.recv_many(&mut batch, max_batch).await == 0 {
                return;
            }
        } else {
            batch.append(&mut carried);
            while batch.len() < max_batch {
                match waiting.try_recv() {
                    Ok(w) => batch.push(w),
                    Err(_) => break,
                }
            }
        }
        let fit = evault_proto::transport::entries_within(
            batch.iter().map(|w| w.entry.entry.len()),
            config.max_batch_bytes,
        );
        carried = batch.split_off(fit);
        let mut entries = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut appends = Vec::with_capacity(batch.len());
        for w in batch.drain(..) {
            entries.push(w.entry);
            replies.push(w.reply);
            appends.push(w.span);
        }
        seq += 1;
        let span = batch_span(seq, &appends);
        let tree = Arc::clone(&tree);
        tokio::spawn(
            async move {
                let outcome = tree.sequence_in_turn(entries, turn).await;
                answer(replies, outcome);
                // The appends end as their callers are answered.
                drop(appends);
                drop(slot);
            }
            .instrument(span),
        );
    }
}

/// Answers each caller of a batch with its receipt, or the batch's error.
fn answer(replies: Vec<oneshot::Sender<Answer>>, outcome: Result<SequencedBatch, Status>) {
    match outcome {
        Ok(sequenced) => {
            for (reply, e) in replies.into_iter().zip(sequenced.entries) {
                let receipt = Receipt {
                    index: e.index,
                    entry: e.entry,
                    inclusion_proof: e.proof.iter().map(|h| h.as_bytes().to_vec()).collect(),
                    checkpoint: sequenced.checkpoint.clone(),
                };
                // A caller that went away no longer needs its answer.
                let _ = reply.send(Ok((receipt, e.duplicate)));
            }
        }
        Err(status) => {
            tracing::warn!(code = ?status.code(), message = status.message(), "batch not sequenced");
            for reply in replies {
                let _ = reply.send(Err(status.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::Notify;

    use super::*;

    /// A tree that records each batch's size and answers index 0 for all,
    /// holding every batch until `release` is notified when `hold` is set,
    /// and with `hold_turn`, its turn too, as a sequencer holding the log.
    #[derive(Default)]
    struct RecordingTree {
        batches: Mutex<Vec<usize>>,
        hold: bool,
        hold_turn: bool,
        arrived: Notify,
        release: Notify,
    }

    impl SequenceBatch for RecordingTree {
        async fn sequence(&self, batch: Vec<NewEntry>) -> Result<SequencedBatch, Status> {
            self.record(&batch);
            if self.hold {
                self.release.notified().await;
            }
            Ok(answered(batch))
        }

        async fn sequence_in_turn(
            &self,
            batch: Vec<NewEntry>,
            turn: OwnedSemaphorePermit,
        ) -> Result<SequencedBatch, Status> {
            if !self.hold_turn {
                drop(turn);
                return self.sequence(batch).await;
            }
            self.record(&batch);
            self.release.notified().await;
            drop(turn);
            Ok(answered(batch))
        }
    }

    impl RecordingTree {
        /// Notes a batch's arrival and size.
        fn record(&self, batch: &[NewEntry]) {
            self.batches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(batch.len());
            self.arrived.notify_one();
        }
    }

    fn answered(batch: Vec<NewEntry>) -> SequencedBatch {
        SequencedBatch {
            checkpoint: Vec::new(),
            size: 1,
            entries: batch
                .into_iter()
                .map(|e| Sequenced {
                    index: 0,
                    duplicate: false,
                    entry: e.entry,
                    proof: Vec::new(),
                })
                .collect(),
        }
    }

    fn entry(n: u8) -> NewEntry {
        NewEntry {
            entry: vec![n],
            dedup_key: [n; 32],
        }
    }

    fn sizes(tree: &RecordingTree) -> Vec<usize> {
        tree.batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// On the paused clock, time moves only when something waits on a
    /// timer: an append answered with no time gone by waited for none.
    #[tokio::test(start_paused = true)]
    async fn an_idle_batcher_sends_an_entry_at_once() {
        let tree = Arc::new(RecordingTree::default());
        let batcher = Batcher::start(Arc::clone(&tree), BatchConfig::default());
        let started = tokio::time::Instant::now();
        let answer = batcher.submit(entry(1)).expect("queued");
        answer.await.expect("answered").expect("sequenced");
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(sizes(&tree), [1]);
    }

    /// A batcher over a tree that holds every batch until released.
    fn held(max_batch: usize, backlog: usize, in_flight: usize) -> (Arc<RecordingTree>, Batcher) {
        let tree = Arc::new(RecordingTree {
            hold: true,
            ..RecordingTree::default()
        });
        let config = BatchConfig {
            max_batch,
            max_batch_bytes: 1 << 20,
            backlog,
            in_flight,
        };
        (Arc::clone(&tree), Batcher::start(tree, config))
    }

    /// Releases the held batches one by one until every answer is in.
    async fn release_all(tree: &RecordingTree, answers: Vec<oneshot::Receiver<Answer>>) {
        for answer in answers {
            tree.release.notify_one();
            answer.await.expect("answered").expect("sequenced");
        }
    }

    #[tokio::test]
    async fn entries_arriving_during_a_batch_form_the_next_ones() {
        let (tree, batcher) = held(64, 1024, 1);
        let first = batcher.submit(entry(0)).expect("queued");
        tree.arrived.notified().await;
        let rest = (1..=100).map(|n| batcher.submit(entry(n)).expect("queued"));
        release_all(&tree, std::iter::once(first).chain(rest).collect()).await;
        assert_eq!(sizes(&tree), [1, 64, 36]);
    }

    /// A batch formed while another holds the log would miss whatever
    /// arrives before the log is free: the next batch is formed when it is
    /// released, though a second batch may be in flight.
    #[tokio::test]
    async fn the_next_batch_is_formed_when_the_log_is_released() {
        let tree = Arc::new(RecordingTree {
            hold_turn: true,
            ..RecordingTree::default()
        });
        let config = BatchConfig {
            in_flight: 2,
            ..BatchConfig::default()
        };
        let batcher = Batcher::start(Arc::clone(&tree), config);
        let first = batcher.submit(entry(0)).expect("queued");
        tree.arrived.notified().await;
        let mut answers = vec![batcher.submit(entry(1)).expect("queued")];
        // Time for a batcher that did not wait for the log to send entry 1
        // alone.
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
        answers.extend((2..=10).map(|n| batcher.submit(entry(n)).expect("queued")));
        // Lets the held batch go, then each batch that arrives after it.
        let releasing = tokio::spawn({
            let tree = Arc::clone(&tree);
            async move {
                loop {
                    tree.release.notify_one();
                    tree.arrived.notified().await;
                }
            }
        });
        first.await.expect("answered").expect("sequenced");
        for answer in answers {
            answer.await.expect("answered").expect("sequenced");
        }
        releasing.abort();
        assert_eq!(sizes(&tree), [1, 10]);
    }

    /// Entries past a batch's byte bound lead the next batch; none is
    /// lost or reordered, and an entry alone over the bound still goes.
    #[tokio::test]
    async fn a_batch_stops_at_its_byte_bound() {
        let (tree, batcher) = held(64, 1024, 1);
        let first = batcher.submit(entry(0)).expect("queued");
        tree.arrived.notified().await;
        // 300 KiB each against the 1 MiB bound: three fit in a batch.
        let big = |n: u8| NewEntry {
            entry: vec![n; 300 << 10],
            dedup_key: [n; 32],
        };
        let mut answers = vec![first];
        answers.extend((1..=7).map(|n| batcher.submit(big(n)).expect("queued")));
        answers.push(batcher.submit(entry(8)).expect("queued"));
        let oversized = NewEntry {
            entry: vec![9; 2 << 20],
            dedup_key: [9; 32],
        };
        answers.push(batcher.submit(oversized).expect("queued"));
        release_all(&tree, answers).await;
        assert_eq!(sizes(&tree), [1, 3, 3, 2, 1]);
    }

    #[tokio::test]
    async fn a_waiting_submit_waits_for_room_instead_of_pushing_back() {
        let (tree, batcher) = held(1, 1, 1);
        let first = batcher.submit(entry(0)).expect("queued");
        tree.arrived.notified().await;
        let second = batcher.submit(entry(1)).expect("room for one");
        let status = batcher.submit(entry(2)).expect_err("the backlog is full");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let waiting = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.submit_waiting(entry(2)).await }
        });
        tree.release.notify_one();
        first.await.expect("answered").expect("sequenced");
        let third = waiting
            .await
            .expect("join")
            .expect("queued once room freed");
        release_all(&tree, vec![second, third]).await;
        assert_eq!(sizes(&tree), [1, 1, 1]);
    }

    /// The backlog as a scrape reads it: every batcher of this test
    /// process together.
    fn backlog() -> u64 {
        let text = evault_metrics::encode().expect("metrics");
        text.lines()
            .find_map(|line| line.strip_prefix("evault_ingest_backlog "))
            .and_then(|n| n.parse().ok())
            .expect("evault_ingest_backlog")
    }

    #[tokio::test]
    async fn the_backlog_counts_the_entries_waiting_for_a_batch() {
        let (tree, batcher) = held(64, 1024, 1);
        let first = batcher.submit(entry(0)).expect("queued");
        tree.arrived.notified().await;
        let rest: Vec<_> = (1..=5)
            .map(|n| batcher.submit(entry(n)).expect("queued"))
            .collect();
        // Other tests' batchers may hold entries too, never fewer.
        assert!(backlog() >= 5);
        release_all(&tree, std::iter::once(first).chain(rest).collect()).await;
    }

    #[tokio::test]
    async fn a_second_batch_goes_while_the_first_is_in_flight() {
        let (tree, batcher) = held(64, 1024, 2);
        let first = batcher.submit(entry(0)).expect("queued");
        tree.arrived.notified().await;
        let second = batcher.submit(entry(1)).expect("queued");
        tree.arrived.notified().await;
        assert_eq!(sizes(&tree), [1, 1], "both batches reached tree");
        // Both slots are taken: these wait, and then go together.
        let rest = (2..=10).map(|n| batcher.submit(entry(n)).expect("queued"));
        release_all(&tree, [first, second].into_iter().chain(rest).collect()).await;
        assert_eq!(sizes(&tree), [1, 1, 9]);
    }

    /// What `spans` returns, and the spans it made, exported through an
    /// OpenTelemetry layer of their own.
    ///
    /// tracing caches, per call site and for the whole process, whether
    /// anyone listens. Tests on other threads reach the same call sites
    /// with no subscriber of theirs, and one that registered a call site
    /// at the wrong moment left it cached as unheard, so that this test's
    /// spans were never made. A subscriber for the whole process, which
    /// listens to everything and keeps nothing, makes every call site
    /// heard whatever the order; the spans themselves go to the subscriber
    /// of the thread that makes them, this one's.
    fn exported<T>(spans: impl FnOnce() -> T) -> (T, Vec<opentelemetry_sdk::trace::SpanData>) {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;

        static EVERY_CALL_SITE_HEARD: std::sync::Once = std::sync::Once::new();
        EVERY_CALL_SITE_HEARD.call_once(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry())
                .expect("no other subscriber for the whole process");
        });

        let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let made = tracing::subscriber::with_default(subscriber, spans);
        (made, exporter.get_finished_spans().expect("spans"))
    }

    fn attribute(span: &opentelemetry_sdk::trace::SpanData, key: &str) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn a_batch_links_its_first_appends_and_every_append_names_its_batch() {
        let (first, spans) = exported(|| {
            let appends: Vec<tracing::Span> = (0..MAX_LINKS + 10).map(|_| append_span()).collect();
            drop(batch_span(7, &appends));
            appends[..MAX_LINKS]
                .iter()
                .map(|a| a.context().span().span_context().span_id())
                .collect::<std::collections::HashSet<_>>()
        });
        let batch = spans.iter().find(|s| s.name == "batch").unwrap_or_else(|| {
            panic!(
                "batch span among {:?}",
                spans.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
            )
        });
        let appends: Vec<_> = spans.iter().filter(|s| s.name == "append").collect();
        assert_eq!(appends.len(), MAX_LINKS + 10);
        assert_eq!(batch.links.len(), MAX_LINKS);
        assert_eq!(
            attribute(batch, "evault.batch.links"),
            Some(MAX_LINKS.to_string())
        );
        assert_eq!(
            attribute(batch, "evault.batch.entries"),
            Some((MAX_LINKS + 10).to_string())
        );
        let linked: std::collections::HashSet<_> = batch
            .links
            .iter()
            .map(|l| l.span_context.span_id())
            .collect();
        let batch_trace = batch.span_context.trace_id().to_string();
        let batch_span_id = batch.span_context.span_id().to_string();
        for append in &appends {
            assert_eq!(attribute(append, "evault.batch.seq").as_deref(), Some("7"));
            assert_eq!(
                attribute(append, "evault.batch.trace_id"),
                Some(batch_trace.clone())
            );
            assert_eq!(
                attribute(append, "evault.batch.span_id"),
                Some(batch_span_id.clone())
            );
            assert_ne!(
                append.span_context.trace_id(),
                batch.span_context.trace_id()
            );
        }
        // The first appends, in the order they queued, are the linked ones.
        assert_eq!(linked, first);
    }
}
