//! `steward data synth credit` (synthetic credit applications, CSV or Parquet) and
//! `steward train` (a built-in model from a table: ONNX file, holdout metrics, reason codes).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use steward_runtime::frame::Cell;
use steward_stats::drift::ColumnType;
use steward_train::design::{Column, Dataset};
use steward_train::explain::{Explainer, METADATA_KEY};
use steward_train::export;
use steward_train::gbt::{Gbt, Params};
use steward_train::logistic::Logistic;
use steward_train::synth::{self, SynthOptions};

use crate::table;

#[derive(clap::Subcommand)]
pub enum SynthCommand {
    /// Credit applications: income, debt, utilisation, payment history, tenure, region, an age
    /// band (for fairness checks only), a timestamp and the default label
    Credit {
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file (.csv or .parquet)
        #[arg(long)]
        out: PathBuf,
        /// Lower incomes, higher utilisation and more applicants from the south from this row on
        #[arg(long)]
        covariate_drift_at: Option<usize>,
        /// A changed default process from this row on (debt-to-income matters more,
        /// utilisation and late payments less)
        #[arg(long)]
        concept_drift_at: Option<usize>,
        /// How far the drifts go, 0..1
        #[arg(long, default_value_t = 1.0)]
        drift_strength: f64,
    },
}

pub fn synth(cmd: SynthCommand) -> anyhow::Result<()> {
    let SynthCommand::Credit { rows, seed, out, covariate_drift_at, concept_drift_at, drift_strength } = cmd;
    let options = SynthOptions { rows, seed, covariate_drift_at, concept_drift_at, strength: drift_strength, ..Default::default() };
    let t = synth::credit(&options).context("synthesising credit applications")?;
    table::write_columns(&out, &t.columns)?;
    let rate = match &t.columns.iter().find(|c| c.0 == "default").map(|c| &c.1) {
        Some(synth::Values::Int(v)) => v.iter().sum::<i64>() as f64 / v.len() as f64,
        _ => f64::NAN,
    };
    println!("wrote {rows} applications to {} (default rate {:.3}, seed {seed})", out.display(), rate);
    Ok(())
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Gradient-boosted trees (logistic loss), reason codes by exact TreeSHAP
    Gbt,
    /// L2-regularised logistic regression on standardised columns
    Logistic,
}

/// What and how to train; the same fields in a pipeline's `train` step.
#[derive(clap::Args, Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// The label column
    #[arg(long)]
    pub label: String,
    /// The label value that is the adverse outcome (class 1), e.g. `bad`
    #[arg(long, default_value = "1")]
    #[serde(default = "one")]
    pub positive: String,
    #[arg(long, value_enum, default_value = "gbt")]
    #[serde(default = "gbt_kind")]
    pub model: ModelKind,
    /// Columns that are not features: ids, timestamps, protected attributes (comma-separated)
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Share of rows held out for evaluation: the last ones (out-of-time)
    #[arg(long, default_value_t = 0.3)]
    #[serde(default = "holdout")]
    pub holdout: f64,
    #[arg(long, default_value_t = 150)]
    #[serde(default = "trees")]
    pub trees: usize,
    #[arg(long, default_value_t = 3)]
    #[serde(default = "depth")]
    pub max_depth: usize,
    #[arg(long, default_value_t = 0.1)]
    #[serde(default = "rate")]
    pub learning_rate: f64,
    /// L2 penalty (logistic coefficients; tree leaf values)
    #[arg(long, default_value_t = 1.0)]
    #[serde(default = "unit")]
    pub l2: f64,
}

fn one() -> String {
    "1".into()
}
fn gbt_kind() -> ModelKind {
    ModelKind::Gbt
}
fn holdout() -> f64 {
    0.3
}
fn trees() -> usize {
    150
}
fn depth() -> usize {
    3
}
fn rate() -> f64 {
    0.1
}
fn unit() -> f64 {
    1.0
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Training table (.csv or .parquet), oldest rows first
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    settings: TrainSettings,
    /// Directory for model.onnx and metrics.json
    #[arg(long)]
    out: PathBuf,
}

/// What training produced: the ONNX bytes and the evaluation.
pub struct Trained {
    pub onnx: Vec<u8>,
    pub metrics: serde_json::Value,
    pub features: Vec<String>,
}

