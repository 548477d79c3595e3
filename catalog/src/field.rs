use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{Issue, Issues};
use crate::formula::{self, FormulaType};
use crate::names::check_api_name;

/// The type of a field: what values it takes and how it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Number,
    Currency,
    Percent,
    Date,
    Datetime,
    Boolean,
    Picklist,
    Multiselect,
    Email,
    Phone,
    Url,
    Lookup,
    Autonumber,
    Formula,
    Rollup,
}

impl FieldType {
    pub const ALL: [FieldType; 16] = [
        Self::Text,
        Self::Number,
        Self::Currency,
        Self::Percent,
        Self::Date,
        Self::Datetime,
        Self::Boolean,
        Self::Picklist,
        Self::Multiselect,
        Self::Email,
        Self::Phone,
        Self::Url,
        Self::Lookup,
        Self::Autonumber,
        Self::Formula,
        Self::Rollup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Number => "number",
            Self::Currency => "currency",
            Self::Percent => "percent",
            Self::Date => "date",
            Self::Datetime => "datetime",
            Self::Boolean => "boolean",
            Self::Picklist => "picklist",
            Self::Multiselect => "multiselect",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Url => "url",
            Self::Lookup => "lookup",
            Self::Autonumber => "autonumber",
            Self::Formula => "formula",
            Self::Rollup => "rollup",
        }
    }

    /// Formula and rollup values are computed on read; every other type has a stored column.
    pub fn is_stored(self) -> bool {
        !matches!(self, Self::Formula | Self::Rollup)
    }

    /// Decimal types carry a fixed scale (digits after the point).
    pub fn is_decimal(self) -> bool {
        matches!(self, Self::Number | Self::Currency | Self::Percent)
    }

    pub fn is_textual(self) -> bool {
        matches!(self, Self::Text | Self::Email | Self::Phone | Self::Url)
    }

    fn supports_unique(self) -> bool {
        matches!(
            self,
            Self::Text
                | Self::Email
                | Self::Phone
                | Self::Url
                | Self::Number
                | Self::Date
                | Self::Datetime
                | Self::Lookup
        )
    }

    /// The default scale of a decimal type when a definition gives none.
    pub fn default_scale(self) -> u32 {
        2
    }
}

/// Aggregates a rollup can take over the child records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RollupFunction {
    Count,
    Sum,
    Min,
    Max,
}

/// `function` of child `object`'s `field` over the child records whose lookup `via` points here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollupSpec {
    pub function: RollupFunction,
    pub object: String,
    pub via: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A field as a user defines it. Type-specific settings sit on the field itself, as in
/// `{"api_name": "stage", "type": "picklist", "options": ["open", "won"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub api_name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    /// text: the most characters a value may have (default 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// text: a regular expression the whole value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// number, currency, percent: inclusive bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Decimal>,
    /// number, currency, percent: digits after the point (0..=10, default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// picklist, multiselect: the allowed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// lookup: the API name of the object it points to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// formula: an expression over the record's own fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// formula: the type the expression yields; inferred at definition time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_type: Option<FormulaType>,
    /// rollup: what to aggregate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup: Option<RollupSpec>,
    /// stored fields: the value given to records that omit the field (and to existing
    /// records when a required field is added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
}

/// What a field definition may be checked against: the workspace's other objects and fields.
pub trait SchemaView {
    /// The fields of `object` in this workspace, or `None` when there is no such object.
    fn fields_of(&self, object: &str) -> Option<Vec<FieldDef>>;
}

pub const MAX_TEXT_LENGTH: u32 = 100_000;
const DEFAULT_TEXT_LENGTH: u32 = 10_000;
const MAX_OPTIONS: usize = 1_000;

impl FieldDef {
    /// A minimal definition, for building fields in code.
    pub fn new(api_name: &str, label: &str, field_type: FieldType) -> Self {
        Self {
            api_name: api_name.into(),
            label: label.into(),
            field_type,
            required: false,
            unique: false,
            max_length: None,
            pattern: None,
            min: None,
            max: None,
            scale: None,
            options: None,
            target: None,
            expression: None,
            result_type: None,
            rollup: None,
            default: None,
        }
    }

