//! The prediction log: records leave the request path through a queue bounded in records and
//! in bytes, and a writer task stores them in batches (group commit). Two modes: *fast* — a
//! full queue drops the record and counts it, and a record is acknowledged before it is
//! written, so a crash loses what was queued (at most a batch or two); *durable* — a
//! prediction is answered only once its record is committed, and a full queue refuses the
//! request (503) instead of answering unlogged.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use steward_core::serving::{PredictionRecord, RouteRole};
use steward_runtime::{Data, Tensor};
use steward_store::MetadataStore;
use tokio::sync::{mpsc, oneshot};

use super::Serving;
use super::tensors::LoggedTensors;
use super::metrics::Metrics;

/// Records the queue holds before it drops new ones.
pub const QUEUE_CAPACITY: usize = 65_536;
/// Bytes of tensors the queue holds before it drops (or, durable, refuses) new ones: 256 MiB.
pub const QUEUE_BYTES: usize = 256 << 20;
/// Records per store write.
const BATCH: usize = 2_000;
/// A batch of records holding at most this many bytes of tensors is encoded on the writer task
/// itself; a larger one on the blocking pool.
const ENCODE_INLINE_BYTES: usize = 64 * 1024;

/// A prediction on its way to the store; serialised by the writer, not the request.
pub struct LogItem {
    pub id: String,
    pub deployment: String,
    pub model: String,
    pub version: i64,
    pub route: RouteRole,
    pub parent_id: Option<String>,
    pub time: i64,
    pub latency_us: i64,
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
    pub context: Option<String>,
}

/// A queued record, with what the writer reports back.
struct Queued {
    item: LogItem,
    bytes: usize,
    /// Durable mode: told whether the record was committed.
    ack: Option<oneshot::Sender<bool>>,
}

pub struct PredictionLog {
    tx: mpsc::Sender<Queued>,
    rx: Mutex<Option<mpsc::Receiver<Queued>>>,
    queued_bytes: Arc<AtomicUsize>,
    durable: AtomicBool,
    /// Records queued since start, and records the writer has finished with (committed or
    /// failed): in FIFO order, so `settled >= n` means the first n queued are done.
    queued: AtomicU64,
    settled: Arc<AtomicU64>,
}

/// The in-memory size of a record's tensors (what the queue's byte bound counts).
fn size_of(item: &LogItem) -> usize {
    let data = |t: &Tensor| match (&t.data, t.data.dtype().width()) {
        (Data::Bytes(v), _) => v.iter().map(|s| s.len() + 24).sum(),
        (d, width) => d.len() * width.expect("every type but BYTES has a width"),
    };
    item.inputs.iter().chain(&item.outputs).map(data).sum::<usize>() + item.context.as_ref().map_or(0, String::len) + 256
}

impl Default for PredictionLog {
    fn default() -> Self {
        Self::new()
    }
}

impl PredictionLog {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            durable: AtomicBool::new(false),
            queued: AtomicU64::new(0),
            settled: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Durable mode: answers wait for their records to be committed.
    pub fn set_durable(&self, durable: bool) {
        self.durable.store(durable, Relaxed);
    }

    pub fn is_durable(&self) -> bool {
        self.durable.load(Relaxed)
    }

    /// Queues a record; `Err` when the queue is full (in records or bytes), counted as dropped.
    fn enqueue(&self, metrics: &Metrics, item: LogItem, ack: Option<oneshot::Sender<bool>>) -> Result<(), ()> {
        let bytes = size_of(&item);
        let full = self.queued_bytes.fetch_add(bytes, Relaxed) + bytes > QUEUE_BYTES || self.tx.try_send(Queued { item, bytes, ack }).is_err();
        if full {
            // Refused: never queued, so neither counted nor settled (it was not written).
            self.queued_bytes.fetch_sub(bytes, Relaxed);
            metrics.log_dropped.fetch_add(1, Relaxed);
            return Err(());
        }
        // Counted once queued: a record's time is taken microseconds before, so every record
        // made before a mark's time (GRACE_MS back) is in the count read at the mark.
        self.queued.fetch_add(1, SeqCst);
        Ok(())
    }

