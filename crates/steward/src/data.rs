//! `steward data profile` (a table's reference profile, as monitors use it) and
//! `steward monitor create|delete` (a deployment's monitor, over HTTP).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};
use steward_runtime::frame::Cell;
use steward_stats::drift::ColumnType;
use steward_server::serving::log::tensors_json;
use steward_server::serving::monitor::{Answered, MAX_REFERENCE_ROWS, Outputs, answered};
use steward_stats::profile::{ColumnProfile, ColumnProfiler, Profile};

use crate::remote::send;
use crate::{report, table};

/// Profiles a table column by column (a Parquet file is read one column at a time); types are
/// inferred as for drift reports, free text is profiled as categories.
pub fn profile(path: &Path) -> anyhow::Result<Profile> {
    let table = table::Columns::open(path)?;
    let mut columns = Vec::with_capacity(table.names().len());
    for name in table.names() {
        let column = table::ColumnCells::Rows(table.column(name)?.unwrap_or_default());
        let ty = report::column_type(&column).unwrap_or(ColumnType::Categorical);
        let mut p = ColumnProfiler::new(name, ty);
        for (c, _) in column.weighted() {
            match ty {
                ColumnType::Numerical => p.push_number(report::as_number(c)),
                ColumnType::Categorical => p.push_label(report::category(c).as_deref()),
            }
        }
        columns.push(p.finish());
    }
    Ok(Profile { rows: table.rows() as u64, columns })
}

