//! A record row from the change stream as typed catalog values, field by field: what the
//! workflow engine's triggers and filters read. The text is parsed exactly as the lake's
//! columns parse it (the same date, timestamp and array readers), so a trigger sees the
//! values a report sees.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate};
use deltalake::arrow::datatypes::DataType;
use oneo_catalog::Value;

use crate::decode::{parse_date, parse_text_array, parse_timestamp};
use crate::layout::{ObjectLayout, columns};
use crate::source::{Cell, Tuple};

/// One column's text as the value of a field whose lake column is `data_type`; `None` is
/// null. Lookups (text columns holding ids) stay text, as formulas read them.
pub fn value_of(data_type: &DataType, text: Option<&str>) -> Result<Value, String> {
    let Some(text) = text else {
        return Ok(Value::Null);
    };
    Ok(match data_type {
        DataType::Decimal128(..) => Value::Decimal(
            rust_decimal::Decimal::from_str(text).map_err(|e| format!("is not a decimal: {e}"))?,
        ),
        DataType::Date32 => {
            let days = parse_date(text)?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("no epoch")?;
            Value::Date(epoch + chrono::Duration::days(i64::from(days)))
        }
        DataType::Timestamp(..) => Value::Datetime(
            DateTime::from_timestamp_micros(parse_timestamp(text)?).ok_or("is out of range")?,
        ),
        DataType::Boolean => Value::Boolean(match text {
            "t" => true,
            "f" => false,
            _ => return Err("is not a boolean (`t` or `f`)".into()),
        }),
        DataType::Int64 => Value::Integer(text.parse().map_err(|_| "is not a 64-bit integer")?),
        DataType::List(_) => Value::List(parse_text_array(text)?.into_iter().flatten().collect()),
        _ => Value::Text(text.to_string()),
    })
}

/// The row's stored fields by API name, plus `id`. A column missing from the message (an
/// unchanged TOASTed value) is left out rather than guessed; a value that does not parse is
/// an error naming its field.
pub fn record_values(
    layout: &ObjectLayout,
    row: &Tuple,
) -> Result<BTreeMap<String, Value>, String> {
    let mut out = BTreeMap::new();
    if let Cell::Text(id) = row.get(columns::ID) {
        out.insert(columns::ID.to_string(), Value::Text(id.to_string()));
    }
    for f in &layout.fields {
        let text = match row.get(&f.source) {
            Cell::Absent => continue,
            Cell::Null => None,
            Cell::Text(t) => Some(t),
        };
        let v = value_of(&f.data_type, text)
            .map_err(|e| format!("field `{}`: `{}` {e}", f.name, text.unwrap_or_default()))?;
        out.insert(f.name.clone(), v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::datatypes::{Field, TimeUnit};
    use uuid::Uuid;

    use super::*;
    use crate::layout::LakeField;
    use crate::source::test_tuple;

    fn field(id: i64, name: &str, data_type: DataType) -> LakeField {
        LakeField {
            field_id: id,
            name: name.into(),
            source: format!("f{id}"),
            data_type,
        }
    }

    #[test]
    fn a_deal_row_reads_as_typed_values() {
        let layout = ObjectLayout {
            object_id: 3,
            workspace_id: Uuid::nil(),
            api_name: "deal".into(),
            fields: vec![
                field(1, "stage", DataType::Utf8),
                field(2, "amount", DataType::Decimal128(18, 2)),
                field(3, "close_date", DataType::Date32),
                field(
                    4,
                    "won_at",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                ),
                field(5, "hot", DataType::Boolean),
                field(
                    6,
                    "tags",
                    DataType::List(Field::new("item", DataType::Utf8, true).into()),
                ),
                field(7, "number", DataType::Int64),
                field(8, "notes", DataType::Utf8),
            ],
        };
        let row = test_tuple(&[
            ("id", Some("0190f0a4-5f5e-7c3a-9a1e-3f6b2c9d8e71")),
            ("f1", Some("closed_won")),
            ("f2", Some("1234.50")),
            ("f3", Some("2026-12-20")),
            ("f4", Some("2026-12-07 09:30:00.25+00")),
            ("f5", Some("t")),
            ("f6", Some("{big,\"q4 push\"}")),
            ("f7", Some("42")),
            ("f8", None),
        ]);
        let r = record_values(&layout, &row).expect("values");
        assert_eq!(r["stage"], Value::Text("closed_won".into()));
        assert_eq!(
            r["amount"],
            Value::Decimal("1234.50".parse().expect("decimal"))
        );
        assert_eq!(
            r["close_date"],
            Value::Date("2026-12-20".parse().expect("date"))
        );
        assert_eq!(
            r["won_at"],
            Value::Datetime("2026-12-07T09:30:00.25Z".parse().expect("time"))
        );
        assert_eq!(r["hot"], Value::Boolean(true));
        assert_eq!(r["tags"], Value::List(vec!["big".into(), "q4 push".into()]));
        assert_eq!(r["number"], Value::Integer(42));
        assert_eq!(r["notes"], Value::Null);
        assert_eq!(
            r["id"],
            Value::Text("0190f0a4-5f5e-7c3a-9a1e-3f6b2c9d8e71".into())
        );

        let bad = test_tuple(&[("f2", Some("lots"))]);
        let e = record_values(&layout, &bad).expect_err("not a decimal");
        assert!(e.contains("amount") && e.contains("lots"), "{e}");
        // Columns the message left out are not in the record (not guessed as null).
        let partial =
            record_values(&layout, &test_tuple(&[("f1", Some("proposal"))])).expect("values");
        assert_eq!(partial.keys().collect::<Vec<_>>(), ["stage"]);
    }
}
