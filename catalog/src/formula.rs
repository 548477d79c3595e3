//! Formula fields: an expression over a record's own fields, such as
//! `IF(stage = 'closed_won', amount, 0)` or `amount * probability / 100`.
//!
//! Parsing is sqlparser's (the parser DataFusion uses), so formulas read like SQL expressions;
//! what it accepts is then narrowed to a small, typed language: arithmetic, comparisons,
//! `AND`/`OR`/`NOT`, `IS [NOT] NULL`, `CASE`, and the functions listed in [`Func`]. Nulls
//! propagate as in SQL; division by zero yields null.
//!
//! ```
//! use oneo_catalog::formula::{Formula, FormulaType};
//! use oneo_catalog::Value;
//!
//! let f = Formula::parse("IF(amount > 100, 'big', 'small')").unwrap();
//! let ty = f.check(&|name| match name {
//!     "amount" => Ok(FormulaType::Number),
//!     other => Err(format!("unknown field `{other}`")),
//! });
//! assert_eq!(ty, Ok(FormulaType::Text));
//! let v = f.eval(&|_| Value::Decimal(250.into()));
//! assert_eq!(v, Value::Text("big".into()));
//! ```

use std::str::FromStr;

use chrono::{Datelike, NaiveDate, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use sqlparser::ast::{self as sql, BinaryOperator, UnaryOperator};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::field::{FieldDef, FieldType, RollupFunction};
use crate::value::Value;

/// The type a formula yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormulaType {
    Number,
    Text,
    Boolean,
    Date,
    Datetime,
}

impl FormulaType {
    fn name(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Text => "text",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::Datetime => "datetime",
        }
    }
}

/// The functions a formula may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    If,
    Coalesce,
    Round,
    Abs,
    Upper,
    Lower,
    Concat,
    Length,
    Year,
    Month,
    DaysBetween,
    Today,
}

impl Func {
    const NAMES: &'static str =
        "IF, COALESCE, ROUND, ABS, UPPER, LOWER, CONCAT, LENGTH, YEAR, MONTH, DAYS_BETWEEN, TODAY";

    fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "if" => Self::If,
            "coalesce" => Self::Coalesce,
            "round" => Self::Round,
            "abs" => Self::Abs,
            "upper" => Self::Upper,
            "lower" => Self::Lower,
            "concat" => Self::Concat,
            "length" => Self::Length,
            "year" => Self::Year,
            "month" => Self::Month,
            "days_between" => Self::DaysBetween,
            "today" => Self::Today,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Concat,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

/// A checked formula expression tree; later crates compile it to DataFusion expressions.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Field(String),
    Number(Decimal),
    Text(String),
    Bool(bool),
    Null,
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary(Box<Expr>, Op, Box<Expr>),
    IsNull(Box<Expr>, bool),
    Call(Func, Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    pub expr: Expr,
}

const MAX_FORMULA_LENGTH: usize = 4_000;

impl Formula {
    pub fn parse(src: &str) -> Result<Self, String> {
        if src.trim().is_empty() || src.len() > MAX_FORMULA_LENGTH {
            return Err(format!(
                "a formula must be 1 to {MAX_FORMULA_LENGTH} characters"
            ));
        }
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect)
            .with_recursion_limit(64)
            .try_with_sql(src)
            .map_err(|e| format!("can't read the formula: {e}"))?;
        let ast = parser
            .parse_expr()
            .map_err(|e| format!("can't read the formula: {e}"))?;
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(format!(
                "unexpected `{}` after the end of the formula",
                next.token
            ));
        }
        Ok(Self {
            expr: convert(&ast)?,
        })
    }

    /// Field names the formula reads, in order of first use.
    pub fn field_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_fields(&self.expr, &mut out);
        out
    }

    /// Type-checks the formula; `operand` gives each field's type or says why it can't be used.
    pub fn check(
        &self,
        operand: &dyn Fn(&str) -> Result<FormulaType, String>,
    ) -> Result<FormulaType, String> {
        type_of(&self.expr, operand)?.ok_or_else(|| "the formula is always null".to_string())
    }

    /// Evaluates the formula; `field` gives each operand's value.
    pub fn eval(&self, field: &dyn Fn(&str) -> Value) -> Value {
        eval(&self.expr, field)
    }
}

