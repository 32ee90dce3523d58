//! The agent loop: every few seconds it observes each policy's deployment (the monitor's
//! metric series), asks `steward_agent::decide` what to do, and acts — opens incidents with
//! their evidence, queues actions that need a human, runs the ones that do not and the ones a
//! human approved — recording every step in the store and the ledger. Available actions:
//! `notify` (an incident note in the ledger) and `retrain` (the policy's pipeline, run as
//! `steward pipeline run` against this server; its deploy step adds the new version as a
//! canary). Canaries of a policy's deployment are judged from each route's serving counters and
//! logged answers since the last step: the agent steps the challenger's traffic, rolls it back
//! at once when a gate fails, and promotes it — or queues the promotion for approval — after
//! the last step. Triggers may also ask for `start_canary` (the version the champion model's
//! `challenger` alias names, pinned, on the first traffic step), `rollback`, `promote` and `pause` (the stop
//! switch: all traffic to the fallback version). Every incident gets a written analysis: the
//! rule-based one at once, and a language model's advice when one is configured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use steward_agent::{reason, Action, ActionKind, CanaryState, Observations, Point, Policy, RouteStats, State, decide};
use steward_core::audit::Audit;
use steward_core::serving::{AgentAction, Challenger, DeploymentSpec, Incident, ModelRef, MonitorMetric, PredictionRecord, RouteRole};
use steward_core::{Error, Result};
use steward_store::MetadataStore;

use crate::reasoner::LlmReasoner;
use crate::serving::Serving;
use crate::serving::metrics::Snapshot;
use crate::serving::monitor::{MonitorSpec, answered, answers as answers_of, decisions, judge_labels};

/// How often the agent looks, unless told otherwise.
pub const TICK: Duration = Duration::from_secs(2);
/// The windows of each series the agent reads per tick: at least the 12 recent windows an
/// incident's analysis quotes (`analyse`), at most what a trigger may ask for.
const RECENT_WINDOWS: usize = 12;
const MAX_WINDOWS: usize = steward_agent::policy::MAX_TRIGGER_WINDOWS;
const ALL_KINDS: [ActionKind; 6] = [ActionKind::Notify, ActionKind::Retrain, ActionKind::StartCanary, ActionKind::Promote, ActionKind::Rollback, ActionKind::Pause];

fn agent_audit(what: &str) -> Audit {
    Audit::new("agent", Some(what.to_owned()), what.as_bytes())
}

fn kind_name(k: ActionKind) -> &'static str {
    match k {
        ActionKind::Retrain => "retrain",
        ActionKind::StartCanary => "start_canary",
        ActionKind::Promote => "promote",
        ActionKind::Rollback => "rollback",
        ActionKind::Pause => "pause",
        ActionKind::Notify => "notify",
    }
}

/// Refuses policies that ask for what they do not provide for, naming it.
pub fn check(policies: &[Policy]) -> Result<()> {
    for p in policies {
        for t in &p.triggers {
            for a in &t.actions {
                if *a == ActionKind::Retrain && p.retrain.is_none() {
                    return Err(Error::invalid(format!("policy for '{}', trigger '{}': 'retrain' needs `retrain: {{pipeline: FILE}}`", p.deployment, t.name)));
                }
            }
        }
        if let Some(r) = p.retrain.as_ref().filter(|r| !std::path::Path::new(&r.pipeline).is_file()) {
            return Err(Error::invalid(format!("policy for '{}': retraining pipeline '{}' does not exist", p.deployment, r.pipeline)));
        }
    }
    Ok(())
}

pub struct Agent {
    pub store: Arc<dyn MetadataStore>,
    pub serving: Arc<Serving>,
    pub policies: Vec<Policy>,
    /// This server's URL, for the pipelines the agent runs.
    pub url: String,
    pub exe: PathBuf,
    /// Per canary (deployment, challenger version): the champion's counters and the time when
    /// the agent first saw it; per step (and weight): the challenger's. The champion is compared
    /// over the whole canary (at 100% it gets no traffic), the challenger over the step.
    pub baselines: Mutex<Baselines>,
    /// The optional language-model reasoner (advice only).
    pub reasoner: Option<Arc<LlmReasoner>>,
    /// How often it looks ([`TICK`] in the server).
    pub tick: Duration,
    /// The registry aliases that say what production serves; a promotion moves one of them.
    pub protected_aliases: Vec<String>,
}

