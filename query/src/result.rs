//! Arrow batches to the JSON a report answers with. Decimals are strings (exact to the
//! cent), dates `YYYY-MM-DD`, datetimes RFC 3339 in UTC.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array, Int32Array, Int64Array,
    ListArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use serde::Serialize;
use serde_json::Value as Json;

/// Which LSN an answer reflects, and how far behind PostgreSQL that is.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Freshness {
    /// The lowest commit LSN applied to the tables read (`X/Y`), or null before any change
    /// reached them.
    pub lsn: Option<String>,
    /// Milliseconds since the newest change PostgreSQL had that the lake did not, when known.
    pub lag_ms: Option<u64>,
}

impl Freshness {
    /// What a session's answers reflect; the lag is the caller's to fill in (it knows ingest).
    pub fn of(session: &crate::WorkspaceSession) -> Self {
        Self {
            lsn: session.applied_lsn().map(crate::format_lsn),
            lag_ms: None,
        }
    }
}

/// A result column: its name and the type of its values.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    /// A field type (`currency`, `date`, …) or, for computed values, `integer` or `decimal`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// One cell as JSON.
pub fn cell(array: &ArrayRef, row: usize) -> Json {
    if array.is_null(row) {
        return Json::Null;
    }
    match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Json::String(array_value_to_string(array, row).unwrap_or_default())
        }
        DataType::Boolean => Json::Bool(
            array
                .as_any()
                .downcast_ref::<BooleanArray>()
                .is_some_and(|a| a.value(row)),
        ),
        DataType::Int64 => array
            .as_any()
            .downcast_ref::<Int64Array>()
            .map_or(Json::Null, |a| Json::from(a.value(row))),
        DataType::Int32 => array
            .as_any()
            .downcast_ref::<Int32Array>()
            .map_or(Json::Null, |a| Json::from(a.value(row))),
        DataType::UInt64 => array
            .as_any()
            .downcast_ref::<UInt64Array>()
            .map_or(Json::Null, |a| Json::from(a.value(row))),
        DataType::Float64 => array
            .as_any()
            .downcast_ref::<Float64Array>()
            .map_or(Json::Null, |a| Json::from(a.value(row))),
        DataType::Decimal128(_, _) => array
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .map_or(Json::Null, |a| Json::String(a.value_as_string(row))),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let micros = array
                .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                .value(row);
            chrono::DateTime::from_timestamp_micros(micros).map_or(Json::Null, |t| {
                Json::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            })
        }
        DataType::List(_) => {
            let Some(list) = array.as_any().downcast_ref::<ListArray>() else {
                return Json::Null;
            };
            let items = list.value(row);
            Json::Array((0..items.len()).map(|i| cell(&items, i)).collect())
        }
        _ => Json::String(array_value_to_string(array, row).unwrap_or_default()),
    }
}

/// Every row of `batches` as an array of cells.
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<Json>> {
    let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(b.columns().iter().map(|c| cell(c, r)).collect());
        }
    }
    out
}
