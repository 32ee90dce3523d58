//! Project automation: `cargo xtask ci` (the whole test suite, installing what it needs) and
//! `cargo xtask bench <what>` (side-by-side benchmarks against the peer tools).

mod bench;
mod bench_drift;
mod bench_serve;
mod env;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci                 build, then run every test: Rust unit and integration tests (SQLite and
                     PostgreSQL), the MLflow-client and serving suite on SQLite and on
                     PostgreSQL, the runtime conformance matrix against onnxruntime and the
                     statistics cross-check against scipy, scikit-learn and Fairlearn, Steward's
                     API fuzzed against its OpenAPI document by schemathesis, and the drift
                     report against Evidently (their own virtualenvs)
  bench tracking     steward vs `mlflow server` (SQLite): log-batch, create-run, search-runs
                     (--steward-only: Steward's figures alone, its data directory kept)
  bench serve        steward vs `mlflow models serve`: one-row scoring throughput and latency,
                     and in-process one-row latency vs onnxruntime
  bench drift [ROWS] steward report drift vs Evidently's data drift preset on two Parquet
                     files of ROWS rows (default 1,000,000) x 50 mixed columns: time, peak
                     memory, agreement";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["ci"] => ci(),
        ["bench", "tracking"] => bench::tracking(false),
        ["bench", "tracking", "--steward-only"] => bench::tracking(true),
        ["bench", "serve"] => bench_serve::serve(),
        ["bench", "drift"] => bench_drift::drift(1_000_000),
        ["bench", "drift", rows] => match rows.parse() {
            Ok(rows) => bench_drift::drift(rows),
            Err(_) => {
                eprintln!("error: ROWS must be a number, got '{rows}'");
                return ExitCode::from(2);
            }
        },
        ["help" | "--help" | "-h"] | [] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("error: unknown command {args:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn ci() -> anyhow::Result<()> {
    let root = env::repo_root();
    env::ensure_postgres()?;
    env::drop_test_databases()?;
    let venv = env::python_venv("venv-test", &root.join("tests/python/requirements.txt"))?;
    env::step("cargo build --release --workspace");
    env::run(env::cargo().args(["build", "--release", "--workspace", "--all-targets"]))?;
    env::step("cargo test --release --workspace");
    env::run(env::cargo().args(["test", "--release", "--workspace"]))?;
    let bin = env::target_dir().join("release/steward");
    for (label, pg) in [("SQLite", None), ("PostgreSQL", Some(env::POSTGRES_URL))] {
        env::step(&format!("MLflow client suite on {label}"));
        let mut cmd = std::process::Command::new(venv.join("bin/python"));
        cmd.args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/python"]).current_dir(&root).env("STEWARD_BIN", &bin);
        match pg {
            Some(url) => cmd.env("STEWARD_TEST_POSTGRES", url),
            None => cmd.env_remove("STEWARD_TEST_POSTGRES"),
        };
        env::run(&mut cmd)?;
    }
    let chromium = env::ensure_chromium()?;
    env::step("the flagship demo, model documents and the web UI in headless Chromium");
    env::run(
        std::process::Command::new(venv.join("bin/python"))
            .args(["-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/e2e"])
            .current_dir(&root)
            .env("STEWARD_BIN", &bin)
            .env("STEWARD_CHROMIUM", &chromium)
            .env("STEWARD_UI_SCREENSHOTS", env::target_dir().join("ui-screenshots")),
    )?;
    for (label, dir) in [("runtime conformance matrix against onnxruntime", "tests/runtime"), ("statistics cross-check against scipy, scikit-learn, Fairlearn", "tests/stats")] {
        env::step(label);
        env::run(std::process::Command::new(venv.join("bin/python")).args(["-m", "pytest", "-q", "-p", "no:cacheprovider", dir]).current_dir(&root).env("STEWARD_BIN", &bin))?;
    }
    let openapi = env::python_venv("venv-openapi", &root.join("tests/openapi/requirements.txt"))?;
    env::step("Steward's API against its OpenAPI document: schemathesis with every role's token");
    env::run(std::process::Command::new(openapi.join("bin/python")).args(["-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/openapi"]).current_dir(&root).env("STEWARD_BIN", &bin))?;
    let evidently = env::python_venv("venv-evidently", &root.join("tests/evidently/requirements.txt"))?;
    env::step("drift report against Evidently's data drift preset");
    env::run(std::process::Command::new(evidently.join("bin/python")).args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/evidently"]).current_dir(&root).env("STEWARD_BIN", &bin))?;
    env::drop_test_databases()?;
    println!("\nci: all suites passed");
    Ok(())
}
