//! Model serving: live deployments (routes to loaded registry versions, swapped atomically),
//! the inference path shared by every protocol, the prediction log and serving metrics.
//!
//! A deployment's routes are an `Arc<Routes>` behind a lock held only to clone the pointer:
//! a request keeps the routes it started with, so replacing them (an alias moved, a weight
//! changed) never fails a request in flight. New versions are loaded before the swap.

pub mod api;
pub mod log;
pub mod metrics;
pub mod monitor;
pub mod oip;
pub mod scoring;
pub mod tensors;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use steward_core::audit::Audit;
use steward_core::registry::ModelVersion;
use steward_core::serving::{Deployment, DeploymentSpec, ModelRef, RouteRole};
use steward_core::{Error, ErrorCode};
use steward_runtime::{Data, Model, RuntimeError, Tensor};
use steward_train::design::{Column, Dataset};
use steward_train::explain::{Explainer, METADATA_KEY, Reason};
use steward_store::{ArtifactStore, MetadataStore};
use tokio::sync::{Mutex, Notify};

use self::log::{LogItem, PredictionLog};
use self::metrics::{Metrics, RouteStats};

/// How often deployments re-resolve their aliases when nothing told them to.
const RESYNC_EVERY: Duration = Duration::from_secs(2);
/// Scoring requests with bodies up to this size are scored on the runtime thread (see
/// [`Admission`]); a one-row request is a few hundred bytes.
pub const INLINE_BYTES: usize = 8 * 1024;
/// A deployment that cannot load is tried again after this, doubling per failure up to
/// [`RETRY_MAX`]; a change to its spec tries at once.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// Loaded models no route serves any more are kept for a quick way back (the champion before
/// a rollback), the most recently served first, up to this many.
const KEEP_UNROUTED: usize = 2;

/// Why a stored deployment could not be loaded, and when the resync tries it again.
struct LoadFailure {
    spec: DeploymentSpec,
    message: String,
    failures: u32,
    next_try: Instant,
}

/// One loaded version on one route.
#[derive(Debug)]
pub struct Served {
    pub model: String,
    pub version: i64,
    pub runtime: Arc<Model>,
    pub stats: Arc<RouteStats>,
    /// Present for models trained by Steward: computes reason codes.
    pub explainer: Option<Arc<Explainer>>,
}

/// What a deployment serves right now.
#[derive(Debug)]
pub struct Routes {
    pub spec: DeploymentSpec,
    pub champion: Arc<Served>,
    pub challenger: Option<Arc<Served>>,
    pub shadow: Option<Arc<Served>>,
}

impl Routes {
    fn served(&self, role: RouteRole) -> &Arc<Served> {
        match role {
            RouteRole::Challenger => self.challenger.as_ref().unwrap_or(&self.champion),
            _ => &self.champion,
        }
    }

    pub fn versions(&self) -> Vec<(RouteRole, &str, i64)> {
        let mut v = vec![(RouteRole::Champion, self.champion.model.as_str(), self.champion.version)];
        v.extend(self.challenger.iter().map(|s| (RouteRole::Challenger, s.model.as_str(), s.version)));
        v.extend(self.shadow.iter().map(|s| (RouteRole::Shadow, s.model.as_str(), s.version)));
        v
    }

    /// The roles in which this deployment serves a model version now.
    pub fn serving(&self, model: &str, version: i64) -> Vec<RouteRole> {
        self.versions().into_iter().filter(|(_, m, v)| *m == model && *v == version).map(|(r, _, _)| r).collect()
    }

    /// The deployment as the API shows it: its spec and the versions its routes serve.
    pub fn json(&self, stored: Option<&Deployment>) -> serde_json::Value {
        let weight = |role: RouteRole| match (role, &self.spec.challenger) {
            (RouteRole::Champion, Some(c)) => Some(100 - c.weight),
            (RouteRole::Champion, None) => Some(100),
            (RouteRole::Challenger, Some(c)) => Some(c.weight),
            _ => None,
        };
        let routes: Vec<_> = self
            .versions()
            .into_iter()
            .map(|(role, model, version)| {
                let mut r = serde_json::json!({ "role": role.as_str(), "model": model, "version": version });
                if let Some(w) = weight(role) {
                    r["weight"] = w.into();
                }
                r
            })
            .collect();
        let mut out = serde_json::to_value(&self.spec).expect("spec serialises");
        out["routes"] = routes.into();
        if let Some(d) = stored {
            out["creation_time"] = d.creation_time.into();
            out["last_updated_time"] = d.last_updated_time.into();
            out["created_by"] = d.created_by.clone().into();
        }
        out
    }
}

