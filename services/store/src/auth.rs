//! Tokens (each with one role) and the dashboard's sessions. Secrets are never stored: only
//! their SHA-256, computed by the caller.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sevloop_core::access::Role;
use sqlx::any::AnyRow;

use crate::tickets::get;
use crate::time::{from_ms, to_ms};
use crate::{Store, StoreError};

/// A token as an admin sees it (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRow {
    pub token_id: String,
    #[serde(flatten)]
    pub role: Role,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const TOKEN_COLUMNS: &str = "t.token_id, t.role, t.team, t.label, t.created_at, t.revoked_at";

/// What became of a request to revoke a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Done,
    NoSuchToken,
    /// Refused: the last live admin token.
    LastAdmin,
}

impl Store {
    pub async fn create_token(
        &self,
        token_id: &str,
        secret_hash: &str,
        role: &Role,
        label: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let team = role.team();
        sqlx::query(
            "INSERT INTO tokens (token_id, secret_hash, role, team, label, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_id)
        .bind(secret_hash)
        .bind(role.name())
        .bind(team)
        .bind(label)
        .bind(to_ms(at))
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("create token {token_id}"), e))?;
        Ok(())
    }

    /// The live (not revoked) token whose secret hashes to `secret_hash`.
    pub async fn token_by_secret(&self, secret_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.secret_hash = $1 AND t.revoked_at IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(secret_hash)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| StoreError::sql("look up a token", e))?;
        row.as_ref().map(token_row).transpose()
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens t ORDER BY t.created_at, t.token_id");
        let rows = sqlx::query(&sql)
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql("list tokens", e))?;
        rows.iter().map(token_row).collect()
    }

    /// Revokes a token and ends its sessions, unless it is the last live admin token: revoked,
    /// nobody could administer sevloop any more (no API call can make another).
    pub async fn revoke_token(
        &self,
        token_id: &str,
        at: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        let done = sqlx::query(
            "UPDATE tokens SET revoked_at = $1 WHERE token_id = $2 AND revoked_at IS NULL \
             AND (role <> 'admin' OR (SELECT COUNT(*) FROM tokens a \
             WHERE a.role = 'admin' AND a.revoked_at IS NULL) > 1)",
        )
        .bind(to_ms(at))
        .bind(token_id)
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("revoke token {token_id}"), e))?;
        if done.rows_affected() == 0 {
            let live_admin: Option<String> = sqlx::query_scalar(
                "SELECT token_id FROM tokens WHERE token_id = $1 AND revoked_at IS NULL AND role = 'admin'",
            )
            .bind(token_id)
            .fetch_optional(self.pool())
            .await
            .map_err(|e| StoreError::sql(format!("read token {token_id}"), e))?;
            return Ok(if live_admin.is_some() {
                Revoked::LastAdmin
            } else {
                Revoked::NoSuchToken
            });
        }
        sqlx::query("DELETE FROM sessions WHERE token_id = $1")
            .bind(token_id)
            .execute(self.pool())
            .await
            .map_err(|e| StoreError::sql(format!("end the sessions of {token_id}"), e))?;
        Ok(Revoked::Done)
    }

    pub async fn create_session(
        &self,
        session_hash: &str,
        token_id: &str,
        csrf: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (session_hash, token_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session_hash)
        .bind(token_id)
        .bind(csrf)
        .bind(to_ms(now))
        .bind(to_ms(expires_at))
        .execute(self.pool())
        .await
        .map_err(|e| StoreError::sql("create a session", e))?;
        Ok(())
    }

    /// The token and CSRF secret of a live session.
    pub async fn session(
        &self,
        session_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(TokenRow, String)>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, s.csrf FROM sessions s JOIN tokens t ON t.token_id = s.token_id \
             WHERE s.session_hash = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(session_hash)
            .bind(to_ms(now))
            .fetch_optional(self.pool())
            .await
            .map_err(|e| StoreError::sql("look up a session", e))?;
        row.map(|r| Ok((token_row(&r)?, get(&r, "csrf")?)))
            .transpose()
    }

    pub async fn end_session(&self, session_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE session_hash = $1")
            .bind(session_hash)
            .execute(self.pool())
            .await
            .map_err(|e| StoreError::sql("end a session", e))?;
        Ok(())
    }
}

fn token_row(r: &AnyRow) -> Result<TokenRow, StoreError> {
    let token_id: String = get(r, "token_id")?;
    let name: String = get(r, "role")?;
    let team: Option<String> = get(r, "team")?;
    let role = Role::parse(&name, team.as_deref()).ok_or_else(|| StoreError::Corrupt {
        what: "token",
        id: token_id.clone(),
        reason: format!("unknown role `{name}`"),
    })?;
    Ok(TokenRow {
        token_id,
        role,
        label: get(r, "label")?,
        created_at: from_ms(get(r, "created_at")?),
        revoked_at: get::<Option<i64>>(r, "revoked_at")?.map(from_ms),
    })
}
