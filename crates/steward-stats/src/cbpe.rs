//! Label-free performance estimation as NannyML's CBPE does it (confidence-based performance
//! estimation, nannyml 0.13): a classifier's scores are calibrated on a labelled reference with
//! isotonic regression (scikit-learn's `IsotonicRegression(out_of_bounds="clip")`) when the
//! reference shows they need it; each unlabelled row then counts as a positive with its
//! calibrated probability, so the expected confusion counts, and from them accuracy and the ROC
//! curve, follow.

use serde::Serialize;

use crate::StatsError;

/// Rows the calibration check bins its held-out predictions into (NannyML's `bin_count`).
const ECE_BINS: usize = 10;
/// Folds of the calibration check (NannyML's `split_count`).
const FOLDS: usize = 10;

/// A monotone map from scores to probabilities fitted on labelled scores: scikit-learn's
/// `IsotonicRegression(increasing=True, out_of_bounds="clip")` — equal scores pooled, the pool
/// adjacent violators algorithm, linear interpolation between the fitted points and clipping
/// outside them.
#[derive(Debug, Clone, PartialEq)]
pub struct Isotonic {
    x: Vec<f64>,
    y: Vec<f64>,
}

impl Isotonic {
    pub fn fit(scores: &[f64], labels: &[u8]) -> Result<Self, StatsError> {
        check(scores, labels)?;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(labels[a].cmp(&labels[b])));
        // Equal scores (within scikit-learn's eps, the float64 resolution) become one point
        // with the mean label and their count as weight.
        let eps = 1e-15;
        let (mut x, mut sum, mut weight) = (Vec::new(), Vec::<f64>::new(), Vec::<f64>::new());
        for &i in &order {
            match x.last() {
                Some(&last) if scores[i] - last < eps => {
                    *sum.last_mut().expect("a point") += f64::from(labels[i]);
                    *weight.last_mut().expect("a point") += 1.0;
                }
                _ => {
                    x.push(scores[i]);
                    sum.push(f64::from(labels[i]));
                    weight.push(1.0);
                }
            }
        }
        // Pool adjacent violators: blocks of (weighted sum, weight, points), merged backwards
        // while a block's mean is not above the one before it.
        let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(x.len());
        for (s, w) in sum.iter().zip(&weight) {
            blocks.push((*s, *w, 1));
            while blocks.len() > 1 {
                let (s2, w2, n2) = blocks[blocks.len() - 1];
                let (s1, w1, n1) = blocks[blocks.len() - 2];
                if s1 / w1 < s2 / w2 {
                    break;
                }
                blocks.pop();
                *blocks.last_mut().expect("a block") = (s1 + s2, w1 + w2, n1 + n2);
            }
        }
        let y = blocks.iter().flat_map(|(s, w, n)| std::iter::repeat_n(s / w, *n)).collect();
        Ok(Isotonic { x, y })
    }

    /// The calibrated probability of a score: `numpy.interp` over the fitted points, clipped
    /// to the first and last.
    pub fn predict(&self, score: f64) -> f64 {
        let (x, y) = (&self.x, &self.y);
        let last = x.len() - 1;
        if score.is_nan() {
            return f64::NAN;
        }
        if score <= x[0] {
            return y[0];
        }
        if score >= x[last] {
            return y[last];
        }
        // The last fitted point at or below the score.
        let j = x.partition_point(|v| *v <= score) - 1;
        if x[j] == score {
            return y[j];
        }
        let slope = (y[j + 1] - y[j]) / (x[j + 1] - x[j]);
        slope * (score - x[j]) + y[j]
    }
}

fn check(scores: &[f64], labels: &[u8]) -> Result<(), StatsError> {
    if scores.len() != labels.len() {
        return Err(StatsError::Length(format!("calibration: {} scores but {} labels", scores.len(), labels.len())));
    }
    if scores.is_empty() {
        return Err(StatsError::Empty("calibration".into()));
    }
    if let Some(bad) = scores.iter().find(|s| !s.is_finite()) {
        return Err(StatsError::Value(format!("scores must be finite numbers, got {bad}")));
    }
    if let Some(bad) = labels.iter().find(|l| **l > 1) {
        return Err(StatsError::Value(format!("labels must be 0 or 1, got {bad}")));
    }
    Ok(())
}

