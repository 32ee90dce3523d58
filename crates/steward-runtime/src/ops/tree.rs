//! Native tree-ensemble evaluation for `TreeEnsembleClassifier` and `TreeEnsembleRegressor`
//! (scikit-learn forests and gradient boosting, XGBoost, LightGBM), following onnxruntime's
//! aggregation, base values, binary-class handling and post-transforms.

use std::collections::HashMap;

use tract_hir::internal::*;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;

use super::transform::{PostTransform, logistic, probit};
use super::{Kernel, Labels, OutShape, OutSpec, floats, ints, matrix, op, strings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    feature: u32,
    threshold: f32,
    mode: Mode,
    missing_true: bool,
    yes: u32,
    no: u32,
    /// Range of this leaf's entries in `weights`.
    first: u32,
    end: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// A parsed ensemble: every tree's nodes in one array, leaves pointing into one weight array.
#[derive(Debug)]
pub struct TreeEnsemble {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    weights: Vec<(u32, f32)>,
    targets: usize,
    max_feature: usize,
    aggregate: Aggregate,
    base_values: Vec<f32>,
    post: PostTransform,
}

impl TreeEnsemble {
    fn parse(node: &NodeProto, leaf_prefix: &str, targets: usize, aggregate: Aggregate) -> TractResult<Self> {
        let tree_ids = ints(node, "nodes_treeids")?;
        let node_ids = ints(node, "nodes_nodeids")?;
        let n = tree_ids.len();
        ensure!(n > 0, "{} has no nodes", node.op_type);
        let features = ints(node, "nodes_featureids")?;
        let values = floats(node, "nodes_values")?;
        ensure!(!values.is_empty() || node.get_attr_opt_vec::<f32>("nodes_values_as_tensor")?.is_none(), "nodes_values_as_tensor (double thresholds) is not supported");
        let modes = strings(node, "nodes_modes")?;
        let yes = ints(node, "nodes_truenodeids")?;
        let no = ints(node, "nodes_falsenodeids")?;
        let missing = ints(node, "nodes_missing_value_tracks_true")?;
        for (name, len) in [("nodes_nodeids", node_ids.len()), ("nodes_featureids", features.len()), ("nodes_values", values.len()), ("nodes_modes", modes.len()), ("nodes_truenodeids", yes.len()), ("nodes_falsenodeids", no.len())] {
            ensure!(len == n, "{name} has {len} entries, nodes_treeids has {n}");
        }
        ensure!(missing.is_empty() || missing.len() == n, "nodes_missing_value_tracks_true has {} entries for {n} nodes", missing.len());

        let mut index = HashMap::with_capacity(n);
        for i in 0..n {
            if index.insert((tree_ids[i], node_ids[i]), i as u32).is_some() {
                bail!("node {} of tree {} appears twice", node_ids[i], tree_ids[i]);
            }
        }
        let child = |tree: i64, id: i64| -> TractResult<u32> {
            index.get(&(tree, id)).copied().ok_or_else(|| format_err!("tree {tree} refers to missing node {id}"))
        };

        // Leaf weights, grouped per (tree, node).
        let cls = |s: &str| format!("{leaf_prefix}_{s}");
        let leaf_trees = ints(node, &cls("treeids"))?;
        let leaf_nodes = ints(node, &cls("nodeids"))?;
        let leaf_targets = ints(node, &cls("ids"))?;
        let leaf_weights = floats(node, &cls("weights"))?;
        let m = leaf_trees.len();
        for (name, len) in [(cls("nodeids"), leaf_nodes.len()), (cls("ids"), leaf_targets.len()), (cls("weights"), leaf_weights.len())] {
            ensure!(len == m, "{name} has {len} entries, {} has {m}", cls("treeids"));
        }
        let mut per_leaf: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        for j in 0..m {
            let at = child(leaf_trees[j], leaf_nodes[j])? as usize;
            let target = leaf_targets[j];
            ensure!(target >= 0 && (target as usize) < targets, "{} {target} is out of range for {targets} targets", cls("ids"));
            per_leaf[at].push((target as u32, leaf_weights[j]));
        }

        let mut nodes = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(m);
        for i in 0..n {
            let mode = match modes[i].as_str() {
                "BRANCH_LEQ" => Mode::Leq,
                "BRANCH_LT" => Mode::Lt,
                "BRANCH_GTE" => Mode::Gte,
                "BRANCH_GT" => Mode::Gt,
                "BRANCH_EQ" => Mode::Eq,
                "BRANCH_NEQ" => Mode::Neq,
                "LEAF" => Mode::Leaf,
                other => bail!("unknown node mode {other:?}"),
            };
            let first = weights.len() as u32;
            weights.extend_from_slice(&per_leaf[i]);
            let (y, f) = if mode == Mode::Leaf { (0, 0) } else { (child(tree_ids[i], yes[i])?, child(tree_ids[i], no[i])?) };
            ensure!(features[i] >= 0, "negative feature id {}", features[i]);
            nodes.push(Node {
                feature: features[i] as u32,
                threshold: values[i],
                mode,
                missing_true: missing.get(i).is_some_and(|&v| v != 0),
                yes: y,
                no: f,
                first,
                end: weights.len() as u32,
            });
        }
        // Roots: node 0 of each tree, in tree-id order.
        let mut trees: Vec<i64> = tree_ids.clone();
        trees.sort_unstable();
        trees.dedup();
        let roots = trees.iter().map(|&t| child(t, 0)).collect::<TractResult<Vec<_>>>()?;
        // Every path must end in a leaf: a cycle would loop forever.
        ensure!(acyclic(&nodes, &roots), "{} has a cycle", node.op_type);
        let max_feature = nodes.iter().filter(|n| n.mode != Mode::Leaf).map(|n| n.feature as usize).max().unwrap_or(0);
        let base_values = floats(node, "base_values")?;
        let post = PostTransform::parse(node.get_attr_opt::<&str>("post_transform")?)?;
        Ok(Self { nodes, roots, weights, targets, max_feature, aggregate, base_values, post })
    }

    #[inline]
    fn leaf(&self, root: u32, row: &[f32]) -> &Node {
        let mut node = &self.nodes[root as usize];
        while node.mode != Mode::Leaf {
            let x = row[node.feature as usize];
            let t = node.threshold;
            let go_yes = match node.mode {
                Mode::Leq => x <= t,
                Mode::Lt => x < t,
                Mode::Gte => x >= t,
                Mode::Gt => x > t,
                Mode::Eq => x == t,
                Mode::Neq => x != t,
                Mode::Leaf => unreachable!(),
            } || (node.missing_true && x.is_nan());
            node = &self.nodes[if go_yes { node.yes } else { node.no } as usize];
        }
        node
    }

    /// Aggregates the leaves a row reaches into `scores`, recording which targets were hit.
    fn accumulate(&self, row: &[f32], scores: &mut [f32], has: &mut [bool]) {
        scores.iter_mut().for_each(|s| *s = 0.0);
        has.iter_mut().for_each(|h| *h = false);
        for &root in &self.roots {
            let leaf = self.leaf(root, row);
            for &(t, w) in &self.weights[leaf.first as usize..leaf.end as usize] {
                let (s, h) = (&mut scores[t as usize], &mut has[t as usize]);
                *s = match self.aggregate {
                    Aggregate::Sum | Aggregate::Average => *s + w,
                    Aggregate::Min => if !*h || w < *s { w } else { *s },
                    Aggregate::Max => if !*h || w > *s { w } else { *s },
                };
                *h = true;
            }
        }
    }

    fn check_width(&self, cols: usize) -> TractResult<()> {
        ensure!(cols > self.max_feature, "the tree ensemble reads feature {} but rows have {cols} columns", self.max_feature);
        Ok(())
    }
}

fn acyclic(nodes: &[Node], roots: &[u32]) -> bool {
    // Depth-first from each root with a step budget: a tree of n nodes has paths shorter than n.
    let limit = nodes.len();
    roots.iter().all(|&root| {
        let mut stack = vec![(root, 0usize)];
        while let Some((i, depth)) = stack.pop() {
            if depth > limit {
                return false;
            }
            let n = &nodes[i as usize];
            if n.mode != Mode::Leaf {
                stack.push((n.yes, depth + 1));
                stack.push((n.no, depth + 1));
            }
        }
        true
    })
}

#[derive(Debug)]
struct Regressor {
    ensemble: TreeEnsemble,
}

pub(super) fn regressor(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let targets = node.get_attr_opt::<i64>("n_targets")?.unwrap_or(1).max(1) as usize;
    let aggregate = match node.get_attr_opt::<&str>("aggregate_function")?.unwrap_or("SUM") {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        "MIN" => Aggregate::Min,
        "MAX" => Aggregate::Max,
        other => bail!("aggregate_function {other:?} is not one of SUM, AVERAGE, MIN, MAX"),
    };
    let ensemble = TreeEnsemble::parse(node, "target", targets, aggregate)?;
    ensure!(ensemble.base_values.is_empty() || ensemble.base_values.len() == targets, "base_values has {} entries for {targets} targets", ensemble.base_values.len());
    op(Regressor { ensemble })
}

impl Kernel for Regressor {
    fn name(&self) -> &'static str {
        "TreeEnsembleRegressor"
    }
    fn outputs(&self) -> Vec<OutSpec> {
        vec![OutSpec { dt: DatumType::F32, shape: OutShape::Rows(vec![self.ensemble.targets]) }]
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let e = &self.ensemble;
        let (x, rows, cols) = matrix(&inputs[0])?;
        e.check_width(cols)?;
        let data = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let k = e.targets;
        let mut out = vec![0f32; rows * k];
        let mut has = vec![false; k];
        let n_trees = e.roots.len() as f32;
        for (row, scores) in data.chunks(cols).zip(out.chunks_mut(k)) {
            e.accumulate(row, scores, &mut has);
            for t in 0..k {
                let base = e.base_values.get(t).copied().unwrap_or(0.0);
                scores[t] = match e.aggregate {
                    Aggregate::Sum => scores[t] + base,
                    Aggregate::Average => scores[t] / n_trees + base,
                    Aggregate::Min | Aggregate::Max => (if has[t] { scores[t] } else { 0.0 }) + base,
                };
            }
            if k == 1 {
                if e.post == PostTransform::Probit {
                    scores[0] = probit(scores[0]);
                }
            } else {
                e.post.apply(scores);
            }
        }
        Ok(tvec!(Tensor::from_shape(&[rows, k], &out)?.into_tvalue()))
    }
}

