//! Share links: a dashboard's page for people without a key, signed by the server and
//! expiring. The token names the workspace, the dashboard and the expiry; its HMAC-SHA256
//! under a secret kept in PostgreSQL (made once per database, so every server process of
//! the database signs alike and a restart does not void links).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use uuid::Uuid;

use crate::error::{ApiError, Result};

const SECRET: &str = "share_links";

/// The signing secret, created on first use.
async fn secret(pool: &sqlx::PgPool) -> Result<Vec<u8>> {
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    sqlx::query(
        "INSERT INTO oneo.server_secrets (name, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(SECRET)
    .bind(&fresh[..])
    .execute(pool)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT secret FROM oneo.server_secrets WHERE name = $1")
            .bind(SECRET)
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

/// A token for `dashboard` of `workspace`, valid until `expires`.
pub async fn sign(
    pool: &sqlx::PgPool,
    workspace: Uuid,
    dashboard: Uuid,
    expires: DateTime<Utc>,
) -> Result<String> {
    token(&secret(pool).await?, workspace, dashboard, expires)
}

/// The workspace a token opens `dashboard` in, if it is genuine, for this dashboard, and
/// not expired.
pub async fn verify(pool: &sqlx::PgPool, token: &str, dashboard: Uuid) -> Result<Uuid> {
    check(&secret(pool).await?, token, dashboard, Utc::now())
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

fn check(secret: &[u8], token: &str, dashboard: Uuid, now: DateTime<Utc>) -> Result<Uuid> {
    let refused = |why: &str| ApiError::Unauthenticated(format!("this share link {why}"));
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
        return Err(refused("is for another dashboard"));
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
                .is_err_and(|e| e.to_string().contains("another"))
        );
        // A payload changed to a later expiry no longer matches its signature.
        let forged = token(b"guess", ws, dash, now + chrono::Duration::days(999)).expect("token");
        let (payload, _) = forged.split_once('.').expect("dot");
        let (_, tag) = t.split_once('.').expect("dot");
        assert!(check(b"secret", &format!("{payload}.{tag}"), dash, now).is_err());
        assert!(check(b"secret", "garbage", dash, now).is_err());
    }
}
