//! `steward demo`: the flagship scenario end to end on the embedded default (SQLite and local
//! files in one directory), with progress output. A credit-default model is trained on a
//! synthetic portfolio, validated, registered, approved and deployed; production traffic is
//! replayed with labels arriving one window late; covariate and concept drift start partway
//! through; the monitor alerts, the agent opens incidents, runs the declared retraining, and
//! canaries, judges and promotes (or rolls back) the challenger under the demo's policy. The
//! demo plays only the bank's side: it sends applications and labels, and exports recently
//! labelled applications for retraining as a data warehouse would. Everything else is the
//! server and its agent, observed through the API.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use steward_train::synth::{self, SynthOptions, Values};

use crate::remote::send;

/// Applications in the training portfolio.
const TRAIN_ROWS: usize = 6_000;
/// Applications available for replay (the demo stops once the story is told).
const STREAM_ROWS: usize = 40_000;
/// Predictions into the replay when customer behaviour shifts.
const ONSET: usize = 3_000;
/// How far the shift goes (0..1). At full strength tenure's effect on default reverses so far
/// that any model fitted to the new world turns older applicants down as often as the four-fifths
/// rule allows, and the retraining gate refuses about one challenger in five; 0.85 keeps the
/// shift large (v1's ROC AUC falls from 0.76 to 0.58) with a challenger that is fair.
const DRIFT_STRENGTH: f64 = 0.85;
/// Predictions per monitoring window.
const WINDOW: usize = 500;
/// Windows of traffic replayed after the canary ends, to measure the new champion.
const AFTER_WINDOWS: usize = 3;
/// Labelled applications in the warehouse export the retraining pipeline reads.
const RECENT_ROWS: usize = 2_000;
/// Each window of applications arrives over at least this long.
const WINDOW_TIME: Duration = Duration::from_secs(1);
/// How often the demo's agent looks: well within a window, so that it acts on each window before
/// the next one's labels arrive and the scenario plays out the same way every time.
const AGENT_TICK: Duration = Duration::from_millis(200);
/// Wall-clock limit of the replay.
const TIME_LIMIT: Duration = Duration::from_secs(150);
const MARKER: &str = ".steward-demo";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// The demo's data directory (an earlier demo's directory is replaced; anything else there
    /// is refused)
    #[arg(long, default_value = "steward-demo")]
    dir: PathBuf,
    /// Write a summary as JSON here
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the server running afterwards, until Ctrl-C
    #[arg(long)]
    serve: bool,
    /// The server's port on 127.0.0.1 (0 picks a free one)
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seed of the synthetic portfolio and traffic
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// The demo's policy. Promotion is automatic here so that the scenario runs unattended; a
/// bank would list `promote` (and `pause`) under `approval`, and the agent would wait for a
/// validator.
const POLICY: &str = "\
# steward demo's policy (the retraining changes declared in advance).
# approval is empty: the demo promotes without a human, and says so. A bank would write
# `approval: [promote, pause]` and the promotion would wait for a validator.
deployment: credit
triggers:
  - {name: feature-drift, metric: drift_share, above: 0.3, incident: data_drift, actions: [notify]}
  - {name: auc-floor, metric: roc_auc, below: 0.65, windows: 2, incident: performance_decay, actions: [retrain]}
  - {name: four-fifths, metric: adverse_impact_ratio, below: 0.8, windows: 2, incident: fairness_breach, actions: [notify]}
approval: []
retrain: {pipeline: PIPELINE}
canary:
  steps: [10, 50, 100]
  min_requests: 100
  min_labelled_rows: 300
  max_error_rate_increase: 0.01
  max_latency_ratio: 5
  max_positive_rate_shift: 0.15
  min_adverse_impact_ratio: 0.8
  min_auc_delta: -0.02
";

const PIPELINE_V1: &str = "\
# Model v1: trained on the portfolio, validated against its own suite, evaluated, gated.
name: credit-default
data: data/portfolio.csv
dataset: credit-portfolio
train: {label: default, model: gbt, exclude: [application_id, application_time, age_band]}
protected: age_band
steps:
  - validate: {suite: suite.yaml}
  - train: {}
  - evaluate: {}
  - gate: {min_roc_auc: 0.72, min_adverse_impact_ratio: 0.8}
  - register: {model: credit-default}
";

