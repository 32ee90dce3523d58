//! `steward stats eval`: evaluates Steward's statistics on JSON lines from stdin and answers a
//! JSON line per request. The cross-check suite drives it against scipy, scikit-learn and
//! Fairlearn; it is also a quick way to check a figure by hand.
//!
//! Requests: `{"fn": "classification", "labels": [0,1,..], "scores": [..], "threshold": 0.5}`,
//! `{"fn": "regression", "truth": [..], "predicted": [..]}`,
//! `{"fn": "estimate", "probabilities": [..], "threshold": 0.5}` (label-free, CBPE),
//! `{"fn": "fairness", "predicted": [..], "labels": [..], "groups": [..], "four_fifths": 0.8}`,
//! `{"fn": "wasserstein", "u": [..], "v": [..]}`, `{"fn": "psi" | "kl" | "hellinger" |
//! "jensenshannon", "p": [..], "q": [..], "base": 2}`, `{"fn": "chi2_sf", "x": .., "df": ..}`,
//! `{"fn": "ks_2samp", "x": [..], "y": [..]}`, `{"fn": "kstwo_sf", "n": .., "x": ..}`,
//! `{"fn": "drift", "stattest": "psi", "type": "num" | "cat", "reference": [..], "current": [..]}`.

use std::io::{BufRead, Write};

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use steward_stats::{cbpe, distance, drift, fairness, kolmogorov, ks, quality, special};

fn field<T: DeserializeOwned>(req: &Value, name: &str) -> Result<T, String> {
    serde_json::from_value(req.get(name).cloned().unwrap_or(Value::Null)).map_err(|e| format!("field '{name}': {e}"))
}

fn eval(req: &Value) -> Result<Value, String> {
    let f: String = field(req, "fn")?;
    let to_json = |v: Result<Value, serde_json::Error>| v.map_err(|e| e.to_string());
    match f.as_str() {
        "classification" => {
            let threshold = req.get("threshold").and_then(Value::as_f64).unwrap_or(0.5);
            let r = quality::classification(&field::<Vec<u8>>(req, "labels")?, &field::<Vec<f64>>(req, "scores")?, threshold).map_err(|e| e.to_string())?;
            to_json(serde_json::to_value(r))
        }
        "estimate" => {
            let threshold = req.get("threshold").and_then(Value::as_f64).unwrap_or(0.5);
            let r = cbpe::estimate(&field::<Vec<f64>>(req, "probabilities")?, threshold).map_err(|e| e.to_string())?;
            to_json(serde_json::to_value(r))
        }
        "regression" => {
            let r = quality::regression(&field::<Vec<f64>>(req, "truth")?, &field::<Vec<f64>>(req, "predicted")?).map_err(|e| e.to_string())?;
            to_json(serde_json::to_value(r))
        }
        "fairness" => {
            let four_fifths = req.get("four_fifths").and_then(Value::as_f64).unwrap_or(0.8);
            let r = fairness::fairness(&field::<Vec<u8>>(req, "predicted")?, &field::<Vec<u8>>(req, "labels")?, &field::<Vec<String>>(req, "groups")?, four_fifths)
                .map_err(|e| e.to_string())?;
            to_json(serde_json::to_value(r))
        }
        "wasserstein" => Ok(json!(distance::wasserstein(&field::<Vec<f64>>(req, "u")?, &field::<Vec<f64>>(req, "v")?))),
        "psi" | "kl" | "hellinger" | "jensenshannon" => {
            let (p, q) = (field::<Vec<f64>>(req, "p")?, field::<Vec<f64>>(req, "q")?);
            if p.len() != q.len() {
                return Err(format!("p has {} bins, q has {}", p.len(), q.len()));
            }
            Ok(json!(match f.as_str() {
                "psi" => distance::psi(&p, &q),
                "kl" => distance::kl_divergence(&p, &q),
                "hellinger" => distance::hellinger(&p, &q),
                _ => distance::jensen_shannon(&p, &q, req.get("base").and_then(Value::as_f64)),
            }))
        }
        "chi2_sf" => Ok(json!(special::chi2_sf(field(req, "x")?, field(req, "df")?))),
        "ks_2samp" => {
            let (x, y) = (field::<Vec<f64>>(req, "x")?, field::<Vec<f64>>(req, "y")?);
            if x.is_empty() || y.is_empty() {
                return Err("ks_2samp needs two non-empty samples".into());
            }
            let (d, p) = ks::ks_2samp(&x, &y);
            Ok(json!({ "statistic": d, "p_value": p }))
        }
        "kstwo_sf" => Ok(json!(kolmogorov::kolmogorov_sf(field(req, "n")?, field(req, "x")?))),
        "drift" => {
            let test = drift::StatTest::parse(&field::<String>(req, "stattest")?).map_err(|e| e.to_string())?;
            let ty: String = field(req, "type")?;
            let (ty, reference, current) = match ty.as_str() {
                "num" => (drift::ColumnType::Numerical, drift::Values::Numeric(field(req, "reference")?), drift::Values::Numeric(field(req, "current")?)),
                "cat" => (drift::ColumnType::Categorical, drift::Values::Categorical(field(req, "reference")?), drift::Values::Categorical(field(req, "current")?)),
                other => return Err(format!("type must be num or cat, got {other}")),
            };
            let r = drift::run(test, ty, &reference, &current).map_err(|e| e.to_string())?;
            to_json(serde_json::to_value(r))
        }
        other => Err(format!("unknown fn '{other}'")),
    }
}

pub fn run() -> anyhow::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(req) => eval(&req).unwrap_or_else(|e| json!({ "error": e })),
            Err(e) => json!({ "error": format!("not JSON: {e}") }),
        };
        // NaN and infinite results come out as null: JSON has no literal for them.
        writeln!(out, "{answer}")?;
    }
    out.flush()?;
    Ok(())
}
