//! Signed links for people without a key: a dashboard's page (share links) and a delivery's
//! file too large to attach (download links). The token names the workspace, the thing it
//! opens and the expiry; its HMAC-SHA256 under a secret kept in PostgreSQL (made once per
//! database and per kind of link, so every server process of the database signs alike, a
//! restart does not void links, and a token of one kind never opens the other).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use uuid::Uuid;

use crate::error::{ApiError, Result};

/// What a link opens.
#[derive(Debug, Clone, Copy)]
pub enum Link {
    /// A dashboard's page.
    Dashboard,
    /// A delivery's file.
    DeliveryFile,
}

impl Link {
    fn secret_name(self) -> &'static str {
        match self {
            Self::Dashboard => "share_links",
            Self::DeliveryFile => "delivery_links",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Dashboard => "share link",
            Self::DeliveryFile => "download link",
        }
    }
}

/// The signing secret, created on first use.
async fn secret(pool: &sqlx::PgPool, link: Link) -> Result<Vec<u8>> {
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    sqlx::query(
        "INSERT INTO oneo.server_secrets (name, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(link.secret_name())
    .bind(&fresh[..])
    .execute(pool)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT secret FROM oneo.server_secrets WHERE name = $1")
            .bind(link.secret_name())
            .fetch_one(pool)
            .await?,
    )
}

fn mac(secret: &[u8], payload: &[u8]) -> Result<Hmac<Sha256>> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .map_err(|e| ApiError::Query(format!("the share secret: {e}")))?;
    m.update(payload);
    Ok(m)
}

/// A token opening `subject` (a dashboard, a file) of `workspace` until `expires`.
pub async fn sign(
    pool: &sqlx::PgPool,
    link: Link,
    workspace: Uuid,
    subject: Uuid,
    expires: DateTime<Utc>,
) -> Result<String> {
    token(&secret(pool, link).await?, workspace, subject, expires)
}

/// The workspace a token opens `subject` in, if it is genuine, for this subject, and not
/// expired.
pub async fn verify(pool: &sqlx::PgPool, link: Link, token: &str, subject: Uuid) -> Result<Uuid> {
    check(&secret(pool, link).await?, token, subject, Utc::now())
        .map_err(|e| ApiError::Unauthenticated(format!("this {} {e}", link.noun())))
}

fn token(
    secret: &[u8],
    workspace: Uuid,
    dashboard: Uuid,
    expires: DateTime<Utc>,
) -> Result<String> {
    let mut payload = Vec::with_capacity(40);
    payload.extend_from_slice(workspace.as_bytes());
    payload.extend_from_slice(dashboard.as_bytes());
    payload.extend_from_slice(&expires.timestamp().to_be_bytes());
    let tag = mac(secret, &payload)?.finalize().into_bytes();
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(tag)
    ))
}

/// The workspace, or why not (a phrase completing "this link …").
fn check(secret: &[u8], token: &str, dashboard: Uuid, now: DateTime<Utc>) -> Result<Uuid> {
    let refused = |why: &str| ApiError::Unauthenticated(why.to_string());
    let (payload, tag) = token
        .split_once('.')
        .ok_or_else(|| refused("is malformed"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| refused("is malformed"))?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| refused("is malformed"))?;
    if payload.len() != 40 {
        return Err(refused("is malformed"));
    }
    mac(secret, &payload)?
        .verify_slice(&tag)
        .map_err(|_| refused("is not genuine"))?;
    let id = |r: std::ops::Range<usize>| {
        Uuid::from_slice(&payload[r]).map_err(|_| refused("is malformed"))
    };
    let (workspace, for_dashboard) = (id(0..16)?, id(16..32)?);
    let mut secs = [0u8; 8];
    secs.copy_from_slice(&payload[32..40]);
    if for_dashboard != dashboard {
        return Err(refused("is for something else"));
    }
    if i64::from_be_bytes(secs) < now.timestamp() {
        return Err(refused("has expired"));
    }
    Ok(workspace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_dashboard_until_it_expires() {
        let (ws, dash, now) = (Uuid::now_v7(), Uuid::now_v7(), Utc::now());
        let t = token(b"secret", ws, dash, now + chrono::Duration::hours(1)).expect("token");
        assert_eq!(check(b"secret", &t, dash, now).ok(), Some(ws));
        let later = now + chrono::Duration::hours(2);
        assert!(
            check(b"secret", &t, dash, later).is_err_and(|e| e.to_string().contains("expired"))
        );
        assert!(check(b"other", &t, dash, now).is_err_and(|e| e.to_string().contains("genuine")));
        assert!(
            check(b"secret", &t, Uuid::now_v7(), now)
                .is_err_and(|e| e.to_string().contains("something else"))
        );
        // A payload changed to a later expiry no longer matches its signature.
        let forged = token(b"guess", ws, dash, now + chrono::Duration::days(999)).expect("token");
        let (payload, _) = forged.split_once('.').expect("dot");
        let (_, tag) = t.split_once('.').expect("dot");
        assert!(check(b"secret", &format!("{payload}.{tag}"), dash, now).is_err());
        assert!(check(b"secret", "garbage", dash, now).is_err());
    }
}
