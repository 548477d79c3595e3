//! The report spec: what an analyst asks for, as JSON.
//!
//! ```
//! let spec: oneo_query::ReportSpec = serde_json::from_value(serde_json::json!({
//!     "type": "summary",
//!     "object": "deal",
//!     "filters": [{"field": "close_date", "op": "equals", "value": "THIS_FISCAL_YEAR"}],
//!     "groupings": [{"field": "company.industry"}, {"field": "close_date", "date": "quarter"}],
//!     "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "count"}],
//!     "sort": [{"by": "sum_amount", "desc": true}]
//! })).unwrap();
//! assert_eq!(spec.groupings.len(), 2);
//! ```

use serde::{Deserialize, Serialize};

/// A report: its kind, primary object and what to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    #[serde(rename = "type")]
    pub kind: ReportKind,
    /// The primary object; field paths start from it.
    pub object: String,
    /// Tabular: the field paths to show, e.g. `name`, `company.industry`.
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// How the filters combine, by their 1-based numbers: `"1 AND (2 OR 3)"`. All of them
    /// ANDed when absent.
    #[serde(default)]
    pub filter_logic: Option<String>,
    /// Cross-object filters, ANDed with the rest: keep the records that have (or, with
    /// `"without": true`, lack) related records matching their own filters.
    #[serde(default)]
    pub related: Vec<RelatedFilter>,
    /// Summary: the groupings, outermost first. Matrix: the row groupings.
    #[serde(default)]
    pub groupings: Vec<Grouping>,
    /// Matrix: the column groupings.
    #[serde(default)]
    pub column_groupings: Vec<Grouping>,
    #[serde(default)]
    pub aggregates: Vec<Aggregate>,
    /// Summary, matrix and joined: formulas over the aggregates, computed for every group,
    /// subtotal and total (in a joined report an aggregate is `<block>.<aggregate>`).
    #[serde(default)]
    pub formulas: Vec<SummaryFormula>,
    /// Joined: 1 to 5 blocks, each with its own object, filters and aggregates, sharing the
    /// report's groupings.
    #[serde(default)]
    pub blocks: Vec<Block>,
    #[serde(default)]
    pub sort: Vec<SortKey>,
    /// Most rows returned (tabular: records; summary: groups). Beyond it the response says
    /// `truncated` and gives the total.
    #[serde(default)]
    pub limit: Option<usize>,
}

impl ReportSpec {
    /// The spec with `extra` ANDed to its filters (and its filter logic): a saved report's
    /// runtime filters, a dashboard's global filters.
    pub fn with_filters(mut self, extra: Vec<Filter>) -> Self {
        if extra.is_empty() {
            return self;
        }
        let first = self.filters.len() + 1;
        let added: Vec<String> = (first..first + extra.len())
            .map(|n| n.to_string())
            .collect();
        if let Some(logic) = self.filter_logic.take().filter(|l| !l.trim().is_empty()) {
            self.filter_logic = Some(format!("({logic}) AND {}", added.join(" AND ")));
        }
        self.filters.extend(extra);
        self
    }
}

/// A summary formula: arithmetic over a group's aggregates, e.g. `won_amount / sum_amount *
/// 100`, in the formula language of formula fields (`IF`, `ROUND`, `COALESCE`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryFormula {
    /// The output column's name; other formulas may read it.
    #[serde(rename = "as")]
    pub name: String,
    pub formula: String,
    /// Digits after the point (0 to 10, default 2).
    #[serde(default)]
    pub scale: Option<u32>,
}

/// One block of a joined report: a summary of its own object, grouped by the report's
/// groupings (each path resolved from this block's object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// Prefixes the block's aggregate columns: `<name>.<aggregate>`.
    pub name: String,
    /// The block's object; the report's `object` when absent.
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub filters: Vec<Filter>,
    #[serde(default)]
    pub filter_logic: Option<String>,
    #[serde(default)]
    pub related: Vec<RelatedFilter>,
    /// A row count when empty.
    #[serde(default)]
    pub aggregates: Vec<Aggregate>,
    /// This block's path for each shared grouping, when its object reaches the shared field
    /// another way (`deal.company.industry` from activities beside `company.industry` from
    /// deals); the groupings' own paths when empty.
    #[serde(default)]
    pub grouping_fields: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Tabular,
    Summary,
    Matrix,
    Joined,
}