/// The formula type of one of an object's fields, for type-checking a formula over them.
pub fn operand_type(fields: &[FieldDef], name: &str) -> Result<FormulaType, String> {
    let f = fields
        .iter()
        .find(|f| f.api_name == name)
        .ok_or_else(|| format!("unknown field `{name}`"))?;
    Ok(match f.field_type {
        FieldType::Number | FieldType::Currency | FieldType::Percent | FieldType::Autonumber => {
            FormulaType::Number
        }
        FieldType::Text
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Url
        | FieldType::Picklist
        | FieldType::Lookup => FormulaType::Text,
        FieldType::Date => FormulaType::Date,
        FieldType::Datetime => FormulaType::Datetime,
        FieldType::Boolean => FormulaType::Boolean,
        FieldType::Multiselect => {
            return Err(format!(
                "multiselect field `{name}` can't be used in a formula"
            ));
        }
        FieldType::Formula | FieldType::Rollup => f
            .result_type
            .or(match f.rollup.as_ref().map(|r| r.function) {
                Some(RollupFunction::Count | RollupFunction::Sum) => Some(FormulaType::Number),
                _ => None,
            })
            .ok_or_else(|| format!("field `{name}` has no known result type"))?,
    })
}

fn collect_fields(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::Field(n) if !out.contains(n) => out.push(n.clone()),
        Expr::Neg(x) | Expr::Not(x) | Expr::IsNull(x, _) => collect_fields(x, out),
        Expr::Binary(a, _, b) => {
            collect_fields(a, out);
            collect_fields(b, out);
        }
        Expr::Call(_, args) => args.iter().for_each(|a| collect_fields(a, out)),
        _ => {}
    }
}

fn convert(e: &sql::Expr) -> Result<Expr, String> {
    use sql::Expr as S;
    Ok(match e {
        S::Identifier(id) => Expr::Field(id.value.clone()),
        S::Nested(inner) => convert(inner)?,
        S::Value(v) => match &v.value {
            sql::Value::Number(n, _) => Expr::Number(
                Decimal::from_str(n)
                    .or_else(|_| Decimal::from_scientific(n))
                    .map_err(|_| format!("bad number {n}"))?,
            ),
            sql::Value::SingleQuotedString(s) => Expr::Text(s.clone()),
            sql::Value::Boolean(b) => Expr::Bool(*b),
            sql::Value::Null => Expr::Null,
            other => {
                return Err(format!(
                    "`{other}` is not a formula value; use numbers, 'text', TRUE, FALSE or NULL"
                ));
            }
        },
        S::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => Expr::Neg(Box::new(convert(expr)?)),
        S::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => convert(expr)?,
        S::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Expr::Not(Box::new(convert(expr)?)),
        S::IsNull(x) => Expr::IsNull(Box::new(convert(x)?), false),
        S::IsNotNull(x) => Expr::IsNull(Box::new(convert(x)?), true),
        S::BinaryOp { left, op, right } => {
            let op = match op {
                BinaryOperator::Plus => Op::Add,
                BinaryOperator::Minus => Op::Sub,
                BinaryOperator::Multiply => Op::Mul,
                BinaryOperator::Divide => Op::Div,
                BinaryOperator::StringConcat => Op::Concat,
                BinaryOperator::Eq => Op::Eq,
                BinaryOperator::NotEq => Op::Ne,
                BinaryOperator::Lt => Op::Lt,
                BinaryOperator::LtEq => Op::Le,
                BinaryOperator::Gt => Op::Gt,
                BinaryOperator::GtEq => Op::Ge,
                BinaryOperator::And => Op::And,
                BinaryOperator::Or => Op::Or,
                other => return Err(format!("operator `{other}` is not available in formulas")),
            };
            Expr::Binary(Box::new(convert(left)?), op, Box::new(convert(right)?))
        }
        S::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            // CASE is sugar for nested IFs, evaluated first-match-wins.
            let mut acc = match else_result {
                Some(e) => convert(e)?,
                None => Expr::Null,
            };
            for when in conditions.iter().rev() {
                let cond = match operand {
                    Some(o) => Expr::Binary(
                        Box::new(convert(o)?),
                        Op::Eq,
                        Box::new(convert(&when.condition)?),
                    ),
                    None => convert(&when.condition)?,
                };
                acc = Expr::Call(Func::If, vec![cond, convert(&when.result)?, acc]);
            }
            acc
        }
        S::Function(f) => {
            let name = f.name.to_string();
            let func = Func::from_name(&name)
                .ok_or_else(|| format!("unknown function `{name}`; available: {}", Func::NAMES))?;
            let args = match &f.args {
                sql::FunctionArguments::None => Vec::new(),
                sql::FunctionArguments::List(list)
                    if list.duplicate_treatment.is_none() && list.clauses.is_empty() =>
                {
                    list.args
                        .iter()
                        .map(|a| match a {
                            sql::FunctionArg::Unnamed(sql::FunctionArgExpr::Expr(x)) => convert(x),
                            other => Err(format!("`{other}` is not a formula argument")),
                        })
                        .collect::<Result<_, _>>()?
                }
                _ => return Err(format!("`{name}` takes plain arguments")),
            };
            Expr::Call(func, args)
        }
        other => return Err(format!("`{other}` is not available in formulas")),
    })
}

