//! Evaluation with SQL's null rules: nulls propagate, AND/OR are three-valued, and division
//! by zero yields null.

use chrono::{Datelike, NaiveDate, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use super::{Expr, Func, Op};
use crate::value::Value;

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

pub(super) fn eval(e: &Expr, field: &dyn Fn(&str) -> Value) -> Value {
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
