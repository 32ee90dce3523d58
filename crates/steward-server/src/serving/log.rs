//! The prediction log: records leave the request path through a bounded queue (a full queue
//! drops the record and counts it, never blocks a request) and a writer task stores them in
//! batches.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use steward_core::serving::{PredictionRecord, RouteRole};
use steward_runtime::{Data, Tensor};
use steward_store::MetadataStore;
use tokio::sync::mpsc;

use super::Serving;
use super::metrics::Metrics;

/// Records the queue holds before it drops new ones.
pub const QUEUE_CAPACITY: usize = 65_536;
/// Records per store write.
const BATCH: usize = 2_000;

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

pub struct PredictionLog {
    tx: mpsc::Sender<LogItem>,
    rx: Mutex<Option<mpsc::Receiver<LogItem>>>,
}

impl Default for PredictionLog {
    fn default() -> Self {
        Self::new()
    }
}

impl PredictionLog {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        Self { tx, rx: Mutex::new(Some(rx)) }
    }

    pub fn push(&self, metrics: &Metrics, item: LogItem) {
        if self.tx.try_send(item).is_err() {
            metrics.log_dropped.fetch_add(1, Relaxed);
        }
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
        tokio::spawn(async move {
            let mut items = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut items, BATCH).await > 0 {
                let records: Vec<PredictionRecord> = items.drain(..).map(record).collect();
                let n = records.len() as u64;
                let result = store.log_predictions(&records).await;
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
        inputs: tensors_json(&item.inputs).to_string(),
        outputs: tensors_json(&item.outputs).to_string(),
        context: item.context,
    }
}

/// `{name: {"shape": [...], "data": [...]}}`; NaN as null.
pub fn tensors_json(tensors: &[Tensor]) -> Value {
    let mut m = Map::new();
    for t in tensors {
        m.insert(t.name.clone(), json!({ "shape": t.shape, "data": data_json(&t.data) }));
    }
    Value::Object(m)
}

pub fn data_json(d: &Data) -> Value {
    match d {
        Data::Bool(v) => json!(v),
        Data::Int32(v) => json!(v),
        Data::Int64(v) => json!(v),
        Data::Fp32(v) => json!(v),
        Data::Fp64(v) => json!(v),
        Data::Bytes(v) => json!(v),
    }
}