type Ty = Option<FormulaType>;

fn same(a: Ty, b: Ty) -> Result<Ty, ()> {
    match (a, b) {
        (None, x) | (x, None) => Ok(x),
        (Some(x), Some(y)) if x == y => Ok(Some(x)),
        _ => Err(()),
    }
}

fn name(t: Ty) -> &'static str {
    t.map_or("null", FormulaType::name)
}

fn expect(t: Ty, want: FormulaType, what: &str) -> Result<(), String> {
    if t.is_none() || t == Some(want) {
        Ok(())
    } else {
        Err(format!("{what} needs {}, got {}", want.name(), name(t)))
    }
}

fn type_of(e: &Expr, operand: &dyn Fn(&str) -> Result<FormulaType, String>) -> Result<Ty, String> {
    use FormulaType as T;
    let ty = |x: &Expr| type_of(x, operand);
    Ok(match e {
        Expr::Field(n) => Some(operand(n)?),
        Expr::Number(_) => Some(T::Number),
        Expr::Text(_) => Some(T::Text),
        Expr::Bool(_) => Some(T::Boolean),
        Expr::Null => None,
        Expr::Neg(x) => {
            expect(ty(x)?, T::Number, "`-`")?;
            Some(T::Number)
        }
        Expr::Not(x) => {
            expect(ty(x)?, T::Boolean, "NOT")?;
            Some(T::Boolean)
        }
        Expr::IsNull(x, _) => {
            ty(x)?;
            Some(T::Boolean)
        }
        Expr::Binary(a, op, b) => {
            let (ta, tb) = (ty(a)?, ty(b)?);
            match op {
                Op::Add | Op::Sub | Op::Mul | Op::Div => {
                    if !matches!(ta, None | Some(T::Number))
                        || !matches!(tb, None | Some(T::Number))
                    {
                        return Err(format!(
                            "`{op:?}` needs numbers, got {} and {}",
                            name(ta),
                            name(tb)
                        )
                        .to_lowercase());
                    }
                    Some(T::Number)
                }
                Op::Concat => Some(T::Text),
                Op::And | Op::Or => {
                    expect(ta, T::Boolean, "AND/OR")?;
                    expect(tb, T::Boolean, "AND/OR")?;
                    Some(T::Boolean)
                }
                Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                    same(ta, tb)
                        .map_err(|_| format!("can't compare {} with {}", name(ta), name(tb)))?;
                    Some(T::Boolean)
                }
            }
        }
        Expr::Call(f, args) => call_type(*f, args, &ty)?,
    })
}

fn call_type(
    f: Func,
    args: &[Expr],
    ty: &dyn Fn(&Expr) -> Result<Ty, String>,
) -> Result<Ty, String> {
    use FormulaType as T;
    let arity = |lo: usize, hi: usize, usage: &str| {
        if args.len() < lo || args.len() > hi {
            Err(format!("use {usage}"))
        } else {
            Ok(())
        }
    };
    let types: Vec<Ty> = args.iter().map(ty).collect::<Result<_, _>>()?;
    Ok(match f {
        Func::If => {
            arity(3, 3, "IF(condition, then, else)")?;
            expect(types[0], T::Boolean, "IF's condition")?;
            same(types[1], types[2]).map_err(|_| {
                format!(
                    "IF's branches must have one type, got {} and {}",
                    name(types[1]),
                    name(types[2])
                )
            })?
        }
        Func::Coalesce => {
            arity(1, 16, "COALESCE(value, fallback, ...)")?;
            types
                .iter()
                .try_fold(None, |acc, t| same(acc, *t))
                .map_err(|_| "COALESCE's values must have one type".to_string())?
        }
        Func::Round => {
            arity(1, 2, "ROUND(number) or ROUND(number, digits)")?;
            types
                .iter()
                .try_for_each(|t| expect(*t, T::Number, "ROUND"))?;
            Some(T::Number)
        }
        Func::Abs => {
            arity(1, 1, "ABS(number)")?;
            expect(types[0], T::Number, "ABS")?;
            Some(T::Number)
        }
        Func::Upper | Func::Lower => {
            arity(1, 1, "UPPER(text) or LOWER(text)")?;
            expect(types[0], T::Text, "UPPER/LOWER")?;
            Some(T::Text)
        }
        Func::Length => {
            arity(1, 1, "LENGTH(text)")?;
            expect(types[0], T::Text, "LENGTH")?;
            Some(T::Number)
        }
        Func::Concat => {
            arity(1, 64, "CONCAT(value, ...)")?;
            Some(T::Text)
        }
        Func::Year | Func::Month => {
            arity(1, 1, "YEAR(date) or MONTH(date)")?;
            if !matches!(types[0], None | Some(T::Date | T::Datetime)) {
                return Err(format!(
                    "YEAR/MONTH need a date or datetime, got {}",
                    name(types[0])
                ));
            }
            Some(T::Number)
        }
        Func::DaysBetween => {
            arity(2, 2, "DAYS_BETWEEN(start, end)")?;
            for t in &types {
                if !matches!(t, None | Some(T::Date | T::Datetime)) {
                    return Err(format!(
                        "DAYS_BETWEEN needs dates or datetimes, got {}",
                        name(*t)
                    ));
                }
            }
            Some(T::Number)
        }
        Func::Today => {
            arity(0, 0, "TODAY()")?;
            Some(T::Date)
        }
    })
}

