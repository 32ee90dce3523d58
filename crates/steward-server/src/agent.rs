//! The agent loop: every few seconds it observes each policy's deployment (the monitor's
//! metric series), asks `steward_agent::decide` what to do, and acts — opens incidents with
//! their evidence, queues actions that need a human, runs the ones that do not and the ones a
//! human approved — recording every step in the store and the ledger. Available actions:
//! `notify` (an incident note in the ledger) and `retrain` (the policy's pipeline, run as
//! `steward pipeline run` against this server). Canary, promotion, rollback and pause come
//! with the next part of the agent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use steward_agent::{Action, ActionKind, Observations, Point, Policy, State, decide};
use steward_core::audit::Audit;
use steward_core::serving::{AgentAction, Incident};
use steward_core::{Error, Result};
use steward_store::MetadataStore;

const TICK: Duration = Duration::from_secs(2);
const AVAILABLE: [ActionKind; 2] = [ActionKind::Notify, ActionKind::Retrain];

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
                    return Err(Error::invalid(format!("policy for '{}', trigger '{}': action '{}' is not available yet (available: notify, retrain)", p.deployment, t.name, kind_name(*a))));
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
    pub policies: Vec<Policy>,
    /// This server's URL, for the pipelines the agent runs.
    pub url: String,
    pub exe: PathBuf,
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
                if let Some(k) = AVAILABLE.iter().chain([ActionKind::StartCanary, ActionKind::Promote, ActionKind::Rollback, ActionKind::Pause].iter()).find(|k| kind_name(**k) == a.kind) {
                    state.pending.push((a.deployment.clone(), *k));
                }
            }
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut incident_of = std::collections::HashMap::new();
        for action in decide(&Observations { points, canaries: vec![] }, &self.policies, &state) {
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
                Action::CanaryStep { .. } => {}
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
            other => Err(format!("action '{other}' is not available yet")),
        }
    }
}
