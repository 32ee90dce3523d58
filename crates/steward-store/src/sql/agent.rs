//! The agent's incidents and actions in SQL; every change is a ledger entry in the same
//! transaction.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use steward_core::audit::Audit;
use steward_core::serving::{AgentAction, Incident, IncidentAnalysis};
use steward_core::{Error, Result};

use super::{Bind, SqlStore, append, db_error, now_ms};
use crate::AgentStore;

const ACTION_COLUMNS: &str = "id, incident_id, deployment, kind, status, reason, requested, decided_by, decision_reason, updated, outcome";

const INCIDENT_COLUMNS: &str = "id, deployment, trigger_name, kind, evidence, status, opened";
const ANALYSES: &str = "SELECT a.incident_id, a.source, a.body, a.created FROM incident_analyses a";

/// Incidents read with `INCIDENT_COLUMNS`, each with its analyses (rows of `ANALYSES`).
fn incidents(rows: &[AnyRow], analyses: &[AnyRow]) -> Result<Vec<Incident>> {
    let mut incidents = rows
        .iter()
        .map(|r| {
            Ok(Incident {
                id: r.get(0),
                deployment: r.get(1),
                trigger: r.get(2),
                kind: r.get(3),
                evidence: serde_json::from_str(&r.get::<String, _>(4)).map_err(|e| Error::internal(format!("stored evidence: {e}")))?,
                status: r.get(5),
                opened: r.get(6),
                analyses: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    for r in analyses {
        let id: String = r.get(0);
        if let Some(i) = incidents.iter_mut().find(|i| i.id == id) {
            i.analyses.push(IncidentAnalysis { source: r.get(1), text: r.get(2), created: r.get(3) });
        }
    }
    Ok(incidents)
}

fn action(r: &AnyRow) -> AgentAction {
    AgentAction {
        id: r.get(0),
        incident_id: r.get(1),
        deployment: r.get(2),
        kind: r.get(3),
        status: r.get(4),
        reason: r.get(5),
        requested: r.get(6),
        decided_by: r.get(7),
        decision_reason: r.get(8),
        updated: r.get(9),
        outcome: r.get(10),
    }
}

#[async_trait]
impl AgentStore for SqlStore {
    async fn open_incident(&self, audit: &Audit, i: &Incident) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO incidents (id, deployment, trigger_name, kind, evidence, status, opened) VALUES ($1, $2, $3, $4, $5, 'open', $6)")
            .bind(&i.id)
            .bind(&i.deployment)
            .bind(&i.trigger)
            .bind(&i.kind)
            .bind(i.evidence.to_string())
            .bind(i.opened)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        append(&mut tx, audit, "incident.open", "incident", &i.id).await?;
        tx.commit().await
    }

    async fn incidents(&self, deployment: Option<&str>) -> Result<Vec<Incident>> {
        let (rows, analyses) = match deployment {
            Some(d) => (
                self.rows(format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE deployment = $1 ORDER BY opened, id"), vec![Bind::from(d)]).await?,
                self.rows(format!("{ANALYSES} JOIN incidents i ON i.id = a.incident_id WHERE i.deployment = $1 ORDER BY a.created, a.source"), vec![Bind::from(d)]).await?,
            ),
            None => (
                self.rows(format!("SELECT {INCIDENT_COLUMNS} FROM incidents ORDER BY opened, id"), vec![]).await?,
                self.rows(format!("{ANALYSES} ORDER BY a.created, a.source"), vec![]).await?,
            ),
        };
        incidents(&rows, &analyses)
    }

    async fn open_incidents(&self, deployment: &str) -> Result<Vec<Incident>> {
        let rows = self.rows(format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE deployment = $1 AND status = 'open' ORDER BY opened, id"), vec![Bind::from(deployment)]).await?;
        let analyses = self
            .rows(format!("{ANALYSES} JOIN incidents i ON i.id = a.incident_id WHERE i.deployment = $1 AND i.status = 'open' ORDER BY a.created, a.source"), vec![Bind::from(deployment)])
            .await?;
        incidents(&rows, &analyses)
    }

    async fn add_analysis(&self, audit: &Audit, incident_id: &str, source: &str, text: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let known = sqlx::query("SELECT 1 FROM incidents WHERE id = $1").bind(incident_id).fetch_optional(&mut *tx).await.map_err(db_error)?;
        if known.is_none() {
            return Err(Error::not_found(format!("incident '{incident_id}' does not exist")));
        }
        let inserted = sqlx::query("INSERT INTO incident_analyses (incident_id, source, body, created) VALUES ($1, $2, $3, $4) ON CONFLICT (incident_id, source) DO NOTHING")
            .bind(incident_id)
            .bind(source)
            .bind(text)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if inserted.rows_affected() == 0 {
            return Err(Error::already_exists(format!("incident '{incident_id}' already has an analysis from '{source}'")));
        }
        append(&mut tx, audit, "incident.analysis", "incident", incident_id).await?;
        tx.commit().await
    }

    async fn add_action(&self, audit: &Audit, a: &AgentAction) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO agent_actions (id, incident_id, deployment, kind, status, reason, requested, decided_by, decision_reason, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, $7)",
        )
        .bind(&a.id)
        .bind(a.incident_id.clone())
        .bind(&a.deployment)
        .bind(&a.kind)
        .bind(&a.status)
        .bind(&a.reason)
        .bind(a.requested)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        append(&mut tx, audit, &format!("agent.action.{}", a.status), "agent_action", &a.id).await?;
        tx.commit().await
    }

    async fn actions(&self, status: Option<&str>) -> Result<Vec<AgentAction>> {
        let rows = match status {
            Some(s) => self.rows(format!("SELECT {ACTION_COLUMNS} FROM agent_actions WHERE status = $1 ORDER BY requested, id"), vec![Bind::from(s)]).await?,
            None => self.rows(format!("SELECT {ACTION_COLUMNS} FROM agent_actions ORDER BY requested, id"), vec![]).await?,
        };
        Ok(rows.iter().map(action).collect())
    }

    async fn decide_action(&self, audit: &Audit, id: &str, approve: bool, reason: &str) -> Result<AgentAction> {
        let mut tx = self.begin().await?;
        let status: Option<String> = sqlx::query("SELECT status FROM agent_actions WHERE id = $1").bind(id).fetch_optional(&mut *tx).await.map_err(db_error)?.map(|r| r.get(0));
        match status.as_deref() {
            None => return Err(Error::not_found(format!("action '{id}' does not exist"))),
            Some("pending") => {}
            Some(other) => return Err(Error::invalid(format!("action '{id}' is {other}, not waiting for a decision"))),
        }
        let to = if approve { "approved" } else { "rejected" };
        sqlx::query("UPDATE agent_actions SET status = $1, decided_by = $2, decision_reason = $3, updated = $4 WHERE id = $5")
            .bind(to)
            .bind(&audit.actor)
            .bind(reason)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        append(&mut tx, audit, if approve { "approval.approve" } else { "approval.reject" }, "agent_action", id).await?;
        tx.commit().await?;
        let rows = self.rows(format!("SELECT {ACTION_COLUMNS} FROM agent_actions WHERE id = $1"), vec![Bind::from(id)]).await?;
        rows.first().map(action).ok_or_else(|| Error::not_found(format!("action '{id}' does not exist")))
    }

    async fn mark_action(&self, audit: &Audit, id: &str, status: &str, note: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        // An empty note keeps the outcome recorded so far.
        let query = if note.is_empty() {
            sqlx::query("UPDATE agent_actions SET status = $1, updated = $2 WHERE id = $3").bind(status).bind(now_ms()).bind(id)
        } else {
            sqlx::query("UPDATE agent_actions SET status = $1, updated = $2, outcome = $4 WHERE id = $3").bind(status).bind(now_ms()).bind(id).bind(note)
        };
        query.execute(&mut *tx).await.map_err(db_error)?;
        append(&mut tx, audit, &format!("agent.action.{status}"), "agent_action", id).await?;
        tx.commit().await
    }
}