fn as_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Decimal(d) => Some(*d),
        Value::Integer(i) => Some(Decimal::from(*i)),
        _ => None,
    }
}

fn as_date(v: &Value) -> Option<NaiveDate> {
    match v {
        Value::Date(d) => Some(*d),
        Value::Datetime(t) => Some(t.date_naive()),
        _ => None,
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Text(s) => Some(s.clone()),
        Value::Id(id) => Some(id.to_string()),
        other => other.to_sql_text(),
    }
}

fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Boolean(b) => Some(*b),
        _ => None,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    if let (Some(x), Some(y)) = (as_decimal(a), as_decimal(b)) {
        return Some(x.cmp(&y));
    }
    match (a, b) {
        (Value::Datetime(x), Value::Datetime(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Boolean(x), Value::Boolean(y)) => Some(x.cmp(y)),
        (Value::Null, _) | (_, Value::Null) => None,
        _ => Some(as_text(a)?.cmp(&as_text(b)?)),
    }
}

fn num(d: Option<Decimal>) -> Value {
    d.map_or(Value::Null, |d| Value::Decimal(d.normalize()))
}

fn eval(e: &Expr, field: &dyn Fn(&str) -> Value) -> Value {
    let ev = |x: &Expr| eval(x, field);
    match e {
        Expr::Field(n) => field(n),
        Expr::Number(d) => Value::Decimal(*d),
        Expr::Text(s) => Value::Text(s.clone()),
        Expr::Bool(b) => Value::Boolean(*b),
        Expr::Null => Value::Null,
        Expr::Neg(x) => num(as_decimal(&ev(x)).map(|d| -d)),
        Expr::Not(x) => truth(&ev(x)).map_or(Value::Null, |b| Value::Boolean(!b)),
        Expr::IsNull(x, negated) => Value::Boolean(ev(x).is_null() != *negated),
        Expr::Binary(a, op, b) => {
            let (va, vb) = (ev(a), ev(b));
            match op {
                Op::And => match (truth(&va), truth(&vb)) {
                    (Some(false), _) | (_, Some(false)) => Value::Boolean(false),
                    (Some(true), Some(true)) => Value::Boolean(true),
                    _ => Value::Null,
                },
                Op::Or => match (truth(&va), truth(&vb)) {
                    (Some(true), _) | (_, Some(true)) => Value::Boolean(true),
                    (Some(false), Some(false)) => Value::Boolean(false),
                    _ => Value::Null,
                },
                Op::Concat => match (as_text(&va), as_text(&vb)) {
                    (Some(x), Some(y)) => Value::Text(x + &y),
                    _ => Value::Null,
                },
                Op::Add | Op::Sub | Op::Mul | Op::Div => {
                    let (Some(x), Some(y)) = (as_decimal(&va), as_decimal(&vb)) else {
                        return Value::Null;
                    };
                    num(match op {
                        Op::Add => x.checked_add(y),
                        Op::Sub => x.checked_sub(y),
                        Op::Mul => x.checked_mul(y),
                        _ => x.checked_div(y),
                    })
                }
                cmp_op => match compare(&va, &vb) {
                    None => Value::Null,
                    Some(o) => Value::Boolean(match cmp_op {
                        Op::Eq => o.is_eq(),
                        Op::Ne => o.is_ne(),
                        Op::Lt => o.is_lt(),
                        Op::Le => o.is_le(),
                        Op::Gt => o.is_gt(),
                        _ => o.is_ge(),
                    }),
                },
            }
        }
        Expr::Call(f, args) => call(*f, args, &ev),
    }
}

