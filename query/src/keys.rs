//! Record ids and lookups as 64-bit keys, for the engine's joins, groupings and distinct
//! counts.
//!
//! Ids are UUIDs, which the lake keeps as 36-character strings. Hashing and comparing them
//! was most of a report's time over millions of rows: the hash joins behind lookups, the set
//! behind `count_distinct`. A [`KeyInterner`] gives every id text it sees a dense `i64`,
//! once, for the life of the server; the column cache keeps each id and lookup column beside
//! its key column (`__key_<column>`), so joins and distinct counts work on integers. The
//! mapping is one-to-one (two texts share a key only if they are the same text), so a join
//! or distinct count over keys answers exactly what it would over the texts. Keys mean
//! nothing outside one server and are never shown: a grouping by a lookup turns its keys
//! back into ids ([`KeyText`]) before the answer is sorted.
//!
//! ```
//! use datafusion::arrow::array::{Array, Int64Array, StringArray};
//! use oneo_query::keys::KeyInterner;
//!
//! let keys = KeyInterner::default();
//! let ids = StringArray::from(vec![
//!     Some("0b6d2c6e-7f0a-4c1e-9b7d-2f6f1c9a8e01"),
//!     None,
//!     Some("0b6d2c6e-7f0a-4c1e-9b7d-2f6f1c9a8e01"),
//! ]);
//! let k = keys.intern(&ids).unwrap();
//! let k = k.as_any().downcast_ref::<Int64Array>().unwrap();
//! assert_eq!(k.value(0), k.value(2));
//! assert!(k.is_null(1));
//! ```

use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{HashMap, exec_err};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::Expr;

/// The key column of column `name`.
pub fn key_column(name: &str) -> String {
    format!("{KEY_PREFIX}{name}")
}

/// Key columns are named with this prefix, which no field's API name can take.
pub const KEY_PREFIX: &str = "__key_";

/// Dense keys for id texts: a canonical UUID (lowercase, hyphenated, as the lake writes ids)
/// takes 16 bytes; any other text is kept whole. Entries are never removed, so a key cached
/// beside a column stays true for as long as the server runs.
#[derive(Debug, Default)]
pub struct KeyInterner {
    state: Mutex<Interned>,
}

#[derive(Debug, Default)]
struct Interned {
    uuids: HashMap<u128, i64>,
    texts: HashMap<Box<str>, i64>,
    /// Each key's text, at `key - 1`.
    values: Vec<IdText>,
}

#[derive(Debug)]
enum IdText {
    Uuid(u128),
    Other(Box<str>),
}

impl Interned {
    fn key(&mut self, text: &str) -> i64 {
        let next = i64::try_from(self.values.len()).unwrap_or(i64::MAX) + 1;
        match canonical_uuid(text) {
            Some(u) => *self.uuids.entry(u).or_insert_with(|| {
                self.values.push(IdText::Uuid(u));
                next
            }),
            None => {
                if let Some(&k) = self.texts.get(text) {
                    return k;
                }
                self.texts.insert(text.into(), next);
                self.values.push(IdText::Other(text.into()));
                next
            }
        }
    }

    fn text(&self, key: i64) -> Option<String> {
        let i = usize::try_from(key.checked_sub(1)?).ok()?;
        Some(match self.values.get(i)? {
            IdText::Uuid(u) => uuid::Uuid::from_u128(*u).hyphenated().to_string(),
            IdText::Other(t) => t.to_string(),
        })
    }
}

/// The UUID's bits when `text` is exactly its lowercase hyphenated form: only then does the
/// 16-byte form name the same text (an uppercase spelling of the same UUID is another id).
fn canonical_uuid(text: &str) -> Option<u128> {
    let b = text.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let nibble = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(nibble);
    }
    Some(v)
}

