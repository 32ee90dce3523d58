//! `steward data validate --suite SUITE FILE`: checks a table against an expectation suite in
//! YAML — row count bounds, a fingerprint, and per column: presence, type, null share, range,
//! allowed values, uniqueness — and reports every expectation with counts and example rows.
//!
//! ```yaml
//! row_count: {min: 100, max: 1000000}
//! fingerprint: sha256:...            # optional: the exact content
//! columns:
//!   income: {type: numeric, max_null_share: 0.05, min: 0}
//!   region: {type: categorical, allowed: [north, south, east, west]}
//!   application_id: {unique: true, max_null_share: 0}
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Value, json};
use steward_runtime::frame::Cell;

use crate::{data, report, table};

const EXAMPLES: usize = 5;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    #[serde(default)]
    row_count: Option<Bounds>,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    columns: BTreeMap<String, ColumnRules>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bounds {
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnRules {
    #[serde(rename = "type")]
    kind: Option<Kind>,
    max_null_share: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    allowed: Option<Vec<serde_norway::Value>>,
    #[serde(default)]
    unique: bool,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Numeric,
    Categorical,
}

fn yaml_text(v: &serde_norway::Value) -> String {
    match v {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |f| f.to_string()),
        serde_norway::Value::Bool(b) => b.to_string(),
        other => serde_norway::to_string(other).unwrap_or_default().trim().to_owned(),
    }
}

struct Check {
    results: Vec<Value>,
}

impl Check {
    fn add(&mut self, expectation: &str, column: Option<&str>, success: bool, observed: Value, bad: &[(usize, String)], bad_count: usize) {
        let mut r = json!({ "expectation": expectation, "success": success, "observed": observed });
        if let Some(c) = column {
            r["column"] = json!(c);
        }
        if bad_count > 0 {
            r["unexpected_count"] = json!(bad_count);
            r["examples"] = bad.iter().take(EXAMPLES).map(|(row, v)| json!({ "row": row, "value": v })).collect();
        }
        self.results.push(r);
    }
}

/// Checks `file` against the suite: the report (`success`, `rows`, `evaluated`, `failed`,
/// `results`).
pub fn check(suite_path: &Path, file: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(suite_path).with_context(|| format!("reading {}", suite_path.display()))?;
    let suite: Suite = serde_norway::from_str(&text).with_context(|| format!("{} is not a valid expectation suite", suite_path.display()))?;
    let frame = table::read(file)?;
    let rows = frame.rows();
    let mut check = Check { results: Vec::new() };

    if let Some(b) = &suite.row_count {
        let ok = b.min.is_none_or(|m| rows as f64 >= m) && b.max.is_none_or(|m| rows as f64 <= m);
        check.add("row_count_between", None, ok, json!(rows), &[], 0);
    }
    if let Some(want) = &suite.fingerprint {
        let got = format!("sha256:{}", data::fingerprint(file)?);
        check.add("fingerprint_matches", None, &got == want, json!(got), &[], 0);
    }
    for (name, rules) in &suite.columns {
        let Some((_, cells)) = frame.columns.iter().find(|c| &c.0 == name) else {
            check.add("column_present", Some(name), false, json!(null), &[], 0);
            continue;
        };
        check.add("column_present", Some(name), true, json!(true), &[], 0);
        let present: Vec<(usize, &Cell)> = cells.iter().enumerate().filter(|(_, c)| !matches!(c, Cell::Null) && !matches!(c, Cell::Num(v) if v.is_nan())).collect();
        if let Some(kind) = rules.kind {
            let bad: Vec<(usize, String)> = match kind {
                Kind::Numeric => present.iter().filter(|(_, c)| report::as_number(c).is_none() || matches!(c, Cell::Bool(_))).map(|(i, c)| (*i, report::category(c).unwrap_or_default())).collect(),
                Kind::Categorical => Vec::new(),
            };
            check.add(if kind == Kind::Numeric { "column_is_numeric" } else { "column_is_categorical" }, Some(name), bad.is_empty(), json!(bad.is_empty()), &bad, bad.len());
        }
        if let Some(max) = rules.max_null_share {
            let nulls: Vec<(usize, String)> = cells.iter().enumerate().filter(|(_, c)| matches!(c, Cell::Null) || matches!(c, Cell::Num(v) if v.is_nan())).map(|(i, _)| (i, String::new())).collect();
            let share = if cells.is_empty() { 0.0 } else { nulls.len() as f64 / cells.len() as f64 };
            check.add("null_share_at_most", Some(name), share <= max, json!(share), &nulls, nulls.len());
        }
        if rules.min.is_some() || rules.max.is_some() {
            let bad: Vec<(usize, String)> = present
                .iter()
                .filter_map(|(i, c)| report::as_number(c).map(|v| (*i, v)))
                .filter(|(_, v)| rules.min.is_some_and(|m| *v < m) || rules.max.is_some_and(|m| *v > m))
                .map(|(i, v)| (i, v.to_string()))
                .collect();
            check.add("values_between", Some(name), bad.is_empty(), json!({ "min": rules.min, "max": rules.max }), &bad, bad.len());
        }
        if let Some(allowed) = &rules.allowed {
            let allowed: HashSet<String> = allowed.iter().map(yaml_text).collect();
            let bad: Vec<(usize, String)> = present.iter().filter_map(|(i, c)| report::category(c).map(|t| (*i, t))).filter(|(_, t)| !allowed.contains(t)).collect();
            check.add("values_in_set", Some(name), bad.is_empty(), json!(allowed.len()), &bad, bad.len());
        }
        if rules.unique {
            let mut seen = HashSet::new();
            let bad: Vec<(usize, String)> = present.iter().filter_map(|(i, c)| report::category(c).map(|t| (*i, t))).filter(|(_, t)| !seen.insert(t.clone())).collect();
            check.add("values_unique", Some(name), bad.is_empty(), json!(seen.len()), &bad, bad.len());
        }
    }
    if check.results.is_empty() {
        bail!("{} has no expectations", suite_path.display());
    }
    let success = check.results.iter().all(|r| r["success"] == json!(true));
    let failed = check.results.iter().filter(|r| r["success"] != json!(true)).count();
    Ok(json!({ "success": success, "rows": rows, "evaluated": check.results.len(), "failed": failed, "results": check.results }))
}

