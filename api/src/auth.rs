//! API keys: minted once, stored as SHA-256 hashes, each bound to one workspace and a role.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, Result};

/// What a key may do. Every role reads; `member` also writes records; `admin` also changes
/// objects, fields and keys.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Analyst,
    Member,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Analyst => "analyst",
            Self::Member => "member",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "viewer" => Self::Viewer,
            "analyst" => Self::Analyst,
            "member" => Self::Member,
            "admin" => Self::Admin,
            _ => return None,
        })
    }
}

/// The authenticated caller of a `/v1` request: its workspace is the only one it can see.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub workspace_id: Uuid,
    pub key_id: Uuid,
    pub role: Role,
}

impl Caller {
    pub fn require_member(&self) -> Result<()> {
        self.require(Role::Member, "write records")
    }

    pub fn require_admin(&self) -> Result<()> {
        self.require(Role::Admin, "change objects, fields or keys")
    }

    /// Allows `min` and every role above it (viewer < analyst < member < admin); `what`
    /// completes "a … key may not …".
    pub fn require(&self, min: Role, what: &str) -> Result<()> {
        let rank = |r: Role| match r {
            Role::Viewer => 0,
            Role::Analyst => 1,
            Role::Member => 2,
            Role::Admin => 3,
        };
        if rank(self.role) >= rank(min) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "a {} key may not {what}",
                self.role.as_str()
            )))
        }
    }
}

/// A fresh key: `oneo_` and 256 random bits, base64url.
pub fn mint_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "oneo_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

/// The first characters of a key, kept so a user can tell keys apart in a listing.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(12).collect()
}

/// Resolves `Authorization: Bearer <key>` to a [`Caller`] for every `/v1` route.
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response> {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Unauthenticated("send the API key as `Authorization: Bearer <key>`".into())
        })?;
    let key = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthenticated("the Authorization header must be `Bearer <key>`".into())
        })?;
    let caller = caller_for_key(&state.pool, key).await?;
    tracing::Span::current().record("workspace", tracing::field::display(caller.workspace_id));
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// The caller an API key stands for, or `Unauthenticated` for an unknown or revoked key.
pub async fn caller_for_key(pool: &sqlx::PgPool, key: &str) -> Result<Caller> {
    let row: Option<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT id, workspace_id, role FROM oneo.api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash_key(key))
    .fetch_optional(pool)
    .await?;
    let (key_id, workspace_id, role) =
        row.ok_or_else(|| ApiError::Unauthenticated("unknown or revoked API key".into()))?;
    let role = Role::parse(&role)
        .ok_or_else(|| ApiError::Unauthenticated("the key has an unknown role".into()))?;
    Ok(Caller {
        workspace_id,
        key_id,
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hashes_stable() {
        let (a, b) = (mint_key(), mint_key());
        assert_ne!(a, b);
        assert!(a.starts_with("oneo_") && a.len() == 48);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
    }

    #[test]
    fn roles_allow_what_they_should() {
        let c = |role| Caller {
            workspace_id: Uuid::nil(),
            key_id: Uuid::nil(),
            role,
        };
        assert!(c(Role::Admin).require_admin().is_ok());
        assert!(c(Role::Member).require_admin().is_err());
        assert!(c(Role::Member).require_member().is_ok());
        assert!(c(Role::Analyst).require_member().is_err());
        assert!(c(Role::Viewer).require_member().is_err());
    }
}
