//! Steward's model runtime: loads ONNX models (with the `ai.onnx.ml` operators classical credit
//! and fraud models use) on tract, derives their signature, validates every request against it
//! and evaluates it. No IO: callers hand in model bytes and tensors.

pub mod frame;
mod ops;
pub mod tensor;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use tract_onnx::pb;
use tract_onnx::prelude::*;

pub use tensor::{DType, Data, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the model cannot be loaded: {0}")]
    Load(String),
    #[error("input '{name}' is missing; the model takes {expected}")]
    MissingInput { name: String, expected: String },
    #[error("'{name}' is not an input of this model, which takes {expected}")]
    UnknownInput { name: String, expected: String },
    #[error("input '{name}' has datatype {got}; the model takes {expected}")]
    WrongDtype { name: String, expected: DType, got: DType },
    #[error("input '{name}' has shape {got:?}; the model takes {expected:?} (-1: any size)")]
    WrongShape { name: String, expected: Vec<i64>, got: Vec<usize> },
    #[error("input '{name}' has {rows} rows but input '{other}' has {other_rows}")]
    RowMismatch { name: String, rows: usize, other: String, other_rows: usize },
    #[error("input '{name}' holds {got} values but its shape {shape:?} needs {needed}")]
    DataLength { name: String, shape: Vec<usize>, needed: usize, got: usize },
    #[error("input '{name}' contains NaN, and this model cannot take missing values there")]
    MissingValues { name: String },
    #[error("input rejected by the model: {0}")]
    BadValue(String),
    #[error("the request holds more than {max} rows, this deployment's limit per request (max_rows_per_request)")]
    TooManyRows { max: usize },
    #[error("inference failed: {0}")]
    Eval(String),
}

impl RuntimeError {
    /// Whether the caller's request caused the error (as opposed to the model or runtime).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Load(_) | Self::Eval(_))
    }
}

/// One input or output of a model: its name, element type and shape (-1 where any size goes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DType,
    pub shape: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// A loaded, optimised model, shareable across threads.
pub struct Model {
    plan: Arc<TypedSimplePlan>,
    signature: Signature,
    /// Per input: whether NaN may reach the model (it flows only into imputers or trees).
    takes_missing: Vec<bool>,
    /// The file's `metadata_props`.
    metadata: Vec<(String, String)>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model").field("signature", &self.signature).finish_non_exhaustive()
    }
}

fn load_err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Load(format!("{e:#}"))
}

