//! `cargo xtask bench serve`: one scikit-learn GradientBoosting model (100 trees) served by
//! `mlflow models serve` (MLflow 3.17.2, its sklearn flavor) and by Steward (the same model
//! exported to ONNX), driven by one load generator with one-row requests at the same
//! concurrency — Steward with its prediction log in both modes (fast: answered before the
//! record is written; durable: answered once it is committed); plus in-process one-row latency
//! of Steward's runtime against onnxruntime's Python `InferenceSession`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::bench::{Guard, free_port, own_group, start_steward, wait_healthy};
use crate::env;

const CONCURRENCY: usize = 4;
const WARMUP: Duration = Duration::from_secs(3);
const MEASURE: Duration = Duration::from_secs(10);
const IN_PROCESS_CALLS: usize = 20_000;

struct Load {
    requests: usize,
    throughput: f64,
    p50: Duration,
    p99: Duration,
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Sends one-row requests from `CONCURRENCY` workers for `duration`; every answer must be 200.
async fn drive_for(url: &str, bodies: Arc<Vec<String>>, duration: Duration) -> anyhow::Result<Load> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(CONCURRENCY).build()?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = Vec::new();
    for w in 0..CONCURRENCY {
        let (http, url, bodies) = (http.clone(), url.to_owned(), bodies.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = w;
            while Instant::now() < deadline {
                let body = bodies[i % bodies.len()].clone();
                i += CONCURRENCY;
                let t = Instant::now();
                let resp = http.post(&url).header("content-type", "application/json").body(body).send().await?;
                let status = resp.status();
                let _ = resp.bytes().await?;
                if !status.is_success() {
                    bail!("{url} answered {status}");
                }
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat = Vec::new();
    for w in workers {
        lat.extend(w.await??);
    }
    let wall = start.elapsed();
    lat.sort();
    let pick = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    Ok(Load { requests: lat.len(), throughput: lat.len() as f64 / wall.as_secs_f64(), p50: pick(0.5), p99: pick(0.99) })
}

/// Checks every sample row gets the label scikit-learn gives.
async fn check_labels(url: &str, bodies: &[String], labels: &[i64]) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for (body, want) in bodies.iter().zip(labels) {
        let v: Value = http.post(url).header("content-type", "application/json").body(body.clone()).send().await?.json().await?;
        let p = &v["predictions"][0];
        let got = p.get("output_label").unwrap_or(p).as_i64().with_context(|| format!("no label in {v}"))?;
        if got != *want {
            bail!("{url} labels a sample row {got}, scikit-learn {want}");
        }
    }
    Ok(())
}

fn in_process(model_path: &Path, rows: &[Vec<f32>]) -> anyhow::Result<(Duration, Duration, Duration)> {
    let model = steward_runtime::Model::load(&std::fs::read(model_path)?)?;
    let input = |i: usize| vec![steward_runtime::Tensor::new("input", vec![1, 8], steward_runtime::Data::Fp32(rows[i % rows.len()].clone()))];
    for i in 0..1000 {
        model.predict(&input(i))?;
    }
    let mut times = Vec::with_capacity(IN_PROCESS_CALLS);
    for i in 0..IN_PROCESS_CALLS {
        let inputs = input(i);
        let t = Instant::now();
        std::hint::black_box(model.predict(&inputs)?);
        times.push(t.elapsed());
    }
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    times.sort();
    Ok((times[times.len() / 2], times[times.len() * 99 / 100], mean))
}

pub fn serve() -> anyhow::Result<()> {
    let root = env::repo_root();
    let venv = env::python_venv("venv-bench", &root.join("xtask/bench/requirements-mlflow.txt"))?;
    env::step("cargo build --release --workspace");
    env::run(env::cargo().args(["build", "--release", "--workspace"]))?;
    let dir = std::env::temp_dir().join(format!("steward-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let python = venv.join("bin/python");
    let script = root.join("xtask/bench/serve_models.py");

    env::step("training the model; onnxruntime in-process timing");
    let out = Command::new(&python).arg(&script).arg("build").arg(&dir).env("MLFLOW_DISABLE_TELEMETRY", "true").stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("serve_models.py build failed");
    }
    let ort: Value = serde_json::from_slice(out.stdout.split(|b| *b == b'\n').rfind(|l| l.starts_with(b"{")).context("no timing from serve_models.py")?)?;
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("rows.json"))?)?;
    let columns = sample["columns"].clone();
    let rows: Vec<Vec<f32>> = serde_json::from_value(sample["rows"].clone())?;
    let labels: Vec<i64> = serde_json::from_value(sample["labels"].clone())?;
    let bodies: Arc<Vec<String>> = Arc::new(rows.iter().map(|r| json!({ "dataframe_split": { "columns": columns, "data": [r] } }).to_string()).collect());

    env::step("steward in-process timing");
    let (s_p50, s_p99, s_mean) = in_process(&dir.join("model.onnx"), &rows)?;
    let rt = tokio::runtime::Runtime::new()?;

    env::step("steward server: register, deploy, load");
    let (steward_guard, steward_url) = start_steward(&dir, &[])?;
    env::run(Command::new(&python).arg(&script).arg("register").arg(&steward_url).arg(&dir).env("MLFLOW_DISABLE_TELEMETRY", "true").stdout(Stdio::null()))?;
    env::run(Command::new(env::target_dir().join("release/steward")).args(["deploy", "create", "bench", "--model", "models:/bench@champion", "--tracking-uri", &steward_url]))?;
    let url = format!("{steward_url}/deployments/bench/invocations");
    rt.block_on(check_labels(&url, &bodies, &labels))?;
    rt.block_on(drive_for(&url, bodies.clone(), WARMUP))?;
    let steward = rt.block_on(drive_for(&url, bodies.clone(), MEASURE))?;
    drop(steward_guard);

    env::step("steward server, durable prediction log: load");
    let (steward_guard, steward_url) = start_steward(&dir, &["--prediction-log", "durable"])?;
    let url = format!("{steward_url}/deployments/bench/invocations");
    // The stored deployment loads at start-up.
    let loading = Instant::now();
    while let Err(e) = rt.block_on(check_labels(&url, &bodies, &labels)) {
        if loading.elapsed() > Duration::from_secs(60) {
            return Err(e.context("the durable server did not serve the deployment"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    rt.block_on(drive_for(&url, bodies.clone(), WARMUP))?;
    let durable = rt.block_on(drive_for(&url, bodies.clone(), MEASURE))?;
    drop(steward_guard);

    env::step("mlflow models serve 3.17.2 (sklearn flavor): load");
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("mlflow-serve.log"))?;
    let child = own_group(&mut Command::new(venv.join("bin/mlflow")))
        .args(["models", "serve", "--env-manager", "local", "--host", "127.0.0.1", "--port", &port.to_string(), "-m"])
        .arg(dir.join("mlflow-model"))
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        // It starts `uvicorn` by name from the virtualenv.
        .env("PATH", format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default()))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting mlflow models serve")?;
    let mlflow_guard = Guard(child);
    let mlflow_base = format!("http://127.0.0.1:{port}");
    wait_healthy(&mlflow_base, "mlflow models serve")?;
    let url = format!("{mlflow_base}/invocations");
    rt.block_on(check_labels(&url, &bodies, &labels))?;
    rt.block_on(drive_for(&url, bodies.clone(), WARMUP))?;
    let mlflow = rt.block_on(drive_for(&url, bodies.clone(), MEASURE))?;
    drop(mlflow_guard);

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("\n## serving benchmark ({cores} cores, {CONCURRENCY} concurrent clients, one-row requests, {}s each)\n", MEASURE.as_secs());
    println!("| server | requests | throughput (req/s) | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|");
    for (name, l) in [("steward (ONNX, MLflow invocations protocol)", &steward), ("steward, durable prediction log", &durable), ("mlflow models serve (sklearn)", &mlflow)] {
        println!("| {name} | {} | {:.0} | {} | {} |", l.requests, l.throughput, us(l.p50), us(l.p99));
    }
    println!("\nthroughput ratio steward / mlflow: {:.1}x; p99 ratio mlflow / steward: {:.1}x", steward.throughput / mlflow.throughput, mlflow.p99.as_secs_f64() / steward.p99.as_secs_f64());
    println!(
        "durable prediction log: throughput {:.2}x the fast mode's, p99 {:.1}x; throughput ratio durable steward / mlflow: {:.1}x",
        durable.throughput / steward.throughput,
        durable.p99.as_secs_f64() / steward.p99.as_secs_f64(),
        durable.throughput / mlflow.throughput
    );
    let f = |k: &str| ort[k].as_f64().unwrap_or(f64::NAN);
    println!("\n| in-process one-row prediction ({IN_PROCESS_CALLS} calls) | p50 | p99 | mean |");
    println!("|---|---:|---:|---:|");
    println!("| steward runtime (Rust) | {:.1} µs | {:.1} µs | {:.1} µs |", s_p50.as_secs_f64() * 1e6, s_p99.as_secs_f64() * 1e6, s_mean.as_secs_f64() * 1e6);
    println!("| onnxruntime InferenceSession (Python) | {:.1} µs | {:.1} µs | {:.1} µs |", f("p50_us"), f("p99_us"), f("mean_us"));
    println!("\nin-process p50 ratio onnxruntime / steward: {:.1}x", f("p50_us") / (s_p50.as_secs_f64() * 1e6));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
