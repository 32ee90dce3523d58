//! Synthetic credit applications: correlated applicant features, a known default process, a
//! timestamp per application, and covariate or concept drift injected from a given row.
//! Deterministic for a seed.
//!
//! The process. Age band and region are drawn first; income is log-normal with an age and a
//! region effect; employment tenure grows with age; debt-to-income falls with income;
//! utilisation rises with debt-to-income; late payments in 24 months are Poisson, rising with
//! utilisation and debt-to-income; credit lines grow with tenure; the loan is a log-normal
//! multiple of income. The default is Bernoulli with
//! `logit p = β0 + β_util·util + β_dti·dti + β_late·late − β_inc·(ln income − 10.5) − β_ten·tenure/12 + region`.
//! The age band is not in the process: it is kept for fairness checks only.
//!
//! Covariate drift (from its row on) lowers incomes and raises utilisation and the share of the
//! south region; the default process is unchanged. Concept drift changes the process itself:
//! utilisation and late payments matter less, debt-to-income much more, and tenure reverses.

use crate::TrainError;
use crate::rng::Rng;

/// A generated column.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Text(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<(String, Values)>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, v)| match v {
            Values::Int(x) => x.len(),
            Values::Float(x) => x.len(),
            Values::Text(x) => x.len(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub rows: usize,
    pub seed: u64,
    /// The first application's time, milliseconds since the epoch.
    pub start_ms: i64,
    /// Mean time between applications.
    pub interval_ms: i64,
    /// Row from which covariate drift applies.
    pub covariate_drift_at: Option<usize>,
    /// Row from which concept drift applies.
    pub concept_drift_at: Option<usize>,
    /// 0..1: how far each drift goes.
    pub strength: f64,
}

impl Default for SynthOptions {
    fn default() -> Self {
        // 2025-01-01T00:00:00Z, an application every 3 minutes on average.
        Self { rows: 10_000, seed: 0, start_ms: 1_735_689_600_000, interval_ms: 180_000, covariate_drift_at: None, concept_drift_at: None, strength: 1.0 }
    }
}

pub const AGE_BANDS: [&str; 5] = ["18-25", "26-35", "36-50", "51-65", "66+"];
pub const REGIONS: [&str; 5] = ["north", "south", "east", "west", "central"];

/// The model features (everything but id, time, age band and the label).
pub const FEATURES: [&str; 8] = ["income", "debt_to_income", "utilisation", "late_payments_24m", "tenure_months", "credit_lines", "loan_amount", "region"];

/// One applicant's drawn features.
#[derive(Debug, Clone, PartialEq)]
pub struct Applicant {
    pub age_band: usize,
    pub region: usize,
    pub income: f64,
    pub tenure_months: i64,
    pub debt_to_income: f64,
    pub utilisation: f64,
    pub late_payments_24m: i64,
    pub credit_lines: i64,
    pub loan_amount: f64,
}

/// The default probability of an applicant under the original process or, with `concept`
/// drift of the given strength, the changed one.
pub fn default_probability(a: &Applicant, concept: f64) -> f64 {
    let mix = |before: f64, after: f64| before + concept * (after - before);
    let region = [0.0, 0.25, -0.1, 0.1, 0.0][a.region];
    let logit = mix(-4.2, -4.6)
        + mix(2.4, 0.6) * a.utilisation
        + mix(2.0, 5.5) * a.debt_to_income
        + mix(0.45, 0.1) * a.late_payments_24m as f64
        - mix(0.6, 0.2) * (a.income.ln() - 10.5)
        - mix(0.08, -0.06) * a.tenure_months as f64 / 12.0
        + region;
    1.0 / (1.0 + (-logit).exp())
}

fn applicant(r: &mut Rng, covariate: f64) -> Applicant {
    let age_band = r.choose(&[0.15, 0.25, 0.3, 0.2, 0.1]);
    let region = r.choose(&[0.25, 0.2 + 0.15 * covariate, 0.2, 0.15, 0.2]);
    let age_effect = [-0.35, -0.05, 0.1, 0.15, -0.1][age_band];
    let region_effect = [0.05, -0.15, 0.0, 0.1, 0.2][region];
    let income = (10.5 + age_effect + region_effect - 0.3 * covariate + 0.45 * r.normal()).exp();
    let tenure_cap = [84.0, 200.0, 380.0, 560.0, 600.0][age_band];
    let tenure_months = (r.gamma(2.0) * tenure_cap / 5.0).min(tenure_cap).round() as i64;
    let debt_to_income = (r.beta(2.0, 5.0) + 0.12 * (10.5 - income.ln())).clamp(0.0, 1.5);
    let utilisation = r.beta(1.2 + 2.5 * debt_to_income + 1.0 * covariate, 2.5);
    let late_payments_24m = r.poisson(0.15 + 1.6 * utilisation * utilisation + 0.6 * debt_to_income);
    let credit_lines = r.poisson(2.0 + tenure_months as f64 / 60.0);
    let loan_amount = (income * (-1.2 + 0.4 * r.normal()).exp() / 100.0).round() * 100.0;
    Applicant { age_band, region, income, tenure_months, debt_to_income, utilisation, late_payments_24m, credit_lines, loan_amount }
}

