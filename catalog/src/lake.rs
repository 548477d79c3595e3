//! The one mapping from a field type to a lake column (Arrow type). Ingest writes with it,
//! query reads with it; nothing else decides how a field is stored in the lake.

use std::sync::Arc;

use arrow_schema::{DataType, Field, TimeUnit};

use crate::field::{FieldDef, FieldType};

/// Under this application id ingest records, in each Delta table's log, the commit LSN it
/// has applied (Delta's `txn` action); readers take it as the table's freshness.
pub const INGEST_APP_ID: &str = "oneo-ingest";

/// Current state or change history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Current,
    History,
}

impl TableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Current => "current",
            TableKind::History => "history",
        }
    }
}

/// Where an object's table sits under the lake's root: `<workspace id>/o<object id>/<kind>/`.
/// Built from ids only, never from user text.
pub fn table_path(workspace: uuid::Uuid, object_id: i64, kind: TableKind) -> String {
    format!("{workspace}/o{object_id}/{}/", kind.as_str())
}

/// Formats a WAL position the way PostgreSQL does (`16/B374D848`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Parses PostgreSQL's `X/Y` WAL position text.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Precision of every decimal column: 38 digits, the widest Decimal128.
pub const DECIMAL_PRECISION: u8 = 38;

/// The Arrow type of a stored field's lake column; `None` for computed fields (formula,
/// rollup), which the query engine derives instead of storing.
pub fn arrow_type(field: &FieldDef) -> Option<DataType> {
    Some(match field.field_type {
        FieldType::Text
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url
        | FieldType::Lookup
        // Delta's type system has no dictionary type: a picklist is a string column, which
        // Parquet stores dictionary-encoded (its default for strings), so the few distinct
        // values are kept once per row group on disk all the same.
        | FieldType::Picklist => DataType::Utf8,
        FieldType::Number | FieldType::Currency | FieldType::Percent => {
            // scale() is validated to 0..=10, so it always fits i8.
            DataType::Decimal128(DECIMAL_PRECISION, i8::try_from(field.scale()).unwrap_or(10))
        }
        FieldType::Date => DataType::Date32,
        FieldType::Datetime => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        FieldType::Boolean => DataType::Boolean,
        FieldType::Multiselect => {
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        }
        FieldType::Autonumber => DataType::Int64,
        FieldType::Formula | FieldType::Rollup => return None,
    })
}

/// The columns every record table has before its fields.
pub fn system_columns() -> Vec<Field> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("created_at", ts.clone(), false),
        Field::new("updated_at", ts, false),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text_round_trips() {
        for lsn in [0, 1, 0x16_B374_D848, u64::MAX] {
            assert_eq!(parse_lsn(&format_lsn(lsn)), Some(lsn));
        }
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("nope"), None);
    }

    #[test]
    fn every_stored_type_has_a_column_and_computed_types_none() {
        for t in FieldType::ALL {
            let f = FieldDef::new("x", "X", t);
            assert_eq!(arrow_type(&f).is_some(), t.is_stored(), "{t:?}");
        }
        let mut money = FieldDef::new("amount", "Amount", FieldType::Currency);
        money.scale = Some(4);
        assert_eq!(arrow_type(&money), Some(DataType::Decimal128(38, 4)));
    }
}
