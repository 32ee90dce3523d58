//! Canary analysis: the challenger against the champion on live traffic since the last step —
//! error rate, latency, the share of positive (adverse) decisions, the adverse impact ratio,
//! and ROC AUC once labels arrive. Every gate must pass to step up; any failure rolls back.

use serde::{Deserialize, Serialize};

/// What one route served since the canary's last step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RouteStats {
    pub requests: u64,
    pub errors: u64,
    pub latency_p95_ms: f64,
    /// Share of rows predicted positive (the adverse outcome).
    pub positive_rate: f64,
    #[serde(default)]
    pub adverse_impact_ratio: Option<f64>,
    /// Once labels arrive.
    #[serde(default)]
    pub roc_auc: Option<f64>,
    /// Rows whose label has arrived.
    #[serde(default)]
    pub labelled_rows: u64,
}

impl RouteStats {
    fn error_rate(&self) -> f64 {
        let total = self.requests + self.errors;
        if total == 0 { 0.0 } else { self.errors as f64 / total as f64 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CanaryPolicy {
    /// Challenger traffic shares, in percent, ending at 100 (promotion).
    pub steps: Vec<u8>,
    /// Challenger requests needed before a step is judged.
    pub min_requests: u64,
    pub max_error_rate_increase: f64,
    pub max_latency_ratio: f64,
    pub max_positive_rate_shift: f64,
    pub min_adverse_impact_ratio: Option<f64>,
    pub min_auc_delta: Option<f64>,
    /// Labelled rows each route needs before a step is judged (0: judge without waiting for
    /// labels). With it, no step passes on traffic alone: quality is always compared.
    pub min_labelled_rows: u64,
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        Self { steps: vec![10, 50, 100], min_requests: 200, max_error_rate_increase: 0.01, max_latency_ratio: 1.5, max_positive_rate_shift: 0.1, min_adverse_impact_ratio: Some(0.8), min_auc_delta: Some(-0.01), min_labelled_rows: 0 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CanaryVerdict {
    /// Not enough challenger traffic yet.
    Wait,
    Pass(String),
    Fail(String),
}

pub fn judge_canary(p: &CanaryPolicy, c: &crate::CanaryState) -> CanaryVerdict {
    let (champ, chal) = (&c.champion, &c.challenger);
    let mut failures = Vec::new();
    // Errors fail at once, whatever the traffic so far.
    if chal.error_rate() > champ.error_rate() + p.max_error_rate_increase {
        failures.push(format!("error rate {:.4} vs champion {:.4}", chal.error_rate(), champ.error_rate()));
    }
    if failures.is_empty() && chal.requests < p.min_requests {
        return CanaryVerdict::Wait;
    }
    // Without champion traffic to compare with, only the error gate can speak.
    let compared = champ.requests > 0;
    if failures.is_empty() && p.min_labelled_rows > 0 && (chal.labelled_rows < p.min_labelled_rows || (compared && champ.labelled_rows < p.min_labelled_rows)) {
        return CanaryVerdict::Wait;
    }
    if compared && champ.latency_p95_ms > 0.0 && chal.latency_p95_ms > champ.latency_p95_ms * p.max_latency_ratio {
        failures.push(format!("p95 latency {:.2} ms vs champion {:.2} ms", chal.latency_p95_ms, champ.latency_p95_ms));
    }
    if compared && (chal.positive_rate - champ.positive_rate).abs() > p.max_positive_rate_shift {
        failures.push(format!("positive rate {:.3} vs champion {:.3}", chal.positive_rate, champ.positive_rate));
    }
    if let (Some(min), Some(air)) = (p.min_adverse_impact_ratio, chal.adverse_impact_ratio)
        && air < min
    {
        failures.push(format!("adverse impact ratio {air:.3} below {min}"));
    }
    if let (Some(delta), Some(a), Some(b)) = (p.min_auc_delta, chal.roc_auc, champ.roc_auc)
        && a - b < delta
    {
        failures.push(format!("ROC AUC {a:.4} vs champion {b:.4}"));
    }
    if failures.is_empty() {
        let quality = match (chal.roc_auc, champ.roc_auc) {
            (Some(a), Some(b)) => format!(", ROC AUC {a:.4} vs champion {b:.4} on {} labelled rows", chal.labelled_rows),
            _ => String::new(),
        };
        CanaryVerdict::Pass(format!("challenger v{} passed every gate at {}% on {} requests{quality}", c.challenger_version, c.weight, chal.requests))
    } else {
        CanaryVerdict::Fail(format!("challenger v{} failed at {}%: {}", c.challenger_version, c.weight, failures.join("; ")))
    }
}
