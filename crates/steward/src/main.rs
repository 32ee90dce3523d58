//! The `steward` command: runs the server and operates a Steward installation.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

mod access;
mod audit;
mod data;
mod demo;
mod deploy;
mod pipeline;
mod remote;
mod report;
mod stats;
mod table;
mod train;
mod validate;

#[derive(Parser)]
#[command(name = "steward", version, about = "Autonomous MLOps control plane for regulated machine learning")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tracking server (MLflow-compatible REST API and artifact proxy)
    Server(ServerArgs),
    /// Inspect the tamper-evident audit ledger
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Manage users: create, list, set-role, disable, enable, delete (once a user exists, the
    /// server requires authentication)
    #[command(subcommand)]
    User(access::UserCommand),
    /// Manage API tokens: create (with an expiry), list, revoke
    #[command(subcommand)]
    Token(access::TokenCommand),
    /// Score a table with a model: every row in, one row of outputs out
    Predict(PredictArgs),
    /// Manage deployments on a running server (champion, challenger, shadow routes)
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// Statistics on demand
    #[command(subcommand)]
    Stats(StatsCommand),
    /// Reports on data and models
    #[command(subcommand)]
    Report(ReportCommand),
    /// Work with datasets: profiles, fingerprints, validation
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Continuous-training pipelines
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// Train a built-in model (gradient-boosted trees or logistic regression) on a table
    Train(train::TrainArgs),
    /// Monitor deployments: drift windows, metrics, alerts
    #[command(subcommand)]
    Monitor(data::MonitorCommand),
    /// The flagship scenario end to end on the embedded default: train, deploy, drift, detect,
    /// retrain, canary, promote, with the incident timeline and a verified audit ledger
    Demo(demo::DemoArgs),
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Per-column data drift between a reference and a current table (Evidently's default tests)
    Drift(report::DriftArgs),
    /// A model version's documentation from the server's records: the SR 11-7 validation report
    /// (default), the model card or the EU AI Act Annex IV outline, as HTML or Markdown (.md)
    Model(ModelReportArgs),
}

#[derive(clap::Args)]
struct ModelReportArgs {
    /// The registered model
    name: String,
    #[arg(long)]
    version: i64,
    /// Where to write it: .md for Markdown, anything else gets self-contained HTML
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_parser = ["validation-report", "model-card", "annex-iv"], default_value = "validation-report")]
    document: String,
    #[arg(long, env = "MLFLOW_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
    tracking_uri: String,
}

