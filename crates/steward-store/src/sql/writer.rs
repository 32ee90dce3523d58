//! The write path. On PostgreSQL a write is an ordinary pooled transaction. On SQLite every
//! write goes through one connection, and concurrent writes share commits (group commit):
//! each write runs inside its own savepoint of a shared transaction — so it is still all or
//! nothing on its own — and a committer task commits the transaction once no write is
//! queued, answering every write in it only after that commit is durable. One fsync then
//! serves as many writes as arrived while the previous one was running.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Executor, Transaction};
use steward_core::{Error, Result};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, oneshot};

use super::db_error;

struct State {
    conn: PoolConnection<Any>,
    /// A shared transaction is open.
    open: bool,
    /// A write is inside its savepoint.
    in_savepoint: bool,
    /// A write was abandoned inside its savepoint; roll it back before anything else.
    dirty: bool,
    /// Writes whose savepoints were released, waiting for the commit.
    waiters: Vec<oneshot::Sender<Result<()>>>,
}

impl State {
    async fn recover(&mut self) -> Result<()> {
        if self.dirty {
            self.conn.execute("ROLLBACK TO SAVEPOINT steward_write").await.map_err(db_error)?;
            self.conn.execute("RELEASE SAVEPOINT steward_write").await.map_err(db_error)?;
            self.dirty = false;
        }
        Ok(())
    }
}

/// The single SQLite writer connection and its committer.
pub(crate) struct Group {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

impl Group {
    pub(crate) fn start(conn: PoolConnection<Any>) -> Arc<Group> {
        let state = Arc::new(Mutex::new(State { conn, open: false, in_savepoint: false, dirty: false, waiters: vec![] }));
        let notify = Arc::new(Notify::new());
        // The committer holds the state weakly, so dropping the store closes the connection;
        // the group's Drop wakes it one last time to notice and end.
        let weak = Arc::downgrade(&state);
        let wake = notify.clone();
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                let Some(state) = weak.upgrade() else { return };
                if Arc::strong_count(&state) == 1 {
                    return; // the group is gone; only this task still holds the writer
                }
                // The lock is fair: writes already queued get in first and join this commit.
                let mut st = state.lock_owned().await;
                let recovered = st.recover().await;
                if !st.open {
                    continue;
                }
                let outcome = match recovered {
                    Ok(()) => st.conn.execute("COMMIT").await.map(drop).map_err(db_error),
                    Err(e) => Err(e),
                };
                if outcome.is_err() {
                    let _ = st.conn.execute("ROLLBACK").await;
                }
                st.open = false;
                for w in st.waiters.drain(..) {
                    let _ = w.send(outcome.clone());
                }
            }
        });
        Arc::new(Group { state, notify })
    }

    async fn begin(self: &Arc<Self>) -> Result<GroupTx> {
        let mut st = self.state.clone().lock_owned().await;
        st.recover().await?;
        if !st.open {
            st.conn.execute("BEGIN IMMEDIATE").await.map_err(db_error)?;
            st.open = true;
        }
        st.conn.execute("SAVEPOINT steward_write").await.map_err(db_error)?;
        st.in_savepoint = true;
        Ok(GroupTx { guard: Some(st), group: self.clone() })
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.notify.notify_one();
    }
}

pub(crate) struct GroupTx {
    guard: Option<OwnedMutexGuard<State>>,
    group: Arc<Group>,
}

impl GroupTx {
    async fn commit(mut self) -> Result<()> {
        let mut st = self.guard.take().expect("an uncommitted write holds the writer");
        st.in_savepoint = false;
        if let Err(e) = st.conn.execute("RELEASE SAVEPOINT steward_write").await {
            st.dirty = true;
            drop(st);
            self.group.notify.notify_one();
            return Err(db_error(e));
        }
        let (tx, rx) = oneshot::channel();
        st.waiters.push(tx);
        drop(st);
        self.group.notify.notify_one();
        rx.await.map_err(|_| Error::internal("the metadata store's writer stopped before committing"))?
    }
}

impl Drop for GroupTx {
    fn drop(&mut self) {
        // Dropped without commit (an error path): its savepoint is rolled back by whoever
        // takes the writer next, before they do anything else.
        if let Some(mut st) = self.guard.take() {
            if st.in_savepoint {
                st.dirty = true;
                st.in_savepoint = false;
            }
            drop(st);
            self.group.notify.notify_one();
        }
    }
}

/// One write transaction, whichever backend.
pub(crate) enum WriteTx {
    Pooled(Transaction<'static, Any>),
    Grouped(GroupTx),
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            WriteTx::Pooled(t) => t.commit().await.map_err(db_error),
            WriteTx::Grouped(g) => g.commit().await,
        }
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match self {
            WriteTx::Pooled(t) => t,
            WriteTx::Grouped(g) => &g.guard.as_ref().expect("live write").conn,
        }
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteTx::Pooled(t) => t,
            WriteTx::Grouped(g) => &mut g.guard.as_mut().expect("live write").conn,
        }
    }
}

/// Where writes go.
pub(crate) enum Writer {
    Pool(sqlx::AnyPool),
    Group(Arc<Group>),
}

impl Writer {
    pub(crate) async fn begin(&self) -> Result<WriteTx> {
        match self {
            Writer::Pool(p) => Ok(WriteTx::Pooled(p.begin().await.map_err(db_error)?)),
            Writer::Group(g) => Ok(WriteTx::Grouped(g.begin().await?)),
        }
    }
}
