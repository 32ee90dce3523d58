//! The server signs the audit ledger's head and writes it outside the database: every
//! `every` entries, at least every [`INTERVAL`] while the ledger grows, and on shutdown. Before
//! signing it checks that the ledger still holds what its last checkpoint attests; once that
//! fails it signs nothing more (a checkpoint must never bless a cut or rewritten ledger) and
//! says so until `steward audit verify` has been run and the cause dealt with.

use std::sync::Arc;
use std::time::Duration;

use steward_core::anchor::{Checkpoint, LedgerKey};
use steward_core::{Error, Result};
use steward_store::MetadataStore;
use steward_store::anchor::Checkpoints;
use tokio::sync::Mutex;

/// The longest a growing ledger goes unanchored (with fewer than `every` new entries).
pub const INTERVAL: Duration = Duration::from_secs(60);

/// How often the head is looked at.
const LOOK: Duration = Duration::from_secs(1);

pub struct Anchor {
    key: LedgerKey,
    checkpoints: Checkpoints,
    every: i64,
    /// The last checkpoint written (or found at start), and whether signing stopped.
    state: Mutex<(Option<Checkpoint>, bool)>,
}

impl Anchor {
    /// An anchor with this key and location, signing every `every` entries; reads the latest
    /// checkpoint already there.
    pub async fn open(key: LedgerKey, checkpoints: Checkpoints, every: i64) -> Result<Arc<Self>> {
        let all = Self::read(&key, &checkpoints).await?;
        let last = all.into_iter().max_by_key(|c| c.seq);
        Ok(Arc::new(Anchor { key, checkpoints, every: every.max(1), state: Mutex::new((last, false)) }))
    }

    async fn read(key: &LedgerKey, checkpoints: &Checkpoints) -> Result<Vec<Checkpoint>> {
        let all = checkpoints.all().await?;
        for c in &all {
            c.check_signature(&key.public_hex())?;
        }
        Ok(all)
    }

    pub fn public_key(&self) -> String {
        self.key.public_hex()
    }

    pub fn location(&self) -> &str {
        self.checkpoints.location()
    }

    /// Every checkpoint, each checked against the key.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        Self::read(&self.key, &self.checkpoints).await
    }

    /// Signs the head if it moved (and, unless `force`, if enough entries or time passed).
    /// Returns the checkpoint written, if any.
    async fn step(&self, store: &dyn MetadataStore, force: bool) -> Result<Option<Checkpoint>> {
        let mut state = self.state.lock().await;
        if state.1 {
            return Ok(None);
        }
        let (seq, hash) = store.ledger_head().await?.ok_or_else(|| Error::internal("the ledger's head record is missing"))?;
        let now = crate::serving::now_ms();
        if let Some(last) = state.0.clone() {
            if last.seq == seq && last.hash == hash {
                return Ok(None);
            }
            let holds = last.seq == 0 || store.ledger(last.seq - 1, 1).await?.first().is_some_and(|e| e.seq == last.seq && e.hash == last.hash);
            if !holds || seq < last.seq {
                state.1 = true;
                return Err(Error::internal(format!(
                    "the audit ledger no longer holds entry {} with the hash its checkpoint attests ({}): it was cut or rewritten; no further checkpoints are signed — run `steward audit verify`",
                    last.seq, last.hash
                )));
            }
            let due = seq - last.seq >= self.every || now - last.time >= INTERVAL.as_millis() as i64;
            if !force && !due {
                return Ok(None);
            }
        }
        let c = self.key.sign(seq, &hash, now);
        self.checkpoints.write(&c).await?;
        state.0 = Some(c.clone());
        Ok(Some(c))
    }

    /// Signs the head now if it moved since the last checkpoint (at shutdown).
    pub async fn checkpoint_now(&self, store: &dyn MetadataStore) -> Result<Option<Checkpoint>> {
        self.step(store, true).await
    }

    /// Looks at the head every second and signs it when due.
    pub fn start(self: &Arc<Self>, store: Arc<dyn MetadataStore>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(anchor) = me.upgrade() else { return };
                if let Err(e) = anchor.step(store.as_ref(), false).await {
                    tracing::error!("ledger checkpoint: {}", e.message());
                }
                drop(anchor);
                tokio::time::sleep(LOOK).await;
            }
        });
    }
}