impl Model {
    /// Parses and optimises an ONNX model.
    pub fn load(bytes: &[u8]) -> Result<Self, RuntimeError> {
        let mut onnx = tract_onnx::onnx();
        ops::register(&mut onnx.op_register);
        let proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(load_err)?;
        let graph = proto.graph.as_ref().ok_or_else(|| RuntimeError::Load("the file has no graph".into()))?;
        let initialized: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<TensorSpec> = graph
            .input
            .iter()
            .filter(|i| !initialized.contains(i.name.as_str()))
            .map(input_spec)
            .collect::<Result<_, _>>()?;
        let takes_missing = inputs.iter().map(|i| takes_missing(graph, &i.name)).collect();
        let metadata = proto.metadata_props.iter().map(|p| (p.key.clone(), p.value.clone())).collect();

        let mut model = onnx.model_for_proto_model(&proto).map_err(load_err)?;
        let batch = model.symbols.sym("batch");
        for (ix, spec) in inputs.iter().enumerate() {
            let dims: TVec<TDim> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(d, &n)| match (d, n) {
                    (_, n) if n >= 0 => (n as usize).to_dim(),
                    (0, _) => batch.to_dim(),
                    (d, _) => model.symbols.sym(&format!("{}_{d}", spec.name)).to_dim(),
                })
                .collect();
            let fact = InferenceFact::dt_shape(datum_type(spec.datatype), dims);
            model.set_input_fact(ix, fact).map_err(load_err)?;
        }
        let typed = model.into_optimized().map_err(load_err)?;
        let outputs = graph
            .output
            .iter()
            .zip(typed.output_outlets().map_err(load_err)?)
            .map(|(o, outlet)| {
                let fact = typed.outlet_fact(*outlet).map_err(load_err)?;
                Ok(TensorSpec {
                    name: o.name.clone(),
                    datatype: dtype_of(fact.datum_type).ok_or_else(|| RuntimeError::Load(format!("output '{}' has unsupported type {:?}", o.name, fact.datum_type)))?,
                    shape: fact.shape.iter().map(|d| d.to_i64().unwrap_or(-1)).collect(),
                })
            })
            .collect::<Result<Vec<_>, RuntimeError>>()?;
        let plan = typed.into_runnable().map_err(load_err)?;
        Ok(Self { plan, signature: Signature { inputs, outputs }, takes_missing, metadata })
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// A value of the file's `metadata_props`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Checks a request against the signature, naming the first offending input.
    pub fn validate(&self, inputs: &[Tensor]) -> Result<(), RuntimeError> {
        let expected = || self.signature.inputs.iter().map(|i| format!("'{}' {} {:?}", i.name, i.datatype, i.shape)).collect::<Vec<_>>().join(", ");
        for t in inputs {
            if !self.signature.inputs.iter().any(|i| i.name == t.name) {
                return Err(RuntimeError::UnknownInput { name: t.name.clone(), expected: expected() });
            }
        }
        let mut rows: Option<(&str, usize)> = None;
        for (spec, takes_missing) in self.signature.inputs.iter().zip(&self.takes_missing) {
            let t = inputs.iter().find(|t| t.name == spec.name).ok_or_else(|| RuntimeError::MissingInput { name: spec.name.clone(), expected: expected() })?;
            if t.data.dtype() != spec.datatype {
                return Err(RuntimeError::WrongDtype { name: t.name.clone(), expected: spec.datatype, got: t.data.dtype() });
            }
            let shape_ok = t.shape.len() == spec.shape.len() && t.shape.iter().zip(&spec.shape).all(|(&got, &want)| want < 0 || got as i64 == want);
            if !shape_ok {
                return Err(RuntimeError::WrongShape { name: t.name.clone(), expected: spec.shape.clone(), got: t.shape.clone() });
            }
            // A shape whose element count overflows can never match the data.
            let needed = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
            if needed != t.data.len() {
                return Err(RuntimeError::DataLength { name: t.name.clone(), shape: t.shape.clone(), needed, got: t.data.len() });
            }
            if !takes_missing && t.data.has_nan() {
                return Err(RuntimeError::MissingValues { name: t.name.clone() });
            }
            match rows {
                Some((other, n)) if n != t.rows() => {
                    return Err(RuntimeError::RowMismatch { name: t.name.clone(), rows: t.rows(), other: other.to_string(), other_rows: n });
                }
                None => rows = Some((&spec.name, t.rows())),
                _ => {}
            }
        }
        Ok(())
    }

    /// Validates and evaluates one batch; outputs come in signature order.
    pub fn predict(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
        self.validate(inputs)?;
        let mut feed = TVec::new();
        for spec in &self.signature.inputs {
            let t = inputs.iter().find(|t| t.name == spec.name).expect("validated");
            feed.push(to_tract(t).map_err(|e| RuntimeError::Eval(format!("{e:#}")))?.into_tvalue());
        }
        let outputs = self.plan.run(feed).map_err(|e| match e.downcast_ref::<ops::BadInput>() {
            Some(bad) => RuntimeError::BadValue(bad.0.clone()),
            None => RuntimeError::Eval(format!("{e:#}")),
        })?;
        outputs
            .iter()
            .zip(&self.signature.outputs)
            .map(|(v, spec)| from_tract(&spec.name, v).map_err(|e| RuntimeError::Eval(format!("{e:#}"))))
            .collect()
    }
}

fn input_spec(input: &pb::ValueInfoProto) -> Result<TensorSpec, RuntimeError> {
    let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(RuntimeError::Load(format!("input '{}' is not a tensor", input.name)));
    };
    let datatype = match t.elem_type {
        1 => DType::Fp32,
        11 => DType::Fp64,
        7 => DType::Int64,
        6 => DType::Int32,
        9 => DType::Bool,
        8 => DType::Bytes,
        other => return Err(RuntimeError::Load(format!("input '{}' has ONNX element type {other}, which Steward does not serve", input.name))),
    };
    let shape = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v >= 0 => v,
                    _ => -1,
                })
                .collect()
        })
        .unwrap_or_else(|| vec![-1]);
    Ok(TensorSpec { name: input.name.clone(), datatype, shape })
}