const PIPELINE_RETRAIN: &str = "\
# The declared retraining: recent labelled applications (the warehouse export), evaluated
# against the champion on the same holdout, gated, registered, put on a 10% canary.
name: credit-default-retrain
experiment: credit-default
data: data/recent.csv
dataset: credit-recent
train: {label: default, model: gbt, exclude: [application_id, application_time, age_band]}
protected: age_band
steps:
  - train: {}
  - evaluate: {champion: credit-default@champion}
  - gate: {min_roc_auc: 0.65, min_adverse_impact_ratio: 0.8, beat_champion_by: 0.0}
  - register: {model: credit-default, alias: challenger}
  - deploy: {deployment: credit, canary_weight: 10}
";

const MONITOR: &str = "\
quality: {min_roc_auc: 0.65}
fairness: {attribute: age_band, favorable: 0, min_ratio: 0.8}
";

struct Clock(Instant);

impl Clock {
    fn say(&self, what: impl AsRef<str>) {
        println!("[{:6.1}s] {}", self.0.elapsed().as_secs_f64(), what.as_ref());
    }
}

/// The rows picked by index, in the given order, of the columns `keep` accepts.
fn pick(columns: &[(String, Values)], rows: &[usize], keep: impl Fn(&str) -> bool) -> Vec<(String, Values)> {
    columns
        .iter()
        .filter(|(n, _)| keep(n))
        .map(|(n, v)| {
            let v = match v {
                Values::Int(x) => Values::Int(rows.iter().map(|i| x[*i]).collect()),
                Values::Float(x) => Values::Float(rows.iter().map(|i| x[*i]).collect()),
                Values::Text(x) => Values::Text(rows.iter().map(|i| x[*i].clone()).collect()),
            };
            (n.clone(), v)
        })
        .collect()
}

/// A range of rows.
fn slice(columns: &[(String, Values)], rows: std::ops::Range<usize>, keep: impl Fn(&str) -> bool) -> Vec<(String, Values)> {
    pick(columns, &rows.collect::<Vec<_>>(), keep)
}

fn int(columns: &[(String, Values)], name: &str) -> anyhow::Result<Vec<i64>> {
    match columns.iter().find(|(n, _)| n == name).map(|(_, v)| v) {
        Some(Values::Int(x)) => Ok(x.clone()),
        _ => bail!("the synthetic table has no integer column '{name}'"),
    }
}

fn text(columns: &[(String, Values)], name: &str) -> anyhow::Result<Vec<String>> {
    match columns.iter().find(|(n, _)| n == name).map(|(_, v)| v) {
        Some(Values::Text(x)) => Ok(x.clone()),
        _ => bail!("the synthetic table has no text column '{name}'"),
    }
}

/// One application as an Open Inference Protocol request: one `[1, 1]` input per feature the
/// model takes, typed as its signature says (a count the trainer treated as a category goes as
/// text), and the age band as context (for fairness), never as a model input.
fn request(columns: &[(String, Values)], signature: &HashMap<String, String>, row: usize, age_band: &str) -> Value {
    let inputs: Vec<Value> = columns
        .iter()
        .filter_map(|(n, v)| {
            let datatype = signature.get(n)?;
            let value = match (v, datatype.as_str()) {
                (Values::Int(x), "BYTES") => json!(x[row].to_string()),
                (Values::Float(x), "BYTES") => json!(x[row].to_string()),
                (Values::Int(x), _) => json!(x[row] as f64),
                (Values::Float(x), _) => json!(x[row]),
                (Values::Text(x), _) => json!(x[row]),
            };
            Some(json!({ "name": n, "shape": [1, 1], "datatype": datatype, "data": [value] }))
        })
        .collect();
    let key = match columns.iter().find(|(n, _)| n == "application_id").map(|(_, v)| v) {
        Some(Values::Int(ids)) => ids[row].to_string(),
        _ => row.to_string(),
    };
    // The routing key keeps an applicant on one route for a given canary weight.
    json!({ "inputs": inputs, "parameters": { "context": { "age_band": age_band }, "routing_key": key } })
}

