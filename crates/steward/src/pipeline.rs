//! `steward pipeline run FILE`: a continuous-training pipeline from YAML — validate, train
//! (built-in or an external command), evaluate, gate, register, deploy — against a tracking
//! server. The pipeline is a run; every step is a child run with its params, metrics, artifacts
//! and the input dataset (fingerprint as digest). A train step whose data fingerprint and
//! settings match a finished earlier run is reused; a failed step stops the pipeline with its
//! reason recorded on both runs, and a registration that cannot complete is rolled back.
//!
//! ```yaml
//! name: german-credit                  # the experiment too, unless `experiment` is given
//! data: germancredit.csv               # relative to this file; registered as a dataset version
//! train: {label: creditability, positive: bad, model: gbt, trees: 300, max_depth: 2}
//! protected: personal_status_and_sex   # optional: fairness in evaluate
//! steps:
//!   - validate: {suite: german-suite.yaml}
//!   - train: {}                        # or {command: "python3 train.py"}
//!   - evaluate: {champion: german-credit@champion}
//!   - gate: {min_roc_auc: 0.75, beat_champion_by: 0.0}
//!   - register: {model: german-credit, alias: challenger}
//!   - deploy: {deployment: german-credit, canary_weight: 10}
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::remote::send;
use crate::train::TrainSettings;

