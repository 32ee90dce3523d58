//! The agent loop: every few seconds it observes each policy's deployment (the monitor's
//! metric series), asks `steward_agent::decide` what to do, and acts — opens incidents with
//! their evidence, queues actions that need a human, runs the ones that do not and the ones a
//! human approved — recording every step in the store and the ledger. Available actions:
//! `notify` (an incident note in the ledger) and `retrain` (the policy's pipeline, run as
//! `steward pipeline run` against this server; its deploy step adds the new version as a
//! canary). Canaries of a policy's deployment are judged from each route's serving counters and
//! logged answers since the last step: the agent steps the challenger's traffic, rolls it back
//! at once when a gate fails, and promotes it — or queues the promotion for approval — after
//! the last step. Triggers may also ask for `rollback`, `promote` and `pause` (the stop switch:
//! all traffic to the fallback version). Starting a canary from a registered version comes
//! with the next part of the agent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use steward_agent::{Action, ActionKind, CanaryState, Observations, Point, Policy, RouteStats, State, decide};
use steward_core::audit::Audit;
use steward_core::serving::{AgentAction, DeploymentSpec, Incident, ModelRef, RouteRole};
use steward_core::{Error, Result};
use steward_store::MetadataStore;

use crate::serving::Serving;
use crate::serving::metrics::Snapshot;
use crate::serving::monitor::{Outputs, answered};

const TICK: Duration = Duration::from_secs(2);
const ALL_KINDS: [ActionKind; 6] = [ActionKind::Notify, ActionKind::Retrain, ActionKind::StartCanary, ActionKind::Promote, ActionKind::Rollback, ActionKind::Pause];
const AVAILABLE: [ActionKind; 5] = [ActionKind::Notify, ActionKind::Retrain, ActionKind::Rollback, ActionKind::Promote, ActionKind::Pause];

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

