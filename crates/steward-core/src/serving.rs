//! Deployments: a name bound to registry versions through routes (champion, challenger with a
//! traffic weight, shadow), model references (`models:/NAME@ALIAS`, `models:/NAME/VERSION`),
//! and the routing decision. Pure: the server resolves references and runs models.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A registry model reference as users write it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ModelRef {
    Alias { name: String, alias: String },
    Version { name: String, version: i64 },
}

impl ModelRef {
    pub fn parse(uri: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("model '{uri}' is not a registry reference: use models:/NAME@ALIAS or models:/NAME/VERSION"));
        let rest = uri.strip_prefix("models:/").ok_or_else(bad)?;
        if let Some((name, alias)) = rest.rsplit_once('@') {
            if name.is_empty() || alias.is_empty() || name.contains('/') {
                return Err(bad());
            }
            return Ok(Self::Alias { name: name.to_owned(), alias: alias.to_owned() });
        }
        let (name, version) = rest.rsplit_once('/').ok_or_else(bad)?;
        let version: i64 = version.parse().map_err(|_| bad())?;
        if name.is_empty() || version < 1 {
            return Err(bad());
        }
        Ok(Self::Version { name: name.to_owned(), version })
    }

    pub fn model_name(&self) -> &str {
        match self {
            Self::Alias { name, .. } | Self::Version { name, .. } => name,
        }
    }

    fn rename(&mut self, from: &str, to: &str) -> bool {
        match self {
            Self::Alias { name, .. } | Self::Version { name, .. } if name == from => {
                *name = to.to_owned();
                true
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Alias { name, alias } => write!(f, "models:/{name}@{alias}"),
            Self::Version { name, version } => write!(f, "models:/{name}/{version}"),
        }
    }
}

impl TryFrom<String> for ModelRef {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<ModelRef> for String {
    fn from(m: ModelRef) -> String {
        m.to_string()
    }
}

/// Which route of a deployment answered (or shadowed) a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteRole {
    Champion,
    Challenger,
    Shadow,
}

impl RouteRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Champion => "champion",
            Self::Challenger => "challenger",
            Self::Shadow => "shadow",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenger {
    pub model: ModelRef,
    /// Percent of traffic, 0..=100; the champion takes the rest.
    pub weight: u32,
}

/// What a deployment serves. Stored as JSON; versions behind aliases are resolved at load time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentSpec {
    pub name: String,
    pub model: ModelRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenger: Option<Challenger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ModelRef>,
    /// The last good version: the champion before the current one, pinned. The stop switch
    /// returns to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<ModelRef>,
    /// The immutable id of every registered model the references name, as bound when the
    /// spec was stored (name → id). A rename rewrites the references and these keys; a name
    /// that now belongs to another model (deleted and created again) is refused at load.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub model_ids: std::collections::BTreeMap<String, String>,
    /// The most rows one scoring request may hold ([`DEFAULT_MAX_ROWS`] when unset); a larger
    /// request is refused (413) as soon as the row past it is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows_per_request: Option<u64>,
}

/// Rows per scoring request when a deployment sets no limit of its own.
pub const DEFAULT_MAX_ROWS: u64 = 1_000_000;
/// The largest limit a deployment may set.
pub const MAX_ROWS_CEILING: u64 = 100_000_000;

impl DeploymentSpec {
    /// The rows one scoring request may hold.
    pub fn max_rows(&self) -> usize {
        self.max_rows_per_request.unwrap_or(DEFAULT_MAX_ROWS) as usize
    }

    pub fn validate(&self) -> Result<()> {
        check_deployment_name(&self.name)?;
        if let Some(c) = &self.challenger
            && c.weight > 100
        {
            return Err(Error::invalid(format!("challenger weight {} is not a percentage (0-100)", c.weight)));
        }
        if let Some(n) = self.max_rows_per_request
            && !(1..=MAX_ROWS_CEILING).contains(&n)
        {
            return Err(Error::invalid(format!("max_rows_per_request {n} is out of range (1-{MAX_ROWS_CEILING})")));
        }
        Ok(())
    }

