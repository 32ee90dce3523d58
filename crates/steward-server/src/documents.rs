//! Documents per model version, built only from what Steward recorded: a model card, a
//! validation report in the structure of SR 11-7 (purpose and use, data and lineage,
//! methodology, performance with confidence intervals, stability, fairness, limitations, the
//! ongoing-monitoring plan, the declared retraining policy, approvals), and the EU AI Act Annex
//! IV technical-documentation outline. Each renders as one self-contained HTML page (inline
//! style, no scripts, no external assets) or as Markdown. What Steward cannot know is marked
//! for the model owner to complete, never invented.

use std::collections::BTreeMap;

use serde_json::Value;
use steward_agent::Policy;
use steward_core::audit::LedgerEntry;
use steward_core::entities::Run;
use steward_core::registry::{ModelVersion, RegistryEvent};
use steward_core::serving::{AgentAction, Incident};
use steward_core::{Error, Result};

use crate::AppState;
use crate::serving::monitor::MonitorSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ModelCard,
    ValidationReport,
    AnnexIv,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "model-card" => Some(Kind::ModelCard),
            "validation-report" => Some(Kind::ValidationReport),
            "annex-iv" => Some(Kind::AnnexIv),
            _ => None,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::ModelCard => "Model card",
            Kind::ValidationReport => "Model validation report (SR 11-7)",
            Kind::AnnexIv => "Technical documentation (EU AI Act, Annex IV)",
        }
    }
}

#[derive(Clone)]
pub enum Block {
    P(String),
    List(Vec<String>),
    Table(Vec<String>, Vec<Vec<String>>),
    /// Something only the model owner can state.
    Owner(String),
}

pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

pub struct Document {
    pub title: String,
    pub subtitle: String,
    pub sections: Vec<Section>,
}

/// Everything Steward knows about one model version.
pub struct Facts {
    pub mv: ModelVersion,
    pub run: Option<Run>,
    /// The built-in trainer's `training.json` (calibration table, feature importance).
    pub training: Option<Value>,
    pub datasets: Vec<steward_core::registry::DatasetVersion>,
    /// (name, digest, source) of the run's dataset inputs.
    pub inputs: Vec<(String, String, String)>,
    /// Alias and stage events of this version.
    pub history: Vec<RegistryEvent>,
    /// Ledger entries about this version and its model's aliases.
    pub ledger: Vec<LedgerEntry>,
    /// (deployment, role) serving it now.
    pub deployments: Vec<(String, String)>,
    pub monitors: Vec<(String, MonitorSpec)>,
    /// (deployment, metric) → (window end, value), deployment-wide series.
    pub series: BTreeMap<(String, String), Vec<(i64, f64)>>,
    pub incidents: Vec<Incident>,
    pub actions: Vec<AgentAction>,
    /// Policies of the deployments named after or serving this model.
    pub policies: Vec<Policy>,
    pub ledger_intact: std::result::Result<i64, String>,
}

