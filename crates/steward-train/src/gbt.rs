//! Gradient-boosted trees for binary classification (logistic loss): histogram splits over at
//! most 64 quantile bins per column, depth-wise growth to a fixed depth, Newton leaf values
//! with L2 shrinkage; and exact TreeSHAP (Lundberg et al. 2018, Algorithm 2) for reason codes.
//! Deterministic: no sampling.

use crate::TrainError;
use crate::design::{Dataset, Design};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Params {
    pub trees: usize,
    pub learning_rate: f64,
    pub max_depth: usize,
    /// Smallest hessian sum a child may have.
    pub min_child_weight: f64,
    /// L2 penalty on leaf values.
    pub lambda: f64,
}

impl Default for Params {
    fn default() -> Self {
        Self { trees: 150, learning_rate: 0.1, max_depth: 3, min_child_weight: 1.0, lambda: 1.0 }
    }
}

/// A node: a split (`x[feature] <= threshold` goes left) or a leaf with its value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    pub feature: usize,
    pub threshold: f64,
    pub left: usize,
    pub right: usize,
    pub value: f64,
    pub leaf: bool,
    /// Training rows that reached the node (TreeSHAP's cover).
    pub cover: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn predict(&self, x: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            let n = &self.nodes[i];
            if n.leaf {
                return n.value;
            }
            i = if x[n.feature] <= n.threshold { n.left } else { n.right };
        }
    }

    /// The cover-weighted mean of the leaves: the tree's expected output.
    pub fn expected(&self) -> f64 {
        let root = self.nodes[0].cover;
        self.nodes.iter().filter(|n| n.leaf).map(|n| n.value * n.cover / root).sum()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Gbt {
    pub design: Design,
    /// The log-odds every tree adds to.
    pub base: f64,
    pub trees: Vec<Tree>,
    pub params: Params,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Split candidates of one column: midpoints between consecutive distinct values, thinned to
/// at most `max_bins - 1` at quantiles.
fn edges(column: &[f64], max_bins: usize) -> Vec<f64> {
    let mut v: Vec<f64> = column.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mut distinct = v.clone();
    distinct.dedup();
    let mids = |a: &[f64]| a.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect::<Vec<f64>>();
    if distinct.len() <= max_bins {
        return mids(&distinct);
    }
    let mut out = Vec::new();
    for q in 1..max_bins {
        let i = q * n / max_bins;
        // The midpoint between the value at this quantile and the next larger one.
        let (lo, hi) = (v[i - 1], v[i..].iter().copied().find(|x| *x > v[i - 1]));
        if let Some(hi) = hi {
            let e = lo + (hi - lo) / 2.0;
            if out.last().is_none_or(|l| e > *l) {
                out.push(e);
            }
        }
    }
    out
}

struct Split {
    feature: usize,
    bin: usize,
    gain: f64,
}

impl Gbt {
    pub fn fit(data: &Dataset, params: &Params) -> Result<Self, TrainError> {
        data.check()?;
        if params.trees == 0 || params.max_depth == 0 || !(params.learning_rate > 0.0) || !(params.lambda >= 0.0) {
            return Err(TrainError::Invalid(format!("trees, max_depth and learning_rate must be positive and lambda at least 0, got {params:?}")));
        }
        let design = Design::fit(data);
        let rows = design.encode(data);
        let (n, d) = (rows.len(), design.means.len());
        let cuts: Vec<Vec<f64>> = (0..d).map(|j| edges(&rows.iter().map(|r| r[j]).collect::<Vec<f64>>(), 64)).collect();
        // Column-major bin indices: bin b holds values in (cuts[b-1], cuts[b]].
        let bins: Vec<Vec<u8>> = (0..d).map(|j| rows.iter().map(|r| cuts[j].partition_point(|e| *e < r[j]) as u8).collect()).collect();
        let y: Vec<f64> = data.label.iter().map(|v| f64::from(*v)).collect();
        let prior = y.iter().sum::<f64>() / n as f64;
        let base = (prior / (1.0 - prior)).ln();
        let mut score = vec![base; n];
        let mut trees = Vec::with_capacity(params.trees);
        for _ in 0..params.trees {
            let (g, h): (Vec<f64>, Vec<f64>) = score.iter().zip(&y).map(|(s, y)| (sigmoid(*s) - y, (sigmoid(*s) * (1.0 - sigmoid(*s))).max(1e-12))).unzip();
            let tree = grow(&bins, &cuts, &g, &h, params, n);
            for (s, r) in score.iter_mut().zip(&rows) {
                *s += tree.predict(r);
            }
            trees.push(tree);
        }
        Ok(Self { design, base, trees, params: params.clone() })
    }

    pub fn log_odds(&self, encoded: &[f64]) -> f64 {
        self.base + self.trees.iter().map(|t| t.predict(encoded)).sum::<f64>()
    }

    pub fn predict(&self, data: &Dataset) -> Vec<f64> {
        self.design.encode(data).iter().map(|r| sigmoid(self.log_odds(r))).collect()
    }

    /// Per raw feature, its exact SHAP value on the log-odds (one-hot columns summed): with
    /// the expected log-odds they add up to the row's log-odds.
    pub fn contributions(&self, encoded: &[f64]) -> Vec<f64> {
        let mut phi = vec![0.0; encoded.len()];
        for t in &self.trees {
            tree_shap(t, encoded, &mut phi);
        }
        let mut out = vec![0.0; self.design.features.len()];
        for (owner, v) in self.design.owners().into_iter().zip(phi) {
            out[owner] += v;
        }
        out
    }

    pub fn expected_log_odds(&self) -> f64 {
        self.base + self.trees.iter().map(Tree::expected).sum::<f64>()
    }
}

fn grow(bins: &[Vec<u8>], cuts: &[Vec<f64>], g: &[f64], h: &[f64], p: &Params, n: usize) -> Tree {
    let mut nodes = Vec::new();
    // (node index, rows, depth)
    let mut stack = vec![(0usize, (0..n).collect::<Vec<usize>>(), 0usize)];
    nodes.push(Node { feature: 0, threshold: 0.0, left: 0, right: 0, value: 0.0, leaf: true, cover: n as f64 });
    while let Some((at, rows, depth)) = stack.pop() {
        let (gs, hs): (f64, f64) = rows.iter().fold((0.0, 0.0), |a, i| (a.0 + g[*i], a.1 + h[*i]));
        nodes[at].value = -gs / (hs + p.lambda) * p.learning_rate;
        nodes[at].cover = rows.len() as f64;
        if depth == p.max_depth {
            continue;
        }
        let parent = gs * gs / (hs + p.lambda);
        let mut best: Option<Split> = None;
        for (j, column) in bins.iter().enumerate() {
            let width = cuts[j].len() + 1;
            if width < 2 {
                continue;
            }
            let mut hist = vec![(0.0, 0.0); width];
            for i in &rows {
                let b = &mut hist[column[*i] as usize];
                b.0 += g[*i];
                b.1 += h[*i];
            }
            let (mut gl, mut hl) = (0.0, 0.0);
            for (b, (gb, hb)) in hist.iter().enumerate().take(width - 1) {
                gl += gb;
                hl += hb;
                let (gr, hr) = (gs - gl, hs - hl);
                if hl < p.min_child_weight || hr < p.min_child_weight {
                    continue;
                }
                let gain = gl * gl / (hl + p.lambda) + gr * gr / (hr + p.lambda) - parent;
                // Strictly better only: the first best split wins ties, deterministically.
                if gain > 1e-12 && best.as_ref().is_none_or(|s| gain > s.gain) {
                    best = Some(Split { feature: j, bin: b, gain });
                }
            }
        }
        let Some(split) = best else { continue };
        let (left, right): (Vec<usize>, Vec<usize>) = rows.iter().partition(|i| (bins[split.feature][**i] as usize) <= split.bin);
        let (l, r) = (nodes.len(), nodes.len() + 1);
        for _ in 0..2 {
            nodes.push(Node { feature: 0, threshold: 0.0, left: 0, right: 0, value: 0.0, leaf: true, cover: 0.0 });
        }
        let node = &mut nodes[at];
        node.leaf = false;
        node.feature = split.feature;
        node.threshold = cuts[split.feature][split.bin];
        node.left = l;
        node.right = r;
        stack.push((r, right, depth + 1));
        stack.push((l, left, depth + 1));
    }
    Tree { nodes }
}

/// One element of TreeSHAP's path: a feature, the fractions of zero and one paths that flow
/// through it, and the permutation weight.
#[derive(Debug, Clone, Copy)]
struct PathElement {
    feature: Option<usize>,
    zero: f64,
    one: f64,
    weight: f64,
}

fn extend(path: &mut Vec<PathElement>, zero: f64, one: f64, feature: Option<usize>) {
    let l = path.len();
    path.push(PathElement { feature, zero, one, weight: if l == 0 { 1.0 } else { 0.0 } });
    for i in (0..l).rev() {
        path[i + 1].weight += one * path[i].weight * (i + 1) as f64 / (l + 1) as f64;
        path[i].weight = zero * path[i].weight * (l - i) as f64 / (l + 1) as f64;
    }
}

fn unwind(path: &mut Vec<PathElement>, i: usize) {
    let l = path.len() - 1;
    let (one, zero) = (path[i].one, path[i].zero);
    let mut next = path[l].weight;
    for j in (0..l).rev() {
        if one != 0.0 {
            let t = path[j].weight;
            path[j].weight = next * (l + 1) as f64 / ((j + 1) as f64 * one);
            next = t - path[j].weight * zero * (l - j) as f64 / (l + 1) as f64;
        } else {
            path[j].weight = path[j].weight * (l + 1) as f64 / (zero * (l - j) as f64);
        }
    }
    for j in i..l {
        path[j].feature = path[j + 1].feature;
        path[j].zero = path[j + 1].zero;
        path[j].one = path[j + 1].one;
    }
    path.pop();
}

/// The total weight the path would have with element `i` unwound.
fn unwound_sum(path: &[PathElement], i: usize) -> f64 {
    let l = path.len() - 1;
    let (one, zero) = (path[i].one, path[i].zero);
    let mut next = path[l].weight;
    let mut total = 0.0;
    for j in (0..l).rev() {
        if one != 0.0 {
            let t = next * (l + 1) as f64 / ((j + 1) as f64 * one);
            total += t;
            next = path[j].weight - t * zero * (l - j) as f64 / (l + 1) as f64;
        } else {
            total += path[j].weight / zero / ((l - j) as f64 / (l + 1) as f64);
        }
    }
    total
}

fn recurse(tree: &Tree, x: &[f64], phi: &mut [f64], node: usize, mut path: Vec<PathElement>, zero: f64, one: f64, feature: Option<usize>) {
    extend(&mut path, zero, one, feature);
    let n = &tree.nodes[node];
    if n.leaf {
        for i in 1..path.len() {
            let w = unwound_sum(&path, i);
            let e = path[i];
            if let Some(f) = e.feature {
                phi[f] += w * (e.one - e.zero) * n.value;
            }
        }
        return;
    }
    let (hot, cold) = if x[n.feature] <= n.threshold { (n.left, n.right) } else { (n.right, n.left) };
    let (mut iz, mut io) = (1.0, 1.0);
    if let Some(k) = path.iter().skip(1).position(|e| e.feature == Some(n.feature)).map(|k| k + 1) {
        (iz, io) = (path[k].zero, path[k].one);
        unwind(&mut path, k);
    }
    let cover = n.cover;
    recurse(tree, x, phi, hot, path.clone(), iz * tree.nodes[hot].cover / cover, io, Some(n.feature));
    recurse(tree, x, phi, cold, path, iz * tree.nodes[cold].cover / cover, 0.0, Some(n.feature));
}

/// Adds one tree's exact SHAP values for `x` into `phi` (one per column).
pub fn tree_shap(tree: &Tree, x: &[f64], phi: &mut [f64]) {
    recurse(tree, x, phi, 0, Vec::with_capacity(32), 1.0, 1.0, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::Column;
    use crate::rng::Rng;

    /// E[f(x) | x_S] with the tree's covers standing in for the data: TreeSHAP's value function.
    fn conditional(tree: &Tree, x: &[f64], known: u32, node: usize) -> f64 {
        let n = &tree.nodes[node];
        if n.leaf {
            return n.value;
        }
        if known & (1 << n.feature) != 0 {
            return conditional(tree, x, known, if x[n.feature] <= n.threshold { n.left } else { n.right });
        }
        let (l, r) = (&tree.nodes[n.left], &tree.nodes[n.right]);
        (l.cover * conditional(tree, x, known, n.left) + r.cover * conditional(tree, x, known, n.right)) / n.cover
    }

    /// Shapley values by their definition: every subset of the other features.
    fn brute_force(tree: &Tree, x: &[f64]) -> Vec<f64> {
        let m = x.len();
        let fact = |k: usize| (1..=k).map(|v| v as f64).product::<f64>();
        (0..m)
            .map(|i| {
                (0u32..1 << m)
                    .filter(|s| s & (1 << i) == 0)
                    .map(|s| {
                        let size = s.count_ones() as usize;
                        fact(size) * fact(m - size - 1) / fact(m) * (conditional(tree, x, s | (1 << i), 0) - conditional(tree, x, s, 0))
                    })
                    .sum()
            })
            .collect()
    }

    fn data(n: usize, seed: u64) -> Dataset {
        let mut r = Rng::new(seed);
        let cols: Vec<Vec<f64>> = (0..4).map(|_| (0..n).map(|_| r.normal()).collect()).collect();
        let label = (0..n)
            .map(|i| {
                // An interaction and a threshold: what trees are for.
                let z = 1.5 * f64::from(u8::from(cols[0][i] > 0.3)) + cols[1][i] * cols[2][i] - 0.8 * cols[3][i].abs();
                u8::from(r.uniform() < sigmoid(z))
            })
            .collect();
        Dataset { features: cols.into_iter().enumerate().map(|(j, c)| (format!("x{j}"), Column::Numeric(c))).collect(), label }
    }

    #[test]
    fn tree_shap_equals_brute_force_shapley_values() {
        let d = data(600, 4);
        let m = Gbt::fit(&d, &Params { trees: 12, max_depth: 3, ..Default::default() }).unwrap();
        let x = m.design.encode(&d);
        for row in x.iter().take(40) {
            let mut total = vec![0.0; 4];
            for t in &m.trees {
                let mut phi = vec![0.0; 4];
                tree_shap(t, row, &mut phi);
                let want = brute_force(t, row);
                for (a, b) in phi.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-12, "{phi:?} vs {want:?}");
                }
                total.iter_mut().zip(&phi).for_each(|(s, v)| *s += v);
            }
            // Local accuracy: the expected log-odds plus the contributions is the log-odds.
            assert!((m.expected_log_odds() + total.iter().sum::<f64>() - m.log_odds(row)).abs() < 1e-9);
        }
    }

    #[test]
    fn learns_interactions_a_linear_model_misses() {
        let (train, test) = (data(3000, 5), data(2000, 6));
        let g = Gbt::fit(&train, &Params::default()).unwrap();
        let l = crate::logistic::Logistic::fit(&train, 1.0).unwrap();
        let auc = |p: Vec<f64>| {
            let (pos, neg): (Vec<f64>, Vec<f64>) = (
                p.iter().zip(&test.label).filter(|(_, y)| **y == 1).map(|(p, _)| *p).collect(),
                p.iter().zip(&test.label).filter(|(_, y)| **y == 0).map(|(p, _)| *p).collect(),
            );
            let wins: f64 = pos.iter().map(|a| neg.iter().map(|b| if a > b { 1.0 } else if a == b { 0.5 } else { 0.0 }).sum::<f64>()).sum();
            wins / (pos.len() * neg.len()) as f64
        };
        let (ag, al) = (auc(g.predict(&test)), auc(l.predict(&test)));
        assert!(ag > 0.7 && ag > al + 0.03, "trees {ag:.3}, logistic {al:.3}");
        // Deterministic.
        assert_eq!(Gbt::fit(&train, &Params::default()).unwrap(), g);
    }
}
