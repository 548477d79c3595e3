//! Loads a generated data set into a workspace through the same validation and write path as
//! the API, in batches, then replays each deal's stage history as real updates so the change
//! stream carries it.

use std::collections::HashMap;

use oneo_catalog::Issues;
use oneo_data::{Dataset, OPTIONAL_FIELDS};
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::records::{Mode, validate};
use crate::db::schema::{ObjectMeta, load_with_related};
use crate::db::write::{self, WriteError, WriteItem};
use crate::error::{ApiError, Result};

/// Objects in load order: each one's lookups point only to objects before it.
pub const OBJECTS: [&str; 4] = ["company", "contact", "deal", "activity"];
const BATCH: usize = 5_000;

/// Told how far each phase has come: `(phase, done, total)`.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// What was written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub records: HashMap<&'static str, usize>,
    pub stage_updates: usize,
    /// The id each generated record got, by object and position.
    pub ids: HashMap<&'static str, Vec<Uuid>>,
}

fn resolve(record: &mut Map<String, Value>, ids: &HashMap<&str, Vec<Uuid>>) {
    for v in record.values_mut() {
        let target = v
            .get("$ref")
            .and_then(Value::as_str)
            .zip(v.get("index").and_then(Value::as_u64));
        if let Some((object, index)) = target {
            let id = ids.get(object).and_then(|list| list.get(index as usize));
            *v = id.map_or(Value::Null, |id| Value::String(id.to_string()));
        }
    }
}

async fn context(
    pool: &PgPool,
    workspace: Uuid,
    object: &str,
) -> Result<(ObjectMeta, HashMap<String, ObjectMeta>)> {
    let mut conn = pool.acquire().await?;
    load_with_related(&mut conn, workspace, object)
        .await?
        .ok_or_else(|| ApiError::no_object(object))
}

fn failed(object: &str, e: WriteError) -> ApiError {
    match e {
        WriteError::Db(e) => e.into(),
        WriteError::Failed(f) => {
            let first = f
                .first()
                .map(|x| format!("{}: {}", x.field.as_deref().unwrap_or("record"), x.reason))
                .unwrap_or_default();
            ApiError::BulkFailed {
                message: format!(
                    "loading `{object}` failed ({} records; first: {first})",
                    f.len()
                ),
                items: f.iter().map(|x| x.to_json()).collect(),
            }
        }
    }
}

/// How many records the objects a load writes already hold in `workspace`.
pub async fn existing_records(pool: &PgPool, workspace: Uuid) -> Result<i64> {
    let mut total = 0;
    for object in OBJECTS {
        let (meta, _) = context(pool, workspace, object).await?;
        let n: i64 = sqlx::query_scalar(crate::db::audited(&format!(
            "SELECT count(*) FROM {}",
            meta.table()
        )))
        .fetch_one(pool)
        .await?;
        total += n;
    }
    Ok(total)
}

/// Writes `data` into `workspace`. Each batch commits on its own, so a long load shows
/// progress in the database as it goes.
pub async fn load(
    pool: &PgPool,
    workspace: Uuid,
    data: &Dataset,
    progress: Progress<'_>,
) -> Result<Loaded> {
    let mut ids: HashMap<&'static str, Vec<Uuid>> = HashMap::new();
    let mut loaded = Loaded::default();
    for object in OBJECTS {
        let (meta, related) = context(pool, workspace, object).await?;
        let total = data.len(object);
        let mut created = Vec::with_capacity(total);
        for start in (0..total).step_by(BATCH) {
            let mut items = Vec::with_capacity(BATCH);
            for mut record in data.records(object, start, BATCH) {
                for (_, field) in OPTIONAL_FIELDS.iter().filter(|(o, _)| *o == object) {
                    if meta.field(field).is_none() {
                        record.remove(*field);
                    }
                }
                resolve(&mut record, &ids);
                let values = validate(&meta, &record, Mode::Create)
                    .map_err(|i| ApiError::Validation(Issues(i)))?;
                items.push(WriteItem {
                    id: Uuid::now_v7(),
                    version: None,
                    values,
                });
            }
            let mut tx = pool.begin().await?;
            write::insert(&mut tx, &meta, &related, &items)
                .await
                .map_err(|e| failed(object, e))?;
            tx.commit().await?;
            created.extend(items.iter().map(|i| i.id));
            progress(object, created.len() as u64, total as u64);
        }
        loaded.records.insert(object, created.len());
        ids.insert(object, created);
    }

    let (deal, related) = context(pool, workspace, "deal").await?;
    let steps = data.stage_updates();
    let total: usize = steps.iter().map(Vec::len).sum();
    for step in steps {
        for chunk in step.chunks(BATCH) {
            let mut items = Vec::with_capacity(chunk.len());
            for (position, stage, probability) in chunk {
                let body = Map::from_iter([
                    ("stage".to_string(), Value::from(*stage)),
                    ("probability".to_string(), Value::from(*probability)),
                ]);
                let values = validate(&deal, &body, Mode::Update)
                    .map_err(|i| ApiError::Validation(Issues(i)))?;
                items.push(WriteItem {
                    id: ids["deal"][*position],
                    version: None,
                    values,
                });
            }
            let mut tx = pool.begin().await?;
            write::update(&mut tx, &deal, &related, &items)
                .await
                .map_err(|e| failed("deal", e))?;
            tx.commit().await?;
            loaded.stage_updates += items.len();
            progress(
                "deal stage history",
                loaded.stage_updates as u64,
                total as u64,
            );
        }
    }
    loaded.ids = ids;
    Ok(loaded)
}
