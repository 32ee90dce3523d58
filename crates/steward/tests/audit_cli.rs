//! `steward audit verify` on real databases (a SQLite file and a fresh PostgreSQL database):
//! intact after a scripted workload, and each kind of direct tampering is found at the right
//! sequence number.

use std::process::Command;

use sqlx::{AnyPool, Executor, Row};
use steward_core::audit::{Audit, LedgerEntry, entry_hash};
use steward_core::entities::{Batch, Metric, NewRun, Param, Tag};

fn who(n: usize) -> Audit {
    Audit::new(format!("user{}", n % 3), None, format!("{{\"n\": {n}}}").as_bytes())
}

/// A few hundred mutations of every kind; returns how many ledger entries they made.
async fn workload(uri: &str) -> i64 {
    let store = steward_store::open_metadata(uri, "mlflow-artifacts:/").await.unwrap();
    let mut n = 0;
    for e in 0..10 {
        let exp = store.create_experiment(&who(n), &format!("exp-{e}"), None, &[]).await.unwrap();
        n += 1;
        for r in 0..8 {
            let run = store.create_run(&who(n), NewRun { experiment_id: exp.clone(), start_time: r, ..NewRun::default() }).await.unwrap();
            n += 1;
            let id = run.info.run_id;
            let batch = Batch {
                metrics: vec![Metric { key: "auc".into(), value: 0.5, timestamp: r, step: 0 }],
                params: vec![Param { key: "lr".into(), value: "0.1".into() }],
                tags: vec![Tag { key: "t".into(), value: "v".into() }],
            };
            store.log_batch(&who(n), &id, &batch).await.unwrap();
            n += 1;
            if r % 4 == 0 {
                store.delete_run(&who(n), &id).await.unwrap();
                n += 1;
            }
        }
        store.set_experiment_tag(&who(n), &exp, &Tag { key: "k".into(), value: "v".into() }).await.unwrap();
        n += 1;
    }
    n as i64 + 1 // plus the default experiment's creation
}

fn verify(uri: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["audit", "verify", "--backend-store-uri", uri])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn raw(uri: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    let url = match uri.strip_prefix("sqlite:///") {
        Some(path) => format!("sqlite://{path}"),
        None => uri.to_owned(),
    };
    AnyPool::connect(&url).await.unwrap()
}

async fn exec(pool: &AnyPool, sql: &str) {
    pool.execute(sqlx::AssertSqlSafe(sql.to_owned())).await.unwrap();
}

async fn entry(pool: &AnyPool, seq: i64) -> LedgerEntry {
    let r = sqlx::query(
        "SELECT seq, ts, actor, action, entity_kind, entity_id, reason, payload_digest, prev_hash, hash FROM audit_ledger WHERE seq = $1",
    )
    .bind(seq)
    .fetch_one(pool)
    .await
    .unwrap();
    LedgerEntry {
        seq: r.get(0),
        time: r.get(1),
        actor: r.get(2),
        action: r.get(3),
        entity_kind: r.get(4),
        entity_id: r.get(5),
        reason: r.get(6),
        payload_digest: r.get(7),
        prev_hash: r.get(8),
        hash: r.get(9),
    }
}

/// Runs the workload on a fresh database from `fresh`, applies `tamper`, and checks that
/// verify names `broken_at`.
async fn tamper_case<F, Fut>(fresh: &impl Fn() -> String, tamper: F, broken_at: i64)
where
    F: FnOnce(AnyPool, i64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let uri = fresh();
    let n = workload(&uri).await;
    let (code, out) = verify(&uri);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("intact: {n} entries")), "{out}");
    tamper(raw(&uri).await, n).await;
    let (code, out) = verify(&uri);
    assert_eq!(code, 1, "{out}");
    let want = if broken_at < 0 { n + 1 } else { broken_at };
    assert!(out.contains(&format!("broken at entry {want}:")), "expected a break at {want}: {out}");
}

async fn all_tampering_is_found(fresh: impl Fn() -> String) {
    // An edited field.
    tamper_case(&fresh, |p, _| async move { exec(&p, "UPDATE audit_ledger SET actor = 'mallory' WHERE seq = 50").await }, 50).await;
    // A deleted entry.
    tamper_case(&fresh, |p, _| async move { exec(&p, "DELETE FROM audit_ledger WHERE seq = 77").await }, 77).await;
    // Two entries swapped.
    tamper_case(
        &fresh,
        |p, _| async move {
            exec(&p, "UPDATE audit_ledger SET seq = -1 WHERE seq = 120").await;
            exec(&p, "UPDATE audit_ledger SET seq = 120 WHERE seq = 121").await;
            exec(&p, "UPDATE audit_ledger SET seq = 121 WHERE seq = -1").await;
        },
        120,
    )
    .await;
    // A forged entry inserted in the middle, its hash recomputed.
    tamper_case(
        &fresh,
        |p, _| async move {
            exec(&p, "UPDATE audit_ledger SET seq = seq + 1000000 WHERE seq >= 30").await;
            exec(&p, "UPDATE audit_ledger SET seq = seq - 1000000 + 1 WHERE seq >= 1000000").await;
            let prev = entry(&p, 29).await;
            let mut forged = entry(&p, 31).await;
            forged.seq = 30;
            forged.actor = "mallory".into();
            forged.prev_hash = prev.hash.clone();
            forged.hash = entry_hash(&forged);
            insert(&p, &forged).await;
        },
        31,
    )
    .await;
    // A well-formed entry appended after the last one: the head catches it.
    tamper_case(
        &fresh,
        |p, n| async move {
            let last = entry(&p, n).await;
            let mut forged = last.clone();
            forged.seq = n + 1;
            forged.prev_hash = last.hash.clone();
            forged.hash = entry_hash(&forged);
            insert(&p, &forged).await;
        },
        -1,
    )
    .await;
}

async fn insert(p: &AnyPool, e: &LedgerEntry) {
    sqlx::query("INSERT INTO audit_ledger (seq, ts, actor, action, entity_kind, entity_id, reason, payload_digest, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(e.seq)
        .bind(e.time)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.entity_kind)
        .bind(&e.entity_id)
        .bind(e.reason.clone())
        .bind(&e.payload_digest)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(p)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_tampering_on_sqlite() {
    all_tampering_is_found(|| {
        let dir = std::env::temp_dir().join(format!("steward-audit-{}", uuid::Uuid::new_v4().simple()));
        format!("sqlite:///{}/steward.db", dir.display())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_tampering_on_postgres() {
    let base = std::env::var("STEWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".into());
    let names: Vec<String> = (0..5).map(|_| format!("steward_test_{}", uuid::Uuid::new_v4().simple())).collect();
    let admin = raw(&format!("{base}/postgres")).await;
    for n in &names {
        exec(&admin, &format!("CREATE DATABASE {n}")).await;
    }
    let next = std::sync::Mutex::new(names.into_iter());
    all_tampering_is_found(|| format!("{base}/{}", next.lock().unwrap().next().unwrap())).await;
}
