//! What the server's integration tests share: a real server on a loopback port with
//! authentication on and a user (with a token) of each given role.

use std::collections::HashMap;
use std::sync::Arc;

use steward_core::access::Role;
use steward_core::audit::Audit;
use steward_store::MetadataStore;

pub struct Secured {
    pub base: String,
    pub store: Arc<dyn MetadataStore>,
    pub tokens: HashMap<&'static str, String>,
}

/// Starts a server on the metadata store at `uri` (artifacts under `dir`) that requires
/// authentication, with these users and a token for each.
pub async fn spawn_secured(uri: &str, dir: &std::path::Path, users: &[(&'static str, Role)]) -> Secured {
    let store = steward_store::open_metadata(uri, "mlflow-artifacts:/").await.unwrap();
    let setup = Audit::new("setup", None, b"");
    let mut tokens = HashMap::new();
    for &(name, role) in users {
        store.create_user(&setup, name, role).await.unwrap();
        tokens.insert(name, store.create_token(&setup, name, "test", None).await.unwrap().0);
    }
    let artifacts = steward_store::ArtifactStore::open(dir.join("artifacts").to_str().unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = steward_server::AppState::new(store.clone(), artifacts).with_auth(steward_server::AuthMode::Required);
    tokio::spawn(steward_server::serve(listener, state, std::future::pending()));
    Secured { base, store, tokens }
}
