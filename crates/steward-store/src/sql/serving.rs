//! Deployments, the prediction log and feedback in SQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use steward_core::audit::Audit;
use steward_core::serving::{Deployment, DeploymentSpec, Feedback, PredictionRecord, RouteRole};
use steward_core::{Error, Result};

use super::{Bind, SqlStore, append, db_error, is_unique_violation, now_ms, value_rows};
use crate::ServingStore;

/// Rows per multi-row INSERT: 11 binds each stays far below both backends' bind limits.
const PREDICTION_CHUNK: usize = 500;

fn deployment_not_found(name: &str) -> Error {
    Error::not_found(format!("deployment '{name}' does not exist"))
}

fn deployment(row: &AnyRow) -> Result<Deployment> {
    let spec: String = row.get(0);
    let spec: DeploymentSpec = serde_json::from_str(&spec).map_err(|e| Error::internal(format!("stored deployment spec is unreadable: {e}")))?;
    Ok(Deployment { spec, creation_time: row.get(1), last_updated_time: row.get(2), created_by: row.get(3) })
}

fn route(s: &str) -> Result<RouteRole> {
    match s {
        "champion" => Ok(RouteRole::Champion),
        "challenger" => Ok(RouteRole::Challenger),
        "shadow" => Ok(RouteRole::Shadow),
        other => Err(Error::internal(format!("stored prediction has unknown route '{other}'"))),
    }
}

const PREDICTION_COLUMNS: &str = "id, deployment, model, version, route, parent_id, time, latency_us, inputs, outputs, context";

fn prediction(row: &AnyRow) -> Result<PredictionRecord> {
    Ok(PredictionRecord {
        id: row.get(0),
        deployment: row.get(1),
        model: row.get(2),
        version: row.get(3),
        route: route(&row.get::<String, _>(4))?,
        parent_id: row.get(5),
        time: row.get(6),
        latency_us: row.get(7),
        inputs: row.get(8),
        outputs: row.get(9),
        context: row.get(10),
    })
}

#[async_trait]
impl ServingStore for SqlStore {
    async fn put_deployment(&self, audit: &Audit, spec: &DeploymentSpec, create: bool) -> Result<Deployment> {
        spec.validate()?;
        let json = serde_json::to_string(spec).map_err(|e| Error::internal(e.to_string()))?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        if create {
            let res = sqlx::query("INSERT INTO deployments (name, spec, creation_time, last_updated_time, created_by) VALUES ($1, $2, $3, $3, $4)")
                .bind(&spec.name)
                .bind(&json)
                .bind(now)
                .bind(&audit.actor)
                .execute(&mut *tx)
                .await;
            match res {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => return Err(Error::already_exists(format!("deployment '{}' already exists", spec.name))),
                Err(e) => return Err(db_error(e)),
            }
            append(&mut tx, audit, "deployment.create", "deployment", &spec.name).await?;
        } else {
            let n = sqlx::query("UPDATE deployments SET spec = $1, last_updated_time = $2 WHERE name = $3")
                .bind(&json)
                .bind(now)
                .bind(&spec.name)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected();
            if n == 0 {
                return Err(deployment_not_found(&spec.name));
            }
            append(&mut tx, audit, "deployment.update", "deployment", &spec.name).await?;
        }
        tx.commit().await?;
        self.get_deployment(&spec.name).await
    }

    async fn get_deployment(&self, name: &str) -> Result<Deployment> {
        let rows = self.rows("SELECT spec, creation_time, last_updated_time, created_by FROM deployments WHERE name = $1".into(), vec![Bind::from(name)]).await?;
        rows.first().map(deployment).transpose()?.ok_or_else(|| deployment_not_found(name))
    }

    async fn list_deployments(&self) -> Result<Vec<Deployment>> {
        let rows = self.rows("SELECT spec, creation_time, last_updated_time, created_by FROM deployments ORDER BY name".into(), vec![]).await?;
        rows.iter().map(deployment).collect()
    }

    async fn delete_deployment(&self, audit: &Audit, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM deployments WHERE name = $1").bind(name).execute(&mut *tx).await.map_err(db_error)?.rows_affected();
        if n == 0 {
            return Err(deployment_not_found(name));
        }
        append(&mut tx, audit, "deployment.delete", "deployment", name).await?;
        tx.commit().await
    }

    async fn log_predictions(&self, records: &[PredictionRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for chunk in records.chunks(PREDICTION_CHUNK) {
            let sql = format!("INSERT INTO predictions ({PREDICTION_COLUMNS}) VALUES {}", value_rows(chunk.len(), 11));
            let mut binds = Vec::with_capacity(chunk.len() * 11);
            for r in chunk {
                binds.extend([
                    Bind::from(r.id.as_str()),
                    Bind::from(r.deployment.as_str()),
                    Bind::from(r.model.as_str()),
                    Bind::I64(r.version),
                    Bind::from(r.route.as_str()),
                    Bind::OptText(r.parent_id.clone()),
                    Bind::I64(r.time),
                    Bind::I64(r.latency_us),
                    Bind::from(r.inputs.as_str()),
                    Bind::from(r.outputs.as_str()),
                    Bind::OptText(r.context.clone()),
                ]);
            }
            self.backend.query(sql, binds).execute(&mut *tx).await.map_err(db_error)?;
        }
        tx.commit().await
    }

    async fn record_feedback(&self, feedback: &[Feedback]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        for f in feedback {
            let exists = sqlx::query("SELECT 1 FROM predictions WHERE id = $1").bind(&f.prediction_id).fetch_optional(&mut *tx).await.map_err(db_error)?;
            if exists.is_none() {
                return Err(Error::not_found(format!("prediction '{}' does not exist (or is not logged yet)", f.prediction_id)));
            }
            sqlx::query("INSERT INTO prediction_feedback (prediction_id, label, time) VALUES ($1, $2, $3) ON CONFLICT (prediction_id) DO UPDATE SET label = excluded.label, time = excluded.time")
                .bind(&f.prediction_id)
                .bind(f.label.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await
    }

    async fn get_prediction(&self, id: &str) -> Result<(PredictionRecord, Option<serde_json::Value>)> {
        let sql = format!("SELECT {PREDICTION_COLUMNS} FROM predictions WHERE id = $1");
        let rows = self.rows(sql, vec![Bind::from(id)]).await?;
        let record = rows.first().map(prediction).transpose()?.ok_or_else(|| Error::not_found(format!("prediction '{id}' does not exist (or is not logged yet)")))?;
        let label = self.rows("SELECT label FROM prediction_feedback WHERE prediction_id = $1".into(), vec![Bind::from(id)]).await?;
        let label = label.first().map(|r| serde_json::from_str(&r.get::<String, _>(0))).transpose().map_err(|e| Error::internal(e.to_string()))?;
        Ok((record, label))
    }

    async fn predictions(&self, deployment: &str, since: i64, limit: i64) -> Result<Vec<PredictionRecord>> {
        let sql = format!("SELECT {PREDICTION_COLUMNS} FROM predictions WHERE deployment = $1 AND time >= $2 ORDER BY time, id LIMIT $3");
        let rows = self.rows(sql, vec![Bind::from(deployment), Bind::I64(since), Bind::I64(limit)]).await?;
        rows.iter().map(prediction).collect()
    }
}