/// Whether NaN in `input` only ever reaches operators defined on missing values (imputers and
/// tree ensembles), through operators that merely move data.
fn takes_missing(graph: &pb::GraphProto, input: &str) -> bool {
    const HANDLES: [&str; 3] = ["Imputer", "TreeEnsembleClassifier", "TreeEnsembleRegressor"];
    const MOVES: [&str; 10] = ["Identity", "Cast", "Concat", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Gather", "ArrayFeatureExtractor"];
    let mut consumers: HashMap<&str, Vec<&pb::NodeProto>> = HashMap::new();
    for node in &graph.node {
        for i in &node.input {
            consumers.entry(i.as_str()).or_default().push(node);
        }
    }
    let mut stack = vec![input];
    let mut seen = HashSet::new();
    while let Some(name) = stack.pop() {
        if !seen.insert(name) {
            continue;
        }
        for node in consumers.get(name).into_iter().flatten() {
            let op = node.op_type.as_str();
            if HANDLES.contains(&op) {
                continue;
            }
            if !MOVES.contains(&op) {
                return false;
            }
            stack.extend(node.output.iter().map(String::as_str));
        }
    }
    true
}

fn datum_type(d: DType) -> DatumType {
    match d {
        DType::Bool => DatumType::Bool,
        DType::Int32 => DatumType::I32,
        DType::Int64 => DatumType::I64,
        DType::Fp32 => DatumType::F32,
        DType::Fp64 => DatumType::F64,
        DType::Bytes => DatumType::String,
    }
}

fn dtype_of(d: DatumType) -> Option<DType> {
    Some(match d {
        DatumType::Bool => DType::Bool,
        DatumType::I32 => DType::Int32,
        // tract turns int64 casts into symbolic dimensions; they are plain integers here.
        DatumType::I64 | DatumType::TDim => DType::Int64,
        DatumType::F32 => DType::Fp32,
        DatumType::F64 => DType::Fp64,
        DatumType::String => DType::Bytes,
        _ => return None,
    })
}

fn to_tract(t: &Tensor) -> TractResult<tract_onnx::prelude::Tensor> {
    let shape = &t.shape;
    Ok(match &t.data {
        Data::Bool(v) => tract_onnx::prelude::Tensor::from_shape(shape, v)?,
        Data::Int32(v) => tract_onnx::prelude::Tensor::from_shape(shape, v)?,
        Data::Int64(v) => tract_onnx::prelude::Tensor::from_shape(shape, v)?,
        Data::Fp32(v) => tract_onnx::prelude::Tensor::from_shape(shape, v)?,
        Data::Fp64(v) => tract_onnx::prelude::Tensor::from_shape(shape, v)?,
        Data::Bytes(v) => tract_ndarray::ArrayD::from_shape_vec(shape.as_slice(), v.clone())?.into_tensor(),
    })
}

fn from_tract(name: &str, v: &TValue) -> TractResult<Tensor> {
    let shape = v.shape().to_vec();
    if v.datum_type() == DatumType::TDim {
        let ints = v.cast_to::<i64>()?;
        return Ok(Tensor::new(name, shape, Data::Int64(ints.try_as_plain_ram()?.as_slice::<i64>()?.to_vec())));
    }
    let plain = v.try_as_plain_ram()?;
    let data = match v.datum_type() {
        DatumType::Bool => Data::Bool(plain.as_slice::<bool>()?.to_vec()),
        DatumType::I32 => Data::Int32(plain.as_slice::<i32>()?.to_vec()),
        DatumType::I64 => Data::Int64(plain.as_slice::<i64>()?.to_vec()),
        DatumType::F32 => Data::Fp32(plain.as_slice::<f32>()?.to_vec()),
        DatumType::F64 => Data::Fp64(plain.as_slice::<f64>()?.to_vec()),
        DatumType::String => Data::Bytes(plain.as_slice::<String>()?.to_vec()),
        other => tract_hir::internal::bail!("output '{name}' has unsupported type {other:?}"),
    };
    Ok(Tensor::new(name, shape, data))
}
