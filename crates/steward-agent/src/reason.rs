//! The reasoning engine's deterministic part: the written analysis of an incident — what
//! happened, how far past its threshold and which way it is going, the likely causes for its
//! kind, what to check, and what the policy will do about it. The same facts, as JSON, are what
//! an optional language model is given (`prompt`); its text is advisory and never acts.

use serde::Serialize;
use serde_json::{Value, json};

use crate::{ActionKind, Condition, Evidence, IncidentKind, Policy, Trigger};

/// Where an analysis came from: the rules here, or a named language model.
pub const RULES: &str = "rules";

fn kind_text(k: IncidentKind) -> (&'static str, &'static str, &'static str) {
    match k {
        IncidentKind::DataDrift => (
            "Data drift",
            "The inputs no longer look like the data the model was trained on: the applicant mix changed, or an upstream feed changed units, encodings or defaults.",
            "Compare the drifted features with the reference profile and ask the data owners whether the change is real or a feed fault. Watch quality as labels arrive: drift alone does not prove the model got worse.",
        ),
        IncidentKind::ConceptDrift | IncidentKind::PerformanceDecay => (
            if matches!(k, IncidentKind::ConceptDrift) { "Concept drift" } else { "Performance decay" },
            "The model's answers match the outcomes less well than before: the relation between the inputs and the outcome changed, or the population moved to where the model is weak.",
            "Retrain on recent labelled data, evaluate the candidate against the champion on the same holdout (discrimination, calibration, fairness) and move it through a canary; keep the champion until the challenger is shown better on live traffic.",
        ),
        IncidentKind::FairnessBreach => (
            "Fairness breach",
            "Favourable-outcome rates across the protected groups diverged past the four-fifths rule: the group mix or the model's behaviour for one group changed.",
            "Review the per-group selection rates and error rates with the model risk and compliance owners; consider the stop switch (fall back to the last approved version) while the cause is established.",
        ),
        IncidentKind::DataQuality => (
            "Data-quality failure",
            "Inputs arrive missing or out of range: usually an upstream pipeline fault rather than a change in customers.",
            "Fix the feed before judging the model; predictions on broken inputs are not evidence about the model.",
        ),
        IncidentKind::SloBreach => (
            "Service-level breach",
            "Latency or errors rose past the service objective: load, resources, or a slower or failing model version.",
            "If a new version went live just before, roll it back; otherwise look at load and resources.",
        ),
    }
}

fn action_name(k: ActionKind) -> &'static str {
    match k {
        ActionKind::Retrain => "retrain",
        ActionKind::StartCanary => "start a canary",
        ActionKind::Promote => "promote",
        ActionKind::Rollback => "roll back",
        ActionKind::Pause => "pause (all traffic to the fallback version)",
        ActionKind::Notify => "notify",
    }
}

/// The rule-based analysis of an incident a trigger opened.
pub fn analyse(policy: &Policy, trigger: &Trigger, evidence: &Evidence) -> String {
    let (title, cause, check) = kind_text(trigger.incident);
    let what = if evidence.feature.is_empty() { evidence.metric.clone() } else { format!("{} of {}", evidence.metric, evidence.feature) };
    let values: Vec<String> = evidence.windows.iter().map(|(_, v)| format!("{v:.4}")).collect();
    let (threshold, past) = match evidence.condition {
        Condition::Above(t) => (t, evidence.windows.iter().map(|(_, v)| v - t).fold(f64::NEG_INFINITY, f64::max)),
        Condition::Below(t) => (t, evidence.windows.iter().map(|(_, v)| t - v).fold(f64::NEG_INFINITY, f64::max)),
    };
    let relative = if threshold != 0.0 { format!(" ({:.0}% of the threshold)", 100.0 * past / threshold.abs()) } else { String::new() };
    let trend = match (evidence.windows.first(), evidence.windows.last()) {
        (Some((_, a)), Some((_, b))) if evidence.windows.len() > 1 && (b - a).abs() > 1e-12 => {
            let worse = match evidence.condition {
                Condition::Above(_) => b > a,
                Condition::Below(_) => b < a,
            };
            if worse { " and getting worse" } else { " though easing" }
        }
        _ => "",
    };
    let mut response: Vec<String> = trigger
        .actions
        .iter()
        .map(|a| format!("{} ({})", action_name(*a), if policy.needs_approval(*a) { "waits for a human's approval" } else { "automatic under the policy" }))
        .collect();
    if response.is_empty() {
        response.push("none beyond this incident".into());
    }
    format!(
        "{title} on {deployment}: {what} {condition} in {n} consecutive window(s) [{values}], at most {past:.4} past the threshold{relative}{trend}.\n\
         Likely cause: {cause}\n\
         Recommendation: {check}\n\
         Policy response (trigger '{name}'): {response}.",
        deployment = policy.deployment,
        condition = evidence.condition,
        n = evidence.windows.len(),
        values = values.join(", "),
        name = trigger.name,
        response = response.join("; "),
    )
}

