//! The catalog's formula language compiled to DataFusion expressions, so formula fields and
//! summary formulas are computed by the engine with the same meaning the write path gives
//! them: SQL's null rules, division by zero as null, exact decimals.
//!
//! The operands are the caller's: a formula field reads the record's fields (through the
//! report's joins), a summary formula reads aggregates of the group.

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::{
    abs, character_length, coalesce, concat, date_part, lower, nullif, upper,
};
use datafusion::logical_expr::{Expr, Operator, binary_expr, cast, lit, when};
use oneo_catalog::formula::{Expr as F, Formula, FormulaType, Func, Op};
use rust_decimal::Decimal;

use crate::error::QueryError;

/// Digits a computed number may hold; decimals keep their scale through arithmetic.
const PRECISION: u8 = 38;

/// Compiles `e`; `operand` gives the expression for each name it reads, and `today` is the
/// date `TODAY()` means (the workspace's, in its time zone). `part` names the spec's place
/// for errors.
pub(crate) fn compile(
    e: &F,
    operand: &mut dyn FnMut(&str) -> Result<Expr, QueryError>,
    today: NaiveDate,
    part: &str,
) -> Result<Expr, QueryError> {
    let mut go = |x: &F| compile(x, operand, today, part);
    Ok(match e {
        F::Field(name) => operand(name)?,
        F::Number(d) => decimal(*d),
        F::Text(s) => lit(s.clone()),
        F::Bool(b) => lit(*b),
        F::Null => lit(ScalarValue::Null),
        F::Neg(x) => Expr::Negative(Box::new(go(x)?)),
        F::Not(x) => Expr::Not(Box::new(go(x)?)),
        F::IsNull(x, false) => go(x)?.is_null(),
        F::IsNull(x, true) => go(x)?.is_not_null(),
        F::Binary(a, op, b) => {
            let (a, b) = (go(a)?, go(b)?);
            match op {
                // Division by zero is null, as in the write path (the engine would fail).
                Op::Div => binary_expr(a, Operator::Divide, nullif(b, decimal(Decimal::ZERO))),
                Op::Add => binary_expr(a, Operator::Plus, b),
                Op::Sub => binary_expr(a, Operator::Minus, b),
                Op::Mul => binary_expr(a, Operator::Multiply, b),
                Op::Concat => binary_expr(a, Operator::StringConcat, b),
                Op::Eq => a.eq(b),
                Op::Ne => a.not_eq(b),
                Op::Lt => a.lt(b),
                Op::Le => a.lt_eq(b),
                Op::Gt => a.gt(b),
                Op::Ge => a.gt_eq(b),
                Op::And => a.and(b),
                Op::Or => a.or(b),
            }
        }
        F::Call(f, args) => {
            let mut compiled = Vec::with_capacity(args.len());
            for a in args {
                compiled.push(go(a)?);
            }
            call(*f, compiled, args, today, part)?
        }
    })
}

