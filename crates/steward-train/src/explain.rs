//! Reason codes for served predictions: a trained model travels inside its ONNX file (metadata
//! key [`METADATA_KEY`], JSON) so that whoever serves the file can say, per row, which features
//! pushed the prediction towards the adverse outcome — exact TreeSHAP for trees, coefficient ×
//! standardised value for logistic regression.

use serde::{Deserialize, Serialize};

use crate::design::Dataset;
use crate::gbt::Gbt;
use crate::logistic::Logistic;

/// The ONNX `metadata_props` key that carries the explainer.
pub const METADATA_KEY: &str = "steward.explainer";

/// Reason codes per row.
pub const DEFAULT_REASONS: usize = 4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Explainer {
    Logistic(Logistic),
    Gbt(Gbt),
}

/// One reason: a feature and its contribution to the log-odds of the adverse outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub feature: String,
    pub contribution: f64,
}

impl Explainer {
    pub fn from_json(text: &str) -> Result<Self, crate::TrainError> {
        serde_json::from_str(text).map_err(|e| crate::TrainError::Invalid(format!("explainer: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an explainer serialises")
    }

    /// The raw feature names, in the model's order.
    pub fn features(&self) -> Vec<String> {
        let design = match self {
            Explainer::Logistic(m) => &m.design,
            Explainer::Gbt(m) => &m.design,
        };
        design.features.iter().map(|f| f.0.clone()).collect()
    }

    /// Per row, the `k` features pushing it most towards class 1 (positive contributions only,
    /// largest first).
    pub fn reason_codes(&self, data: &Dataset, k: usize) -> Vec<Vec<Reason>> {
        let names = self.features();
        let rows = match self {
            Explainer::Logistic(m) => m.design.encode(data).iter().map(|r| m.contributions(r)).collect::<Vec<_>>(),
            Explainer::Gbt(m) => m.design.encode(data).iter().map(|r| m.contributions(r)).collect::<Vec<_>>(),
        };
        rows.iter()
            .map(|c| crate::logistic::reason_codes(&names, c, k).into_iter().map(|(feature, contribution)| Reason { feature, contribution }).collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::Column;
    use crate::gbt::Params;
    use crate::rng::Rng;

    #[test]
    fn explainers_travel_as_json_and_rank_the_models_contributions() {
        let mut r = Rng::new(5);
        let n = 400;
        let x: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let c: Vec<Option<String>> = (0..n).map(|_| Some(["a", "b"][r.choose(&[0.5, 0.5])].to_owned())).collect();
        let label = x.iter().zip(&c).map(|(x, c)| u8::from(r.uniform() < 1.0 / (1.0 + (-(x + if c.as_deref() == Some("b") { 1.0 } else { -1.0 })).exp()))).collect();
        let data = Dataset { features: vec![("x".into(), Column::Numeric(x)), ("c".into(), Column::Categorical(c))], label };
        let lr = Logistic::fit(&data, 1.0).unwrap();
        let gbt = Gbt::fit(&data, &Params { trees: 20, ..Default::default() }).unwrap();
        for e in [Explainer::Logistic(lr.clone()), Explainer::Gbt(gbt.clone())] {
            let back = Explainer::from_json(&e.to_json()).unwrap();
            assert_eq!(back, e);
            let codes = back.reason_codes(&data, 1);
            let encoded = match &e {
                Explainer::Logistic(m) => m.design.encode(&data),
                Explainer::Gbt(m) => m.design.encode(&data),
            };
            for (row, got) in encoded.iter().zip(&codes) {
                let contributions = match &e {
                    Explainer::Logistic(m) => m.contributions(row),
                    Explainer::Gbt(m) => m.contributions(row),
                };
                let best = contributions.iter().copied().enumerate().filter(|(_, v)| *v > 0.0).max_by(|a, b| a.1.total_cmp(&b.1));
                assert_eq!(got.first().map(|r| (r.feature.clone(), r.contribution)), best.map(|(i, v)| (["x", "c"][i].to_owned(), v)));
            }
        }
        assert!(Explainer::from_json("{\"kind\": \"forest\"}").unwrap_err().to_string().contains("explainer"));
    }
}