pub use steward_core::schedule::iso8601;

/// Generates the table: `application_id`, `application_time`, `age_band`, the features in
/// [`FEATURES`] order, and `default` (0/1).
pub fn credit(o: &SynthOptions) -> Result<Table, TrainError> {
    if o.rows == 0 {
        return Err(TrainError::Invalid("rows must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&o.strength) {
        return Err(TrainError::Invalid(format!("drift strength must be within 0..1, got {}", o.strength)));
    }
    for (what, at) in [("covariate", o.covariate_drift_at), ("concept", o.concept_drift_at)] {
        if let Some(at) = at
            && at >= o.rows
        {
            return Err(TrainError::Invalid(format!("{what} drift starts at row {at}, beyond the {} rows", o.rows)));
        }
    }
    let mut r = Rng::new(o.seed);
    let n = o.rows;
    let (mut id, mut time, mut age, mut region) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut income, mut dti, mut util, mut late, mut tenure, mut lines, mut loan, mut default) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut t = o.start_ms;
    for row in 0..n {
        let drifted = |at: Option<usize>| if at.is_some_and(|at| row >= at) { o.strength } else { 0.0 };
        let a = applicant(&mut r, drifted(o.covariate_drift_at));
        let p = default_probability(&a, drifted(o.concept_drift_at));
        default.push(i64::from(r.uniform() < p));
        id.push(row as i64 + 1);
        time.push(iso8601(t));
        t += (r.gamma(1.0) * o.interval_ms as f64).round() as i64;
        age.push(AGE_BANDS[a.age_band].to_owned());
        region.push(REGIONS[a.region].to_owned());
        income.push((a.income * 100.0).round() / 100.0);
        dti.push((a.debt_to_income * 1000.0).round() / 1000.0);
        util.push((a.utilisation * 1000.0).round() / 1000.0);
        late.push(a.late_payments_24m);
        tenure.push(a.tenure_months);
        lines.push(a.credit_lines);
        loan.push(a.loan_amount);
    }
    Ok(Table {
        columns: vec![
            ("application_id".into(), Values::Int(id)),
            ("application_time".into(), Values::Text(time)),
            ("age_band".into(), Values::Text(age)),
            ("income".into(), Values::Float(income)),
            ("debt_to_income".into(), Values::Float(dti)),
            ("utilisation".into(), Values::Float(util)),
            ("late_payments_24m".into(), Values::Int(late)),
            ("tenure_months".into(), Values::Int(tenure)),
            ("credit_lines".into(), Values::Int(lines)),
            ("loan_amount".into(), Values::Float(loan)),
            ("region".into(), Values::Text(region)),
            ("default".into(), Values::Int(default)),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column<'a>(t: &'a Table, name: &str) -> &'a Values {
        &t.columns.iter().find(|c| c.0 == name).unwrap().1
    }

    fn floats(v: &Values) -> Vec<f64> {
        match v {
            Values::Float(x) => x.clone(),
            Values::Int(x) => x.iter().map(|v| *v as f64).collect(),
            Values::Text(_) => panic!("text"),
        }
    }

    fn mean(x: &[f64]) -> f64 {
        x.iter().sum::<f64>() / x.len() as f64
    }

    fn corr(a: &[f64], b: &[f64]) -> f64 {
        let (ma, mb) = (mean(a), mean(b));
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn deterministic_per_seed() {
        let o = SynthOptions { rows: 500, seed: 42, ..Default::default() };
        assert_eq!(credit(&o).unwrap(), credit(&o).unwrap());
        assert_ne!(credit(&o).unwrap(), credit(&SynthOptions { seed: 43, ..o.clone() }).unwrap());
    }

    #[test]
    fn realistic_correlations_and_default_rate() {
        let t = credit(&SynthOptions { rows: 20_000, seed: 1, ..Default::default() }).unwrap();
        let (income, dti, util, late, default) = (
            floats(column(&t, "income")),
            floats(column(&t, "debt_to_income")),
            floats(column(&t, "utilisation")),
            floats(column(&t, "late_payments_24m")),
            floats(column(&t, "default")),
        );
        let log_income: Vec<f64> = income.iter().map(|v| v.ln()).collect();
        assert!(corr(&log_income, &dti) < -0.2);
        assert!(corr(&dti, &util) > 0.2);
        assert!(corr(&util, &late) > 0.2);
        let rate = mean(&default);
        assert!((0.05..0.3).contains(&rate), "default rate {rate}");
        assert_eq!(t.rows(), 20_000);
        let Values::Text(times) = column(&t, "application_time") else { panic!() };
        assert_eq!(times[0], "2025-01-01T00:00:00Z");
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn drifts_start_where_asked() {
        let o = SynthOptions { rows: 20_000, seed: 3, covariate_drift_at: Some(10_000), ..Default::default() };
        let t = credit(&o).unwrap();
        let util = floats(column(&t, "utilisation"));
        assert!(mean(&util[10_000..]) > mean(&util[..10_000]) + 0.05);
        let err = credit(&SynthOptions { concept_drift_at: Some(20_000), ..o }).unwrap_err();
        assert!(err.to_string().contains("concept drift starts at row 20000"));
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(-1000), "1969-12-31T23:59:59Z");
    }
}