    pub fn scale(&self) -> u32 {
        self.scale
            .unwrap_or_else(|| self.field_type.default_scale())
    }

    pub fn max_length(&self) -> u32 {
        self.max_length.unwrap_or(DEFAULT_TEXT_LENGTH)
    }

    /// Checks a new definition on `object` (whose current fields are `siblings`) and fills in
    /// what is inferred (a formula's `result_type`). Every problem is reported, each naming the
    /// setting at fault.
    pub fn validate(
        &mut self,
        object: &str,
        siblings: &[FieldDef],
        schema: &dyn SchemaView,
    ) -> Result<(), Issues> {
        let mut issues = Vec::new();
        let t = self.field_type;
        if let Err(e) = check_api_name(&self.api_name) {
            issues.push(Issue::new("api_name", e));
        }
        if siblings.iter().any(|f| f.api_name == self.api_name) {
            issues.push(Issue::new(
                "api_name",
                format!("object `{object}` already has a field `{}`", self.api_name),
            ));
        }
        check_label(&self.label, &mut issues);

        // Settings that belong to other types are mistakes worth naming, not silently ignored.
        let misplaced: [(&str, bool, bool); 10] = [
            (
                "max_length",
                self.max_length.is_some(),
                t == FieldType::Text,
            ),
            ("pattern", self.pattern.is_some(), t == FieldType::Text),
            ("min", self.min.is_some(), t.is_decimal()),
            ("max", self.max.is_some(), t.is_decimal()),
            ("scale", self.scale.is_some(), t.is_decimal()),
            (
                "options",
                self.options.is_some(),
                matches!(t, FieldType::Picklist | FieldType::Multiselect),
            ),
            ("target", self.target.is_some(), t == FieldType::Lookup),
            (
                "expression",
                self.expression.is_some(),
                t == FieldType::Formula,
            ),
            ("rollup", self.rollup.is_some(), t == FieldType::Rollup),
            (
                "default",
                self.default.is_some(),
                t.is_stored() && t != FieldType::Autonumber,
            ),
        ];
        for (name, given, allowed) in misplaced {
            if given && !allowed {
                issues.push(Issue::new(
                    name,
                    format!("`{name}` does not apply to {} fields", t.as_str()),
                ));
            }
        }
        // Inferred, never taken from the caller.
        self.result_type = None;
        if self.required && (!t.is_stored() || t == FieldType::Autonumber) {
            issues.push(Issue::new(
                "required",
                format!(
                    "{} values are computed, so `required` does not apply",
                    t.as_str()
                ),
            ));
        }
        if self.unique && !t.supports_unique() {
            issues.push(Issue::new(
                "unique",
                format!(
                    "{} fields can't be unique; unique applies to text, email, phone, url, number, date, datetime and lookup fields",
                    t.as_str()
                ),
            ));
        }

        self.validate_settings(object, siblings, schema, &mut issues);

        if let Some(default) = &self.default
            && t.is_stored()
            && t != FieldType::Autonumber
            && let Err(reason) = self.parse_value(default)
        {
            issues.push(Issue::new("default", reason));
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(Issues(issues))
        }
    }