#[derive(clap::Subcommand)]
pub enum PipelineCommand {
    /// Run a pipeline spec (YAML) against a tracking server
    Run {
        file: PathBuf,
        #[arg(long, env = "MLFLOW_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
        tracking_uri: String,
        /// What started this run, recorded as the `steward.trigger` tag (default: manual)
        #[arg(long, default_value = "manual")]
        trigger: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    name: String,
    #[serde(default)]
    experiment: Option<String>,
    data: PathBuf,
    /// The dataset the data is registered as (default: the file's stem).
    #[serde(default)]
    dataset: Option<String>,
    train: TrainSettings,
    #[serde(default)]
    protected: Option<String>,
    #[serde(with = "serde_norway::with::singleton_map_recursive")]
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum Step {
    Validate { suite: PathBuf },
    Train {
        #[serde(default)]
        command: Option<String>,
    },
    Evaluate {
        #[serde(default)]
        champion: Option<String>,
    },
    Gate(Gate),
    Register {
        model: String,
        #[serde(default)]
        alias: Option<String>,
    },
    Deploy {
        deployment: String,
        #[serde(default = "ten")]
        canary_weight: u8,
    },
}

fn ten() -> u8 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Gate {
    #[serde(default)]
    min_roc_auc: Option<f64>,
    #[serde(default)]
    max_brier: Option<f64>,
    #[serde(default)]
    min_adverse_impact_ratio: Option<f64>,
    /// The candidate's ROC AUC must exceed the champion's by at least this much (when there is
    /// a champion).
    #[serde(default)]
    beat_champion_by: Option<f64>,
}

impl Step {
    fn kind(&self) -> &'static str {
        match self {
            Step::Validate { .. } => "validate",
            Step::Train { .. } => "train",
            Step::Evaluate { .. } => "evaluate",
            Step::Gate(_) => "gate",
            Step::Register { .. } => "register",
            Step::Deploy { .. } => "deploy",
        }
    }
}

/// The MLflow REST calls a pipeline makes, as the `mlflow` client makes them.
struct Tracking {
    http: reqwest::Client,
    base: String,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Tracking {
    fn api(&self, path: &str) -> String {
        format!("{}/api/2.0/mlflow/{path}", self.base)
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        send(self.http.post(self.api(path)).json(&body)).await.with_context(|| format!("POST {path}"))
    }

    async fn experiment(&self, name: &str) -> anyhow::Result<String> {
        match send(self.http.get(self.api("experiments/get-by-name")).query(&[("experiment_name", name)])).await {
            Ok(v) => Ok(v["experiment"]["experiment_id"].as_str().context("no experiment id")?.to_owned()),
            Err(_) => Ok(self.post("experiments/create", json!({ "name": name })).await?["experiment_id"].as_str().context("no experiment id")?.to_owned()),
        }
    }

    /// A new run: its id and artifact URI.
    async fn start(&self, experiment: &str, name: &str, tags: &[(&str, &str)]) -> anyhow::Result<(String, String)> {
        let tags: Vec<Value> = tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect();
        let run = self.post("runs/create", json!({ "experiment_id": experiment, "run_name": name, "start_time": now(), "tags": tags })).await?;
        let info = &run["run"]["info"];
        Ok((info["run_id"].as_str().context("no run id")?.to_owned(), info["artifact_uri"].as_str().context("no artifact uri")?.to_owned()))
    }

    async fn finish(&self, run: &str, failure: Option<&str>) -> anyhow::Result<()> {
        if let Some(reason) = failure {
            self.post("runs/set-tag", json!({ "run_id": run, "key": "steward.failure", "value": reason })).await?;
        }
        self.post("runs/update", json!({ "run_id": run, "status": if failure.is_some() { "FAILED" } else { "FINISHED" }, "end_time": now() })).await?;
        Ok(())
    }

    async fn log(&self, run: &str, params: &[(&str, String)], metrics: &[(&str, f64)], tags: &[(&str, String)]) -> anyhow::Result<()> {
        let t = now();
        let body = json!({
            "run_id": run,
            "params": params.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>(),
            "metrics": metrics.iter().filter(|(_, v)| v.is_finite()).map(|(k, v)| json!({ "key": k, "value": v, "timestamp": t, "step": 0 })).collect::<Vec<_>>(),
            "tags": tags.iter().map(|(k, v)| json!({ "key": k, "value": v })).collect::<Vec<_>>(),
        });
        self.post("runs/log-batch", body).await.map(|_| ())
    }

    /// Uploads a file under a run's artifact root (which must be behind the artifact proxy).
    async fn upload(&self, artifact_uri: &str, path: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let rel = artifact_uri.strip_prefix("mlflow-artifacts:/").with_context(|| format!("run artifacts at '{artifact_uri}' are not behind the server's artifact proxy"))?;
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{}/{path}", self.base, rel.trim_matches('/'));
        send(self.http.put(url).body(bytes)).await.map(|_| ())
    }

    async fn download(&self, artifact_uri: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        let rel = artifact_uri.strip_prefix("mlflow-artifacts:/").context("artifacts not behind the proxy")?;
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{}/{path}", self.base, rel.trim_matches('/'));
        let resp = self.http.get(url).send().await?;
        anyhow::ensure!(resp.status().is_success(), "downloading {path}: HTTP {}", resp.status());
        Ok(resp.bytes().await?.to_vec())
    }

    /// A finished run of this experiment with the step key, if any: its id and artifact URI.
    async fn reusable(&self, experiment: &str, key: &str) -> anyhow::Result<Option<(String, String)>> {
        let filter = format!("tags.`steward.step_key` = '{key}' and attributes.status = 'FINISHED'");
        let found = self.post("runs/search", json!({ "experiment_ids": [experiment], "filter": filter, "max_results": 1 })).await?;
        Ok(found["runs"].as_array().and_then(|r| r.first()).map(|r| {
            let info = &r["info"];
            (info["run_id"].as_str().unwrap_or_default().to_owned(), info["artifact_uri"].as_str().unwrap_or_default().to_owned())
        }))
    }
}

/// What the steps have produced so far.
#[derive(Default)]
struct State {
    /// The run whose model the later steps use (the registered version's run), its artifact
    /// URI, and the model.
    model_run: Option<(String, String)>,
    model: Option<Vec<u8>>,
    metrics: Option<Value>,
    champion: Option<Value>,
    registered: Option<(String, String)>,
}

fn metric(v: &Value, name: &str) -> Option<f64> {
    v.get(name).and_then(Value::as_f64)
}

struct Pipeline {
    t: Tracking,
    spec: Spec,
    dir: PathBuf,
    /// The snapshot every step reads.
    data: PathBuf,
    /// The file it was taken from.
    source: PathBuf,
    /// The pipeline's private directory (the snapshot, external commands' outputs).
    scratch: PathBuf,
    fingerprint: String,
    experiment: String,
    parent: String,
    tracking_uri: String,
}

impl Pipeline {
    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_owned() } else { self.dir.join(p) }
    }