fn call(
    f: Func,
    mut args: Vec<Expr>,
    raw: &[F],
    today: NaiveDate,
    part: &str,
) -> Result<Expr, QueryError> {
    let arity = |n: usize, name: &str| {
        if args.len() == n {
            Ok(())
        } else {
            Err(QueryError::spec(
                part,
                format!("{name} takes {n} argument(s), not {}", args.len()),
            ))
        }
    };
    let whole = |x: Expr| cast(x, DataType::Decimal128(20, 0));
    Ok(match f {
        Func::If => {
            arity(3, "IF")?;
            let (c, a, b) = (args.remove(0), args.remove(0), args.remove(0));
            // A null condition takes the ELSE branch, as in the write path.
            when(c, a).otherwise(b)?
        }
        Func::Coalesce if args.is_empty() => {
            return Err(QueryError::spec(
                part,
                "COALESCE needs at least one argument",
            ));
        }
        Func::Coalesce => coalesce(args),
        Func::Round => {
            // Rounding is a rescale, which arrow does half away from zero, as the write path
            // and PostgreSQL do; it needs the digits as a constant to know the type.
            let digits = match raw.get(1) {
                None => 0,
                Some(F::Number(d)) if d.scale() == 0 && *d >= Decimal::ZERO && *d <= 18.into() => {
                    d.mantissa() as i8
                }
                Some(_) => {
                    return Err(QueryError::spec(
                        part,
                        "ROUND's digits must be a whole number from 0 to 18",
                    ));
                }
            };
            if args.is_empty() || args.len() > 2 {
                return Err(QueryError::spec(
                    part,
                    "ROUND takes a number and its digits",
                ));
            }
            cast(args.remove(0), DataType::Decimal128(PRECISION, digits))
        }
        Func::Abs => {
            arity(1, "ABS")?;
            abs(args.remove(0))
        }
        Func::Upper => {
            arity(1, "UPPER")?;
            upper(args.remove(0))
        }
        Func::Lower => {
            arity(1, "LOWER")?;
            lower(args.remove(0))
        }
        Func::Length => {
            arity(1, "LENGTH")?;
            whole(character_length(args.remove(0)))
        }
        Func::Concat => concat(args),
        Func::Year => {
            arity(1, "YEAR")?;
            whole(date_part(lit("year"), args.remove(0)))
        }
        Func::Month => {
            arity(1, "MONTH")?;
            whole(date_part(lit("month"), args.remove(0)))
        }
        Func::DaysBetween => {
            arity(2, "DAYS_BETWEEN")?;
            // Days since the epoch of each (a datetime counts by its UTC date), subtracted.
            let day = |x: Expr| cast(cast(x, DataType::Date32), DataType::Int64);
            let (a, b) = (args.remove(0), args.remove(0));
            whole(day(b) - day(a))
        }
        // Date32 counts days from 1970-01-01, which is day 719,163 of the common era.
        Func::Today => lit(ScalarValue::Date32(Some(
            today.num_days_from_ce() - 719_163,
        ))),
    })
}

/// A decimal constant with just the digits it needs, so arithmetic keeps a small scale.
fn decimal(d: Decimal) -> Expr {
    let scale = d.scale().min(PRECISION as u32) as i8;
    let digits = d
        .mantissa()
        .unsigned_abs()
        .checked_ilog10()
        .map_or(1, |n| n + 1) as u8;
    let precision = digits.max(scale as u8 + 1).min(PRECISION);
    lit(ScalarValue::Decimal128(
        Some(d.mantissa()),
        precision,
        scale,
    ))
}

/// A report's summary formulas, checked and compiled over its aggregate columns.
pub(crate) struct SummaryFormulas {
    /// Per formula, in order: its output name and expression over the value columns.
    pub compiled: Vec<(String, Expr)>,
}

/// Checks and compiles `formulas` (from `part`, e.g. `formulas`). `operands` are the
/// aggregate names a formula may read, each with its type and value column; a formula may
/// also read another formula by name, as long as none reads itself through others.
pub(crate) fn summary_formulas(
    formulas: &[crate::spec::SummaryFormula],
    operands: &[(String, FormulaType, Expr)],
    today: NaiveDate,
    part: &str,
) -> Result<SummaryFormulas, QueryError> {
    let mut parsed = Vec::with_capacity(formulas.len());
    for (k, f) in formulas.iter().enumerate() {
        let at = format!("{part}[{k}].formula");
        let p = Formula::parse(&f.formula).map_err(|m| QueryError::spec(&at, m))?;
        if operands.iter().any(|(n, _, _)| *n == f.name) {
            return Err(QueryError::spec(
                format!("{part}[{k}].as"),
                format!("`{}` is already an aggregate's name", f.name),
            ));
        }
        if formulas[..k].iter().any(|g| g.name == f.name) {
            return Err(QueryError::spec(
                format!("{part}[{k}].as"),
                format!("two formulas are named `{}`", f.name),
            ));
        }
        parsed.push(p);
    }
    let mut set = Compiler {
        formulas,
        parsed: &parsed,
        operands,
        done: vec![None; formulas.len()],
        today,
        part,
    };
    let mut compiled = Vec::with_capacity(formulas.len());
    for (k, f) in formulas.iter().enumerate() {
        let (expr, ty) = set.formula(k, &mut Vec::new())?;
        if ty != FormulaType::Number {
            return Err(QueryError::spec(
                format!("{part}[{k}].formula"),
                format!(
                    "a summary formula yields a number; this one yields {}",
                    format!("{ty:?}").to_lowercase()
                ),
            ));
        }
        let scale = f.scale.unwrap_or(2);
        if scale > 10 {
            return Err(QueryError::spec(
                format!("{part}[{k}].scale"),
                "the scale is 0 to 10 digits after the point",
            ));
        }
        compiled.push((
            f.name.clone(),
            cast(expr, DataType::Decimal128(PRECISION, scale as i8)),
        ));
    }
    Ok(SummaryFormulas { compiled })
}

