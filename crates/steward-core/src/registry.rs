//! Model-registry entities and rules: registered models, versions, stages, aliases, the
//! logged models MLflow 3 clients create, the history of every alias and stage change, and
//! versions of registered datasets with their lineage.

use serde::{Deserialize, Serialize};

use crate::entities::Tag;
use crate::error::{Error, Result};

/// MLflow's four stages, in their canonical spelling.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

/// Canonical stage name for any casing, or MLflow's error.
pub fn canonical_stage(stage: &str) -> Result<&'static str> {
    STAGES.into_iter().find(|s| s.eq_ignore_ascii_case(stage)).ok_or_else(|| {
        Error::invalid(format!(
            "Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived."
        ))
    })
}

/// MLflow's alias rules: 1–255 word characters or dashes, not `latest`, not version-like (`v3`).
pub fn check_alias(alias: &str) -> Result<()> {
    if alias.is_empty() || alias.chars().count() > 255 {
        return Err(Error::invalid(format!(
            "Invalid alias name: '{alias}'. Alias names must be between 1 and 255 characters."
        )));
    }
    if !alias.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Err(Error::invalid(format!(
            "Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores (_), and dashes (-)."
        )));
    }
    if alias.eq_ignore_ascii_case("latest") {
        return Err(Error::invalid(format!("'{alias}' alias name (case insensitive) is reserved.")));
    }
    let lower = alias.to_ascii_lowercase();
    if lower.len() > 1 && lower.starts_with('v') && lower[1..].chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::invalid(format!(
            "Version alias name '{alias}' is reserved. Aliases cannot be of the form 'v<number>'."
        )));
    }
    Ok(())
}

pub fn check_model_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("Registered model name cannot be empty."));
    }
    if name.contains('/') || name.contains(':') || name.contains('%') || name.contains('\n') {
        return Err(Error::invalid(format!(
            "Invalid model name: '{name}'. Names cannot contain '/', ':', '%' or line breaks."
        )));
    }
    if name.chars().count() > 256 {
        return Err(Error::invalid("'name' exceeds the maximum length of 256 characters"));
    }
    Ok(())
}

/// Parses a version number as MLflow sends it (a string of digits).
pub fn parse_version(version: &str) -> Result<i64> {
    version
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| Error::invalid(format!("Model version must be an integer, got '{version}'")))
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    pub user_id: Option<String>,
    /// The authenticated principal that created it (four-eyes is judged against this).
    pub created_by: String,
    pub current_stage: String,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub model_id: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub tags: Vec<Tag>,
    pub aliases: Vec<String>,
    /// `sha256:` of the model file serving loads (its `.onnx`), recorded when the version was
    /// created (or when it was first served, for versions registered before their files);
    /// a version whose file no longer has this digest is refused at load.
    pub content_digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModel {
    /// Immutable: a rename keeps it, a model deleted and created again under the same name
    /// gets a new one. Deployments bind to it, not to the name.
    pub id: String,
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: Option<String>,
    /// The newest version in each stage.
    pub latest_versions: Vec<ModelVersion>,
    pub tags: Vec<Tag>,
    /// `(alias, version)` pairs.
    pub aliases: Vec<(String, i64)>,
}

/// The arguments of `model-versions/create`.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub run_link: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub model_id: Option<String>,
    /// `sha256:` of the model file, when the server could read it at creation.
    pub content_digest: Option<String>,
}

/// One alias or stage change, kept for "what pointed where, when".
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEvent {
    pub model: String,
    /// `alias` or `stage`.
    pub kind: String,
    /// The alias name, or the stage the version moved to.
    pub label: String,
    /// The version the alias now points to (None once the alias was removed), or the version
    /// that moved stage.
    pub version: Option<i64>,
    pub time: i64,
    pub actor: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoggedModel {
    pub model_id: String,
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub status: String,
    pub status_message: Option<String>,
    pub tags: Vec<Tag>,
    pub params: Vec<Tag>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_canonicalised() {
        assert_eq!(canonical_stage("production").unwrap(), "Production");
        assert_eq!(canonical_stage("NONE").unwrap(), "None");
        assert!(canonical_stage("prod").unwrap_err().message().contains("Invalid Model Version stage: prod"));
    }

    #[test]
    fn aliases_follow_mlflow_rules() {
        for ok in ["champion", "challenger-2", "prod_eu"] {
            check_alias(ok).unwrap();
        }
        for bad in ["", "latest", "Latest", "v1", "V12", "has space", "a/b"] {
            assert!(check_alias(bad).is_err(), "{bad}");
        }
    }
}

/// A version of a registered dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetVersion {
    pub name: String,
    pub version: i64,
    /// `sha256:` and 64 hex digits over the table's canonical encoding.
    pub fingerprint: String,
    /// Where the content-addressed copy lives.
    pub artifact_uri: String,
    /// `csv` or `parquet`.
    pub format: String,
    pub rows: i64,
    /// JSON: column names and types.
    pub schema: serde_json::Value,
    /// JSON: the reference profile.
    pub profile: serde_json::Value,
    pub creation_time: i64,
    pub created_by: String,
}

impl DatasetVersion {
    /// What runs log as the MLflow dataset digest: the fingerprint's first 32 hex digits.
    pub fn digest(&self) -> &str {
        let hex = self.fingerprint.strip_prefix("sha256:").unwrap_or(&self.fingerprint);
        &hex[..hex.len().min(32)]
    }
}

/// Where a dataset version went: the runs that logged it as input and the model versions those
/// runs produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetLineage {
    pub runs: Vec<String>,
    pub model_versions: Vec<(String, i64)>,
}