/// Fetches a document the server builds and writes it.
async fn model_report(args: ModelReportArgs) -> anyhow::Result<ExitCode> {
    let base = remote::base(&args.tracking_uri)?;
    let format = if args.out.extension().is_some_and(|e| e == "md") { "md" } else { "html" };
    let url = format!("{base}/api/steward/v1/registry/models/{}/versions/{}/documents/{}", args.name, args.version, args.document);
    let text = remote::send_text(reqwest::Client::new().get(url).query(&[("format", format)])).await?;
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote the {} of {} version {} to {}", args.document.replace('-', " "), args.name, args.version, args.out.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
enum StatsCommand {
    /// Evaluate statistics on JSON lines from stdin, one JSON answer per line
    Eval,
}

#[derive(clap::Args)]
struct PredictArgs {
    /// The model: a path to an .onnx file, or a registered version (models:/NAME@ALIAS,
    /// models:/NAME/VERSION) fetched from --tracking-uri
    #[arg(long)]
    model: String,
    /// The Steward server that resolves models:/ references
    #[arg(long, env = "MLFLOW_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
    tracking_uri: String,
    /// Rows to score: CSV with a header row, or Parquet
    #[arg(long)]
    input: PathBuf,
    /// Where to write the outputs (.csv or .parquet): one column per output value
    #[arg(long)]
    output: PathBuf,
}

#[derive(clap::Args)]
pub struct StoreArgs {
    /// Metadata store: sqlite:///PATH (relative), sqlite:////PATH (absolute) or
    /// postgresql://USER@HOST:PORT/DB
    #[arg(long, default_value = DEFAULT_STORE, env = "STEWARD_BACKEND_STORE_URI")]
    pub backend_store_uri: String,
}

const DEFAULT_STORE: &str = "sqlite:///steward-data/steward.db";

#[derive(clap::Args)]
struct ServerArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1", env = "STEWARD_HOST")]
    host: IpAddr,
    /// Port to listen on (0 picks a free port)
    #[arg(short, long, default_value_t = 5000, env = "STEWARD_PORT")]
    port: u16,
    /// Metadata store: sqlite:///PATH (relative), sqlite:////PATH (absolute) or
    /// postgresql://USER@HOST:PORT/DB
    #[arg(long, default_value = DEFAULT_STORE, env = "STEWARD_BACKEND_STORE_URI")]
    pub backend_store_uri: String,
    /// Where artifacts are stored: a local directory, s3://BUCKET/PREFIX, gs://... or az://...
    #[arg(long, default_value = "steward-data/artifacts", env = "STEWARD_ARTIFACTS_DESTINATION")]
    artifacts_destination: String,
    /// Require authentication even before any user exists
    #[arg(long)]
    require_auth: bool,
    /// Allow listening on a non-loopback address with no users (no authentication at all)
    #[arg(long)]
    insecure_no_auth: bool,
    /// Aliases only validators and admins may set, never on versions they created
    #[arg(long, value_delimiter = ',', default_value = "champion,production", env = "STEWARD_PROTECTED_ALIASES")]
    protected_aliases: Vec<String>,
    /// Run a pipeline on a cron schedule (UTC), as 'CRON=PIPELINE.yaml', e.g.
    /// '0 3 * * *=examples/credit/pipeline.yaml' (repeatable; 6 fields add seconds first)
    #[arg(long = "schedule", value_parser = parse_schedule)]
    schedules: Vec<(steward_core::schedule::Cron, std::path::PathBuf)>,
    /// An agent policy (YAML, repeatable): triggers over monitor windows, incidents, actions
    /// and which of them wait for approval
    #[arg(long = "policy")]
    policies: Vec<std::path::PathBuf>,
    /// A language model that writes advisory incident analyses beside the rule-based ones:
    /// `anthropic` (Messages API) or `openai` (any OpenAI-compatible chat endpoint: vLLM, Ollama)
    #[arg(long, value_parser = ["anthropic", "openai"], requires_all = ["reasoner_url", "reasoner_model"])]
    reasoner: Option<String>,
    /// The reasoner's base URL: https://api.anthropic.com, or an OpenAI-compatible base such as
    /// https://api.openai.com/v1 or http://127.0.0.1:11434/v1 (the key: STEWARD_REASONER_API_KEY)
    #[arg(long, requires = "reasoner")]
    reasoner_url: Option<String>,
    /// The reasoner's model name
    #[arg(long, requires = "reasoner")]
    reasoner_model: Option<String>,
    /// Seconds a connection may take to send a request's headers, and may stay idle (new, or
    /// kept alive between requests), before it is closed
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_read_timeout: u64,
    /// The prediction log: `fast` answers before the record is written (a crash loses what was
    /// queued, at most a batch or two), `durable` answers only once it is committed
    #[arg(long, value_parser = ["fast", "durable"], default_value = "fast", env = "STEWARD_PREDICTION_LOG")]
    prediction_log: String,
    /// Hosts (or HOST:PORT) monitors may post alerts to, comma-separated; no others (webhooks
    /// to any other address are refused)
    #[arg(long, value_delimiter = ',', env = "STEWARD_WEBHOOK_ALLOW")]
    webhook_allow: Vec<String>,
    #[command(flatten)]
    anchor: audit::AnchorArgs,
    /// Sign a ledger checkpoint every this many entries (and at least every minute while the
    /// ledger grows, and at shutdown)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..))]
    ledger_checkpoint_every: i64,
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    // SIGTERM is handled from the start: one that comes while the server is still starting
    // (after it printed its address) shuts it down gracefully instead of killing it.
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let store = steward_store::open_metadata(&args.backend_store_uri, "mlflow-artifacts:/")
        .await
        .with_context(|| format!("opening the metadata store at {}", args.backend_store_uri))?;
    let artifacts = steward_store::ArtifactStore::open(&args.artifacts_destination)
        .with_context(|| format!("opening the artifact store at {}", args.artifacts_destination))?;
    let has_users = store.has_users().await?;
    let auth = if has_users || args.require_auth { steward_server::AuthMode::Required } else { steward_server::AuthMode::Open };
    if auth == steward_server::AuthMode::Open && !args.host.is_loopback() && !args.insecure_no_auth {
        anyhow::bail!(
            "refusing to listen on {} without authentication: create a user first (steward user create NAME --role admin) or pass --insecure-no-auth",
            args.host
        );
    }
    let addr = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let shown = if local.ip().is_unspecified() { SocketAddr::new([127, 0, 0, 1].into(), local.port()) } else { local };
    // The first line is machine-readable on purpose: test harnesses read the port from it.
    println!("steward listening on http://{shown}");
    println!("  metadata store: {} ({})", args.backend_store_uri, store.backend().as_str());
    println!("  artifacts:      {}", artifacts.uri());
    println!("  authentication: {}", if auth == steward_server::AuthMode::Required { "required (API tokens)" } else { "open (loopback, no users)" });
    println!("  use it with:    mlflow.set_tracking_uri(\"http://{shown}\")");
    let shutdown = async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = term;
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    for (cron, file) in args.schedules {
        println!("  schedule:       {} runs {}", cron.as_str(), file.display());
        tokio::spawn(scheduled(cron, file, format!("http://{shown}")));
    }
    let mut policies = Vec::new();
    for path in &args.policies {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        policies.push(serde_norway::from_str::<steward_agent::Policy>(&text).with_context(|| format!("{} is not a valid policy", path.display()))?);
    }
    steward_server::agent::check(&policies).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    anyhow::ensure!(args.reasoner.is_none() || !policies.is_empty(), "--reasoner needs an agent policy (--policy FILE): the reasoner writes the agent's incident analyses");
    if !policies.is_empty() {
        for p in &policies {
            println!("  agent policy:   {} ({} triggers)", p.deployment, p.triggers.len());
        }
    }
    let mut state = steward_server::AppState::new(store.clone(), artifacts).with_auth(auth).with_protected_aliases(args.protected_aliases).with_policies(policies.clone()).with_webhook_allow(args.webhook_allow);
    if args.prediction_log == "durable" {
        state = state.with_durable_predictions();
    }
    if let Some(anchor) = audit::open_anchor(&args.anchor, &args.backend_store_uri, &args.artifacts_destination, args.ledger_checkpoint_every).await? {
        println!("  ledger anchor:  checkpoints at {} signed by ed25519 {}", anchor.location(), anchor.public_key());
        state = state.with_anchor(anchor);
    }
    if !policies.is_empty() {
        let reasoner = match (&args.reasoner, &args.reasoner_url, &args.reasoner_model) {
            (Some(api), Some(url), Some(model)) => {
                let api = steward_server::reasoner::Api::parse(api).context("--reasoner")?;
                println!("  reasoner:       {model} at {url} (advisory)");
                Some(std::sync::Arc::new(steward_server::reasoner::LlmReasoner::new(api, url, model, std::env::var("STEWARD_REASONER_API_KEY").ok())))
            }
            _ => None,
        };
        let agent = steward_server::agent::Agent::new(&state, policies, format!("http://{shown}"))?;
        steward_server::agent::Agent { reasoner, ..agent }.start();
    }
    steward_server::serve_with(listener, state, shutdown, std::time::Duration::from_secs(args.header_read_timeout)).await?;
    Ok(())
}

