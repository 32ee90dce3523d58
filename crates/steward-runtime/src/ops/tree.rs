//! Native tree-ensemble evaluation for `TreeEnsembleClassifier` and `TreeEnsembleRegressor`
//! (scikit-learn forests and gradient boosting, XGBoost, LightGBM), following onnxruntime's
//! aggregation, base values, binary-class handling and post-transforms.

use std::collections::HashMap;

use tract_hir::internal::*;
use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;

use super::transform::{PostTransform, logistic, probit};
use super::{Kernel, Labels, OutShape, OutSpec, Pick, floats, ints, matrix, op, strings};

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
    /// One row, following onnxruntime's TreeAggregatorClassifier: raw per-class sums in,
    /// final scores out; returns the label.
    fn finalize(&self, s: &mut [f32], has: &mut [bool]) -> Pick {
        let e = &self.ensemble;
        let base = &e.base_values;
        if s.len() > 2 {
            for (k, &b) in base.iter().enumerate() {
                s[k] = if has[k] { s[k] + b } else { b };
                has[k] = true;
            }
            // The first maximum among classes that have a score.
            let mut best: Option<usize> = None;
            for k in 0..s.len() {
                if has[k] && best.is_none_or(|b| s[k] > s[b]) {
                    best = Some(k);
                }
            }
            e.post.apply(s);
            return Pick::Class(best.unwrap_or(0));
        }
        if s.len() == 1 {
            // One class: one score, transformed only by PROBIT.
            match base.len() {
                2 => s[0] += base[1],
                1 => s[0] += base[0],
                _ => {}
            }
            let positive = s[0] > 0.0;
            if e.post == PostTransform::Probit {
                s[0] = probit(s[0]);
            }
            return Pick::Raw(positive);
        }
        // Two classes.
        let mut was: i8 = -1;
        let mut single = false;
        match base.len() {
            2 if has[1] => {
                // onnxruntime adds class 0's sum here, not class 1's; kept for identical answers.
                s[1] = base[1] + s[0];
                s[0] = -s[1];
                has[1] = true;
            }
            2 => {
                s[1] += base[1];
                s[0] += base[0];
            }
            1 => {
                s[0] += base[0];
                single = !has[1];
            }
            0 => {
                was = 3;
                single = !has[1];
            }
            _ => {}
        }
        let pos = if !single && has[1] { s[1] } else if has[0] { s[0] } else { 0.0 };
        let pick = if self.binary_case {
            let positive = if self.weights_all_positive { pos > 0.5 } else { pos > 0.0 };
            was = match (self.weights_all_positive, positive) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => 3,
            };
            Pick::Class(usize::from(positive))
        } else {
            Pick::Raw(pos > 0.0)
        };
        if !single {
            e.post.apply(s);
            return pick;
        }
        let v = s[0];
        match (e.post, was) {
            // onnxruntime writes only the first column here; the second is its complement.
            (PostTransform::Probit, _) => {
                s[0] = probit(v);
                s[1] = 1.0 - s[0];
            }
            (_, 0 | 1) => {
                s[0] = 1.0 - v;
                s[1] = v;
            }
            (PostTransform::Logistic, 2 | 3) => {
                s[0] = logistic(-v);
                s[1] = logistic(v);
            }
            (_, 2 | 3) => {
                s[0] = -v;
                s[1] = v;
            }
            _ => s[1] = 0.0,
        }
        pick
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
