//! Deployments, the prediction log and feedback in SQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use steward_core::audit::Audit;
use steward_core::serving::{Alert, Deployment, DeploymentSpec, Feedback, MonitorMetric, MonitorState, PredictionRecord, RouteRole, WindowKind, alert_changes};
use steward_core::{Error, Result};

use super::{Bind, SqlStore, WriteTx, append, db_error, dyn_query, is_unique_violation, now_ms, value_rows};
use crate::{Cursor, MonitorStore, ServingStore, Window};

/// Rows per multi-row INSERT: 12 binds each stays far below both backends' bind limits.
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

/// Replaces a stored deployment's spec inside the caller's transaction.
async fn replace_spec(tx: &mut WriteTx, spec: &DeploymentSpec) -> Result<()> {
    let json = serde_json::to_string(spec).map_err(|e| Error::internal(e.to_string()))?;
    let n = sqlx::query("UPDATE deployments SET spec = $1, last_updated_time = $2 WHERE name = $3")
        .bind(&json)
        .bind(now_ms())
        .bind(&spec.name)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?
        .rows_affected();
    if n == 0 {
        return Err(deployment_not_found(&spec.name));
    }
    Ok(())
}

/// A registered model's rename, followed by every deployment that refers to it (inside the
/// rename's transaction, so no deployment ever names the model by its old name).
pub(super) async fn rename_in_deployments(tx: &mut WriteTx, from: &str, to: &str) -> Result<()> {
    let rows = sqlx::query("SELECT spec, creation_time, last_updated_time, created_by FROM deployments").fetch_all(&mut **tx).await.map_err(db_error)?;
    for row in rows {
        let mut spec = deployment(&row)?.spec;
        if spec.rename_model(from, to) {
            replace_spec(tx, &spec).await?;
        }
    }
    Ok(())
}

#[async_trait]
impl ServingStore for SqlStore {
    async fn put_deployment(&self, audit: &Audit, spec: &DeploymentSpec, create: bool) -> Result<Deployment> {
        spec.validate()?;
        let mut tx = self.begin().await?;
        if create {
            let json = serde_json::to_string(spec).map_err(|e| Error::internal(e.to_string()))?;
            let now = now_ms();
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
            replace_spec(&mut tx, spec).await?;
            append(&mut tx, audit, "deployment.update", "deployment", &spec.name).await?;
        }
        tx.commit().await?;
        self.get_deployment(&spec.name).await
    }