/// `steward data validate`: prints (or writes) the report; true when every expectation is met.
pub fn run(suite_path: &Path, file: &Path, json_out: Option<&Path>) -> anyhow::Result<bool> {
    let report = check(suite_path, file)?;
    let text = serde_json::to_string_pretty(&report)?;
    match json_out {
        Some(p) => std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?,
        None => crate::print_stdout(&text)?,
    }
    eprintln!("{} of {} expectations met", report["evaluated"].as_u64().unwrap_or(0) - report["failed"].as_u64().unwrap_or(0), report["evaluated"]);
    Ok(report["success"] == json!(true))
}

/// Categorical columns with at most this many distinct values get an `allowed` list.
const ALLOWED_BOUND: usize = 50;

/// Infers a suite from a table, column by column (schema inference): each column present with
/// its type and observed null share; numeric ranges; the allowed values of categorical columns
/// with at most [`ALLOWED_BOUND`] of them; uniqueness where every value is present and
/// distinct; the row count at least 1. A starting point to edit, as YAML.
pub fn infer(file: &Path) -> anyhow::Result<String> {
    let table = table::Columns::open(file)?;
    let mut columns = serde_json::Map::new();
    for name in table.names() {
        let column = table::ColumnCells::Rows(table.column(name)?.unwrap_or_default());
        let is_numerical = report::column_type(&column) == Some(steward_stats::drift::ColumnType::Numerical);
        let cells: Vec<&Cell> = column.weighted().map(|(c, _)| c).collect();
        let present: Vec<&Cell> = cells.iter().copied().filter(|c| !matches!(c, Cell::Null) && !matches!(c, Cell::Num(v) if v.is_nan())).collect();
        let null_share = if cells.is_empty() { 0.0 } else { 1.0 - present.len() as f64 / cells.len() as f64 };
        // Rounded up to 4 decimals, so that the file itself passes.
        let mut rules = json!({ "max_null_share": (null_share * 1e4).ceil() / 1e4 });
        let numeric = !present.is_empty() && is_numerical && present.iter().all(|c| report::as_number(c).is_some() && !matches!(c, Cell::Bool(_)));
        let mut distinct: Vec<String> = present.iter().filter_map(|c| report::category(c)).collect();
        distinct.sort_unstable();
        distinct.dedup();
        if numeric {
            let values = present.iter().filter_map(|c| report::as_number(c));
            rules["type"] = json!("numeric");
            rules["min"] = json!(values.clone().fold(f64::INFINITY, f64::min));
            rules["max"] = json!(values.fold(f64::NEG_INFINITY, f64::max));
        } else {
            rules["type"] = json!("categorical");
            if distinct.len() <= ALLOWED_BOUND && !distinct.is_empty() {
                rules["allowed"] = json!(distinct);
            }
        }
        if present.len() == cells.len() && distinct.len() == cells.len() && cells.len() > ALLOWED_BOUND {
            rules["unique"] = json!(true);
        }
        columns.insert(name.clone(), rules);
    }
    let suite = json!({ "row_count": { "min": 1 }, "columns": columns });
    Ok(serde_norway::to_string(&suite)?)
}
