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

mod check;
mod eval;

use std::str::FromStr;

use rust_decimal::Decimal;
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
        check::type_of(&self.expr, operand)?.ok_or_else(|| "the formula is always null".to_string())
    }

    /// Evaluates the formula; `field` gives each operand's value.
    pub fn eval(&self, field: &dyn Fn(&str) -> Value) -> Value {
        eval::eval(&self.expr, field)
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
        // `won.sum_amount`: a name with dots, which only a joined report's formulas resolve.
        S::CompoundIdentifier(parts) => Expr::Field(
            parts
                .iter()
                .map(|p| p.value.as_str())
                .collect::<Vec<_>>()
                .join("."),
        ),
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
