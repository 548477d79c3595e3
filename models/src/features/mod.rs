//! Feature rows read from the lake's change histories by DataFusion, point in time: a
//! training row takes every value as it was at its cutoff (the change before its outcome),
//! and counts only what was committed before the outcome and happened by the cutoff day.
//!
//! Each model kind is a query over `history.<object>` tables (see
//! [`oneo_query::WorkspaceSession::add_history`]) producing, per row, its record id, its
//! label (training) and its cutoff day, then one column per raw feature.

mod churn;
mod lead;
mod sql;
mod win;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type};
use oneo_catalog::FieldType;
use oneo_query::WorkspaceSession;
use serde::{Deserialize, Serialize};

use crate::encode::{RawColumn, RawValues};
use crate::error::ModelError;

/// The built-in kinds of model, each with its object, label and feature set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A contact gets a won deal within the horizon.
    LeadScore,
    /// An open deal ends `closed_won`.
    WinProbability,
    /// A company with won deals gets no new won deal or activity within the horizon.
    ChurnRisk,
}

impl ModelKind {
    pub const ALL: [ModelKind; 3] = [
        ModelKind::LeadScore,
        ModelKind::WinProbability,
        ModelKind::ChurnRisk,
    ];

    /// The object whose records it scores.
    pub fn object(self) -> &'static str {
        match self {
            ModelKind::LeadScore => "contact",
            ModelKind::WinProbability => "deal",
            ModelKind::ChurnRisk => "company",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::LeadScore => "lead_score",
            ModelKind::WinProbability => "win_probability",
            ModelKind::ChurnRisk => "churn_risk",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What a model reads: its kind, its horizon, and the object's own fields it adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub kind: ModelKind,
    /// Days after the cutoff in which the outcome counts (lead score, churn risk).
    pub horizon_days: u32,
    /// API names of the scored object's fields taken as features beside the built-in ones.
    pub fields: Vec<String>,
}

/// Why rows are read: to train (closed outcomes, labelled) or to score (open records, as
/// of `today`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Training,
    Scoring { today: NaiveDate },
}

/// Feature rows, in record id order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureRows {
    pub ids: Vec<String>,
    /// `None` when scoring.
    pub labels: Vec<Option<bool>>,
    /// Days since 1970-01-01 of each row's cutoff: what the time split orders by.
    pub cutoffs: Vec<i32>,
    pub columns: Vec<RawColumn>,
    /// The Delta version of every table read (path under the lake root → version), so the
    /// rows can be read again exactly.
    pub versions: BTreeMap<String, Option<u64>>,
}

impl FeatureRows {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// How a column of the query becomes a raw feature.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    pub log: bool,
    pub category: bool,
}