/// One condition on a field path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub field: String,
    pub op: FilterOp,
    /// A value of the field's type; an array for `in`, `not_in` and `between`; for dates and
    /// datetimes also a relative date (`TODAY`, `LAST_N_DAYS:30`, `THIS_QUARTER`, …). Absent
    /// for `is_null` and `is_not_null`.
    #[serde(default)]
    pub value: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Equals,
    NotEquals,
    Lt,
    Le,
    Gt,
    Ge,
    Between,
    In,
    NotIn,
    Contains,
    StartsWith,
    IsNull,
    IsNotNull,
}

impl FilterOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "equals",
            Self::NotEquals => "not_equals",
            Self::Lt => "lt",
            Self::Le => "le",
            Self::Gt => "gt",
            Self::Ge => "ge",
            Self::Between => "between",
            Self::In => "in",
            Self::NotIn => "not_in",
            Self::Contains => "contains",
            Self::StartsWith => "starts_with",
            Self::IsNull => "is_null",
            Self::IsNotNull => "is_not_null",
        }
    }
}

/// `company WITH deals WHERE stage = 'closed_won'`: `{"object": "deal", "via": "company",
/// "filters": [{"field": "stage", "op": "equals", "value": "closed_won"}]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelatedFilter {
    /// The related (child) object.
    pub object: String,
    /// Its lookup field that points to the report's object.
    pub via: String,
    /// Conditions on the related records, ANDed; none means any related record.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Keep the records with no such related record instead.
    #[serde(default)]
    pub without: bool,
}

/// Rows grouped by a field path's value, or by its date truncated to a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grouping {
    pub field: String,
    /// Dates and datetimes: group by this period's start.
    #[serde(default)]
    pub date: Option<DatePeriod>,
    /// Group by named buckets of the value instead of the value itself.
    #[serde(default)]
    pub buckets: Option<Vec<Bucket>>,
    /// With buckets: the label of values no bucket takes (default `Other`).
    #[serde(default)]
    pub other: Option<String>,
    /// The output column's name; by default the path, with `:<period>` for a date grouping
    /// and `:buckets` for a bucket field.
    #[serde(default, rename = "as")]
    pub alias: Option<String>,
}

impl Grouping {
    pub fn name(&self) -> String {
        match (&self.alias, self.date) {
            (Some(a), _) => a.clone(),
            (None, Some(p)) => format!("{}:{}", self.field, p.as_str()),
            (None, None) if self.buckets.is_some() => format!("{}:buckets", self.field),
            (None, None) => self.field.clone(),
        }
    }
}

/// A named bucket: numbers or dates below a bound (buckets in ascending order, each taking
/// what the earlier ones left), or a set of picklist or text values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    pub label: String,
    /// Numbers, currencies, percents, dates: values below this bound (exclusive).
    #[serde(default)]
    pub below: Option<serde_json::Value>,
    /// Picklists and text: these values.
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatePeriod {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl DatePeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Quarter => "quarter",
            Self::Year => "year",
        }
    }
}

/// An aggregate over the rows of each group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    #[serde(rename = "fn")]
    pub function: AggregateFn,
    /// The field path; absent only for `count` (rows).
    #[serde(default)]
    pub field: Option<String>,
    /// The output column's name; by default `<fn>_<path>` (`count` for a row count).
    #[serde(default, rename = "as")]
    pub alias: Option<String>,
    /// Summary: also show, per innermost group, this aggregate compared with its
    /// neighbours, in a column named `<name>:<comparison>`.
    #[serde(default)]
    pub compare: Option<Comparison>,
    /// Only the rows meeting these conditions (ANDed) count towards this aggregate, e.g. the
    /// amount of won deals beside the amount of all deals.
    #[serde(default, rename = "where")]
    pub condition: Vec<Filter>,
}

/// How a group's aggregate relates to the groups around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Its share (in percent) of its parent group (of everything, with one grouping).
    PercentOfParent,
    /// The difference from the previous group within the same parent, in grouping order.
    ChangeFromPrevious,
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PercentOfParent => "percent_of_parent",
            Self::ChangeFromPrevious => "change_from_previous",
        }
    }
}

impl Aggregate {
    pub fn name(&self) -> String {
        match (&self.alias, &self.field) {
            (Some(a), _) => a.clone(),
            (None, Some(f)) => format!("{}_{f}", self.function.as_str()),
            (None, None) => self.function.as_str().to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateFn {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    Median,
}

impl AggregateFn {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::CountDistinct => "count_distinct",
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Median => "median",
        }
    }
}

/// Order by an output column: a tabular column's path, or a grouping's or aggregate's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortKey {
    pub by: String,
    #[serde(default)]
    pub desc: bool,
}