fn parse_schedule(s: &str) -> Result<(steward_core::schedule::Cron, std::path::PathBuf), String> {
    let (cron, file) = s.rsplit_once('=').ok_or_else(|| format!("'{s}' is not CRON=PIPELINE.yaml"))?;
    let cron = steward_core::schedule::Cron::parse(cron.trim()).map_err(|e| e.message().to_owned())?;
    let file = std::path::PathBuf::from(file.trim());
    if !file.is_file() {
        return Err(format!("pipeline file '{}' does not exist", file.display()));
    }
    Ok((cron, file))
}

/// Runs `steward pipeline run FILE` against this server at every due time; a run still going
/// when the next is due makes that one wait (runs never overlap).
async fn scheduled(cron: steward_core::schedule::Cron, file: std::path::PathBuf, url: String) {
    let Ok(exe) = std::env::current_exe() else {
        tracing::error!("scheduled pipelines cannot find the steward executable");
        return;
    };
    loop {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let Some(due) = cron.next_after(now) else {
            tracing::warn!(schedule = cron.as_str(), "the schedule is never due again");
            return;
        };
        tokio::time::sleep(std::time::Duration::from_secs((due - now) as u64)).await;
        tracing::info!(schedule = cron.as_str(), pipeline = %file.display(), "starting a scheduled pipeline");
        let out = tokio::process::Command::new(&exe)
            .args(["pipeline", "run"])
            .arg(&file)
            .args(["--tracking-uri", &url, "--trigger", &format!("schedule {}", cron.as_str())])
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => tracing::info!(pipeline = %file.display(), "scheduled pipeline finished"),
            Ok(o) => tracing::warn!(pipeline = %file.display(), "scheduled pipeline stopped: {}", String::from_utf8_lossy(&o.stderr).trim()),
            Err(e) => tracing::error!(pipeline = %file.display(), "scheduled pipeline could not start: {e}"),
        }
    }
}