    /// MLflow's dataset input: the fingerprint (cut to MLflow's 36-character digest limit) as
    /// digest, the full one in the profile.
    async fn log_dataset(&self, run: &str) -> anyhow::Result<()> {
        let name = self.data.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
        let table = crate::table::Columns::open(&self.data)?;
        let schema = json!({ "columns": table.names() }).to_string();
        let profile = json!({ "fingerprint": format!("sha256:{}", self.fingerprint), "rows": table.rows() }).to_string();
        let body = json!({
            "run_id": run,
            "datasets": [{
                "tags": [{ "key": "mlflow.data.context", "value": "training" }],
                "dataset": { "name": name, "digest": &self.fingerprint[..32], "source_type": "local", "source": self.source.display().to_string(), "schema": schema, "profile": profile },
            }],
        });
        self.t.post("runs/log-inputs", body).await.map(|_| ())
    }

    /// Runs one step as a child run; `Err` carries the reason the pipeline stops.
    async fn step(&self, index: usize, step: &Step, state: &mut State) -> anyhow::Result<String> {
        match step {
            Step::Validate { suite } => {
                let suite = self.resolve(suite);
                let report = crate::validate::check(&suite, &self.data)?;
                let (run, artifacts) = self.child(index, step).await?;
                self.t.upload(&artifacts, "validation.json", serde_json::to_vec_pretty(&report)?).await?;
                let (evaluated, failed) = (report["evaluated"].as_f64().unwrap_or(0.0), report["failed"].as_f64().unwrap_or(0.0));
                self.t.log(&run, &[("suite", suite.display().to_string())], &[("expectations", evaluated), ("failed_expectations", failed)], &[]).await?;
                self.log_dataset(&run).await?;
                if report["success"] != json!(true) {
                    let failing: Vec<String> = report["results"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|r| r["success"] != json!(true))
                        .map(|r| format!("{}{}", r["expectation"].as_str().unwrap_or_default(), r["column"].as_str().map(|c| format!(" ({c})")).unwrap_or_default()))
                        .collect();
                    let reason = format!("validation failed: {failed} of {evaluated} expectations: {}", failing.join(", "));
                    self.t.finish(&run, Some(&reason)).await?;
                    bail!(reason);
                }
                self.t.finish(&run, None).await?;
                Ok(format!("{evaluated} expectations met"))
            }
            Step::Train { command } => {
                let settings = serde_json::json!({
                    "label": self.spec.train.label, "positive": self.spec.train.positive, "model": format!("{:?}", self.spec.train.model),
                    "exclude": self.spec.train.exclude, "holdout": self.spec.train.holdout, "trees": self.spec.train.trees,
                    "max_depth": self.spec.train.max_depth, "learning_rate": self.spec.train.learning_rate, "l2": self.spec.train.l2, "command": command,
                });
                let key = hex(&Sha256::digest(format!("{}\n{settings}\n{}", self.fingerprint, env!("CARGO_PKG_VERSION")).as_bytes()));
                if let Some((run, artifacts)) = self.t.reusable(&self.experiment, &key).await? {
                    state.model = Some(self.t.download(&artifacts, "model/model.onnx").await?);
                    state.model_run = Some((run.clone(), artifacts));
                    return Ok(format!("reused run {run} (same data fingerprint and settings)"));
                }
                let (run, artifacts) = self.child(index, step).await?;
                self.t.log(&run, &[], &[], &[("steward.step_key", key.clone())]).await?;
                self.log_dataset(&run).await?;
                let trained = match command {
                    None => {
                        let t = crate::train::fit(&self.data, &self.spec.train);
                        let t = match t {
                            Ok(t) => t,
                            Err(e) => {
                                let reason = format!("training failed: {e:#}");
                                self.t.finish(&run, Some(&reason)).await?;
                                bail!(reason);
                            }
                        };
                        let s = &self.spec.train;
                        let params = [
                            ("model", format!("{:?}", s.model).to_lowercase()),
                            ("label", s.label.clone()),
                            ("positive", s.positive.clone()),
                            ("holdout", s.holdout.to_string()),
                            ("trees", s.trees.to_string()),
                            ("max_depth", s.max_depth.to_string()),
                            ("learning_rate", s.learning_rate.to_string()),
                            ("l2", s.l2.to_string()),
                            ("features", t.features.join(",")),
                        ];
                        self.t.log(&run, &params, &[("rows_train", metric(&t.metrics, "rows_train").unwrap_or(f64::NAN))], &[]).await?;
                        self.t.upload(&artifacts, "training.json", serde_json::to_vec_pretty(&t.metrics)?).await?;
                        // What monitors compare live traffic with (`steward monitor create --reference`).
                        self.t.upload(&artifacts, "reference_profile.json", serde_json::to_vec(&crate::data::profile(&self.data)?)?).await?;
                        t.onnx
                    }
                    Some(cmd) => match self.external(cmd, &run).await {
                        Ok(bytes) => {
                            self.t.log(&run, &[("command", cmd.clone())], &[], &[]).await?;
                            bytes
                        }
                        Err(e) => {
                            let reason = format!("external training command failed: {e:#}");
                            self.t.finish(&run, Some(&reason)).await?;
                            bail!(reason);
                        }
                    },
                };
                self.t.upload(&artifacts, "model/model.onnx", trained.clone()).await?;
                self.t.finish(&run, None).await?;
                state.model = Some(trained);
                state.model_run = Some((run.clone(), artifacts));
                Ok(format!("trained in run {run}"))
            }
            Step::Evaluate { champion } => {
                let model = state.model.as_ref().context("evaluate needs a train step before it")?;
                let (model_run, _) = state.model_run.clone().context("evaluate needs a train step before it")?;
                let (run, artifacts) = self.child(index, step).await?;
                let protected = self.spec.protected.as_deref();
                let metrics = crate::train::evaluate(model, &self.data, &self.spec.train, protected)?;
                let names = ["roc_auc", "ks", "gini", "brier", "log_loss", "accuracy", "pr_auc", "adverse_impact_ratio", "demographic_parity_difference"];
                let values: Vec<(&str, f64)> = names.iter().filter_map(|n| metric(&metrics, n).map(|v| (*n, v))).collect();
                let mut report = json!({ "candidate": metrics });
                let mut extra = Vec::new();
                if let Some(c) = champion {
                    let uri = if c.starts_with("models:/") { c.clone() } else { format!("models:/{c}") };
                    match crate::remote::fetch_model(&self.tracking_uri, &uri).await {
                        Ok(bytes) => {
                            let m = crate::train::evaluate(&bytes, &self.data, &self.spec.train, protected)?;
                            if let (Some(a), Some(b)) = (metric(&metrics, "roc_auc"), metric(&m, "roc_auc")) {
                                extra.push(("champion_roc_auc", b));
                                extra.push(("roc_auc_gain", a - b));
                            }
                            report["champion"] = m.clone();
                            state.champion = Some(m);
                        }
                        Err(e) => report["champion"] = json!({ "missing": format!("{e:#}") }),
                    }
                }
                let all: Vec<(&str, f64)> = values.iter().copied().chain(extra.iter().copied()).collect();
                self.t.log(&run, &[], &all, &[("steward.model_run", model_run.clone())]).await?;
                // The version's own run carries its holdout metrics.
                self.t.log(&model_run, &[], &values, &[]).await?;
                self.t.upload(&artifacts, "evaluation.json", serde_json::to_vec_pretty(&report)?).await?;
                self.t.finish(&run, None).await?;
                let mut summary = format!("holdout ROC AUC {:.4}", metric(&metrics, "roc_auc").unwrap_or(f64::NAN));
                if let Some((_, b)) = extra.iter().find(|(n, _)| *n == "champion_roc_auc") {
                    summary.push_str(&format!(" (the champion {b:.4} on the same rows)"));
                }
                state.metrics = Some(metrics);
                Ok(summary)
            }
            Step::Gate(g) => {
                let m = state.metrics.as_ref().context("gate needs an evaluate step before it")?;
                let (run, _) = self.child(index, step).await?;
                let mut failures = Vec::new();
                let auc = metric(m, "roc_auc").unwrap_or(f64::NAN);
                if let Some(min) = g.min_roc_auc
                    && !(auc >= min)
                {
                    failures.push(format!("roc_auc {auc:.4} < {min}"));
                }
                if let Some(max) = g.max_brier
                    && let Some(b) = metric(m, "brier")
                    && b > max
                {
                    failures.push(format!("brier {b:.4} > {max}"));
                }
                if let Some(min) = g.min_adverse_impact_ratio {
                    match metric(m, "adverse_impact_ratio") {
                        Some(r) if r >= min => {}
                        Some(r) => failures.push(format!("adverse_impact_ratio {r:.4} < {min}")),
                        None => failures.push("adverse_impact_ratio unknown (set `protected` in the pipeline)".into()),
                    }
                }
                if let (Some(delta), Some(c)) = (g.beat_champion_by, state.champion.as_ref().and_then(|c| metric(c, "roc_auc"))) {
                    if !(auc >= c + delta) {
                        failures.push(format!("roc_auc {auc:.4} does not beat the champion's {c:.4} by {delta}"));
                    }
                }
                let params: Vec<(&str, String)> =
                    [("min_roc_auc", g.min_roc_auc), ("max_brier", g.max_brier), ("min_adverse_impact_ratio", g.min_adverse_impact_ratio), ("beat_champion_by", g.beat_champion_by)]
                        .into_iter()
                        .filter_map(|(k, v)| v.map(|v| (k, v.to_string())))
                        .collect();
                self.t.log(&run, &params, &[("passed", if failures.is_empty() { 1.0 } else { 0.0 })], &[]).await?;
                if !failures.is_empty() {
                    let reason = format!("gate failed: {}", failures.join("; "));
                    self.t.finish(&run, Some(&reason)).await?;
                    bail!(reason);
                }
                self.t.finish(&run, None).await?;
                Ok("passed".into())
            }
            Step::Register { model, alias } => {
                let (model_run, artifacts) = state.model_run.clone().context("register needs a train step before it")?;
                let (run, _) = self.child(index, step).await?;
                if send(self.t.http.get(self.t.api("registered-models/get")).query(&[("name", model)])).await.is_err() {
                    self.t.post("registered-models/create", json!({ "name": model })).await?;
                }
                let v = self.t.post("model-versions/create", json!({ "name": model, "source": format!("{artifacts}/model"), "run_id": model_run })).await?;
                let version = v["model_version"]["version"].as_str().context("no version in the answer")?.to_owned();
                // Tags and alias, or no version at all.
                let complete = async {
                    for (k, val) in [("steward.dataset.fingerprint", format!("sha256:{}", self.fingerprint)), ("steward.pipeline", self.spec.name.clone()), ("steward.pipeline_run", self.parent.clone())] {
                        self.t.post("model-versions/set-tag", json!({ "name": model, "version": version, "key": k, "value": val })).await?;
                    }
                    if let Some(a) = alias {
                        self.t.post("registered-models/alias", json!({ "name": model, "alias": a, "version": version })).await?;
                    }
                    anyhow::Ok(())
                };
                if let Err(e) = complete.await {
                    let _ = send(self.t.http.delete(self.t.api("model-versions/delete")).json(&json!({ "name": model, "version": version }))).await;
                    let reason = format!("registration failed and version {version} was removed: {e:#}");
                    self.t.finish(&run, Some(&reason)).await?;
                    bail!(reason);
                }
                self.t.log(&run, &[("model", model.clone()), ("version", version.clone())], &[], &[("steward.model_run", model_run)]).await?;
                self.t.finish(&run, None).await?;
                state.registered = Some((model.clone(), version.clone()));
                Ok(format!("registered {model} version {version}{}", alias.as_ref().map(|a| format!(" as @{a}")).unwrap_or_default()))
            }
            Step::Deploy { deployment, canary_weight } => {
                let (model, version) = state.registered.clone().context("deploy needs a register step before it")?;
                anyhow::ensure!((1..=100).contains(canary_weight), "canary_weight must be within 1..100, got {canary_weight}");
                let (run, _) = self.child(index, step).await?;
                let url = format!("{}/api/steward/v1/deployments", self.t.base);
                let reference = format!("models:/{model}/{version}");
                let exists = send(self.t.http.get(format!("{url}/{deployment}"))).await.is_ok();
                let outcome = if exists {
                    let change = json!({ "challenger": { "model": reference, "weight": canary_weight } });
                    let mut request = self.t.http.patch(format!("{url}/{deployment}")).json(&change);
                    // Started by the agent: the change is the agent action's, not a person's.
                    if let Ok(action) = std::env::var("STEWARD_AGENT_ACTION") {
                        request = request.header(steward_server::AGENT_ACTION_HEADER, action);
                    }
                    send(request).await.map(|_| format!("canary {reference} at {canary_weight}% on {deployment}"))
                } else {
                    send(self.t.http.post(&url).json(&json!({ "name": deployment, "model": reference }))).await.map(|_| format!("deployed {reference} as {deployment}"))
                };
                match outcome {
                    Ok(summary) => {
                        self.t.log(&run, &[("deployment", deployment.clone()), ("model", reference)], &[], &[]).await?;
                        self.t.finish(&run, None).await?;
                        Ok(summary)
                    }
                    Err(e) => {
                        let reason = format!("deployment failed: {e:#}");
                        self.t.finish(&run, Some(&reason)).await?;
                        bail!(reason)
                    }
                }
            }
        }
    }

