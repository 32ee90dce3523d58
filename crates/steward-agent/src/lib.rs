//! Steward's agent, its decision core: `decide(observations, policies, state) -> actions`, a
//! pure function. Policies say which metric conditions over consecutive monitor windows open
//! an incident and what to do about it, which actions wait for a human, and how a canary is
//! judged; the core turns what the monitors and the canary routes report into incidents and
//! actions. Observing, acting and recording are the caller's (no IO here).

pub mod canary;
pub mod policy;
pub mod reason;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use canary::{CanaryVerdict, RouteStats, judge_canary};
pub use policy::{ActionKind, Condition, Feature, IncidentKind, Policy, Retrain, Trigger};

/// One value of a monitor's time series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub deployment: String,
    pub metric: String,
    /// The feature or group ("" for the whole deployment).
    #[serde(default)]
    pub feature: String,
    pub window_end: i64,
    pub value: f64,
}

/// A canary in progress: the challenger's share of traffic and each route's stats since the
/// last step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryState {
    pub deployment: String,
    pub challenger_version: i64,
    pub weight: u8,
    pub champion: RouteStats,
    pub challenger: RouteStats,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observations {
    pub points: Vec<Point>,
    pub canaries: Vec<CanaryState>,
}

/// What the agent already knows: incidents it has open (by deployment and trigger) and actions
/// waiting for approval.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct State {
    /// (deployment, trigger name) of every open incident.
    pub open_incidents: Vec<(String, String)>,
    /// (deployment, action) waiting for a human.
    pub pending: Vec<(String, ActionKind)>,
}

/// The evidence of an incident: the windows that met the condition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub metric: String,
    pub feature: String,
    pub condition: Condition,
    /// (window end, value), oldest first.
    pub windows: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    OpenIncident { deployment: String, trigger: String, kind: IncidentKind, evidence: Evidence },
    /// Do it now (the policy allows it without a human). `trigger`: the incident's, if any.
    Execute { deployment: String, kind: ActionKind, reason: String, trigger: Option<String> },
    /// Put it in the approval queue.
    RequestApproval { deployment: String, kind: ActionKind, reason: String, trigger: Option<String> },
    /// Move the canary to the next traffic step.
    CanaryStep { deployment: String, weight: u8, reason: String },
}

/// Series of one (deployment, metric, feature), oldest window first.
fn series<'a>(points: &'a [Point], deployment: &str, metric: &str) -> BTreeMap<&'a str, Vec<(i64, f64)>> {
    let mut out: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
    for p in points.iter().filter(|p| p.deployment == deployment && p.metric == metric) {
        out.entry(p.feature.as_str()).or_default().push((p.window_end, p.value));
    }
    out.values_mut().for_each(|s| s.sort_by_key(|(t, _)| *t));
    out
}

/// The windows that fire a trigger: the last `windows` of a matching series, when all meet the
/// condition (the first such series, by feature name).
fn fired(points: &[Point], deployment: &str, t: &Trigger) -> Option<Evidence> {
    let all = series(points, deployment, &t.metric);
    all.iter()
        .filter(|(feature, _)| t.feature.matches(feature))
        .find_map(|(feature, s)| {
            let n = t.windows.max(1);
            let last = s.get(s.len().checked_sub(n)?..)?;
            last.iter().all(|(_, v)| t.condition.holds(*v)).then(|| Evidence { metric: t.metric.clone(), feature: (*feature).to_owned(), condition: t.condition, windows: last.to_vec() })
        })
}

