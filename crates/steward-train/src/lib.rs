//! Steward's built-in training: a deterministic generator of synthetic credit applications with
//! injectable drift; regularised logistic regression with standardisation; models written as
//! ONNX graphs the runtime serves, with reason codes. Pure functions: no IO, no clocks, no
//! global randomness.

pub mod design;
pub mod explain;
pub mod export;
pub mod gbt;
pub mod logistic;
pub mod onnx;
pub mod rng;
pub mod synth;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Invalid(String),
}
