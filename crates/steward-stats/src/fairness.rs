//! Group fairness as Fairlearn computes it, from predicted labels, true labels and a group
//! per row: selection rate by group, demographic parity difference and ratio, equalized odds
//! difference and ratio, equal opportunity difference, and the adverse impact ratio with the
//! four-fifths rule of US employment and lending practice.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::StatsError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRates {
    pub rows: usize,
    pub selection_rate: f64,
    /// TPR; 0 when the group has no positives (Fairlearn's zero_division).
    pub true_positive_rate: f64,
    /// FPR; 0 when the group has no negatives.
    pub false_positive_rate: f64,
    /// This group's selection rate over the highest group's (NaN when no group is selected).
    pub adverse_impact_ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fairness {
    pub groups: BTreeMap<String, GroupRates>,
    pub demographic_parity_difference: f64,
    pub demographic_parity_ratio: f64,
    pub equalized_odds_difference: f64,
    pub equalized_odds_ratio: f64,
    pub equal_opportunity_difference: f64,
    /// The lowest group selection rate over the highest: the demographic parity ratio.
    pub adverse_impact_ratio: f64,
    /// True when the adverse impact ratio is below `four_fifths` (0.8 by default); false when
    /// no group is selected at all (the ratio is undefined, NaN, serialised as null).
    pub four_fifths_violated: bool,
}

fn spread(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    let min = values.fold(f64::INFINITY, f64::min);
    // 0/0 (no group has any) is NaN, as in Fairlearn: no ratio is defined.
    let ratio = min / max;
    (max - min, ratio)
}

/// `predicted` and `truth` are 0/1; `groups` names each row's group.
pub fn fairness(predicted: &[u8], truth: &[u8], groups: &[String], four_fifths: f64) -> Result<Fairness, StatsError> {
    if predicted.len() != truth.len() || predicted.len() != groups.len() {
        return Err(StatsError::Length(format!("fairness: {} predictions, {} labels, {} groups", predicted.len(), truth.len(), groups.len())));
    }
    if predicted.is_empty() {
        return Err(StatsError::Empty("fairness".into()));
    }
    if let Some(bad) = predicted.iter().chain(truth).find(|v| **v > 1) {
        return Err(StatsError::Value(format!("predictions and labels must be 0 or 1, got {bad}")));
    }
    // (rows, selected, positives, true positives, negatives, false positives)
    let mut counts: BTreeMap<&str, [u64; 6]> = BTreeMap::new();
    for ((&p, &y), g) in predicted.iter().zip(truth).zip(groups) {
        let c = counts.entry(g.as_str()).or_default();
        c[0] += 1;
        c[1] += u64::from(p);
        c[2] += u64::from(y);
        c[3] += u64::from(p & y);
        c[4] += u64::from(1 - y);
        c[5] += u64::from(p & (1 - y));
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let mut groups: BTreeMap<String, GroupRates> = counts
        .iter()
        .map(|(g, c)| {
            (g.to_string(), GroupRates { rows: c[0] as usize, selection_rate: ratio(c[1], c[0]), true_positive_rate: ratio(c[3], c[2]), false_positive_rate: ratio(c[5], c[4]), adverse_impact_ratio: 0.0 })
        })
        .collect();
    let (dp_diff, dp_ratio) = spread(groups.values().map(|g| g.selection_rate));
    let (tpr_diff, tpr_ratio) = spread(groups.values().map(|g| g.true_positive_rate));
    let (fpr_diff, fpr_ratio) = spread(groups.values().map(|g| g.false_positive_rate));
    let best = groups.values().map(|g| g.selection_rate).fold(0.0, f64::max);
    for g in groups.values_mut() {
        g.adverse_impact_ratio = g.selection_rate / best;
    }
    Ok(Fairness {
        groups,
        demographic_parity_difference: dp_diff,
        demographic_parity_ratio: dp_ratio,
        equalized_odds_difference: tpr_diff.max(fpr_diff),
        equalized_odds_ratio: if tpr_ratio.is_nan() || fpr_ratio.is_nan() { f64::NAN } else { tpr_ratio.min(fpr_ratio) },
        equal_opportunity_difference: tpr_diff,
        adverse_impact_ratio: dp_ratio,
        four_fifths_violated: dp_ratio < four_fifths,
    })
}
