//! Data drift per column, as Evidently's data drift preset computes it (evidently 0.7): the
//! default test for a column's type and size, each test's statistic exactly as scipy and
//! Evidently compute it, the drift decision against a threshold, and dataset drift as a share
//! of drifted columns. Every threshold and the test itself can be overridden.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::distance;
use crate::special::normal_cdf;
use crate::{StatsError, ks};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Numerical,
    Categorical,
}

/// A column's non-missing values (NaN and ±inf already dropped): numbers, category labels, or
/// category labels already counted (what a large categorical column is best passed as).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Numeric(Vec<f64>),
    Categorical(Vec<String>),
    Counts(BTreeMap<String, usize>),
}

/// A number as a category key: its shortest exact form, -0 as 0.
fn number_key(x: f64) -> String {
    if x == 0.0 { "0".to_owned() } else { x.to_string() }
}

/// A number's identity as a category (-0 and 0 are one).
fn number_bits(x: f64) -> u64 {
    if x == 0.0 { 0 } else { x.to_bits() }
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Self::Numeric(v) => v.len(),
            Self::Categorical(v) => v.len(),
            Self::Counts(c) => c.values().sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Count per category key (numbers in their shortest exact form, -0 as 0), in key order.
    /// Values are hashed, not formatted: only distinct values become strings.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        match self {
            Self::Numeric(v) => {
                let mut m: HashMap<u64, usize> = HashMap::new();
                v.iter().for_each(|x| *m.entry(number_bits(*x)).or_default() += 1);
                m.into_iter().map(|(bits, n)| (number_key(f64::from_bits(bits)), n)).collect()
            }
            Self::Categorical(v) => {
                let mut m: HashMap<&str, usize> = HashMap::new();
                v.iter().for_each(|k| *m.entry(k.as_str()).or_default() += 1);
                m.into_iter().map(|(k, n)| (k.to_owned(), n)).collect()
            }
            Self::Counts(c) => c.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StatTest {
    #[serde(rename = "ks")]
    Ks,
    #[serde(rename = "chisquare")]
    ChiSquare,
    #[serde(rename = "z")]
    Z,
    #[serde(rename = "jensenshannon")]
    JensenShannon,
    #[serde(rename = "wasserstein")]
    Wasserstein,
    #[serde(rename = "psi")]
    Psi,
    #[serde(rename = "kl_div")]
    Kl,
    #[serde(rename = "hellinger")]
    Hellinger,
}

impl StatTest {
    pub const ALL: [StatTest; 8] = [Self::Ks, Self::ChiSquare, Self::Z, Self::JensenShannon, Self::Wasserstein, Self::Psi, Self::Kl, Self::Hellinger];

    /// Evidently's name for the test.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ks => "ks",
            Self::ChiSquare => "chisquare",
            Self::Z => "z",
            Self::JensenShannon => "jensenshannon",
            Self::Wasserstein => "wasserstein",
            Self::Psi => "psi",
            Self::Kl => "kl_div",
            Self::Hellinger => "hellinger",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StatsError> {
        Self::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            StatsError::Value(format!("unknown stattest '{s}': expected one of {}", Self::ALL.map(|t| t.name()).join(", ")))
        })
    }

    /// Tests whose score is a p-value (drift when small); the others score a distance (drift
    /// when large).
    pub fn is_p_value(self) -> bool {
        matches!(self, Self::Ks | Self::ChiSquare | Self::Z)
    }

    /// Column types the test applies to (Evidently's): KS and Wasserstein need numbers,
    /// chi-square and Z compare categories, the binned distances take either.
    pub fn applies_to(self, ty: ColumnType) -> bool {
        match self {
            Self::Ks | Self::Wasserstein => ty == ColumnType::Numerical,
            Self::ChiSquare | Self::Z => ty == ColumnType::Categorical,
            _ => true,
        }
    }

    pub fn default_threshold(self) -> f64 {
        if self.is_p_value() { 0.05 } else { 0.1 }
    }

    /// Evidently's rule: `ks` drifts at p <= t, `chisquare` and `z` at p < t, distances at
    /// score >= t.
    pub fn drifted(self, score: f64, threshold: f64) -> bool {
        match self {
            Self::Ks => score <= threshold,
            Self::ChiSquare | Self::Z => score < threshold,
            _ => score >= threshold,
        }
    }
}

