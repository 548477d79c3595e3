//! The same data set as a plain relational schema: typed, indexed tables as a well-designed
//! operational database would hold them, with the same ids as Oneo's records, so benchmarks
//! can ask PostgreSQL and Oneo the same questions and compare answers row for row.

use oneo_data::Dataset;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{ApiError, Result};
use crate::load::Loaded;

const TABLES: &str = "
CREATE TABLE {s}.company (id uuid PRIMARY KEY, name text NOT NULL, domain text, industry text, employees integer,
    annual_revenue numeric(20,2), country text);
CREATE TABLE {s}.contact (id uuid PRIMARY KEY, first_name text, last_name text, email text UNIQUE, phone text, title text,
    lead_source text, status text, company_id uuid REFERENCES {s}.company (id));
CREATE TABLE {s}.deal (id uuid PRIMARY KEY, name text NOT NULL, amount numeric(20,2), stage text, close_date date,
    opened_on date, probability numeric(5,2), lead_source text, owner text, company_id uuid REFERENCES {s}.company (id),
    contact_id uuid REFERENCES {s}.contact (id));
CREATE TABLE {s}.activity (id uuid PRIMARY KEY, type text, subject text, occurred_at timestamptz, duration_minutes integer,
    contact_id uuid REFERENCES {s}.contact (id), deal_id uuid REFERENCES {s}.deal (id));
";

const INDEXES: &str = "
CREATE INDEX ON {s}.contact (company_id);
CREATE INDEX ON {s}.contact (lead_source, status);
CREATE INDEX ON {s}.deal (company_id);
CREATE INDEX ON {s}.deal (contact_id);
CREATE INDEX ON {s}.deal (stage, owner);
CREATE INDEX ON {s}.deal (close_date);
CREATE INDEX ON {s}.activity (deal_id);
CREATE INDEX ON {s}.activity (contact_id, occurred_at);
ANALYZE {s}.company, {s}.contact, {s}.deal, {s}.activity;
";

/// Whether `name` can be the relational copy's new schema; checked before any work starts.
pub fn check_schema_name(name: &str) -> Result<()> {
    let ok = name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("pg_")
        && !matches!(
            name,
            "oneo" | "oneo_records" | "public" | "information_schema"
        );
    if ok {
        Ok(())
    } else {
        Err(oneo_catalog::Issues::one(
            "relational_copy",
            format!("`{name}` can't be used: give a new schema name of lowercase letters, digits and `_` (not oneo, oneo_records, public or pg_*)"),
        )
        .into())
    }
}

fn csv_bytes<F>(rows: usize, mut row: F) -> Result<Vec<u8>>
where
    F: FnMut(usize, &mut csv::Writer<Vec<u8>>) -> csv::Result<()>,
{
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for i in 0..rows {
        row(i, &mut w).map_err(|e| ApiError::BadRequest(format!("can't encode row {i}: {e}")))?;
    }
    w.into_inner()
        .map_err(|e| ApiError::BadRequest(format!("can't encode rows: {e}")))
}

fn id(ids: &[Uuid], i: usize) -> String {
    ids.get(i).map(Uuid::to_string).unwrap_or_default()
}

fn cents(c: i64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

/// Creates schema `name` (which must not exist) with the data set, using the ids `loaded`
/// recorded, by COPY.
pub async fn write_relational_copy(
    pool: &PgPool,
    name: &str,
    data: &Dataset,
    loaded: &Loaded,
) -> Result<()> {
    check_schema_name(name)?;
    let ids = |object: &str| loaded.ids.get(object).cloned().unwrap_or_default();
    let (companies, contacts, deals, activities) =
        (ids("company"), ids("contact"), ids("deal"), ids("activity"));
    let mut tx = pool.begin().await?;
    // The name is checked above to be a plain lowercase identifier, so it needs no quoting.
    sqlx::query(crate::db::audited(&format!("CREATE SCHEMA {name}")))
        .execute(&mut *tx)
        .await
        .map_err(|e| match crate::db::pg_code(&e).as_deref() {
            Some("42P06") => ApiError::conflict(
                "already_exists",
                format!("schema `{name}` already exists; choose another name or drop it"),
                vec![],
            ),
            _ => e.into(),
        })?;
    sqlx::raw_sql(crate::db::audited(&TABLES.replace("{s}", name)))
        .execute(&mut *tx)
        .await?;

    let tables: [(&str, &str, Vec<u8>); 4] = [
        (
            "company",
            "id, name, domain, industry, employees, annual_revenue, country",
            csv_bytes(data.companies.len(), |i, w| {
                let c = &data.companies[i];
                w.write_record([
                    id(&companies, i),
                    c.name.clone(),
                    c.domain.clone(),
                    c.industry.into(),
                    c.employees.to_string(),
                    cents(c.annual_revenue_cents),
                    c.country.into(),
                ])
            })?,
        ),
        (
            "contact",
            "id, first_name, last_name, email, phone, title, lead_source, status, company_id",
            csv_bytes(data.contacts.len(), |i, w| {
                let c = &data.contacts[i];
                w.write_record([
                    id(&contacts, i),
                    c.first_name.into(),
                    c.last_name.into(),
                    c.email.clone(),
                    c.phone.clone(),
                    c.title.into(),
                    c.lead_source.into(),
                    c.status.into(),
                    id(&companies, c.company),
                ])
            })?,
        ),
        (
            "deal",
            "id, name, amount, stage, close_date, opened_on, probability, lead_source, owner, company_id, contact_id",
            csv_bytes(data.deals.len(), |i, w| {
                let d = &data.deals[i];
                let stage = d.stages.last().copied().unwrap_or("prospecting");
                w.write_record([
                    id(&deals, i),
                    d.name.clone(),
                    cents(d.amount_cents),
                    stage.into(),
                    d.close_date.to_string(),
                    d.opened_on.to_string(),
                    oneo_data::stage_probability(stage).to_string(),
                    d.lead_source.into(),
                    d.owner.into(),
                    id(&companies, d.company),
                    id(&contacts, d.contact),
                ])
            })?,
        ),
        (
            "activity",
            "id, type, subject, occurred_at, duration_minutes, contact_id, deal_id",
            csv_bytes(data.activities.len(), |i, w| {
                let a = &data.activities[i];
                w.write_record([
                    id(&activities, i),
                    a.kind.into(),
                    a.subject.clone(),
                    format!("{}+00", a.occurred_at),
                    a.duration_minutes.to_string(),
                    a.contact.map(|c| id(&contacts, c)).unwrap_or_default(),
                    a.deal.map(|d| id(&deals, d)).unwrap_or_default(),
                ])
            })?,
        ),
    ];
    for (table, columns, bytes) in tables {
        // An empty CSV field is NULL (the default for FORMAT csv), which is what a missing lookup is.
        let mut copy = tx
            .copy_in_raw(&format!(
                "COPY {name}.{table} ({columns}) FROM STDIN (FORMAT csv)"
            ))
            .await?;
        copy.send(bytes).await?;
        copy.finish().await?;
    }
    sqlx::raw_sql(crate::db::audited(&INDEXES.replace("{s}", name)))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
