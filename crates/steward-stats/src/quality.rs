//! Model quality as scikit-learn computes it: binary classification from labels and scores
//! (accuracy, precision, recall, F1, ROC AUC, average precision, log loss, Brier, confusion
//! matrix, and the KS statistic and Gini that credit scoring reports) and regression (MAE,
//! RMSE, MAPE, R²).

use serde::Serialize;

use crate::StatsError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub rows: usize,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// `None` when only one class is present (scikit-learn raises there).
    pub roc_auc: Option<f64>,
    /// Average precision (scikit-learn's `average_precision_score`), the PR-curve summary.
    pub pr_auc: Option<f64>,
    pub log_loss: f64,
    pub brier: f64,
    /// `[[tn, fp], [fn, tp]]`.
    pub confusion: [[u64; 2]; 2],
    /// max |TPR − FPR| over thresholds: the two-sample KS statistic between the scores of
    /// positives and negatives.
    pub ks: Option<f64>,
    /// 2·AUC − 1.
    pub gini: Option<f64>,
}

fn check_lengths(a: usize, b: usize, what: &str) -> Result<(), StatsError> {
    if a != b {
        return Err(StatsError::Length(format!("{what}: {a} labels but {b} predictions")));
    }
    if a == 0 {
        return Err(StatsError::Empty(what.to_owned()));
    }
    Ok(())
}

/// Binary classification quality. `labels` are 0/1 truths, `scores` the probability of 1,
/// `threshold` turns scores into predicted labels (`score >= threshold`).
pub fn classification(labels: &[u8], scores: &[f64], threshold: f64) -> Result<Classification, StatsError> {
    check_lengths(labels.len(), scores.len(), "classification")?;
    if let Some(bad) = labels.iter().find(|l| **l > 1) {
        return Err(StatsError::Value(format!("labels must be 0 or 1, got {bad}")));
    }
    if let Some(bad) = scores.iter().find(|s| !s.is_finite()) {
        return Err(StatsError::Value(format!("scores must be finite, got {bad}")));
    }
    let n = labels.len();
    let mut confusion = [[0u64; 2]; 2];
    for (&y, &s) in labels.iter().zip(scores) {
        let p = usize::from(s >= threshold);
        confusion[y as usize][p] += 1;
    }
    let [[tn, fp], [fn_, tp]] = confusion.map(|r| r.map(|v| v as f64));
    let ratio = |a: f64, b: f64| if b == 0.0 { 0.0 } else { a / b };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    // scikit-learn's F1 from counts: 2tp / (2tp + fp + fn), 0 when undefined.
    let f1 = ratio(2.0 * tp, 2.0 * tp + fp + fn_);
    let curve = roc_points(labels, scores);
    let roc_auc = curve.as_ref().map(|c| trapezoid(&c.fpr, &c.tpr));
    let ks = curve.as_ref().map(|c| c.fpr.iter().zip(&c.tpr).map(|(f, t)| (t - f).abs()).fold(0.0f64, f64::max));
    Ok(Classification {
        rows: n,
        accuracy: (tp + tn) / n as f64,
        precision,
        recall,
        f1,
        roc_auc,
        pr_auc: average_precision(labels, scores),
        log_loss: log_loss(labels, scores),
        brier: labels.iter().zip(scores).map(|(&y, &s)| (s - f64::from(y)).powi(2)).sum::<f64>() / n as f64,
        confusion,
        ks,
        gini: roc_auc.map(|a| 2.0 * a - 1.0),
    })
}

struct Roc {
    fpr: Vec<f64>,
    tpr: Vec<f64>,
}

/// Cumulative (false positives, true positives) at each distinct score, highest first, as
/// scikit-learn's `_binary_clf_curve`.
fn cumulative(labels: &[u8], scores: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Stable sort by descending score (scikit-learn uses a mergesort on -score).
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut fps, mut tps) = (Vec::new(), Vec::new());
    let (mut fp, mut tp) = (0.0, 0.0);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] == 1 { tp += 1.0 } else { fp += 1.0 }
        let last_of_value = k + 1 == order.len() || scores[order[k + 1]] != scores[i];
        if last_of_value {
            fps.push(fp);
            tps.push(tp);
        }
    }
    (fps, tps)
}

fn roc_points(labels: &[u8], scores: &[f64]) -> Option<Roc> {
    let (fps, tps) = cumulative(labels, scores);
    let (fp_total, tp_total) = (*fps.last()?, *tps.last()?);
    if fp_total == 0.0 || tp_total == 0.0 {
        return None;
    }
    // scikit-learn drops collinear intermediate points, then prepends (0, 0).
    let mut keep = vec![true; fps.len()];
    for i in 1..fps.len().saturating_sub(1) {
        let d1 = (fps[i] - fps[i - 1], tps[i] - tps[i - 1]);
        let d2 = (fps[i + 1] - fps[i], tps[i + 1] - tps[i]);
        // Second differences of both coordinates are zero: the point lies on a straight run.
        if d1 == d2 {
            keep[i] = false;
        }
    }
    let mut fpr = vec![0.0];
    let mut tpr = vec![0.0];
    for i in 0..fps.len() {
        if keep[i] {
            fpr.push(fps[i] / fp_total);
            tpr.push(tps[i] / tp_total);
        }
    }
    Some(Roc { fpr, tpr })
}

fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2).zip(y.windows(2)).map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0).sum()
}

/// scikit-learn's `average_precision_score`: Σ (Rₙ − Rₙ₋₁) Pₙ over distinct thresholds.
fn average_precision(labels: &[u8], scores: &[f64]) -> Option<f64> {
    let (fps, tps) = cumulative(labels, scores);
    let tp_total = *tps.last()?;
    if tp_total == 0.0 {
        return None;
    }
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    for (fp, tp) in fps.iter().zip(&tps) {
        let precision = if tp + fp == 0.0 { 1.0 } else { tp / (tp + fp) };
        let recall = tp / tp_total;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Some(ap)
}

/// Binary cross-entropy with probabilities clipped to [ε, 1 − ε], ε = f64's machine epsilon.
fn log_loss(labels: &[u8], scores: &[f64]) -> f64 {
    let eps = f64::EPSILON;
    let n = labels.len() as f64;
    -labels
        .iter()
        .zip(scores)
        .map(|(&y, &s)| {
            let p = s.clamp(eps, 1.0 - eps);
            if y == 1 { p.ln() } else { (1.0 - p).ln() }
        })
        .sum::<f64>()
        / n
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regression {
    pub rows: usize,
    pub mae: f64,
    pub rmse: f64,
    /// Mean |y − ŷ| / max(|y|, ε), scikit-learn's definition (a fraction, not a percent).
    pub mape: f64,
    /// 1 − SS_res / SS_tot; 1 when both are 0, 0 when only SS_tot is (scikit-learn's
    /// `force_finite`); `None` for fewer than two rows, where it is undefined.
    pub r2: Option<f64>,
}

pub fn regression(truth: &[f64], predicted: &[f64]) -> Result<Regression, StatsError> {
    check_lengths(truth.len(), predicted.len(), "regression")?;
    if let Some(bad) = truth.iter().chain(predicted).find(|v| !v.is_finite()) {
        return Err(StatsError::Value(format!("values must be finite, got {bad}")));
    }
    let n = truth.len() as f64;
    let mae = truth.iter().zip(predicted).map(|(y, p)| (y - p).abs()).sum::<f64>() / n;
    let ss_res: f64 = truth.iter().zip(predicted).map(|(y, p)| (y - p).powi(2)).sum();
    let mape = truth.iter().zip(predicted).map(|(y, p)| (y - p).abs() / y.abs().max(f64::EPSILON)).sum::<f64>() / n;
    let mean = truth.iter().sum::<f64>() / n;
    let ss_tot: f64 = truth.iter().map(|y| (y - mean).powi(2)).sum();
    let r2 = if truth.len() < 2 {
        None
    } else if ss_tot == 0.0 {
        Some(if ss_res == 0.0 { 1.0 } else { 0.0 })
    } else {
        Some(1.0 - ss_res / ss_tot)
    };
    Ok(Regression { rows: truth.len(), mae, rmse: (ss_res / n).sqrt(), mape, r2 })
}

/// A confidence interval for ROC AUC from the AUC and the class counts alone (Hanley & McNeil,
/// 1982, "The meaning and use of the area under a ROC curve", Radiology 143: the standard error
/// under their exponential approximation), clipped to 0..1. `z` is the normal quantile (1.96
/// for 95%).
pub fn auc_interval(auc: f64, positives: u64, negatives: u64, z: f64) -> Result<(f64, f64), StatsError> {
    if !(0.0..=1.0).contains(&auc) {
        return Err(StatsError::Value(format!("ROC AUC must be within 0..1, got {auc}")));
    }
    if positives == 0 || negatives == 0 {
        return Err(StatsError::Empty("an AUC interval (positives and negatives)".into()));
    }
    let (n1, n2) = (positives as f64, negatives as f64);
    let q1 = auc / (2.0 - auc);
    let q2 = 2.0 * auc * auc / (1.0 + auc);
    let variance = (auc * (1.0 - auc) + (n1 - 1.0) * (q1 - auc * auc) + (n2 - 1.0) * (q2 - auc * auc)) / (n1 * n2);
    let se = variance.max(0.0).sqrt();
    Ok(((auc - z * se).max(0.0), (auc + z * se).min(1.0)))
}

#[cfg(test)]
mod interval_tests {
    use super::auc_interval;

    #[test]
    fn hanley_mcneil_standard_error() {
        // Their formula worked by hand (Python, outside this code): A = 0.8 with 50 positives
        // and 50 negatives gives SE 0.044502; A = 0.9, 0.032124.
        let (lo, hi) = auc_interval(0.8, 50, 50, 1.0).unwrap();
        assert!(((hi - lo) / 2.0 - 0.044502).abs() < 1e-6, "{lo} {hi}");
        let (lo, hi) = auc_interval(0.9, 50, 50, 1.0).unwrap();
        assert!(((hi - lo) / 2.0 - 0.032124).abs() < 1e-6, "{lo} {hi}");
        assert!(auc_interval(0.8, 0, 10, 1.96).is_err() && auc_interval(1.2, 5, 5, 1.96).is_err());
        assert_eq!(auc_interval(1.0, 10, 10, 1.96).unwrap().1, 1.0);
    }
}