/// SHA-256 over a canonical encoding of a table, so that the same data reads the same from CSV
/// and from Parquet: column names in order, then each row's cells, each cell tagged (null,
/// number in its shortest round-trip form with -0 as 0, boolean, text) and length-prefixed.
/// Text that parses as a number counts as that number (a CSV cannot say otherwise).
pub fn fingerprint(path: &Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let frame = table::read(path)?;
    let mut h = Sha256::new();
    let mut field = |tag: u8, bytes: &[u8]| {
        h.update([tag]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b'C', &(frame.columns.len() as u64).to_le_bytes());
    for (name, _) in &frame.columns {
        field(b'H', name.as_bytes());
    }
    for r in 0..frame.rows() {
        for (_, cells) in &frame.columns {
            match &cells[r] {
                Cell::Null => field(b'0', b""),
                Cell::Bool(b) => field(b'B', if *b { b"true" } else { b"false" }),
                // pandas reads True/False in a CSV as booleans, and writes booleans so.
                Cell::Text(t) if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") => {
                    field(b'B', if t.eq_ignore_ascii_case("true") { b"true" } else { b"false" })
                }
                c => match report::as_number(c).filter(|v| !v.is_nan() || matches!(c, Cell::Num(_))) {
                    Some(v) if v.is_nan() => field(b'0', b""),
                    Some(v) => field(b'N', (if v == 0.0 { 0.0 } else { v }).to_string().as_bytes()),
                    None => field(b'T', report::text(c).unwrap_or_default().as_bytes()),
                },
            }
        }
    }
    Ok(format!("{:x}", h.finalize()))
}

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Generate a synthetic table, deterministic for a seed
    #[command(subcommand)]
    Synth(crate::train::SynthCommand),
    /// Profile a table (CSV or Parquet): per-column type, counts, moments and a bounded sample
    Profile {
        file: PathBuf,
        /// Write the profile here (default: print it)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a table's fingerprint: SHA-256 of its content, equal for the same data in CSV and Parquet
    Fingerprint { file: PathBuf },
    /// Register a table as a new version of a named dataset: a content-addressed copy in the
    /// server's artifact store with its fingerprint, schema and profile (the same content is
    /// recognised as the version it already is)
    Register {
        file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, env = "MLFLOW_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
        tracking_uri: String,
    },
    /// Where a dataset version went: runs that took it as input, the model versions they made,
    /// the deployments serving those
    Lineage {
        name: String,
        #[arg(long)]
        version: i64,
        #[arg(long, env = "MLFLOW_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
        tracking_uri: String,
    },
    /// Infer an expectation suite (YAML) from a table: its schema, null shares, ranges and
    /// allowed values, to edit and use with `data validate`
    Suite {
        file: PathBuf,
        /// Write the suite here (default: print it)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a table against an expectation suite (YAML); exit 1 when an expectation fails
    Validate {
        /// The expectation suite
        #[arg(long)]
        suite: PathBuf,
        file: PathBuf,
        /// Write the results here (default: print them)
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(clap::Subcommand)]
pub enum MonitorCommand {
    /// Watch a deployment's predictions against a reference (a data file or a profile .json)
    Create {
        deployment: String,
        /// Reference data (.csv, .parquet) or a profile from `steward data profile` (.json)
        #[arg(long)]
        reference: PathBuf,
        /// Logged predictions (requests) per window
        #[arg(long, default_value_t = 500)]
        window_size: usize,
        /// Windows by time instead: seconds of predictions per window
        #[arg(long)]
        window_seconds: Option<u64>,
        /// Share of drifted features that makes a window drift (and raises an alert)
        #[arg(long, default_value_t = 0.5)]
        drift_share: f64,
        /// Drift test for every feature it applies to (default: Evidently's choice)
        #[arg(long)]
        stattest: Option<String>,
        /// POST alerts here (Slack-compatible payload)
        #[arg(long)]
        webhook: Option<String>,
        /// More of the monitor's spec, YAML or JSON: `outputs`, `quality` (min_roc_auc,
        /// min_accuracy), `fairness` (attribute, favorable, min_ratio), `slo` (max_error_rate,
        /// max_latency_p95_ms, max_missing_share), `threshold`
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Do not score the reference data with the deployed champion for prediction drift
        #[arg(long)]
        no_prediction_drift: bool,
        /// The reference's label column (not a feature): the champion's scores on the reference
        /// and these labels calibrate an estimate of accuracy and ROC AUC per window before
        /// labels arrive (NannyML's CBPE); floors go in --spec under `estimated_quality`
        #[arg(long)]
        label: Option<String>,
        #[arg(long, env = "MLFLOW_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
        tracking_uri: String,
    },
    /// Stop monitoring a deployment
    Delete {
        deployment: String,
        #[arg(long, env = "MLFLOW_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
        tracking_uri: String,
    },
}

/// The deployed champion's answer on the reference table (less its label column), read as the
/// monitor will read live answers, with the reference's labels when a label column is named.
async fn score_reference(http: &reqwest::Client, base: &str, tracking_uri: &str, deployment: &str, reference: &Path, spec: &Value, label: Option<&str>) -> anyhow::Result<(Answered, Vec<Cell>)> {
    let d = send(http.get(format!("{base}/api/steward/v1/deployments/{deployment}"))).await?;
    let champion = d["deployment"]["routes"].as_array().into_iter().flatten().find(|r| r["role"] == "champion").context("the deployment has no loaded champion")?;
    let uri = format!("models:/{}/{}", champion["model"].as_str().unwrap_or_default(), champion["version"]);
    let model = steward_runtime::Model::load(&crate::remote::fetch_model(tracking_uri, &uri).await?)?;
    let mut frame = table::read(reference)?;
    let labels = match label {
        Some(l) => {
            let at = frame.columns.iter().position(|c| c.0 == l).with_context(|| format!("{} has no label column '{l}'", reference.display()))?;
            frame.columns.remove(at).1
        }
        None => Vec::new(),
    };
    let outputs: Outputs = serde_json::from_value(spec.get("outputs").cloned().unwrap_or(json!({}))).context("the spec's 'outputs'")?;
    let threshold = spec.pointer("/quality/threshold").and_then(Value::as_f64).unwrap_or(0.5);
    Ok((answered(&outputs, &tensors_json(&model.predict(&frame.to_inputs(model.signature())?)?), threshold), labels))
}

/// The profile of the champion's predictions on the reference table: its score, or its label
/// when it gives none.
fn prediction_profile(answer: &Answered) -> anyhow::Result<ColumnProfile> {
    let scored = answer.scores.iter().any(Option::is_some);
    let mut p = ColumnProfiler::new("prediction", if scored { ColumnType::Numerical } else { ColumnType::Categorical });
    if scored {
        answer.scores.iter().for_each(|s| p.push_number(*s));
    } else {
        anyhow::ensure!(!answer.labels.is_empty(), "its outputs have neither a score nor a label (set outputs.score or outputs.label in --spec)");
        answer.labels.iter().for_each(|l| p.push_label(l.as_deref()));
    }
    Ok(p.finish())
}

/// Registers a table as a dataset version on the server; the answer's `dataset_version` and
/// `created`.
pub async fn register(http: &reqwest::Client, base: &str, file: &Path, name: &str) -> anyhow::Result<Value> {
    let fingerprint = fingerprint(file)?;
    let profile = profile(file)?;
    let format = match file.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).as_deref() {
        Some("parquet") | Some("pq") => "parquet",
        _ => "csv",
    };
    let schema: Vec<Value> = profile.columns.iter().map(|c| json!({ "name": c.name, "type": c.column_type })).collect();
    let file_name = file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| format!("data.{format}"));
    let rel = format!("datasets/{name}/{fingerprint}/{file_name}");
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    send(http.put(format!("{base}/api/2.0/mlflow-artifacts/artifacts/{rel}")).body(bytes)).await.context("uploading the dataset")?;
    let body = json!({
        "name": name,
        "fingerprint": format!("sha256:{fingerprint}"),
        "artifact_uri": format!("mlflow-artifacts:/{rel}"),
        "format": format,
        "rows": profile.rows,
        "schema": schema,
        "profile": profile,
    });
    send(http.post(format!("{base}/api/steward/v1/datasets")).json(&body)).await
}