/// Reads a table as a training set: the label mapped to 0/1, the other columns (less the
/// excluded ones and free text) typed as the drift report types them.
fn dataset(path: &Path, args: &TrainSettings) -> anyhow::Result<(Dataset, Vec<String>)> {
    use crate::report::{as_number, category, column_type};
    let table = table::Columns::open(path)?;
    if !table.names().contains(&args.label) {
        anyhow::bail!("{} has no label column '{}' (columns: {})", path.display(), args.label, table.names().join(", "));
    }
    for e in &args.exclude {
        if !table.names().contains(e) {
            anyhow::bail!("exclude names '{e}', which {} does not have", path.display());
        }
    }
    let labels = table.column(&args.label)?.unwrap_or_default();
    let mut label = Vec::with_capacity(labels.len());
    for (row, c) in labels.iter().enumerate() {
        match category(c) {
            Some(v) => label.push(u8::from(v == args.positive)),
            None => anyhow::bail!("label column '{}' is missing in data row {}", args.label, row + 1),
        }
    }
    let (mut features, mut skipped) = (Vec::new(), Vec::new());
    for name in table.names().iter().filter(|n| **n != args.label && !args.exclude.contains(n)) {
        let column = table::ColumnCells::Rows(table.column(name)?.unwrap_or_default());
        let cells: Vec<&Cell> = column.weighted().map(|(c, _)| c).collect();
        let c = match column_type(&column) {
            Some(ColumnType::Numerical) => Column::Numeric(cells.iter().map(|c| as_number(c).unwrap_or(f64::NAN)).collect()),
            Some(ColumnType::Categorical) => Column::Categorical(cells.iter().map(|c| category(c)).collect()),
            None => {
                skipped.push(name.clone());
                continue;
            }
        };
        features.push((name.clone(), c));
    }
    Ok((Dataset { features, label }, skipped))
}

/// Equal-width bins of predicted probability: mean prediction, observed rate, rows.
fn calibration(scores: &[f64], labels: &[u8], bins: usize) -> Vec<serde_json::Value> {
    let mut acc = vec![(0.0, 0.0, 0usize); bins];
    for (s, y) in scores.iter().zip(labels) {
        let b = ((s * bins as f64) as usize).min(bins - 1);
        acc[b].0 += s;
        acc[b].1 += f64::from(*y);
        acc[b].2 += 1;
    }
    acc.iter()
        .enumerate()
        .filter(|(_, a)| a.2 > 0)
        .map(|(i, (s, y, n))| serde_json::json!({ "bin": [i as f64 / bins as f64, (i + 1) as f64 / bins as f64], "mean_predicted": s / *n as f64, "observed_rate": y / *n as f64, "rows": n }))
        .collect()
}

pub fn fit(path: &Path, args: &TrainSettings) -> anyhow::Result<Trained> {
    anyhow::ensure!(args.holdout > 0.0 && args.holdout < 1.0, "holdout must be within (0, 1), got {}", args.holdout);
    let (data, skipped) = dataset(path, args)?;
    let n = data.rows();
    let train_rows = n - ((n as f64 * args.holdout).round() as usize);
    let (train, holdout) = data.split(train_rows);
    anyhow::ensure!(holdout.label.contains(&0) && holdout.label.contains(&1), "the holdout ({} rows) needs both classes of '{}'", holdout.rows(), args.label);
    let names: Vec<String> = data.features.iter().map(|f| f.0.clone()).collect();
    let metadata = vec![("steward.label".to_owned(), args.label.clone()), ("steward.positive".to_owned(), args.positive.clone())];
    let (onnx, scores, contributions, kind) = match args.model {
        ModelKind::Gbt => {
            let params = Params { trees: args.trees, max_depth: args.max_depth, learning_rate: args.learning_rate, lambda: args.l2, ..Default::default() };
            let m = Gbt::fit(&train, &params)?;
            let encoded = m.design.encode(&holdout);
            let contributions: Vec<Vec<f64>> = encoded.iter().map(|r| m.contributions(r)).collect();
            let mut metadata = metadata;
            metadata.push((METADATA_KEY.to_owned(), Explainer::Gbt(m.clone()).to_json()));
            (export::gbt(&m, metadata).to_bytes(), m.predict(&holdout), contributions, "gbt")
        }
        ModelKind::Logistic => {
            let m = Logistic::fit(&train, args.l2)?;
            let encoded = m.design.encode(&holdout);
            let contributions: Vec<Vec<f64>> = encoded.iter().map(|r| m.contributions(r)).collect();
            let mut metadata = metadata;
            metadata.push((METADATA_KEY.to_owned(), Explainer::Logistic(m.clone()).to_json()));
            (export::logistic(&m, metadata).to_bytes(), m.predict(&holdout), contributions, "logistic")
        }
    };
    let q = steward_stats::quality::classification(&holdout.label, &scores, 0.5)?;
    let importance: Vec<serde_json::Value> = {
        let mut mean_abs: Vec<(String, f64)> =
            names.iter().enumerate().map(|(j, name)| (name.clone(), contributions.iter().map(|c| c[j].abs()).sum::<f64>() / contributions.len() as f64)).collect();
        mean_abs.sort_by(|a, b| b.1.total_cmp(&a.1));
        mean_abs.into_iter().map(|(f, v)| serde_json::json!({ "feature": f, "mean_abs_contribution": v })).collect()
    };
    let metrics = serde_json::json!({
        "model": kind,
        "rows_train": train.rows(),
        "rows_holdout": holdout.rows(),
        "roc_auc": q.roc_auc, "ks": q.ks, "gini": q.gini, "brier": q.brier, "log_loss": q.log_loss, "accuracy": q.accuracy,
        "calibration": calibration(&scores, &holdout.label, 10),
        "feature_importance": importance,
        "skipped_columns": skipped,
    });
    Ok(Trained { onnx, metrics, features: names })
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let trained = fit(&args.data, &args.settings)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    std::fs::write(args.out.join("model.onnx"), &trained.onnx)?;
    std::fs::write(args.out.join("metrics.json"), serde_json::to_string_pretty(&trained.metrics)?)?;
    let m = &trained.metrics;
    println!(
        "trained {} on {} rows over {} features; holdout ({} rows): ROC AUC {:.4}, KS {:.4}, Brier {:.4}; wrote {}",
        m["model"].as_str().unwrap_or_default(),
        m["rows_train"],
        trained.features.len(),
        m["rows_holdout"],
        m["roc_auc"].as_f64().unwrap_or(f64::NAN),
        m["ks"].as_f64().unwrap_or(f64::NAN),
        m["brier"].as_f64().unwrap_or(f64::NAN),
        args.out.display()
    );
    Ok(())
}