/// Why an inference request failed.
#[derive(Debug)]
pub enum InferError {
    UnknownDeployment(String),
    BadInput(String),
    /// More rows than the deployment takes in one request (413).
    TooLarge(String),
    /// Scoring is at capacity: every turn taken and the queue full (503, retry after a second).
    Overloaded(String),
    Internal(String),
}

impl InferError {
    pub fn status(&self) -> u16 {
        match self {
            Self::UnknownDeployment(_) => 404,
            Self::BadInput(_) => 400,
            Self::TooLarge(_) => 413,
            Self::Overloaded(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::UnknownDeployment(m) | Self::BadInput(m) | Self::TooLarge(m) | Self::Overloaded(m) | Self::Internal(m) => m,
        }
    }
}

/// Admission control for scoring: its CPU work (parsing the body, inference, encoding the
/// answer) runs at most `turns` at once; up to `queue` more wait for a turn, and a request that
/// finds the queue full is refused at once with 503 and Retry-After, so an overload never grows
/// latency or memory without bound. A request of at most [`INLINE_BYTES`] is scored on the
/// runtime thread that read it — its work takes microseconds, less than handing it to another
/// thread and back costs (that hand-off cut one-row throughput by two thirds) — and a larger
/// one on the blocking pool. With turns at most one fewer than the runtime's threads, a thread
/// is always free for health checks and the API, whatever scoring does.
pub struct Admission {
    turns: Arc<tokio::sync::Semaphore>,
    waiting: std::sync::atomic::AtomicUsize,
    queue: usize,
    /// Whether small requests may be scored on the runtime thread: only while the turns leave
    /// a runtime thread free (not on a one-core machine).
    inline: bool,
}

impl Admission {
    /// `turns` scoring requests at once, `queue` more waiting.
    pub fn new(turns: usize, queue: usize) -> Self {
        let threads = tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers());
        Admission { turns: Arc::new(tokio::sync::Semaphore::new(turns.max(1))), waiting: std::sync::atomic::AtomicUsize::new(0), queue, inline: turns.max(1) < threads }
    }

    /// One turn per core but one — that core is left to the async runtime (health checks,
    /// the API, accepting connections) — and four waiting per core.
    fn default_for_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(cores.saturating_sub(1).max(1), 4 * cores)
    }
}

/// Reads a body of at most `limit` bytes into one buffer, chunk by chunk: the peak is the body
/// and one chunk, never the chunks and a copy of them all. A declared or actual length over
/// the limit is refused (413) before or as it is read.
async fn read_body(req: axum::extract::Request, limit: usize) -> Result<bytes::Bytes, InferError> {
    use futures::StreamExt as _;
    let too_large = || InferError::TooLarge(format!("the request body is larger than {limit} bytes, the limit for scoring"));
    let declared = req.headers().get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0));
    let mut stream = req.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| InferError::BadInput(format!("could not read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(bytes::Bytes::from(buf))
}

/// A scoring request's response, and (durable mode) the receiver told when its prediction's
/// log record is committed.
pub type Scored = (axum::response::Response, Option<tokio::sync::oneshot::Receiver<bool>>);

/// A place in the scoring queue (see [`Serving::admit`]); given back when dropped.
pub struct Ticket<'a> {
    admission: &'a Admission,
    waiting: bool,
}

