//! Field paths (`deal.company.industry` is `company.industry` from `deal`): each hop follows
//! a lookup with a left join, each distinct hop joined once.

use chrono::NaiveDate;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::common::{Column, JoinType};
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::{cast, lit, when};
use datafusion::prelude::DataFrame;
use oneo_catalog::formula::{Formula, FormulaType};
use oneo_catalog::{FieldDef, FieldType, RollupFunction};

use crate::error::QueryError;
use crate::keys::key_column;
use crate::workspace::{ObjectDef, WorkspaceSchema, WorkspaceSession, system_field};

/// The primary object's alias in every plan.
pub(crate) const ROOT: &str = "t0";
/// Longest path: a lookup chain longer than this is almost certainly a mistake.
const MAX_HOPS: usize = 5;
/// Formula fields reading formula fields: deeper than this is refused (the catalog refuses
/// cycles when fields are defined; this keeps a bad catalog from recursing forever).
const MAX_FORMULA_DEPTH: usize = 16;

/// A path resolved to a column of the joined plan.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub path: String,
    pub expr: Expr,
    pub field: FieldDef,
    /// An id or lookup column's key column (see [`crate::keys`]), where the session's tables
    /// have them: what joins, groupings and distinct counts on it should use.
    pub key: Option<Expr>,
}

#[derive(Clone)]
struct Join {
    /// The lookup path this join follows (`company`, `company.parent`), or for a rollup the
    /// path of the rollup field itself.
    prefix: String,
    alias: String,
    object: String,
    /// The column it joins on, in the plan so far: a lookup's value, or for a rollup the id
    /// of the record that owns it; and that column's key column.
    on: Expr,
    on_key: Expr,
    /// A rollup: the child records aggregated per parent, one row each, joined by `via`.
    rollup: Option<RollupJoin>,
}

#[derive(Clone)]
struct RollupJoin {
    via: String,
    function: RollupFunction,
    field: Option<String>,
}

/// Resolves paths from one primary object and builds the joins they need.
#[derive(Clone)]
pub struct Paths<'a> {
    schema: &'a WorkspaceSchema,
    root: &'a ObjectDef,
    joins: Vec<Join>,
    /// What a formula's `TODAY()` means: the workspace's date.
    today: NaiveDate,
    /// Whether the tables have key columns to join on.
    keyed: bool,
}

fn column(alias: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(alias), name))
}

impl<'a> Paths<'a> {
    pub fn new(
        session: &'a WorkspaceSession,
        object: &str,
        today: NaiveDate,
    ) -> Result<Self, QueryError> {
        let schema: &'a WorkspaceSchema = session.schema();
        let root = schema.object(object).ok_or_else(|| {
            QueryError::spec(
                "object",
                format!(
                    "there is no object `{object}` in this workspace (there are: {})",
                    schema.object_names().join(", ")
                ),
            )
        })?;
        Ok(Self {
            schema,
            root,
            joins: Vec::new(),
            today,
            keyed: session.keys().is_some(),
        })
    }

    /// Resolves `path`; `part` says where it came from, for errors.
    pub fn resolve(&mut self, path: &str, part: &str) -> Result<Resolved, QueryError> {
        self.resolve_at(path, part, 0)
    }

