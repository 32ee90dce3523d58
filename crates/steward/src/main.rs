//! The `steward` command: runs the server and operates a Steward installation.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

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
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit 0 when intact, 1 naming the first broken entry
    Verify(StoreArgs),
    /// Write every ledger entry, oldest first
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Output format
        #[arg(long, value_parser = ["jsonl"], default_value = "jsonl")]
        format: String,
    },
}

#[derive(clap::Args)]
struct StoreArgs {
    /// Metadata store: sqlite:///PATH (relative), sqlite:////PATH (absolute) or
    /// postgresql://USER@HOST:PORT/DB
    #[arg(long, default_value = DEFAULT_STORE, env = "STEWARD_BACKEND_STORE_URI")]
    backend_store_uri: String,
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
    backend_store_uri: String,
    /// Where artifacts are stored: a local directory, s3://BUCKET/PREFIX, gs://... or az://...
    #[arg(long, default_value = "steward-data/artifacts", env = "STEWARD_ARTIFACTS_DESTINATION")]
    artifacts_destination: String,
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let store = steward_store::open_metadata(&args.backend_store_uri, "mlflow-artifacts:/")
        .await
        .with_context(|| format!("opening the metadata store at {}", args.backend_store_uri))?;
    let artifacts = steward_store::ArtifactStore::open(&args.artifacts_destination)
        .with_context(|| format!("opening the artifact store at {}", args.artifacts_destination))?;
    let addr = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let shown = if local.ip().is_unspecified() { SocketAddr::new([127, 0, 0, 1].into(), local.port()) } else { local };
    // The first line is machine-readable on purpose: test harnesses read the port from it.
    println!("steward listening on http://{shown}");
    println!("  metadata store: {} ({})", args.backend_store_uri, store.backend().as_str());
    println!("  artifacts:      {}", artifacts.uri());
    println!("  use it with:    mlflow.set_tracking_uri(\"http://{shown}\")");
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    steward_server::serve(listener, steward_server::AppState::new(store, artifacts), shutdown).await?;
    Ok(())
}

async fn audit(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let (AuditCommand::Verify(store_args) | AuditCommand::Export { store: store_args, .. }) = &cmd;
    let store = steward_store::open_metadata(&store_args.backend_store_uri, "mlflow-artifacts:/")
        .await
        .with_context(|| format!("opening the metadata store at {}", store_args.backend_store_uri))?;
    match cmd {
        AuditCommand::Verify(_) => match store.verify_ledger().await? {
            Ok(n) => {
                println!("audit ledger intact: {n} entries");
                Ok(ExitCode::SUCCESS)
            }
            Err(b) => {
                println!("audit ledger broken at entry {}: {}", b.seq, b.reason);
                Ok(ExitCode::from(1))
            }
        },
        AuditCommand::Export { .. } => {
            use std::io::Write as _;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut after = 0;
            loop {
                let page = store.ledger(after, 5000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for e in &page {
                    writeln!(out, "{}", steward_server::ledger_entry_json(e))?;
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
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
            Command::Audit(cmd) => audit(cmd).await,
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
