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

/// A fresh SQLite file's URI each call.
fn fresh_sqlite() -> String {
    let dir = std::env::temp_dir().join(format!("steward-audit-{}", uuid::Uuid::new_v4().simple()));
    format!("sqlite:///{}/steward.db", dir.display())
}

/// `n` fresh PostgreSQL databases, created now, handed out one per call.
async fn fresh_postgres(n: usize) -> impl Fn() -> String {
    let base = std::env::var("STEWARD_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".into());
    let names: Vec<String> = (0..n).map(|_| format!("steward_test_{}", uuid::Uuid::new_v4().simple())).collect();
    let admin = raw(&format!("{base}/postgres")).await;
    for n in &names {
        exec(&admin, &format!("CREATE DATABASE {n}")).await;
    }
    let next = std::sync::Mutex::new(names.into_iter());
    move || format!("{base}/{}", next.lock().unwrap().next().expect("enough databases"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_tampering_on_sqlite() {
    all_tampering_is_found(fresh_sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_tampering_on_postgres() {
    all_tampering_is_found(fresh_postgres(5).await).await;
}

/// A server run on the database and stopped: it signs the ledger's head at shutdown, into
/// `dir/ledger-checkpoints` with the key `dir/ledger.key`.
fn serve_and_stop(uri: &str, dir: &std::path::Path) {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args(["server", "--port", "0", "--backend-store-uri", uri])
        .arg("--artifacts-destination")
        .arg(dir.join("artifacts"))
        .args(anchor_flags(dir))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("steward listening on"), "{first}");
    // SIGTERM: a graceful shutdown, which signs the head. (Its output is read to the end, so
    // the pipe stays open while it prints.)
    assert!(Command::new("kill").arg(child.id().to_string()).status().unwrap().success());
    std::io::copy(&mut out, &mut std::io::sink()).unwrap();
    assert!(child.wait().unwrap().success());
}

fn anchor_flags(dir: &std::path::Path) -> Vec<String> {
    vec!["--ledger-key".into(), dir.join("ledger.key").display().to_string(), "--ledger-checkpoints".into(), dir.join("ledger-checkpoints").display().to_string()]
}

fn verify_anchored(uri: &str, dir: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steward")).args(["audit", "verify", "--backend-store-uri", uri]).args(anchor_flags(dir)).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The checkpoint the server signed: (seq, hash, signing time as printed).
fn checkpoint(dir: &std::path::Path) -> (i64, String, String) {
    let files: Vec<_> = std::fs::read_dir(dir.join("ledger-checkpoints")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    (c["seq"].as_i64().unwrap(), c["hash"].as_str().unwrap().to_owned(), steward_core::schedule::iso8601(c["time"].as_i64().unwrap()))
}

/// Cutting the ledger's end — with the head record rewound to match, wiped entirely, or the
/// head record edited or deleted — is each named exactly.
async fn cuts_at_the_end_are_found(fresh: impl Fn() -> String) {
    type Expect = fn(i64, &str, &str, &str) -> String;
    let cases: [(&str, Expect); 4] = [
        ("cut", |n, hash, when, _| format!("audit ledger broken at entry {}: the ledger ends at entry {}, but the checkpoint signed at {when} attests entry {n} with hash {hash}: 5 entries were cut from its end", n - 4, n - 5)),
        ("wipe", |n, hash, when, _| format!("audit ledger broken at entry 1: the ledger is empty, but the checkpoint signed at {when} attests {n} entries ending in hash {hash}: the ledger was wiped")),
        ("edit head", |n, hash, _, _| format!("audit ledger broken at entry {n}: the ledger head records hash {} for entry {n}, whose hash is {hash}: the head was edited", "f".repeat(64))),
        ("delete head", |_, _, _, _| "audit ledger broken at entry 0: the ledger's head record (table audit_head, row 1) is missing: it was deleted, so the ledger's end cannot be checked".into()),
    ];
    for (case, expect) in cases {
        let dir = std::env::temp_dir().join(format!("steward-anchor-{}", uuid::Uuid::new_v4().simple()));
        let uri = fresh();
        let n = workload(&uri).await;
        serve_and_stop(&uri, &dir);
        let (seq, hash, when) = checkpoint(&dir);
        assert_eq!(seq, n, "the shutdown checkpoint signs the head");
        let (code, out) = verify_anchored(&uri, &dir);
        assert_eq!((code, out.trim()), (0, format!("audit ledger intact: {n} entries (anchored through entry {n} by 1 signed checkpoints at {})", dir.join("ledger-checkpoints").display()).as_str()));
        let p = raw(&uri).await;
        match case {
            "cut" => {
                exec(&p, &format!("DELETE FROM audit_ledger WHERE seq > {}", n - 5)).await;
                let last = entry(&p, n - 5).await;
                exec(&p, &format!("UPDATE audit_head SET seq = {}, hash = '{}' WHERE id = 1", n - 5, last.hash)).await;
            }
            "wipe" => {
                exec(&p, "DELETE FROM audit_ledger").await;
                exec(&p, &format!("UPDATE audit_head SET seq = 0, hash = '{}' WHERE id = 1", steward_core::audit::GENESIS_HASH)).await;
            }
            "edit head" => exec(&p, &format!("UPDATE audit_head SET hash = '{}' WHERE id = 1", "f".repeat(64))).await,
            _ => exec(&p, "DELETE FROM audit_head").await,
        }
        let (code, out) = verify_anchored(&uri, &dir);
        assert_eq!((code, out.trim()), (1, expect(n, &hash, &when, case).as_str()), "{case}");
        // Without the checkpoints, a consistent cut is invisible: this is what they add.
        if case == "cut" || case == "wipe" {
            assert_eq!(verify(&uri).0, 0, "{case}: the chain alone cannot see it");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_cut_end_on_sqlite() {
    cuts_at_the_end_are_found(fresh_sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_cut_end_on_postgres() {
    cuts_at_the_end_are_found(fresh_postgres(4).await).await;
}