    fn resolve_at(&mut self, path: &str, part: &str, depth: usize) -> Result<Resolved, QueryError> {
        let segments: Vec<&str> = path.split('.').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(QueryError::spec(
                part,
                format!("`{path}` is not a field path (field names joined by dots)"),
            ));
        }
        if segments.len() > MAX_HOPS + 1 {
            return Err(QueryError::spec(
                part,
                format!("`{path}` follows more than {MAX_HOPS} lookups"),
            ));
        }
        let (last, hops) = segments.split_last().unwrap_or((&"", &[]));
        let mut object = self.root;
        let mut alias = ROOT.to_string();
        let mut prefix = String::new();
        for hop in hops {
            let field = object
                .field(hop)
                .ok_or_else(|| unknown(part, path, hop, object))?;
            let target = match (&field.field_type, &field.target) {
                (FieldType::Lookup, Some(t)) => t,
                _ => {
                    return Err(QueryError::spec(
                        part,
                        format!(
                            "`{hop}` on `{}` is a {} field, not a lookup, so `{path}` can't follow it",
                            object.api_name,
                            field.field_type.as_str()
                        ),
                    ));
                }
            };
            // The target is looked up in this workspace only: a path never leaves it.
            let next = self.schema.object(target).ok_or_else(|| {
                QueryError::spec(
                    part,
                    format!(
                        "`{hop}` points to `{target}`, which is not an object of this workspace"
                    ),
                )
            })?;
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(hop);
            alias = self.join(&prefix, &alias, hop, next);
            object = next;
        }
        let field = match system_field(last) {
            Some(f) => f,
            None => object
                .field(last)
                .cloned()
                .ok_or_else(|| unknown(part, path, last, object))?,
        };
        if field.field_type == FieldType::Formula {
            let through = (!prefix.is_empty()).then(|| column(&alias, "id"));
            return self.formula(path, part, &prefix, through, field, depth);
        }
        if field.field_type == FieldType::Rollup {
            return self.rollup(path, part, &alias, field);
        }
        let key = (self.keyed && field.field_type == FieldType::Lookup)
            .then(|| column(&alias, &key_column(last)));
        Ok(Resolved {
            path: path.to_string(),
            expr: column(&alias, last),
            field,
            key,
        })
    }

    /// A formula field: its expression compiled over the same record's fields (reached
    /// through the same joins), typed as the field it yields.
    fn formula(
        &mut self,
        path: &str,
        part: &str,
        prefix: &str,
        through: Option<Expr>,
        field: FieldDef,
        depth: usize,
    ) -> Result<Resolved, QueryError> {
        if depth >= MAX_FORMULA_DEPTH {
            return Err(QueryError::spec(
                part,
                format!("`{path}`: formulas nest more than {MAX_FORMULA_DEPTH} deep"),
            ));
        }
        let bad = |m: String| QueryError::spec(part, format!("`{path}`: {m}"));
        let source = field
            .expression
            .as_deref()
            .ok_or_else(|| bad("the formula has no expression".into()))?;
        let parsed = Formula::parse(source).map_err(bad)?;
        let today = self.today;
        let mut operand = |name: &str| {
            let p = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            self.resolve_at(&p, part, depth + 1).map(|r| r.expr)
        };
        let mut expr = crate::formula::compile(&parsed.expr, &mut operand, today, part)?;
        if let Some(id) = through {
            // No record at the end of the lookups: no value, whatever the formula would make
            // of the missing fields (a CASE's ELSE, a COALESCE).
            expr = when(id.is_null(), lit(ScalarValue::Null)).otherwise(expr)?;
        }
        let (ty, expr) = match field.result_type {
            Some(FormulaType::Number) => (
                FieldType::Number,
                cast(
                    expr,
                    DataType::Decimal128(38, i8::try_from(field.scale()).unwrap_or(10)),
                ),
            ),
            Some(FormulaType::Text) => (FieldType::Text, expr),
            Some(FormulaType::Boolean) => (FieldType::Boolean, expr),
            Some(FormulaType::Date) => (FieldType::Date, expr),
            Some(FormulaType::Datetime) => (FieldType::Datetime, expr),
            None => return Err(bad("the formula has no known result type".into())),
        };
        let mut typed = FieldDef::new(&field.api_name, &field.label, ty);
        typed.scale = Some(field.scale());
        Ok(Resolved {
            path: path.to_string(),
            expr,
            field: typed,
            key: None,
        })
    }

    /// A rollup field: its child records aggregated per parent in a subquery, left-joined
    /// on the parent's id. No children reads as the API shows it: a count or sum of 0, a
    /// min or max of null.
    fn rollup(
        &mut self,
        path: &str,
        part: &str,
        owner_alias: &str,
        field: FieldDef,
    ) -> Result<Resolved, QueryError> {
        let bad = |m: String| QueryError::spec(part, format!("`{path}`: {m}"));
        let spec = field
            .rollup
            .as_ref()
            .ok_or_else(|| bad("the rollup has no definition".into()))?;
        let child = self.schema.object(&spec.object).ok_or_else(|| {
            bad(format!(
                "its object `{}` is not in this workspace",
                spec.object
            ))
        })?;
        let via = child
            .field(&spec.via)
            .ok_or_else(|| bad(format!("`{}` has no field `{}`", spec.object, spec.via)))?;
        if via.field_type != FieldType::Lookup {
            return Err(bad(format!(
                "`{}.{}` is not a lookup",
                spec.object, spec.via
            )));
        }
        let target = match &spec.field {
            None => None,
            Some(n) => Some(
                child
                    .field(n)
                    .filter(|f| f.field_type.is_stored())
                    .ok_or_else(|| bad(format!("`{}` has no stored field `{n}`", spec.object)))?,
            ),
        };
        let mut typed = match (spec.function, target) {
            (RollupFunction::Count, _) => {
                let mut f = FieldDef::new(&field.api_name, &field.label, FieldType::Number);
                f.scale = Some(0);
                f
            }
            (RollupFunction::Sum, Some(t)) => {
                let mut f = FieldDef::new(&field.api_name, &field.label, FieldType::Number);
                f.scale = Some(t.scale());
                f
            }
            (_, Some(t)) => {
                let mut f = t.clone();
                f.api_name.clone_from(&field.api_name);
                f.label.clone_from(&field.label);
                f
            }
            (_, None) => return Err(bad("sum, min and max need a field".into())),
        };
        typed.required = false;
        let alias = match self
            .joins
            .iter()
            .find(|j| j.prefix == path && j.rollup.is_some())
        {
            Some(j) => j.alias.clone(),
            None => {
                let alias = format!("j{}", self.joins.len() + 1);
                self.joins.push(Join {
                    prefix: path.to_string(),
                    alias: alias.clone(),
                    object: spec.object.clone(),
                    on: column(owner_alias, "id"),
                    on_key: column(owner_alias, &key_column("id")),
                    rollup: Some(RollupJoin {
                        via: spec.via.clone(),
                        function: spec.function,
                        field: spec.field.clone(),
                    }),
                });
                alias
            }
        };
        let value = column(&alias, "__value");
        let expr = match spec.function {
            RollupFunction::Count | RollupFunction::Sum => coalesce(vec![value, lit(0i64)]),
            RollupFunction::Min | RollupFunction::Max => value,
        };
        Ok(Resolved {
            path: path.to_string(),
            expr,
            field: typed,
            key: None,
        })
    }

    fn join(&mut self, prefix: &str, from_alias: &str, lookup: &str, to: &ObjectDef) -> String {
        if let Some(j) = self
            .joins
            .iter()
            .find(|j| j.prefix == prefix && j.rollup.is_none())
        {
            return j.alias.clone();
        }
        let alias = format!("j{}", self.joins.len() + 1);
        self.joins.push(Join {
            prefix: prefix.to_string(),
            alias: alias.clone(),
            object: to.api_name.clone(),
            on: column(from_alias, lookup),
            on_key: column(from_alias, &key_column(lookup)),
            rollup: None,
        });
        alias
    }

    /// The primary table with every join the resolved paths need.
    pub async fn plan(&self, session: &WorkspaceSession) -> Result<DataFrame, QueryError> {
        let root = self.root_table(session).await?;
        self.plan_on(session, root).await
    }

    /// The primary table alone, under the alias every resolved path uses.
    pub async fn root_table(&self, session: &WorkspaceSession) -> Result<DataFrame, QueryError> {
        let ctx = session.context();
        Ok(ctx.table(self.root.api_name.as_str()).await?.alias(ROOT)?)
    }

    /// Whether `expr` reads only the primary record's own columns (no joined ones). A
    /// related filter's subquery counts as the primary's: it is correlated only to its id.
    pub fn reads_only_root(expr: &Expr) -> bool {
        expr.column_refs()
            .iter()
            .all(|c| c.relation.as_ref().is_some_and(|r| r.table() == ROOT))
    }

    /// Every join's first hop follows the same lookup of the primary, and none is a
    /// rollup: that lookup's name, the one key all the joined columns depend on.
    pub fn single_lookup(&self) -> Option<&str> {
        let mut first = None;
        for j in &self.joins {
            if j.rollup.is_some() {
                return None;
            }
            let hop = j.prefix.split('.').next()?;
            match first {
                None => first = Some(hop),
                Some(f) if f == hop => {}
                Some(_) => return None,
            }
        }
        first
    }

    /// Whether the tables have key columns (see [`crate::keys`]).
    pub fn is_keyed(&self) -> bool {
        self.keyed
    }

    /// Whether the resolved paths need any join.
    pub fn has_joins(&self) -> bool {
        !self.joins.is_empty()
    }

    /// `root` (the primary's rows under its alias, filtered, cut or aggregated beforehand)
    /// with every join the resolved paths need. Each join adds at most one row per row of
    /// `root` (ids are unique; a rollup is one row per parent), so whatever was cut before
    /// stays cut.
    pub async fn plan_on(
        &self,
        session: &WorkspaceSession,
        root: DataFrame,
    ) -> Result<DataFrame, QueryError> {
        let ctx = session.context();
        let mut df = root;
        // Keyed tables join on integer keys: the same matches as on the id texts, found
        // without hashing and comparing 36-character strings.
        let id = if self.keyed {
            key_column("id")
        } else {
            "id".into()
        };
        for j in &self.joins {
            let table = ctx.table(j.object.as_str()).await?;
            let (right, key) = match &j.rollup {
                None => (table, id.as_str()),
                Some(r) => {
                    let input = |n: &Option<String>| {
                        Expr::Column(Column::from_name(n.clone().unwrap_or_default()))
                    };
                    let agg = match r.function {
                        RollupFunction::Count => count(lit(1)),
                        RollupFunction::Sum => sum(input(&r.field)),
                        RollupFunction::Min => min(input(&r.field)),
                        RollupFunction::Max => max(input(&r.field)),
                    };
                    let via = if self.keyed {
                        key_column(&r.via)
                    } else {
                        r.via.clone()
                    };
                    let via = Expr::Column(Column::from_name(via));
                    let per_parent = table
                        .filter(via.clone().is_not_null())?
                        .aggregate(vec![via.alias("__parent")], vec![agg.alias("__value")])?;
                    (per_parent, "__parent")
                }
            };
            let right = right.alias(&j.alias)?;
            let on = if self.keyed { &j.on_key } else { &j.on };
            df = df.join_on(
                right,
                JoinType::Left,
                [on.clone().eq(column(&j.alias, key))],
            )?;
        }
        Ok(df)
    }
}

fn unknown(part: &str, path: &str, name: &str, object: &ObjectDef) -> QueryError {
    let mut names: Vec<&str> = vec!["id", "created_at", "updated_at"];
    names.extend(object.fields.iter().map(|f| f.api_name.as_str()));
    QueryError::spec(
        part,
        format!(
            "`{path}`: `{}` has no field `{name}` (it has: {})",
            object.api_name,
            names.join(", ")
        ),
    )
}