    fn validate_settings(
        &mut self,
        object: &str,
        siblings: &[FieldDef],
        schema: &dyn SchemaView,
        issues: &mut Vec<Issue>,
    ) {
        match self.field_type {
            FieldType::Text => {
                if let Some(n) = self.max_length
                    && (n == 0 || n > MAX_TEXT_LENGTH)
                {
                    issues.push(Issue::new(
                        "max_length",
                        format!("must be between 1 and {MAX_TEXT_LENGTH}"),
                    ));
                }
                if let Some(p) = &self.pattern
                    && let Err(e) = regex::Regex::new(p)
                {
                    issues.push(Issue::new(
                        "pattern",
                        format!("not a valid regular expression: {e}"),
                    ));
                }
            }
            FieldType::Number | FieldType::Currency | FieldType::Percent => {
                if let Some(s) = self.scale
                    && s > 10
                {
                    issues.push(Issue::new("scale", "must be between 0 and 10"));
                }
                if let (Some(min), Some(max)) = (self.min, self.max)
                    && min > max
                {
                    issues.push(Issue::new(
                        "min",
                        format!("min {min} is greater than max {max}"),
                    ));
                }
            }
            FieldType::Picklist | FieldType::Multiselect => {
                check_options(self.options.as_deref(), issues)
            }
            FieldType::Lookup => match &self.target {
                None => issues.push(Issue::new(
                    "target",
                    "a lookup needs `target`, the API name of the object it points to",
                )),
                Some(target) if target != object && schema.fields_of(target).is_none() => issues
                    .push(Issue::new(
                        "target",
                        format!("there is no object `{target}`"),
                    )),
                Some(_) => {}
            },
            FieldType::Formula => match &self.expression {
                None => issues.push(Issue::new("expression", "a formula needs `expression`")),
                Some(src) => match formula::Formula::parse(src)
                    .and_then(|f| f.check(&|name| formula::operand_type(siblings, name)))
                {
                    Ok(ty) => self.result_type = Some(ty),
                    Err(e) => issues.push(Issue::new("expression", e)),
                },
            },
            FieldType::Rollup => match &self.rollup {
                None => issues.push(Issue::new(
                    "rollup",
                    "a rollup needs `rollup`: {function, object, via, field}",
                )),
                Some(spec) => self.result_type = check_rollup(object, spec, schema, issues),
            },
            FieldType::Date
            | FieldType::Datetime
            | FieldType::Boolean
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Url
            | FieldType::Autonumber => {}
        }
    }

