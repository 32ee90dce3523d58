//! Trained models as ONNX graphs the runtime (and onnxruntime) serve: one input per raw feature
//! (`FLOAT [N, 1]` numbers, `STRING [N, 1]` categories), the design's imputation and one-hot
//! encoding, standardisation, then the model; outputs `label` (INT64 `[N]`) and
//! `probabilities` (FLOAT `[N, 2]`).

use crate::design::{Design, Encoding};
use crate::gbt::Gbt;
use crate::logistic::Logistic;
use crate::onnx::{Attr, Elem, Model, Node, ValueInfo};

const ML: &str = "ai.onnx.ml";

/// The graph from raw inputs to the standardised encoded matrix, named `standardised`.
fn encoding(design: &Design, nodes: &mut Vec<Node>, inputs: &mut Vec<ValueInfo>) {
    let mut parts = Vec::new();
    for (name, e) in &design.features {
        match e {
            Encoding::Numeric { impute } => {
                inputs.push(ValueInfo::new(name, Elem::Float, &[None, Some(1)]));
                let out = format!("{name}__imputed");
                nodes.push(Node::new("Imputer", ML, &[name], &[&out], vec![("imputed_value_floats", Attr::Floats(vec![*impute as f32])), ("replaced_value_float", Attr::Float(f32::NAN))]));
                parts.push(out);
            }
            Encoding::OneHot { categories } if !categories.is_empty() => {
                inputs.push(ValueInfo::new(name, Elem::String, &[None, Some(1)]));
                let (hot, flat) = (format!("{name}__onehot"), format!("{name}__flat"));
                nodes.push(Node::new("OneHotEncoder", ML, &[name], &[&hot], vec![("cats_strings", Attr::Strings(categories.clone())), ("zeros", Attr::Int(1))]));
                nodes.push(Node::new("Flatten", "", &[&hot], &[&flat], vec![("axis", Attr::Int(1))]));
                parts.push(flat);
            }
            Encoding::OneHot { .. } => {}
        }
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    nodes.push(Node::new("Concat", "", &parts, &["encoded"], vec![("axis", Attr::Int(1))]));
    nodes.push(Node::new(
        "Scaler",
        ML,
        &["encoded"],
        &["standardised"],
        vec![("offset", Attr::Floats(design.means.iter().map(|v| *v as f32).collect())), ("scale", Attr::Floats(design.stds.iter().map(|v| (1.0 / v) as f32).collect()))],
    ));
}

fn outputs() -> Vec<ValueInfo> {
    vec![ValueInfo::new("label", Elem::Int64, &[None]), ValueInfo::new("probabilities", Elem::Float, &[None, Some(2)])]
}

/// A logistic model as ONNX: a two-class `LinearClassifier` whose class-0 scores are 0, so
/// that its softmax is exactly the logistic probability.
pub fn logistic(model: &Logistic, metadata: Vec<(String, String)>) -> Model {
    let (mut nodes, mut inputs) = (Vec::new(), Vec::new());
    encoding(&model.design, &mut nodes, &mut inputs);
    let d = model.coefficients.len();
    let mut coefficients = vec![0f32; d];
    coefficients.extend(model.coefficients.iter().map(|w| *w as f32));
    nodes.push(Node::new(
        "LinearClassifier",
        ML,
        &["standardised"],
        &["label", "probabilities"],
        vec![
            ("coefficients", Attr::Floats(coefficients)),
            ("intercepts", Attr::Floats(vec![0.0, model.intercept as f32])),
            ("classlabels_ints", Attr::Ints(vec![0, 1])),
            ("post_transform", Attr::String("SOFTMAX".into())),
        ],
    ));
    Model { name: "steward_logistic".into(), inputs, outputs: outputs(), nodes, initializers: Vec::new(), metadata }
}

/// A tree ensemble as ONNX: a `TreeEnsembleClassifier` with every leaf weighing on one score
/// (class id 0), the base log-odds as its single base value and a logistic post-transform —
/// the binary layout onnxruntime and Steward's runtime read as `[1 - p, p]`.
pub fn gbt(model: &Gbt, metadata: Vec<(String, String)>) -> Model {
    let (mut nodes, mut inputs) = (Vec::new(), Vec::new());
    encoding(&model.design, &mut nodes, &mut inputs);
    let (mut tree_ids, mut node_ids, mut features, mut modes, mut values, mut trues, mut falses) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut class_trees, mut class_nodes, mut class_ids, mut weights) = (vec![], vec![], vec![], vec![]);
    for (t, tree) in model.trees.iter().enumerate() {
        for (i, n) in tree.nodes.iter().enumerate() {
            tree_ids.push(t as i64);
            node_ids.push(i as i64);
            features.push(n.feature as i64);
            modes.push(if n.leaf { "LEAF" } else { "BRANCH_LEQ" }.to_owned());
            values.push(n.threshold as f32);
            trues.push(n.left as i64);
            falses.push(n.right as i64);
            if n.leaf {
                class_trees.push(t as i64);
                class_nodes.push(i as i64);
                class_ids.push(0);
                weights.push(n.value as f32);
            }
        }
    }
    nodes.push(Node::new(
        "TreeEnsembleClassifier",
        ML,
        &["standardised"],
        &["label", "probabilities"],
        vec![
            ("nodes_treeids", Attr::Ints(tree_ids)),
            ("nodes_nodeids", Attr::Ints(node_ids)),
            ("nodes_featureids", Attr::Ints(features)),
            ("nodes_modes", Attr::Strings(modes)),
            ("nodes_values", Attr::Floats(values)),
            ("nodes_truenodeids", Attr::Ints(trues)),
            ("nodes_falsenodeids", Attr::Ints(falses)),
            ("class_treeids", Attr::Ints(class_trees)),
            ("class_nodeids", Attr::Ints(class_nodes)),
            ("class_ids", Attr::Ints(class_ids)),
            ("class_weights", Attr::Floats(weights)),
            ("classlabels_int64s", Attr::Ints(vec![0, 1])),
            ("base_values", Attr::Floats(vec![model.base as f32])),
            ("post_transform", Attr::String("LOGISTIC".into())),
        ],
    ));
    Model { name: "steward_gbt".into(), inputs, outputs: outputs(), nodes, initializers: Vec::new(), metadata }
}