pub async fn gather(s: &AppState, name: &str, version: i64) -> Result<Facts> {
    let mv = s.store.get_model_version(name, version).await?;
    let run = match mv.run_id.as_deref().filter(|r| !r.is_empty()) {
        Some(r) => Some(s.store.get_run(r).await?),
        None => None,
    };
    let mut training = None;
    let (mut inputs, mut datasets) = (Vec::new(), Vec::new());
    if let Some(r) = &run {
        if let Some(rel) = r.info.artifact_uri.strip_prefix("mlflow-artifacts:/") {
            let path = format!("{}/training.json", rel.trim_matches('/'));
            training = s.artifacts.get_bytes(&path).await.ok().and_then(|b| serde_json::from_slice(&b).ok());
        }
        inputs = r.dataset_inputs.iter().map(|i| (i.dataset.name.clone(), i.dataset.digest.clone(), i.dataset.source.clone())).collect();
        let digests: Vec<String> = r.dataset_inputs.iter().map(|i| i.dataset.digest.clone()).collect();
        datasets = s.store.datasets_by_digest(&digests).await?;
    }
    let history: Vec<RegistryEvent> = s.store.registry_history(name).await?.into_iter().filter(|e| e.version == Some(version)).collect();
    let mut ledger = Vec::new();
    let (me, alias_prefix) = (format!("{name}/{version}"), format!("{name}@"));
    // The entries of this version and of its model's aliases, read by entity (an index range),
    // not by scanning the whole ledger.
    let mut after = 0;
    loop {
        let page = s.store.ledger_of_entity(&me, Some(alias_prefix.as_str()), after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        ledger.extend(page);
    }
    let deployments: Vec<(String, String)> = s.serving.all_routes().iter().flat_map(|r| r.serving(name, version).into_iter().map(|role| (r.spec.name.clone(), role.as_str().to_owned()))).collect();
    let mut names: Vec<String> = deployments.iter().map(|(d, _)| d.clone()).collect();
    // Deployments of this model (any version): their monitors, incidents and policies concern it.
    names.extend(s.serving.all_routes().iter().filter(|r| r.champion.model == name || r.challenger.as_ref().is_some_and(|c| c.model == name)).map(|r| r.spec.name.clone()));
    names.extend(s.policies.iter().filter(|p| p.deployment == name).map(|p| p.deployment.clone()));
    names.sort();
    names.dedup();
    let monitors: Vec<(String, MonitorSpec)> =
        s.store.monitors().await?.into_iter().filter(|m| names.contains(&m.deployment)).filter_map(|m| serde_json::from_str(&m.spec).ok().map(|spec| (m.deployment, spec))).collect();
    let mut series = BTreeMap::new();
    let (mut incidents, mut actions) = (Vec::new(), Vec::new());
    for d in &names {
        // The deployment-wide series (feature ""), chosen in the store, a page at a time.
        let mut after: Option<(i64, String, String)> = None;
        loop {
            let key = after.as_ref().map(|(end, metric, feature)| (*end, metric.as_str(), feature.as_str()));
            let page = s.store.monitor_metrics_page(d, None, Some(""), key, 5000).await?;
            after = page.last().map(|m| (m.window_end, m.metric.clone(), m.feature.clone()));
            let full = page.len() == 5000;
            for m in page {
                series.entry((d.clone(), m.metric)).or_insert_with(Vec::new).push((m.window_end, m.value));
            }
            if !full {
                break;
            }
        }
        incidents.extend(s.store.incidents(Some(d)).await?);
    }
    actions.extend(s.store.actions(None).await?.into_iter().filter(|a| names.contains(&a.deployment)));
    let policies = s.policies.iter().filter(|p| names.contains(&p.deployment)).cloned().collect();
    let ledger_intact = s.store.verify_ledger(&s.checkpoints().await?).await?.map_err(|b| format!("broken at entry {}: {}", b.seq, b.reason));
    Ok(Facts { mv, run, training, datasets, inputs, history, ledger, deployments, monitors, series, incidents, actions, policies, ledger_intact })
}

fn when(ms: i64) -> String {
    steward_core::schedule::iso8601(ms)
}

fn num(v: f64) -> String {
    if v.is_finite() { format!("{v:.4}") } else { "n/a".into() }
}

impl Facts {
    fn metric(&self, key: &str) -> Option<f64> {
        self.run.as_ref()?.metrics.iter().find(|m| m.key == key).map(|m| m.value)
    }

    fn tag(&self, key: &str) -> Option<&str> {
        self.run.as_ref()?.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }

    fn id(&self) -> String {
        format!("{} version {}", self.mv.name, self.mv.version)
    }

    /// Holdout class counts from the calibration table (rows × observed rate per bin).
    fn holdout_counts(&self) -> Option<(u64, u64)> {
        let bins = self.training.as_ref()?.get("calibration")?.as_array()?;
        let (mut pos, mut all) = (0.0, 0.0);
        for b in bins {
            let rows = b.get("rows")?.as_f64()?;
            pos += rows * b.get("observed_rate").and_then(Value::as_f64).unwrap_or(0.0);
            all += rows;
        }
        let pos = pos.round() as u64;
        Some((pos, (all.round() as u64).saturating_sub(pos)))
    }

    fn overview(&self) -> Block {
        let mut rows = vec![
            vec!["Model".into(), self.mv.name.clone()],
            vec!["Version".into(), self.mv.version.to_string()],
            vec!["Registered".into(), format!("{} by {}", when(self.mv.creation_timestamp), self.mv.created_by)],
            vec!["Aliases now".into(), if self.mv.aliases.is_empty() { "none".into() } else { self.mv.aliases.join(", ") }],
            vec!["Stage".into(), self.mv.current_stage.clone()],
            vec!["Source".into(), self.mv.source.clone()],
        ];
        if let Some(r) = &self.run {
            rows.push(vec!["Training run".into(), format!("{} (experiment {})", r.info.run_id, r.info.experiment_id)]);
        }
        if let Some(t) = self.tag("steward.trigger") {
            rows.push(vec!["Started by".into(), t.to_owned()]);
        }
        Block::Table(vec!["".into(), "".into()], rows)
    }

    fn purpose(&self) -> Vec<Block> {
        let mut out = Vec::new();
        match self.mv.description.as_deref().filter(|d| !d.trim().is_empty()) {
            Some(d) => out.push(Block::P(d.to_owned())),
            None => out.push(Block::Owner("State the business purpose, the decisions the model informs, its users and the population it applies to (the version has no description).".into())),
        }
        if !self.deployments.is_empty() {
            out.push(Block::P(format!("In use: {}.", self.deployments.iter().map(|(d, r)| format!("deployment '{d}' as {r}")).collect::<Vec<_>>().join(", "))));
        }
        out
    }

    fn data(&self) -> Vec<Block> {
        let mut out = Vec::new();
        if self.inputs.is_empty() {
            out.push(Block::Owner("No dataset input was logged with the training run: name the training data, its period and its source.".into()));
        } else {
            let rows = self.inputs.iter().map(|(n, d, s)| vec![n.clone(), d.clone(), s.clone()]).collect();
            out.push(Block::Table(vec!["Dataset input".into(), "Digest".into(), "Source".into()], rows));
        }
        if !self.datasets.is_empty() {
            let rows = self
                .datasets
                .iter()
                .map(|d| {
                    let columns = d.schema.as_array().map_or(0, Vec::len);
                    vec![format!("{} v{}", d.name, d.version), d.fingerprint.clone(), d.rows.to_string(), columns.to_string(), d.format.clone(), when(d.creation_time)]
                })
                .collect();
            out.push(Block::Table(vec!["Registered dataset".into(), "Fingerprint".into(), "Rows".into(), "Columns".into(), "Format".into(), "Registered".into()], rows));
            out.push(Block::P("Lineage: the fingerprint is the SHA-256 of the table's content; the same content in CSV or Parquet has the same fingerprint, so the rows trained on can be re-identified.".into()));
        }
        if let Some(t) = &self.training {
            let n = |k: &str| t.get(k).and_then(Value::as_i64).map_or("n/a".into(), |v| v.to_string());
            out.push(Block::P(format!("Rows: {} for training, {} held out (the last rows: an out-of-time split).", n("rows_train"), n("rows_holdout"))));
            if let Some(skipped) = t.get("skipped_columns").and_then(Value::as_array).filter(|s| !s.is_empty()) {
                out.push(Block::P(format!("Columns left out as unusable: {}.", skipped.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))));
            }
        }
        out
    }

    fn methodology(&self) -> Vec<Block> {
        let mut out = Vec::new();
        let run = match &self.run {
            Some(r) => r,
            None => return vec![Block::Owner("No training run is linked: describe the method, its assumptions and why it suits the purpose.".into())],
        };
        let kind = self.training.as_ref().and_then(|t| t.get("model")).and_then(Value::as_str);
        out.push(Block::P(match kind {
            Some("gbt") => "Gradient-boosted decision trees with logistic loss (Steward's built-in trainer); per-decision reason codes by exact TreeSHAP, carried inside the ONNX model.".into(),
            Some("logistic") => "L2-regularised logistic regression on standardised columns (Steward's built-in trainer); reason codes are each feature's contribution to the log-odds.".into(),
            _ => "Trained outside Steward's built-in trainer; the parameters below are as logged.".into(),
        }));
        if !run.params.is_empty() {
            out.push(Block::Table(vec!["Parameter".into(), "Value".into()], run.params.iter().map(|p| vec![p.key.clone(), p.value.clone()]).collect()));
        }
        if let Some(imp) = self.training.as_ref().and_then(|t| t.get("feature_importance")).and_then(Value::as_array) {
            let rows = imp.iter().take(15).map(|f| vec![f["feature"].as_str().unwrap_or_default().to_owned(), num(f["mean_abs_contribution"].as_f64().unwrap_or(f64::NAN))]).collect();
            out.push(Block::Table(vec!["Feature".into(), "Mean |contribution| (log-odds)".into()], rows));
        }
        out
    }

    fn performance(&self) -> Vec<Block> {
        let mut out = Vec::new();
        let names = [("roc_auc", "ROC AUC"), ("gini", "Gini"), ("ks", "KS"), ("pr_auc", "Average precision"), ("brier", "Brier score"), ("log_loss", "Log loss"), ("accuracy", "Accuracy at 0.5")];
        let counts = self.holdout_counts();
        let rows: Vec<Vec<String>> = names
            .iter()
            .filter_map(|(k, label)| {
                let v = self.metric(k)?;
                let ci = match (*k, counts) {
                    ("roc_auc", Some((p, n))) => steward_stats::quality::auc_interval(v, p, n, 1.959_964).map(|(lo, hi)| format!("{} – {}", num(lo), num(hi))).unwrap_or_default(),
                    ("gini", Some((p, n))) => steward_stats::quality::auc_interval((v + 1.0) / 2.0, p, n, 1.959_964).map(|(lo, hi)| format!("{} – {}", num(2.0 * lo - 1.0), num(2.0 * hi - 1.0))).unwrap_or_default(),
                    _ => String::new(),
                };
                Some(vec![(*label).to_owned(), num(v), ci])
            })
            .collect();
        if rows.is_empty() {
            out.push(Block::Owner("No holdout metrics were logged with the training run: report discrimination and calibration on data the model did not see.".into()));
        } else {
            out.push(Block::Table(vec!["Holdout metric".into(), "Value".into(), "95% interval".into()], rows));
            if let Some((p, n)) = counts {
                out.push(Block::P(format!("Holdout: {} rows, {p} positive (adverse) and {n} negative. Intervals for ROC AUC and Gini: Hanley & McNeil (1982) standard error, normal approximation.", p + n)));
            }
        }
        if let Some(cal) = self.training.as_ref().and_then(|t| t.get("calibration")).and_then(Value::as_array) {
            let rows = cal
                .iter()
                .map(|b| {
                    let bin = b["bin"].as_array().map(|x| format!("{:.1} – {:.1}", x.first().and_then(Value::as_f64).unwrap_or(0.0), x.get(1).and_then(Value::as_f64).unwrap_or(0.0))).unwrap_or_default();
                    vec![bin, b["rows"].to_string(), num(b["mean_predicted"].as_f64().unwrap_or(f64::NAN)), num(b["observed_rate"].as_f64().unwrap_or(f64::NAN))]
                })
                .collect();
            out.push(Block::Table(vec!["Score bin".into(), "Rows".into(), "Mean predicted".into(), "Observed rate".into()], rows));
        }
        out
    }

    fn series_summary(&self, metric: &str) -> Vec<Vec<String>> {
        self.series
            .iter()
            .filter(|((_, m), _)| m == metric)
            .map(|((d, _), s)| {
                let mut v: Vec<f64> = s.iter().map(|(_, x)| *x).filter(|x| x.is_finite()).collect();
                v.sort_by(f64::total_cmp);
                let median = v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
                vec![d.clone(), s.len().to_string(), num(*v.first().unwrap_or(&f64::NAN)), num(median), num(*v.last().unwrap_or(&f64::NAN)), num(s.last().map_or(f64::NAN, |x| x.1))]
            })
            .collect()
    }

    fn stability(&self) -> Vec<Block> {
        let head = || vec!["Deployment".into(), "Windows".into(), "Min".into(), "Median".into(), "Max".into(), "Latest".into()];
        let mut out = Vec::new();
        out.push(Block::P("Production windows of the deployments serving this model: each deployment's whole monitored history, whichever version it served at the time.".into()));
        for (metric, what) in [("drift_share", "Share of drifted features per monitoring window"), ("roc_auc", "ROC AUC per labelled window in production"), ("positive_rate", "Share predicted positive per window")] {
            let rows = self.series_summary(metric);
            if !rows.is_empty() {
                out.push(Block::P(format!("{what}:")));
                out.push(Block::Table(head(), rows));
            }
        }
        if out.len() == 1 {
            out.clear();
            out.push(Block::P("No production monitoring windows yet: stability will be measured once the version serves traffic under a monitor.".into()));
        }
        out
    }

    fn fairness(&self) -> Vec<Block> {
        let mut out = Vec::new();
        let air = self.metric("adverse_impact_ratio");
        let dpd = self.metric("demographic_parity_difference");
        if air.is_some() || dpd.is_some() {
            out.push(Block::Table(
                vec!["Holdout fairness".into(), "Value".into(), "Reading".into()],
                vec![
                    vec!["Adverse impact ratio".into(), air.map_or("n/a".into(), num), air.map_or(String::new(), |a| if a >= 0.8 { "meets the four-fifths rule".into() } else { "BELOW the four-fifths rule".into() })],
                    vec!["Demographic parity difference".into(), dpd.map_or("n/a".into(), num), String::new()],
                ],
            ));
        } else {
            out.push(Block::Owner("No fairness metrics were logged: name the protected attributes and report outcome rates by group.".into()));
        }
        let rows = self.series_summary("adverse_impact_ratio");
        if !rows.is_empty() {
            out.push(Block::P("Adverse impact ratio per production window (favourable outcome by the monitor's protected attribute):".into()));
            out.push(Block::Table(vec!["Deployment".into(), "Windows".into(), "Min".into(), "Median".into(), "Max".into(), "Latest".into()], rows));
        }
        for (d, m) in &self.monitors {
            if let Some(f) = &m.fairness {
                out.push(Block::P(format!("Deployment '{d}' monitors fairness by '{}' against a minimum ratio of {} (groups under {} rows in a window are left out).", f.attribute, f.min_ratio, f.min_group_rows)));
            }
        }
        out
    }

    fn limitations(&self) -> Vec<Block> {
        let mut items = vec!["Performance was measured on an out-of-time holdout of the training data; it holds for a population like that one, and the monitors below watch for departures.".to_owned()];
        if let Some(imp) = self.training.as_ref().and_then(|t| t.get("feature_importance")).and_then(Value::as_array)
            && let Some(top) = imp.first().and_then(|f| f["feature"].as_str())
        {
            items.push(format!("The model leans most on '{top}'; a change in how that field is produced moves its scores most."));
        }
        let kinds: BTreeMap<&str, usize> = self.incidents.iter().fold(BTreeMap::new(), |mut m, i| {
            *m.entry(i.kind.as_str()).or_default() += 1;
            m
        });
        if !kinds.is_empty() {
            items.push(format!("Incidents recorded on its deployments: {}.", kinds.iter().map(|(k, n)| format!("{k} ×{n}")).collect::<Vec<_>>().join(", ")));
        }
        vec![Block::List(items), Block::Owner("Add the limitations only the owner knows: segments excluded from the data, regulatory constraints, known weaknesses.".into())]
    }

    fn monitoring_plan(&self) -> Vec<Block> {
        if self.monitors.is_empty() {
            return vec![Block::Owner("No monitor is configured for a deployment serving this version.".into())];
        }
        let mut out = Vec::new();
        for (d, m) in &self.monitors {
            let mut items = vec![
                match m.window_seconds {
                    Some(s) => format!("Windows of {s} seconds of predictions."),
                    None => format!("Windows of {} predictions; quality windows of {} labelled predictions.", m.window_size, m.window_size),
                },
                format!("Data drift on {} features against the reference profile; alert when a share of {} drifts.", m.reference.columns.len(), m.drift_share),
            ];
            if m.reference_prediction.is_some() {
                items.push("Prediction drift against the model's own scores on the reference data.".into());
            }
            if let Some(q) = &m.quality {
                items.push(format!("Quality once labels arrive: ROC AUC floor {}, accuracy floor {}.", q.min_roc_auc.map_or("none".into(), |v| v.to_string()), q.min_accuracy.map_or("none".into(), |v| v.to_string())));
            }
            if let Some(e) = &m.estimated_quality {
                items.push(format!(
                    "Quality estimated before labels arrive (confidence-based performance estimation, calibrated on {} labelled reference rows): ROC AUC floor {}, accuracy floor {}.",
                    e.reference_scores.len(),
                    e.min_roc_auc.map_or("none".into(), |v| v.to_string()),
                    e.min_accuracy.map_or("none".into(), |v| v.to_string())
                ));
            }
            if let Some(url) = &m.webhook_url {
                items.push(format!("Alerts are posted to {url}."));
            }
            out.push(Block::P(format!("Deployment '{d}':")));
            out.push(Block::List(items));
        }
        out
    }

    fn retraining_policy(&self) -> Vec<Block> {
        if self.policies.is_empty() {
            return vec![Block::P("No agent policy governs a deployment of this model on this server: retraining and promotion happen only by hand.".into())];
        }
        let mut out = vec![Block::P("The changes declared in advance (EU AI Act Art. 43(4)): the conditions under which the agent acts, what it does, and what waits for a person.".into())];
        for p in &self.policies {
            let rows = p
                .triggers
                .iter()
                .map(|t| {
                    let actions: Vec<String> = t.actions.iter().map(|a| format!("{}{}", action(*a), if p.needs_approval(*a) { " (approval)" } else { "" })).collect();
                    let feature = match &t.feature {
                        steward_agent::Feature::Any => " of any feature".to_owned(),
                        steward_agent::Feature::Named(f) if f.is_empty() => String::new(),
                        steward_agent::Feature::Named(f) => format!(" of {f}"),
                    };
                    vec![t.name.clone(), format!("{}{feature} {} for {} window(s)", t.metric, t.condition, t.windows), serde_json::to_value(t.incident).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(), actions.join(", ")]
                })
                .collect();
            out.push(Block::P(format!("Deployment '{}':", p.deployment)));
            out.push(Block::Table(vec!["Trigger".into(), "Condition".into(), "Incident".into(), "Actions".into()], rows));
            let c = &p.canary;
            out.push(Block::List(vec![
                format!("Retraining pipeline: {}.", p.retrain.as_ref().map_or("none declared".into(), |r| r.pipeline.clone())),
                format!("Waits for approval: {}.", if p.approval.is_empty() { "nothing (the policy acts alone)".into() } else { p.approval.iter().map(|a| action(*a)).collect::<Vec<_>>().join(", ") }),
                format!(
                    "Canary: traffic steps {:?}%, at least {} requests and {} labelled rows per step; rolled back when the error rate rises by more than {}, p95 latency exceeds {}× the champion's, the positive rate moves by more than {}, the adverse impact ratio falls under {}, or ROC AUC falls more than {} below the champion's.",
                    c.steps,
                    c.min_requests,
                    c.min_labelled_rows,
                    c.max_error_rate_increase,
                    c.max_latency_ratio,
                    c.max_positive_rate_shift,
                    c.min_adverse_impact_ratio.map_or("(no gate)".into(), |v| v.to_string()),
                    c.min_auc_delta.map_or("(no gate)".into(), |v| (-v).to_string())
                ),
            ]));
        }
        out
    }

    fn approvals(&self) -> Vec<Block> {
        // Alias and stage events of this version, with the ledger entry that made each (same
        // alias, within two seconds): who, and the reason they gave.
        let mut rows: Vec<Vec<String>> = self
            .history
            .iter()
            .filter(|e| !(e.kind == "stage" && e.label == "None"))
            .map(|e| {
                let entity = if e.kind == "alias" { format!("{}@{}", self.mv.name, e.label) } else { format!("{}/{}", self.mv.name, self.mv.version) };
                let entry = self.ledger.iter().filter(|l| l.entity_id == entity && (l.time - e.time).abs() <= 2_000).min_by_key(|l| (l.time - e.time).abs());
                let what = if e.kind == "alias" { format!("alias '{}' set to this version", e.label) } else { format!("stage {}", e.label) };
                vec![when(e.time), entry.map_or_else(|| e.actor.clone(), |l| l.actor.clone()), what, entry.and_then(|l| l.reason.clone()).unwrap_or_default()]
            })
            .collect();
        let me = format!("{}/{}", self.mv.name, self.mv.version);
        // Registration and other changes of the version itself (stage moves are listed above).
        for e in self.ledger.iter().filter(|e| e.entity_id == me && !matches!(e.action.as_str(), "model_version.set_tag" | "model_version.transition_stage")) {
            rows.push(vec![when(e.time), e.actor.clone(), e.action.clone(), e.reason.clone().unwrap_or_default()]);
        }
        for a in self.actions.iter().filter(|a| a.decided_by.is_some()) {
            rows.push(vec![when(a.updated), a.decided_by.clone().unwrap_or_default(), format!("{} {} on {}", a.status, a.kind, a.deployment), a.decision_reason.clone().unwrap_or_default()]);
        }
        rows.sort();
        let mut out = vec![Block::P(format!("Created by {} on {}.", self.mv.created_by, when(self.mv.creation_timestamp)))];
        if rows.is_empty() {
            out.push(Block::P("No approvals recorded: the version holds no protected alias or stage.".into()));
        } else {
            out.push(Block::Table(vec!["Time (UTC)".into(), "Who".into(), "What".into(), "Reason".into()], rows));
        }
        out.push(Block::P(match &self.ledger_intact {
            Ok(n) => format!("Every entry above is in the hash-chained audit ledger, verified intact when this document was made ({n} entries)."),
            Err(e) => format!("WARNING: the audit ledger does not verify: {e}."),
        }));
        out
    }

    fn incidents_block(&self) -> Vec<Block> {
        if self.incidents.is_empty() {
            return vec![Block::P("No incidents on its deployments.".into())];
        }
        let rows = self
            .incidents
            .iter()
            .map(|i| {
                let analysis = i.analyses.iter().find(|a| a.source == steward_agent::reason::RULES).map(|a| a.text.lines().next().unwrap_or_default().to_owned()).unwrap_or_default();
                vec![when(i.opened), i.deployment.clone(), i.kind.clone(), i.status.clone(), analysis]
            })
            .collect();
        let mut out = vec![Block::Table(vec!["Opened (UTC)".into(), "Deployment".into(), "Kind".into(), "Status".into(), "Analysis".into()], rows)];
        let acted: Vec<Vec<String>> = self.actions.iter().map(|a| vec![when(a.requested), a.kind.clone(), a.status.clone(), a.decided_by.clone().unwrap_or_else(|| "policy".into()), a.outcome.clone().unwrap_or_default()]).collect();
        if !acted.is_empty() {
            out.push(Block::Table(vec!["Requested (UTC)".into(), "Action".into(), "Status".into(), "Decided by".into(), "Outcome".into()], acted));
        }
        out
    }
}