/// Evidently's default test: with at most 1,000 reference rows, KS for numeric columns with
/// more than 5 distinct values (reference and current together), else chi-square, or the Z-test
/// for at most 2 values; above 1,000 rows, normed Wasserstein for numeric columns with more than
/// 5 values, else Jensen–Shannon.
pub fn default_stattest(ty: ColumnType, reference_rows: usize, distinct_values: usize) -> StatTest {
    match (reference_rows <= 1000, ty) {
        (true, ColumnType::Numerical) if distinct_values > 5 => StatTest::Ks,
        (true, _) if distinct_values > 2 => StatTest::ChiSquare,
        (true, _) => StatTest::Z,
        (false, ColumnType::Numerical) if distinct_values > 5 => StatTest::Wasserstein,
        (false, _) => StatTest::JensenShannon,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    /// The test statistic (KS D, chi-square, z) or the distance.
    pub statistic: f64,
    /// For the p-value tests.
    pub p_value: Option<f64>,
}

impl TestResult {
    /// What the threshold is compared with: the p-value, else the distance.
    pub fn score(&self) -> f64 {
        self.p_value.unwrap_or(self.statistic)
    }
}

/// Distinct values of the two samples together, counted up to `cap` (the default test only
/// asks whether there are more than 5): the scan stops once `cap` values are seen.
pub fn distinct_values(reference: &Values, current: &Values, cap: usize) -> usize {
    if let (Values::Numeric(r), Values::Numeric(c)) = (reference, current) {
        let mut seen: Vec<u64> = Vec::with_capacity(cap);
        for b in r.iter().chain(c).map(|x| number_bits(*x)) {
            if !seen.contains(&b) {
                seen.push(b);
                if seen.len() >= cap {
                    break;
                }
            }
        }
        return seen.len();
    }
    let (mut keys, other) = (reference.counts(), current.counts());
    keys.extend(other);
    keys.len().min(cap)
}

/// Both samples' counts over the union of their keys, in key order.
fn aligned(reference: &Values, current: &Values) -> (Vec<String>, Vec<f64>, Vec<f64>) {
    let (rc, cc) = (reference.counts(), current.counts());
    let mut keys: Vec<String> = rc.keys().chain(cc.keys()).cloned().collect();
    keys.sort_unstable();
    keys.dedup();
    let r = keys.iter().map(|k| *rc.get(k).unwrap_or(&0) as f64).collect();
    let c = keys.iter().map(|k| *cc.get(k).unwrap_or(&0) as f64).collect();
    (keys, r, c)
}

fn numeric<'a>(v: &'a Values, test: StatTest) -> Result<&'a [f64], StatsError> {
    match v {
        Values::Numeric(x) => Ok(x),
        Values::Categorical(_) | Values::Counts(_) => Err(StatsError::Value(format!("{} needs a numeric column", test.name()))),
    }
}

/// Runs one test on two cleaned, non-empty samples.
pub fn run(test: StatTest, ty: ColumnType, reference: &Values, current: &Values) -> Result<TestResult, StatsError> {
    if reference.is_empty() || current.is_empty() {
        return Err(StatsError::Empty(format!("{} (reference and current need values)", test.name())));
    }
    Ok(match test {
        StatTest::Ks => {
            let (d, p) = ks::ks_2samp(numeric(reference, test)?, numeric(current, test)?);
            TestResult { statistic: d, p_value: Some(p) }
        }
        StatTest::ChiSquare => chi_square(reference, current),
        StatTest::Z => z_test(reference, current),
        StatTest::Wasserstein => {
            let (r, c) = (numeric(reference, test)?, numeric(current, test)?);
            TestResult { statistic: distance::wasserstein(r, c) / std_dev(r).max(0.001), p_value: None }
        }
        StatTest::JensenShannon => {
            let (rp, cp) = binned(ty, reference, current, false);
            TestResult { statistic: distance::jensen_shannon(&rp, &cp, None), p_value: None }
        }
        StatTest::Psi => {
            let (rp, cp) = binned(ty, reference, current, true);
            TestResult { statistic: distance::psi(&rp, &cp), p_value: None }
        }
        StatTest::Kl => {
            let (rp, cp) = binned(ty, reference, current, true);
            TestResult { statistic: distance::kl_divergence(&rp, &cp), p_value: None }
        }
        StatTest::Hellinger => TestResult { statistic: hellinger(ty, reference, current), p_value: None },
    })
}

