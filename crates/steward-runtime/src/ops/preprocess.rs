//! Element-wise and per-row `ai.onnx.ml` kernels: Scaler, Imputer, OneHotEncoder, Normalizer,
//! LinearClassifier and ZipMap (which yields the probability tensor itself).

use tract_hir::internal::*;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;

use super::transform::PostTransform;
use super::{Kernel, Labels, OutShape, OutSpec, Pick, floats, ints, matrix, op, strings};

fn float_like_input() -> Vec<OutSpec> {
    vec![OutSpec { dt: DatumType::F32, shape: OutShape::LikeInput }]
}

/// Broadcasts a per-column attribute: its own value per column when it has `cols` of them,
/// else its first value everywhere (onnxruntime's Imputer rule).
fn per_column_or_first(values: &[f32], cols: usize) -> Vec<f32> {
    if values.len() == cols { values.to_vec() } else { vec![values[0]; cols] }
}

/// Broadcasts a per-column attribute of length 1 or `cols`.
fn per_column(values: &[f32], cols: usize, what: &str) -> TractResult<Vec<f32>> {
    match values.len() {
        1 => Ok(vec![values[0]; cols]),
        n if n == cols => Ok(values.to_vec()),
        n => bail!("{what} has {n} values for {cols} columns"),
    }
}

fn rows_out(data: Vec<f32>, shape: &[usize]) -> TractResult<TValue> {
    Ok(Tensor::from_shape(shape, &data)?.into_tvalue())
}

#[derive(Debug)]
struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

pub(super) fn scaler(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    op(Scaler { offset: floats(node, "offset")?, scale: floats(node, "scale")? })
}

impl Kernel for Scaler {
    fn name(&self) -> &'static str {
        "Scaler"
    }
    fn outputs(&self) -> Vec<OutSpec> {
        float_like_input()
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, _rows, cols) = matrix(&inputs[0])?;
        let offset = if self.offset.is_empty() { vec![0.0; cols] } else { per_column(&self.offset, cols, "Scaler offset")? };
        let scale = if self.scale.is_empty() { vec![1.0; cols] } else { per_column(&self.scale, cols, "Scaler scale")? };
        let data = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let out = data.iter().enumerate().map(|(i, v)| (v - offset[i % cols]) * scale[i % cols]).collect();
        Ok(tvec!(rows_out(out, x.shape())?))
    }
}

#[derive(Debug)]
struct Imputer {
    values: Vec<f32>,
    replaced: f32,
}

pub(super) fn imputer(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let mut values = floats(node, "imputed_value_floats")?;
    if values.is_empty() {
        values = ints(node, "imputed_value_int64s")?.into_iter().map(|v| v as f32).collect();
    }
    ensure!(!values.is_empty(), "Imputer has no imputed values");
    let replaced = node
        .get_attr_opt::<f32>("replaced_value_float")?
        .or(node.get_attr_opt::<i64>("replaced_value_int64")?.map(|v| v as f32))
        .unwrap_or(0.0);
    op(Imputer { values, replaced })
}

impl Kernel for Imputer {
    fn name(&self) -> &'static str {
        "Imputer"
    }
    fn outputs(&self) -> Vec<OutSpec> {
        float_like_input()
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, _rows, cols) = matrix(&inputs[0])?;
        let values = per_column_or_first(&self.values, cols);
        let data = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let missing = |v: f32| if self.replaced.is_nan() { v.is_nan() } else { v == self.replaced };
        let out = data.iter().enumerate().map(|(i, &v)| if missing(v) { values[i % cols] } else { v }).collect();
        Ok(tvec!(rows_out(out, x.shape())?))
    }
}

#[derive(Debug)]
enum Categories {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

#[derive(Debug)]
struct OneHotEncoder {
    categories: Categories,
    /// Unseen categories encode as all zeros (1) or are an error (0).
    zeros: bool,
}

pub(super) fn one_hot_encoder(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let ints = ints(node, "cats_int64s")?;
    let strings = strings(node, "cats_strings")?;
    let categories = match (ints.is_empty(), strings.is_empty()) {
        (false, true) => Categories::Ints(ints),
        (true, false) => Categories::Strings(strings),
        _ => bail!("OneHotEncoder needs exactly one of cats_int64s and cats_strings"),
    };
    op(OneHotEncoder { categories, zeros: node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0 })
}

impl OneHotEncoder {
    fn width(&self) -> usize {
        match &self.categories {
            Categories::Ints(v) => v.len(),
            Categories::Strings(v) => v.len(),
        }
    }

    fn encode(&self, out: &mut Vec<f32>, position: Option<usize>, value: &dyn std::fmt::Display) -> TractResult<()> {
        let start = out.len();
        out.resize(start + self.width(), 0.0);
        match position {
            Some(p) => out[start + p] = 1.0,
            None if self.zeros => {}
            None => return Err(super::BadInput(format!("unseen category {value}")).into()),
        }
        Ok(())
    }
}

impl Kernel for OneHotEncoder {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }
    fn outputs(&self) -> Vec<OutSpec> {
        vec![OutSpec { dt: DatumType::F32, shape: OutShape::Append(self.width()) }]
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = &inputs[0];
        let mut shape: Vec<usize> = input.shape().to_vec();
        shape.push(self.width());
        let mut out = Vec::with_capacity(shape.iter().product());
        match &self.categories {
            Categories::Strings(cats) => {
                ensure!(input.datum_type() == DatumType::String, "OneHotEncoder with string categories got {:?} input", input.datum_type());
                for v in input.try_as_plain_ram()?.as_slice::<String>()? {
                    self.encode(&mut out, cats.iter().rposition(|c| c == v), v)?;
                }
            }
            Categories::Ints(cats) => {
                let as_int = input.cast_to::<f64>()?;
                for &v in as_int.try_as_plain_ram()?.as_slice::<f64>()? {
                    // Truncation toward zero, as onnxruntime casts; NaN matches no category.
                    let at = if v.is_nan() { None } else { cats.iter().rposition(|&c| c == v as i64) };
                    self.encode(&mut out, at, &v)?;
                }
            }
        }
        Ok(tvec!(rows_out(out, &shape)?))
    }
}