#[derive(Default)]
pub struct Baselines {
    canaries: HashMap<(String, i64), (Snapshot, i64)>,
    steps: HashMap<(String, i64, u8), (Snapshot, i64)>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Agent {
    /// An agent for these policies, acting on this server (`url`, serving `state`) with this
    /// executable's pipelines, looking every [`TICK`], with no language model.
    pub fn new(state: &crate::AppState, policies: Vec<Policy>, url: String) -> std::io::Result<Self> {
        Ok(Agent {
            store: state.store.clone(),
            serving: state.serving.clone(),
            policies,
            url,
            exe: std::env::current_exe()?,
            baselines: Default::default(),
            reasoner: None,
            tick: TICK,
            protected_aliases: state.protected_aliases.to_vec(),
        })
    }

    pub fn start(self) {
        let me = Arc::new(self);
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.tick().await {
                    tracing::warn!("agent tick failed: {}", e.message());
                }
                tokio::time::sleep(me.tick).await;
            }
        });
    }

    async fn tick(self: &Arc<Self>) -> Result<()> {
        let mut points = Vec::new();
        let mut state = State::default();
        // Only the unfinished actions: finished ones pile up forever and decide nothing.
        let mut actions = Vec::new();
        for status in ["pending", "approved", "running"] {
            actions.extend(self.store.actions(Some(status)).await?);
        }
        // Each deployment is read once, however many policies name it, and only as far back as
        // decisions look: the latest windows of each series, as many as the longest trigger
        // asks for (at least the analysis's recent windows), and the open incidents.
        let mut deployments: Vec<&str> = self.policies.iter().map(|p| p.deployment.as_str()).collect();
        deployments.sort_unstable();
        deployments.dedup();
        for d in deployments {
            let longest = self.policies.iter().filter(|p| p.deployment == d).flat_map(|p| p.triggers.iter().map(|t| t.windows)).max().unwrap_or(1);
            let windows = longest.clamp(RECENT_WINDOWS, MAX_WINDOWS);
            for m in self.store.monitor_metrics_latest(d, windows).await? {
                points.push(Point { deployment: m.deployment, metric: m.metric, feature: m.feature, window_end: m.window_end, value: m.value });
            }
            for i in self.store.open_incidents(d).await? {
                state.open_incidents.push((i.deployment, i.trigger));
            }
            for a in actions.iter().filter(|a| a.deployment == d) {
                if let Some(k) = ALL_KINDS.into_iter().find(|k| kind_name(*k) == a.kind) {
                    state.pending.push((a.deployment.clone(), k));
                }
            }
        }
        let now = now_ms();
        let mut canaries = Vec::new();
        for p in &self.policies {
            if let Some(c) = self.canary(&p.deployment, now).await? {
                canaries.push(c);
            }
        }
        let mut incident_of = std::collections::HashMap::new();
        let observations = Observations { points, canaries };
        for action in decide(&observations, &self.policies, &state) {
            match action {
                Action::OpenIncident { deployment, trigger, kind, evidence } => {
                    let id = uuid::Uuid::new_v4().simple().to_string();
                    let incident = Incident {
                        id: id.clone(),
                        deployment: deployment.clone(),
                        trigger: trigger.clone(),
                        kind: serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                        evidence: serde_json::to_value(&evidence).unwrap_or_default(),
                        status: "open".into(),
                        opened: now,
                        analyses: Vec::new(),
                    };
                    self.store.open_incident(&agent_audit(&format!("{trigger} fired on {deployment}")), &incident).await?;
                    tracing::info!(deployment, trigger, incident = id, "incident opened");
                    // An analysis that cannot be written must not keep the incident's actions from
                    // being queued: the incident is open and its trigger will not fire again.
                    if let Err(e) = self.analyse(&id, &deployment, &trigger, &evidence, &observations.points).await {
                        tracing::error!(incident = id, "writing the incident's analysis failed: {}", e.message());
                    }
                    incident_of.insert((deployment, trigger), id);
                }
                Action::Execute { deployment, kind, reason, trigger } | Action::RequestApproval { deployment, kind, reason, trigger } => {
                    // `decide` asks for approval exactly where the policy says a human decides.
                    let pending = self.policies.iter().find(|p| p.deployment == deployment).is_none_or(|p| p.needs_approval(kind));
                    let a = AgentAction {
                        id: uuid::Uuid::new_v4().simple().to_string(),
                        incident_id: trigger.and_then(|t| incident_of.get(&(deployment.clone(), t)).cloned()),
                        deployment,
                        kind: kind_name(kind).into(),
                        status: if pending { "pending" } else { "approved" }.into(),
                        reason,
                        requested: now,
                        decided_by: None,
                        decision_reason: None,
                        outcome: None,
                        updated: now,
                    };
                    self.store.add_action(&agent_audit(&a.reason), &a).await?;
                }
                Action::CanaryStep { deployment, weight, reason } => {
                    let result = self.change(&deployment, &reason, |spec| match spec.challenger.as_mut() {
                        Some(c) => {
                            c.weight = u32::from(weight);
                            Ok(())
                        }
                        None => Err(Error::invalid("the canary is gone")),
                    });
                    let (status, note) = match result.await {
                        Ok(()) => ("done", format!("challenger at {weight}%: {reason}")),
                        Err(e) => ("failed", e.message().to_owned()),
                    };
                    let a = AgentAction { id: uuid::Uuid::new_v4().simple().to_string(), incident_id: None, deployment, kind: "canary_step".into(), status: status.into(), reason: note, requested: now, decided_by: None, decision_reason: None, outcome: None, updated: now };
                    self.store.add_action(&agent_audit(&a.reason), &a).await?;
                }
            }
        }
        // Run what is approved: by policy (no human needed) or by a human.
        for a in self.store.actions(Some("approved")).await? {
            self.store.mark_action(&agent_audit("started"), &a.id, "running", "").await?;
            let me = self.clone();
            tokio::spawn(async move {
                let (status, note) = match me.run(&a).await {
                    Ok(note) => ("done", note),
                    Err(e) => ("failed", e),
                };
                if let Err(e) = me.store.mark_action(&agent_audit(&note), &a.id, status, &note).await {
                    tracing::error!(action = a.id, "recording the outcome failed: {}", e.message());
                }
            });
        }
        Ok(())
    }

    async fn run(&self, a: &AgentAction) -> std::result::Result<String, String> {
        match a.kind.as_str() {
            "notify" => Ok(format!("noted: {}", a.reason)),
            "retrain" => {
                let pipeline = self.policies.iter().find(|p| p.deployment == a.deployment).and_then(|p| p.retrain.as_ref()).ok_or("no retraining pipeline declared")?.pipeline.clone();
                let trigger = format!("agent incident {}", a.incident_id.as_deref().unwrap_or("-"));
                let out = tokio::process::Command::new(&self.exe)
                    .args(["pipeline", "run", &pipeline, "--tracking-uri", &self.url, "--trigger", &trigger])
                    .env("STEWARD_AGENT_ACTION", &a.id)
                    .output()
                    .await
                    .map_err(|e| format!("starting the pipeline: {e}"))?;
                if out.status.success() {
                    // The pipeline's step summaries: what was trained, evaluated, gated, registered.
                    let text = String::from_utf8_lossy(&out.stdout);
                    let steps: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
                    Ok(if steps.is_empty() { "pipeline finished".into() } else { steps.join(" | ") })
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
                }
            }
            "rollback" => self
                .change(&a.deployment, &a.reason, |spec| {
                    spec.challenger = None;
                    Ok(())
                })
                .await
                .map(|()| format!("challenger removed: {}", a.reason))
                .map_err(|e| e.message().to_owned()),
            "promote" => self.promote(a).await.map_err(|e| e.message().to_owned()),
            "start_canary" => {
                // The version the champion model's `challenger` alias names now, pinned: a later
                // alias move cannot swap an unvetted version into a running canary.
                let routes = self.serving.routes(&a.deployment).ok_or("the deployment is not loaded")?;
                let model = routes.champion.model.clone();
                let version = self.store.version_by_alias(&model, "challenger").await.map_err(|e| e.message().to_owned())?.version;
                if version == routes.champion.version {
                    return Err(format!("{model}@challenger is version {version}, the champion itself"));
                }
                let first = self.policies.iter().find(|p| p.deployment == a.deployment).and_then(|p| p.canary.steps.first().copied()).unwrap_or(10);
                let pinned = ModelRef::Version { name: model.clone(), version };
                self.change(&a.deployment, &a.reason, |spec| {
                    if spec.challenger.is_some() {
                        return Err(Error::invalid("a canary is already running"));
                    }
                    spec.challenger = Some(Challenger { model: pinned, weight: u32::from(first) });
                    Ok(())
                })
                .await
                .map(|()| format!("{model} version {version} (the challenger alias) at {first}%"))
                .map_err(|e| e.message().to_owned())
            }
            "pause" => self
                .change(&a.deployment, &a.reason, |spec| {
                    spec.model = spec.fallback.take().ok_or_else(|| Error::invalid("the deployment has no fallback version"))?;
                    spec.challenger = None;
                    Ok(())
                })
                .await
                .map(|()| format!("stopped: all traffic on the fallback ({})", a.reason))
                .map_err(|e| e.message().to_owned()),
            other => Err(format!("action '{other}' is not available yet")),
        }
    }

    /// Writes the incident's rule-based analysis and, with a language model configured, asks it
    /// for advice in the background (given the incident, the policy, the rule-based analysis and
    /// the metric's recent windows); both are stored with the incident and in the ledger.
    async fn analyse(&self, id: &str, deployment: &str, trigger: &str, evidence: &steward_agent::Evidence, points: &[Point]) -> Result<()> {
        let Some((policy, t)) = self.policies.iter().find(|p| p.deployment == deployment).and_then(|p| p.triggers.iter().find(|t| t.name == trigger).map(|t| (p, t))) else { return Ok(()) };
        let rules = reason::analyse(policy, t, evidence);
        self.store.add_analysis(&agent_audit("rule-based analysis"), id, reason::RULES, &rules).await?;
        let Some(llm) = self.reasoner.clone() else { return Ok(()) };
        let mut recent: Vec<(i64, f64)> = points.iter().filter(|p| p.deployment == deployment && p.metric == evidence.metric && p.feature == evidence.feature).map(|p| (p.window_end, p.value)).collect();
        recent.sort_by_key(|(t, _)| *t);
        let recent = &recent[recent.len().saturating_sub(12)..];
        let routes = self.serving.routes(deployment).map(|r| r.json(None));
        let prompt = reason::prompt(policy, t, evidence, &rules, serde_json::json!({ "recent_windows": recent, "deployment": routes }));
        let (store, id) = (self.store.clone(), id.to_owned());
        tokio::spawn(async move {
            match llm.ask(&prompt).await {
                Ok(text) => {
                    if let Err(e) = store.add_analysis(&agent_audit(&format!("advisory analysis by {}", llm.source())), &id, &llm.source(), &text).await {
                        tracing::error!(incident = id, "storing the advisory analysis failed: {}", e.message());
                    }
                }
                Err(e) => tracing::warn!(incident = id, "the language-model reasoner gave no analysis: {e}"),
            }
        });
        Ok(())
    }

    /// Promotes the challenger: the registry alias that names production's version moves to it
    /// and the deployment serves it as champion (the previous champion its fallback), in one
    /// transaction recorded with the action, its approver and its evidence. The alias is the
    /// protected one the champion route follows, else the one the champion's version holds,
    /// else the first protected alias.
    async fn promote(&self, a: &AgentAction) -> Result<String> {
        let routes = self.serving.routes(&a.deployment).ok_or_else(|| Error::invalid("the deployment is not loaded"))?;
        let challenger = routes.challenger.clone().ok_or_else(|| Error::invalid("there is no challenger to promote"))?;
        let (model, version) = (challenger.model.clone(), challenger.version);
        let protected = |alias: &str| self.protected_aliases.iter().any(|p| p.eq_ignore_ascii_case(alias));
        let mut spec = self.store.get_deployment(&a.deployment).await?.spec;
        let followed = match &spec.model {
            ModelRef::Alias { name, alias } if *name == model && protected(alias) => Some(alias.clone()),
            _ => None,
        };
        let alias = match followed.clone() {
            Some(alias) => alias,
            None => {
                // The champion's own protected alias, when the challenger is a version of the same model.
                let held = if routes.champion.model == model { self.store.get_model_version(&model, routes.champion.version).await?.aliases } else { Vec::new() };
                let first = self.protected_aliases.first().cloned().ok_or_else(|| Error::invalid("no protected alias is configured"))?;
                held.into_iter().find(|h| protected(h)).unwrap_or(first)
            }
        };
        let pinned = ModelRef::Version { name: model.clone(), version };
        spec.fallback = Some(ModelRef::Version { name: routes.champion.model.clone(), version: routes.champion.version });
        spec.challenger = None;
        // Load the new champion before the alias moves, then install routes that follow it.
        let mut load = DeploymentSpec { model: pinned.clone(), ..spec.clone() };
        self.serving.bind(&mut load).await?;
        let mut built = self.serving.build(&load).await?;
        if followed.is_none() {
            spec.model = pinned;
        }
        self.serving.bind(&mut spec).await?;
        built.spec = spec.clone();
        let approved = a.decided_by.as_deref().map(|who| format!(", approved by {who}")).unwrap_or_default();
        let why = format!("agent action {} (promote{approved}): {}", a.id, a.reason);
        self.store.promote(&agent_audit(&why), &spec, &model, &alias, version).await?;
        self.serving.install_synced(built).await;
        self.serving.registry_changed();
        Ok(format!("{model} version {version} is the champion (alias '{alias}' moved to it)"))
    }

    /// Changes a deployment as `PATCH /api/steward/v1/deployments/NAME` would: models loaded
    /// first, the change stored (a ledger entry by the agent), then the routes swapped at once.
    async fn change(&self, deployment: &str, why: &str, edit: impl FnOnce(&mut DeploymentSpec) -> Result<()>) -> Result<()> {
        let mut spec = self.store.get_deployment(deployment).await?.spec;
        edit(&mut spec)?;
        spec.validate()?;
        self.serving.bind(&mut spec).await?;
        let routes = self.serving.build(&spec).await?;
        self.store.put_deployment(&agent_audit(why), &spec, false).await?;
        self.serving.install_synced(routes).await;
        Ok(())
    }

    /// The canary of a deployment, if it has a challenger: each route's requests, errors, p95
    /// latency, positive rate, adverse impact ratio and (once labels arrive) ROC AUC since the
    /// agent first saw this step.
    async fn canary(&self, deployment: &str, now: i64) -> Result<Option<CanaryState>> {
        // Baselines of canaries and steps that are over are dropped: only the current ones stay.
        let forget = |keep: Option<(i64, u8)>| {
            let mut b = self.baselines.lock().expect("baselines lock");
            b.canaries.retain(|(d, v), _| d != deployment || keep.is_some_and(|k| k.0 == *v));
            b.steps.retain(|(d, v, w), _| d != deployment || keep == Some((*v, *w)));
        };
        let Some(routes) = self.serving.routes(deployment) else {
            forget(None);
            return Ok(None);
        };
        let (Some(challenger), Some(spec)) = (routes.challenger.clone(), routes.spec.challenger.clone()) else {
            forget(None);
            return Ok(None);
        };
        // Weights are percentages (validated 1..=99 or 100).
        let weight = u8::try_from(spec.weight).unwrap_or(100);
        forget(Some((challenger.version, weight)));
        let (champ_now, chal_now) = (routes.champion.stats.snapshot(), challenger.stats.snapshot());
        let ((base_champ, started), (base_chal, stepped)) = {
            let mut b = self.baselines.lock().expect("baselines lock");
            let canary = *b.canaries.entry((deployment.to_owned(), challenger.version)).or_insert((champ_now, now));
            let step = *b.steps.entry((deployment.to_owned(), challenger.version, weight)).or_insert((chal_now, now));
            (canary, step)
        };
        let (champ, chal) = (champ_now.since(&base_champ), chal_now.since(&base_chal));
        // Each route's answers logged since the canary began (the champion's) or since the step
        // (the challenger's), and those whose labels have arrived, judged as the deployment's
        // monitor judges a window: positive rate and adverse impact ratio from the answers, ROC
        // AUC from the labels (with the monitor's outputs, fairness and quality settings).
        let monitor = self.store.monitors().await?.into_iter().find(|m| m.deployment == deployment).and_then(|m| serde_json::from_str::<MonitorSpec>(&m.spec).ok());
        let from = |role: RouteRole| if role == RouteRole::Challenger { stepped } else { started };
        // Each route read from its own start and by its own route in the store (at most 20,000
        // records each), so neither a long canary's champion history nor the other routes'
        // traffic (shadow included) can crowd out the challenger's current step.
        let mut answers: HashMap<RouteRole, Vec<PredictionRecord>> = HashMap::new();
        let mut labelled: HashMap<RouteRole, Vec<(PredictionRecord, Value, i64)>> = HashMap::new();
        for role in [RouteRole::Champion, RouteRole::Challenger] {
            let since = from(role);
            answers.insert(role, self.store.predictions_of_route(deployment, role, since, 20_000).await?);
            labelled.insert(role, self.store.labelled_of_route(deployment, role, since, 20_000).await?);
        }
        let stats = |s: &Snapshot, role: RouteRole| {
            let records = answers.get(&role).map(Vec::as_slice).unwrap_or_default();
            let labels = labelled.get(&role).map(Vec::as_slice).unwrap_or_default();
            let mut out = RouteStats { requests: s.requests, errors: s.failures, latency_p95_ms: s.p95_ms(), ..Default::default() };
            let outputs = monitor.as_ref().map(|m| m.outputs.clone()).unwrap_or_default();
            out.labelled_rows = labels.iter().map(|(r, _, _)| answered(&outputs, &serde_json::from_str(&r.outputs).unwrap_or(Value::Null), 0.5).rows() as u64).sum();
            match &monitor {
                Some(spec) => {
                    let value = |metrics: &[MonitorMetric], name: &str| metrics.iter().find(|m| m.metric == name && m.feature.is_empty()).map(|m| m.value);
                    if !records.is_empty() {
                        let (m, _) = decisions(deployment, spec, records, &answers_of(spec, records));
                        out.positive_rate = value(&m, "positive_rate").unwrap_or(0.0);
                        out.adverse_impact_ratio = value(&m, "adverse_impact_ratio");
                    }
                    if !labels.is_empty() {
                        out.roc_auc = value(&judge_labels(deployment, spec, labels).0, "roc_auc");
                    }
                }
                None => {
                    let answered: Vec<Option<String>> = records.iter().flat_map(|r| answered(&outputs, &serde_json::from_str(&r.outputs).unwrap_or(Value::Null), 0.5).labels).collect();
                    let known = answered.iter().flatten().count();
                    out.positive_rate = if known == 0 { 0.0 } else { answered.iter().flatten().filter(|l| *l == "1").count() as f64 / known as f64 };
                }
            }
            out
        };
        Ok(Some(CanaryState {
            deployment: deployment.to_owned(),
            challenger_version: challenger.version,
            weight,
            champion: stats(&champ, RouteRole::Champion),
            challenger: stats(&chal, RouteRole::Challenger),
        }))
    }
}
