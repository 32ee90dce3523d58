//! Who may do what: roles, the principal a request runs as, and the rules for protected
//! model promotions (role and four-eyes). Pure decisions; the server supplies the facts.

use crate::error::{Error, ErrorCode, Result};

/// A user's role. Each role can do everything the one before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    Admin,
}

fn denied(message: String) -> Error {
    Error::new(ErrorCode::PermissionDenied, message)
}

/// Checks a principal's role against what a request needs.
pub fn authorize(p: &Principal, need: Need) -> Result<()> {
    let ok = match need {
        Need::Read => true,
        Need::Write => p.role >= Role::Scientist,
        Need::Admin => p.role == Role::Admin,
    };
    if ok {
        return Ok(());
    }
    let what = match need {
        Need::Read => "read",
        Need::Write => "make changes",
        Need::Admin => "manage users and tokens",
    };
    Err(denied(format!("user '{}' has role {} and may not {what}", p.name, p.role.as_str())))
}

/// Aliases that only validators and admins may set, by default.
pub const DEFAULT_PROTECTED_ALIASES: [&str; 2] = ["champion", "production"];

/// The stage that is protected like those aliases.
pub const PROTECTED_STAGE: &str = "Production";

/// Decides whether `p` may point a protected alias (or the Production stage) at a model
/// version created by `creator`: validators and admins only, and never the creator
/// (four-eyes).
pub fn authorize_promotion(p: &Principal, creator: &str, target: &str, model: &str, version: &str) -> Result<()> {
    if p.role < Role::Validator {
        return Err(denied(format!(
            "only a validator or admin may set {target} on {model} version {version}; user '{}' has role {}",
            p.name,
            p.role.as_str()
        )));
    }
    if p.name == creator {
        return Err(denied(format!(
            "four-eyes rule: user '{}' created {model} version {version} and may not set {target} on it; another validator must",
            p.name
        )));
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
        let table = [
            (Role::Viewer, [true, false, false]),
            (Role::Scientist, [true, true, false]),
            (Role::Validator, [true, true, false]),
            (Role::Admin, [true, true, true]),
        ];
        for (role, expect) in table {
            for (need, ok) in [Need::Read, Need::Write, Need::Admin].into_iter().zip(expect) {
                assert_eq!(authorize(&who("u", role), need).is_ok(), ok, "{role:?} {need:?}");
            }
        }
        let err = authorize(&who("vic", Role::Viewer), Need::Write).unwrap_err();
        assert_eq!(err.code(), ErrorCode::PermissionDenied);
        assert!(err.message().contains("'vic' has role viewer"), "{err}");
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