impl Ticket<'_> {
    /// Waits for a turn, then runs `work`: here when `inline`, else on the blocking pool.
    pub async fn run<T: Send + 'static>(mut self, inline: bool, work: impl FnOnce() -> Result<T, InferError> + Send + 'static) -> Result<T, InferError> {
        let turn = self.admission.turns.clone().acquire_owned().await;
        self.leave_queue();
        let turn = turn.map_err(|_| InferError::Internal("scoring is shutting down".into()))?;
        if inline {
            let _turn = turn;
            return std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| Err(InferError::Internal("scoring failed: it panicked".into())));
        }
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            work()
        })
        .await
        .map_err(|e| InferError::Internal(format!("scoring failed: {e}")))?
    }

    fn leave_queue(&mut self) {
        if std::mem::take(&mut self.waiting) {
            self.admission.waiting.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.leave_queue();
    }
}

impl From<RuntimeError> for InferError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::TooManyRows { .. } => Self::TooLarge(e.to_string()),
            e if e.is_bad_input() => Self::BadInput(e.to_string()),
            e => Self::Internal(e.to_string()),
        }
    }
}

/// An answered request.
pub struct Answer {
    pub prediction_id: String,
    pub route: RouteRole,
    pub model: String,
    pub version: i64,
    pub outputs: Vec<Tensor>,
    /// When asked for: per row, the features that pushed it towards the adverse outcome.
    pub reason_codes: Option<Vec<Vec<Reason>>>,
    /// Durable mode: told once the prediction's log record is committed; the answer waits.
    pub logged: Option<tokio::sync::oneshot::Receiver<bool>>,
}

/// The raw feature columns an explainer needs, from the request's named input tensors.
fn explained_rows(explainer: &Explainer, inputs: &[Tensor]) -> Result<Dataset, String> {
    let mut rows = None;
    let mut features = Vec::new();
    for name in explainer.features() {
        let t = inputs.iter().find(|t| t.name == name).ok_or_else(|| format!("reason codes need the input '{name}'"))?;
        let column = match &t.data {
            Data::Fp32(v) => Column::Numeric(v.iter().map(|x| f64::from(*x)).collect()),
            Data::Fp64(v) => Column::Numeric(v.clone()),
            Data::Int64(v) => Column::Numeric(v.iter().map(|x| *x as f64).collect()),
            Data::Int32(v) => Column::Numeric(v.iter().map(|x| f64::from(*x)).collect()),
            Data::Bool(v) => Column::Numeric(v.iter().map(|x| f64::from(u8::from(*x))).collect()),
            Data::Bytes(v) => Column::Categorical(v.iter().map(|x| (!x.is_empty()).then(|| x.clone())).collect()),
        };
        if *rows.get_or_insert(column.len()) != column.len() {
            return Err(format!("input '{name}' has {} values, other inputs {}", column.len(), rows.unwrap_or(0)));
        }
        features.push((name, column));
    }
    Ok(Dataset { features, label: vec![0; rows.unwrap_or(0)] })
}

pub struct Serving {
    store: Arc<dyn MetadataStore>,
    artifacts: ArtifactStore,
    live: RwLock<HashMap<String, Arc<Routes>>>,
    /// Loaded runtimes by (registered model id, version), with when a route last served each.
    models: Mutex<HashMap<(String, i64), (Arc<Model>, Instant)>>,
    /// The hosts (or `host:port`) alerts may be posted to.
    webhook_allow: RwLock<Arc<Vec<String>>>,
    /// Admission control for scoring requests.
    pub admission: Admission,
    /// Why a stored deployment could not be loaded at the last resync, by name.
    load_errors: RwLock<HashMap<String, LoadFailure>>,
    /// Serialises installing routes, so that a resync never installs routes built from a spec
    /// older than what a change installed meanwhile (see `generation`).
    sync_lock: Mutex<()>,
    /// Counts installs and removals: a resync builds outside the lock and installs only if
    /// nothing was installed or removed since it read the stored specs.
    generation: std::sync::atomic::AtomicU64,
    pub metrics: Metrics,
    pub log: PredictionLog,
    changed: Arc<Notify>,
}

