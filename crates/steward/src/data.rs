//! `steward data profile` (a table's reference profile, as monitors use it) and
//! `steward monitor create|delete` (a deployment's monitor, over HTTP).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};
use steward_runtime::frame::Cell;
use steward_stats::drift::ColumnType;
use steward_stats::profile::{ColumnProfiler, Profile};

use crate::remote::send;
use crate::{report, table};

/// Profiles every column of a table in one pass (types inferred as for drift reports; free
/// text is profiled as categories).
pub fn profile(path: &Path) -> anyhow::Result<Profile> {
    let frame = table::read(path)?;
    let columns = frame
        .columns
        .iter()
        .map(|(name, cells)| {
            let ty = report::column_type(cells).unwrap_or(ColumnType::Categorical);
            let mut p = ColumnProfiler::new(name, ty);
            for c in cells {
                match ty {
                    ColumnType::Numerical => p.push_number(report::as_number(c)),
                    ColumnType::Categorical => p.push_label(report::category(c).as_deref()),
                }
            }
            p.finish()
        })
        .collect();
    Ok(Profile { rows: frame.rows() as u64, columns })
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
    /// Profile a table (CSV or Parquet): per-column type, counts, moments and a bounded sample
    Profile {
        file: PathBuf,
        /// Write the profile here (default: print it)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a table's fingerprint: SHA-256 of its content, equal for the same data in CSV and Parquet
    Fingerprint { file: PathBuf },
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
        /// Share of drifted features that makes a window drift (and raises an alert)
        #[arg(long, default_value_t = 0.5)]
        drift_share: f64,
        /// Drift test for every feature it applies to (default: Evidently's choice)
        #[arg(long)]
        stattest: Option<String>,
        /// POST alerts here (Slack-compatible payload)
        #[arg(long)]
        webhook: Option<String>,
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

pub fn run(cmd: DataCommand) -> anyhow::Result<std::process::ExitCode> {
    let (file, out) = match cmd {
        DataCommand::Fingerprint { file } => {
            println!("sha256:{}", fingerprint(&file)?);
            return Ok(std::process::ExitCode::SUCCESS);
        }
        DataCommand::Validate { suite, file, json } => {
            let ok = crate::validate::run(&suite, &file, json.as_deref())?;
            return Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) });
        }
        DataCommand::Profile { file, out } => (file, out),
    };
    let text = serde_json::to_string_pretty(&profile(&file)?)?;
    match out {
        Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?,
        None => crate::print_stdout(&text)?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub async fn monitor(cmd: MonitorCommand) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    match cmd {
        MonitorCommand::Create { deployment, reference, window_size, drift_share, stattest, webhook, tracking_uri } => {
            let profile: Value = if reference.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&std::fs::read_to_string(&reference).with_context(|| format!("reading {}", reference.display()))?)?
            } else {
                serde_json::to_value(profile(&reference)?)?
            };
            let mut body = json!({ "reference": profile, "window_size": window_size, "drift_share": drift_share });
            if let Some(t) = stattest {
                body["stattest"] = json!(t);
            }
            if let Some(w) = webhook {
                body["webhook_url"] = json!(w);
            }
            let url = format!("{}/api/steward/v1/deployments/{deployment}/monitor", crate::remote::base(&tracking_uri)?);
            let out = send(http.put(url).json(&body)).await?;
            let m = &out["monitor"];
            println!("monitoring {deployment}: windows of {} predictions over {} features", m["window_size"], m["features"].as_array().map_or(0, Vec::len));
        }
        MonitorCommand::Delete { deployment, tracking_uri } => {
            let url = format!("{}/api/steward/v1/deployments/{deployment}/monitor", crate::remote::base(&tracking_uri)?);
            send(http.delete(url)).await?;
            println!("stopped monitoring {deployment}");
        }
    }
    Ok(())
}
