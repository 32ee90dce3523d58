//! Regularised logistic regression on standardised columns: Newton's method on the L2-penalised
//! log-likelihood (the intercept unpenalised), its ONNX graph, and reason codes — each
//! feature's coefficient × standardised value, one-hot columns summed per feature.

use crate::TrainError;
use crate::design::{Dataset, Design};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Logistic {
    pub design: Design,
    /// One per encoded column, on the standardised scale.
    pub coefficients: Vec<f64>,
    pub intercept: f64,
    /// The L2 penalty it was fitted with.
    pub l2: f64,
    pub iterations: usize,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Solves `a x = b` for a symmetric positive definite `a` (Cholesky); `None` if it is not.
fn solve_spd(a: &[Vec<f64>], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - s;
                if d <= 0.0 {
                    return None;
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    Some(x)
}

impl Logistic {
    /// Fits with penalty `l2` on the coefficients (the sum of squares times `l2 / 2`, added to
    /// the negative log-likelihood summed over rows).
    pub fn fit(data: &Dataset, l2: f64) -> Result<Self, TrainError> {
        data.check()?;
        if !(l2 >= 0.0) {
            return Err(TrainError::Invalid(format!("l2 must be at least 0, got {l2}")));
        }
        let design = Design::fit(data);
        let x = design.encode(data);
        let d = design.means.len();
        // Parameters: the intercept, then the coefficients.
        let mut beta = vec![0.0; d + 1];
        let prior = data.label.iter().map(|v| f64::from(*v)).sum::<f64>() / data.rows() as f64;
        beta[0] = (prior / (1.0 - prior)).ln();
        let mut iterations = 0;
        for it in 1..=100 {
            iterations = it;
            let mut grad = vec![0.0; d + 1];
            let mut hess = vec![vec![0.0; d + 1]; d + 1];
            for (row, y) in x.iter().zip(&data.label) {
                let z = beta[0] + row.iter().zip(&beta[1..]).map(|(a, b)| a * b).sum::<f64>();
                let p = sigmoid(z);
                let (r, w) = (p - f64::from(*y), (p * (1.0 - p)).max(1e-12));
                let xs = std::iter::once(1.0).chain(row.iter().copied()).collect::<Vec<f64>>();
                for i in 0..=d {
                    grad[i] += r * xs[i];
                    for j in 0..=i {
                        hess[i][j] += w * xs[i] * xs[j];
                    }
                }
            }
            for i in 0..=d {
                for j in 0..i {
                    hess[j][i] = hess[i][j];
                }
                if i > 0 {
                    grad[i] += l2 * beta[i];
                    hess[i][i] += l2;
                }
            }
            // A tiny ridge keeps the system solvable when columns are collinear (one-hot sets).
            for (i, row) in hess.iter_mut().enumerate() {
                row[i] += 1e-9;
            }
            let step = solve_spd(&hess, &grad).ok_or_else(|| TrainError::Invalid("the Newton system is singular; raise l2".into()))?;
            let mut largest: f64 = 0.0;
            for (b, s) in beta.iter_mut().zip(&step) {
                *b -= s;
                largest = largest.max(s.abs());
            }
            if largest < 1e-10 {
                break;
            }
        }
        Ok(Self { intercept: beta[0], coefficients: beta[1..].to_vec(), design, l2, iterations })
    }

    /// Standardised encoded rows' probability of class 1.
    pub fn probability(&self, encoded: &[f64]) -> f64 {
        sigmoid(self.intercept + encoded.iter().zip(&self.coefficients).map(|(a, b)| a * b).sum::<f64>())
    }

    pub fn predict(&self, data: &Dataset) -> Vec<f64> {
        self.design.encode(data).iter().map(|r| self.probability(r)).collect()
    }

    /// Per raw feature, its contribution to the log-odds of class 1 for one encoded row:
    /// coefficient × standardised value, summed over a feature's one-hot columns.
    pub fn contributions(&self, encoded: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.design.features.len()];
        for ((owner, w), z) in self.design.owners().into_iter().zip(&self.coefficients).zip(encoded) {
            out[owner] += w * z;
        }
        out
    }
}

/// The top `k` features pushing a prediction towards class 1 (the adverse outcome): positive
/// contributions, largest first, ties by feature order.
pub fn reason_codes(names: &[String], contributions: &[f64], k: usize) -> Vec<(String, f64)> {
    let mut order: Vec<usize> = (0..contributions.len()).filter(|i| contributions[*i] > 0.0).collect();
    order.sort_by(|a, b| contributions[*b].total_cmp(&contributions[*a]).then(a.cmp(b)));
    order.into_iter().take(k).map(|i| (names[i].clone(), contributions[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::design::Column;
    use crate::rng::Rng;

    fn data(n: usize, seed: u64) -> Dataset {
        let mut r = Rng::new(seed);
        let (mut a, mut b, mut c, mut y) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let (x1, x2) = (r.normal(), 3.0 + 2.0 * r.normal());
            let cat = ["p", "q", "s"][r.choose(&[0.5, 0.3, 0.2])];
            let z = -0.5 + 1.2 * x1 - 0.4 * (x2 - 3.0) + if cat == "s" { 1.0 } else { 0.0 };
            y.push(u8::from(r.uniform() < sigmoid(z)));
            a.push(if r.uniform() < 0.02 { f64::NAN } else { x1 });
            b.push(x2);
            c.push(Some(cat.to_owned()));
        }
        Dataset { features: vec![("a".into(), Column::Numeric(a)), ("b".into(), Column::Numeric(b)), ("c".into(), Column::Categorical(c))], label: y }
    }

    #[test]
    fn newton_reaches_the_penalised_optimum() {
        let d = data(3000, 1);
        let m = Logistic::fit(&d, 1.0).unwrap();
        // The gradient of the penalised objective vanishes at the fit.
        let x = m.design.encode(&d);
        let mut grad = vec![0.0; m.coefficients.len() + 1];
        for (row, y) in x.iter().zip(&d.label) {
            let r = m.probability(row) - f64::from(*y);
            grad[0] += r;
            row.iter().enumerate().for_each(|(j, v)| grad[j + 1] += r * v);
        }
        m.coefficients.iter().enumerate().for_each(|(j, w)| grad[j + 1] += m.l2 * w);
        assert!(grad.iter().all(|g| g.abs() < 1e-6), "{grad:?} after {} iterations", m.iterations);
        // It recovers the signs of the process.
        let cols = m.design.columns();
        let w = |name: &str| m.coefficients[cols.iter().position(|c| c == name).unwrap()];
        assert!(w("a") > 0.5 && w("b") < -0.3 && w("c=s") > 0.2, "{cols:?} {:?}", m.coefficients);
    }

    #[test]
    fn reason_codes_are_the_coefficient_arithmetic() {
        let d = data(2000, 2);
        let m = Logistic::fit(&d, 0.5).unwrap();
        let x = m.design.encode(&d);
        let names: Vec<String> = m.design.features.iter().map(|f| f.0.clone()).collect();
        for row in x.iter().take(50) {
            let c = m.contributions(row);
            // Contributions and the intercept add up to the log-odds.
            let logit = (m.probability(row) / (1.0 - m.probability(row))).ln();
            assert!((m.intercept + c.iter().sum::<f64>() - logit).abs() < 1e-9);
            // Feature c's contribution is the sum of its three one-hot terms.
            let by_hand: f64 = (2..5).map(|j| m.coefficients[j] * row[j]).sum();
            assert!((c[2] - by_hand).abs() < 1e-12);
            let codes = reason_codes(&names, &c, 4);
            assert!(codes.windows(2).all(|w| w[0].1 >= w[1].1) && codes.iter().all(|r| r.1 > 0.0));
            assert_eq!(codes.len(), c.iter().filter(|v| **v > 0.0).count().min(4));
        }
    }

    #[test]
    fn refuses_what_it_cannot_fit() {
        let mut d = data(100, 3);
        d.label = vec![0; 100];
        assert!(Logistic::fit(&d, 1.0).unwrap_err().to_string().contains("single class"));
        let d = data(100, 3);
        assert!(Logistic::fit(&d, -1.0).unwrap_err().to_string().contains("l2"));
    }
}
