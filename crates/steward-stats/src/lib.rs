//! Steward's statistics: drift tests (as scipy and Evidently compute them), model quality (as
//! scikit-learn), group fairness (as Fairlearn) and label-free performance estimation.
//! Pure functions over slices: no IO, no async, no allocation beyond what a test needs.

pub mod cbpe;
pub mod distance;
pub mod drift;
pub mod fairness;
pub mod kolmogorov;
pub mod ks;
pub mod profile;
pub mod quality;
pub mod special;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatsError {
    #[error("{0}")]
    Length(String),
    #[error("{0} needs at least one row")]
    Empty(String),
    #[error("{0}")]
    Value(String),
}

/// A fixed 64-bit seed from a name (FNV-1a), for deterministic sampling.
pub fn stable_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}
