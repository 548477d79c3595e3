use std::str::FromStr;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::Value as Json;
use uuid::Uuid;

use crate::field::{FieldDef, FieldType};

/// A field value after validation, in its canonical form.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    /// number, currency and percent, already at the field's scale.
    Decimal(Decimal),
    Integer(i64),
    Date(NaiveDate),
    Datetime(DateTime<Utc>),
    Boolean(bool),
    List(Vec<String>),
    Id(Uuid),
}

impl Value {
    /// The JSON a client gets back. Decimals are strings so no client rounds them.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Text(s) => Json::String(s.clone()),
            Value::Decimal(d) => Json::String(d.to_string()),
            Value::Integer(i) => Json::from(*i),
            Value::Date(d) => Json::String(d.format("%Y-%m-%d").to_string()),
            Value::Datetime(t) => Json::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            Value::Boolean(b) => Json::Bool(*b),
            Value::List(items) => Json::from(items.clone()),
            Value::Id(id) => Json::String(id.to_string()),
        }
    }

    /// The text PostgreSQL parses back into the column's type (`None` for null).
    pub fn to_sql_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::List(items) => Some(serde_json::to_string(items).unwrap_or_default()),
            other => match other.to_json() {
                Json::String(s) => Some(s),
                j => Some(j.to_string()),
            },
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn phone_shape() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"^\+?[0-9 ().\-]+$").expect("static regex"))
}

impl FieldDef {
    /// Validates one JSON value for this field. The error says what was wrong and what is
    /// allowed; `null` is accepted here (whether it may be null is the `required` check's job).
    pub fn parse_value(&self, v: &Json) -> Result<Value, String> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        match self.field_type {
            FieldType::Text => self.parse_text(v),
            FieldType::Number | FieldType::Currency | FieldType::Percent => self.parse_decimal(v),
            FieldType::Date => {
                let s = expect_str(v, "a date as \"YYYY-MM-DD\"")?;
                NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .ok()
                    .filter(|_| s.len() == 10)
                    .map(Value::Date)
                    .ok_or_else(|| {
                        format!("\"{s}\" is not a date; use YYYY-MM-DD, e.g. 2026-03-31")
                    })
            }
            FieldType::Datetime => {
                let s = expect_str(v, "an RFC 3339 datetime")?;
                DateTime::parse_from_rfc3339(s)
                    .map(|t| Value::Datetime(t.with_timezone(&Utc)))
                    .map_err(|_| {
                        format!(
                            "\"{s}\" is not an RFC 3339 datetime; use e.g. 2026-03-31T14:05:00Z"
                        )
                    })
            }
            FieldType::Boolean => v
                .as_bool()
                .map(Value::Boolean)
                .ok_or_else(|| format!("expected true or false, got {}", type_name(v))),
            FieldType::Picklist => {
                let s = expect_str(v, "one of the picklist's options")?;
                self.check_option(s)?;
                Ok(Value::Text(s.to_string()))
            }
            FieldType::Multiselect => self.parse_multiselect(v),
            FieldType::Email => {
                let s = expect_str(v, "an email address")?;
                if s.len() > 254 || !email_address::EmailAddress::is_valid(s) || !s.contains('.') {
                    return Err(format!(
                        "\"{s}\" is not an email address like name@example.com"
                    ));
                }
                Ok(Value::Text(s.to_string()))
            }
            FieldType::Phone => {
                let s = expect_str(v, "a phone number")?;
                let digits = s.chars().filter(char::is_ascii_digit).count();
                if !phone_shape().is_match(s) || !(7..=15).contains(&digits) {
                    return Err(format!(
                        "\"{s}\" is not a phone number: use 7 to 15 digits, optionally a leading +, spaces, dots, dashes or parentheses"
                    ));
                }
                Ok(Value::Text(s.to_string()))
            }
            FieldType::Url => {
                let s = expect_str(v, "a URL")?;
                let with_scheme = if s.contains("://") {
                    s.to_string()
                } else {
                    format!("https://{s}")
                };
                match url::Url::parse(&with_scheme) {
                    Ok(u)
                        if matches!(u.scheme(), "http" | "https")
                            && u.host_str().is_some_and(|h| h.contains('.'))
                            && s.len() <= 2048 =>
                    {
                        Ok(Value::Text(s.to_string()))
                    }
                    _ => Err(format!(
                        "\"{s}\" is not an http(s) URL or domain like example.com"
                    )),
                }
            }
            FieldType::Lookup => {
                let s = expect_str(v, "the id of a record")?;
                Uuid::parse_str(s)
                    .map(Value::Id)
                    .map_err(|_| format!("\"{s}\" is not a record id (a UUID)"))
            }
            FieldType::Autonumber => {
                Err("autonumber values are assigned by Oneo; leave this field out".into())
            }
            FieldType::Formula | FieldType::Rollup => Err(format!(
                "{} values are computed; leave this field out",
                self.field_type.as_str()
            )),
        }
    }

    fn parse_text(&self, v: &Json) -> Result<Value, String> {
        let s = expect_str(v, "text")?;
        let len = s.chars().count();
        if len as u64 > u64::from(self.max_length()) {
            return Err(format!(
                "is {len} characters long; at most {} allowed",
                self.max_length()
            ));
        }
        if let Some(p) = &self.pattern {
            let re = regex::Regex::new(&format!("^(?:{p})$"))
                .map_err(|e| format!("the field's pattern is invalid: {e}"))?;
            if !re.is_match(s) {
                return Err(format!("\"{s}\" does not match the pattern {p}"));
            }
        }
        Ok(Value::Text(s.to_string()))
    }

    fn parse_decimal(&self, v: &Json) -> Result<Value, String> {
        let text = match v {
            Json::Number(n) => n.to_string(),
            Json::String(s) => s.trim().to_string(),
            other => {
                return Err(format!(
                    "expected a number or a decimal string, got {}",
                    type_name(other)
                ));
            }
        };
        let d = Decimal::from_str(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .map_err(|_| format!("\"{text}\" is not a decimal number"))?
            .normalize();
        let scale = self.scale();
        if d.scale() > scale {
            return Err(format!(
                "{text} has {} digits after the point; at most {scale} allowed",
                d.scale()
            ));
        }
        if let Some(min) = self.min
            && d < min
        {
            return Err(format!("{text} is below the minimum {min}"));
        }
        if let Some(max) = self.max
            && d > max
        {
            return Err(format!("{text} is above the maximum {max}"));
        }
        // 18 digits before the point keeps every value inside the lake's Decimal128(38, s).
        if d.abs() >= Decimal::from(1_000_000_000_000_000_000u64) {
            return Err(format!(
                "{text} is too large; at most 18 digits before the point"
            ));
        }
        let mut d = d;
        d.rescale(scale);
        Ok(Value::Decimal(d))
    }

    fn check_option(&self, s: &str) -> Result<(), String> {
        let options = self.options.as_deref().unwrap_or_default();
        if options.iter().any(|o| o == s) {
            Ok(())
        } else {
            Err(format!(
                "\"{s}\" is not an option; allowed: {}",
                options.join(", ")
            ))
        }
    }

    fn parse_multiselect(&self, v: &Json) -> Result<Value, String> {
        let Json::Array(items) = v else {
            return Err(format!(
                "expected an array of options, got {}",
                type_name(v)
            ));
        };
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            let s = expect_str(item, "option names")?;
            self.check_option(s)?;
            if out.iter().any(|o| o == s) {
                return Err(format!("\"{s}\" is selected twice"));
            }
            out.push(s.to_string());
        }
        Ok(Value::List(out))
    }
}

