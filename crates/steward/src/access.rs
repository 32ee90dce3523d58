//! `steward user …` and `steward token …`: accounts and API tokens, written to the metadata
//! store directly. Run on the server's machine (with access to its database), they are how
//! the first user is made: the HTTP API for users and tokens is closed to anonymous callers.

use std::process::ExitCode;

use clap::Subcommand;
use steward_core::access::Role;

use crate::{StoreArgs, cli_audit, open_store};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user with a role (the first user ends open mode: authentication is required)
    Create {
        /// The user name (letters, digits, '_', '-', '.', '@')
        name: String,
        /// viewer, scientist, validator or admin
        #[arg(long)]
        role: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List users with their roles and state (deleted users are kept as tombstones)
    List(StoreArgs),
    /// Change a user's role
    SetRole {
        name: String,
        /// viewer, scientist, validator or admin
        #[arg(long)]
        role: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable a user: their tokens are refused until the user is enabled again
    Disable {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Enable a disabled user
    Enable {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a user: their tokens are revoked; the name is never given to anyone else
    Delete {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue an API token for a user and print it (it is shown only once)
    Create {
        /// The user the token acts as
        #[arg(long)]
        user: String,
        /// A note saying what the token is for
        #[arg(long, default_value = "")]
        label: String,
        /// Days until the token expires (no expiry when not given)
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=3650))]
        expires_in_days: Option<i64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (their ids, never the tokens)
    List {
        /// Only this user's tokens
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by its id (tok_…): refused from the next request on
    Revoke {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn time(ms: i64) -> String {
    steward_core::schedule::iso8601(ms)
}

pub async fn user(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        UserCommand::Create { name, role, store } => {
            let role = Role::parse(&role)?;
            open_store(&store).await?.create_user(&cli_audit(), &name, role).await?;
            println!("created user {name} with role {}", role.as_str());
        }
        UserCommand::List(store) => {
            for u in open_store(&store).await?.users().await? {
                let state = match (u.deleted_at, u.disabled) {
                    (Some(t), _) => format!("deleted {}", time(t)),
                    (None, true) => "disabled".into(),
                    (None, false) => "active".into(),
                };
                println!("{}\t{}\t{state}\tcreated {}", u.name, u.role.as_str(), time(u.created_at));
            }
        }
        UserCommand::SetRole { name, role, store } => {
            let u = open_store(&store).await?.update_user(&cli_audit(), &name, Some(Role::parse(&role)?), None).await?;
            println!("user {name} has role {}", u.role.as_str());
        }
        UserCommand::Disable { name, store } => {
            open_store(&store).await?.update_user(&cli_audit(), &name, None, Some(true)).await?;
            println!("user {name} is disabled");
        }
        UserCommand::Enable { name, store } => {
            open_store(&store).await?.update_user(&cli_audit(), &name, None, Some(false)).await?;
            println!("user {name} is enabled");
        }
        UserCommand::Delete { name, store } => {
            open_store(&store).await?.delete_user(&cli_audit(), &name).await?;
            println!("user {name} is deleted and their tokens revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn token(cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::Create { user, label, expires_in_days, store } => {
            let expires_at = expires_in_days.map(|d| now_ms() + d * 86_400_000);
            let (token, info) = open_store(&store).await?.create_token(&cli_audit(), &user, &label, expires_at).await?;
            eprintln!("token {} for {user}{}", info.id, info.expires_at.map(|t| format!(", expires {}", time(t))).unwrap_or_default());
            println!("{token}");
        }
        TokenCommand::List { user, store } => {
            for t in open_store(&store).await?.tokens(user.as_deref()).await? {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(r), _) => format!("revoked {}", time(r)),
                    (None, Some(e)) if e <= now_ms() => format!("expired {}", time(e)),
                    (None, Some(e)) => format!("expires {}", time(e)),
                    (None, None) => "no expiry".into(),
                };
                println!("{}\t{}\t{state}\tcreated {}\t{}", t.id, t.user, time(t.created_at), t.label);
            }
        }
        TokenCommand::Revoke { id, store } => {
            open_store(&store).await?.revoke_token(&cli_audit(), &id).await?;
            println!("token {id} is revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