/// Refuses policies that ask for what this agent cannot do yet, naming it.
pub fn check(policies: &[Policy]) -> Result<()> {
    for p in policies {
        for t in &p.triggers {
            for a in &t.actions {
                if !AVAILABLE.contains(a) {
                    return Err(Error::invalid(format!("policy for '{}', trigger '{}': action '{}' is not available yet (available: notify, retrain, rollback, promote, pause)", p.deployment, t.name, kind_name(*a))));
                }
                if *a == ActionKind::Retrain && p.retrain.is_none() {
                    return Err(Error::invalid(format!("policy for '{}', trigger '{}': 'retrain' needs `retrain: {{pipeline: FILE}}`", p.deployment, t.name)));
                }
            }
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
    pub fn start(self) {
        let me = Arc::new(self);
        tokio::spawn(async move {
            loop {
                if let Err(e) = me.tick().await {
                    tracing::warn!("agent tick failed: {}", e.message());
                }
                tokio::time::sleep(TICK).await;
            }
        });
    }

    async fn tick(self: &Arc<Self>) -> Result<()> {
        let mut points = Vec::new();
        let mut state = State::default();
        let actions = self.store.actions(None).await?;
        for p in &self.policies {
            for m in self.store.monitor_metrics(&p.deployment, None).await? {
                points.push(Point { deployment: m.deployment, metric: m.metric, feature: m.feature, window_end: m.window_end, value: m.value });
            }
            for i in self.store.incidents(Some(&p.deployment)).await? {
                if i.status == "open" {
                    state.open_incidents.push((i.deployment, i.trigger));
                }
            }
            for a in actions.iter().filter(|a| a.deployment == p.deployment && matches!(a.status.as_str(), "pending" | "approved" | "running")) {
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
        for action in decide(&Observations { points, canaries }, &self.policies, &state) {
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
                    };
                    self.store.open_incident(&agent_audit(&format!("{trigger} fired on {deployment}")), &incident).await?;
                    tracing::info!(deployment, trigger, incident = id, "incident opened");
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
                    let a = AgentAction { id: uuid::Uuid::new_v4().simple().to_string(), incident_id: None, deployment, kind: "canary_step".into(), status: status.into(), reason: note, requested: now, decided_by: None, decision_reason: None, updated: now };
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
                    .output()
                    .await
                    .map_err(|e| format!("starting the pipeline: {e}"))?;
                if out.status.success() {
                    Ok(String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("pipeline finished").to_owned())
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
            "promote" => {
                let routes = self.serving.routes(&a.deployment).ok_or("the deployment is not loaded")?;
                let challenger = routes.challenger.clone().ok_or("there is no challenger to promote")?;
                let (model, version) = (challenger.model.clone(), challenger.version);
                let previous = ModelRef::Version { name: routes.champion.model.clone(), version: routes.champion.version };
                self.change(&a.deployment, &a.reason, move |spec| {
                    spec.model = ModelRef::Version { name: model.clone(), version };
                    spec.challenger = None;
                    spec.fallback = Some(previous);
                    Ok(())
                })
                .await
                .map(|()| format!("{} version {} is the champion", challenger.model, challenger.version))
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

    /// Changes a deployment as `PATCH /api/steward/v1/deployments/NAME` would: models loaded
    /// first, the change stored (a ledger entry by the agent), then the routes swapped at once.
    async fn change(&self, deployment: &str, why: &str, edit: impl FnOnce(&mut DeploymentSpec) -> Result<()>) -> Result<()> {
        let mut spec = self.store.get_deployment(deployment).await?.spec;
        edit(&mut spec)?;
        spec.validate()?;
        let routes = self.serving.build(&spec).await?;
        self.store.put_deployment(&agent_audit(why), &spec, false).await?;
        self.serving.install_synced(routes).await;
        Ok(())
    }

    /// The canary of a deployment, if it has a challenger: each route's requests, errors, p95
    /// latency and positive rate since the agent first saw this step.
    async fn canary(&self, deployment: &str, now: i64) -> Result<Option<CanaryState>> {
        let Some(routes) = self.serving.routes(deployment) else { return Ok(None) };
        let (Some(challenger), Some(spec)) = (routes.challenger.clone(), routes.spec.challenger.clone()) else { return Ok(None) };
        // Weights are percentages (validated 1..=99 or 100).
        let weight = u8::try_from(spec.weight).unwrap_or(100);
        let (champ_now, chal_now) = (routes.champion.stats.snapshot(), challenger.stats.snapshot());
        let ((base_champ, started), (base_chal, stepped)) = {
            let mut b = self.baselines.lock().expect("baselines lock");
            let canary = *b.canaries.entry((deployment.to_owned(), challenger.version)).or_insert((champ_now, now));
            let step = *b.steps.entry((deployment.to_owned(), challenger.version, weight)).or_insert((chal_now, now));
            (canary, step)
        };
        let (champ, chal) = (champ_now.since(&base_champ), chal_now.since(&base_chal));
        // Positive (adverse) decisions per route, from the answers logged since the canary began
        // (the champion's) and since the step (the challenger's).
        let mut positives: HashMap<RouteRole, (usize, usize)> = HashMap::new();
        for r in self.store.predictions(deployment, started, 20_000).await? {
            if r.route == RouteRole::Challenger && r.time < stepped {
                continue;
            }
            let labels = answered(&Outputs::default(), &serde_json::from_str(&r.outputs).unwrap_or(Value::Null), 0.5).labels;
            let e = positives.entry(r.route).or_default();
            e.0 += labels.iter().filter(|l| l.as_deref() == Some("1")).count();
            e.1 += labels.len();
        }
        let rate = |role| positives.get(&role).map_or(0.0, |(p, n)| if *n == 0 { 0.0 } else { *p as f64 / *n as f64 });
        let stats = |s: &Snapshot, role| RouteStats { requests: s.requests, errors: s.failures, latency_p95_ms: s.p95_ms(), positive_rate: rate(role), adverse_impact_ratio: None, roc_auc: None };
        Ok(Some(CanaryState {
            deployment: deployment.to_owned(),
            challenger_version: challenger.version,
            weight,
            champion: stats(&champ, RouteRole::Champion),
            challenger: stats(&chal, RouteRole::Challenger),
        }))
    }
}