/// Writes a table atomically: readers see the old file or the new one, never half of one.
fn write_atomic(path: &Path, columns: &[(String, Values)]) -> anyhow::Result<()> {
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_extension(format!("tmp.{ext}"));
    crate::table::write_columns(&tmp, columns)?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

fn prepare(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.next().is_none();
        ensure!(empty || dir.join(MARKER).is_file(), "{} exists and is not an earlier demo's directory; choose another --dir", dir.display());
        std::fs::remove_dir_all(dir).with_context(|| format!("removing the earlier demo in {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir.join("data")).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join(MARKER), "written by steward demo; the next demo replaces this directory\n")?;
    Ok(dir.canonicalize()?)
}

/// Area under the ROC curve of served scores against the labels.
fn auc(pairs: &[(f64, u8)]) -> Option<f64> {
    let (scores, truth): (Vec<f64>, Vec<u8>) = pairs.iter().copied().unzip();
    steward_stats::quality::classification(&truth, &scores, 0.5).ok()?.roc_auc
}

/// What the demo saw happen, in order.
#[derive(Default)]
struct Story {
    timeline: Vec<(usize, f64, String)>,
    seen_alerts: BTreeSet<String>,
    alert_kinds: std::collections::BTreeMap<String, usize>,
    /// Alerts of any kind raised by windows before the onset.
    before_onset: std::collections::BTreeMap<String, usize>,
    seen_incidents: BTreeSet<String>,
    seen_actions: HashMap<String, String>,
    first_alert: Option<usize>,
    false_alarms: usize,
    retrain_incident: Option<String>,
    challenger: Option<i64>,
    promoted: bool,
    rolled_back: bool,
    canary_over_at: Option<usize>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    let clock = Clock(Instant::now());
    let dir = prepare(&args.dir)?;
    println!("steward demo: the credit-default scenario in {}", dir.display());

    // 1. Data: a portfolio to train on, and the applications that will arrive in production.
    let options = SynthOptions { rows: TRAIN_ROWS + STREAM_ROWS, seed: args.seed, covariate_drift_at: Some(TRAIN_ROWS + ONSET), concept_drift_at: Some(TRAIN_ROWS + ONSET), strength: DRIFT_STRENGTH, ..Default::default() };
    let table = synth::credit(&options).context("synthesising applications")?;
    let portfolio = slice(&table.columns, 0..TRAIN_ROWS, |_| true);
    crate::table::write_columns(&dir.join("data/portfolio.csv"), &portfolio)?;
    crate::table::write_columns(&dir.join("data/reference.csv"), &slice(&table.columns, 0..TRAIN_ROWS, |n| synth::FEATURES.contains(&n)))?;
    let stream = slice(&table.columns, TRAIN_ROWS..TRAIN_ROWS + STREAM_ROWS, |_| true);
    let (labels, bands) = (int(&stream, "default")?, text(&stream, "age_band")?);
    let rate = |y: &[i64]| y.iter().sum::<i64>() as f64 / y.len().max(1) as f64;
    clock.say(format!(
        "synthesised {TRAIN_ROWS} portfolio applications (default rate {:.3}) and {STREAM_ROWS} production applications; behaviour shifts from prediction {ONSET} (default rate {:.3} before, {:.3} after)",
        rate(&int(&portfolio, "default")?),
        rate(&labels[..ONSET]),
        rate(&labels[ONSET..])
    ));

    // 2. The control plane: the server, its store, and the agent under the demo's policy.
    std::fs::write(dir.join("suite.yaml"), crate::validate::infer(&dir.join("data/portfolio.csv"))?)?;
    std::fs::write(dir.join("pipeline.yaml"), PIPELINE_V1)?;
    std::fs::write(dir.join("retrain.yaml"), PIPELINE_RETRAIN)?;
    std::fs::write(dir.join("monitor.yaml"), MONITOR)?;
    let policy_text = POLICY.replace("PIPELINE", &dir.join("retrain.yaml").display().to_string());
    std::fs::write(dir.join("policy.yaml"), &policy_text)?;
    let policy: steward_agent::Policy = serde_norway::from_str(&policy_text).context("the demo policy")?;
    steward_server::agent::check(std::slice::from_ref(&policy)).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let store_uri = format!("sqlite:///{}", dir.join("steward.db").display());
    let store = steward_store::open_metadata(&store_uri, "mlflow-artifacts:/").await.with_context(|| format!("opening {store_uri}"))?;
    let artifacts = steward_store::ArtifactStore::open(&dir.join("artifacts").display().to_string())?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await.with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    let url = format!("http://{}", listener.local_addr()?);
    let mut state = steward_server::AppState::new(store.clone(), artifacts).with_policies(vec![policy.clone()]);
    if let Some(anchor) = crate::audit::open_anchor(&crate::audit::AnchorArgs::default(), &store_uri, &dir.join("artifacts").display().to_string(), 1000).await? {
        state = state.with_anchor(anchor);
    }
    let agent = steward_server::agent::Agent::new(&state, vec![policy], url.clone())?;
    steward_server::agent::Agent { tick: AGENT_TICK, ..agent }.start();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(steward_server::serve(listener, state, async {
        let _ = stop_rx.await;
    }));
    clock.say(format!("server at {url} (metadata {store_uri}), agent policy {}", dir.join("policy.yaml").display()));

    // 3. Model v1: validate, train, evaluate, gate, register; then approve and deploy it.
    let run = crate::pipeline::run(crate::pipeline::PipelineCommand::Run { file: dir.join("pipeline.yaml"), tracking_uri: url.clone(), trigger: "steward demo".into() }).await?;
    ensure!(run == std::process::ExitCode::SUCCESS, "the v1 pipeline failed (see above)");
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{url}/api/2.0/mlflow/{path}");
    let steward = |path: &str| format!("{url}/api/steward/v1/{path}");
    send(http.post(api("registered-models/alias")).json(&json!({ "name": "credit-default", "alias": "champion", "version": "1", "steward_reason": "demo: v1 validated and approved for production" }))).await.context("approving v1")?;
    send(http.post(steward("deployments")).json(&json!({ "name": "credit", "model": "models:/credit-default@champion" }))).await.context("deploying v1")?;
    crate::data::monitor(crate::data::MonitorCommand::Create {
        deployment: "credit".into(),
        reference: dir.join("data/reference.csv"),
        window_size: WINDOW,
        window_seconds: None,
        drift_share: 0.3,
        stattest: None,
        webhook: None,
        spec: Some(dir.join("monitor.yaml")),
        no_prediction_drift: false,
        label: None,
        tracking_uri: url.clone(),
    })
    .await?;
    clock.say("v1 approved (alias champion) and deployed as 'credit'; monitor: drift, quality once labels arrive, fairness by age band");
    let metadata = send(http.get(format!("{url}/v2/models/credit"))).await.context("reading the model's signature")?;
    let signature: HashMap<String, String> =
        metadata["inputs"].as_array().into_iter().flatten().filter_map(|i| Some((i["name"].as_str()?.to_owned(), i["datatype"].as_str()?.to_owned()))).collect();

    // 4. Production: applications one by one, labels one window late, the warehouse export.
    let mut story = Story::default();
    let mut ids: Vec<String> = Vec::with_capacity(STREAM_ROWS);
    let mut served: Vec<(f64, i64)> = Vec::with_capacity(STREAM_ROWS);
    let mut labelled: Vec<usize> = Vec::new();
    let mut phase_of: Vec<u8> = Vec::with_capacity(STREAM_ROWS);
    let windows = STREAM_ROWS / WINDOW;
    let mut end = None;
    for w in 0..windows {
        if clock.0.elapsed() > TIME_LIMIT {
            clock.say("time limit reached: stopping the replay");
            break;
        }
        let window_started = Instant::now();
        for row in w * WINDOW..(w + 1) * WINDOW {
            let answer = send(http.post(format!("{url}/v2/models/credit/infer")).json(&request(&stream, &signature, row, &bands[row]))).await.with_context(|| format!("prediction {row}"))?;
            ids.push(answer["parameters"]["prediction_id"].as_str().context("no prediction id")?.to_owned());
            let probabilities = answer["outputs"].as_array().into_iter().flatten().find(|o| o["name"] == "probabilities").context("no probabilities")?;
            served.push((probabilities["data"][1].as_f64().unwrap_or(f64::NAN), answer["model_version"].as_str().unwrap_or("0").parse().unwrap_or(0)));
            phase_of.push(if story.canary_over_at.is_some() { 2 } else if row >= ONSET { 1 } else { 0 });
        }
        tokio::time::sleep(WINDOW_TIME.saturating_sub(window_started.elapsed())).await;
        let count = (w + 1) * WINDOW;
        if w == ONSET / WINDOW {
            let what = "drift onset: incomes fall, utilisation rises, the default process changes";
            clock.say(format!("@{ONSET:>6} {what}"));
            story.timeline.push((ONSET, clock.0.elapsed().as_secs_f64(), what.into()));
        }
        wait_for_window(&http, &url, w + 1).await?;
        if w >= 1 {
            let rows: Vec<usize> = ((w - 1) * WINDOW..w * WINDOW).collect();
            let feedback: Vec<Value> = rows.iter().map(|i| json!({ "prediction_id": ids[*i], "label": labels[*i] })).collect();
            send(http.post(steward("feedback")).json(&json!({ "feedback": feedback }))).await.context("sending labels")?;
            labelled.extend(rows);
            let recent = &labelled[labelled.len().saturating_sub(RECENT_ROWS)..];
            write_atomic(&dir.join("data/recent.csv"), &pick(&stream, recent, |_| true))?;
        }
        observe(&http, &url, count, &clock, &mut story).await?;
        // The warehouse export stands still while a retraining runs (the bank's nightly export
        // does not change under a running job); traffic waits with it.
        if retraining(&http, &url).await? {
            let deadline = Instant::now() + Duration::from_secs(120);
            while retraining(&http, &url).await? {
                ensure!(Instant::now() < deadline, "the retraining has not finished after 120 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            observe(&http, &url, count, &clock, &mut story).await?;
        }
        if story.canary_over_at.is_none() && (story.promoted || story.rolled_back) {
            story.canary_over_at = Some(count);
        }
        if let Some(at) = story.canary_over_at
            && count >= at + AFTER_WINDOWS * WINDOW
        {
            end = Some(count);
            break;
        }
    }
    let replayed = end.unwrap_or(ids.len());

    // 5. The record: incidents, actions, before/after quality, the ledger.
    let ledger = send(http.get(steward("audit/verify"))).await?;
    let verified = ledger["intact"].as_bool() == Some(true);
    let entries = ledger["entries"].as_i64().unwrap_or(0);
    let actions = send(http.get(steward("agent/actions"))).await?["actions"].as_array().cloned().unwrap_or_default();
    let incidents = send(http.get(steward("incidents"))).await?["incidents"].as_array().cloned().unwrap_or_default();
    let human_actions = actions.iter().filter(|a| a["decided_by"].as_str().is_some_and(|d| d != "agent")).count();
    let quality = |phase: u8| {
        // Labels are sent in order: the first `labelled.len()` answers have theirs.
        let pairs: Vec<(f64, u8)> = (0..labelled.len().min(replayed)).filter(|i| phase_of[*i] == phase).map(|i| (served[i].0, labels[i] as u8)).collect();
        (auc(&pairs), pairs.len())
    };
    println!();
    println!("incident timeline (prediction count, seconds since start):");
    for (count, secs, what) in &story.timeline {
        println!("  {count:>6}  {secs:6.1}s  {what}");
    }
    let counts: Vec<String> = story.alert_kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    // An alert is a condition that started (it stays open while windows keep showing it).
    println!("  alerts raised, by kind: {}; false alarms (any alert before the shift): {}", if counts.is_empty() { "none".into() } else { counts.join(", ") }, story.false_alarms);
    println!();
    println!("served quality (ROC AUC of the answers given, against the labels that arrived):");
    for (phase, what) in [(0, "before the shift, v1"), (1, "after the shift, until the canary ended"), (2, "after the canary, the champion then serving")] {
        match quality(phase) {
            (Some(a), n) => println!("  {what:<45} {a:.4} on {n} applications"),
            (None, n) => println!("  {what:<45} n/a ({n} labelled applications)"),
        }
    }
    // The validation report (SR 11-7) of the version serving at the end, from the server's records.
    let serving_version = story.challenger.filter(|_| story.promoted).unwrap_or(1);
    let validation = dir.join(format!("validation-report-v{serving_version}.html"));
    let page = http.get(steward(&format!("registry/models/credit-default/versions/{serving_version}/documents/validation-report"))).send().await?;
    ensure!(page.status().is_success(), "the validation report could not be built (HTTP {})", page.status().as_u16());
    std::fs::write(&validation, page.text().await?).with_context(|| format!("writing {}", validation.display()))?;
    let report = dir.join("demo-report.md");
    write_report(&report, &story, &incidents, &actions, &quality, verified, entries)?;
    println!();
    println!("audit ledger: {entries} entries, {}", if verified { "verified intact" } else { "BROKEN" });
    println!("incident report: {}", report.display());
    println!("validation report (SR 11-7) of credit-default version {serving_version}: {}", validation.display());
    println!("check it yourself: steward audit verify --backend-store-uri {store_uri}");
    let summary = json!({
        "drift_onset": ONSET,
        "first_alert": story.first_alert,
        "false_alarms": story.false_alarms,
        "alerts_before_onset": story.before_onset,
        "alerts": story.alert_kinds,
        "window_size": WINDOW,
        "incident_id": story.retrain_incident,
        "challenger_version": story.challenger,
        "promoted": story.promoted,
        "rolled_back": story.rolled_back,
        "human_actions": human_actions,
        "ledger_entries": entries,
        "ledger_verified": verified,
        "predictions": replayed,
        "seconds": clock.0.elapsed().as_secs_f64(),
        "data_dir": dir,
        "report": report,
        "validation_report": validation,
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?).with_context(|| format!("writing {}", path.display()))?;
    }
    let ok = story.first_alert.is_some() && story.promoted && verified;
    if args.serve {
        println!("serving at {url} until Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    if !ok {
        eprintln!("the scenario did not complete: first alert {:?}, promoted {}, ledger verified {verified}", story.first_alert, story.promoted);
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Whether a retraining the agent started is still running.
async fn retraining(http: &reqwest::Client, url: &str) -> anyhow::Result<bool> {
    let actions = send(http.get(format!("{url}/api/steward/v1/agent/actions"))).await?;
    Ok(actions["actions"].as_array().into_iter().flatten().any(|a| a["kind"] == "retrain" && matches!(a["status"].as_str(), Some("approved" | "running"))))
}

/// Waits until the monitor has judged `n` windows of predictions.
async fn wait_for_window(http: &reqwest::Client, url: &str, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = send(http.get(format!("{url}/api/steward/v1/deployments/credit/monitor/metrics")).query(&[("metric", "drift_share")])).await?;
        if m["metrics"].as_array().map_or(0, Vec::len) >= n {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the monitor has not judged window {n} after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads what the monitor and the agent did since the last look, and tells it.
async fn observe(http: &reqwest::Client, url: &str, count: usize, clock: &Clock, story: &mut Story) -> anyhow::Result<()> {
    let secs = clock.0.elapsed().as_secs_f64();
    let mut events = Vec::new();
    let alerts = send(http.get(format!("{url}/api/steward/v1/alerts")).query(&[("deployment", "credit")])).await?;
    let mut fresh: Vec<&Value> = alerts["alerts"].as_array().into_iter().flatten().filter(|a| !story.seen_alerts.contains(a["id"].as_str().unwrap_or_default())).collect();
    fresh.sort_by_key(|a| a["time"].as_i64());
    for a in fresh {
        story.seen_alerts.insert(a["id"].as_str().unwrap_or_default().to_owned());
        let kind = a["kind"].as_str().unwrap_or_default();
        if kind == "data_drift" && count > ONSET {
            story.first_alert.get_or_insert(count);
        }
        // An alert of any kind before the shift is a false alarm.
        if count <= ONSET {
            story.false_alarms += 1;
            *story.before_onset.entry(kind.to_owned()).or_default() += 1;
        }
        // The first alert of each kind goes in the timeline; the rest are counted.
        let seen = story.alert_kinds.entry(kind.to_owned()).or_default();
        *seen += 1;
        if *seen == 1 {
            events.push(format!("first {kind} alert: {}", a["message"].as_str().unwrap_or_default()));
        }
    }
    let incidents = send(http.get(format!("{url}/api/steward/v1/incidents")).query(&[("deployment", "credit")])).await?;
    for i in incidents["incidents"].as_array().into_iter().flatten() {
        let id = i["id"].as_str().unwrap_or_default();
        if story.seen_incidents.insert(id.to_owned()) {
            events.push(format!("incident {} opened ({}, trigger {}): {}", &id[..8.min(id.len())], i["kind"].as_str().unwrap_or_default(), i["trigger"].as_str().unwrap_or_default(), evidence(&i["evidence"])));
        }
    }
    let actions = send(http.get(format!("{url}/api/steward/v1/agent/actions"))).await?;
    let mut list: Vec<&Value> = actions["actions"].as_array().into_iter().flatten().collect();
    list.sort_by_key(|a| a["updated"].as_i64());
    for a in list {
        let (id, status, kind) = (a["id"].as_str().unwrap_or_default(), a["status"].as_str().unwrap_or_default(), a["kind"].as_str().unwrap_or_default());
        if story.seen_actions.get(id).map(String::as_str) == Some(status) {
            continue;
        }
        story.seen_actions.insert(id.to_owned(), status.to_owned());
        if kind == "retrain" && story.retrain_incident.is_none() {
            story.retrain_incident = a["incident_id"].as_str().map(str::to_owned);
        }
        match (kind, status) {
            ("promote", "done") => story.promoted = true,
            ("rollback", "done") => story.rolled_back = true,
            _ => {}
        }
        let note = a["outcome"].as_str().filter(|_| matches!(status, "done" | "failed")).or_else(|| a["reason"].as_str()).unwrap_or_default();
        events.push(format!("agent {kind} {status}: {note}"));
    }
    let deployment = send(http.get(format!("{url}/api/steward/v1/deployments/credit"))).await?;
    if let Some(challenger) = deployment["deployment"]["routes"].as_array().into_iter().flatten().find(|r| r["role"] == "challenger")
        && story.challenger.is_none()
    {
        story.challenger = challenger["version"].as_i64();
    }
    for e in events {
        clock.say(format!("@{count:>6} {e}"));
        story.timeline.push((count, secs, e));
    }
    Ok(())
}

fn evidence(e: &Value) -> String {
    let windows: Vec<String> = e["windows"].as_array().into_iter().flatten().filter_map(|w| w[1].as_f64()).map(|v| format!("{v:.3}")).collect();
    let feature = e["feature"].as_str().filter(|f| !f.is_empty()).map(|f| format!(" of {f}")).unwrap_or_default();
    format!("{}{feature} = [{}]", e["metric"].as_str().unwrap_or_default(), windows.join(", "))
}

fn write_report(path: &Path, story: &Story, incidents: &[Value], actions: &[Value], quality: &dyn Fn(u8) -> (Option<f64>, usize), verified: bool, entries: i64) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut md = String::from("# steward demo: incident report\n\n");
    let _ = writeln!(md, "Drift onset at prediction {ONSET}; monitoring windows of {WINDOW} predictions; labels arrive one window late.\n");
    let _ = writeln!(md, "## Timeline\n\n| prediction | seconds | event |\n|---:|---:|---|");
    for (count, secs, what) in &story.timeline {
        let _ = writeln!(md, "| {count} | {secs:.1} | {} |", what.replace('|', "\\|"));
    }
    let _ = writeln!(md, "\n## Incidents");
    for i in incidents {
        let _ = writeln!(md, "\n### {} ({}, trigger {})\n\nEvidence: {}\n", i["id"].as_str().unwrap_or_default(), i["kind"].as_str().unwrap_or_default(), i["trigger"].as_str().unwrap_or_default(), evidence(&i["evidence"]));
        for a in i["analyses"].as_array().into_iter().flatten() {
            let _ = writeln!(md, "Analysis ({}):\n\n{}\n", a["source"].as_str().unwrap_or_default(), a["text"].as_str().unwrap_or_default().lines().map(|l| format!("> {l}")).collect::<Vec<_>>().join("\n>\n"));
        }
    }
    let _ = writeln!(md, "\n## Agent actions\n\n| action | status | reason | decided by | outcome |\n|---|---|---|---|---|");
    let cell = |v: &Value| v.as_str().unwrap_or_default().replace('|', "\\|");
    for a in actions {
        let _ = writeln!(md, "| {} | {} | {} | {} | {} |", cell(&a["kind"]), cell(&a["status"]), cell(&a["reason"]), a["decided_by"].as_str().unwrap_or("policy"), cell(&a["outcome"]));
    }
    let _ = writeln!(md, "\n## Served quality\n\n| period | ROC AUC | labelled applications |\n|---|---:|---:|");
    for (phase, what) in [(0, "before the shift (v1)"), (1, "after the shift, until the canary ended"), (2, "after the canary")] {
        let (a, n) = quality(phase);
        let _ = writeln!(md, "| {what} | {} | {n} |", a.map_or("n/a".into(), |a| format!("{a:.4}")));
    }
    let _ = writeln!(md, "\n## Outcome\n\n- challenger version: {}\n- promoted: {}\n- rolled back: {}\n- audit ledger: {entries} entries, {}", story.challenger.map_or("none".into(), |v| v.to_string()), story.promoted, story.rolled_back, if verified { "verified intact" } else { "broken" });
    std::fs::write(path, md).with_context(|| format!("writing {}", path.display()))
}
