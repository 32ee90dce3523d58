//! Reference profiles: what a monitor keeps of a reference dataset, computed in one pass with
//! bounded memory. Per column: its type, row and missing counts, moments and range for numbers,
//! and a uniform reservoir sample of at most [`SAMPLE_BOUND`] values, from which the drift tests
//! that need raw values (KS, Wasserstein, chi-square over categories) are computed.

use serde::{Deserialize, Serialize};

use crate::drift::{ColumnType, Values};

/// Values kept per column. A drift test against a reference of this many values chooses
/// Evidently's large-sample tests (normed Wasserstein, Jensen–Shannon), whose error from
/// sampling is well below their 0.1 thresholds.
pub const SAMPLE_BOUND: usize = 5_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    pub count: u64,
    pub missing: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Numbers for numeric columns, category names for categorical ones.
    pub sample: ProfileSample,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProfileSample {
    Numeric(Vec<f64>),
    Categorical(Vec<String>),
}

impl ColumnProfile {
    pub fn values(&self) -> Values {
        match &self.sample {
            ProfileSample::Numeric(v) => Values::Numeric(v.clone()),
            ProfileSample::Categorical(v) => Values::Categorical(v.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

/// Builds one column's profile from a stream of values (`None` = missing).
pub struct ColumnProfiler {
    name: String,
    column_type: ColumnType,
    count: u64,
    missing: u64,
    seen: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    numbers: Vec<f64>,
    labels: Vec<String>,
    rng: u64,
}

impl ColumnProfiler {
    pub fn new(name: &str, column_type: ColumnType) -> Self {
        Self {
            name: name.to_owned(),
            column_type,
            count: 0,
            missing: 0,
            seen: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            numbers: Vec::new(),
            labels: Vec::new(),
            // Fixed seed: the same data gives the same profile.
            rng: 0x9e37_79b9_7f4a_7c15 ^ crate::stable_seed(name),
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Reservoir slot for the `seen`-th value (Algorithm R), if it is kept.
    fn slot(&mut self) -> Option<usize> {
        self.seen += 1;
        if self.seen as usize <= SAMPLE_BOUND {
            return Some(self.seen as usize - 1);
        }
        let j = self.next_random() % self.seen;
        (j < SAMPLE_BOUND as u64).then_some(j as usize)
    }

    pub fn push_number(&mut self, v: Option<f64>) {
        self.count += 1;
        let Some(v) = v.filter(|v| v.is_finite()) else {
            self.missing += 1;
            return;
        };
        let n = (self.count - self.missing) as f64;
        let delta = v - self.mean;
        self.mean += delta / n;
        self.m2 += delta * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        match self.slot() {
            Some(i) if i == self.numbers.len() => self.numbers.push(v),
            Some(i) => self.numbers[i] = v,
            None => {}
        }
    }

    pub fn push_label(&mut self, v: Option<&str>) {
        self.count += 1;
        let Some(v) = v else {
            self.missing += 1;
            return;
        };
        match self.slot() {
            Some(i) if i == self.labels.len() => self.labels.push(v.to_owned()),
            Some(i) => self.labels[i] = v.to_owned(),
            None => {}
        }
    }

    pub fn finish(self) -> ColumnProfile {
        let present = self.count - self.missing;
        let numeric = self.column_type == ColumnType::Numerical && present > 0;
        ColumnProfile {
            name: self.name,
            column_type: self.column_type,
            count: self.count,
            missing: self.missing,
            mean: numeric.then_some(self.mean),
            std: numeric.then(|| (self.m2 / present as f64).sqrt()),
            min: numeric.then_some(self.min),
            max: numeric.then_some(self.max),
            sample: if self.column_type == ColumnType::Numerical { ProfileSample::Numeric(self.numbers) } else { ProfileSample::Categorical(self.labels) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_and_bounded_sample() {
        let mut p = ColumnProfiler::new("x", ColumnType::Numerical);
        for i in 0..20_000 {
            p.push_number(if i % 10 == 0 { None } else { Some(f64::from(i % 100)) });
        }
        let c = p.finish();
        assert_eq!((c.count, c.missing), (20_000, 2_000));
        let ProfileSample::Numeric(s) = &c.sample else { panic!() };
        assert_eq!(s.len(), SAMPLE_BOUND);
        assert_eq!((c.min, c.max), (Some(1.0), Some(99.0)));
        assert!((c.mean.unwrap() - 50.0).abs() < 1e-9);
    }
}
