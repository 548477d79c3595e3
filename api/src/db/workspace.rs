//! Workspaces and their API keys.

use chrono::{DateTime, Utc};
use oneo_catalog::standard::standard_objects;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::ddl;
use super::schema::WorkspaceSchema;
use crate::auth::{Role, hash_key, key_prefix, mint_key};
use crate::error::Result;

/// A new workspace and the admin key that opens it (shown this once, stored as a hash).
#[derive(Debug, Serialize)]
pub struct CreatedWorkspace {
    pub workspace_id: Uuid,
    pub api_key: String,
}

/// Creates a workspace with the standard objects and an admin key, all in one transaction.
pub async fn create_workspace(pool: &PgPool, name: &str) -> Result<CreatedWorkspace> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(oneo_catalog::Issues::one(
            "name",
            "a workspace name must be 1 to 200 characters, not only spaces",
        )
        .into());
    }
    let mut tx = pool.begin().await?;
    let workspace_id = Uuid::now_v7();
    sqlx::query("INSERT INTO oneo.workspaces (id, name) VALUES ($1, $2)")
        .bind(workspace_id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let mut schema = WorkspaceSchema { objects: vec![] };
    for std_obj in standard_objects() {
        ddl::create_object(
            &mut tx,
            &mut schema,
            workspace_id,
            std_obj.api_name,
            std_obj.label,
            std_obj.fields,
            true,
        )
        .await?;
    }
    let (_, api_key) = create_key(&mut tx, workspace_id, "admin", Role::Admin).await?;
    tx.commit().await?;
    Ok(CreatedWorkspace {
        workspace_id,
        api_key,
    })
}

/// A key as listed: never the secret itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

pub async fn create_key(
    conn: &mut PgConnection,
    workspace: Uuid,
    name: &str,
    role: Role,
) -> Result<(KeyInfo, String)> {
    let key = mint_key();
    let id = Uuid::now_v7();
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO oneo.api_keys (id, workspace_id, name, role, key_hash, key_prefix) VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING created_at",
    )
    .bind(id)
    .bind(workspace)
    .bind(name)
    .bind(role.as_str())
    .bind(hash_key(&key))
    .bind(key_prefix(&key))
    .fetch_one(&mut *conn)
    .await?;
    Ok((
        KeyInfo {
            id,
            name: name.into(),
            role,
            prefix: key_prefix(&key),
            created_at,
        },
        key,
    ))
}

pub async fn list_keys(pool: &PgPool, workspace: Uuid) -> Result<Vec<KeyInfo>> {
    let rows: Vec<(Uuid, String, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, name, role, key_prefix, created_at FROM oneo.api_keys
         WHERE workspace_id = $1 AND revoked_at IS NULL ORDER BY created_at",
    )
    .bind(workspace)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, role, prefix, created_at)| KeyInfo {
            id,
            name,
            role: Role::parse(&role).unwrap_or(Role::Viewer),
            prefix,
            created_at,
        })
        .collect())
}
