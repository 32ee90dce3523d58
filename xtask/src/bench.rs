//! Side-by-side benchmarks: the same client load against Steward and against the peer tool,
//! on this machine, in one run. Prints throughput, latency percentiles and the ratios.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::env;

/// Kills the child's process group when dropped, so a benchmark (finished or failed) leaves
/// no server behind: `mlflow server` runs its workers and job queue as child processes, which
/// outlived a kill of the parent alone and kept a core busy through later measurements. The
/// child must have been spawned with [`own_group`].
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Makes the command's process the leader of a new process group (see [`Guard`]).
pub fn own_group(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn wait_healthy(url: &str, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let ok = Command::new("curl").args(["-sf", &format!("{url}/health")]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        if ok.is_ok_and(|s| s.success()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("{what} did not become healthy at {url}")
}

fn start_mlflow(venv: &Path, dir: &Path) -> anyhow::Result<(Guard, String)> {
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("mlflow-server.log"))?;
    let child = own_group(&mut Command::new(venv.join("bin/mlflow")))
        .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.join("mlflow.db").display()))
        .arg("--artifacts-destination")
        .arg(dir.join("mlflow-artifacts"))
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting mlflow server")?;
    let url = format!("http://127.0.0.1:{port}");
    let guard = Guard(child);
    wait_healthy(&url, "mlflow server")?;
    Ok((guard, url))
}

pub fn start_steward(dir: &Path, flags: &[&str]) -> anyhow::Result<(Guard, String)> {
    let port = free_port()?;
    let child = own_group(&mut Command::new(env::target_dir().join("release/steward")))
        .args(["server", "--port", &port.to_string()])
        .args(flags)
        .arg("--backend-store-uri")
        .arg(format!("sqlite:///{}", dir.join("steward.db").display()))
        .arg("--artifacts-destination")
        .arg(dir.join("steward-artifacts"))
        .stdout(Stdio::null())
        .spawn()
        .context("starting steward server")?;
    let url = format!("http://127.0.0.1:{port}");
    let guard = Guard(child);
    wait_healthy(&url, "steward server")?;
    Ok((guard, url))
}

#[derive(Debug, Clone)]
struct Stats {
    throughput: f64,
    p50: Duration,
    p95: Duration,
}

fn stats(mut lat: Vec<Duration>, wall: Duration) -> Stats {
    lat.sort();
    let pick = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    Stats { throughput: lat.len() as f64 / wall.as_secs_f64(), p50: pick(0.50), p95: pick(0.95) }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// Sends a request and reads the whole response body; fails on a non-2xx status. What a
    /// timed request waits for: the server's complete answer, not the load generator's parse
    /// of it into a JSON tree (which, for a 0.5 MB search page, took longer than Steward's
    /// answer).
    async fn send(&self, path: &str, body: &Value) -> anyhow::Result<bytes::Bytes> {
        let resp = self.http.post(format!("{}/api/2.0/mlflow/{path}", self.base)).json(body).send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            bail!("{path}: {status} {}", String::from_utf8_lossy(&bytes));
        }
        Ok(bytes)
    }
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let bytes = self.send(path, body).await?;
        serde_json::from_slice(&bytes).with_context(|| format!("{path}: the answer is not JSON"))
    }
    async fn create_run(&self, exp: &str) -> anyhow::Result<String> {
        let v = self.post("runs/create", &json!({"experiment_id": exp, "start_time": 1})).await?;
        Ok(v["run"]["info"]["run_id"].as_str().context("run id")?.to_owned())
    }
}

/// Runs `n` requests made by `make(i)` over `concurrency` workers; returns the latencies and
/// the wall time.
async fn drive<F, Fut>(n: usize, concurrency: usize, make: F) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let make = make.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                make(i).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await??);
    }
    Ok((all, start.elapsed()))
}

const LOG_BATCH_REQUESTS: usize = 2000;
const CREATE_RUN_REQUESTS: usize = 1000;
const SEARCH_RUNS: usize = 20_000;
const SEARCH_REQUESTS: usize = 40;
const CONCURRENCY: usize = 8;
const SEARCH_FILTER: &str = "metrics.auc > 0.9 AND params.model = 'gbm'";

struct Results {
    log_batch: Stats,
    create_run: Stats,
    search: Stats,
    search_hits: usize,
}