#[derive(Debug)]
struct Classifier {
    ensemble: TreeEnsemble,
    labels: Labels,
    /// All leaf weights go to one class: the ensemble produces one score per row.
    binary_case: bool,
    weights_all_positive: bool,
}

pub(super) fn classifier(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let labels = Labels::parse(node, "classlabels_int64s")?;
    let ensemble = TreeEnsemble::parse(node, "class", labels.len(), Aggregate::Sum)?;
    let mut classes: Vec<u32> = ensemble.weights.iter().map(|w| w.0).collect();
    classes.sort_unstable();
    classes.dedup();
    let binary_case = labels.len() == 2 && classes.len() == 1;
    let weights_all_positive = ensemble.weights.iter().all(|w| w.1 >= 0.0);
    let b = ensemble.base_values.len();
    ensure!(b == 0 || b == 1 || b == labels.len(), "base_values has {b} entries for {} classes", labels.len());
    op(Classifier { ensemble, labels, binary_case, weights_all_positive })
}

impl Classifier {
    /// One row: raw per-class sums in, final probabilities out; returns the class index.
    fn finalize(&self, scores: &mut [f32], has: &mut [bool]) -> usize {
        let e = &self.ensemble;
        let base = &e.base_values;
        if scores.len() > 2 {
            for (k, &b) in base.iter().enumerate() {
                scores[k] = if has[k] { scores[k] + b } else { b };
                has[k] = true;
            }
            let mut best: Option<usize> = None;
            for k in 0..scores.len() {
                if has[k] && best.is_none_or(|b| scores[k] > scores[b]) {
                    best = Some(k);
                }
            }
            e.post.apply(scores);
            return best.unwrap_or(0);
        }
        // Two classes.
        if base.len() == 2 {
            scores[0] += base[0];
            scores[1] += base[1];
        } else if base.len() == 1 {
            scores[0] += base[0];
        }
        if self.binary_case {
            // One score per row, for the class the leaves vote for.
            let cls = self.ensemble.weights[0].0 as usize;
            let s = scores[cls];
            let positive;
            match e.post {
                PostTransform::Logistic => {
                    let p = logistic(s);
                    positive = p;
                    scores[1] = p;
                    scores[0] = 1.0 - p;
                }
                PostTransform::Probit => {
                    let p = probit(s);
                    positive = p;
                    scores[1] = p;
                    scores[0] = 1.0 - p;
                }
                _ => {
                    positive = s;
                    if self.weights_all_positive {
                        scores[1] = s;
                        scores[0] = 1.0 - s;
                    } else {
                        scores[1] = s;
                        scores[0] = -s;
                    }
                }
            }
            let threshold = if e.post == PostTransform::None && self.weights_all_positive { 0.5 } else if e.post == PostTransform::None { 0.0 } else { 0.5 };
            return usize::from(positive > threshold);
        }
        e.post.apply(scores);
        usize::from(scores[1] > scores[0])
    }
}

impl Kernel for Classifier {
    fn name(&self) -> &'static str {
        "TreeEnsembleClassifier"
    }
    fn outputs(&self) -> Vec<OutSpec> {
        vec![
            OutSpec { dt: self.labels.datum_type(), shape: OutShape::Rows(vec![]) },
            OutSpec { dt: DatumType::F32, shape: OutShape::Rows(vec![self.labels.len()]) },
        ]
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let e = &self.ensemble;
        let (x, rows, cols) = matrix(&inputs[0])?;
        e.check_width(cols)?;
        let data = x.try_as_plain_ram()?.as_slice::<f32>()?;
        let k = self.labels.len();
        let mut out = vec![0f32; rows * k];
        let mut has = vec![false; k];
        let mut picks = Vec::with_capacity(rows);
        for (row, scores) in data.chunks(cols).zip(out.chunks_mut(k)) {
            e.accumulate(row, scores, &mut has);
            picks.push(self.finalize(scores, &mut has));
        }
        Ok(tvec!(self.labels.tensor(&picks)?, Tensor::from_shape(&[rows, k], &out)?.into_tvalue()))
    }
}