/// Population standard deviation (ddof = 0).
fn std_dev(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// Pearson's chi-square of current counts against reference proportions scaled to the current
/// size, over the union of categories; a category unseen in the reference makes it infinite
/// (p = 0).
fn chi_square(reference: &Values, current: &Values) -> TestResult {
    let (keys, rc, cc) = aligned(reference, current);
    let scale = cc.iter().sum::<f64>() / rc.iter().sum::<f64>();
    let mut stat = 0.0;
    for (expected, observed) in rc.iter().zip(&cc) {
        let expected = expected * scale;
        stat += (observed - expected).powi(2) / expected;
    }
    let df = keys.len() as f64 - 1.0;
    let p = if stat.is_infinite() { 0.0 } else { crate::special::chi2_sf(stat, df) };
    TestResult { statistic: stat, p_value: Some(p) }
}

/// Two-proportion Z-test; "positive" is any value but the smallest. p = 2 (1 − Φ(|z|)), as
/// Evidently computes it (exactly 0 beyond |z| ≈ 8.3).
fn z_test(reference: &Values, current: &Values) -> TestResult {
    let (keys, rc, cc) = aligned(reference, current);
    if keys.len() == 1 {
        return TestResult { statistic: 0.0, p_value: Some(1.0) };
    }
    // Keys are sorted: the first is the smallest.
    let (n1, n2) = (rc.iter().sum::<f64>(), cc.iter().sum::<f64>());
    let p1 = (n1 - rc[0]) / n1;
    let p2 = (n2 - cc[0]) / n2;
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    TestResult { statistic: z, p_value: Some(2.0 * (1.0 - normal_cdf(z.abs()))) }
}

/// numpy's `histogram_bin_edges(x, "sturges")`: equal-width edges over [min, max].
fn sturges_edges(values: &[f64]) -> Vec<f64> {
    let (mut lo, mut hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if lo == hi {
        lo -= 0.5;
        hi += 0.5;
    }
    let ptp = values.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v)) - values.iter().fold(f64::INFINITY, |a, &v| a.min(v));
    let width = ptp / ((values.len() as f64).log2() + 1.0);
    let bins = if width > 0.0 { ((hi - lo) / width).ceil() as usize } else { 1 }.max(1);
    // numpy's linspace: start + i * step, the last edge exactly the stop.
    let step = (hi - lo) / bins as f64;
    let mut edges: Vec<f64> = (0..=bins).map(|i| lo + i as f64 * step).collect();
    edges[bins] = hi;
    edges
}

/// numpy's `histogram` counts: bin i is [e_i, e_{i+1}), the last bin closed.
fn histogram(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let bins = edges.len() - 1;
    let mut out = vec![0.0; bins];
    for &v in values {
        if v < edges[0] || v > edges[bins] {
            continue;
        }
        let i = edges.partition_point(|e| *e <= v).saturating_sub(1).min(bins - 1);
        out[i] += 1.0;
    }
    out
}

/// Evidently's `get_binned_data`: Sturges bins over reference and current together for a
/// numeric column with more than 20 distinct reference values, else one bin per value; as
/// proportions of each side, zeros optionally replaced by a small epsilon (per side).
fn binned(ty: ColumnType, reference: &Values, current: &Values, fill_zeroes: bool) -> (Vec<f64>, Vec<f64>) {
    let (mut rp, mut cp): (Vec<f64>, Vec<f64>) = match (ty, reference, current) {
        (ColumnType::Numerical, Values::Numeric(r), Values::Numeric(c)) if distinct(r) > 20 => {
            let all: Vec<f64> = r.iter().chain(c).copied().collect();
            let edges = sturges_edges(&all);
            let (rn, cn) = (r.len() as f64, c.len() as f64);
            (histogram(r, &edges).iter().map(|v| v / rn).collect(), histogram(c, &edges).iter().map(|v| v / cn).collect())
        }
        _ => {
            let (_, rc, cc) = aligned(reference, current);
            let (rn, cn) = (rc.iter().sum::<f64>(), cc.iter().sum::<f64>());
            (rc.iter().map(|v| v / rn).collect(), cc.iter().map(|v| v / cn).collect())
        }
    };
    if fill_zeroes {
        fill(&mut rp);
        fill(&mut cp);
    }
    (rp, cp)
}

fn distinct(x: &[f64]) -> usize {
    let mut v: Vec<u64> = x.iter().map(|f| number_bits(*f)).collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}

fn fill(p: &mut [f64]) {
    let min = p.iter().copied().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
    let eps = if min <= 1e-4 { min / 1e6 } else { 1e-4 };
    p.iter_mut().filter(|v| **v == 0.0).for_each(|v| *v = eps);
}