    async fn child(&self, index: usize, step: &Step) -> anyhow::Result<(String, String)> {
        let name = format!("{}-{}-{}", self.spec.name, index + 1, step.kind());
        self.t.start(&self.experiment, &name, &[("mlflow.parentRunId", &self.parent), ("steward.step", step.kind()), ("steward.pipeline", &self.spec.name)]).await
    }

    /// Runs an external training command with the tracking URI, the data, the holdout share and
    /// an output directory in its environment; it must leave `model.onnx` there.
    async fn external(&self, command: &str, run: &str) -> anyhow::Result<Vec<u8>> {
        // Inside the pipeline's scratch directory, removed with it however the pipeline ends.
        let out = self.scratch.join(format!("out-{run}"));
        std::fs::create_dir_all(&out)?;
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(&self.dir)
            .env("MLFLOW_TRACKING_URI", &self.tracking_uri)
            .env("STEWARD_TRACKING_URI", &self.tracking_uri)
            .env("STEWARD_RUN_ID", run)
            .env("STEWARD_INPUT", &self.data)
            .env("STEWARD_HOLDOUT", self.spec.train.holdout.to_string())
            .env("STEWARD_LABEL", &self.spec.train.label)
            .env("STEWARD_OUTPUT_DIR", &out);
        let result = tokio::task::spawn_blocking(move || cmd.output()).await?.with_context(|| format!("starting '{command}'"))?;
        let bytes = if result.status.success() {
            std::fs::read(out.join("model.onnx")).with_context(|| format!("'{command}' exited 0 but left no model.onnx in STEWARD_OUTPUT_DIR"))
        } else {
            let stderr = String::from_utf8_lossy(&result.stderr);
            let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
            Err(anyhow::anyhow!("'{command}' exited with {}: {tail}", result.status))
        };
        bytes
    }
}

