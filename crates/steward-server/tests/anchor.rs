//! The server's ledger anchor signs the head outside the database, and refuses to sign a
//! ledger that no longer holds what its last checkpoint attests.

use sqlx::Executor;
use steward_core::anchor::LedgerKey;
use steward_core::audit::Audit;
use steward_server::anchor::Anchor;
use steward_store::anchor::Checkpoints;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_sign_the_head_and_never_bless_a_cut_ledger() {
    let dir = std::env::temp_dir().join(format!("steward-anchor-{}", uuid::Uuid::new_v4().simple()));
    let db = dir.join("steward.db");
    let store = steward_store::open_metadata(&format!("sqlite:///{}", db.display()), "mlflow-artifacts:/").await.unwrap();
    let who = Audit::new("alice", None, b"");
    for i in 0..3 {
        store.create_experiment(&who, &format!("e{i}"), None, &[]).await.unwrap();
    }
    let location = dir.join("checkpoints").display().to_string();
    let key = LedgerKey::from_secret([3; 32]);
    let anchor = Anchor::open(LedgerKey::parse(&key.to_text()).unwrap(), Checkpoints::open(&location).unwrap(), 1000).await.unwrap();
    let (seq, hash) = store.ledger_head().await.unwrap().unwrap();
    let first = anchor.checkpoint_now(store.as_ref()).await.unwrap().expect("a checkpoint of the head");
    assert_eq!((first.seq, first.hash.as_str()), (seq, hash.as_str()));
    assert!(first.check_signature(&key.public_hex()).is_ok());
    assert!(anchor.checkpoint_now(store.as_ref()).await.unwrap().is_none(), "an unmoved head is not signed again");
    for i in 3..6 {
        store.create_experiment(&who, &format!("e{i}"), None, &[]).await.unwrap();
    }
    let second = anchor.checkpoint_now(store.as_ref()).await.unwrap().unwrap();
    assert_eq!(second.seq, seq + 3);
    assert_eq!(store.verify_ledger(&anchor.checkpoints().await.unwrap()).await.unwrap(), Ok(seq + 3));

    // Cut the last two entries and rewind the head; then let the ledger grow past the cut.
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    raw.execute(sqlx::AssertSqlSafe(format!("DELETE FROM audit_ledger WHERE seq > {}", seq + 1))).await.unwrap();
    let kept = store.ledger(seq, 1).await.unwrap().remove(0);
    raw.execute(sqlx::AssertSqlSafe(format!("UPDATE audit_head SET seq = {}, hash = '{}' WHERE id = 1", seq + 1, kept.hash))).await.unwrap();
    for i in 6..9 {
        store.create_experiment(&who, &format!("e{i}"), None, &[]).await.unwrap();
    }
    let refused = anchor.checkpoint_now(store.as_ref()).await.unwrap_err();
    assert!(refused.message().contains(&format!("no longer holds entry {} with the hash its checkpoint attests", seq + 3)), "{}", refused.message());
    assert!(anchor.checkpoint_now(store.as_ref()).await.unwrap().is_none(), "after a refusal nothing more is signed");
    assert_eq!(anchor.checkpoints().await.unwrap().len(), 2);
    let broken = store.verify_ledger(&anchor.checkpoints().await.unwrap()).await.unwrap().unwrap_err();
    assert_eq!(broken.seq, seq + 3);
    assert!(broken.reason.ends_with("the ledger was rewritten"), "{}", broken.reason);
    // A checkpoint signed with another key is refused when read.
    let forged = LedgerKey::from_secret([4; 32]).sign(seq + 4, "ff", 0);
    Checkpoints::open(&location).unwrap().write(&forged).await.unwrap();
    let err = Anchor::open(key, Checkpoints::open(&location).unwrap(), 1000).await.err().expect("a forged checkpoint is refused");
    assert!(err.message().contains("is not signed by the ledger key"), "{}", err.message());
    let _ = std::fs::remove_dir_all(dir);
}