fn expect_str<'a>(v: &'a Json, what: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("expected {what}, got {}", type_name(v)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(v: Json) -> FieldDef {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn decimals_keep_scale_and_refuse_excess_digits() {
        let f = field(json!({"api_name": "a", "label": "A", "type": "currency"}));
        assert_eq!(
            f.parse_value(&json!(12.5)).unwrap().to_json(),
            json!("12.50")
        );
        assert_eq!(
            f.parse_value(&json!("1e3")).unwrap().to_json(),
            json!("1000.00")
        );
        assert!(
            f.parse_value(&json!("1.234"))
                .unwrap_err()
                .contains("at most 2")
        );
        assert!(f.parse_value(&json!(true)).is_err());
    }

    #[test]
    fn text_length_and_pattern() {
        let f = field(
            json!({"api_name": "sku", "label": "SKU", "type": "text", "max_length": 5, "pattern": "[A-Z]+-[0-9]"}),
        );
        assert!(f.parse_value(&json!("AB-1")).is_ok());
        assert!(
            f.parse_value(&json!("AB-12"))
                .unwrap_err()
                .contains("pattern")
        );
        assert!(
            f.parse_value(&json!("ABCD-1"))
                .unwrap_err()
                .contains("at most 5")
        );
    }

    #[test]
    fn datetimes_are_normalised_to_utc() {
        let f = FieldDef::new("t", "T", FieldType::Datetime);
        let v = f.parse_value(&json!("2026-03-31T14:05:00+02:00")).unwrap();
        assert_eq!(v.to_json(), json!("2026-03-31T12:05:00Z"));
    }
}
