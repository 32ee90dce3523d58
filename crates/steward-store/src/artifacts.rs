//! The artifact store: run artifacts and model files in a local directory (the default) or
//! in object storage (`s3://`, `gs://`, `az://`), all through the `object_store` crate's one
//! `ObjectStore` trait. Uploads stream in parts, so memory stays bounded whatever the size.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use steward_core::{Error, ErrorCode, Result};

/// One entry of a directory listing; `path` is relative to the listed directory's root.
#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    pub path: String,
    pub is_dir: bool,
    pub file_size: Option<u64>,
}

/// The longest file name (path segment) an artifact may have: what file systems take.
pub const MAX_SEGMENT_BYTES: usize = 255;
/// The longest relative artifact path: what object stores take for a key.
pub const MAX_PATH_BYTES: usize = 1024;

#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    root: Path,
    uri: String,
}

fn store_error(what: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::not_found(format!("artifact '{what}' does not exist")),
        object_store::Error::InvalidPath { source } => Error::invalid(format!("invalid artifact path '{what}': {source}")),
        other => Error::new(ErrorCode::InternalError, format!("artifact store error on '{what}': {other}")),
    }
}

impl ArtifactStore {
    /// Opens the store at a URI: a local path (created if missing), `file://`, `s3://bucket/prefix`,
    /// `gs://bucket/prefix` or `az://container/prefix`. Object-store credentials and endpoints
    /// come from the usual environment variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...).
    pub fn open(uri: &str) -> Result<ArtifactStore> {
        let config = |e: object_store::Error| Error::invalid(format!("bad artifact destination '{uri}': {e}"));
        let (store, root): (Arc<dyn ObjectStore>, String) = if let Some(rest) = uri.strip_prefix("s3://") {
            let s = object_store::aws::AmazonS3Builder::from_env().with_url(uri).build().map_err(config)?;
            (Arc::new(s), key_prefix(rest))
        } else if let Some(rest) = uri.strip_prefix("gs://") {
            let s = object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(uri).build().map_err(config)?;
            (Arc::new(s), key_prefix(rest))
        } else if let Some(rest) = uri.strip_prefix("az://").or_else(|| uri.strip_prefix("abfss://")) {
            let s = object_store::azure::MicrosoftAzureBuilder::from_env().with_url(uri).build().map_err(config)?;
            (Arc::new(s), key_prefix(rest))
        } else if uri.contains("://") && !uri.starts_with("file://") {
            return Err(Error::invalid(format!(
                "unsupported artifact destination '{uri}': expected a local path, file://, s3://, gs:// or az://"
            )));
        } else {
            let dir = uri.strip_prefix("file://").unwrap_or(uri);
            std::fs::create_dir_all(dir).map_err(|e| Error::internal(format!("cannot create artifact directory '{dir}': {e}")))?;
            let s = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(config)?
                .with_automatic_cleanup(true);
            (Arc::new(s), String::new())
        };
        Ok(ArtifactStore { store, root: Path::from(root), uri: uri.to_owned() })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Resolves a user-supplied relative path; `..`, empty and absolute segments are refused,
    /// and so are names longer than file systems and object stores take.
    fn resolve(&self, rel: &str) -> Result<Path> {
        let rel = rel.trim_matches('/');
        if rel.len() > MAX_PATH_BYTES {
            return Err(Error::invalid(format!("Invalid path: {} bytes long, longer than the {MAX_PATH_BYTES} an artifact path may have", rel.len())));
        }
        let mut parts: Vec<String> = self.root.parts().map(|p| p.as_ref().to_owned()).collect();
        if !rel.is_empty() {
            for seg in rel.split('/') {
                if seg.is_empty() || seg == "." || seg == ".." || seg.contains('\\') {
                    return Err(Error::invalid(format!("Invalid path '{rel}': segment '{seg}' is not allowed")));
                }
                if seg.len() > MAX_SEGMENT_BYTES {
                    let head: String = seg.chars().take(32).collect();
                    return Err(Error::invalid(format!("Invalid path: segment '{head}…' is {} bytes long, longer than the {MAX_SEGMENT_BYTES} a file name may have", seg.len())));
                }
                parts.push(seg.to_owned());
            }
        }
        Path::parse(parts.join("/")).map_err(|e| Error::invalid(format!("Invalid path '{rel}': {e}")))
    }

    /// Writes a file from a stream of chunks; the object appears only once complete.
    pub async fn put_stream<S, E>(&self, rel: &str, mut body: S) -> Result<u64>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let path = self.resolve(rel)?;
        if rel.trim_matches('/').is_empty() {
            return Err(Error::invalid("an artifact upload needs a file path"));
        }
        let upload = self.store.put_multipart(&path).await.map_err(|e| store_error(rel, e))?;
        let mut writer = WriteMultipart::new(upload);
        let mut total = 0u64;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => {
                    total += bytes.len() as u64;
                    writer.wait_for_capacity(4).await.map_err(|e| store_error(rel, e))?;
                    writer.put(bytes);
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(Error::invalid(format!("upload of '{rel}' was interrupted: {e}")));
                }
            }
        }
        writer.finish().await.map_err(|e| store_error(rel, e))?;
        Ok(total)
    }

    pub async fn put_bytes(&self, rel: &str, bytes: Bytes) -> Result<()> {
        let path = self.resolve(rel)?;
        self.store.put(&path, bytes.into()).await.map_err(|e| store_error(rel, e))?;
        Ok(())
    }

    /// Opens a file for download: its size and a stream of its bytes.
    pub async fn get(&self, rel: &str) -> Result<(u64, BoxStream<'static, std::result::Result<Bytes, Error>>)> {
        let path = self.resolve(rel)?;
        let got = self.store.get(&path).await.map_err(|e| store_error(rel, e))?;
        let size = got.meta.size;
        let owned = rel.to_owned();
        let stream = got.into_stream().map_err(move |e| store_error(&owned, e)).boxed();
        Ok((size, stream))
    }

    pub async fn get_bytes(&self, rel: &str) -> Result<Bytes> {
        let path = self.resolve(rel)?;
        let got = self.store.get(&path).await.map_err(|e| store_error(rel, e))?;
        got.bytes().await.map_err(|e| store_error(rel, e))
    }

    /// Lists the immediate children of a directory, directories first, then by name. A
    /// directory that does not exist lists as empty, as in MLflow.
    pub async fn list(&self, rel: &str) -> Result<Vec<FileInfo>> {
        let dir = self.resolve(rel)?;
        let listing = self.store.list_with_delimiter(Some(&dir)).await.map_err(|e| store_error(rel, e))?;
        let name = |p: &Path| p.filename().unwrap_or_default().to_owned();
        let mut out: Vec<FileInfo> = listing
            .common_prefixes
            .iter()
            .map(|p| FileInfo { path: name(p), is_dir: true, file_size: None })
            .collect();
        out.extend(listing.objects.iter().map(|o| FileInfo { path: name(&o.location), is_dir: false, file_size: Some(o.size) }));
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Deletes a file, or everything under a directory.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        let path = self.resolve(rel)?;
        if rel.trim_matches('/').is_empty() {
            return Err(Error::invalid("refusing to delete the artifact root"));
        }
        let children: Vec<_> = self.store.list(Some(&path)).try_collect().await.map_err(|e| store_error(rel, e))?;
        if children.is_empty() {
            // Not a directory: a single file, or nothing (deleting nothing is fine, as in MLflow).
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(rel, e)),
            }
        }
        for child in children {
            self.store.delete(&child.location).await.map_err(|e| store_error(rel, e))?;
        }
        Ok(())
    }
}

