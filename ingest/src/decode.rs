//! PostgreSQL's text output (what pgoutput and COPY send) into Arrow arrays of the lake's
//! column types. Every value is parsed exactly: numerics go straight to decimals of the
//! column's scale, never through a float.

use std::sync::Arc;

use std::sync::LazyLock;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{NaiveDate, Utc};
use deltalake::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::compute::kernels::cast_utils::{Parser, parse_decimal, string_to_datetime};
use deltalake::arrow::datatypes::{DataType, Date32Type, Decimal128Type, TimeUnit};

/// Builds one column from text values.
pub enum ColumnBuilder {
    Text(StringBuilder),
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
    },
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Boolean(BooleanBuilder),
    Int64(Int64Builder),
    TextList(ListBuilder<StringBuilder>),
}

impl ColumnBuilder {
    /// A builder for a lake column type; `None` for a type the lake does not use.
    pub fn new(data_type: &DataType, capacity: usize) -> Option<Self> {
        Some(match data_type {
            DataType::Utf8 => Self::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Decimal128(precision, scale) => Self::Decimal {
                builder: Decimal128Builder::with_capacity(capacity),
                precision: *precision,
                scale: *scale,
            },
            DataType::Date32 => Self::Date(Date32Builder::with_capacity(capacity)),
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Self::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            DataType::Boolean => Self::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::Int64 => Self::Int64(Int64Builder::with_capacity(capacity)),
            DataType::List(item) if item.data_type() == &DataType::Utf8 => {
                Self::TextList(ListBuilder::new(StringBuilder::new()))
            }
            _ => return None,
        })
    }

    /// Appends a value (`None` is null); on a value the type can't hold, says why.
    pub fn append(&mut self, value: Option<&str>) -> Result<(), String> {
        let Some(text) = value else {
            self.append_null();
            return Ok(());
        };
        match self {
            Self::Text(b) => b.append_value(text),
            Self::Decimal {
                builder,
                precision,
                scale,
            } => {
                let v = parse_decimal::<Decimal128Type>(text, *precision, *scale).map_err(|e| {
                    format!("is not a decimal of precision {precision} and scale {scale}: {e}")
                })?;
                builder.append_value(v);
            }
            Self::Date(b) => b.append_value(parse_date(text)?),
            Self::Timestamp(b) => b.append_value(parse_timestamp(text)?),
            Self::Boolean(b) => b.append_value(match text {
                "t" => true,
                "f" => false,
                _ => return Err("is not a boolean (`t` or `f`)".into()),
            }),
            Self::Int64(b) => b.append_value(
                text.parse()
                    .map_err(|_| "is not a 64-bit integer".to_string())?,
            ),
            Self::TextList(b) => {
                for item in parse_text_array(text)? {
                    b.values().append_option(item);
                }
                b.append(true);
            }
        }
        Ok(())
    }

    fn append_null(&mut self) {
        match self {
            Self::Text(b) => b.append_null(),
            Self::Decimal { builder, .. } => builder.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Timestamp(b) => b.append_null(),
            Self::Boolean(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::TextList(b) => b.append(false),
        }
    }

    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Text(b) => Arc::new(b.finish()),
            Self::Decimal {
                builder,
                precision,
                scale,
            } => Arc::new(
                builder
                    .finish()
                    .with_precision_and_scale(*precision, *scale)
                    // The builder only holds values parsed at this precision and scale.
                    .expect("precision and scale come from a valid Decimal128 type"),
            ),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish().with_timezone("UTC")),
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::TextList(b) => Arc::new(b.finish()),
        }
    }
}

const UNIX_EPOCH_DAY: i32 = 719_163; // days from 0001-01-01 (CE day 1) to 1970-01-01

static DATE_FORMAT: LazyLock<Vec<Item<'static>>> = LazyLock::new(|| {
    StrftimeItems::new("%Y-%m-%d")
        .parse_to_owned()
        .unwrap_or_default()
});

pub(crate) fn parse_date(text: &str) -> Result<i32, String> {
    // Arrow's parser reads `YYYY-MM-DD` without building a `Parsed`; chrono's general one
    // handles the rest (or explains why not).
    if let Some(days) = Date32Type::parse(text) {
        return Ok(days);
    }
    let mut parsed = Parsed::new();
    let d: NaiveDate = chrono::format::parse(&mut parsed, text, DATE_FORMAT.iter())
        .and_then(|()| parsed.to_naive_date())
        .map_err(|_| "is not a date (YYYY-MM-DD; BC dates and infinity are not kept)")?;
    Ok(chrono::Datelike::num_days_from_ce(&d) - UNIX_EPOCH_DAY)
}

/// PostgreSQL's ISO `timestamptz` output, parsed once: re-reading a format string for every
/// value was a tenth of ingest's time.
static TIMESTAMP_FORMAT: LazyLock<Vec<Item<'static>>> = LazyLock::new(|| {
    StrftimeItems::new("%Y-%m-%d %H:%M:%S%.f%#z")
        .parse_to_owned()
        .unwrap_or_default()
});