/// A private directory removed when the pipeline ends, however it ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("steward-pipeline-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn run(cmd: PipelineCommand) -> anyhow::Result<std::process::ExitCode> {
    let PipelineCommand::Run { file, tracking_uri, trigger } = cmd;
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let spec: Spec = serde_norway::from_str(&text).with_context(|| format!("{} is not a valid pipeline", file.display()))?;
    anyhow::ensure!(!spec.steps.is_empty(), "{}: the pipeline has no steps", file.display());
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
    let source = if spec.data.is_absolute() { spec.data.clone() } else { dir.join(&spec.data) };
    // Every step reads one snapshot of the data, so a file rewritten while the pipeline runs
    // (a warehouse export, say) cannot make the fingerprint and the rows trained on disagree.
    let scratch = Scratch::new()?;
    let data = scratch.0.join(source.file_name().context("the pipeline's data is not a file")?);
    std::fs::copy(&source, &data).with_context(|| format!("reading {}", source.display()))?;
    let fingerprint = crate::data::fingerprint(&data)?;
    let t = Tracking { http: reqwest::Client::new(), base: crate::remote::base(&tracking_uri)? };
    let experiment = t.experiment(spec.experiment.as_deref().unwrap_or(&spec.name)).await?;
    let (parent, _) = t
        .start(&experiment, &format!("{}-pipeline", spec.name), &[("steward.pipeline", &spec.name), ("steward.dataset.fingerprint", &format!("sha256:{fingerprint}")), ("steward.trigger", &trigger)])
        .await?;
    println!("pipeline {} (run {parent}) on {} (sha256:{})", spec.name, source.display(), &fingerprint[..16]);
    let dataset = spec.dataset.clone().unwrap_or_else(|| data.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into()));
    let registered = match crate::data::register(&t.http, &t.base, &data, &dataset).await {
        Ok(r) => r,
        Err(e) => {
            let reason = format!("registering the data as dataset '{dataset}' failed: {e:#}");
            t.finish(&parent, Some(&reason)).await?;
            bail!(reason);
        }
    };
    let version = registered["dataset_version"]["version"].clone();
    t.log(&parent, &[], &[], &[("steward.dataset", format!("{dataset}/{version}"))]).await?;
    println!("  dataset {dataset} version {version}{}", if registered["created"] == json!(true) { "" } else { " (already registered)" });
    let p = Pipeline { t, spec, dir, data, source, scratch: scratch.0.clone(), fingerprint, experiment, parent, tracking_uri };
    let mut state = State::default();
    for (i, step) in p.spec.steps.iter().enumerate() {
        match p.step(i, step, &mut state).await {
            Ok(summary) => println!("  {}. {}: {summary}", i + 1, step.kind()),
            Err(e) => {
                let reason = format!("step {} ({}) failed: {e:#}", i + 1, step.kind());
                p.t.finish(&p.parent, Some(&reason)).await?;
                eprintln!("pipeline {} stopped: {reason}", p.spec.name);
                return Ok(std::process::ExitCode::from(1));
            }
        }
    }
    p.t.finish(&p.parent, None).await?;
    println!("pipeline {} finished", p.spec.name);
    Ok(std::process::ExitCode::SUCCESS)
}
