//! `cargo xtask bench drift [ROWS]`: `steward report drift` against Evidently's data drift
//! preset on the same two Parquet files (ROWS rows each, default 1,000,000; 50 mixed columns):
//! wall time and peak memory of each process, their ratios, and whether the reports agree.

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::env;

pub fn drift(rows: usize) -> anyhow::Result<()> {
    let root = env::repo_root();
    let venv = env::python_venv("venv-evidently", &root.join("tests/evidently/requirements.txt"))?;
    env::step("cargo build --release -p steward");
    env::run(env::cargo().args(["build", "--release", "-p", "steward"]))?;
    let dir = std::env::temp_dir().join(format!("steward-bench-drift-{}", std::process::id()));
    env::step(&format!("generating {rows} + {rows} rows x 50 columns; steward, then evidently"));
    let out = Command::new(venv.join("bin/python"))
        .arg(root.join("xtask/bench/drift.py"))
        .arg(env::target_dir().join("release/steward"))
        .arg(&dir)
        .arg(rows.to_string())
        .stderr(Stdio::inherit())
        .output()?;
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        bail!("drift.py failed");
    }
    let r: Value = serde_json::from_slice(out.stdout.split(|b| *b == b'\n').rfind(|l| l.starts_with(b"{")).context("no result from drift.py")?)?;
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!(
        "\n## drift benchmark ({cores} cores): {} + {} rows x {} columns, Parquet ({:.0} MiB in all), {} columns drifted\n",
        r["rows"], r["rows"], r["columns"], f("parquet_mib"), r["drifted"]
    );
    println!("| tool | wall time (s) | peak memory (MiB) |");
    println!("|---|---:|---:|");
    println!("| steward report drift | {:.2} | {:.0} |", f("steward_s"), f("steward_mib"));
    println!(
        "| evidently 0.7.23 DataDriftPreset (python process: read {:.1} s, report {:.1} s) | {:.2} | {:.0} |",
        f("evidently_read_s"),
        f("evidently_compute_s"),
        f("evidently_s"),
        f("evidently_mib")
    );
    println!(
        "\nspeed-up evidently / steward: {:.0}x (report alone: {:.0}x); memory steward / evidently: 1/{:.0}",
        f("evidently_s") / f("steward_s"),
        f("evidently_compute_s") / f("steward_s"),
        f("evidently_mib") / f("steward_mib")
    );
    println!("reports agree (same tests, same drift flags, scores within 1e-6): {} (largest relative difference {:.1e})", r["agree"], f("max_rel_diff"));
    if r["agree"] != Value::Bool(true) {
        bail!("the reports disagree on {}", r["mismatches"]);
    }
    Ok(())
}
