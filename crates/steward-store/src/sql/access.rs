//! Users and API tokens in SQL: accounts with roles that can be disabled and deleted
//! (tombstoned), tokens kept as SHA-256 digests with a public id, an expiry and a revocation
//! time. Every change is a ledger entry in the same transaction.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;
use steward_core::access::{Principal, Role, TokenInfo, User, check_user_name};
use steward_core::audit::{self, Audit};
use steward_core::{Error, Result};

use super::{SqlStore, WriteTx, append, db_error, dyn_query, is_unique_violation, now_ms};
use crate::AccessStore;

const USER_COLUMNS: &str = "name, role, created_at, disabled, deleted_at";
const TOKEN_COLUMNS: &str = "id, user_name, label, created_at, expires_at, revoked_at";

fn user(r: &AnyRow) -> Result<User> {
    let role: String = r.get(1);
    let disabled: i64 = r.get(3);
    Ok(User { name: r.get(0), role: Role::parse(&role)?, created_at: r.get(2), disabled: disabled != 0, deleted_at: r.get(4) })
}

fn token(r: &AnyRow) -> TokenInfo {
    TokenInfo { id: r.get(0), user: r.get(1), label: r.get(2), created_at: r.get(3), expires_at: r.get(4), revoked_at: r.get(5) }
}

fn no_user(name: &str) -> Error {
    Error::not_found(format!("user '{name}' does not exist"))
}

/// The live (not deleted) user, read inside the write transaction.
async fn live_user(tx: &mut WriteTx, name: &str) -> Result<User> {
    let row = dyn_query(format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1")).bind(name).fetch_optional(&mut **tx).await.map_err(db_error)?;
    let u = user(&row.ok_or_else(|| no_user(name))?)?;
    if u.deleted_at.is_some() {
        return Err(Error::invalid(format!("user '{name}' was deleted")));
    }
    Ok(u)
}

#[async_trait]
impl AccessStore for SqlStore {
    async fn create_user(&self, audit: &Audit, name: &str, role: Role) -> Result<()> {
        check_user_name(name)?;
        let mut tx = self.begin().await?;
        let res = sqlx::query("INSERT INTO users (name, role, created_at) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(role.as_str())
            .bind(now_ms())
            .execute(&mut *tx)
            .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::already_exists(format!("user '{name}' already exists (a deleted user's name is not given again)")));
            }
            Err(e) => return Err(db_error(e)),
        }
        append(&mut tx, audit, "user.create", "user", name).await?;
        tx.commit().await
    }

    async fn users(&self) -> Result<Vec<User>> {
        let rows = dyn_query(format!("SELECT {USER_COLUMNS} FROM users ORDER BY name")).fetch_all(&self.read).await.map_err(db_error)?;
        rows.iter().map(user).collect()
    }

    async fn update_user(&self, audit: &Audit, name: &str, role: Option<Role>, disabled: Option<bool>) -> Result<User> {
        let mut tx = self.begin().await?;
        let mut u = live_user(&mut tx, name).await?;
        u.role = role.unwrap_or(u.role);
        u.disabled = disabled.unwrap_or(u.disabled);
        sqlx::query("UPDATE users SET role = $1, disabled = $2 WHERE name = $3")
            .bind(u.role.as_str())
            .bind(i64::from(u.disabled))
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        append(&mut tx, audit, "user.update", "user", name).await?;
        tx.commit().await?;
        Ok(u)
    }

    async fn delete_user(&self, audit: &Audit, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        live_user(&mut tx, name).await?;
        let now = now_ms();
        sqlx::query("UPDATE users SET deleted_at = $1, disabled = 1 WHERE name = $2").bind(now).bind(name).execute(&mut *tx).await.map_err(db_error)?;
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_name = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        append(&mut tx, audit, "user.delete", "user", name).await?;
        tx.commit().await
    }

    async fn create_token(&self, audit: &Audit, user: &str, label: &str, expires_at: Option<i64>) -> Result<(String, TokenInfo)> {
        let clear = format!("stw_{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let digest = audit::sha256_hex(clear.as_bytes());
        let now = now_ms();
        if let Some(t) = expires_at.filter(|t| *t <= now) {
            return Err(Error::invalid(format!("the token's expiry ({t} ms) is not in the future")));
        }
        let info = TokenInfo { id: format!("tok_{}", &digest[..16]), user: user.to_owned(), label: label.to_owned(), created_at: now, expires_at, revoked_at: None };
        let mut tx = self.begin().await?;
        live_user(&mut tx, user).await?;
        sqlx::query("INSERT INTO api_tokens (token_digest, id, user_name, label, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&digest)
            .bind(&info.id)
            .bind(user)
            .bind(label)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        append(&mut tx, audit, "token.create", "token", &info.id).await?;
        tx.commit().await?;
        Ok((clear, info))
    }

    async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>> {
        let rows = match user {
            Some(u) => dyn_query(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_name = $1 ORDER BY created_at, id")).bind(u).fetch_all(&self.read).await,
            None => dyn_query(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id")).fetch_all(&self.read).await,
        }
        .map_err(db_error)?;
        Ok(rows.iter().map(token).collect())
    }

    async fn revoke_token(&self, audit: &Audit, id: &str) -> Result<TokenInfo> {
        let mut tx = self.begin().await?;
        let row = dyn_query(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1")).bind(id).fetch_optional(&mut *tx).await.map_err(db_error)?;
        let mut info = token(&row.ok_or_else(|| Error::not_found(format!("token '{id}' does not exist")))?);
        if info.revoked_at.is_some() {
            return Err(Error::invalid(format!("token '{id}' is already revoked")));
        }
        let now = now_ms();
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2").bind(now).bind(id).execute(&mut *tx).await.map_err(db_error)?;
        append(&mut tx, audit, "token.revoke", "token", id).await?;
        tx.commit().await?;
        info.revoked_at = Some(now);
        Ok(info)
    }

    async fn authenticate(&self, token: &str) -> Result<Option<Principal>> {
        let row = sqlx::query(
            "SELECT u.name, u.role FROM api_tokens t JOIN users u ON u.name = t.user_name \
             WHERE t.token_digest = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2) AND u.disabled = 0 AND u.deleted_at IS NULL",
        )
        .bind(audit::sha256_hex(token.as_bytes()))
        .bind(now_ms())
        .fetch_optional(&self.read)
        .await
        .map_err(db_error)?;
        match row {
            None => Ok(None),
            Some(r) => {
                let role: String = r.get(1);
                Ok(Some(Principal { name: r.get(0), role: Role::parse(&role)? }))
            }
        }
    }

    async fn has_users(&self) -> Result<bool> {
        // Tombstones count: an open server never opens again once it has had a user.
        let row = sqlx::query("SELECT 1 FROM users LIMIT 1").fetch_optional(&self.read).await.map_err(db_error)?;
        Ok(row.is_some())
    }
}