fn call(f: Func, args: &[Expr], ev: &dyn Fn(&Expr) -> Value) -> Value {
    let arg = |i: usize| args.get(i).map_or(Value::Null, ev);
    match f {
        Func::If => {
            if truth(&arg(0)) == Some(true) {
                arg(1)
            } else {
                arg(2)
            }
        }
        Func::Coalesce => args
            .iter()
            .map(ev)
            .find(|v| !v.is_null())
            .unwrap_or(Value::Null),
        Func::Round => {
            let digits = if args.len() > 1 {
                as_decimal(&arg(1)).and_then(|d| d.to_u32())
            } else {
                Some(0)
            };
            match (as_decimal(&arg(0)), digits) {
                (Some(x), Some(n)) => num(Some(
                    x.round_dp_with_strategy(n.min(28), RoundingStrategy::MidpointAwayFromZero),
                )),
                _ => Value::Null,
            }
        }
        Func::Abs => num(as_decimal(&arg(0)).map(|d| d.abs())),
        Func::Upper => as_text(&arg(0)).map_or(Value::Null, |s| Value::Text(s.to_uppercase())),
        Func::Lower => as_text(&arg(0)).map_or(Value::Null, |s| Value::Text(s.to_lowercase())),
        Func::Length => as_text(&arg(0)).map_or(Value::Null, |s| {
            Value::Decimal(Decimal::from(s.chars().count()))
        }),
        // CONCAT skips nulls, as in SQL.
        Func::Concat => Value::Text(args.iter().filter_map(|a| as_text(&ev(a))).collect()),
        Func::Year => {
            as_date(&arg(0)).map_or(Value::Null, |d| Value::Decimal(Decimal::from(d.year())))
        }
        Func::Month => {
            as_date(&arg(0)).map_or(Value::Null, |d| Value::Decimal(Decimal::from(d.month())))
        }
        Func::DaysBetween => match (as_date(&arg(0)), as_date(&arg(1))) {
            (Some(a), Some(b)) => Value::Decimal(Decimal::from((b - a).num_days())),
            _ => Value::Null,
        },
        Func::Today => Value::Date(Utc::now().date_naive()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(name: &str) -> Result<FormulaType, String> {
        match name {
            "amount" | "probability" => Ok(FormulaType::Number),
            "stage" | "name" => Ok(FormulaType::Text),
            "close_date" => Ok(FormulaType::Date),
            other => Err(format!("unknown field `{other}`")),
        }
    }

    #[test]
    fn type_errors_and_unknown_fields_are_refused() {
        let check = |s: &str| Formula::parse(s).and_then(|f| f.check(&types));
        assert_eq!(check("amount * probability / 100"), Ok(FormulaType::Number));
        assert!(
            check("amount + name")
                .unwrap_err()
                .contains("needs numbers")
        );
        assert!(
            check("amount + nope")
                .unwrap_err()
                .contains("unknown field `nope`")
        );
        assert!(
            check("IF(stage, 1, 2)")
                .unwrap_err()
                .contains("IF's condition")
        );
        assert!(
            check("IF(amount > 1, 1, 'x')")
                .unwrap_err()
                .contains("one type")
        );
        assert!(check("SLEEP(1)").unwrap_err().contains("unknown function"));
        assert!(check("amount; DROP TABLE x").is_err());
        assert!(check("(SELECT 1)").is_err());
        assert_eq!(
            check("CASE stage WHEN 'won' THEN amount ELSE 0 END"),
            Ok(FormulaType::Number)
        );
    }

    #[test]
    fn evaluation_follows_sql_null_rules() {
        let f = Formula::parse("amount * probability / 100").unwrap();
        let v = f.eval(&|n| match n {
            "amount" => Value::Decimal("1000.00".parse().unwrap()),
            _ => Value::Decimal("25".parse().unwrap()),
        });
        assert_eq!(v, Value::Decimal("250".parse().unwrap()));
        assert_eq!(f.eval(&|_| Value::Null), Value::Null);
        let div0 = Formula::parse("amount / 0").unwrap();
        assert_eq!(div0.eval(&|_| Value::Decimal(1.into())), Value::Null);
        let c = Formula::parse("CONCAT(name, ' (', stage, ')')").unwrap();
        assert_eq!(
            c.eval(&|n| if n == "name" {
                Value::Text("Acme".into())
            } else {
                Value::Null
            }),
            Value::Text("Acme ()".into())
        );
    }
}