    /// Every model reference: champion, challenger, shadow and fallback.
    pub fn refs(&self) -> impl Iterator<Item = &ModelRef> {
        std::iter::once(&self.model).chain(self.challenger.as_ref().map(|c| &c.model)).chain(self.shadow.as_ref()).chain(self.fallback.as_ref())
    }

    /// Follows a registered model's rename: every reference to `from` (and its bound id) now
    /// says `to`. Whether anything changed.
    pub fn rename_model(&mut self, from: &str, to: &str) -> bool {
        let mut changed = self.model.rename(from, to);
        if let Some(c) = &mut self.challenger {
            changed |= c.model.rename(from, to);
        }
        for m in [&mut self.shadow, &mut self.fallback].into_iter().flatten() {
            changed |= m.rename(from, to);
        }
        if let Some(id) = self.model_ids.remove(from) {
            self.model_ids.insert(to.to_owned(), id);
            changed = true;
        }
        changed
    }

    /// The route a request goes to: by `key` when given (the same key always lands on the
    /// same route for a given weight), else by `draw`, a uniform number in 0..100.
    pub fn route(&self, key: Option<&str>, draw: u32) -> RouteRole {
        let Some(c) = &self.challenger else { return RouteRole::Champion };
        let bucket = key.map_or(draw % 100, |k| (stable_hash(k.as_bytes()) % 100) as u32);
        if bucket < c.weight { RouteRole::Challenger } else { RouteRole::Champion }
    }
}

/// Deployment names appear in URL paths (`/v2/models/NAME/infer`): letters, digits, `_`, `-`
/// and `.`, 1 to 64 of them, not starting with `.`.
pub fn check_deployment_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("deployment name '{name}' must be 1-64 letters, digits, '_', '-' or '.', not starting with '.'")))
    }
}

