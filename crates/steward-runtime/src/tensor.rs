//! The runtime's tensor type at its boundary: a shape and a typed, row-major buffer, free of
//! tract's types so that the protocol layers never see them.

use serde::{Deserialize, Serialize};

/// Element types a model input or output can have, named as the Open Inference Protocol does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DType {
    Bool,
    Int32,
    Int64,
    Fp32,
    Fp64,
    Bytes,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::Int32 => "INT32",
            Self::Int64 => "INT64",
            Self::Fp32 => "FP32",
            Self::Fp64 => "FP64",
            Self::Bytes => "BYTES",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "BOOL" => Self::Bool,
            "INT32" => Self::Int32,
            "INT64" => Self::Int64,
            "FP32" => Self::Fp32,
            "FP64" => Self::Fp64,
            "BYTES" => Self::Bytes,
            _ => return None,
        })
    }

    /// Bytes per element in the binary tensor encoding; `None` for BYTES (length-prefixed).
    pub fn width(self) -> Option<usize> {
        match self {
            Self::Bool => Some(1),
            Self::Int32 | Self::Fp32 => Some(4),
            Self::Int64 | Self::Fp64 => Some(8),
            Self::Bytes => None,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Self::Fp32 | Self::Fp64)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<String>),
}

impl Data {
    pub fn dtype(&self) -> DType {
        match self {
            Self::Bool(_) => DType::Bool,
            Self::Int32(_) => DType::Int32,
            Self::Int64(_) => DType::Int64,
            Self::Fp32(_) => DType::Fp32,
            Self::Fp64(_) => DType::Fp64,
            Self::Bytes(_) => DType::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Bool(v) => v.len(),
            Self::Int32(v) => v.len(),
            Self::Int64(v) => v.len(),
            Self::Fp32(v) => v.len(),
            Self::Fp64(v) => v.len(),
            Self::Bytes(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as f64 (strings and booleans as NaN / 0-1), for logging and comparison.
    pub fn get_f64(&self, i: usize) -> f64 {
        match self {
            Self::Bool(v) => f64::from(u8::from(v[i])),
            Self::Int32(v) => f64::from(v[i]),
            Self::Int64(v) => v[i] as f64,
            Self::Fp32(v) => f64::from(v[i]),
            Self::Fp64(v) => v[i],
            Self::Bytes(_) => f64::NAN,
        }
    }

    pub fn has_nan(&self) -> bool {
        match self {
            Self::Fp32(v) => v.iter().any(|x| x.is_nan()),
            Self::Fp64(v) => v.iter().any(|x| x.is_nan()),
            _ => false,
        }
    }
}

/// A named tensor: a model input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Data) -> Self {
        Self { name: name.into(), shape, data }
    }

    /// Rows along the first axis (1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
}