/// ZipMap turns probabilities into a sequence of maps; Steward returns the tensor itself.
#[derive(Debug)]
struct ZipMap;

pub(super) fn zip_map(_: &ParsingContext, _node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    op(ZipMap)
}

impl Kernel for ZipMap {
    fn name(&self) -> &'static str {
        "ZipMap"
    }
    fn outputs(&self) -> Vec<OutSpec> {
        float_like_input()
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        Ok(inputs)
    }
}

#[derive(Debug, Clone, Copy)]
enum Norm {
    Max,
    L1,
    L2,
}

#[derive(Debug)]
struct Normalizer {
    norm: Norm,
}

pub(super) fn normalizer(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let norm = match node.get_attr_opt::<&str>("norm")?.unwrap_or("MAX") {
        "MAX" => Norm::Max,
        "L1" => Norm::L1,
        "L2" => Norm::L2,
        other => bail!("Normalizer norm {other:?} is not one of MAX, L1, L2"),
    };
    op(Normalizer { norm })
}

impl Kernel for Normalizer {
    fn name(&self) -> &'static str {
        "Normalizer"
    }
    fn outputs(&self) -> Vec<OutSpec> {
        float_like_input()
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, _rows, cols) = matrix(&inputs[0])?;
        let mut out = x.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        for row in out.chunks_mut(cols.max(1)) {
            // A zero norm leaves the row as it is (onnxruntime's rule).
            match self.norm {
                Norm::Max => {
                    let max = row.iter().copied().fold(f32::MIN, f32::max);
                    if max != 0.0 {
                        row.iter_mut().for_each(|v| *v /= max);
                    }
                }
                Norm::L1 => {
                    let sum: f32 = row.iter().map(|v| v.abs()).sum();
                    if sum != 0.0 {
                        row.iter_mut().for_each(|v| *v /= sum);
                    }
                }
                Norm::L2 => {
                    let sum: f32 = row.iter().map(|v| v * v).sum();
                    if sum != 0.0 {
                        row.iter_mut().for_each(|v| *v = v.signum() * (*v * *v / sum).sqrt());
                    }
                }
            }
        }
        Ok(tvec!(rows_out(out, x.shape())?))
    }
}

#[derive(Debug)]
struct LinearClassifier {
    /// `[targets, features]`, row-major.
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    targets: usize,
    labels: Labels,
    post: PostTransform,
}

pub(super) fn linear_classifier(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let coefficients = floats(node, "coefficients")?;
    let intercepts = floats(node, "intercepts")?;
    let labels = Labels::parse(node, "classlabels_ints")?;
    let targets = if intercepts.is_empty() { labels.len().max(1) } else { intercepts.len() };
    ensure!(!coefficients.is_empty() && coefficients.len() % targets == 0, "LinearClassifier has {} coefficients for {targets} targets", coefficients.len());
    let post = PostTransform::parse(node.get_attr_opt::<&str>("post_transform")?)?;
    op(LinearClassifier { coefficients, intercepts, targets, labels, post })
}

impl LinearClassifier {
    /// Columns of the score output: one per class, two when a single score stands for a
    /// binary problem.
    fn score_columns(&self) -> usize {
        if self.targets == 1 && self.labels.len() == 2 { 2 } else { self.targets }
    }
}

impl Kernel for LinearClassifier {
    fn name(&self) -> &'static str {
        "LinearClassifier"
    }
    fn outputs(&self) -> Vec<OutSpec> {
        vec![
            OutSpec { dt: self.labels.datum_type(), shape: OutShape::Rows(vec![]) },
            OutSpec { dt: DatumType::F32, shape: OutShape::Rows(vec![self.score_columns()]) },
        ]
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, cols) = matrix(&inputs[0])?;
        let features = self.coefficients.len() / self.targets;
        ensure!(cols == features, "LinearClassifier expects {features} features, got {cols}");
        let data = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let width = self.score_columns();
        let mut scores = vec![0f32; rows * width];
        let mut picks = Vec::with_capacity(rows);
        let mut row_scores = vec![0f32; self.targets];
        for (r, xs) in data.chunks(cols.max(1)).enumerate().take(rows) {
            for (t, s) in row_scores.iter_mut().enumerate() {
                let w = &self.coefficients[t * features..(t + 1) * features];
                let dot: f32 = w.iter().zip(xs).map(|(a, b)| a * b).sum();
                *s = dot + self.intercepts.get(t).copied().unwrap_or(0.0);
            }
            let out = &mut scores[r * width..(r + 1) * width];
            if self.targets == 1 {
                // One score per row: onnxruntime applies no transform but PROBIT, and with two
                // labels writes [1 - s, s].
                let score = row_scores[0];
                let v = if self.post == PostTransform::Probit { super::transform::probit(score) } else { score };
                if width == 2 {
                    picks.push(Pick::Class(usize::from(score > 0.0)));
                    out[0] = 1.0 - v;
                    out[1] = v;
                } else {
                    picks.push(Pick::Raw(score > 0.0));
                    out[0] = v;
                }
            } else {
                picks.push(Pick::Class(argmax(&row_scores)));
                out.copy_from_slice(&row_scores);
                self.post.apply(out);
            }
        }
        Ok(tvec!(self.labels.tensor(&picks)?, rows_out(scores, &[rows, width])?))
    }
}

/// Index of the first maximum.
pub(super) fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}