struct Compiler<'s> {
    formulas: &'s [crate::spec::SummaryFormula],
    parsed: &'s [Formula],
    operands: &'s [(String, FormulaType, Expr)],
    done: Vec<Option<(Expr, FormulaType)>>,
    today: NaiveDate,
    part: &'s str,
}

impl Compiler<'_> {
    /// Formula `k`, compiled with the formulas it reads inlined; `stack` holds the formulas
    /// being compiled around it, to name a cycle.
    fn formula(
        &mut self,
        k: usize,
        stack: &mut Vec<usize>,
    ) -> Result<(Expr, FormulaType), QueryError> {
        if let Some(done) = &self.done[k] {
            return Ok(done.clone());
        }
        let at = format!("{}[{k}].formula", self.part);
        if let Some(start) = stack.iter().position(|&s| s == k) {
            let mut names: Vec<&str> = stack[start..]
                .iter()
                .map(|&s| self.formulas[s].name.as_str())
                .collect();
            names.push(&self.formulas[k].name);
            let first = stack[start];
            return Err(QueryError::spec(
                format!("{}[{first}].formula", self.part),
                format!("the formulas are cyclic: {}", names.join(" → ")),
            ));
        }
        stack.push(k);
        // Types first, so that a wrong operand is named before anything is compiled.
        let mut types = std::collections::HashMap::new();
        let mut exprs = std::collections::HashMap::new();
        for name in self.parsed[k].field_names() {
            if let Some((_, ty, e)) = self.operands.iter().find(|(n, _, _)| *n == name) {
                types.insert(name.clone(), *ty);
                exprs.insert(name, e.clone());
            } else if let Some(m) = self.formulas.iter().position(|f| f.name == name) {
                let (e, ty) = self.formula(m, stack)?;
                types.insert(name.clone(), ty);
                exprs.insert(name, e);
            } else {
                let mut known: Vec<&str> =
                    self.operands.iter().map(|(n, _, _)| n.as_str()).collect();
                known.extend(self.formulas.iter().map(|f| f.name.as_str()));
                return Err(QueryError::spec(
                    &at,
                    format!(
                        "`{name}` is not an aggregate or formula of this report (they are: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
        stack.pop();
        let ty = self.parsed[k]
            .check(&|n| {
                types
                    .get(n)
                    .copied()
                    .ok_or_else(|| format!("unknown `{n}`"))
            })
            .map_err(|m| QueryError::spec(&at, m))?;
        let mut operand = |n: &str| {
            exprs
                .get(n)
                .cloned()
                .ok_or_else(|| QueryError::spec(&at, format!("unknown `{n}`")))
        };
        let expr = compile(&self.parsed[k].expr, &mut operand, self.today, &at)?;
        self.done[k] = Some((expr.clone(), ty));
        Ok((expr, ty))
    }
}

/// The formula type of an aggregate's values, from its column kind.
pub(crate) fn kind_type(kind: &str) -> FormulaType {
    match kind {
        "date" => FormulaType::Date,
        "datetime" => FormulaType::Datetime,
        "boolean" => FormulaType::Boolean,
        "integer" | "decimal" | "number" | "currency" | "percent" | "autonumber" => {
            FormulaType::Number
        }
        _ => FormulaType::Text,
    }
}
