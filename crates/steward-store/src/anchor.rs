//! Where the audit ledger is anchored outside the database: the server's Ed25519 key (a file
//! only the server reads) and the signed checkpoints of the ledger's head (a directory or a
//! bucket — ideally one the database's administrators cannot write, or that a second party
//! keeps). `steward_core::anchor` signs and judges; this reads and writes.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use steward_core::anchor::{Checkpoint, LedgerKey};
use steward_core::{Error, Result};

use crate::ArtifactStore;

/// The file name of a checkpoint: its sequence number, zero-padded, so names sort by it.
fn file_name(seq: i64) -> String {
    format!("{seq:020}.json")
}

/// The signed checkpoints at one location (a local directory, `s3://`, `gs://`, `az://`).
#[derive(Clone)]
pub struct Checkpoints {
    store: ArtifactStore,
}

impl Checkpoints {
    pub fn open(location: &str) -> Result<Self> {
        Ok(Checkpoints { store: ArtifactStore::open(location)? })
    }

    pub fn location(&self) -> &str {
        self.store.uri()
    }

    pub async fn write(&self, c: &Checkpoint) -> Result<()> {
        let json = serde_json::to_vec_pretty(c).map_err(|e| Error::internal(e.to_string()))?;
        self.store.put_bytes(&file_name(c.seq), Bytes::from(json)).await
    }

    /// Every checkpoint, oldest first. A file that is not a checkpoint is an error naming it:
    /// a damaged anchor must not pass as a missing one.
    pub async fn all(&self) -> Result<Vec<Checkpoint>> {
        let mut out = Vec::new();
        for f in self.store.list("").await?.into_iter().filter(|f| !f.is_dir && f.path.ends_with(".json")) {
            let bytes = self.store.get_bytes(&f.path).await?;
            let c: Checkpoint = serde_json::from_slice(&bytes)
                .map_err(|e| Error::invalid(format!("{}/{} is not a ledger checkpoint: {e}", self.location().trim_end_matches('/'), f.path)))?;
            if file_name(c.seq) != f.path {
                return Err(Error::invalid(format!("{}/{} holds the checkpoint of entry {}: it was renamed", self.location().trim_end_matches('/'), f.path, c.seq)));
            }
            out.push(c);
        }
        Ok(out)
    }
}

/// Reads the server's ledger key.
pub fn read_key(path: &Path) -> Result<LedgerKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::invalid(format!("cannot read the ledger key {}: {e}", path.display())))?;
    LedgerKey::parse(&text).map_err(|e| Error::invalid(format!("{}: {}", path.display(), e.message())))
}

/// Reads the server's ledger key, creating it (readable by its owner only) on first start.
pub fn read_or_create_key(path: &Path) -> Result<LedgerKey> {
    if path.exists() {
        return read_key(path);
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| Error::internal(format!("no randomness for the ledger key: {e}")))?;
    let key = LedgerKey::from_secret(secret);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
    }
    write_private(path, &key.to_text()).map_err(|e| Error::internal(format!("cannot write the ledger key {}: {e}", path.display())))?;
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Where the key and the checkpoints are unless configured: beside a SQLite database file, or
/// beside a local artifact directory; `None` when neither is local (then they must be given).
pub fn default_dir(backend_store_uri: &str, artifacts_destination: Option<&str>) -> Option<PathBuf> {
    // SQLAlchemy's convention, as the store reads it: sqlite:///relative, sqlite:////absolute.
    let sqlite = ["sqlite:///", "sqlite://", "sqlite:"].iter().find_map(|p| backend_store_uri.strip_prefix(p));
    let file = sqlite.or((!backend_store_uri.contains("://")).then_some(backend_store_uri)).filter(|f| !f.is_empty());
    if let Some(file) = file {
        return Some(Path::new(file).parent().map(Path::to_path_buf).unwrap_or_default());
    }
    let local = artifacts_destination.filter(|a| !a.contains("://") || a.starts_with("file://"))?;
    let dir = Path::new(local.strip_prefix("file://").unwrap_or(local));
    Some(dir.parent().map(Path::to_path_buf).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_lives_beside_the_database_or_the_local_artifacts() {
        assert_eq!(default_dir("sqlite:///steward-data/steward.db", None), Some(PathBuf::from("steward-data")));
        assert_eq!(default_dir("sqlite:////srv/s/steward.db", Some("s3://b/p")), Some(PathBuf::from("/srv/s")));
        assert_eq!(default_dir("postgresql://u@h:5432/db", Some("/srv/steward/artifacts")), Some(PathBuf::from("/srv/steward")));
        assert_eq!(default_dir("postgresql://u@h:5432/db", Some("s3://bucket/prefix")), None);
    }
}