impl Serving {
    pub fn new(store: Arc<dyn MetadataStore>, artifacts: ArtifactStore) -> Arc<Self> {
        Arc::new(Self {
            store,
            artifacts,
            live: RwLock::new(HashMap::new()),
            models: Mutex::new(HashMap::new()),
            load_errors: RwLock::new(HashMap::new()),
            admission: Admission::default_for_machine(),
            webhook_allow: RwLock::new(Arc::new(Vec::new())),
            sync_lock: Mutex::new(()),
            generation: std::sync::atomic::AtomicU64::new(0),
            metrics: Metrics::default(),
            log: PredictionLog::new(),
            changed: Arc::new(Notify::new()),
        })
    }

    /// Starts the background work: the prediction-log writer, the monitors and the resync loop.
    pub fn start(self: &Arc<Self>) {
        self.log.start(self.store.clone(), self.clone());
        let (store, me) = (self.store.clone(), Arc::downgrade(self));
        tokio::spawn(async move {
            // No redirects: an allowed host must not bounce an alert to one that is not.
            let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default();
            let mut kept = monitor::TickState::default();
            loop {
                let Some((counters, webhooks, log)) = me.upgrade().map(|s| (s.metrics.counters(), s.webhook_allow(), s.log.progress())) else { return };
                if let Err(e) = monitor::tick(&store, &http, &webhooks, &counters, log, &mut kept).await {
                    tracing::warn!("monitor tick failed: {}", e.message());
                }
                tokio::time::sleep(monitor::TICK).await;
            }
        });
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(s) = me.upgrade() else { return };
                if let Err(e) = s.sync_all().await {
                    tracing::warn!("deployment sync failed: {}", e.message());
                }
                let changed = s.changed.clone();
                drop(s);
                let _ = tokio::time::timeout(RESYNC_EVERY, changed.notified()).await;
            }
        });
    }

    /// Asks the resync loop to run now (an alias or version changed).
    pub fn registry_changed(&self) {
        // A failed deployment may load now (an alias moved to a version that works).
        self.load_errors.write().expect("errors lock").values_mut().for_each(|f| f.next_try = Instant::now());
        self.changed.notify_one();
    }

    pub fn routes(&self, deployment: &str) -> Option<Arc<Routes>> {
        self.live.read().expect("live lock").get(deployment).cloned()
    }

    /// The hosts monitors may post alerts to.
    pub fn webhook_allow(&self) -> Arc<Vec<String>> {
        self.webhook_allow.read().expect("allow lock").clone()
    }

    pub fn set_webhook_allow(&self, hosts: Vec<String>) {
        *self.webhook_allow.write().expect("allow lock") = Arc::new(hosts);
    }

    /// Why a stored deployment is not serving, if its last load failed.
    /// Why a stored deployment could not be loaded: the error, how many times in a row it
    /// failed, and how long until the resync tries again.
    pub fn load_error(&self, deployment: &str) -> Option<(String, u32, Duration)> {
        self.load_errors.read().expect("errors lock").get(deployment).map(|f| (f.message.clone(), f.failures, f.next_try.saturating_duration_since(Instant::now())))
    }

    pub fn all_routes(&self) -> Vec<Arc<Routes>> {
        let mut v: Vec<_> = self.live.read().expect("live lock").values().cloned().collect();
        v.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        v
    }

    pub fn install(&self, routes: Routes) -> Arc<Routes> {
        for served in std::iter::once(&routes.champion).chain(routes.challenger.as_ref()).chain(routes.shadow.as_ref()) {
            self.metrics.keep(&served.stats);
        }
        let routes = Arc::new(routes);
        self.live.write().expect("live lock").insert(routes.spec.name.clone(), routes.clone());
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        routes
    }

    /// Takes a deployment out of service. Waits for a resync's install in progress, and moves
    /// the generation so that a resync that read the deployment before it was deleted does not
    /// install it again.
    pub async fn remove(&self, deployment: &str) {
        let _guard = self.sync_lock.lock().await;
        self.live.write().expect("live lock").remove(deployment);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Installs routes built for a changed spec, after any resync in progress (which may have
    /// read the old spec and would otherwise install it over the new one).
    pub async fn install_synced(&self, routes: Routes) -> Arc<Routes> {
        let _guard = self.sync_lock.lock().await;
        self.install(routes)
    }

    /// Re-reads every deployment and re-resolves aliases, swapping routes whose versions moved.
    /// Models are downloaded and parsed outside the install lock, so a slow or failing load
    /// never holds up a change made through the API; a deployment that fails is tried again
    /// with backoff, not re-downloaded every resync.
    pub async fn sync_all(&self) -> steward_core::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        let (stored, mut generation) = {
            let _guard = self.sync_lock.lock().await;
            let stored = self.store.list_deployments().await?;
            let names: Vec<String> = stored.iter().map(|d| d.spec.name.clone()).collect();
            let mut live = self.live.write().expect("live lock");
            let before = live.len();
            live.retain(|k, _| names.contains(k));
            if live.len() != before {
                self.generation.fetch_add(1, SeqCst);
            }
            drop(live);
            self.load_errors.write().expect("errors lock").retain(|k, _| names.contains(k));
            (stored, self.generation.load(SeqCst))
        };
        for d in stored {
            let current = self.routes(&d.spec.name);
            if let Some(cur) = &current
                && cur.spec == d.spec
                && self.resolve_all(&d.spec).await.ok().as_ref() == Some(&cur.versions().iter().map(|v| (v.1.to_owned(), v.2)).collect::<Vec<_>>())
            {
                continue;
            }
            let waiting = self.load_errors.read().expect("errors lock").get(&d.spec.name).is_some_and(|f| f.spec == d.spec && Instant::now() < f.next_try);
            if waiting {
                continue;
            }
            let built = self.build(&d.spec).await;
            let _guard = self.sync_lock.lock().await;
            if self.generation.load(SeqCst) != generation {
                // A change was installed meanwhile: what this resync read may be stale; the next
                // one starts over.
                return Ok(());
            }
            match built {
                Ok(routes) => {
                    self.load_errors.write().expect("errors lock").remove(&d.spec.name);
                    self.install(routes);
                    generation = self.generation.load(SeqCst);
                }
                Err(e) => {
                    let mut errors = self.load_errors.write().expect("errors lock");
                    let failures = errors.get(&d.spec.name).filter(|f| f.spec == d.spec).map_or(0, |f| f.failures) + 1;
                    let delay = RETRY_FIRST.saturating_mul(1 << failures.min(16).saturating_sub(1)).min(RETRY_MAX);
                    tracing::warn!(deployment = %d.spec.name, failures, retry_in_s = delay.as_secs(), "cannot load deployment: {}", e.message());
                    errors.insert(d.spec.name.clone(), LoadFailure { spec: d.spec.clone(), message: e.message().to_owned(), failures, next_try: Instant::now() + delay });
                }
            }
        }
        self.forget_unserved().await;
        Ok(())
    }

    /// Drops what no route serves any more: loaded models beyond the few most recently served
    /// ([`KEEP_UNROUTED`]), and the request metrics of routes gone (after a grace period, so
    /// that a route being built for a change is not dropped before it is installed).
    async fn forget_unserved(&self) {
        let routes = self.all_routes();
        let served: Vec<&Arc<Served>> = routes.iter().flat_map(|r| std::iter::once(&r.champion).chain(r.challenger.as_ref()).chain(r.shadow.as_ref())).collect();
        let now = Instant::now();
        let mut models = self.models.lock().await;
        let mut unrouted = Vec::new();
        for (key, (model, last)) in models.iter_mut() {
            if served.iter().any(|s| Arc::ptr_eq(&s.runtime, model)) {
                *last = now;
            } else {
                unrouted.push((key.clone(), *last));
            }
        }
        unrouted.sort_by_key(|(_, last)| std::cmp::Reverse(*last));
        for (key, _) in unrouted.into_iter().skip(KEEP_UNROUTED) {
            models.remove(&key);
        }
        drop(models);
        self.metrics.retain_routes(|stats| served.iter().any(|s| Arc::ptr_eq(&s.stats, stats)));
    }

    async fn resolve_all(&self, spec: &DeploymentSpec) -> steward_core::Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        for m in std::iter::once(&spec.model).chain(spec.challenger.as_ref().map(|c| &c.model)).chain(spec.shadow.as_ref()) {
            let mv = self.resolve(spec, m).await?;
            out.push((mv.name, mv.version));
        }
        Ok(out)
    }

    /// Binds every model the spec names to its registered model's immutable id (kept in the
    /// spec, stored with it). A name already bound must still be that model: one deleted and
    /// created again under the same name is refused.
    pub async fn bind(&self, spec: &mut DeploymentSpec) -> steward_core::Result<()> {
        let names: std::collections::BTreeSet<String> = spec.refs().map(|m| m.model_name().to_owned()).collect();
        spec.model_ids.retain(|name, _| names.contains(name));
        for name in names {
            let id = self.store.get_registered_model(&name).await.map_err(|e| in_spec(spec, &name, e))?.id;
            match spec.model_ids.get(&name) {
                Some(bound) if *bound != id => return Err(swapped(spec, &name, bound, &id)),
                Some(_) => {}
                None => {
                    spec.model_ids.insert(name, id);
                }
            }
        }
        Ok(())
    }

    /// Builds routes without installing them: resolves references (through the models the
    /// spec is bound to) and loads models, checking each file against its recorded digest.
    pub async fn build(&self, spec: &DeploymentSpec) -> steward_core::Result<Routes> {
        let load = |m: ModelRef, role: RouteRole| async move {
            let mv = self.resolve(spec, &m).await?;
            let runtime = self.load(&mv).await?;
            let (name, version) = (mv.name, mv.version);
            let stats = self.metrics.route(&spec.name, role.as_str(), &name, version);
            let explainer = match runtime.metadata(METADATA_KEY).map(Explainer::from_json) {
                Some(Ok(e)) => Some(Arc::new(e)),
                Some(Err(e)) => {
                    tracing::warn!(model = %name, version, "reason codes unavailable: {e}");
                    None
                }
                None => None,
            };
            Ok::<_, Error>(Arc::new(Served { model: name, version, runtime, stats, explainer }))
        };
        let champion = load(spec.model.clone(), RouteRole::Champion).await?;
        let challenger = match &spec.challenger {
            Some(c) => Some(load(c.model.clone(), RouteRole::Challenger).await?),
            None => None,
        };
        let shadow = match &spec.shadow {
            Some(m) => Some(load(m.clone(), RouteRole::Shadow).await?),
            None => None,
        };
        Ok(Routes { spec: spec.clone(), champion, challenger, shadow })
    }

    /// The version a reference names now, after checking that its model is the one the spec
    /// is bound to (specs stored before binding existed are taken by name).
    async fn resolve(&self, spec: &DeploymentSpec, m: &ModelRef) -> steward_core::Result<ModelVersion> {
        let name = m.model_name();
        let not_found = |e: Error| if e.code() == ErrorCode::ResourceDoesNotExist { Error::invalid(format!("{m}: {}", e.message())) } else { e };
        if let Some(bound) = spec.model_ids.get(name) {
            let id = self.store.get_registered_model(name).await.map_err(not_found)?.id;
            if id != *bound {
                return Err(swapped(spec, name, bound, &id));
            }
        }
        match m {
            ModelRef::Alias { name, alias } => self.store.version_by_alias(name, alias).await.map_err(not_found),
            ModelRef::Version { name, version } => self.store.get_model_version(name, *version).await.map_err(not_found),
        }
    }

    /// The runtime for a registry version, loaded once and cached by model id and version.
    /// The file must have the digest recorded for the version; a version registered before
    /// its file existed gets the digest it has when first served.
    async fn load(&self, mv: &ModelVersion) -> steward_core::Result<Arc<Model>> {
        let (name, version) = (mv.name.as_str(), mv.version);
        let id = self.store.get_registered_model(name).await?.id;
        let key = (id, version);
        if let Some((m, _)) = self.models.lock().await.get(&key) {
            return Ok(m.clone());
        }
        let uri = self.store.download_uri(name, version).await?;
        let what = format!("version {version} of model '{name}'");
        let bytes = model_file(&self.artifacts, &uri, &what).await?;
        let digest = content_digest(&bytes);
        let recorded = match &mv.content_digest {
            Some(d) => d.clone(),
            None => self.store.record_content_digest(&Audit::new("serving", Some(format!("first served: {what}")), digest.as_bytes()), name, version, &digest).await?,
        };
        if recorded != digest {
            return Err(Error::invalid(format!("{what}: its model file has digest {digest}, not the {recorded} recorded for the version; refusing to serve a changed artifact")));
        }
        let model = tokio::task::spawn_blocking(move || Model::load(&bytes))
            .await
            .map_err(|e| Error::internal(format!("loading {what}: {e}")))?
            .map_err(|e| Error::invalid(format!("{what}: {e}")))?;
        let model = Arc::new(model);
        self.models.lock().await.insert(key, (model.clone(), Instant::now()));
        Ok(model)
    }

    /// Takes a place in the scoring queue, or refuses at once when it is full — before the
    /// request's body is read, so a shed request costs next to nothing.
    pub fn admit(&self) -> Result<Ticket<'_>, InferError> {
        use std::sync::atomic::Ordering;
        let a = &self.admission;
        if a.waiting.fetch_add(1, Ordering::AcqRel) >= a.queue {
            a.waiting.fetch_sub(1, Ordering::AcqRel);
            self.metrics.overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(InferError::Overloaded(format!("scoring is at capacity (every turn taken, {} requests waiting); retry shortly", a.queue)));
        }
        Ok(Ticket { admission: a, waiting: true })
    }

    /// Reads a scoring request's body (within `limit`) and runs its work (parsing,
    /// inference, encoding) under admission control (see [`Admission`]).
    /// `work` answers with the response and, in durable mode, the receiver told when the
    /// prediction's record is committed: the response waits for it.
    pub async fn score(&self, req: axum::extract::Request, work: impl FnOnce(axum::http::HeaderMap, bytes::Bytes) -> Result<Scored, InferError> + Send + 'static) -> axum::response::Response {
        use axum::response::IntoResponse as _;
        let ticket = match self.admit() {
            Ok(t) => t,
            Err(e) => return e.into_response(),
        };
        let headers = req.headers().clone();
        let body = match read_body(req, crate::SCORING_BODY_LIMIT).await {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        };
        // A large body leaves large buffers behind (tensors, the answer): give them back.
        let _give_back = (body.len() >= crate::memory::LARGE).then(|| crate::memory::GiveBack);
        let inline = self.admission.inline && body.len() <= INLINE_BYTES;
        let (response, logged) = match ticket.run(inline, move || work(headers, body)).await {
            Ok(scored) => scored,
            Err(e) => return e.into_response(),
        };
        match logged {
            None => response,
            Some(committed) => match committed.await {
                Ok(true) => response,
                _ => InferError::Overloaded("the prediction could not be written to the log, and in durable mode it is not answered unlogged; retry".into()).into_response(),
            },
        }
    }

    /// The inference path of every protocol: route, validate, evaluate, log, shadow.
    /// `key` makes routing sticky; `context` is stored with the prediction.
    /// `reasons`: how many reason codes per row to return (0: none).
    pub fn infer(self: &Arc<Self>, deployment: &str, key: Option<&str>, inputs: Vec<Tensor>, context: Option<String>, reasons: usize) -> Result<Answer, InferError> {
        let Some(routes) = self.routes(deployment) else {
            self.metrics.unknown_deployment.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(InferError::UnknownDeployment(format!("deployment '{deployment}' does not exist")));
        };
        if inputs.first().is_some_and(|t| t.rows() > routes.spec.max_rows()) {
            return Err(RuntimeError::TooManyRows { max: routes.spec.max_rows() }.into());
        }
        let role = routes.spec.route(key, fastrand::u32(0..100));
        let served = routes.served(role).clone();
        if reasons > 0 && served.explainer.is_none() {
            served.stats.bad_input();
            return Err(InferError::BadInput(format!("{} version {} gives no reason codes: it was not trained by Steward", served.model, served.version)));
        }
        let started = Instant::now();
        let outputs = match served.runtime.predict(&inputs) {
            Ok(o) => o,
            Err(e) => {
                if e.is_bad_input() { served.stats.bad_input() } else { served.stats.error() }
                return Err(e.into());
            }
        };
        let elapsed = started.elapsed();
        served.stats.observe(elapsed.as_secs_f64());
        let reason_codes = match (reasons, &served.explainer) {
            (0, _) => None,
            (k, Some(e)) => Some(e.reason_codes(&explained_rows(e, &inputs).map_err(InferError::BadInput)?, k)),
            (_, None) => None,
        };
        let prediction_id = uuid::Uuid::new_v4().simple().to_string();
        let now = now_ms();
        let shadow_inputs = routes.shadow.as_ref().map(|_| inputs.clone());
        let logged = self
            .log
            .push_answered(&self.metrics, LogItem {
                id: prediction_id.clone(),
                deployment: deployment.to_owned(),
                model: served.model.clone(),
                version: served.version,
                route: role,
                parent_id: None,
                time: now,
                latency_us: elapsed.as_micros() as i64,
                inputs,
                outputs: outputs.clone(),
                context: context.clone(),
            })
            .map_err(|()| InferError::Overloaded("the prediction log is full, and in durable mode a prediction is not answered unlogged; retry shortly".into()))?;
        if let (Some(shadow), Some(inputs)) = (routes.shadow.clone(), shadow_inputs) {
            // The shadow's copy is scored on the blocking pool, off the answer's path.
            let (me, parent, deployment) = (self.clone(), prediction_id.clone(), deployment.to_owned());
            tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                match shadow.runtime.predict(&inputs) {
                    Ok(outputs) => {
                        let elapsed = started.elapsed();
                        shadow.stats.observe(elapsed.as_secs_f64());
                        me.log.push(&me.metrics, LogItem {
                            id: uuid::Uuid::new_v4().simple().to_string(),
                            deployment,
                            model: shadow.model.clone(),
                            version: shadow.version,
                            route: RouteRole::Shadow,
                            parent_id: Some(parent),
                            time: now_ms(),
                            latency_us: elapsed.as_micros() as i64,
                            inputs,
                            outputs,
                            context,
                        });
                    }
                    Err(_) => shadow.stats.error(),
                }
            });
        }
        Ok(Answer { prediction_id, route: role, model: served.model.clone(), version: served.version, outputs, reason_codes, logged })
    }
}

