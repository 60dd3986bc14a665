//! Array and map functions.
//!
//! Element types are generic (`ARRAY<T>`), so results keep the argument's element type. Sorting
//! and MIN/MAX order values naturally (strings by UTF-16 code unit, like Java) with NULLs last;
//! set operations keep the first occurrence of each element in input order.

use super::math::{compare_nullable, compare_values};
use super::sig::{bad_arg, sig, sig_r, strict, Ret, Udf, P};
use super::ScalarFunction;
use crate::value::Value;
use runnel_sql::{SqlType, StructField};

fn t() -> P {
    P::Generic('T')
}

fn at() -> P {
    P::array(t())
}

fn items(v: &Value) -> Result<&[Value], String> {
    match v {
        Value::Array(xs) => Ok(xs),
        other => Err(bad_arg("array function", other)),
    }
}

fn entries(v: &Value) -> Result<&[(Value, Value)], String> {
    match v {
        Value::Map(xs) => Ok(xs),
        other => Err(bad_arg("map function", other)),
    }
}

fn distinct(xs: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for x in xs {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn entries_type(args: &[SqlType]) -> Result<SqlType, String> {
    match args.first() {
        Some(SqlType::Map(k, v)) => Ok(SqlType::Array(Box::new(SqlType::Struct(vec![
            StructField::new("K", (**k).clone()),
            StructField::new("V", (**v).clone()),
        ])))),
        _ => Err("ENTRIES expects a map".into()),
    }
}

fn as_map_type(args: &[SqlType]) -> Result<SqlType, String> {
    match (args.first(), args.get(1)) {
        (Some(SqlType::Array(k)), Some(SqlType::Array(v))) => {
            Ok(SqlType::Map(k.clone(), v.clone()))
        }
        _ => Err("AS_MAP expects two arrays".into()),
    }
}

fn map_keys_type(args: &[SqlType]) -> Result<SqlType, String> {
    match args.first() {
        Some(SqlType::Map(k, _)) => Ok(SqlType::Array(k.clone())),
        _ => Err("MAP_KEYS expects a map".into()),
    }
}

fn map_values_type(args: &[SqlType]) -> Result<SqlType, String> {
    match args.first() {
        Some(SqlType::Map(_, v)) => Ok(SqlType::Array(v.clone())),
        _ => Err("MAP_VALUES expects a map".into()),
    }
}

pub(super) fn register(out: &mut Vec<ScalarFunction>) {
    use SqlType::{Boolean, Int, String as Str};
    out.push(
        Udf::new(
            "ARRAY_CONCAT",
            "array_concat",
            "Concatenates two arrays.",
            vec![sig_r(vec![at(), at()], Ret::Arg(0))],
        )
        .build(|args, _| {
            if args.iter().all(Value::is_null) {
                return Ok(Value::Null);
            }
            let mut v = Vec::new();
            for a in args.iter().filter(|a| !a.is_null()) {
                v.extend_from_slice(items(a)?);
            }
            Ok(Value::Array(v))
        }),
    );
    out.push(
        Udf::new(
            "ARRAY_CONTAINS",
            "array_contains",
            "Whether an array contains a value.",
            vec![sig(vec![at(), t()], Boolean)],
        )
        .build(|args, _| match &args[0] {
            Value::Null => Ok(Value::Boolean(false)),
            a => Ok(Value::Boolean(items(a)?.contains(&args[1]))),
        }),
    );
    out.push(
        Udf::new(
            "ARRAY_DISTINCT",
            "array_distinct",
            "The distinct elements of an array.",
            vec![sig_r(vec![at()], Ret::Arg(0))],
        )
        .build(|args, _| {
            strict(args, |a| {
                Ok(Value::Array(distinct(items(&a[0])?.iter().cloned())))
            })
        }),
    );
    out.push(
        Udf::new(
            "ARRAY_EXCEPT",
            "array_except",
            "Distinct elements of the first array not in the second.",
            vec![sig_r(vec![at(), at()], Ret::Arg(0))],
        )
        .build(|args, _| {
            strict(args, |a| {
                let other = items(&a[1])?;
                Ok(Value::Array(distinct(
                    items(&a[0])?.iter().filter(|x| !other.contains(x)).cloned(),
                )))
            })
        }),
    );
    out.push(
        Udf::new(
            "ARRAY_INTERSECT",
            "array_intersect",
            "Distinct elements in both arrays.",
            vec![sig_r(vec![at(), at()], Ret::Arg(0))],
        )
        .build(|args, _| {
            strict(args, |a| {
                let other = items(&a[1])?;
                Ok(Value::Array(distinct(
                    items(&a[0])?.iter().filter(|x| other.contains(x)).cloned(),
                )))
            })
        }),
    );
    out.push(
        Udf::new(
            "ARRAY_UNION",
            "array_union",
            "Distinct elements of either array.",
            vec![sig_r(vec![at(), at()], Ret::Arg(0))],
        )
        .build(|args, _| {
            strict(args, |a| {
                Ok(Value::Array(distinct(
                    items(&a[0])?.iter().chain(items(&a[1])?).cloned(),
                )))
            })
        }),
    );
    out.push(
        Udf::new(
            "ARRAY_JOIN",
            "array_join",
            "Joins the elements of an array into a string.",
            vec![sig(vec![at()], Str), sig(vec![at(), P::String], Str)],
        )
        .build(|args, _| {
            if args[0].is_null() {
                return Ok(Value::Null);
            }
            let sep = match args.get(1) {
                None => ",",
                Some(Value::String(s)) => s.as_str(),
                Some(_) => "",
            };
            let parts: Vec<String> = items(&args[0])?.iter().map(|v| v.to_string()).collect();
            Ok(Value::String(parts.join(sep)))
        }),
    );
    out.push(
        Udf::new(
            "ARRAY_LENGTH",
            "array_length",
            "The number of elements in an array.",
            vec![sig(vec![at()], Int)],
        )
        .build(|args, _| strict(args, |a| Ok(Value::Int(items(&a[0])?.len() as i32)))),
    );
    for (name, display, max) in [
        ("ARRAY_MAX", "array_max", true),
        ("ARRAY_MIN", "array_min", false),
    ] {
        out.push(
            Udf::new(
                name,
                display,
                "The extreme non-NULL element of an array.",
                vec![sig_r(vec![at()], Ret::Elem(0))],
            )
            .build(move |args, _| {
                strict(args, |a| {
                    let best = items(&a[0])?
                        .iter()
                        .filter(|v| !v.is_null())
                        .reduce(|x, y| {
                            let o = compare_values(y, x);
                            if (max && o.is_gt()) || (!max && o.is_lt()) {
                                y
                            } else {
                                x
                            }
                        });
                    Ok(best.cloned().unwrap_or(Value::Null))
                })
            }),
        );
    }
    out.push(
        Udf::new(
            "ARRAY_REMOVE",
            "array_remove",
            "Removes every element equal to a value.",
            vec![sig_r(vec![at(), t()], Ret::Arg(0))],
        )
        .build(|args, _| {
            if args[0].is_null() {
                return Ok(Value::Null);
            }
            Ok(Value::Array(
                items(&args[0])?
                    .iter()
                    .filter(|x| **x != args[1])
                    .cloned()
                    .collect(),
            ))
        }),
    );
    out.push(
        Udf::new(
            "ARRAY_SORT",
            "array_sort",
            "Sorts an array ascending or descending, NULLs last.",
            vec![
                sig_r(vec![at()], Ret::Arg(0)),
                sig_r(vec![at(), P::String], Ret::Arg(0)),
            ],
        )
        .build(|args, _| {
            strict(args, |a| {
                let desc = match a.get(1) {
                    Some(Value::String(s)) if s.eq_ignore_ascii_case("desc") => true,
                    Some(Value::String(s)) if s.eq_ignore_ascii_case("asc") => false,
                    Some(_) => return Ok(Value::Null),
                    None => false,
                };
                let mut v = items(&a[0])?.to_vec();
                v.sort_by(|x, y| match (x.is_null(), y.is_null()) {
                    (false, false) if desc => compare_values(y, x),
                    _ => compare_nullable(x, y),
                });
                Ok(Value::Array(v))
            })
        }),
    );
    out.push(
        Udf::new(
            "SLICE",
            "slice",
            "The elements between two 1-based positions, inclusive.",
            vec![sig_r(vec![at(), P::Int, P::Int], Ret::Arg(0))],
        )
        .build(|args, _| {
            if args[0].is_null() {
                return Ok(Value::Null);
            }
            let xs = items(&args[0])?;
            let from = args[1].as_i64().unwrap_or(1).max(1) as usize;
            let to = args[2]
                .as_i64()
                .map(|t| t.max(0) as usize)
                .unwrap_or(xs.len())
                .min(xs.len());
            if from > to {
                return Ok(Value::Array(vec![]));
            }
            Ok(Value::Array(xs[from - 1..to].to_vec()))
        }),
    );
    out.push(
        Udf::new(
            "GENERATE_SERIES",
            "generate_series",
            "The integers from start to end by step.",
            vec![
                sig(vec![P::Int, P::Int], SqlType::Array(Box::new(SqlType::Int))),
                sig(
                    vec![P::Int, P::Int, P::Int],
                    SqlType::Array(Box::new(SqlType::Int)),
                ),
                sig(
                    vec![P::Bigint, P::Bigint],
                    SqlType::Array(Box::new(SqlType::Bigint)),
                ),
                sig(
                    vec![P::Bigint, P::Bigint, P::Bigint],
                    SqlType::Array(Box::new(SqlType::Bigint)),
                ),
            ],
        )
        .build(|args, _| strict(args, generate_series)),
    );
    out.push(
        Udf::new(
            "AS_MAP",
            "as_map",
            "A map from an array of keys and an array of values.",
            vec![sig_r(
                vec![P::array(P::String), at()],
                Ret::Custom(as_map_type),
            )],
        )
        .build(|args, _| {
            strict(args, |a| {
                let (ks, vs) = (items(&a[0])?, items(&a[1])?);
                let mut m: Vec<(Value, Value)> = Vec::new();
                for (k, v) in ks.iter().zip(vs) {
                    match m.iter_mut().find(|(key, _)| key == k) {
                        Some(slot) => slot.1 = v.clone(),
                        None => m.push((k.clone(), v.clone())),
                    }
                }
                Ok(Value::Map(m))
            })
        }),
    );
    out.push(
        Udf::new(
            "ENTRIES",
            "entries",
            "The entries of a map as an array of K/V structs.",
            vec![sig_r(
                vec![P::map(P::String, t()), P::Bool],
                Ret::Custom(entries_type),
            )],
        )
        .build(|args, _| {
            strict(args, |a| {
                let mut es = entries(&a[0])?.to_vec();
                if a[1] == Value::Boolean(true) {
                    es.sort_by(|x, y| compare_nullable(&x.0, &y.0));
                }
                Ok(Value::Array(
                    es.into_iter()
                        .map(|(k, v)| Value::Struct(vec![("K".into(), k), ("V".into(), v)]))
                        .collect(),
                ))
            })
        }),
    );
    out.push(
        Udf::new(
            "MAP_KEYS",
            "map_keys",
            "The keys of a map.",
            vec![sig_r(
                vec![P::map(t(), P::Generic('U'))],
                Ret::Custom(map_keys_type),
            )],
        )
        .build(|args, _| {
            strict(args, |a| {
                Ok(Value::Array(
                    entries(&a[0])?.iter().map(|(k, _)| k.clone()).collect(),
                ))
            })
        }),
    );
    out.push(
        Udf::new(
            "MAP_VALUES",
            "map_values",
            "The values of a map.",
            vec![sig_r(
                vec![P::map(t(), P::Generic('U'))],
                Ret::Custom(map_values_type),
            )],
        )
        .build(|args, _| {
            strict(args, |a| {
                Ok(Value::Array(
                    entries(&a[0])?.iter().map(|(_, v)| v.clone()).collect(),
                ))
            })
        }),
    );
    out.push(
        Udf::new(
            "MAP_UNION",
            "map_union",
            "Merges two maps; the second wins on equal keys.",
            vec![sig_r(
                vec![P::map(P::String, t()), P::map(P::String, t())],
                Ret::Arg(0),
            )],
        )
        .build(|args, _| {
            if args.iter().all(Value::is_null) {
                return Ok(Value::Null);
            }
            let mut m: Vec<(Value, Value)> = Vec::new();
            for a in args.iter().filter(|a| !a.is_null()) {
                for (k, v) in entries(a)? {
                    match m.iter_mut().find(|(key, _)| key == k) {
                        Some(slot) => slot.1 = v.clone(),
                        None => m.push((k.clone(), v.clone())),
                    }
                }
            }
            Ok(Value::Map(m))
        }),
    );
    out.push(
        Udf::new(
            "AS_VALUE",
            "AS_VALUE",
            "Copies a key column into the value.",
            vec![sig_r(vec![t()], Ret::Arg(0))],
        )
        .build(|args, _| Ok(args[0].clone())),
    );
}

fn generate_series(a: &[Value]) -> Result<Value, String> {
    let start = a[0]
        .as_i64()
        .ok_or_else(|| bad_arg("GENERATE_SERIES", &a[0]))?;
    let end = a[1]
        .as_i64()
        .ok_or_else(|| bad_arg("GENERATE_SERIES", &a[1]))?;
    let step = match a.get(2) {
        Some(v) => v.as_i64().ok_or_else(|| bad_arg("GENERATE_SERIES", v))?,
        None => {
            if end >= start {
                1
            } else {
                -1
            }
        }
    };
    if step == 0 {
        return Err("GENERATE_SERIES step cannot be zero".into());
    }
    if (end > start && step < 0) || (end < start && step > 0) {
        return Err("GENERATE_SERIES step has wrong sign".into());
    }
    let count = (end - start) / step + 1;
    if count > 1_000_000 {
        return Err("GENERATE_SERIES would produce too many values".into());
    }
    let int = matches!(a[0], Value::Int(_));
    Ok(Value::Array(
        (0..count)
            .map(|i| start + i * step)
            .map(|x| {
                if int {
                    Value::Int(x as i32)
                } else {
                    Value::Bigint(x)
                }
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::{CallInfo, FunctionConfig, FunctionRegistry};

    fn call(name: &str, args: Vec<Value>, types: Vec<SqlType>) -> Value {
        let reg = FunctionRegistry::builtin();
        let f = reg.scalar(name).unwrap();
        let r = (f.resolve)(&types).unwrap();
        let config = FunctionConfig::default();
        let info = CallInfo {
            arg_types: &r.arg_types,
            return_type: &r.return_type,
            config: &config,
        };
        (f.eval)(&args, &info).unwrap()
    }

    fn ints(xs: &[Option<i32>]) -> Value {
        Value::Array(
            xs.iter()
                .map(|x| x.map(Value::Int).unwrap_or(Value::Null))
                .collect(),
        )
    }

    fn ai() -> SqlType {
        SqlType::Array(Box::new(SqlType::Int))
    }

    #[test]
    fn sort_min_max() {
        let v = ints(&[Some(0), None, Some(1), Some(0), Some(-1)]);
        assert_eq!(
            call("ARRAY_SORT", vec![v.clone()], vec![ai()]),
            ints(&[Some(-1), Some(0), Some(0), Some(1), None])
        );
        assert_eq!(
            call(
                "ARRAY_SORT",
                vec![v.clone(), Value::String("desc".into())],
                vec![ai(), SqlType::String]
            ),
            ints(&[Some(1), Some(0), Some(0), Some(-1), None])
        );
        assert_eq!(
            call("ARRAY_MAX", vec![v.clone()], vec![ai()]),
            Value::Int(1)
        );
        assert_eq!(call("ARRAY_MIN", vec![ints(&[])], vec![ai()]), Value::Null);
        let strs = Value::Array(
            ["foo", "fo", "Food", "F", "food"]
                .iter()
                .map(|s| Value::String(s.to_string()))
                .collect(),
        );
        assert_eq!(
            call(
                "ARRAY_MIN",
                vec![strs],
                vec![SqlType::Array(Box::new(SqlType::String))]
            ),
            Value::String("F".into())
        );
    }

    #[test]
    fn set_ops_and_slices() {
        let a = ints(&[Some(1), Some(2), Some(2), None]);
        let b = ints(&[Some(2), Some(3)]);
        assert_eq!(
            call("ARRAY_DISTINCT", vec![a.clone()], vec![ai()]),
            ints(&[Some(1), Some(2), None])
        );
        assert_eq!(
            call("ARRAY_EXCEPT", vec![a.clone(), b.clone()], vec![ai(), ai()]),
            ints(&[Some(1), None])
        );
        assert_eq!(
            call(
                "ARRAY_INTERSECT",
                vec![a.clone(), b.clone()],
                vec![ai(), ai()]
            ),
            ints(&[Some(2)])
        );
        assert_eq!(
            call("ARRAY_UNION", vec![a.clone(), b.clone()], vec![ai(), ai()]),
            ints(&[Some(1), Some(2), None, Some(3)])
        );
        assert_eq!(
            call(
                "ARRAY_REMOVE",
                vec![a.clone(), Value::Null],
                vec![ai(), SqlType::Int]
            ),
            ints(&[Some(1), Some(2), Some(2)])
        );
        assert_eq!(
            call(
                "SLICE",
                vec![a, Value::Int(2), Value::Int(3)],
                vec![ai(), SqlType::Int, SqlType::Int]
            ),
            ints(&[Some(2), Some(2)])
        );
        assert_eq!(
            call(
                "GENERATE_SERIES",
                vec![Value::Int(4), Value::Int(0)],
                vec![SqlType::Int, SqlType::Int]
            ),
            ints(&[Some(4), Some(3), Some(2), Some(1), Some(0)])
        );
        assert_eq!(
            call(
                "GENERATE_SERIES",
                vec![Value::Int(-2), Value::Int(1), Value::Int(2)],
                vec![SqlType::Int; 3]
            ),
            ints(&[Some(-2), Some(0)])
        );
    }

    #[test]
    fn maps() {
        let m = SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Int));
        let r = (FunctionRegistry::builtin()
            .scalar("ENTRIES")
            .unwrap()
            .resolve)(&[m.clone(), SqlType::Boolean])
        .unwrap();
        assert_eq!(
            r.return_type.to_string(),
            "ARRAY<STRUCT<`K` STRING, `V` INTEGER>>"
        );
        let v = Value::Map(vec![
            (Value::String("b".into()), Value::Int(2)),
            (Value::String("a".into()), Value::Int(1)),
        ]);
        assert_eq!(
            call("MAP_KEYS", vec![v.clone()], vec![m.clone()]),
            Value::Array(vec![Value::String("b".into()), Value::String("a".into())])
        );
        let e = call(
            "ENTRIES",
            vec![v, Value::Boolean(true)],
            vec![m, SqlType::Boolean],
        );
        let Value::Array(es) = e else { panic!() };
        assert_eq!(
            es[0],
            Value::Struct(vec![
                ("K".into(), Value::String("a".into())),
                ("V".into(), Value::Int(1))
            ])
        );
    }
}
