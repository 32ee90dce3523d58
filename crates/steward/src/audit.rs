//! `steward audit …`: verify the ledger (its chain, and its end against the signed checkpoints
//! kept outside the database), export it, print the public key that signs its checkpoints;
//! and where the server keeps that key and those checkpoints.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use steward_core::anchor::LedgerKey;
use steward_store::anchor::{Checkpoints, default_dir, read_key, read_or_create_key};

use crate::{StoreArgs, open_store};

/// Where the ledger is anchored: the signing key's file and the checkpoints' location.
#[derive(clap::Args, Clone, Default)]
pub struct AnchorArgs {
    /// The Ed25519 key that signs ledger checkpoints (created on first start; default:
    /// ledger.key beside the SQLite database, or beside a local artifact directory)
    #[arg(long, env = "STEWARD_LEDGER_KEY")]
    pub ledger_key: Option<PathBuf>,
    /// Where signed checkpoints of the ledger's head are written: a directory, s3://, gs://
    /// or az:// — best one the database's administrators cannot write (default:
    /// ledger-checkpoints beside ledger.key)
    #[arg(long, env = "STEWARD_LEDGER_CHECKPOINTS")]
    pub ledger_checkpoints: Option<String>,
}

impl AnchorArgs {
    /// The key file and checkpoint location, given or derived; `None` when neither can be
    /// derived (a PostgreSQL store with remote artifacts and no flags).
    pub fn resolve(&self, backend_store_uri: &str, artifacts: Option<&str>) -> Option<(PathBuf, String)> {
        let dir = default_dir(backend_store_uri, artifacts);
        let key = self.ledger_key.clone().or_else(|| dir.as_ref().map(|d| d.join("ledger.key")))?;
        let location = self.ledger_checkpoints.clone().or_else(|| dir.as_ref().map(|d| d.join("ledger-checkpoints").display().to_string()))?;
        Some((key, location))
    }
}

/// The server's anchor: its key (created if missing) and checkpoint location; `None`, with a
/// warning, when there is nowhere to put them.
pub async fn open_anchor(args: &AnchorArgs, backend_store_uri: &str, artifacts: &str, every: i64) -> anyhow::Result<Option<std::sync::Arc<steward_server::anchor::Anchor>>> {
    let Some((key_path, location)) = args.resolve(backend_store_uri, Some(artifacts)) else {
        eprintln!("warning: the audit ledger's end is not anchored: give --ledger-key and --ledger-checkpoints (a PostgreSQL store with remote artifacts has no default place for them)");
        return Ok(None);
    };
    let key = read_or_create_key(&key_path).with_context(|| "the ledger key")?;
    let checkpoints = Checkpoints::open(&location).with_context(|| format!("the ledger checkpoints at {location}"))?;
    let anchor = steward_server::anchor::Anchor::open(key, checkpoints, every).await.map_err(|e| anyhow::anyhow!("the ledger checkpoints at {location}: {}", e.message()))?;
    Ok(Some(anchor))
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and check its end against the signed checkpoints; exit 0 when
    /// intact, 1 naming the first break
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        anchor: AnchorArgs,
        /// The public key the checkpoints must be signed with (hex), when the key file is not
        /// at hand (a second party verifying)
        #[arg(long)]
        ledger_public_key: Option<String>,
    },
    /// Write every ledger entry, oldest first
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Output format
        #[arg(long, value_parser = ["jsonl"], default_value = "jsonl")]
        format: String,
    },
    /// Print the public key that signs the ledger's checkpoints (give it to whoever verifies)
    PublicKey {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        anchor: AnchorArgs,
    },
}

pub async fn audit(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { store, anchor, ledger_public_key } => verify(&store, &anchor, ledger_public_key).await,
        AuditCommand::Export { store, .. } => {
            use std::io::Write as _;
            let store = open_store(&store).await?;
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
        AuditCommand::PublicKey { store, anchor } => {
            let (key, _) = anchor.resolve(&store.backend_store_uri, None).context("no ledger key: give --ledger-key")?;
            println!("{}", read_key(&key)?.public_hex());
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn verify(store_args: &StoreArgs, anchor: &AnchorArgs, public_key: Option<String>) -> anyhow::Result<ExitCode> {
    let store = open_store(store_args).await?;
    let mut checkpoints = Vec::new();
    let mut anchored = None;
    if let Some((key_path, location)) = anchor.resolve(&store_args.backend_store_uri, None) {
        let found = Checkpoints::open(&location)?.all().await?;
        if found.is_empty() {
            println!("note: no signed checkpoints at {location}: the ledger's end is not anchored (a cut at its end would go unseen)");
        } else {
            let public = match public_key {
                Some(k) => k,
                None => read_key(&key_path).map(|k: LedgerKey| k.public_hex()).map_err(|e| anyhow::anyhow!("{} (or give --ledger-public-key)", e.message()))?,
            };
            for c in &found {
                if let Err(e) = c.check_signature(&public) {
                    println!("audit ledger checkpoints are not trustworthy: {}", e.message());
                    return Ok(ExitCode::from(1));
                }
            }
            anchored = found.iter().map(|c| c.seq).max().map(|seq| (seq, found.len(), location));
            checkpoints = found;
        }
    } else {
        println!("note: no checkpoint location (give --ledger-checkpoints): the ledger's end is not checked");
    }
    match store.verify_ledger(&checkpoints).await? {
        Ok(n) => {
            match anchored {
                Some((seq, count, location)) => println!("audit ledger intact: {n} entries (anchored through entry {seq} by {count} signed checkpoints at {location})"),
                None => println!("audit ledger intact: {n} entries"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(b) => {
            println!("audit ledger broken at entry {}: {}", b.seq, b.reason);
            Ok(ExitCode::from(1))
        }
    }
}