/// Evidently's Hellinger distance: over category proportions, or over Sturges density
/// histograms of the distinct values for numeric columns.
fn hellinger(ty: ColumnType, reference: &Values, current: &Values) -> f64 {
    let bc = match (ty, reference, current) {
        (ColumnType::Numerical, Values::Numeric(r), Values::Numeric(c)) => {
            let mut uniq: Vec<f64> = r.iter().chain(c).copied().collect();
            uniq.sort_by(f64::total_cmp);
            uniq.dedup();
            let edges = sturges_edges(&uniq);
            let density = |x: &[f64]| -> Vec<f64> {
                let h = histogram(x, &edges);
                let n = x.len() as f64;
                h.iter().zip(edges.windows(2)).map(|(c, e)| c / (n * (e[1] - e[0]))).collect()
            };
            let (hr, hc) = (density(r), density(c));
            let w = (edges[edges.len() - 1] - edges[0]) / (edges.len() - 1) as f64;
            hr.iter().zip(&hc).map(|(a, b)| (a * b).sqrt() * w).sum::<f64>()
        }
        _ => {
            let (_, rc, cc) = aligned(reference, current);
            let (rn, cn) = (rc.iter().sum::<f64>(), cc.iter().sum::<f64>());
            rc.iter().zip(&cc).filter(|(r, _)| **r > 0.0).map(|(r, c)| ((r / rn) * (c / cn)).sqrt()).sum::<f64>()
        }
    };
    (1.0 - bc.clamp(0.0, 1.0)).sqrt()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnDrift {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    pub stattest: StatTest,
    pub statistic: f64,
    pub p_value: Option<f64>,
    pub threshold: f64,
    pub drift: bool,
}

/// What to override in the defaults.
#[derive(Debug, Clone, Default)]
pub struct DriftOptions {
    /// The test for every column it applies to (see [`StatTest::applies_to`]).
    pub stattest: Option<StatTest>,
    pub threshold: Option<f64>,
    /// Share of drifted columns at which the dataset drifts (default 0.5, inclusive).
    pub drift_share: Option<f64>,
}

pub fn column_drift(name: &str, ty: ColumnType, reference: &Values, current: &Values, options: &DriftOptions) -> Result<ColumnDrift, StatsError> {
    // A chosen test applies where it can; other columns keep their default test and threshold.
    let chosen = options.stattest.filter(|t| t.applies_to(ty));
    let test = chosen.unwrap_or_else(|| default_stattest(ty, reference.len(), distinct_values(reference, current, 6)));
    let threshold = options.threshold.filter(|_| chosen.is_some() || options.stattest.is_none()).unwrap_or_else(|| test.default_threshold());
    let result = run(test, ty, reference, current).map_err(|e| StatsError::Value(format!("column '{name}': {e}")))?;
    Ok(ColumnDrift { name: name.to_owned(), column_type: ty, stattest: test, statistic: result.statistic, p_value: result.p_value, threshold, drift: test.drifted(result.score(), threshold) })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetDrift {
    pub dataset_drift: bool,
    pub drift_share: f64,
    pub number_of_columns: usize,
    pub number_of_drifted_columns: usize,
    pub share_of_drifted_columns: f64,
    pub columns: Vec<ColumnDrift>,
}

pub fn dataset_drift(columns: Vec<ColumnDrift>, options: &DriftOptions) -> DatasetDrift {
    let drift_share = options.drift_share.unwrap_or(0.5);
    let drifted = columns.iter().filter(|c| c.drift).count();
    let share = if columns.is_empty() { 0.0 } else { drifted as f64 / columns.len() as f64 };
    DatasetDrift {
        dataset_drift: !columns.is_empty() && share >= drift_share,
        drift_share,
        number_of_columns: columns.len(),
        number_of_drifted_columns: drifted,
        share_of_drifted_columns: share,
        columns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_choice_follows_evidently() {
        use ColumnType::*;
        assert_eq!(default_stattest(Numerical, 1000, 6), StatTest::Ks);
        assert_eq!(default_stattest(Numerical, 1000, 5), StatTest::ChiSquare);
        assert_eq!(default_stattest(Numerical, 1000, 2), StatTest::Z);
        assert_eq!(default_stattest(Categorical, 200, 3), StatTest::ChiSquare);
        assert_eq!(default_stattest(Categorical, 200, 2), StatTest::Z);
        assert_eq!(default_stattest(Numerical, 1001, 6), StatTest::Wasserstein);
        assert_eq!(default_stattest(Numerical, 1001, 5), StatTest::JensenShannon);
        assert_eq!(default_stattest(Categorical, 5000, 40), StatTest::JensenShannon);
    }

    #[test]
    fn sturges_edges_match_numpy() {
        // np.histogram_bin_edges(np.arange(10.0), "sturges") -> 6 bins over [0, 9].
        let e = sturges_edges(&(0..10).map(f64::from).collect::<Vec<_>>());
        assert_eq!(e.len(), 6);
        assert_eq!(e[5], 9.0);
        assert_eq!(histogram(&[0.0, 9.0, 1.8, 1.7], &e), vec![2.0, 1.0, 0.0, 0.0, 1.0]);
    }
}