/// What a language model is asked: the structured incident, the policy's declared response,
/// the rule-based analysis and the read-only context (recent monitor values), as one JSON
/// document, with instructions that make clear its text advises and never acts.
#[derive(Debug, Clone, Serialize)]
pub struct Prompt {
    pub system: String,
    pub user: String,
}

pub fn prompt(policy: &Policy, trigger: &Trigger, evidence: &Evidence, rules: &str, context: Value) -> Prompt {
    let facts = json!({
        "deployment": policy.deployment,
        "incident": { "kind": trigger.incident, "trigger": trigger.name, "evidence": evidence },
        "policy": {
            "actions": trigger.actions,
            "need_approval": policy.approval,
            "retraining_pipeline": policy.retrain.as_ref().map(|r| r.pipeline.clone()),
        },
        "rule_based_analysis": rules,
        "context": context,
    });
    Prompt {
        system: "You are the incident analyst of Steward, an MLOps control plane for regulated credit models. \
                 You are given one incident as JSON: its evidence, the actions its written policy declares, the \
                 rule-based analysis and recent monitor values. Write a short analysis (under 200 words): what most \
                 likely happened, what a model risk officer should check, and whether the declared response fits. \
                 Your text is advisory and stored with the incident; you cannot take or trigger any action."
            .into(),
        user: serde_json::to_string_pretty(&facts).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_analysis_states_the_evidence_the_cause_and_the_policy() {
        let policy: Policy = serde_norway::from_str(
            "deployment: credit\ntriggers:\n  - {name: auc-floor, metric: roc_auc, below: 0.7, windows: 2, incident: performance_decay, actions: [retrain, notify]}\napproval: [retrain]\nretrain: {pipeline: retrain.yaml}\n",
        )
        .unwrap();
        let evidence = Evidence { metric: "roc_auc".into(), feature: String::new(), condition: Condition::Below(0.7), windows: vec![(1, 0.66), (2, 0.63)] };
        let text = analyse(&policy, &policy.triggers[0], &evidence);
        assert_eq!(
            text,
            "Performance decay on credit: roc_auc below 0.7 in 2 consecutive window(s) [0.6600, 0.6300], at most 0.0700 past the threshold (10% of the threshold) and getting worse.\n\
             Likely cause: The model's answers match the outcomes less well than before: the relation between the inputs and the outcome changed, or the population moved to where the model is weak.\n\
             Recommendation: Retrain on recent labelled data, evaluate the candidate against the champion on the same holdout (discrimination, calibration, fairness) and move it through a canary; keep the champion until the challenger is shown better on live traffic.\n\
             Policy response (trigger 'auc-floor'): retrain (waits for a human's approval); notify (automatic under the policy)."
        );
        let p = prompt(&policy, &policy.triggers[0], &evidence, &text, json!({"roc_auc": [0.81, 0.66, 0.63]}));
        let facts: Value = serde_json::from_str(&p.user).unwrap();
        assert_eq!(facts["incident"]["evidence"]["windows"], json!([[1, 0.66], [2, 0.63]]));
        assert_eq!(facts["policy"]["need_approval"], json!(["retrain"]));
        assert_eq!(facts["rule_based_analysis"], json!(text));
        assert!(p.system.contains("cannot take or trigger any action"));
    }
}
