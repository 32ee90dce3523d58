//! The dataset registry in SQL, and lineage from a dataset version to runs and model versions.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use steward_core::audit::Audit;
use steward_core::registry::{DatasetLineage, DatasetVersion};
use steward_core::{Error, Result};

use super::{Bind, SqlStore, append, db_error, now_ms};
use crate::DatasetStore;

const COLUMNS: &str = "name, version, fingerprint, artifact_uri, format, num_rows, dataset_schema, profile, creation_time, created_by";

fn version(row: &AnyRow) -> Result<DatasetVersion> {
    let json = |i: usize| serde_json::from_str(&row.get::<String, _>(i)).map_err(|e| Error::internal(format!("stored dataset JSON: {e}")));
    Ok(DatasetVersion {
        name: row.get(0),
        version: row.get(1),
        fingerprint: row.get(2),
        artifact_uri: row.get(3),
        format: row.get(4),
        rows: row.get(5),
        schema: json(6)?,
        profile: json(7)?,
        creation_time: row.get(8),
        created_by: row.get(9),
    })
}

#[async_trait]
impl DatasetStore for SqlStore {
    async fn register_dataset(&self, audit: &Audit, d: &DatasetVersion) -> Result<(DatasetVersion, bool)> {
        if d.name.is_empty() || d.name.len() > 256 {
            return Err(Error::invalid(format!("a dataset name has 1 to 256 characters, got {}", d.name.len())));
        }
        let hex = d.fingerprint.strip_prefix("sha256:").unwrap_or_default();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(format!("fingerprint must be 'sha256:' and 64 hex digits, got '{}'", d.fingerprint)));
        }
        let mut tx = self.begin().await?;
        let existing = super::dyn_query(format!("SELECT {COLUMNS} FROM dataset_versions WHERE name = $1 AND fingerprint = $2"))
            .bind(&d.name)
            .bind(&d.fingerprint)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if let Some(row) = existing {
            return Ok((version(&row)?, false));
        }
        let next: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 FROM dataset_versions WHERE name = $1").bind(&d.name).fetch_one(&mut *tx).await.map_err(db_error)?.get(0);
        sqlx::query(
            "INSERT INTO dataset_versions (name, version, fingerprint, digest, artifact_uri, format, num_rows, dataset_schema, profile, creation_time, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&d.name)
        .bind(next)
        .bind(&d.fingerprint)
        .bind(d.digest())
        .bind(&d.artifact_uri)
        .bind(&d.format)
        .bind(d.rows)
        .bind(d.schema.to_string())
        .bind(d.profile.to_string())
        .bind(now_ms())
        .bind(&audit.actor)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        append(&mut tx, audit, "dataset_version.create", "dataset_version", &format!("{}/{next}", d.name)).await?;
        tx.commit().await?;
        Ok((self.get_dataset(&d.name, next).await?, true))
    }

    async fn get_dataset(&self, name: &str, v: i64) -> Result<DatasetVersion> {
        let rows = self.rows(format!("SELECT {COLUMNS} FROM dataset_versions WHERE name = $1 AND version = $2"), vec![Bind::from(name), Bind::I64(v)]).await?;
        rows.first().map(version).transpose()?.ok_or_else(|| Error::not_found(format!("dataset '{name}' has no version {v}")))
    }

    async fn dataset_versions(&self, name: &str) -> Result<Vec<DatasetVersion>> {
        let rows = self.rows(format!("SELECT {COLUMNS} FROM dataset_versions WHERE name = $1 ORDER BY version"), vec![Bind::from(name)]).await?;
        if rows.is_empty() {
            return Err(Error::not_found(format!("dataset '{name}' does not exist")));
        }
        rows.iter().map(version).collect()
    }

    async fn dataset_lineage(&self, d: &DatasetVersion) -> Result<DatasetLineage> {
        let runs: Vec<String> = self
            .rows(
                "SELECT DISTINCT i.run_uuid FROM run_inputs i JOIN datasets s ON s.dataset_uuid = i.dataset_uuid WHERE s.digest = $1 ORDER BY i.run_uuid".into(),
                vec![Bind::from(d.digest())],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut model_versions = Vec::new();
        if !runs.is_empty() {
            let ph: Vec<String> = (1..=runs.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT name, version FROM model_versions WHERE deleted = 0 AND run_id IN ({}) ORDER BY name, version", ph.join(", "));
            model_versions = self.rows(sql, runs.iter().map(Bind::from).collect()).await?.iter().map(|r| (r.get(0), r.get(1))).collect();
        }
        Ok(DatasetLineage { runs, model_versions })
    }

    async fn datasets_by_digest(&self, digests: &[String]) -> Result<Vec<DatasetVersion>> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let ph: Vec<String> = (1..=digests.len()).map(|i| format!("${i}")).collect();
        let sql = format!("SELECT {COLUMNS} FROM dataset_versions WHERE digest IN ({}) ORDER BY name, version", ph.join(", "));
        self.rows(sql, digests.iter().map(Bind::from).collect()).await?.iter().map(version).collect()
    }
}