fn key_prefix(rest: &str) -> String {
    // bucket/prefix... -> prefix...
    rest.split_once('/').map(|(_, p)| p.trim_matches('/').to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_round_trip_list_and_delete() {
        let dir = std::env::temp_dir().join(format!("steward-art-{}", uuid::Uuid::new_v4().simple()));
        let store = ArtifactStore::open(dir.to_str().unwrap()).unwrap();
        let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from_static(b"hello ")), Ok(Bytes::from_static(b"world"))]);
        assert_eq!(store.put_stream("1/run/artifacts/a/b.txt", body).await.unwrap(), 11);
        store.put_bytes("1/run/artifacts/c.txt", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(store.get_bytes("1/run/artifacts/a/b.txt").await.unwrap(), Bytes::from_static(b"hello world"));
        let listing = store.list("1/run/artifacts").await.unwrap();
        assert_eq!(
            listing,
            vec![
                FileInfo { path: "a".into(), is_dir: true, file_size: None },
                FileInfo { path: "c.txt".into(), is_dir: false, file_size: Some(1) },
            ]
        );
        assert!(store.list("1/nothing").await.unwrap().is_empty());
        store.delete("1/run/artifacts/a").await.unwrap();
        assert_eq!(store.list("1/run/artifacts").await.unwrap().len(), 1);
        let err = store.get_bytes("1/run/artifacts/a/b.txt").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::ResourceDoesNotExist);
        let err = store.get_bytes("1/../../etc/passwd").await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidParameterValue);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
