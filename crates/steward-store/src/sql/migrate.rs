//! Versioned schema migrations, one ordered list per backend, each applied once in its own
//! transaction and recorded in `steward_schema_migrations`.

use sqlx::{AnyPool, Row};
use steward_core::{Error, Result};

use super::{db_error, Backend};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const SQLITE: &[Migration] = &[
    Migration { version: 1, name: "tracking", sql: include_str!("../../migrations/sqlite/0001_tracking.sql") },
    Migration { version: 2, name: "audit", sql: include_str!("../../migrations/sqlite/0002_audit.sql") },
    Migration { version: 3, name: "access", sql: include_str!("../../migrations/sqlite/0003_access.sql") },
    Migration { version: 4, name: "registry", sql: include_str!("../../migrations/sqlite/0004_registry.sql") },
    Migration { version: 5, name: "metrics_by_step", sql: include_str!("../../migrations/sqlite/0005_metrics_by_step.sql") },
    Migration { version: 6, name: "search_indexes", sql: include_str!("../../migrations/sqlite/0006_search_indexes.sql") },
    Migration { version: 7, name: "serving", sql: include_str!("../../migrations/sqlite/0007_serving.sql") },
    Migration { version: 8, name: "monitoring", sql: include_str!("../../migrations/sqlite/0008_monitoring.sql") },
    Migration { version: 9, name: "label_windows", sql: include_str!("../../migrations/sqlite/0009_label_windows.sql") },
    Migration { version: 10, name: "datasets", sql: include_str!("../../migrations/sqlite/0010_datasets.sql") },
    Migration { version: 11, name: "agent", sql: include_str!("../../migrations/sqlite/0011_agent.sql") },
    Migration { version: 12, name: "incident_analyses", sql: include_str!("../../migrations/sqlite/0012_incident_analyses.sql") },
    Migration { version: 13, name: "search_layout", sql: include_str!("../../migrations/sqlite/0013_search_layout.sql") },
    Migration { version: 14, name: "governance", sql: include_str!("../../migrations/sqlite/0014_governance.sql") },
    Migration { version: 15, name: "alert_lifecycle", sql: include_str!("../../migrations/sqlite/0015_alert_lifecycle.sql") },
    Migration { version: 16, name: "ledger_by_entity", sql: include_str!("../../migrations/sqlite/0016_ledger_by_entity.sql") },
    Migration { version: 17, name: "commit_order", sql: include_str!("../../migrations/sqlite/0017_commit_order.sql") },
];

const POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "tracking", sql: include_str!("../../migrations/postgres/0001_tracking.sql") },
    Migration { version: 2, name: "audit", sql: include_str!("../../migrations/postgres/0002_audit.sql") },
    Migration { version: 3, name: "access", sql: include_str!("../../migrations/postgres/0003_access.sql") },
    Migration { version: 4, name: "registry", sql: include_str!("../../migrations/postgres/0004_registry.sql") },
    Migration { version: 5, name: "metrics_by_step", sql: include_str!("../../migrations/postgres/0005_metrics_by_step.sql") },
    Migration { version: 6, name: "search_indexes", sql: include_str!("../../migrations/postgres/0006_search_indexes.sql") },
    Migration { version: 7, name: "serving", sql: include_str!("../../migrations/postgres/0007_serving.sql") },
    Migration { version: 8, name: "monitoring", sql: include_str!("../../migrations/postgres/0008_monitoring.sql") },
    Migration { version: 9, name: "label_windows", sql: include_str!("../../migrations/postgres/0009_label_windows.sql") },
    Migration { version: 10, name: "datasets", sql: include_str!("../../migrations/postgres/0010_datasets.sql") },
    Migration { version: 11, name: "agent", sql: include_str!("../../migrations/postgres/0011_agent.sql") },
    Migration { version: 12, name: "incident_analyses", sql: include_str!("../../migrations/postgres/0012_incident_analyses.sql") },
    Migration { version: 13, name: "search_layout", sql: include_str!("../../migrations/postgres/0013_search_layout.sql") },
    Migration { version: 14, name: "governance", sql: include_str!("../../migrations/postgres/0014_governance.sql") },
    Migration { version: 15, name: "alert_lifecycle", sql: include_str!("../../migrations/postgres/0015_alert_lifecycle.sql") },
    Migration { version: 16, name: "ledger_by_entity", sql: include_str!("../../migrations/postgres/0016_ledger_by_entity.sql") },
    Migration { version: 17, name: "commit_order", sql: include_str!("../../migrations/postgres/0017_commit_order.sql") },
];

pub(super) async fn run(pool: &AnyPool, backend: Backend) -> Result<()> {
    let migrations = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS steward_schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await
    .map_err(db_error)?;
    for m in migrations {
        let mut tx = pool.begin().await.map_err(db_error)?;
        if backend == Backend::Postgres {
            // A migration may rebuild large tables: no statement timeout inside it.
            sqlx::raw_sql("SET LOCAL statement_timeout = 0").execute(&mut *tx).await.map_err(db_error)?;
            // Serialise concurrent starters on one database.
            sqlx::raw_sql("LOCK TABLE steward_schema_migrations IN EXCLUSIVE MODE").execute(&mut *tx).await.map_err(db_error)?;
        }
        let done = sqlx::query("SELECT version FROM steward_schema_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(|e| {
            Error::internal(format!("migration {} ({}) failed: {e}", m.version, m.name))
        })?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        sqlx::query("INSERT INTO steward_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
    }
    let newest: Option<i64> = sqlx::query("SELECT MAX(version) FROM steward_schema_migrations")
        .fetch_one(pool)
        .await
        .map_err(db_error)?
        .get(0);
    let known = migrations.last().map(|m| m.version).unwrap_or(0);
    if newest.unwrap_or(0) > known {
        return Err(Error::internal(format!(
            "the database schema is at version {} but this steward knows only up to {known}; upgrade steward",
            newest.unwrap_or(0)
        )));
    }
    Ok(())
}
