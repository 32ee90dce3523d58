//! `steward deploy`: manages deployments on a running server through
//! `/api/steward/v1/deployments`.

use serde_json::{Value, json};

use crate::remote::send;

#[derive(clap::Subcommand)]
pub enum DeployCommand {
    /// Serve a registered model under a deployment name
    Create {
        /// Deployment name (used in /v2/models/NAME/infer, /v1/models/NAME:predict, ...)
        name: String,
        /// The champion: models:/MODEL@ALIAS (follows the alias) or models:/MODEL/VERSION
        #[arg(long)]
        model: String,
        #[command(flatten)]
        routes: RouteArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Change a deployment's champion, challenger or shadow
    Update {
        name: String,
        /// A new champion reference
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        routes: RouteArgs,
        /// Remove the challenger route
        #[arg(long, conflicts_with_all = ["challenger", "challenger_weight"])]
        no_challenger: bool,
        /// Remove the shadow route
        #[arg(long, conflicts_with = "shadow")]
        no_shadow: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List deployments and the versions they serve
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop serving a deployment
    Delete {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(clap::Args)]
pub struct RouteArgs {
    /// A challenger model reference that takes --challenger-weight percent of traffic
    #[arg(long)]
    challenger: Option<String>,
    /// Percent of traffic for the challenger (0-100)
    #[arg(long, requires = "challenger")]
    challenger_weight: Option<u32>,
    /// A model that receives a copy of every request; its answers are logged, never returned
    #[arg(long)]
    shadow: Option<String>,
}

#[derive(clap::Args)]
pub struct ServerArgs {
    /// The Steward server
    #[arg(long, env = "MLFLOW_TRACKING_URI", default_value = "http://127.0.0.1:5000")]
    tracking_uri: String,
}

fn client(server: &ServerArgs) -> anyhow::Result<(reqwest::Client, String)> {
    Ok((reqwest::Client::new(), format!("{}/api/steward/v1/deployments", crate::remote::base(&server.tracking_uri)?)))
}

fn route_fields(body: &mut Value, routes: &RouteArgs) {
    if let Some(c) = &routes.challenger {
        body["challenger"] = json!({ "model": c, "weight": routes.challenger_weight.unwrap_or(10) });
    }
    if let Some(s) = &routes.shadow {
        body["shadow"] = json!(s);
    }
}

fn show(d: &Value) {
    let name = d["name"].as_str().unwrap_or("?");
    let routes: Vec<String> = d["routes"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| {
                    let weight = r.get("weight").and_then(Value::as_u64).map(|w| format!(" {w}%")).unwrap_or_default();
                    format!("{} {}/{}{weight}", r["role"].as_str().unwrap_or("?"), r["model"].as_str().unwrap_or("?"), r["version"])
                })
                .collect()
        })
        .unwrap_or_default();
    println!("{name}\t{}\t{}", d["model"].as_str().unwrap_or("?"), if routes.is_empty() { "not loaded".into() } else { routes.join(", ") });
}

pub async fn run(cmd: DeployCommand) -> anyhow::Result<()> {
    match cmd {
        DeployCommand::Create { name, model, routes, server } => {
            let (http, url) = client(&server)?;
            let mut body = json!({ "name": name, "model": model });
            route_fields(&mut body, &routes);
            let out = send(http.post(url).json(&body)).await?;
            show(&out["deployment"]);
        }
        DeployCommand::Update { name, model, routes, no_challenger, no_shadow, server } => {
            let (http, url) = client(&server)?;
            let mut body = json!({});
            if let Some(m) = model {
                body["model"] = json!(m);
            }
            route_fields(&mut body, &routes);
            if no_challenger {
                body["challenger"] = Value::Null;
            }
            if no_shadow {
                body["shadow"] = Value::Null;
            }
            let out = send(http.patch(format!("{url}/{name}")).json(&body)).await?;
            show(&out["deployment"]);
        }
        DeployCommand::List { server } => {
            let (http, url) = client(&server)?;
            let out = send(http.get(url)).await?;
            for d in out["deployments"].as_array().into_iter().flatten() {
                show(d);
            }
        }
        DeployCommand::Delete { name, server } => {
            let (http, url) = client(&server)?;
            send(http.delete(format!("{url}/{name}"))).await?;
            println!("deleted deployment {name}");
        }
    }
    Ok(())
}