/// `timestamptz` in PostgreSQL's ISO output: `2026-11-23 10:11:12.5+00` (any session zone).
pub(crate) fn parse_timestamp(text: &str) -> Result<i64, String> {
    // Arrow's parser is the fast path (the replication session runs in UTC, so offsets are
    // `+00`); chrono's format reads what it doesn't, or says why not.
    if let Ok(t) = string_to_datetime(&Utc, text) {
        return Ok(t.timestamp_micros());
    }
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text, TIMESTAMP_FORMAT.iter())
        .and_then(|()| parsed.to_datetime())
        .map(|t| t.timestamp_micros())
        .map_err(|_| "is not a timestamp with time zone (ISO; BC and infinity are not kept)".into())
}

/// A one-dimensional `text[]` literal: `{a,"b c","d\"e",NULL}`.
pub fn parse_text_array(text: &str) -> Result<Vec<Option<String>>, String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or("is not an array literal")?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Ok(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let item = if chars.peek() == Some(&'"') {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('\\') => s.push(chars.next().ok_or("ends inside an escape")?),
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err("has an unterminated quoted element".into()),
                }
            }
            Some(s)
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' {
                    return Err("is a multi-dimensional array".into());
                }
                s.push(c);
                chars.next();
            }
            // An unquoted NULL is SQL null; a string "NULL" is always quoted.
            (s != "NULL").then_some(s)
        };
        items.push(item);
        match chars.next() {
            None => return Ok(items),
            Some(',') => {}
            Some(_) => return Err("has text after a quoted element".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::array::{Array, Decimal128Array, ListArray, TimestampMicrosecondArray};
    use deltalake::arrow::datatypes::Field;

    use super::*;

    #[test]
    fn decimals_keep_every_digit_at_the_column_scale() {
        let mut b = ColumnBuilder::new(&DataType::Decimal128(38, 2), 4).unwrap();
        for v in ["1234.5", "0.01", "-99999999999999999999999999999999.99"] {
            b.append(Some(v)).unwrap();
        }
        b.append(None).unwrap();
        let a = b.finish();
        let a = a.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(a.value_as_string(0), "1234.50");
        assert_eq!(a.value_as_string(1), "0.01");
        assert_eq!(a.value_as_string(2), "-99999999999999999999999999999999.99");
        assert!(a.is_null(3));
        assert!(b.append(Some("NaN")).is_err());
    }

    #[test]
    fn timestamps_in_any_zone_become_utc_microseconds() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let mut b = ColumnBuilder::new(&ts, 3).unwrap();
        b.append(Some("2026-11-23 10:00:00+00")).unwrap();
        b.append(Some("2026-11-23 15:30:00.000001+05:30")).unwrap();
        let a = b.finish();
        let a = a
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(a.value(1) - a.value(0), 1);
        assert_eq!(a.value(0), 1_795_428_000_000_000);
        assert!(b.append(Some("infinity")).is_err());
        assert_eq!(
            parse_timestamp("2026-11-23 10:00:00.5-03"),
            parse_timestamp("2026-11-23 13:00:00.500000+00")
        );
    }

    #[test]
    fn dates_count_days_from_the_unix_epoch() {
        assert_eq!(parse_date("1970-01-01"), Ok(0));
        assert_eq!(parse_date("2026-11-23"), Ok(20_780));
        assert!(parse_date("infinity").is_err());
    }

    #[test]
    fn text_arrays_unquote_and_keep_nulls() {
        assert_eq!(parse_text_array("{}"), Ok(vec![]));
        assert_eq!(
            parse_text_array(r#"{a,"b c","d\"e\\f",NULL,"NULL"}"#),
            Ok(vec![
                Some("a".into()),
                Some("b c".into()),
                Some("d\"e\\f".into()),
                None,
                Some("NULL".into())
            ])
        );
        assert!(parse_text_array("{{a},{b}}").is_err());
        assert!(parse_text_array("a,b").is_err());
        let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        let mut b = ColumnBuilder::new(&list, 2).unwrap();
        b.append(Some("{x,y}")).unwrap();
        b.append(None).unwrap();
        let a = b.finish();
        let a = a.as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(a.value(0).len(), 2);
        assert!(a.is_null(1));
    }

    #[test]
    fn booleans_and_integers_refuse_other_text() {
        let mut b = ColumnBuilder::new(&DataType::Boolean, 1).unwrap();
        assert!(b.append(Some("t")).is_ok());
        assert!(b.append(Some("yes")).is_err());
        let mut i = ColumnBuilder::new(&DataType::Int64, 1).unwrap();
        assert!(i.append(Some("42")).is_ok());
        assert!(i.append(Some("4.2")).is_err());
    }
}
