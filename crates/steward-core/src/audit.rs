//! The tamper-evident audit ledger's rules: what an entry holds, how it is hashed, and how a
//! chain of entries is verified. Pure: the store appends and reads, this module judges.
//!
//! Each entry's hash is SHA-256 over a canonical encoding of its fields and the previous
//! entry's hash, so editing, deleting, inserting or reordering any entry breaks the chain at
//! that entry's sequence number.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did a mutation, why, and a digest of what they sent: what every mutating store call
/// carries into its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    pub actor: String,
    pub reason: Option<String>,
    pub payload_digest: String,
}

impl Audit {
    /// An audit context for a request: `payload` is the request body as received.
    pub fn new(actor: impl Into<String>, reason: Option<String>, payload: &[u8]) -> Self {
        Audit { actor: actor.into(), reason, payload_digest: sha256_hex(payload) }
    }
}

/// One ledger entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub seq: i64,
    pub time: i64,
    pub actor: String,
    pub action: String,
    pub entity_kind: String,
    pub entity_id: String,
    pub reason: Option<String>,
    pub payload_digest: String,
    pub prev_hash: String,
    pub hash: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = ContentHasher::default();
    h.update(bytes);
    h.finish()
}

/// SHA-256 over content that arrives in pieces (an artifact upload).
#[derive(Default, Clone)]
pub struct ContentHasher(Sha256);

impl ContentHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finish(self) -> String {
        self.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The canonical encoding: a JSON array of the fields in a fixed order (every field a string,
/// number or null, so the encoding is unique).
pub fn canonical(e: &LedgerEntry) -> Vec<u8> {
    serde_json::json!([
        e.seq,
        e.time,
        e.actor,
        e.action,
        e.entity_kind,
        e.entity_id,
        e.reason,
        e.payload_digest,
        e.prev_hash
    ])
    .to_string()
    .into_bytes()
}

/// The hash an entry must carry.
pub fn entry_hash(e: &LedgerEntry) -> String {
    sha256_hex(&canonical(e))
}

/// Where and why a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub reason: String,
}

/// Checks a chain one entry at a time, so a ledger of any length verifies in bounded memory.
#[derive(Debug, Clone)]
pub struct Verifier {
    expected_seq: i64,
    prev: String,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier { expected_seq: 1, prev: GENESIS_HASH.to_owned() }
    }
}

impl Verifier {
    /// Checks the next entry in sequence order.
    pub fn push(&mut self, e: &LedgerEntry) -> Result<(), Break> {
        let expected = self.expected_seq;
        if e.seq != expected {
            return Err(Break {
                seq: expected,
                reason: format!("expected entry {expected}, found entry {} (an entry is missing, inserted or out of order)", e.seq),
            });
        }
        if e.prev_hash != self.prev {
            return Err(Break { seq: e.seq, reason: "its prev_hash does not match the previous entry's hash".into() });
        }
        if entry_hash(e) != e.hash {
            return Err(Break { seq: e.seq, reason: "its contents do not match its hash (the entry was edited)".into() });
        }
        self.prev = e.hash.clone();
        self.expected_seq += 1;
        Ok(())
    }

    /// Ends the walk against the store's head record (last sequence number and hash), which
    /// catches entries appended or removed at the end. Returns the number of entries.
    pub fn finish(self, head: Option<(i64, &str)>) -> Result<i64, Break> {
        let count = self.expected_seq - 1;
        if let Some((head_seq, head_hash)) = head {
            if head_seq != count {
                return Err(Break {
                    seq: count.min(head_seq) + 1,
                    reason: format!("the ledger head records entry {head_seq} but the chain ends at entry {count}"),
                });
            }
            if head_hash != self.prev {
                return Err(Break {
                    seq: count,
                    reason: format!("the ledger head records hash {head_hash} for entry {count}, whose hash is {}: the head was edited", self.prev),
                });
            }
        }
        Ok(count)
    }
}

/// Walks entries in sequence order; see [`Verifier`].
pub fn verify(entries: impl IntoIterator<Item = LedgerEntry>, head: Option<(i64, &str)>) -> Result<i64, Break> {
    let mut v = Verifier::default();
    for e in entries {
        v.push(&e)?;
    }
    v.finish(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<LedgerEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut e = LedgerEntry {
                    seq,
                    time: 1000 + seq,
                    actor: "alice".into(),
                    action: "run.create".into(),
                    entity_kind: "run".into(),
                    entity_id: format!("r{seq}"),
                    reason: None,
                    payload_digest: sha256_hex(b"{}"),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = entry_hash(&e);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn head(c: &[LedgerEntry]) -> Option<(i64, &str)> {
        c.last().map(|e| (e.seq, e.hash.as_str()))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify(c.clone(), head(&c)), Ok(5));
        assert_eq!(verify(vec![], Some((0, GENESIS_HASH))), Ok(0));
    }

    #[test]
    fn edits_deletions_swaps_and_insertions_are_found_at_their_sequence_number() {
        let c = chain(6);
        let h = head(&c).map(|(s, h)| (s, h.to_owned()));
        let h = h.as_ref().map(|(s, h)| (*s, h.as_str()));

        let mut edited = c.clone();
        edited[2].actor = "mallory".into();
        assert_eq!(verify(edited, h).unwrap_err().seq, 3);

        let mut deleted = c.clone();
        deleted.remove(3);
        assert_eq!(verify(deleted, h).unwrap_err().seq, 4);

        let mut swapped = c.clone();
        swapped.swap(1, 2);
        assert_eq!(verify(swapped, h).unwrap_err().seq, 2);

        let mut inserted = c.clone();
        let mut forged = inserted[2].clone();
        forged.entity_id = "forged".into();
        inserted.insert(3, forged);
        assert_eq!(verify(inserted, h).unwrap_err().seq, 4);

        // A well-formed entry appended past the head is caught by the head.
        let mut longer = chain(7);
        longer.truncate(7);
        assert_eq!(verify(longer, h).unwrap_err().seq, 7);
        // Truncating the tail is caught too.
        let mut shorter = c.clone();
        shorter.pop();
        assert_eq!(verify(shorter, h).unwrap_err().seq, 6);
        // An edited head hash is named as such, at the last entry.
        let edited = verify(c.clone(), Some((6, "beef"))).unwrap_err();
        assert_eq!(edited.seq, 6);
        assert!(edited.reason.starts_with("the ledger head records hash beef for entry 6, whose hash is "), "{}", edited.reason);
        assert!(edited.reason.ends_with(": the head was edited"), "{}", edited.reason);
    }
}