async fn workload(name: &str, base: &str) -> anyhow::Result<Results> {
    let client = Arc::new(Client { http: reqwest::Client::builder().pool_max_idle_per_host(64).build()?, base: base.to_owned() });
    let exp = client.post("experiments/create", &json!({"name": "bench"})).await?["experiment_id"].as_str().unwrap().to_owned();

    println!("[{name}] log-batch: {LOG_BATCH_REQUESTS} requests of 100 metrics, {CONCURRENCY} concurrent");
    let mut runs = Vec::new();
    for _ in 0..CONCURRENCY {
        runs.push(client.create_run(&exp).await?);
    }
    let runs = Arc::new(runs);
    let c = client.clone();
    let (lat, wall) = drive(LOG_BATCH_REQUESTS, CONCURRENCY, move |i| {
        let c = c.clone();
        let run = runs[i % runs.len()].clone();
        async move {
            let metrics: Vec<Value> = (0..100).map(|k| json!({"key": format!("m{k}"), "value": (i * k) as f64 * 0.001, "timestamp": 1_700_000_000_000i64 + i as i64, "step": i})).collect();
            c.post("runs/log-batch", &json!({"run_id": run, "metrics": metrics})).await.map(drop)
        }
    })
    .await?;
    let log_batch = stats(lat, wall);

    println!("[{name}] create-run: {CREATE_RUN_REQUESTS} requests, {CONCURRENCY} concurrent");
    let c = client.clone();
    let e = exp.clone();
    let (lat, wall) = drive(CREATE_RUN_REQUESTS, CONCURRENCY, move |_| {
        let c = c.clone();
        let e = e.clone();
        async move { c.create_run(&e).await.map(drop) }
    })
    .await?;
    let create_run = stats(lat, wall);

    println!("[{name}] search-runs: populating {SEARCH_RUNS} runs (auc metric, model param)");
    let search_exp = client.post("experiments/create", &json!({"name": "bench-search"})).await?["experiment_id"].as_str().unwrap().to_owned();
    let c = client.clone();
    let se = search_exp.clone();
    let t = Instant::now();
    drive(SEARCH_RUNS, CONCURRENCY, move |i| {
        let c = c.clone();
        let se = se.clone();
        async move {
            let run = c.create_run(&se).await?;
            // A fixed pseudo-random AUC so both servers hold identical data.
            let auc = ((i as u64).wrapping_mul(2654435761) % 10_000) as f64 / 10_000.0;
            let model = if i % 2 == 0 { "gbm" } else { "logit" };
            let body = json!({"run_id": run, "metrics": [{"key": "auc", "value": auc, "timestamp": 1, "step": 0}], "params": [{"key": "model", "value": model}]});
            c.post("runs/log-batch", &body).await.map(drop)
        }
    })
    .await?;
    println!("[{name}]   populated in {:.1}s", t.elapsed().as_secs_f64());
    println!("[{name}] search-runs: {SEARCH_REQUESTS} searches \"{SEARCH_FILTER}\" (max_results 1000), one at a time");
    let body = json!({"experiment_ids": [search_exp], "filter": SEARCH_FILTER, "max_results": 1000, "run_view_type": "ACTIVE_ONLY"});
    let hits = client.post("runs/search", &body).await?["runs"].as_array().map(Vec::len).unwrap_or(0);
    let c = client.clone();
    let (lat, wall) = drive(SEARCH_REQUESTS, 1, move |_| {
        let c = c.clone();
        let body = body.clone();
        async move { c.send("runs/search", &body).await.map(drop) }
    })
    .await?;
    Ok(Results { log_batch, create_run, search: stats(lat, wall), search_hits: hits })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// `steward_only`: no peer and no ratios; the data directory is kept and its path printed, so
/// a change can be measured (and the server profiled on the same data) in a minute.
pub fn tracking(steward_only: bool) -> anyhow::Result<()> {
    let root = env::repo_root();
    // The whole workspace, so the build shares features (and compiled crates) with `ci`.
    env::step("cargo build --release --workspace");
    env::run(env::cargo().args(["build", "--release", "--workspace"]))?;
    let dir = std::env::temp_dir().join(format!("steward-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let rt = tokio::runtime::Runtime::new()?;

    env::step("steward server (SQLite)");
    let (steward_guard, steward_url) = start_steward(&dir, &[])?;
    let steward = rt.block_on(workload("steward", &steward_url))?;
    drop(steward_guard);
    if steward_only {
        println!("\n| workload | throughput (req/s) | p50 | p95 |\n|---|---:|---:|---:|");
        for (label, s) in [("log-batch (100 metrics)", &steward.log_batch), ("create-run", &steward.create_run), ("search-runs", &steward.search)] {
            println!("| {label} | {:.1} | {} | {} |", s.throughput, ms(s.p50), ms(s.p95));
        }
        println!("\nsteward only (no peer, no ratios); data kept in {}", dir.display());
        return Ok(());
    }
    let venv = env::python_venv("venv-bench", &root.join("xtask/bench/requirements-mlflow.txt"))?;

    env::step("mlflow server 3.17.2 (SQLite)");
    let (mlflow_guard, mlflow_url) = start_mlflow(&venv, &dir)?;
    let mlflow = rt.block_on(workload("mlflow", &mlflow_url))?;
    drop(mlflow_guard);

    if steward.search_hits != mlflow.search_hits {
        bail!("the servers disagree on the search: steward found {} runs, mlflow {}", steward.search_hits, mlflow.search_hits);
    }
    println!("\n## tracking benchmark ({} cores)\n", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
    println!("| workload | server | throughput (req/s) | p50 | p95 |");
    println!("|---|---|---:|---:|---:|");
    for (label, s, m) in [
        ("log-batch (100 metrics)", &steward.log_batch, &mlflow.log_batch),
        ("create-run", &steward.create_run, &mlflow.create_run),
        (&format!("search-runs over {SEARCH_RUNS} runs ({} hits)", steward.search_hits), &steward.search, &mlflow.search),
    ] {
        println!("| {label} | steward | {:.1} | {} | {} |", s.throughput, ms(s.p50), ms(s.p95));
        println!("| {label} | mlflow | {:.1} | {} | {} |", m.throughput, ms(m.p50), ms(m.p95));
    }
    println!("\n| ratio (steward / mlflow) | throughput | p95 latency (mlflow / steward) |");
    println!("|---|---:|---:|");
    for (label, s, m) in [
        ("log-batch", &steward.log_batch, &mlflow.log_batch),
        ("create-run", &steward.create_run, &mlflow.create_run),
        ("search-runs", &steward.search, &mlflow.search),
    ] {
        println!("| {label} | {:.1}x | {:.1}x |", s.throughput / m.throughput, m.p95.as_secs_f64() / s.p95.as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