/// FNV-1a, 64-bit, then a final avalanche (SplitMix64's) so nearby keys spread over buckets.
/// Fixed forever: changing it would move sticky users between routes.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_refs_parse_and_print() {
        assert_eq!(ModelRef::parse("models:/fraud@champion").unwrap(), ModelRef::Alias { name: "fraud".into(), alias: "champion".into() });
        assert_eq!(ModelRef::parse("models:/fraud/3").unwrap(), ModelRef::Version { name: "fraud".into(), version: 3 });
        assert_eq!(ModelRef::parse("models:/fraud/3").unwrap().to_string(), "models:/fraud/3");
        for bad in ["fraud", "models:/", "models:/fraud", "models:/fraud/0", "models:/fraud/x", "models:/@a", "runs:/abc/model"] {
            let e = ModelRef::parse(bad).unwrap_err();
            assert!(e.message().contains(bad), "{bad}: {}", e.message());
        }
    }

    fn raised(kind: &str, value: f64) -> Alert {
        Alert { id: format!("{kind}-{value}"), deployment: "d".into(), time: 0, kind: kind.into(), value, threshold: 0.5, message: format!("{kind} {value}"), delivered: false, attempts: 0, status: String::new(), last_seen: 0, notified_at: 0, resolved_at: None }
    }

    #[test]
    fn a_condition_that_holds_for_ten_windows_fires_once_and_resolves_once() {
        let (mut open, mut firing, mut resolved, mut repeats) = (Vec::<Alert>::new(), 0, 0, 0);
        let judged = ["data_drift", "latency"];
        for w in 1..=12 {
            let time = w * 60_000;
            let raised = if (2..=11).contains(&w) { vec![raised("data_drift", 0.6), raised("data_drift", 0.7)] } else { vec![] };
            let c = alert_changes(&open, raised, &judged, time, 3_600_000);
            firing += c.opened.len();
            repeats += c.held.iter().filter(|(_, n)| *n).count();
            resolved += c.resolved.len();
            open.extend(c.opened);
            for (h, _) in c.held {
                let o = open.iter_mut().find(|o| o.id == h.id).unwrap();
                *o = h;
            }
            open.retain(|o| !c.resolved.iter().any(|r| r.id == o.id));
            if w == 6 {
                assert_eq!(open.len(), 1);
                assert_eq!((open[0].time, open[0].last_seen, open[0].value), (120_000, 360_000, 0.6));
            }
        }
        assert_eq!((firing, repeats, resolved), (1, 0, 1));
        // A window that cannot judge a kind leaves its alert open; a long one repeats.
        let open = vec![Alert { status: "firing".into(), notified_at: 0, ..raised("quality", 0.5) }];
        let c = alert_changes(&open, vec![], &["data_drift"], 10, 100);
        assert!(c.resolved.is_empty() && c.held.is_empty() && c.opened.is_empty());
        let c = alert_changes(&open, vec![raised("quality", 0.4)], &["quality"], 100, 100);
        assert_eq!(c.held.len(), 1);
        assert!(c.held[0].1, "notified again once the repeat interval passed");
        assert_eq!((c.held[0].0.id.as_str(), c.held[0].0.value, c.held[0].0.notified_at), ("quality-0.5", 0.4, 100));
        let c = alert_changes(&open, vec![], &["quality"], 200, 100);
        assert_eq!((c.resolved[0].status.as_str(), c.resolved[0].resolved_at), ("resolved", Some(200)));
    }

    #[test]
    fn a_rename_rewrites_every_reference_and_its_binding() {
        let mut spec: DeploymentSpec = serde_json::from_value(serde_json::json!({
            "name": "d", "model": "models:/credit@champion", "challenger": {"model": "models:/credit/3", "weight": 10},
            "shadow": "models:/other/1", "fallback": "models:/credit/1", "model_ids": {"credit": "id1", "other": "id2"}
        }))
        .unwrap();
        assert!(spec.rename_model("credit", "credit-old"));
        let refs: Vec<String> = spec.refs().map(ToString::to_string).collect();
        assert_eq!(refs, ["models:/credit-old@champion", "models:/credit-old/3", "models:/other/1", "models:/credit-old/1"]);
        assert_eq!(spec.model_ids.get("credit-old").map(String::as_str), Some("id1"));
        assert!(!spec.model_ids.contains_key("credit"));
        assert!(!spec.rename_model("absent", "x"));
    }

    #[test]
    fn weights_split_traffic_and_keys_stick() {
        let spec = DeploymentSpec {
            name: "d".into(),
            model: ModelRef::parse("models:/m@champion").unwrap(),
            challenger: Some(Challenger { model: ModelRef::parse("models:/m@challenger").unwrap(), weight: 10 }),
            shadow: None,
            fallback: None,
            model_ids: Default::default(),
            max_rows_per_request: None,
        };
        let challenger = (0..100).filter(|&d| spec.route(None, d) == RouteRole::Challenger).count();
        assert_eq!(challenger, 10);
        let keyed: Vec<_> = (0..10_000).map(|i| spec.route(Some(&format!("customer-{i}")), 0)).collect();
        let share = keyed.iter().filter(|r| **r == RouteRole::Challenger).count();
        assert!((800..1200).contains(&share), "{share}");
        assert_eq!(spec.route(Some("customer-7"), 0), spec.route(Some("customer-7"), 99));
    }
}

/// A stored deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    #[serde(flatten)]
    pub spec: DeploymentSpec,
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub created_by: String,
}

/// One logged prediction (a request's answer, or a shadow route's copy of it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionRecord {
    pub id: String,
    pub deployment: String,
    pub model: String,
    pub version: i64,
    pub route: RouteRole,
    /// For a shadow record: the id of the prediction that was returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// Milliseconds since the epoch.
    pub time: i64,
    pub latency_us: i64,
    /// JSON: `{input name: {"shape": [...], "data": [...]}}`.
    pub inputs: String,
    /// JSON, the same shape for outputs.
    pub outputs: String,
    /// JSON object given by the caller (a protected attribute kept out of the model, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// Ground truth for a prediction, arriving whenever it is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub prediction_id: String,
    /// JSON value: a class label or a number.
    pub label: serde_json::Value,
}

/// One value of a monitor's time series: a metric of one window (per feature, or for the
/// whole deployment when `feature` is empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorMetric {
    pub deployment: String,
    pub window_start: i64,
    pub window_end: i64,
    pub metric: String,
    pub feature: String,
    pub value: f64,
}

/// Which of a monitor's two streams a window came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Answered predictions, in the order they were made.
    Predictions,
    /// Labelled predictions, in the order their labels arrived.
    Labels,
}

