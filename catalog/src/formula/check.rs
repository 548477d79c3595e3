//! Type checking: every operator and function gets operands of the types it takes.

use super::{Expr, FormulaType, Func, Op};

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

pub(super) fn type_of(
    e: &Expr,
    operand: &dyn Fn(&str) -> Result<FormulaType, String>,
) -> Result<Ty, String> {
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