/// Scores the holdout (the last `holdout` share of rows) with any ONNX binary classifier and
/// measures it: quality, and with a protected column the adverse impact ratio of the
/// favourable outcome (predicted class 0).
pub fn evaluate(onnx: &[u8], path: &Path, s: &TrainSettings, protected: Option<&str>) -> anyhow::Result<serde_json::Value> {
    use steward_server::serving::log::tensors_json;
    use steward_server::serving::monitor::{Outputs, answered};
    let model = steward_runtime::Model::load(onnx).context("loading the model to evaluate")?;
    let frame = table::read(path)?;
    let n = frame.rows();
    let start = n - ((n as f64 * s.holdout).round() as usize);
    let column = |name: &str| frame.columns.iter().find(|c| c.0 == name).map(|c| c.1[start..].to_vec());
    let truth: Vec<u8> = column(&s.label)
        .with_context(|| format!("{} has no label column '{}'", path.display(), s.label))?
        .iter()
        .map(|c| u8::from(crate::report::category(c).as_deref() == Some(s.positive.as_str())))
        .collect();
    let groups = protected.map(|p| column(p).with_context(|| format!("{} has no protected column '{p}'", path.display()))).transpose()?;
    let inputs = steward_runtime::frame::Frame {
        columns: frame.columns.iter().filter(|c| c.0 != s.label && !s.exclude.contains(&c.0)).map(|c| (c.0.clone(), c.1[start..].to_vec())).collect(),
    };
    let outputs = model.predict(&inputs.to_inputs(model.signature())?)?;
    let scores: Vec<f64> = answered(&Outputs::default(), &tensors_json(&outputs), 0.5).scores.into_iter().map(|s| s.unwrap_or(f64::NAN)).collect();
    anyhow::ensure!(scores.len() == truth.len(), "the model gave {} scores for {} holdout rows (it needs a 'probabilities' output)", scores.len(), truth.len());
    let q = steward_stats::quality::classification(&truth, &scores, 0.5)?;
    let mut out = serde_json::json!({
        "rows_holdout": truth.len(), "roc_auc": q.roc_auc, "ks": q.ks, "gini": q.gini, "brier": q.brier, "log_loss": q.log_loss, "accuracy": q.accuracy, "pr_auc": q.pr_auc,
        "calibration": calibration(&scores, &truth, 10),
    });
    if let Some(groups) = groups {
        let favourable: Vec<u8> = scores.iter().map(|p| u8::from(*p < 0.5)).collect();
        let names: Vec<String> = groups.iter().map(|c| crate::report::category(c).unwrap_or_else(|| "(missing)".into())).collect();
        let f = steward_stats::fairness::fairness(&favourable, &vec![0; favourable.len()], &names, 0.8)?;
        out["adverse_impact_ratio"] = serde_json::json!(f.adverse_impact_ratio);
        out["demographic_parity_difference"] = serde_json::json!(f.demographic_parity_difference);
    }
    Ok(out)
}