/// The isotonic calibration a labelled reference calls for, or `None` when its scores are
/// better left as they are — NannyML's `needs_calibration`: not with one class, not when the
/// scores separate the classes almost perfectly (ROC AUC above 0.999), and otherwise only if
/// calibrating lowers the expected calibration error (ten equal-count bins) of held-out
/// predictions. NannyML holds out ten random 10% splits; these are ten stratified folds taken
/// in row order, so that the same reference always decides the same way. The calibration
/// used is then fitted on the whole reference, as NannyML fits it.
pub fn calibration(scores: &[f64], labels: &[u8]) -> Result<Option<Isotonic>, StatsError> {
    check(scores, labels)?;
    let positives = labels.iter().filter(|l| **l == 1).count();
    if positives == 0 || positives == labels.len() {
        return Ok(None);
    }
    if crate::quality::classification(labels, scores, 0.5)?.roc_auc.is_some_and(|auc| auc > 0.999) {
        return Ok(None);
    }
    // Row i of each class goes to fold (its rank within the class) mod 10.
    let mut seen = [0usize; 2];
    let fold: Vec<usize> = labels
        .iter()
        .map(|&l| {
            let k = seen[l as usize] % FOLDS;
            seen[l as usize] += 1;
            k
        })
        .collect();
    let (mut truth, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..FOLDS {
        let train: Vec<usize> = (0..scores.len()).filter(|i| fold[*i] != k).collect();
        let test: Vec<usize> = (0..scores.len()).filter(|i| fold[*i] == k).collect();
        if test.is_empty() || train.is_empty() {
            continue;
        }
        let fitted = Isotonic::fit(&train.iter().map(|i| scores[*i]).collect::<Vec<_>>(), &train.iter().map(|i| labels[*i]).collect::<Vec<_>>())?;
        for i in test {
            truth.push(labels[i]);
            before.push(scores[i]);
            after.push(fitted.predict(scores[i]));
        }
    }
    if truth.len() < 4 {
        return Ok(None);
    }
    if expected_calibration_error(&truth, &before) > expected_calibration_error(&truth, &after) {
        Isotonic::fit(scores, labels).map(Some)
    } else {
        Ok(None)
    }
}

/// NannyML's expected calibration error: rows sorted by probability into equal-count bins
/// (the last takes the remainder), Σ share × |mean probability − mean label|.
fn expected_calibration_error(labels: &[u8], probabilities: &[f64]) -> f64 {
    let n = probabilities.len();
    let bins = if n <= 2 * ECE_BINS { n / 2 } else { ECE_BINS };
    let width = n / bins;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]));
    let mut edges: Vec<usize> = (0..=n).step_by(width).collect();
    *edges.last_mut().expect("an edge") = n;
    edges
        .windows(2)
        .map(|e| {
            let rows = &order[e[0]..e[1]];
            let m = rows.len() as f64;
            let p = rows.iter().map(|i| probabilities[*i]).sum::<f64>() / m;
            let y = rows.iter().map(|i| f64::from(labels[*i])).sum::<f64>() / m;
            m / n as f64 * (p - y).abs()
        })
        .sum()
}

/// Quality estimated without labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub rows: usize,
    pub accuracy: f64,
    /// `None` when the expected positives or negatives are zero.
    pub roc_auc: Option<f64>,
}

/// CBPE's estimate from each row's calibrated probability of the positive class, the model's
/// own score (which orders the rows for the ROC curve) and the label it predicted (0 or 1).
/// Accuracy is the expected share of right labels; the ROC curve sweeps the threshold down the
/// scores, adding each row's probability to the true positives and the rest to the false ones,
/// with the cumulative counts rounded to five decimals as NannyML rounds them. Rows with equal
/// scores are one step of the curve (NannyML's order among them is arbitrary).
pub fn estimate_with(calibrated: &[f64], scores: &[f64], predicted: &[u8]) -> Result<Estimate, StatsError> {
    if calibrated.len() != scores.len() || calibrated.len() != predicted.len() {
        return Err(StatsError::Length(format!("estimate: {} probabilities, {} scores, {} labels", calibrated.len(), scores.len(), predicted.len())));
    }
    if calibrated.is_empty() {
        return Err(StatsError::Empty("estimate".into()));
    }
    if let Some(bad) = calibrated.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(StatsError::Value(format!("probabilities must lie in [0, 1], got {bad}")));
    }
    if let Some(bad) = scores.iter().find(|s| s.is_nan()) {
        return Err(StatsError::Value(format!("scores must be numbers, got {bad}")));
    }
    let n = calibrated.len();
    let (mut tp, mut tn) = (0.0, 0.0);
    for (p, l) in calibrated.iter().zip(predicted) {
        match l {
            1 => tp += p,
            _ => tn += 1.0 - p,
        }
    }
    let accuracy = (tp + tn) / n as f64;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let round = |v: f64| (v * 1e5).round_ties_even() / 1e5;
    let (mut tps, mut points) = (0.0, vec![(0.0, 0.0)]);
    for (k, &i) in order.iter().enumerate() {
        tps += calibrated[i];
        if k + 1 == n || scores[order[k + 1]] != scores[i] {
            points.push((round((k + 1) as f64 - tps), round(tps)));
        }
    }
    let (fp_all, tp_all) = *points.last().expect("a point");
    let roc_auc = (fp_all > 0.0 && tp_all > 0.0).then(|| {
        let fpr: Vec<f64> = points.iter().map(|p| p.0 / fp_all).collect();
        let tpr: Vec<f64> = points.iter().map(|p| p.1 / tp_all).collect();
        fpr.windows(2).zip(tpr.windows(2)).map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0).sum()
    });
    Ok(Estimate { rows: n, accuracy, roc_auc })
}