/// The audit identity of a CLI invocation: the operating-system user.
pub fn cli_audit() -> steward_core::audit::Audit {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    steward_core::audit::Audit::new(format!("cli:{user}"), None, b"")
}

pub async fn open_store(args: &StoreArgs) -> anyhow::Result<std::sync::Arc<dyn steward_store::MetadataStore>> {
    steward_store::open_metadata(&args.backend_store_uri, "mlflow-artifacts:/")
        .await
        .with_context(|| format!("opening the metadata store at {}", args.backend_store_uri))
}

async fn predict(args: PredictArgs) -> anyhow::Result<ExitCode> {
    let bytes = if args.model.starts_with("models:/") {
        remote::fetch_model(&args.tracking_uri, &args.model).await?
    } else {
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model))?
    };
    let model = steward_runtime::Model::load(&bytes).with_context(|| format!("loading {}", args.model))?;
    let frame = table::read(&args.input)?;
    let inputs = frame.to_inputs(model.signature()).with_context(|| format!("reading {} as the model's inputs", args.input.display()))?;
    let outputs = model.predict(&inputs).with_context(|| format!("scoring {}", args.input.display()))?;
    table::write_outputs(&args.output, &outputs)?;
    println!("scored {} rows into {}", frame.rows(), args.output.display());
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server(args).await.map(|()| ExitCode::SUCCESS),
            Command::Audit(cmd) => audit::audit(cmd).await,
            Command::User(cmd) => access::user(cmd).await,
            Command::Token(cmd) => access::token(cmd).await,
            Command::Predict(args) => predict(args).await,
            Command::Deploy(cmd) => deploy::run(cmd).await.map(|()| ExitCode::SUCCESS),
            Command::Stats(StatsCommand::Eval) => stats::run().map(|()| ExitCode::SUCCESS),
            Command::Report(ReportCommand::Drift(args)) => report::run(args).map(|()| ExitCode::SUCCESS),
            Command::Report(ReportCommand::Model(args)) => model_report(args).await,
            Command::Data(cmd) => data::run(cmd).await,
            Command::Pipeline(cmd) => pipeline::run(cmd).await,
            Command::Train(args) => train::train(args).map(|()| ExitCode::SUCCESS),
            Command::Monitor(cmd) => data::monitor(cmd).await.map(|()| ExitCode::SUCCESS),
            Command::Demo(args) => demo::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").to_lowercase_first());
            ExitCode::FAILURE
        }
    }
}

/// Writes a document to stdout; a reader that went away (`| head`) is not an error.
fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

trait LowercaseFirst {
    fn to_lowercase_first(&self) -> String;
}

impl LowercaseFirst for String {
    fn to_lowercase_first(&self) -> String {
        let mut c = self.chars();
        match c.next() {
            Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
            None => String::new(),
        }
    }
}
