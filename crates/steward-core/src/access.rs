//! Who may do what: roles, the principal a request runs as, and the rules for protected
//! model promotions (role and four-eyes). Pure decisions; the server supplies the facts.

use crate::error::{Error, ErrorCode, Result};

/// A user's role. Each role can do everything the one before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Logs runs and artifacts, registers models, creates versions, sets unprotected aliases.
    Scientist,
    /// Also promotes: protected aliases and the Production stage (never for their own versions).
    Validator,
    /// Also manages users and tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Scientist, Role::Validator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Scientist => "scientist",
            Role::Validator => "validator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            Error::invalid(format!("unknown role '{s}': expected one of viewer, scientist, validator, admin"))
        })
    }
}

/// A user account as administrators see it. Users are never removed from the store: a deleted
/// user keeps a tombstone, so their name — which the ledger and the four-eyes rule refer to —
/// cannot be given to somebody else.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub created_at: i64,
    /// A disabled user's tokens are refused until the user is enabled again.
    pub disabled: bool,
    /// When the user was deleted (their tokens are revoked with them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
}

/// An API token's record; the clear token is shown once, when it is issued, and never kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// A public handle to list and revoke it by (`tok_` and 16 hex digits of its digest).
    pub id: String,
    pub user: String,
    pub label: String,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// User names: 1-128 letters, digits, `_`, `-`, `.` or `@`.
pub fn check_user_name(name: &str) -> Result<()> {
    let valid = !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(format!("invalid user name '{name}': use 1-128 letters, digits, '_', '-', '.' or '@'")))
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// What a route needs of its caller. Every HTTP route declares exactly one (the server's
/// route table); nothing is authorised by the shape of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Perm {
    /// No credentials needed: health, version, the UI's static files, `/metrics`.
    Public,
    /// Reading anything, and scoring (which changes nothing but the prediction log).
    Read,
    /// Tracking and registry writes: runs, artifacts, models, versions, unprotected aliases.
    Write,
    /// Changing what production serves: deployments' routes, the stop switch, monitors.
    Deploy,
    /// `Deploy`, or `Write` on behalf of a running agent action that names the deployment
    /// (the agent's retraining pipeline adding its canary). The handler checks the action.
    DeployOrAgentAction,
    /// Deciding the agent's pending actions (the approval queue).
    Approve,
    /// Users and API tokens.
    Admin,
}

impl Perm {
    pub const ALL: [Perm; 7] = [Perm::Public, Perm::Read, Perm::Write, Perm::Deploy, Perm::DeployOrAgentAction, Perm::Approve, Perm::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Perm::Public => "public",
            Perm::Read => "read",
            Perm::Write => "write",
            Perm::Deploy => "deploy",
            Perm::DeployOrAgentAction => "deploy-or-agent-action",
            Perm::Approve => "approve",
            Perm::Admin => "admin",
        }
    }

    /// What a caller without it is told they may not do.
    fn denied_what(self) -> &'static str {
        match self {
            Perm::Public | Perm::Read => "read",
            Perm::Write => "make changes",
            Perm::Deploy | Perm::DeployOrAgentAction => "change what a deployment serves",
            Perm::Approve => "decide the agent's actions",
            Perm::Admin => "manage users and tokens",
        }
    }

    /// The least role that holds this permission outright.
    pub fn least_role(self) -> Option<Role> {
        match self {
            Perm::Public => None,
            Perm::Read => Some(Role::Viewer),
            Perm::Write => Some(Role::Scientist),
            Perm::Deploy | Perm::DeployOrAgentAction | Perm::Approve => Some(Role::Validator),
            Perm::Admin => Some(Role::Admin),
        }
    }
}

impl Role {
    /// Whether this role holds `perm` outright (an agent action can lend `Deploy` to a
    /// scientist; see [`Perm::DeployOrAgentAction`]).
    pub fn grants(self, perm: Perm) -> bool {
        perm.least_role().is_none_or(|least| self >= least)
    }
}

fn denied(message: String) -> Error {
    Error::new(ErrorCode::PermissionDenied, message)
}

/// Checks a principal's role against what a route needs.
pub fn authorize(p: &Principal, perm: Perm) -> Result<()> {
    if p.role.grants(perm) {
        return Ok(());
    }
    Err(denied(format!("user '{}' has role {} and may not {}", p.name, p.role.as_str(), perm.denied_what())))
}

/// Aliases that only validators and admins may set, by default.
pub const DEFAULT_PROTECTED_ALIASES: [&str; 2] = ["champion", "production"];

/// The stage that is protected like those aliases.
pub const PROTECTED_STAGE: &str = "Production";

/// Decides whether `p` may point a protected alias (or the Production stage) at a model
/// version created by `creator`: validators and admins only, and never the creator
/// (four-eyes).
pub fn authorize_promotion(p: &Principal, creator: &str, target: &str, model: &str, version: &str) -> Result<()> {
    authorize_protected(p, creator, &format!("set {target} on"), &format!("{model} version {version}"))
}

/// The rule for anything that changes what a protected alias or the Production stage marks —
/// setting it, and removing it indirectly (deleting, archiving, renaming what holds it):
/// validators and admins only, never the version's creator. `action` reads before `subject`
/// ("delete", "credit version 3 (it holds alias 'champion')").
pub fn authorize_protected(p: &Principal, creator: &str, action: &str, subject: &str) -> Result<()> {
    if p.role < Role::Validator {
        return Err(denied(format!("only a validator or admin may {action} {subject}; user '{}' has role {}", p.name, p.role.as_str())));
    }
    if p.name == creator {
        return Err(denied(format!("four-eyes rule: user '{}' created {subject} and may not {action} it; another validator must", p.name)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str, role: Role) -> Principal {
        Principal { name: name.into(), role }
    }

    #[test]
    fn roles_grant_in_order() {
        use Perm::*;
        let table = [
            (Role::Viewer, [true, true, false, false, false, false, false]),
            (Role::Scientist, [true, true, true, false, false, false, false]),
            (Role::Validator, [true, true, true, true, true, true, false]),
            (Role::Admin, [true, true, true, true, true, true, true]),
        ];
        for (role, expect) in table {
            for (perm, ok) in [Public, Read, Write, Deploy, DeployOrAgentAction, Approve, Admin].into_iter().zip(expect) {
                assert_eq!(authorize(&who("u", role), perm).is_ok(), ok, "{role:?} {perm:?}");
            }
        }
        let err = authorize(&who("vic", Role::Viewer), Write).unwrap_err();
        assert_eq!(err.code(), ErrorCode::PermissionDenied);
        assert!(err.message().contains("'vic' has role viewer"), "{err}");
        let err = authorize(&who("sam", Role::Scientist), Deploy).unwrap_err();
        assert_eq!(err.message(), "user 'sam' has role scientist and may not change what a deployment serves");
    }

    #[test]
    fn promotions_need_a_second_validator() {
        let alias = "alias 'champion'";
        assert!(authorize_promotion(&who("val", Role::Validator), "sci", alias, "credit", "1").is_ok());
        assert!(authorize_promotion(&who("adm", Role::Admin), "sci", alias, "credit", "1").is_ok());
        let err = authorize_promotion(&who("sci2", Role::Scientist), "sci", alias, "credit", "1").unwrap_err();
        assert!(err.message().contains("only a validator or admin"), "{err}");
        let err = authorize_promotion(&who("val", Role::Validator), "val", alias, "credit", "1").unwrap_err();
        assert!(err.message().contains("four-eyes rule"), "{err}");
        assert_eq!(err.code(), ErrorCode::PermissionDenied);
    }
}
