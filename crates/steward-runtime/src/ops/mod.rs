//! The `ai.onnx.ml` operators Steward supplies to tract through its public op register, and the
//! one adapter that turns a plain kernel into a tract op.
//!
//! tract lacks Scaler, Imputer, OneHotEncoder, ZipMap and TreeEnsembleRegressor, and its
//! TreeEnsembleClassifier rejects a single `base_values` entry and mislabels binary ensembles; the
//! kernels here follow onnxruntime's CPU semantics instead. Each kernel states its outputs as
//! [`OutSpec`]s, from which the adapter derives both tract's inference rules and its typed facts,
//! so a kernel is only parsing plus `eval`.

mod preprocess;
mod transform;
mod tree;

use std::fmt::Debug;
use std::sync::Arc;

use tract_hir::internal::*;
use tract_onnx::model::OnnxOpRegister;
use tract_onnx::pb::NodeProto;

/// Installs Steward's kernels over tract's own where both exist.
pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("TreeEnsembleClassifier", tree::classifier);
    reg.insert("TreeEnsembleRegressor", tree::regressor);
    reg.insert("Scaler", preprocess::scaler);
    reg.insert("Imputer", preprocess::imputer);
    reg.insert("OneHotEncoder", preprocess::one_hot_encoder);
    reg.insert("ZipMap", preprocess::zip_map);
    reg.insert("LinearClassifier", preprocess::linear_classifier);
    reg.insert("Normalizer", preprocess::normalizer);
}

/// The shape of a kernel output, relative to its first input.
#[derive(Debug, Clone)]
pub(crate) enum OutShape {
    /// Same shape as input 0.
    LikeInput,
    /// `[rows of input 0]` followed by these dims.
    Rows(Vec<usize>),
    /// Input 0's shape with one more trailing dim.
    Append(usize),
}

#[derive(Debug, Clone)]
pub(crate) struct OutSpec {
    pub dt: DatumType,
    pub shape: OutShape,
}

/// A node's computation, free of tract's op plumbing.
pub(crate) trait Kernel: Debug + Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn outputs(&self) -> Vec<OutSpec>;
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>>;
}

/// The tract op wrapping a [`Kernel`]: an `Expansion` while the graph is being inferred and a
/// `TypedOp` once it is typed.
#[derive(Debug, Clone)]
pub(crate) struct KernelOp(pub Arc<dyn Kernel>);

pub(crate) fn op(kernel: impl Kernel) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(KernelOp(Arc::new(kernel))), vec![]))
}

impl PartialEq for KernelOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for KernelOp {}

impl Op for KernelOp {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }
    op_as_typed_op!();
}

impl EvalOp for KernelOp {
    op_out_of_plan!();
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(inputs)
    }
}

impl TypedOp for KernelOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = &inputs[0].shape;
        Ok(self
            .0
            .outputs()
            .into_iter()
            .map(|spec| {
                let dims: TVec<TDim> = match spec.shape {
                    OutShape::LikeInput => input.iter().cloned().collect(),
                    OutShape::Rows(rest) => std::iter::once(input[0].clone()).chain(rest.into_iter().map(|d| d.to_dim())).collect(),
                    OutShape::Append(n) => input.iter().cloned().chain(std::iter::once(n.to_dim())).collect(),
                };
                spec.dt.fact(dims)
            })
            .collect())
    }
    as_op!();
}

impl Expansion for KernelOp {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.outputs().len())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        let specs = self.0.outputs();
        check_output_arity(outputs, specs.len())?;
        for (out, spec) in outputs.iter().zip(specs) {
            s.equals(&out.datum_type, spec.dt)?;
            match spec.shape {
                OutShape::LikeInput => s.equals(&out.shape, &inputs[0].shape)?,
                OutShape::Rows(rest) => {
                    s.equals(&out.rank, 1 + rest.len() as i64)?;
                    s.equals(&out.shape[0], &inputs[0].shape[0])?;
                    for (ix, d) in rest.into_iter().enumerate() {
                        s.equals(&out.shape[ix + 1], d.to_dim())?;
                    }
                }
                OutShape::Append(n) => {
                    s.equals(&out.rank, inputs[0].rank.bex() + 1)?;
                    s.given(&inputs[0].rank, move |s, rank| {
                        let rank = rank as usize;
                        for ix in 0..rank {
                            s.equals(&out.shape[ix], &inputs[0].shape[ix])?;
                        }
                        s.equals(&out.shape[rank], n.to_dim())
                    })?;
                }
            }
        }
        Ok(())
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, self.clone(), inputs)
    }
}

