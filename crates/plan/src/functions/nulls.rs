//! NULL handling: COALESCE, IFNULL, NULLIF.
//!
//! These are generic in ksqlDB (`T COALESCE(T, T...)`): all arguments must have the same type,
//! NULL literals fit any, and the result has the first argument's type.

use super::sig::{sig_r, var_r, Ret, Udf, P};
use super::ScalarFunction;
use crate::value::Value;

pub(super) fn register(out: &mut Vec<ScalarFunction>) {
    let t = || P::Generic('T');
    out.push(
        Udf::new(
            "COALESCE",
            "COALESCE",
            "The first non-NULL argument.",
            vec![var_r(vec![t(), t()], Ret::Arg(0))],
        )
        .build(|args, _| {
            Ok(args
                .iter()
                .find(|v| !v.is_null())
                .cloned()
                .unwrap_or(Value::Null))
        }),
    );
    out.push(
        Udf::new(
            "IFNULL",
            "IFNULL",
            "The first argument, or the second when it is NULL.",
            vec![sig_r(vec![t(), t()], Ret::Arg(0))],
        )
        .build(|args, _| {
            Ok(if args[0].is_null() {
                args[1].clone()
            } else {
                args[0].clone()
            })
        }),
    );
    out.push(
        Udf::new(
            "NULLIF",
            "NULLIF",
            "NULL when both arguments are equal, else the first.",
            vec![sig_r(vec![t(), t()], Ret::Arg(0))],
        )
        .build(|args, _| {
            Ok(if args[0] == args[1] {
                Value::Null
            } else {
                args[0].clone()
            })
        }),
    );
}

#[cfg(test)]
mod tests {
    use crate::functions::FunctionRegistry;
    use runnel_sql::SqlType;

    #[test]
    fn resolution() {
        let reg = FunctionRegistry::builtin();
        let coalesce = reg.scalar("COALESCE").unwrap();
        let err = (coalesce.resolve)(&[]).unwrap_err();
        assert!(
            err.starts_with("Function 'COALESCE' does not accept parameters ()"),
            "{err}"
        );
        let r = (coalesce.resolve)(&[SqlType::Int, SqlType::Int, SqlType::Custom("NULL".into())])
            .unwrap();
        assert_eq!(r.return_type, SqlType::Int);
        assert_eq!(r.arg_types[2], SqlType::Int);
        let ifnull = reg.scalar("IFNULL").unwrap();
        assert!((ifnull.resolve)(&[SqlType::String, SqlType::Int]).is_err());
        let r = (ifnull.resolve)(&[SqlType::Bigint, SqlType::Int]).unwrap();
        assert_eq!(r.arg_types, vec![SqlType::Bigint, SqlType::Bigint]);
    }
}