/// The decision: incidents to open, actions to run or to queue for approval, canary steps.
pub fn decide(observations: &Observations, policies: &[Policy], state: &State) -> Vec<Action> {
    let mut actions = Vec::new();
    for p in policies {
        for t in &p.triggers {
            let key = (p.deployment.clone(), t.name.clone());
            if state.open_incidents.contains(&key) {
                continue;
            }
            let Some(evidence) = fired(&observations.points, &p.deployment, t) else { continue };
            let reason = format!(
                "{} on {}: {} {}{} for {} window(s)",
                t.name,
                p.deployment,
                evidence.metric,
                if evidence.feature.is_empty() { String::new() } else { format!("of {} ", evidence.feature) },
                evidence.condition,
                evidence.windows.len()
            );
            actions.push(Action::OpenIncident { deployment: p.deployment.clone(), trigger: t.name.clone(), kind: t.incident, evidence });
            for kind in &t.actions {
                if state.pending.contains(&(p.deployment.clone(), *kind)) {
                    continue;
                }
                let (deployment, reason, trigger) = (p.deployment.clone(), reason.clone(), Some(t.name.clone()));
                actions.push(if p.needs_approval(*kind) {
                    Action::RequestApproval { deployment, kind: *kind, reason, trigger }
                } else {
                    Action::Execute { deployment, kind: *kind, reason, trigger }
                });
            }
        }
    }
    for c in &observations.canaries {
        let Some(p) = policies.iter().find(|p| p.deployment == c.deployment) else { continue };
        match judge_canary(&p.canary, c) {
            CanaryVerdict::Wait => {}
            CanaryVerdict::Fail(reason) => {
                // Rolling back never waits for a human: it returns to what was approved.
                actions.push(Action::Execute { deployment: c.deployment.clone(), kind: ActionKind::Rollback, reason, trigger: None });
            }
            CanaryVerdict::Pass(reason) => match p.canary.steps.iter().copied().find(|w| *w > c.weight) {
                Some(next) => actions.push(Action::CanaryStep { deployment: c.deployment.clone(), weight: next, reason }),
                None if state.pending.contains(&(c.deployment.clone(), ActionKind::Promote)) => {}
                None if p.needs_approval(ActionKind::Promote) => actions.push(Action::RequestApproval { deployment: c.deployment.clone(), kind: ActionKind::Promote, reason, trigger: None }),
                None => actions.push(Action::Execute { deployment: c.deployment.clone(), kind: ActionKind::Promote, reason, trigger: None }),
            },
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
deployment: credit
triggers:
  - {name: feature-drift, metric: drift_score, feature: any, above: 0.2, windows: 2, incident: data_drift, actions: [retrain, notify]}
  - {name: auc-floor, metric: roc_auc, below: 0.7, incident: performance_decay, actions: [retrain]}
  - {name: four-fifths, metric: adverse_impact_ratio, below: 0.8, incident: fairness_breach, actions: [pause]}
approval: [promote, pause]
canary: {steps: [10, 50, 100], min_requests: 100, max_error_rate_increase: 0.01, max_latency_ratio: 1.5, max_positive_rate_shift: 0.1, min_adverse_impact_ratio: 0.8, min_auc_delta: -0.01}
"#;

    fn policy() -> Policy {
        serde_norway::from_str(POLICY).unwrap()
    }

    fn pts(metric: &str, feature: &str, values: &[f64]) -> Vec<Point> {
        values.iter().enumerate().map(|(i, v)| Point { deployment: "credit".into(), metric: metric.into(), feature: feature.into(), window_end: 1000 * (i as i64 + 1), value: *v }).collect()
    }

    fn kinds(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::OpenIncident { kind, .. } => format!("open {kind:?}"),
                Action::Execute { kind, .. } => format!("do {kind:?}"),
                Action::RequestApproval { kind, .. } => format!("ask {kind:?}"),
                Action::CanaryStep { weight, .. } => format!("step {weight}"),
            })
            .collect()
    }

    #[test]
    fn triggers_over_consecutive_windows() {
        let p = [policy()];
        let none = State::default();
        let cases: Vec<(&str, Vec<Point>, State, Vec<&str>)> = vec![
            ("two windows over on one feature", [pts("drift_score", "age", &[0.05, 0.1]), pts("drift_score", "income", &[0.1, 0.25, 0.3])].concat(), none.clone(), vec!["open DataDrift", "do Retrain", "do Notify"]),
            ("only the last window over", pts("drift_score", "income", &[0.1, 0.1, 0.3]), none.clone(), vec![]),
            ("over, then back under", pts("drift_score", "income", &[0.3, 0.3, 0.1]), none.clone(), vec![]),
            ("one window, too few", pts("drift_score", "income", &[0.9]), none.clone(), vec![]),
            ("exactly at the threshold is not above", pts("drift_score", "income", &[0.2, 0.2]), none.clone(), vec![]),
            ("already open", pts("drift_score", "income", &[0.3, 0.3]), State { open_incidents: vec![("credit".into(), "feature-drift".into())], ..Default::default() }, vec![]),
            ("AUC below the floor once", pts("roc_auc", "", &[0.8, 0.65]), none.clone(), vec!["open PerformanceDecay", "do Retrain"]),
            ("retrain already waiting", pts("roc_auc", "", &[0.65]), State { pending: vec![("credit".into(), ActionKind::Retrain)], ..Default::default() }, vec!["open PerformanceDecay"]),
            ("fairness breach: pausing needs approval", pts("adverse_impact_ratio", "", &[0.7]), none.clone(), vec!["open FairnessBreach", "ask Pause"]),
            ("other deployments are not this policy's", pts("roc_auc", "", &[0.1]).into_iter().map(|mut p| { p.deployment = "fraud".into(); p }).collect(), none.clone(), vec![]),
        ];
        for (name, points, state, want) in cases {
            let got = decide(&Observations { points, canaries: vec![] }, &p, &state);
            assert_eq!(kinds(&got), want, "{name}");
        }
    }

    #[test]
    fn the_evidence_names_the_windows() {
        let got = decide(&Observations { points: pts("drift_score", "income", &[0.1, 0.25, 0.3]), canaries: vec![] }, &[policy()], &State::default());
        let Action::OpenIncident { evidence, .. } = &got[0] else { panic!("{got:?}") };
        assert_eq!((evidence.feature.as_str(), evidence.windows.clone()), ("income", vec![(2000, 0.25), (3000, 0.3)]));
        let Action::Execute { reason, .. } = &got[1] else { panic!() };
        assert_eq!(reason, "feature-drift on credit: drift_score of income above 0.2 for 2 window(s)");
    }

    fn stats(requests: u64, errors: u64, latency: f64, positive: f64, auc: Option<f64>) -> RouteStats {
        RouteStats { requests, errors, latency_p95_ms: latency, positive_rate: positive, adverse_impact_ratio: Some(0.9), roc_auc: auc, labelled_rows: if auc.is_some() { 150 } else { 0 } }
    }

    #[test]
    fn canary_steps_promotes_and_rolls_back() {
        let champion = stats(1000, 1, 2.0, 0.20, Some(0.80));
        let good = stats(150, 0, 2.2, 0.22, Some(0.82));
        let canary = |weight: u8, challenger: RouteStats| CanaryState { deployment: "credit".into(), challenger_version: 2, weight, champion: champion.clone(), challenger };
        let mut auto = policy();
        auto.approval.clear();
        let cases: Vec<(&str, CanaryState, &Policy, State, Vec<&str>)> = vec![
            ("too little traffic", canary(10, stats(50, 0, 2.0, 0.2, None)), &auto, State::default(), vec![]),
            ("good at 10%", canary(10, good.clone()), &auto, State::default(), vec!["step 50"]),
            ("good at 50%", canary(50, good.clone()), &auto, State::default(), vec!["step 100"]),
            ("good at 100%, auto-approved", canary(100, good.clone()), &auto, State::default(), vec!["do Promote"]),
            ("errors roll back before min_requests", canary(10, stats(40, 5, 2.0, 0.2, None)), &auto, State::default(), vec!["do Rollback"]),
            ("worse AUC rolls back", canary(50, stats(150, 0, 2.0, 0.2, Some(0.70))), &auto, State::default(), vec!["do Rollback"]),
            ("slower rolls back", canary(50, stats(150, 0, 3.5, 0.2, None)), &auto, State::default(), vec!["do Rollback"]),
            ("approves far more or fewer: rolls back", canary(50, stats(150, 0, 2.0, 0.45, None)), &auto, State::default(), vec!["do Rollback"]),
            (
                "no champion traffic to compare with: only errors count",
                CanaryState { champion: RouteStats::default(), ..canary(50, stats(150, 0, 9.0, 0.9, None)) },
                &auto,
                State::default(),
                vec!["step 100"],
            ),
        ];
        for (name, c, p, state, want) in cases {
            let got = decide(&Observations { points: vec![], canaries: vec![c] }, std::slice::from_ref(p), &state);
            assert_eq!(kinds(&got), want, "{name}");
        }
        // With labels required, traffic alone does not pass a step; labels in, quality decides.
        let mut labelled = auto.clone();
        labelled.canary.min_labelled_rows = 100;
        let unlabelled = Observations { points: vec![], canaries: vec![canary(10, stats(150, 0, 2.2, 0.22, None))] };
        assert!(decide(&unlabelled, std::slice::from_ref(&labelled), &State::default()).is_empty());
        let few = Observations { points: vec![], canaries: vec![canary(10, RouteStats { labelled_rows: 99, ..good.clone() })] };
        assert!(decide(&few, std::slice::from_ref(&labelled), &State::default()).is_empty());
        assert_eq!(kinds(&decide(&Observations { points: vec![], canaries: vec![canary(10, good.clone())] }, std::slice::from_ref(&labelled), &State::default())), vec!["step 50"]);
        // Waiting for labels never holds back a rollback for errors.
        let failing = Observations { points: vec![], canaries: vec![canary(10, stats(40, 5, 2.0, 0.2, None))] };
        assert_eq!(kinds(&decide(&failing, std::slice::from_ref(&labelled), &State::default())), vec!["do Rollback"]);
        // With approval required, promotion waits in the queue, and is not asked for twice.
        let p = [policy()];
        let obs = Observations { points: vec![], canaries: vec![canary(100, good.clone())] };
        assert_eq!(kinds(&decide(&obs, &p, &State::default())), vec!["ask Promote"]);
        assert!(decide(&obs, &p, &State { pending: vec![("credit".into(), ActionKind::Promote)], ..Default::default() }).is_empty());
        let Action::Execute { reason, .. } = &decide(&Observations { points: vec![], canaries: vec![canary(50, stats(150, 0, 2.0, 0.2, Some(0.7)))] }, &p, &State::default())[0] else { panic!() };
        assert_eq!(reason, "challenger v2 failed at 50%: ROC AUC 0.7000 vs champion 0.8000");
    }

    #[test]
    fn policies_refuse_what_they_cannot_mean() {
        for (yaml, needle) in [
            ("deployment: d\ntriggers: [{name: t, metric: m, above: 1, below: 0, incident: data_drift}]", "exactly one of 'above' and 'below'"),
            ("deployment: d\ntriggers: [{name: t, metric: m, above: 1, windows: 0, incident: data_drift}]", "windows must be within 1..1000 consecutive windows, got 0"),
            ("deployment: d\ntriggers: [{name: t, metric: m, above: 1, windows: 1001, incident: data_drift}]", "windows must be within 1..1000 consecutive windows, got 1001"),
            ("deployment: d\ntriggers: [{name: t, metric: m, above: 1, incident: meltdown}]", "meltdown"),
            ("deployment: d\napprovals: [promote]", "approvals"),
            ("deployment: d\ncanary: {steps: [10], max_error_rate: 0.1}", "max_error_rate"),
        ] {
            let e = serde_norway::from_str::<Policy>(yaml).unwrap_err().to_string();
            assert!(e.contains(needle), "{yaml}: {e}");
        }
    }
}