    /// The fields of the same object this field needs (formula operands).
    pub fn formula_operands(&self) -> Vec<String> {
        match (&self.field_type, &self.expression) {
            (FieldType::Formula, Some(src)) => formula::Formula::parse(src)
                .map(|f| f.field_names())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

fn check_label(label: &str, issues: &mut Vec<Issue>) {
    if label.trim().is_empty() || label.chars().count() > 200 {
        issues.push(Issue::new(
            "label",
            "must be 1 to 200 characters, not only spaces",
        ));
    }
}

/// Checks a label on its own, for renames.
pub fn validate_label(label: &str) -> Result<(), Issues> {
    let mut issues = Vec::new();
    check_label(label, &mut issues);
    if issues.is_empty() {
        Ok(())
    } else {
        Err(Issues(issues))
    }
}

fn check_options(options: Option<&[String]>, issues: &mut Vec<Issue>) {
    let Some(options) = options else {
        issues.push(Issue::new(
            "options",
            "picklist and multiselect fields need `options`, the allowed values",
        ));
        return;
    };
    if options.is_empty() || options.len() > MAX_OPTIONS {
        issues.push(Issue::new(
            "options",
            format!("give between 1 and {MAX_OPTIONS} values"),
        ));
    }
    for (i, o) in options.iter().enumerate() {
        if o.trim().is_empty() || o.chars().count() > 255 {
            issues.push(Issue::new(
                format!("options[{i}]"),
                "each value must be 1 to 255 characters",
            ));
        }
        if options[..i].contains(o) {
            issues.push(Issue::new(
                format!("options[{i}]"),
                format!("`{o}` is listed twice"),
            ));
        }
    }
}

/// Checks a rollup and returns the type it yields.
fn check_rollup(
    object: &str,
    spec: &RollupSpec,
    schema: &dyn SchemaView,
    issues: &mut Vec<Issue>,
) -> Option<FormulaType> {
    let Some(children) = schema.fields_of(&spec.object) else {
        issues.push(Issue::new(
            "rollup.object",
            format!("there is no object `{}`", spec.object),
        ));
        return None;
    };
    match children.iter().find(|f| f.api_name == spec.via) {
        Some(via)
            if via.field_type == FieldType::Lookup && via.target.as_deref() == Some(object) => {}
        Some(_) => issues.push(Issue::new(
            "rollup.via",
            format!(
                "`{}.{}` is not a lookup to `{object}`",
                spec.object, spec.via
            ),
        )),
        None => issues.push(Issue::new(
            "rollup.via",
            format!("object `{}` has no field `{}`", spec.object, spec.via),
        )),
    }
    match (spec.function, &spec.field) {
        (RollupFunction::Count, Some(_)) => {
            issues.push(Issue::new(
                "rollup.field",
                "count counts child records; leave `field` out",
            ));
            None
        }
        (RollupFunction::Count, None) => Some(FormulaType::Number),
        (_, None) => {
            issues.push(Issue::new("rollup.field", "sum, min and max need `field`"));
            None
        }
        (f, Some(name)) => match children.iter().find(|c| &c.api_name == name) {
            None => {
                issues.push(Issue::new(
                    "rollup.field",
                    format!("object `{}` has no field `{name}`", spec.object),
                ));
                None
            }
            Some(c) => {
                let numeric = c.field_type.is_decimal();
                let ordered =
                    numeric || matches!(c.field_type, FieldType::Date | FieldType::Datetime);
                let ok = if f == RollupFunction::Sum {
                    numeric
                } else {
                    ordered
                };
                if !ok {
                    issues.push(Issue::new(
                        "rollup.field",
                        format!(
                            "can't take {f:?} of {} field `{name}`: sum needs number, currency or percent; min and max also take date and datetime",
                            c.field_type.as_str()
                        )
                        .to_lowercase(),
                    ));
                    return None;
                }
                Some(match c.field_type {
                    FieldType::Date => FormulaType::Date,
                    FieldType::Datetime => FormulaType::Datetime,
                    _ => FormulaType::Number,
                })
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    struct Schema(HashMap<String, Vec<FieldDef>>);
    impl SchemaView for Schema {
        fn fields_of(&self, object: &str) -> Option<Vec<FieldDef>> {
            self.0.get(object).cloned()
        }
    }

    fn def(v: serde_json::Value) -> FieldDef {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn misplaced_settings_are_named() {
        let schema = Schema(HashMap::new());
        let mut f = def(
            json!({"api_name": "n", "label": "N", "type": "number", "pattern": "x", "options": ["a"]}),
        );
        let err = f.validate("o", &[], &schema).unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(fields, ["pattern", "options"]);
    }

    #[test]
    fn rollup_needs_a_lookup_back_to_the_parent() {
        let mut deal_company = FieldDef::new("company", "Company", FieldType::Lookup);
        deal_company.target = Some("company".into());
        let schema = Schema(HashMap::from([(
            "deal".to_string(),
            vec![
                deal_company,
                FieldDef::new("amount", "Amount", FieldType::Currency),
                FieldDef::new("name", "Name", FieldType::Text),
            ],
        )]));
        let mut ok = def(json!({"api_name": "total", "label": "T", "type": "rollup",
            "rollup": {"function": "sum", "object": "deal", "via": "company", "field": "amount"}}));
        assert!(ok.validate("company", &[], &schema).is_ok());
        let mut bad = def(json!({"api_name": "total", "label": "T", "type": "rollup",
            "rollup": {"function": "sum", "object": "deal", "via": "company", "field": "name"}}));
        let err = bad.validate("company", &[], &schema).unwrap_err();
        assert_eq!(err.0[0].field, "rollup.field");
        let mut wrong_parent = ok.clone();
        assert!(wrong_parent.validate("contact", &[], &schema).is_err());
    }

    #[test]
    fn formula_result_type_is_inferred() {
        let schema = Schema(HashMap::new());
        let siblings = vec![FieldDef::new("amount", "A", FieldType::Currency)];
        let mut f = def(
            json!({"api_name": "big", "label": "Big", "type": "formula", "expression": "amount > 1000"}),
        );
        f.validate("deal", &siblings, &schema).unwrap();
        assert_eq!(f.result_type, Some(FormulaType::Boolean));
    }
}