/// Reads input 0 as a row-major `[rows, cols]` matrix of f32 (casting other numeric types),
/// with rank 1 taken as one column.
pub(crate) fn matrix(input: &TValue) -> TractResult<(Arc<Tensor>, usize, usize)> {
    let t = input.cast_to::<f32>()?.into_owned().into_arc_tensor();
    let shape = t.shape();
    let (rows, cols) = match shape.len() {
        0 => (1, 1),
        1 => (shape[0], 1),
        _ => (shape[0], shape[1..].iter().product()),
    };
    Ok((t, rows, cols))
}

pub(crate) fn floats(node: &NodeProto, name: &str) -> TractResult<Vec<f32>> {
    Ok(node.get_attr_opt_vec::<f32>(name)?.unwrap_or_default())
}

pub(crate) fn ints(node: &NodeProto, name: &str) -> TractResult<Vec<i64>> {
    Ok(node.get_attr_opt_vec::<i64>(name)?.unwrap_or_default())
}

pub(crate) fn strings(node: &NodeProto, name: &str) -> TractResult<Vec<String>> {
    Ok(node.get_attr_opt_tvec::<&str>(name)?.map(|v| v.iter().map(|s| s.to_string()).collect()).unwrap_or_default())
}

/// A classifier's class labels, as integers or strings.
#[derive(Debug, Clone)]
pub(crate) enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Labels {
    pub fn parse(node: &NodeProto, ints_attr: &str) -> TractResult<Self> {
        let ints = ints(node, ints_attr)?;
        let strings = strings(node, "classlabels_strings")?;
        match (ints.is_empty(), strings.is_empty()) {
            (false, true) => Ok(Self::Ints(ints)),
            (true, false) => Ok(Self::Strings(strings)),
            (true, true) => bail!("{} has neither {ints_attr} nor classlabels_strings", node.op_type),
            (false, false) => bail!("{} has both {ints_attr} and classlabels_strings", node.op_type),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Ints(v) => v.len(),
            Self::Strings(v) => v.len(),
        }
    }

    pub fn datum_type(&self) -> DatumType {
        match self {
            Self::Ints(_) => DatumType::I64,
            Self::Strings(_) => DatumType::String,
        }
    }

    /// The label tensor `[rows]` for the chosen classes.
    pub fn tensor(&self, picks: &[Pick]) -> TractResult<TValue> {
        let n = picks.len();
        let index = |p: &Pick| match *p {
            Pick::Class(i) => i,
            Pick::Raw(b) => usize::from(b),
        };
        Ok(match self {
            Self::Ints(v) => Tensor::from_shape(
                &[n],
                &picks
                    .iter()
                    .map(|p| match *p {
                        Pick::Class(i) => v[i],
                        Pick::Raw(b) => i64::from(b),
                    })
                    .collect::<Vec<_>>(),
            )?,
            Self::Strings(v) => tract_ndarray::Array1::from_iter(picks.iter().map(|p| v[index(p).min(v.len() - 1)].clone())).into_tensor(),
        }
        .into_tvalue())
    }
}

/// A classifier's decision for one row: a class index, or (where onnxruntime answers with the
/// bare integers 1 and 0 instead of class labels) positive or not.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pick {
    Class(usize),
    Raw(bool),
}

/// An evaluation error caused by the values of a request (an unseen category where the model
/// forbids one, say), told apart from runtime failures by downcasting.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}
