//! Training data and its encoding: numeric columns (NaN for missing) imputed with the training
//! mean, categorical columns one-hot over the training categories (an unseen or missing
//! category is all zeros), then every encoded column standardised with the training mean and
//! standard deviation. The same encoding is written into the ONNX graph, so the served model
//! takes the raw columns.

use crate::TrainError;

#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    Numeric(Vec<f64>),
    Categorical(Vec<Option<String>>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Numeric(v) => v.len(),
            Column::Categorical(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Features by name, and a 0/1 label per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub features: Vec<(String, Column)>,
    pub label: Vec<u8>,
}

impl Dataset {
    pub fn rows(&self) -> usize {
        self.label.len()
    }

    /// The first `at` rows and the rest.
    pub fn split(&self, at: usize) -> (Dataset, Dataset) {
        let part = |range: std::ops::Range<usize>| Dataset {
            features: self
                .features
                .iter()
                .map(|(name, c)| {
                    let c = match c {
                        Column::Numeric(v) => Column::Numeric(v[range.clone()].to_vec()),
                        Column::Categorical(v) => Column::Categorical(v[range.clone()].to_vec()),
                    };
                    (name.clone(), c)
                })
                .collect(),
            label: self.label[range].to_vec(),
        };
        let at = at.min(self.rows());
        (part(0..at), part(at..self.rows()))
    }

    pub fn check(&self) -> Result<(), TrainError> {
        if self.features.is_empty() {
            return Err(TrainError::Invalid("no feature columns".into()));
        }
        if self.rows() < 10 {
            return Err(TrainError::Invalid(format!("{} labelled rows; training needs at least 10", self.rows())));
        }
        for (name, c) in &self.features {
            if c.len() != self.rows() {
                return Err(TrainError::Invalid(format!("feature '{name}' has {} rows, the label {}", c.len(), self.rows())));
            }
        }
        if let Some(bad) = self.label.iter().find(|v| **v > 1) {
            return Err(TrainError::Invalid(format!("labels must be 0 or 1, got {bad}")));
        }
        let positives = self.label.iter().filter(|v| **v == 1).count();
        if positives == 0 || positives == self.rows() {
            return Err(TrainError::Invalid("the label has a single class; training needs both 0 and 1".into()));
        }
        Ok(())
    }
}

/// How one raw feature becomes encoded columns.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Missing values become `impute`.
    Numeric { impute: f64 },
    /// One column per category, in this order.
    OneHot { categories: Vec<String> },
}

/// A fitted encoding of every feature, and the standardisation of the encoded columns.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Design {
    pub features: Vec<(String, Encoding)>,
    pub means: Vec<f64>,
    pub stds: Vec<f64>,
}

impl Design {
    pub fn fit(data: &Dataset) -> Self {
        let features: Vec<(String, Encoding)> = data
            .features
            .iter()
            .map(|(name, c)| {
                let e = match c {
                    Column::Numeric(v) => {
                        let present: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
                        let impute = if present.is_empty() { 0.0 } else { present.iter().sum::<f64>() / present.len() as f64 };
                        Encoding::Numeric { impute }
                    }
                    Column::Categorical(v) => {
                        let mut categories: Vec<String> = v.iter().flatten().cloned().collect();
                        categories.sort_unstable();
                        categories.dedup();
                        Encoding::OneHot { categories }
                    }
                };
                (name.clone(), e)
            })
            .collect();
        let mut design = Design { features, means: Vec::new(), stds: Vec::new() };
        let raw = design.encode_raw(data);
        let n = data.rows() as f64;
        for col in &raw {
            let mean = col.iter().sum::<f64>() / n;
            let var = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            design.means.push(mean);
            // A constant column stays centred at 0 rather than dividing by 0.
            design.stds.push(if var > 0.0 { var.sqrt() } else { 1.0 });
        }
        design
    }

    /// Encoded column names: the feature, or `feature=category`.
    pub fn columns(&self) -> Vec<String> {
        self.features
            .iter()
            .flat_map(|(name, e)| match e {
                Encoding::Numeric { .. } => vec![name.clone()],
                Encoding::OneHot { categories } => categories.iter().map(|c| format!("{name}={c}")).collect(),
            })
            .collect()
    }

    /// Which raw feature each encoded column belongs to.
    pub fn owners(&self) -> Vec<usize> {
        self.features
            .iter()
            .enumerate()
            .flat_map(|(i, (_, e))| match e {
                Encoding::Numeric { .. } => vec![i],
                Encoding::OneHot { categories } => vec![i; categories.len()],
            })
            .collect()
    }

    /// Encoded, unstandardised columns.
    fn encode_raw(&self, data: &Dataset) -> Vec<Vec<f64>> {
        let mut out = Vec::new();
        for (name, e) in &self.features {
            let column = data.features.iter().find(|c| &c.0 == name).map(|c| &c.1);
            match (e, column) {
                (Encoding::Numeric { impute }, Some(Column::Numeric(v))) => out.push(v.iter().map(|x| if x.is_finite() { *x } else { *impute }).collect()),
                (Encoding::OneHot { categories }, Some(Column::Categorical(v))) => {
                    for c in categories {
                        out.push(v.iter().map(|x| f64::from(u8::from(x.as_deref() == Some(c.as_str())))).collect());
                    }
                }
                (Encoding::Numeric { impute }, _) => out.push(vec![*impute; data.rows()]),
                (Encoding::OneHot { categories }, _) => out.extend(std::iter::repeat_n(vec![0.0; data.rows()], categories.len())),
            }
        }
        out
    }

    /// Standardised rows (row-major), ready for a model.
    pub fn encode(&self, data: &Dataset) -> Vec<Vec<f64>> {
        let raw = self.encode_raw(data);
        (0..data.rows()).map(|r| raw.iter().enumerate().map(|(j, col)| (col[r] - self.means[j]) / self.stds[j]).collect()).collect()
    }
}