pub async fn run(cmd: DataCommand) -> anyhow::Result<std::process::ExitCode> {
    let (text, out) = match cmd {
        DataCommand::Register { file, name, tracking_uri } => {
            let out = register(&reqwest::Client::new(), &crate::remote::base(&tracking_uri)?, &file, &name).await?;
            let v = &out["dataset_version"];
            let what = if out["created"] == json!(true) { "registered" } else { "already registered:" };
            println!("{what} dataset {name} version {} ({}, {} rows)", v["version"], v["fingerprint"].as_str().unwrap_or_default(), v["rows"]);
            return Ok(std::process::ExitCode::SUCCESS);
        }
        DataCommand::Lineage { name, version, tracking_uri } => {
            let url = format!("{}/api/steward/v1/datasets/{name}/versions/{version}/lineage", crate::remote::base(&tracking_uri)?);
            (serde_json::to_string_pretty(&send(reqwest::Client::new().get(url)).await?)?, None)
        }
        DataCommand::Synth(cmd) => {
            crate::train::synth(cmd)?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        DataCommand::Fingerprint { file } => {
            println!("sha256:{}", fingerprint(&file)?);
            return Ok(std::process::ExitCode::SUCCESS);
        }
        DataCommand::Validate { suite, file, json } => {
            let ok = crate::validate::run(&suite, &file, json.as_deref())?;
            return Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) });
        }
        DataCommand::Suite { file, out } => (crate::validate::infer(&file)?, out),
        DataCommand::Profile { file, out } => (serde_json::to_string_pretty(&profile(&file)?)?, out),
    };
    match out {
        Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
        None => crate::print_stdout(&text)?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub async fn monitor(cmd: MonitorCommand) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    match cmd {
        MonitorCommand::Create { deployment, reference, window_size, window_seconds, drift_share, stattest, webhook, spec, no_prediction_drift, label, tracking_uri } => {
            let base = crate::remote::base(&tracking_uri)?;
            let is_profile = reference.extension().is_some_and(|e| e == "json");
            anyhow::ensure!(!(is_profile && label.is_some()), "--label needs the reference table itself, not a profile: the champion scores its rows");
            let profile: Value = if is_profile {
                serde_json::from_str(&std::fs::read_to_string(&reference).with_context(|| format!("reading {}", reference.display()))?)?
            } else {
                let mut p = profile(&reference)?;
                p.columns.retain(|c| Some(&c.name) != label.as_ref());
                serde_json::to_value(p)?
            };
            let mut body = match &spec {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    let v: Value = serde_norway::from_str(&text).with_context(|| format!("{}: not a YAML or JSON monitor spec", path.display()))?;
                    anyhow::ensure!(v.is_object(), "{}: the monitor spec must be a mapping", path.display());
                    v
                }
                None => json!({}),
            };
            body["reference"] = profile;
            body["window_size"] = json!(window_size);
            if let Some(w) = window_seconds {
                body["window_seconds"] = json!(w);
            }
            body["drift_share"] = json!(drift_share);
            if let Some(t) = stattest {
                body["stattest"] = json!(t);
            }
            if let Some(w) = webhook {
                body["webhook_url"] = json!(w);
            }
            if let Some(label) = &label {
                let (answer, labels) = score_reference(&http, &base, &tracking_uri, &deployment, &reference, &body, Some(label)).await?;
                let (mut scores, mut classes) = (Vec::new(), Vec::new());
                // Labels go as the table holds them: the server reads classes as it reads live
                // labels (`key`: whole numbers without a fraction, booleans as 1 and 0).
                for (s, l) in answer.scores.iter().zip(&labels) {
                    let class = match l {
                        Cell::Null => continue,
                        Cell::Num(v) if !v.is_finite() => continue,
                        Cell::Num(v) => json!(v),
                        Cell::Bool(b) => json!(b),
                        Cell::Text(t) => json!(t),
                    };
                    if let Some(s) = s {
                        scores.push(json!(s));
                        classes.push(class);
                    }
                }
                anyhow::ensure!(!scores.is_empty(), "the champion gives no score on {} (set outputs.score in --spec)", reference.display());
                // The most recent rows when the reference is larger than the server takes.
                let keep = scores.len().saturating_sub(MAX_REFERENCE_ROWS);
                if keep > 0 {
                    eprintln!("note: the quality estimate is calibrated on the last {MAX_REFERENCE_ROWS} of {} labelled reference rows", scores.len());
                }
                let estimated = body.as_object_mut().context("the monitor spec")?.entry("estimated_quality").or_insert_with(|| json!({}));
                anyhow::ensure!(estimated.is_object(), "the spec's 'estimated_quality' must be a mapping");
                estimated["reference_scores"] = Value::Array(scores.split_off(keep));
                estimated["reference_labels"] = Value::Array(classes.split_off(keep));
                if !no_prediction_drift {
                    body["reference_prediction"] = serde_json::to_value(prediction_profile(&answer)?)?;
                }
            } else if !is_profile && !no_prediction_drift {
                match score_reference(&http, &base, &tracking_uri, &deployment, &reference, &body, None).await.and_then(|(answer, _)| prediction_profile(&answer)) {
                    Ok(p) => body["reference_prediction"] = serde_json::to_value(p)?,
                    Err(e) => eprintln!("warning: no prediction drift (the champion could not score {}): {e:#}", reference.display()),
                }
            }
            let url = format!("{base}/api/steward/v1/deployments/{deployment}/monitor");
            let out = send(http.put(url).json(&body)).await?;
            let m = &out["monitor"];
            let mut watching = vec![format!("{} features", m["features"].as_array().map_or(0, Vec::len))];
            for (what, label) in [("prediction_drift", "prediction drift"), ("quality", "quality from labels"), ("fairness", "fairness")] {
                if m[what].as_bool() == Some(true) {
                    watching.push(label.to_owned());
                }
            }
            if let Some(e) = m["estimated_quality"].as_object() {
                let how = if e["calibrated"] == true { "calibrated" } else { "needing no calibration" };
                watching.push(format!("estimated quality ({} reference rows, {how})", e["reference_rows"]));
            }
            let windows = match m["window_seconds"].as_u64() {
                Some(w) => format!("{w}-second windows"),
                None => format!("windows of {} predictions", m["window_size"]),
            };
            println!("monitoring {deployment}: {windows} over {}", watching.join(", "));
        }
        MonitorCommand::Delete { deployment, tracking_uri } => {
            let url = format!("{}/api/steward/v1/deployments/{deployment}/monitor", crate::remote::base(&tracking_uri)?);
            send(http.delete(url)).await?;
            println!("stopped monitoring {deployment}");
        }
    }
    Ok(())
}