fn action(a: steward_agent::ActionKind) -> String {
    serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn section(title: &str, blocks: Vec<Block>) -> Section {
    Section { title: title.to_owned(), blocks }
}

pub fn build(kind: Kind, f: &Facts) -> Document {
    let sections = match kind {
        Kind::ValidationReport => vec![
            section("1. Purpose and intended use", [vec![f.overview()], f.purpose()].concat()),
            section("2. Data and lineage", f.data()),
            section("3. Methodology", f.methodology()),
            section("4. Performance", f.performance()),
            section("5. Stability", f.stability()),
            section("6. Fairness analysis", f.fairness()),
            section("7. Limitations", f.limitations()),
            section("8. Ongoing monitoring plan", [f.monitoring_plan(), f.incidents_block()].concat()),
            section("9. Declared retraining policy", f.retraining_policy()),
            section("10. Approvals", f.approvals()),
        ],
        Kind::ModelCard => vec![
            section("Model details", [vec![f.overview()], f.methodology()].concat()),
            section("Intended use", f.purpose()),
            section("Training data", f.data()),
            section("Metrics", f.performance()),
            section("Fairness", f.fairness()),
            section("Caveats and recommendations", f.limitations()),
        ],
        Kind::AnnexIv => vec![
            section(
                "1. General description of the AI system",
                [vec![f.overview()], f.purpose(), vec![Block::Owner("Provider, intended purpose under Annex III (creditworthiness assessment: point 5(b)), hardware and market placement.".into())]].concat(),
            ),
            section("2(a–c). Development: methods, design choices, system architecture", f.methodology()),
            section("2(d). Data requirements and datasheets", f.data()),
            section(
                "2(e). Human oversight measures (Art. 14)",
                vec![Block::List(vec![
                    "An approval queue: actions a policy reserves for people wait for a validator or admin; approving a promotion is refused to the version's creator (four-eyes).".into(),
                    "A stop switch sends all traffic to the last approved version from the next request.".into(),
                    "Every decision, automatic or human, is an entry in a hash-chained audit ledger with its reason.".into(),
                ])],
            ),
            section("2(f). Pre-determined changes (Art. 43(4))", f.retraining_policy()),
            section("2(g). Validation and testing", [f.performance(), f.fairness()].concat()),
            section("3. Monitoring, functioning and control", [f.monitoring_plan(), f.stability(), f.incidents_block()].concat()),
            section("4. Appropriateness of the performance metrics", vec![Block::P("Discrimination (ROC AUC, Gini, KS) ranks applicants by risk; calibration (Brier score, the calibration table) checks that scores are probabilities; the adverse impact ratio tests the four-fifths rule across protected groups.".into())]),
            section("5. Risk management system (Art. 9)", [f.limitations(), vec![Block::Owner("Link the provider's risk management file.".into())]].concat()),
            section("6. Changes through the lifecycle", f.approvals()),
            section("7–8. Harmonised standards; EU declaration of conformity", vec![Block::Owner("List the standards applied and attach the declaration of conformity.".into())]),
            section("9. Post-market monitoring plan (Art. 72)", f.monitoring_plan()),
        ],
    };
    Document { title: format!("{}: {}", kind.title(), f.id()), subtitle: format!("Generated by Steward {} from its records on {}.", env!("CARGO_PKG_VERSION"), when(now_ms())), sections }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(d: &Document) -> String {
    use std::fmt::Write as _;
    let mut out = format!("# {}\n\n_{}_\n", d.title, d.subtitle);
    for s in &d.sections {
        let _ = write!(out, "\n## {}\n", s.title);
        for b in &s.blocks {
            match b {
                Block::P(t) => {
                    let _ = write!(out, "\n{t}\n");
                }
                Block::Owner(t) => {
                    let _ = write!(out, "\n> **For the model owner to complete:** {t}\n");
                }
                Block::List(items) => {
                    out.push('\n');
                    for i in items {
                        let _ = writeln!(out, "- {i}");
                    }
                }
                Block::Table(head, rows) => {
                    let _ = write!(out, "\n| {} |\n|{}|\n", head.iter().map(|h| md_cell(h)).collect::<Vec<_>>().join(" | "), vec!["---"; head.len()].join("|"));
                    for r in rows {
                        let _ = writeln!(out, "| {} |", r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "));
                    }
                }
            }
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn html(d: &Document) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2430}}\
         h1{{font-size:1.6rem}}h2{{margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}}\
         table{{border-collapse:collapse;margin:.6rem 0}}td,th{{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}}\
         th{{background:#f3f5f8}}.owner{{background:#fff7e0;border-left:4px solid #e0a400;padding:.4rem .8rem}}.sub{{color:#5b6675}}\
         </style></head><body>\n<h1>{}</h1><p class=\"sub\">{}</p>\n",
        esc(&d.title),
        esc(&d.title),
        esc(&d.subtitle)
    );
    for s in &d.sections {
        let _ = writeln!(out, "<h2>{}</h2>", esc(&s.title));
        for b in &s.blocks {
            match b {
                Block::P(t) => {
                    let _ = writeln!(out, "<p>{}</p>", esc(t));
                }
                Block::Owner(t) => {
                    let _ = writeln!(out, "<p class=\"owner\"><strong>For the model owner to complete:</strong> {}</p>", esc(t));
                }
                Block::List(items) => {
                    let _ = writeln!(out, "<ul>{}</ul>", items.iter().map(|i| format!("<li>{}</li>", esc(i))).collect::<String>());
                }
                Block::Table(head, rows) => {
                    out.push_str("<table>");
                    if head.iter().any(|h| !h.is_empty()) {
                        let _ = write!(out, "<tr>{}</tr>", head.iter().map(|h| format!("<th>{}</th>", esc(h))).collect::<String>());
                    }
                    for r in rows {
                        let _ = write!(out, "<tr>{}</tr>", r.iter().map(|c| format!("<td>{}</td>", esc(c))).collect::<String>());
                    }
                    out.push_str("</table>\n");
                }
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// `GET /api/steward/v1/registry/models/NAME/versions/V/documents/KIND?format=html|md`.
pub async fn get(
    axum::extract::State(s): axum::extract::State<AppState>,
    axum::extract::Path((name, version, kind)): axum::extract::Path<(String, i64, String)>,
    f: crate::request::Fields,
) -> crate::error::ApiResult<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let kind = Kind::parse(&kind).ok_or_else(|| Error::invalid(format!("document '{kind}' is not one of model-card, validation-report, annex-iv")))?;
    let format = f.opt_str("format")?.unwrap_or_else(|| "html".into());
    let doc = build(kind, &gather(&s, &name, version).await?);
    Ok(match format.as_str() {
        "html" => ([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], html(&doc)).into_response(),
        "md" | "markdown" => ([(axum::http::header::CONTENT_TYPE, "text/markdown; charset=utf-8")], markdown(&doc)).into_response(),
        other => return Err(Error::invalid(format!("format '{other}' is not html or md")).into()),
    })
}