    /// Logs a shadow copy: never waited for; dropped (and counted) when the queue is full.
    pub fn push(&self, metrics: &Metrics, item: LogItem) {
        let _ = self.enqueue(metrics, item, None);
    }

    /// Logs an answered prediction. Fast mode: as [`push`](Self::push), and `Ok(None)`.
    /// Durable mode: `Ok(Some(receiver))`, told once the record is committed, or `Err` when the
    /// queue is full — the request must then not be answered.
    pub fn push_answered(&self, metrics: &Metrics, item: LogItem) -> Result<Option<oneshot::Receiver<bool>>, ()> {
        if !self.is_durable() {
            self.push(metrics, item);
            return Ok(None);
        }
        let (tx, rx) = oneshot::channel();
        self.enqueue(metrics, item, Some(tx))?;
        Ok(Some(rx))
    }

    /// (records queued, records settled) since start: every record queued by the time the
    /// first number was read is committed or failed once the second reaches it.
    pub fn progress(&self) -> (u64, u64) {
        let queued = self.queued.load(SeqCst);
        (queued, self.settled.load(SeqCst))
    }

    /// Bytes of tensors waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Relaxed)
    }

    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Spawns the writer (once).
    pub fn start(&self, store: Arc<dyn MetadataStore>, serving: Arc<Serving>) {
        let Some(mut rx) = self.rx.lock().expect("log lock").take() else { return };
        let serving = Arc::downgrade(&serving);
        let (queued_bytes, settled) = (self.queued_bytes.clone(), self.settled.clone());
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let mut acks = Vec::new();
                let mut bytes = 0;
                let items: Vec<LogItem> = batch
                    .drain(..)
                    .map(|q| {
                        bytes += q.bytes;
                        acks.extend(q.ack);
                        q.item
                    })
                    .collect();
                // Encoding is CPU work (a large request's record is tens of MB of JSON): off the
                // runtime, unless the batch is small enough that the hand-off costs more.
                let encode = move || items.into_iter().map(record).collect::<Vec<PredictionRecord>>();
                let records = if bytes <= ENCODE_INLINE_BYTES {
                    encode()
                } else {
                    let Ok(records) = tokio::task::spawn_blocking(encode).await else { return };
                    records
                };
                let _give_back = (bytes >= crate::memory::LARGE).then(|| crate::memory::GiveBack);
                let n = records.len() as u64;
                let result = store.log_predictions(records).await;
                queued_bytes.fetch_sub(bytes, Relaxed);
                settled.fetch_add(n, SeqCst);
                for ack in acks {
                    let _ = ack.send(result.is_ok());
                }
                let Some(s) = serving.upgrade() else { return };
                match result {
                    Ok(()) => s.metrics.log_written.fetch_add(n, Relaxed),
                    Err(e) => {
                        tracing::error!("prediction log write failed, {n} records lost: {}", e.message());
                        s.metrics.log_failed.fetch_add(n, Relaxed)
                    }
                };
            }
        });
    }
}

fn record(item: LogItem) -> PredictionRecord {
    PredictionRecord {
        id: item.id,
        deployment: item.deployment,
        model: item.model,
        version: item.version,
        route: item.route,
        parent_id: item.parent_id,
        time: item.time,
        latency_us: item.latency_us,
        inputs: serde_json::to_string(&LoggedTensors(&item.inputs)).expect("tensors serialise"),
        outputs: serde_json::to_string(&LoggedTensors(&item.outputs)).expect("tensors serialise"),
        context: item.context,
    }
}

/// `{name: {"shape": [...], "data": [...]}}`, as a monitor reads it back from the log: NaN as
/// null, FP32 values as their shortest decimal read as f64 (as the log's text holds them), so
/// that scores computed here equal the logged ones exactly.
pub fn tensors_json(tensors: &[Tensor]) -> Value {
    serde_json::from_str(&serde_json::to_string(&LoggedTensors(tensors)).expect("tensors serialise")).expect("tensors read back")
}
