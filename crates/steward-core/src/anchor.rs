//! Signed checkpoints of the audit ledger's head, kept outside the database, so that cutting
//! the ledger's end — and rewinding its head record to match — is detected. Pure: signing
//! and checking; the server writes checkpoints and `steward audit verify` reads them.
//!
//! A checkpoint says "entry `seq` of this ledger had hash `hash` at `time`", signed with the
//! server's Ed25519 key. A chain that verifies on its own but lacks an entry a checkpoint
//! attests, or has another hash there, was cut or rewritten.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::audit::Break;
use crate::error::{Error, Result};

/// What is signed: a fixed label, so no other message of ours can pass for a checkpoint.
const LABEL: &str = "steward-ledger-checkpoint/1";

/// One signed head of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    /// When it was signed (ms since the epoch).
    pub time: i64,
    /// The signer's Ed25519 public key, hex.
    pub public_key: String,
    /// Ed25519 over the canonical message, hex.
    pub signature: String,
}

fn message(seq: i64, hash: &str, time: i64) -> Vec<u8> {
    serde_json::json!([LABEL, seq, hash, time]).to_string().into_bytes()
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex<const N: usize>(text: &str, what: &str) -> Result<[u8; N]> {
    let bad = || Error::invalid(format!("{what} is not {N} bytes of hex"));
    let text = text.trim();
    if text.len() != 2 * N || !text.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The server's signing key (32 secret bytes).
pub struct LedgerKey(SigningKey);

impl LedgerKey {
    pub fn from_secret(secret: [u8; 32]) -> Self {
        LedgerKey(SigningKey::from_bytes(&secret))
    }

    /// The key as a key file holds it: 64 hex digits.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(Self::from_secret(from_hex::<32>(text, "the ledger key")?))
    }

    pub fn to_text(&self) -> String {
        to_hex(&self.0.to_bytes())
    }

    pub fn public_hex(&self) -> String {
        to_hex(self.0.verifying_key().as_bytes())
    }

    pub fn sign(&self, seq: i64, hash: &str, time: i64) -> Checkpoint {
        let signature = self.0.sign(&message(seq, hash, time));
        Checkpoint { seq, hash: hash.to_owned(), time, public_key: self.public_hex(), signature: to_hex(&signature.to_bytes()) }
    }
}

impl Checkpoint {
    /// Whether `public_key` (hex) signed this checkpoint.
    pub fn check_signature(&self, public_key: &str) -> Result<()> {
        let key = VerifyingKey::from_bytes(&from_hex::<32>(public_key, "the ledger public key")?)
            .map_err(|e| Error::invalid(format!("the ledger public key is not an Ed25519 key: {e}")))?;
        let signature = Signature::from_bytes(&from_hex::<64>(&self.signature, "a checkpoint's signature")?);
        key.verify(&message(self.seq, &self.hash, self.time), &signature).map_err(|_| {
            Error::invalid(format!("checkpoint {} is not signed by the ledger key {public_key}: it was forged or altered", self.seq))
        })
    }

    fn when(&self) -> String {
        crate::schedule::iso8601(self.time)
    }
}

/// Checks a chain, already verified entry by entry and ending at entry `count`, against
/// signed checkpoints: every entry a checkpoint attests must be there with the attested hash.
/// `hash_at(seq)` gives the chain's hash of entry `seq` (for `seq <= count`).
pub fn check(checkpoints: &[Checkpoint], count: i64, mut hash_at: impl FnMut(i64) -> Option<String>) -> std::result::Result<(), Break> {
    let Some(latest) = checkpoints.iter().max_by_key(|c| c.seq) else { return Ok(()) };
    if latest.seq > count {
        let reason = if count == 0 {
            format!("the ledger is empty, but the checkpoint signed at {} attests {} entries ending in hash {}: the ledger was wiped", latest.when(), latest.seq, latest.hash)
        } else {
            format!(
                "the ledger ends at entry {count}, but the checkpoint signed at {} attests entry {} with hash {}: {} entries were cut from its end",
                latest.when(),
                latest.seq,
                latest.hash,
                latest.seq - count
            )
        };
        return Err(Break { seq: count + 1, reason });
    }
    let mut sorted: Vec<&Checkpoint> = checkpoints.iter().filter(|c| c.seq > 0).collect();
    sorted.sort_by_key(|c| c.seq);
    for c in sorted {
        let found = hash_at(c.seq).unwrap_or_default();
        if found != c.hash {
            return Err(Break {
                seq: c.seq,
                reason: format!("entry {} has hash {found}, but the checkpoint signed at {} attests hash {}: the ledger was rewritten", c.seq, c.when(), c.hash),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LedgerKey {
        LedgerKey::from_secret([7; 32])
    }

    #[test]
    fn a_checkpoint_verifies_only_with_its_key_and_unaltered() {
        let k = key();
        let c = k.sign(12, "ab", 1_700_000_000_000);
        assert!(c.check_signature(&k.public_hex()).is_ok());
        let other = LedgerKey::from_secret([8; 32]);
        assert!(c.check_signature(&other.public_hex()).unwrap_err().message().contains("not signed by the ledger key"));
        let mut moved = c.clone();
        moved.seq = 11;
        assert!(moved.check_signature(&k.public_hex()).is_err());
        assert_eq!(LedgerKey::parse(&k.to_text()).unwrap().public_hex(), k.public_hex());
        assert!(LedgerKey::parse("zz").is_err());
    }

    #[test]
    fn cuts_wipes_and_rewrites_are_named() {
        let cps = [key().sign(3, "h3", 0), key().sign(5, "h5", 86_400_000)];
        let hashes = |seq: i64| Some(format!("h{seq}"));
        assert_eq!(check(&cps, 5, hashes), Ok(()));
        assert_eq!(check(&cps, 9, hashes), Ok(()));
        let cut = check(&cps, 4, hashes).unwrap_err();
        assert_eq!(cut.seq, 5);
        assert_eq!(cut.reason, "the ledger ends at entry 4, but the checkpoint signed at 1970-01-02T00:00:00Z attests entry 5 with hash h5: 1 entries were cut from its end");
        let wiped = check(&cps, 0, hashes).unwrap_err();
        assert_eq!(wiped.reason, "the ledger is empty, but the checkpoint signed at 1970-01-02T00:00:00Z attests 5 entries ending in hash h5: the ledger was wiped");
        let rewritten = check(&cps, 6, |seq| Some(if seq == 3 { "x".into() } else { format!("h{seq}") })).unwrap_err();
        assert_eq!((rewritten.seq, rewritten.reason.as_str()), (3, "entry 3 has hash x, but the checkpoint signed at 1970-01-01T00:00:00Z attests hash h3: the ledger was rewritten"));
        assert_eq!(check(&[], 0, hashes), Ok(()));
    }
}