    async fn promote(&self, audit: &Audit, spec: &DeploymentSpec, model: &str, alias: &str, version: i64) -> Result<Deployment> {
        spec.validate()?;
        let mut tx = self.begin().await?;
        super::registry::set_alias_in(&mut tx, audit, model, alias, version).await?;
        replace_spec(&mut tx, spec).await?;
        append(&mut tx, audit, "deployment.promote", "deployment", &spec.name).await?;
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

    async fn log_predictions(&self, records: Vec<PredictionRecord>) -> Result<()> {
        use sqlx::Connection as _;
        if records.is_empty() {
            return Ok(());
        }
        let bytes: usize = records.iter().map(|r| r.inputs.len() + r.outputs.len()).sum();
        if bytes >= LARGE_WRITE
            && let super::writer::Writer::Pool(pool) = &self.write
        {
            // A connection keeps its buffers at their largest: one that carried a large batch
            // is closed afterwards rather than kept in the pool holding tens of MB.
            let mut conn = pool.acquire().await.map_err(db_error)?.detach();
            let result = async {
                let mut tx = conn.begin().await.map_err(db_error)?;
                self.insert_predictions(&mut tx, records).await?;
                tx.commit().await.map_err(db_error)
            }
            .await;
            let _ = conn.close().await;
            return result;
        }
        let mut tx = self.begin().await?;
        self.insert_predictions(&mut tx, records).await?;
        tx.commit().await
    }

    async fn record_feedback(&self, feedback: &[Feedback]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.begin().await?;
        let mut seq = next_seqs(&mut tx, "feedback", feedback.len()).await?;
        for f in feedback {
            seq += 1;
            let exists = sqlx::query("SELECT 1 FROM predictions WHERE id = $1").bind(&f.prediction_id).fetch_optional(&mut *tx).await.map_err(db_error)?;
            if exists.is_none() {
                return Err(Error::not_found(format!("prediction '{}' does not exist (or is not logged yet)", f.prediction_id)));
            }
            sqlx::query(
                "INSERT INTO prediction_feedback (prediction_id, label, time, seq) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (prediction_id) DO UPDATE SET label = excluded.label, time = excluded.time, seq = excluded.seq",
            )
            .bind(&f.prediction_id)
            .bind(f.label.to_string())
            .bind(now)
            .bind(seq)
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

    async fn predictions_of_route(&self, deployment: &str, route: RouteRole, since: i64, limit: i64) -> Result<Vec<PredictionRecord>> {
        let sql = format!("SELECT {PREDICTION_COLUMNS} FROM predictions WHERE deployment = $1 AND route = $2 AND time >= $3 ORDER BY time, id LIMIT $4");
        let rows = self.rows(sql, vec![Bind::from(deployment), Bind::from(route.as_str()), Bind::I64(since), Bind::I64(limit)]).await?;
        rows.iter().map(prediction).collect()
    }
}

const ALERT_COLUMNS: &str = "id, deployment, time, kind, value, threshold, message, delivered, attempts, status, last_seen, notified_at, resolved_at";

fn alert(row: &AnyRow) -> Alert {
    Alert {
        id: row.get(0),
        deployment: row.get(1),
        time: row.get(2),
        kind: row.get(3),
        value: row.get(4),
        threshold: row.get(5),
        message: row.get(6),
        delivered: row.get::<i64, _>(7) != 0,
        attempts: row.get(8),
        status: row.get(9),
        last_seen: row.get(10),
        notified_at: row.get(11),
        resolved_at: row.get(12),
    }
}

#[async_trait]
impl MonitorStore for SqlStore {
    async fn predictions_after(&self, deployment: &str, seq: i64, since: i64, limit: i64) -> Result<Vec<(i64, PredictionRecord)>> {
        let sql = format!("SELECT {PREDICTION_COLUMNS}, seq FROM predictions WHERE deployment = $1 AND route <> 'shadow' AND seq > $2 AND time >= $3 ORDER BY seq LIMIT $4");
        let rows = self.rows(sql, vec![Bind::from(deployment), Bind::I64(seq), Bind::I64(since), Bind::I64(limit)]).await?;
        rows.iter().map(|r| Ok((r.get(11), prediction(r)?))).collect()
    }

    async fn predictions_between(&self, deployment: &str, start: i64, end: Option<i64>, limit: i64) -> Result<Vec<PredictionRecord>> {
        let sql = format!("SELECT {PREDICTION_COLUMNS} FROM predictions WHERE deployment = $1 AND route <> 'shadow' AND time >= $2 AND time < $3 ORDER BY time, id LIMIT $4");
        let rows = self.rows(sql, vec![Bind::from(deployment), Bind::I64(start), Bind::I64(end.unwrap_or(i64::MAX)), Bind::I64(limit)]).await?;
        rows.iter().map(prediction).collect()
    }

    async fn labels_after(&self, deployment: &str, seq: i64, limit: i64) -> Result<Vec<(PredictionRecord, serde_json::Value, i64, i64)>> {
        let columns: Vec<String> = PREDICTION_COLUMNS.split(", ").map(|c| format!("p.{c}")).collect();
        let sql = format!(
            "SELECT {}, f.label, f.time, f.seq FROM prediction_feedback f JOIN predictions p ON p.id = f.prediction_id \
             WHERE p.deployment = $1 AND p.route <> 'shadow' AND f.seq > $2 ORDER BY f.seq LIMIT $3",
            columns.join(", ")
        );
        let rows = self.rows(sql, vec![Bind::from(deployment), Bind::I64(seq), Bind::I64(limit)]).await?;
        let n = columns.len();
        rows.iter()
            .map(|r| {
                let label = serde_json::from_str(&r.get::<String, _>(n)).map_err(|e| Error::internal(format!("stored label: {e}")))?;
                Ok((prediction(r)?, label, r.get(n + 1), r.get(n + 2)))
            })
            .collect()
    }

    async fn labelled_of_route(&self, deployment: &str, route: RouteRole, since: i64, limit: i64) -> Result<Vec<(PredictionRecord, serde_json::Value, i64)>> {
        let columns: Vec<String> = PREDICTION_COLUMNS.split(", ").map(|c| format!("p.{c}")).collect();
        let sql = format!(
            "SELECT {}, f.label, f.time FROM prediction_feedback f JOIN predictions p ON p.id = f.prediction_id \
             WHERE p.deployment = $1 AND p.route = $2 AND p.time >= $3 AND f.time >= $3 ORDER BY f.time, f.prediction_id LIMIT $4",
            columns.join(", ")
        );
        let rows = self.rows(sql, vec![Bind::from(deployment), Bind::from(route.as_str()), Bind::I64(since), Bind::I64(limit)]).await?;
        let n = columns.len();
        rows.iter()
            .map(|r| {
                let label = serde_json::from_str(&r.get::<String, _>(n)).map_err(|e| Error::internal(format!("stored label: {e}")))?;
                Ok((prediction(r)?, label, r.get(n + 1)))
            })
            .collect()
    }

    async fn put_monitor(&self, audit: &Audit, deployment: &str, spec: &str, start_time: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM deployments WHERE name = $1").bind(deployment).fetch_optional(&mut *tx).await.map_err(db_error)?;
        if exists.is_none() {
            return Err(deployment_not_found(deployment));
        }
        sqlx::query(
            "INSERT INTO monitors (deployment, spec, cursor_time, cursor_id, label_cursor_time, label_cursor_id, creation_time, created_by, cursor_seq, label_cursor_seq) \
             VALUES ($1, $2, $3, '', $3, '', $4, $5, (SELECT last FROM log_sequences WHERE name = 'predictions'), (SELECT last FROM log_sequences WHERE name = 'feedback')) \
             ON CONFLICT (deployment) DO UPDATE SET spec = excluded.spec, cursor_time = excluded.cursor_time, cursor_seq = excluded.cursor_seq, \
             label_cursor_seq = excluded.label_cursor_seq",
        )
        .bind(deployment)
        .bind(spec)
        .bind(start_time)
        .bind(now_ms())
        .bind(&audit.actor)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        append(&mut tx, audit, "monitor.put", "deployment", deployment).await?;
        tx.commit().await
    }

    async fn monitors(&self) -> Result<Vec<MonitorState>> {
        let rows = self.rows("SELECT deployment, spec, cursor_seq, cursor_time, label_cursor_seq FROM monitors ORDER BY deployment".into(), vec![]).await?;
        Ok(rows.iter().map(|r| MonitorState { deployment: r.get(0), spec: r.get(1), cursor_seq: r.get(2), time_cursor: r.get(3), label_cursor_seq: r.get(4) }).collect())
    }

    async fn delete_monitor(&self, audit: &Audit, deployment: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM monitors WHERE deployment = $1").bind(deployment).execute(&mut *tx).await.map_err(db_error)?.rows_affected();
        if n == 0 {
            return Err(Error::not_found(format!("deployment '{deployment}' has no monitor")));
        }
        append(&mut tx, audit, "monitor.delete", "deployment", deployment).await?;
        tx.commit().await
    }

    async fn record_window(&self, window: Window<'_>, metrics: &[MonitorMetric], raised: &[Alert]) -> Result<Vec<Alert>> {
        let Window { deployment, kind, cursor, end: window_end, judged, repeat_ms } = window;
        let mut tx = self.begin().await?;
        for m in metrics {
            sqlx::query(
                "INSERT INTO monitor_metrics (deployment, window_start, window_end, metric, feature, value) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (deployment, window_end, metric, feature) DO UPDATE SET value = excluded.value",
            )
            .bind(&m.deployment)
            .bind(m.window_start)
            .bind(m.window_end)
            .bind(&m.metric)
            .bind(&m.feature)
            .bind(m.value)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        // The deployment's open alerts move with this window (steward_core::serving::alert_changes).
        let open = dyn_query(format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE deployment = $1 AND status = 'firing'")).bind(deployment).fetch_all(&mut *tx).await.map_err(db_error)?;
        let open: Vec<Alert> = open.iter().map(alert).collect();
        let changes = alert_changes(&open, raised.to_vec(), judged, window_end, repeat_ms);
        let mut notices = Vec::new();
        for a in &changes.opened {
            sqlx::query(
                "INSERT INTO alerts (id, deployment, time, kind, value, threshold, message, delivered, attempts, status, last_seen, notified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, 'firing', $8, $9)",
            )
            .bind(&a.id)
            .bind(&a.deployment)
            .bind(a.time)
            .bind(&a.kind)
            .bind(a.value)
            .bind(a.threshold)
            .bind(&a.message)
            .bind(a.last_seen)
            .bind(a.notified_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            notices.push(a.clone());
        }
        for (a, notify) in &changes.held {
            sqlx::query("UPDATE alerts SET value = $1, threshold = $2, message = $3, last_seen = $4, notified_at = $5 WHERE id = $6")
                .bind(a.value)
                .bind(a.threshold)
                .bind(&a.message)
                .bind(a.last_seen)
                .bind(a.notified_at)
                .bind(&a.id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            if *notify {
                notices.push(a.clone());
            }
        }
        for a in &changes.resolved {
            sqlx::query("UPDATE alerts SET status = 'resolved', resolved_at = $1 WHERE id = $2").bind(a.resolved_at).bind(&a.id).execute(&mut *tx).await.map_err(db_error)?;
            notices.push(a.clone());
        }
        let (update, position) = match (kind, cursor) {
            (WindowKind::Predictions, Cursor::Seq(seq)) => ("UPDATE monitors SET cursor_seq = $1 WHERE deployment = $2", seq),
            (WindowKind::Predictions, Cursor::Time(next)) => ("UPDATE monitors SET cursor_time = $1 WHERE deployment = $2", next),
            (WindowKind::Labels, Cursor::Seq(seq)) => ("UPDATE monitors SET label_cursor_seq = $1 WHERE deployment = $2", seq),
            (WindowKind::Labels, Cursor::Time(_)) => return Err(Error::internal("label windows move by commit order, not by time")),
        };
        sqlx::query(update).bind(position).bind(deployment).execute(&mut *tx).await.map_err(db_error)?;
        tx.commit().await?;
        Ok(notices)
    }

    async fn monitor_metrics_latest(&self, deployment: &str, windows: usize) -> Result<Vec<MonitorMetric>> {
        // Each series (metric, feature) numbered from its newest window; label windows and
        // prediction windows end at different times, so the latest windows are counted per series.
        let sql = "SELECT deployment, window_start, window_end, metric, feature, value FROM (\
                   SELECT deployment, window_start, window_end, metric, feature, value, \
                   ROW_NUMBER() OVER (PARTITION BY metric, feature ORDER BY window_end DESC) AS newest \
                   FROM monitor_metrics WHERE deployment = $1) latest \
                   WHERE newest <= $2 ORDER BY window_end, metric, feature";
        let windows = i64::try_from(windows).unwrap_or(i64::MAX);
        let rows = self.rows(sql.to_owned(), vec![Bind::from(deployment), Bind::I64(windows)]).await?;
        Ok(rows
            .iter()
            .map(|r| MonitorMetric { deployment: r.get(0), window_start: r.get(1), window_end: r.get(2), metric: r.get(3), feature: r.get(4), value: r.get(5) })
            .collect())
    }

    async fn monitor_metrics_page(&self, deployment: &str, metric: Option<&str>, feature: Option<&str>, after: Option<(i64, &str, &str)>, limit: i64) -> Result<Vec<MonitorMetric>> {
        let mut sql = "SELECT deployment, window_start, window_end, metric, feature, value FROM monitor_metrics WHERE deployment = $1".to_owned();
        let mut binds = vec![Bind::from(deployment)];
        if let Some(m) = metric {
            binds.push(Bind::from(m));
            sql.push_str(&format!(" AND metric = ${}", binds.len()));
        }
        if let Some(f) = feature {
            binds.push(Bind::from(f));
            sql.push_str(&format!(" AND feature = ${}", binds.len()));
        }
        // Keyset paging on the primary key's order: rows after (window end, metric, feature).
        if let Some((end, m, f)) = after {
            binds.extend([Bind::I64(end), Bind::from(m), Bind::from(f)]);
            let (e, m, f) = (binds.len() - 2, binds.len() - 1, binds.len());
            sql.push_str(&format!(" AND window_end >= ${e} AND (window_end > ${e} OR metric > ${m} OR (metric = ${m} AND feature > ${f}))"));
        }
        binds.push(Bind::I64(limit.max(1)));
        sql.push_str(&format!(" ORDER BY window_end, metric, feature LIMIT ${}", binds.len()));
        let rows = self.rows(sql, binds).await?;
        Ok(rows
            .iter()
            .map(|r| MonitorMetric { deployment: r.get(0), window_start: r.get(1), window_end: r.get(2), metric: r.get(3), feature: r.get(4), value: r.get(5) })
            .collect())
    }

    async fn alerts(&self, deployment: Option<&str>, limit: i64) -> Result<Vec<Alert>> {
        let cols = ALERT_COLUMNS;
        let rows = match deployment {
            Some(d) => self.rows(format!("SELECT {cols} FROM alerts WHERE deployment = $1 ORDER BY time DESC, id LIMIT $2"), vec![Bind::from(d), Bind::I64(limit)]).await?,
            None => self.rows(format!("SELECT {cols} FROM alerts ORDER BY time DESC, id LIMIT $1"), vec![Bind::I64(limit)]).await?,
        };
        Ok(rows.iter().map(alert).collect())
    }

    async fn mark_alert(&self, id: &str, delivered: bool, attempts: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE alerts SET delivered = $1, attempts = $2 WHERE id = $3").bind(i64::from(delivered)).bind(attempts).bind(id).execute(&mut *tx).await.map_err(db_error)?;
        tx.commit().await
    }
}

/// Reserves `n` commit sequence numbers of a log (`predictions` or `feedback`) inside the
/// writing transaction; returns the one before the first. Taken first in the transaction, the
/// counter row's lock holds every other writer of that log until this one commits, so a record
/// with a lower number is never committed after one with a higher (monitors' cursors rely on it).
async fn next_seqs(conn: &mut sqlx::AnyConnection, log: &str, n: usize) -> Result<i64> {
    let row = sqlx::query("UPDATE log_sequences SET last = last + $1 WHERE name = $2 RETURNING last").bind(n as i64).bind(log).fetch_one(&mut *conn).await.map_err(db_error)?;
    Ok(row.get::<i64, _>(0) - n as i64)
}

/// A prediction batch from this many bytes of inputs and outputs is written on a connection of
/// its own, closed afterwards.
const LARGE_WRITE: usize = 8 << 20;

impl SqlStore {
    /// Inserts predictions in chunks, each record moved into its statement.
    async fn insert_predictions(&self, conn: &mut sqlx::AnyConnection, records: Vec<PredictionRecord>) -> Result<()> {
        let mut seq = next_seqs(conn, "predictions", records.len()).await?;
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let chunk: Vec<PredictionRecord> = records.by_ref().take(PREDICTION_CHUNK).collect();
            let sql = format!("INSERT INTO predictions ({PREDICTION_COLUMNS}, seq) VALUES {}", value_rows(chunk.len(), 12));
            let mut binds = Vec::with_capacity(chunk.len() * 12);
            for r in chunk {
                seq += 1;
                binds.extend([
                    Bind::Text(r.id),
                    Bind::Text(r.deployment),
                    Bind::Text(r.model),
                    Bind::I64(r.version),
                    Bind::from(r.route.as_str()),
                    Bind::OptText(r.parent_id),
                    Bind::I64(r.time),
                    Bind::I64(r.latency_us),
                    Bind::Text(r.inputs),
                    Bind::Text(r.outputs),
                    Bind::OptText(r.context),
                    Bind::I64(seq),
                ]);
            }
            // Not kept prepared: a cached statement would hold its last (large) values.
            self.backend.query(sql, binds).persistent(false).execute(&mut *conn).await.map_err(db_error)?;
        }
        Ok(())
    }
}