#[cfg(test)]
mod tests {
    use steward_runtime::{Data, Model as Runtime, Tensor};

    use super::*;
    use crate::design::{Column, Dataset};
    use crate::rng::Rng;

    /// A dataset with a missing-number and a missing-category pattern, and the runtime inputs
    /// for it plus one row with a missing number and an unseen category.
    fn fixture() -> (Dataset, Vec<Tensor>, Dataset) {
        let mut r = Rng::new(9);
        let n = 500;
        let (mut a, mut c, mut y) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let x = 40.0 + 10.0 * r.normal();
            let cat = ["east", "west", "north"][r.choose(&[0.3, 0.3, 0.4])];
            y.push(u8::from(r.uniform() < 1.0 / (1.0 + (-(x - 40.0) / 8.0 - f64::from(u8::from(cat == "west"))).exp())));
            a.push(if i % 17 == 0 { f64::NAN } else { x });
            c.push(if i % 23 == 0 { None } else { Some(cat.to_owned()) });
        }
        let data = Dataset { features: vec![("age".into(), Column::Numeric(a.clone())), ("region".into(), Column::Categorical(c.clone()))], label: y };
        let mut ages: Vec<f32> = a.iter().map(|v| *v as f32).collect();
        let mut regions: Vec<String> = c.iter().map(|v| v.clone().unwrap_or_default()).collect();
        ages.push(f32::NAN);
        regions.push("atlantis".into());
        let rows = ages.len();
        let inputs = vec![Tensor::new("age", vec![rows, 1], Data::Fp32(ages.clone())), Tensor::new("region", vec![rows, 1], Data::Bytes(regions.clone()))];
        let mut as_served = data.clone();
        as_served.features = vec![
            ("age".into(), Column::Numeric(ages.iter().map(|v| f64::from(*v)).collect())),
            ("region".into(), Column::Categorical(regions.iter().map(|s| (!s.is_empty()).then(|| s.clone())).collect())),
        ];
        as_served.label.push(0);
        (data, inputs, as_served)
    }

    /// Serves the ONNX bytes and checks probabilities (to f32 precision) and labels.
    fn served_equals(onnx: &[u8], inputs: &[Tensor], want: &[f64]) {
        let runtime = Runtime::load(onnx).unwrap();
        assert_eq!(runtime.signature().inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["age", "region"]);
        let out = runtime.predict(inputs).unwrap();
        let Data::Fp32(probs) = &out[1].data else { panic!("probabilities are FP32") };
        let Data::Int64(labels) = &out[0].data else { panic!("labels are INT64") };
        for (i, w) in want.iter().enumerate() {
            assert!((f64::from(probs[2 * i + 1]) - w).abs() < 1e-5, "row {i}: {} vs {w}", probs[2 * i + 1]);
            assert!((f64::from(probs[2 * i] + probs[2 * i + 1]) - 1.0).abs() < 1e-6);
            assert_eq!(labels[i], i64::from(*w > 0.5), "row {i}");
        }
    }

    #[test]
    fn the_runtime_serves_what_logistic_regression_learned() {
        let (data, inputs, as_served) = fixture();
        let m = Logistic::fit(&data, 1.0).unwrap();
        served_equals(&logistic(&m, vec![]).to_bytes(), &inputs, &m.predict(&as_served));
    }

    #[test]
    fn the_runtime_serves_what_boosting_learned() {
        let (data, inputs, as_served) = fixture();
        let m = Gbt::fit(&data, &crate::gbt::Params { trees: 40, ..Default::default() }).unwrap();
        served_equals(&gbt(&m, vec![("steward.kind".into(), "gbt".into())]).to_bytes(), &inputs, &m.predict(&as_served));
    }
}