/// A monitor as stored: its spec (JSON) and where each of its streams was last judged up to.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorState {
    pub deployment: String,
    pub spec: String,
    /// Windows by count: the commit sequence number of the last prediction judged.
    pub cursor_seq: i64,
    /// Windows by time: the start of the next window to judge; windows by count: the monitor's
    /// start, before which predictions are not judged (milliseconds).
    pub time_cursor: i64,
    /// The commit sequence number of the last label judged.
    pub label_cursor_seq: i64,
}

/// A threshold a monitor saw crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub deployment: String,
    /// When the condition started (the end of the window that first showed it).
    pub time: i64,
    pub kind: String,
    /// The latest window's value and message while it fires.
    pub value: f64,
    pub threshold: f64,
    pub message: String,
    /// Whether the last notification reached the webhook, and in how many attempts.
    pub delivered: bool,
    pub attempts: i64,
    /// `firing` while the condition holds, `resolved` once a window shows it no longer does.
    #[serde(default = "firing")]
    pub status: String,
    /// The end of the last window that showed the condition.
    #[serde(default)]
    pub last_seen: i64,
    /// When the last `firing` notification was sent (window time).
    #[serde(default)]
    pub notified_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<i64>,
}

fn firing() -> String {
    "firing".into()
}

/// How long a still-firing alert waits before it is notified again: Alertmanager's default
/// `repeat_interval`, four hours.
pub const DEFAULT_REPEAT_MS: i64 = 4 * 3600 * 1000;

/// What a judged window does to a deployment's alerts, in Alertmanager's model: one alert per
/// condition (deployment and kind), opened when the condition starts, kept while windows keep
/// showing it (notified again only after `repeat_ms`), resolved by the first window that judges
/// the condition and does not show it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AlertChanges {
    /// New alerts, firing (each notified).
    pub opened: Vec<Alert>,
    /// Open alerts still firing, with the window's value and message; `notify` when the repeat
    /// interval has passed.
    pub held: Vec<(Alert, bool)>,
    /// Open alerts whose condition ended, with the time of the window that showed it.
    pub resolved: Vec<Alert>,
}

/// The changes a window brings: `open` are the deployment's firing alerts, `raised` the
/// conditions this window shows (one kept per kind), `judged` the kinds this window can judge
/// (a prediction window cannot resolve a quality alert), `time` the window's end.
pub fn alert_changes(open: &[Alert], raised: Vec<Alert>, judged: &[&str], time: i64, repeat_ms: i64) -> AlertChanges {
    let mut changes = AlertChanges::default();
    let mut seen: Vec<String> = Vec::new();
    for mut a in raised {
        if seen.contains(&a.kind) {
            continue;
        }
        seen.push(a.kind.clone());
        match open.iter().find(|o| o.kind == a.kind) {
            Some(o) => {
                let notify = time - o.notified_at >= repeat_ms;
                let held = Alert { value: a.value, threshold: a.threshold, message: a.message, last_seen: time, notified_at: if notify { time } else { o.notified_at }, ..o.clone() };
                changes.held.push((held, notify));
            }
            None => {
                (a.status, a.time, a.last_seen, a.notified_at, a.resolved_at) = ("firing".into(), time, time, time, None);
                changes.opened.push(a);
            }
        }
    }
    for o in open.iter().filter(|o| judged.contains(&o.kind.as_str()) && !seen.contains(&o.kind)) {
        changes.resolved.push(Alert { status: "resolved".into(), resolved_at: Some(time), ..o.clone() });
    }
    changes
}

/// An incident the agent opened: a policy trigger that fired, with its evidence (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub deployment: String,
    pub trigger: String,
    pub kind: String,
    pub evidence: serde_json::Value,
    /// `open` or `closed`.
    pub status: String,
    pub opened: i64,
    /// Written analyses, oldest first: the rule-based reasoner's (`rules`) and, when one is
    /// configured, a language model's (`llm:MODEL`, advisory only).
    #[serde(default)]
    pub analyses: Vec<IncidentAnalysis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentAnalysis {
    pub source: String,
    pub text: String,
    pub created: i64,
}

/// An action the agent took or queued. Status: `pending` (waiting for a human), `approved`,
/// `rejected`, `running`, `done`, `failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentAction {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    pub deployment: String,
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub requested: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
    /// What running it came to: its result, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    pub updated: i64,
}
