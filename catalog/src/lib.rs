//! Oneo's catalog: the vocabulary every other crate speaks.
//!
//! A workspace holds objects; an object holds typed fields. This crate says which field
//! definitions are valid, which values a field accepts (and why it refuses the others), how a
//! formula is parsed, type-checked and evaluated, and how each field type maps to an Arrow
//! column in the lake. It touches no database.
//!
//! ```
//! use oneo_catalog::{FieldDef, FieldType, Value};
//!
//! let amount: FieldDef = serde_json::from_value(serde_json::json!({
//!     "api_name": "amount", "label": "Amount", "type": "currency", "min": "0"
//! })).unwrap();
//! assert_eq!(amount.field_type, FieldType::Currency);
//! let v = amount.parse_value(&serde_json::json!("1234.5")).unwrap();
//! assert_eq!(v, Value::Decimal("1234.50".parse().unwrap()));
//! assert!(amount.parse_value(&serde_json::json!(-3)).is_err());
//! ```

mod error;
mod field;
pub mod formula;
pub mod lake;
mod names;
pub mod standard;
pub mod system;
mod value;

pub use error::{Issue, Issues};
pub use field::{FieldDef, FieldType, RollupFunction, RollupSpec, SchemaView, validate_label};
pub use names::{RESERVED_NAMES, check_api_name};
pub use value::Value;