/// Refuses a workspace whose `object` lacks a standard field the kind reads.
pub(crate) fn require(
    schema: &oneo_query::WorkspaceSchema,
    kind: &str,
    object: &str,
    fields: &[&str],
) -> Result<(), ModelError> {
    let def = schema.object(object).ok_or_else(|| {
        ModelError::definition(
            "kind",
            format!("{kind} reads `{object}` records, and this workspace has no such object"),
        )
    })?;
    for f in fields {
        if def.field(f).is_none() {
            return Err(ModelError::definition(
                "kind",
                format!(
                    "{kind} reads `{object}.{f}`, and this workspace's `{object}` has no such field"
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn number(name: &str, log: bool) -> Column {
    Column {
        name: name.into(),
        log,
        category: false,
    }
}

pub(crate) fn category(name: &str) -> Column {
    Column {
        name: name.into(),
        log: false,
        category: true,
    }
}

/// A kind's query and the feature columns it yields after `id`, `label` and `cutoff`.
pub(crate) struct FeatureQuery {
    pub sql: String,
    pub columns: Vec<Column>,
}

/// Whether `spec` can be read in this workspace: its object exists, and each added field is
/// a field of it that can be a feature and not one the kind reads already.
pub fn check(schema: &oneo_query::WorkspaceSchema, spec: &FeatureSpec) -> Result<(), ModelError> {
    let object = spec.kind.object();
    let def = schema.object(object).ok_or_else(|| {
        ModelError::definition(
            "kind",
            format!(
                "{} scores `{object}` records, and this workspace has no such object",
                spec.kind.as_str()
            ),
        )
    })?;
    let own = match spec.kind {
        ModelKind::WinProbability => win::OWN_FIELDS,
        ModelKind::LeadScore => lead::OWN_FIELDS,
        ModelKind::ChurnRisk => churn::OWN_FIELDS,
    };
    for (i, f) in spec.fields.iter().enumerate() {
        let part = format!("fields[{i}]");
        if own.contains(&f.as_str()) {
            return Err(ModelError::definition(
                part,
                format!(
                    "`{f}` is already one of {}'s own features",
                    spec.kind.as_str()
                ),
            ));
        }
        if spec.fields[..i].contains(f) {
            return Err(ModelError::definition(
                part,
                format!("`{f}` is named twice"),
            ));
        }
        field_column(object, def.field(f).map(|d| d.field_type), f)
            .map_err(|m| ModelError::definition(part, m))?;
    }
    Ok(())
}

/// Reads the rows `spec` describes from `session`'s lake (which must see `history`).
pub async fn extract(
    session: &WorkspaceSession,
    spec: &FeatureSpec,
    purpose: Purpose,
) -> Result<FeatureRows, ModelError> {
    check(session.schema(), spec)?;
    let query = match spec.kind {
        ModelKind::WinProbability => win::query(session.schema(), spec, purpose)?,
        ModelKind::LeadScore => lead::query(session.schema(), spec, purpose)?,
        ModelKind::ChurnRisk => churn::query(session.schema(), spec, purpose)?,
    };
    let batches = run_query(session, &query.sql).await?;
    let mut rows = collect(&batches, &query.columns)?;
    rows.versions = session.read_versions();
    Ok(rows)
}

/// The query's rows, within the session's time limit.
async fn run_query(session: &WorkspaceSession, sql: &str) -> Result<Vec<RecordBatch>, ModelError> {
    let limit = session.timeout();
    let work = async {
        let df = session.context().sql(sql).await?;
        df.collect().await
    };
    match tokio::time::timeout(limit, work).await {
        Ok(batches) => Ok(batches?),
        Err(_) => Err(ModelError::Lake(format!(
            "reading the features took longer than {} s and was stopped",
            limit.as_secs()
        ))),
    }
}

/// How a field of the scored object enters as a feature, or why it can't.
/// A field of `object` as a feature is called `<object>.<field>` (`deal.amount`).
pub(crate) fn field_column(
    object: &str,
    t: Option<FieldType>,
    name: &str,
) -> Result<Column, String> {
    let feature = format!("{object}.{name}");
    match t {
        None => Err(format!("`{name}` is not a field of the scored object")),
        Some(FieldType::Number | FieldType::Percent | FieldType::Autonumber) => Ok(Column {
            name: feature,
            log: false,
            category: false,
        }),
        Some(FieldType::Currency) => Ok(Column {
            name: feature,
            log: true,
            category: false,
        }),
        Some(FieldType::Boolean | FieldType::Date | FieldType::Datetime) => Ok(Column {
            name: feature,
            log: false,
            category: false,
        }),
        Some(FieldType::Picklist | FieldType::Text) => Ok(Column {
            name: feature,
            log: false,
            category: true,
        }),
        Some(other) => Err(format!(
            "`{name}` is a {} field; features take numbers, currency, percents, booleans, dates (as ages in days), picklists and text (one-hot)",
            other.as_str()
        )),
    }
}

fn collect(batches: &[RecordBatch], columns: &[Column]) -> Result<FeatureRows, ModelError> {
    let mut rows = FeatureRows {
        columns: columns
            .iter()
            .map(|c| RawColumn {
                name: c.name.clone(),
                log: c.log,
                values: if c.category {
                    RawValues::Categories(Vec::new())
                } else {
                    RawValues::Numbers(Vec::new())
                },
            })
            .collect(),
        ..Default::default()
    };
    let bad = |what: &str| ModelError::Lake(format!("the feature query returned {what}"));
    for batch in batches {
        if batch.num_columns() != columns.len() + 3 {
            return Err(bad("an unexpected number of columns"));
        }
        let ids = cast(batch.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let labels = batch
            .column(1)
            .as_boolean_opt()
            .ok_or_else(|| bad("a label that isn't boolean"))?;
        let cutoffs = cast(batch.column(2), &DataType::Int32)?;
        let cutoffs = cutoffs.as_primitive::<Int32Type>();
        for r in 0..batch.num_rows() {
            rows.ids.push(ids.value(r).to_string());
            rows.labels
                .push(labels.is_valid(r).then(|| labels.value(r)));
            rows.cutoffs.push(cutoffs.value(r));
        }
        for (k, raw) in rows.columns.iter_mut().enumerate() {
            let col = batch.column(k + 3);
            match &mut raw.values {
                RawValues::Numbers(v) => {
                    let a = cast(col, &DataType::Float64)?;
                    let a = a.as_primitive::<Float64Type>();
                    v.extend((0..a.len()).map(|r| a.is_valid(r).then(|| a.value(r))));
                }
                RawValues::Categories(v) => {
                    let a = cast(col, &DataType::Utf8)?;
                    let a = a.as_string::<i32>();
                    v.extend((0..a.len()).map(|r| a.is_valid(r).then(|| a.value(r).to_string())));
                }
            }
        }
    }
    Ok(rows)
}