impl KeyInterner {
    fn lock(&self) -> MutexGuard<'_, Interned> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keys interned so far.
    pub fn len(&self) -> usize {
        self.lock().values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys of a string array (any of Arrow's string types), null where it is null.
    pub fn intern(&self, texts: &dyn Array) -> DfResult<ArrayRef> {
        let mut state = self.lock();
        let keys: Int64Array = match texts.data_type() {
            DataType::Utf8 => texts
                .as_string::<i32>()
                .iter()
                .map(|t| t.map(|t| state.key(t)))
                .collect(),
            DataType::LargeUtf8 => texts
                .as_string::<i64>()
                .iter()
                .map(|t| t.map(|t| state.key(t)))
                .collect(),
            DataType::Utf8View => texts
                .as_string_view()
                .iter()
                .map(|t| t.map(|t| state.key(t)))
                .collect(),
            DataType::Null => Int64Array::new_null(texts.len()),
            other => return exec_err!("ids are strings; a key can't be made from {other}"),
        };
        Ok(Arc::new(keys))
    }

    /// The id texts of `keys`: null where a key is null (or was never given out).
    pub fn texts(&self, keys: &dyn Array) -> DfResult<ArrayRef> {
        let Some(keys) = keys.as_primitive_opt::<Int64Type>() else {
            return exec_err!("keys are Int64, not {}", keys.data_type());
        };
        let state = self.lock();
        let mut out = StringBuilder::with_capacity(keys.len(), keys.len() * 36);
        for k in keys.iter() {
            out.append_option(k.and_then(|k| state.text(k)));
        }
        Ok(Arc::new(out.finish()))
    }
}

/// `oneo_key(id)`: an id text's key, where no cached key column exists (a scan the column
/// cache could not hold).
#[derive(Debug)]
pub struct KeyOf {
    keys: Arc<KeyInterner>,
    signature: Signature,
}

/// `oneo_key_text(key)`: the id text of a key.
#[derive(Debug)]
pub struct KeyText {
    keys: Arc<KeyInterner>,
    signature: Signature,
}

impl KeyOf {
    pub fn udf(keys: &Arc<KeyInterner>) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            keys: Arc::clone(keys),
            signature: Signature::new(
                TypeSignature::Uniform(
                    1,
                    vec![DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View],
                ),
                Volatility::Immutable,
            ),
        })
    }
}

impl KeyText {
    pub fn udf(keys: &Arc<KeyInterner>) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            keys: Arc::clone(keys),
            signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
        })
    }

    /// `key` as its id text.
    pub fn call(keys: &Arc<KeyInterner>, key: Expr) -> Expr {
        Self::udf(keys).call(vec![key])
    }
}

fn one_array(args: ScalarFunctionArgs) -> DfResult<ArrayRef> {
    let rows = args.number_rows;
    match <[ColumnarValue; 1]>::try_from(args.args) {
        Ok([value]) => value.into_array(rows),
        Err(_) => exec_err!("takes exactly one argument"),
    }
}

// Two instances are the same function when they read the same interner.
macro_rules! same_interner {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.keys, &other.keys)
            }
        }
        impl Eq for $t {}
        impl std::hash::Hash for $t {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                Arc::as_ptr(&self.keys).hash(state);
            }
        }
    };
}
same_interner!(KeyOf);
same_interner!(KeyText);

impl ScalarUDFImpl for KeyOf {
    fn name(&self) -> &str {
        "oneo_key"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let texts = one_array(args)?;
        Ok(ColumnarValue::Array(self.keys.intern(&texts)?))
    }
}

impl ScalarUDFImpl for KeyText {
    fn name(&self) -> &str {
        "oneo_key_text"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let keys = one_array(args)?;
        Ok(ColumnarValue::Array(self.keys.texts(&keys)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, StringViewArray};

    #[test]
    fn keys_are_one_to_one_with_texts() {
        let keys = KeyInterner::default();
        let a = "0b6d2c6e-7f0a-4c1e-9b7d-2f6f1c9a8e01";
        let upper = "0B6D2C6E-7F0A-4C1E-9B7D-2F6F1C9A8E01";
        let texts = StringArray::from(vec![Some(a), Some(upper), Some("legacy-7"), None, Some(a)]);
        let k = keys.intern(&texts).unwrap();
        let k = k.as_primitive::<Int64Type>();
        assert_eq!(k.value(0), k.value(4));
        assert_ne!(k.value(0), k.value(1), "another spelling is another id");
        assert_ne!(k.value(1), k.value(2));
        assert!(k.is_null(3));
        // The same texts as views get the same keys, and the keys turn back into the texts.
        let views = StringViewArray::from(vec![Some("legacy-7"), Some(a)]);
        let again = keys.intern(&views).unwrap();
        let again = again.as_primitive::<Int64Type>();
        assert_eq!((again.value(0), again.value(1)), (k.value(2), k.value(0)));
        let back = keys.texts(k).unwrap();
        let back = back.as_string::<i32>();
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            texts.iter().collect::<Vec<_>>()
        );
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn only_the_canonical_spelling_is_packed() {
        assert_eq!(
            canonical_uuid("00000000-0000-0000-0000-00000000000f"),
            Some(15)
        );
        for bad in [
            "0b6d2c6e7f0a-4c1e-9b7d-2f6f1c9a8e01-",
            "{0b6d2c6e-7f0a-4c1e-9b7d-2f6f1c9a8e}",
            "0b6d2c6e-7f0a-4c1e-9b7d-2f6f1c9a8e0g",
        ] {
            assert_eq!(canonical_uuid(bad), None, "{bad}");
        }
    }
}