/// `sha256:` and the hex digest of a model file.
pub fn content_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", steward_core::audit::sha256_hex(bytes))
}

/// The model file of a version whose files are at `uri`: `model.onnx`, or else the first
/// `.onnx` file by name.
pub async fn model_file(artifacts: &ArtifactStore, uri: &str, what: &str) -> steward_core::Result<bytes::Bytes> {
    let Some(rel) = uri.strip_prefix("mlflow-artifacts:/") else {
        return Err(Error::invalid(format!("{what} lives at '{uri}', which this server does not read; log it through this server's artifact proxy")));
    };
    let rel = rel.trim_matches('/');
    let files = artifacts.list(rel).await?;
    let onnx = files
        .iter()
        .filter(|f| !f.is_dir && f.path.ends_with(".onnx"))
        .min_by_key(|f| (f.path != "model.onnx", f.path.clone()))
        .ok_or_else(|| Error::invalid(format!("{what} has no .onnx file under '{uri}' (log it with mlflow.onnx.log_model)")))?;
    artifacts.get_bytes(&format!("{rel}/{}", onnx.path)).await
}

fn in_spec(spec: &DeploymentSpec, name: &str, e: Error) -> Error {
    if e.code() == ErrorCode::ResourceDoesNotExist { Error::invalid(format!("deployment '{}' names model '{name}': {}", spec.name, e.message())) } else { e }
}

fn swapped(spec: &DeploymentSpec, name: &str, bound: &str, now: &str) -> Error {
    Error::invalid(format!(
        "deployment '{}' is bound to the model that was named '{name}' (id {bound}); the model named '{name}' now is another one (id {now}): it was deleted or renamed away and replaced, so the deployment will not serve it",
        spec.name
    ))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