/// The estimate from probabilities that are already calibrated and are the model's scores,
/// a row predicted positive at or above `threshold`.
pub fn estimate(probabilities: &[f64], threshold: f64) -> Result<Estimate, StatsError> {
    let predicted: Vec<u8> = probabilities.iter().map(|p| u8::from(*p >= threshold)).collect();
    estimate_with(probabilities, probabilities, &predicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_violators_and_interpolates() {
        // Worked by hand: scores 0.1..0.5 with labels 0 1 0 1 1 pool (0.2, 0.3) to 0.5.
        let fit = Isotonic::fit(&[0.1, 0.2, 0.3, 0.4, 0.5], &[0, 1, 0, 1, 1]).unwrap();
        assert_eq!(fit.y, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(fit.predict(0.25), 0.5);
        assert!((fit.predict(0.15) - 0.25).abs() < 1e-15);
        assert_eq!((fit.predict(-3.0), fit.predict(7.0)), (0.0, 1.0));
        // Equal scores are one point with their mean label.
        let tied = Isotonic::fit(&[0.3, 0.3, 0.3, 0.9], &[0, 0, 1, 1]).unwrap();
        assert_eq!((tied.x.clone(), tied.y.clone()), (vec![0.3, 0.9], vec![1.0 / 3.0, 1.0]));
    }

    #[test]
    fn calibration_is_skipped_where_nannyml_skips_it() {
        assert_eq!(calibration(&[0.2, 0.4, 0.6], &[1, 1, 1]).unwrap(), None);
        let separated: Vec<f64> = (0..40).map(|i| f64::from(i) / 40.0).collect();
        let labels: Vec<u8> = (0..40).map(|i| u8::from(i >= 20)).collect();
        assert_eq!(calibration(&separated, &labels).unwrap(), None);
        assert!(calibration(&[0.1, f64::NAN], &[0, 1]).is_err());
        assert!(calibration(&[0.1, 0.2], &[0, 2]).is_err());
    }

    #[test]
    fn overconfident_scores_are_calibrated() {
        // Scores pushed to the ends: a row scored 0.95 is positive 75% of the time.
        let mut state = 7u64;
        let mut uniform = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut scores, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..4000 {
            let truth: f64 = 0.15 + 0.7 * uniform();
            let score = if truth > 0.5 { 0.5 + (truth - 0.5) * 1.4 + 0.1 } else { 0.5 - (0.5 - truth) * 1.4 - 0.1 };
            scores.push(score.clamp(0.0, 1.0));
            labels.push(u8::from(uniform() < truth));
        }
        let fitted = calibration(&scores, &labels).unwrap().expect("overconfident scores need calibrating");
        assert!((fitted.predict(0.95) - 0.75).abs() < 0.08, "{}", fitted.predict(0.95));
        assert!((fitted.predict(0.05) - 0.25).abs() < 0.08, "{}", fitted.predict(0.05));
    }

    #[test]
    fn estimate_is_the_expected_confusion() {
        let e = estimate(&[0.9, 0.8, 0.3, 0.1], 0.5).unwrap();
        assert!((e.accuracy - (0.9 + 0.8 + 0.7 + 0.9) / 4.0).abs() < 1e-15);
        // Expected positives 2.1, negatives 1.9; the curve (0,0) (0.1,0.9) (0.3,1.7) (1.0,2.0) (1.9,2.1).
        let want = [(0.0, 0.0), (0.1, 0.9), (0.3, 1.7), (1.0, 2.0), (1.9, 2.1)];
        let auc: f64 = want.windows(2).map(|w| (w[1].0 - w[0].0) / 1.9 * (w[1].1 + w[0].1) / 2.1 / 2.0).sum();
        assert!((e.roc_auc.unwrap() - auc).abs() < 1e-12, "{:?} {auc}", e.roc_auc);
        assert_eq!(estimate(&[1.0, 1.0], 0.5).unwrap().roc_auc, None);
        assert!(estimate(&[1.5], 0.5).is_err() && estimate(&[], 0.5).is_err());
    }
}
