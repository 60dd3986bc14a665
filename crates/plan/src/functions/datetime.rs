//! Date and time functions.
//!
//! DATE values are days since the epoch, TIME values milliseconds of the day and TIMESTAMP values
//! milliseconds since the epoch (UTC). Patterns are Java `DateTimeFormatter` patterns (see
//! `javatime`); a zone argument is a Java zone id and defaults to UTC.
//!
//! The interval unit of DATEADD/TIMEADD/TIMESTAMPADD (a keyword such as `DAYS` in SQL) is passed
//! by the planner as a STRING argument holding the unit's name.

use super::javatime::{self, Pattern, Zone, MILLIS_PER_DAY};
use super::sig::{bad_arg, sig, strict, Udf, P};
use super::ScalarFunction;
use crate::value::Value;
use chrono::{NaiveDateTime, NaiveTime};
use runnel_sql::SqlType;
use std::cell::RefCell;

/// Compiles a pattern, remembering the last few per thread (patterns are usually constant).
fn pattern(text: &str) -> Result<Pattern, String> {
    thread_local! {
        static CACHE: RefCell<Vec<(String, Pattern)>> = const { RefCell::new(Vec::new()) };
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, p)) = cache.iter().find(|(k, _)| k == text) {
            return Ok(p.clone());
        }
        let p = Pattern::compile(text)?;
        if cache.len() >= 16 {
            cache.remove(0);
        }
        cache.push((text.to_string(), p.clone()));
        Ok(p)
    })
}

fn text(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| bad_arg("date/time function", v))
}

fn zone_arg(v: Option<&Value>) -> Result<Zone, String> {
    match v {
        None => Ok(Zone::Fixed(0)),
        Some(v) => Zone::of(text(v)?),
    }
}

/// Milliseconds per unit of a SQL interval unit name (`DAYS`, `HOUR`, ...).
fn unit_millis(v: &Value) -> Result<i64, String> {
    let name = text(v)?.to_ascii_uppercase();
    let base = name.strip_suffix('S').unwrap_or(&name);
    Ok(match base {
        "MILLISECOND" => 1,
        "SECOND" => 1_000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => MILLIS_PER_DAY,
        _ => return Err(format!("Unknown time unit {name}")),
    })
}

fn millis(v: &Value) -> Result<i64, String> {
    match v {
        Value::Timestamp(t) | Value::Bigint(t) => Ok(*t),
        Value::Int(i) | Value::Date(i) | Value::Time(i) => Ok(*i as i64),
        other => Err(bad_arg("date/time function", other)),
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn format_date(days: i64, pattern_text: &str) -> Result<String, String> {
    let date = javatime::date_from_days(days as i32)
        .ok_or_else(|| format!("Date out of range: {days}"))?;
    pattern(pattern_text)?.format(&NaiveDateTime::new(date, NaiveTime::MIN), None, true, false)
}

fn parse_date(s: &str, pattern_text: &str) -> Result<i32, String> {
    let parsed = pattern(pattern_text)?.parse(s)?;
    Ok(javatime::days_from_date(parsed.date()?))
}

fn format_timestamp(ms: i64, pattern_text: &str, zone: &Zone) -> Result<String, String> {
    javatime::format_timestamp(ms, &pattern(pattern_text)?, zone)
}

fn parse_timestamp(s: &str, pattern_text: &str, zone: &Zone) -> Result<i64, String> {
    javatime::parse_timestamp(s, &pattern(pattern_text)?, zone)
}

pub(super) fn register(out: &mut Vec<ScalarFunction>) {
    use SqlType::{Bigint, Date, Int, String as Str, Time, Timestamp};
    out.push(
        Udf::new(
            "CONVERT_TZ",
            "convert_tz",
            "Shifts a timestamp from one time zone to another.",
            vec![sig(vec![P::Timestamp, P::String, P::String], Timestamp)],
        )
        .build(|args, _| {
            strict(args, |a| {
                let t = millis(&a[0])?;
                let utc = javatime::datetime_from_millis(t).ok_or("Timestamp out of range")?;
                let from = Zone::of(text(&a[1])?)?.offset_at_utc(&utc) as i64;
                let to = Zone::of(text(&a[2])?)?.offset_at_utc(&utc) as i64;
                Ok(Value::Timestamp(t + (to - from) * 1000))
            })
        }),
    );
    for (name, display, sign) in [("DATEADD", "dateadd", 1i64), ("DATESUB", "datesub", -1)] {
        out.push(
            Udf::new(
                name,
                display,
                "Adds or subtracts an interval to a date.",
                vec![sig(vec![P::String, P::Int, P::Date], Date)],
            )
            .build(move |args, _| {
                strict(args, |a| {
                    let delta = unit_millis(&a[0])? * a[1].as_i64().unwrap_or(0) / MILLIS_PER_DAY;
                    let days = millis(&a[2])? + sign * delta;
                    i32::try_from(days)
                        .map(Value::Date)
                        .map_err(|_| "Date out of range".to_string())
                })
            }),
        );
    }
    for (name, display, sign) in [("TIMEADD", "timeadd", 1i64), ("TIMESUB", "timesub", -1)] {
        out.push(
            Udf::new(
                name,
                display,
                "Adds or subtracts an interval to a time.",
                vec![sig(vec![P::String, P::Int, P::Time], Time)],
            )
            .build(move |args, _| {
                strict(args, |a| {
                    let delta = unit_millis(&a[0])? * a[1].as_i64().unwrap_or(0);
                    let t = (millis(&a[2])? + sign * delta).rem_euclid(MILLIS_PER_DAY);
                    Ok(Value::Time(t as i32))
                })
            }),
        );
    }
    for (name, display, sign) in [
        ("TIMESTAMPADD", "timestampadd", 1i64),
        ("TIMESTAMPSUB", "timestampsub", -1),
    ] {
        out.push(
            Udf::new(
                name,
                display,
                "Adds or subtracts an interval to a timestamp.",
                vec![sig(vec![P::String, P::Bigint, P::Timestamp], Timestamp)],
            )
            .build(move |args, _| {
                strict(args, |a| {
                    let delta = unit_millis(&a[0])?.saturating_mul(a[1].as_i64().unwrap_or(0));
                    Ok(Value::Timestamp(
                        millis(&a[2])?.saturating_add(sign * delta),
                    ))
                })
            }),
        );
    }
    out.push(
        Udf::new(
            "FORMAT_DATE",
            "format_date",
            "Formats a date with a pattern.",
            vec![sig(vec![P::Date, P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                format_date(millis(&a[0])?, text(&a[1])?).map(Value::String)
            })
        }),
    );
    out.push(
        Udf::new(
            "DATETOSTRING",
            "datetostring",
            "Formats days since the epoch with a pattern.",
            vec![sig(vec![P::Int, P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                format_date(millis(&a[0])?, text(&a[1])?).map(Value::String)
            })
        }),
    );
    out.push(
        Udf::new(
            "FORMAT_TIME",
            "format_time",
            "Formats a time with a pattern.",
            vec![sig(vec![P::Time, P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                let t =
                    javatime::time_from_millis(millis(&a[0])? as i32).ok_or("Time out of range")?;
                let dt = NaiveDateTime::new(javatime::date_from_days(0).unwrap_or_default(), t);
                pattern(text(&a[1])?)?
                    .format(&dt, None, false, true)
                    .map(Value::String)
            })
        }),
    );
    for (name, display, arg) in [
        ("FORMAT_TIMESTAMP", "format_timestamp", P::Timestamp),
        ("TIMESTAMPTOSTRING", "timestamptostring", P::Bigint),
    ] {
        out.push(
            Udf::new(
                name,
                display,
                "Formats a timestamp with a pattern, in UTC or the given zone.",
                vec![
                    sig(vec![arg.clone(), P::String], Str),
                    sig(vec![arg, P::String, P::String], Str),
                ],
            )
            .build(|args, _| {
                strict(args, |a| {
                    format_timestamp(millis(&a[0])?, text(&a[1])?, &zone_arg(a.get(2))?)
                        .map(Value::String)
                })
            }),
        );
    }
    out.push(
        Udf::new(
            "PARSE_DATE",
            "parse_date",
            "Parses a date with a pattern.",
            vec![sig(vec![P::String, P::String], Date)],
        )
        .build(|args, _| {
            strict(args, |a| {
                parse_date(text(&a[0])?, text(&a[1])?).map(Value::Date)
            })
        }),
    );
    out.push(
        Udf::new(
            "STRINGTODATE",
            "stringtodate",
            "Parses a date into days since the epoch.",
            vec![sig(vec![P::String, P::String], Int)],
        )
        .build(|args, _| {
            strict(args, |a| {
                parse_date(text(&a[0])?, text(&a[1])?).map(Value::Int)
            })
        }),
    );
    out.push(
        Udf::new(
            "PARSE_TIME",
            "parse_time",
            "Parses a time of day with a pattern.",
            vec![sig(vec![P::String, P::String], Time)],
        )
        .build(|args, _| {
            strict(args, |a| {
                let parsed = pattern(text(&a[1])?)?.parse(text(&a[0])?)?;
                Ok(Value::Time(javatime::millis_from_time(parsed.time()?)))
            })
        }),
    );
    for (name, display, ret) in [
        ("PARSE_TIMESTAMP", "parse_timestamp", Timestamp),
        ("STRINGTOTIMESTAMP", "stringtotimestamp", Bigint),
    ] {
        let as_timestamp = ret == Timestamp;
        out.push(
            Udf::new(
                name,
                display,
                "Parses a timestamp with a pattern, in UTC or the given zone.",
                vec![
                    sig(vec![P::String, P::String], ret.clone()),
                    sig(vec![P::String, P::String, P::String], ret),
                ],
            )
            .build(move |args, _| {
                strict(args, |a| {
                    let t = parse_timestamp(text(&a[0])?, text(&a[1])?, &zone_arg(a.get(2))?)?;
                    Ok(if as_timestamp {
                        Value::Timestamp(t)
                    } else {
                        Value::Bigint(t)
                    })
                })
            }),
        );
    }
    out.push(
        Udf::new(
            "FROM_DAYS",
            "from_days",
            "The date a number of days after the epoch.",
            vec![sig(vec![P::Int], Date)],
        )
        .build(|args, _| strict(args, |a| Ok(Value::Date(millis(&a[0])? as i32)))),
    );
    out.push(
        Udf::new(
            "FROM_UNIXTIME",
            "from_unixtime",
            "The timestamp for milliseconds since the epoch.",
            vec![sig(vec![P::Bigint], Timestamp)],
        )
        .build(|args, _| strict(args, |a| Ok(Value::Timestamp(millis(&a[0])?)))),
    );
    out.push(
        Udf::new(
            "UNIX_DATE",
            "unix_date",
            "Days since the epoch, of a date or of today.",
            vec![sig(vec![], Int), sig(vec![P::Date], Int)],
        )
        .build(|args, _| {
            if args.is_empty() {
                return Ok(Value::Int(now_millis().div_euclid(MILLIS_PER_DAY) as i32));
            }
            strict(args, |a| Ok(Value::Int(millis(&a[0])? as i32)))
        }),
    );
    out.push(
        Udf::new(
            "UNIX_TIMESTAMP",
            "unix_timestamp",
            "Milliseconds since the epoch, of a timestamp or of now.",
            vec![sig(vec![], Bigint), sig(vec![P::Timestamp], Bigint)],
        )
        .build(|args, _| {
            if args.is_empty() {
                return Ok(Value::Bigint(now_millis()));
            }
            strict(args, |a| Ok(Value::Bigint(millis(&a[0])?)))
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::{CallInfo, FunctionConfig, FunctionRegistry};

    fn call(name: &str, args: Vec<Value>, types: Vec<SqlType>) -> Result<Value, String> {
        let reg = FunctionRegistry::builtin();
        let f = reg.scalar(name).unwrap();
        let r = (f.resolve)(&types)?;
        let config = FunctionConfig::default();
        let info = CallInfo {
            arg_types: &r.arg_types,
            return_type: &r.return_type,
            config: &config,
        };
        (f.eval)(&args, &info)
    }

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    #[test]
    fn adds_and_subtracts() {
        let t = vec![SqlType::String, SqlType::Int, SqlType::Date];
        assert_eq!(
            call(
                "DATEADD",
                vec![s("DAYS"), Value::Int(-5), Value::Date(2)],
                t.clone()
            ),
            Ok(Value::Date(-3))
        );
        let err = call(
            "DATEADD",
            vec![],
            vec![SqlType::Date, SqlType::Int, SqlType::Date],
        )
        .unwrap_err();
        assert!(
            err.starts_with("Function 'dateadd' does not accept parameters (DATE, INTEGER, DATE)."),
            "{err}"
        );
        let t = vec![SqlType::String, SqlType::Int, SqlType::Time];
        assert_eq!(
            call(
                "TIMEADD",
                vec![s("MILLISECONDS"), Value::Int(10), Value::Time(86399995)],
                t.clone()
            ),
            Ok(Value::Time(5))
        );
        assert_eq!(
            call(
                "TIMESUB",
                vec![s("MILLISECONDS"), Value::Int(-5), Value::Time(86399997)],
                t
            ),
            Ok(Value::Time(2))
        );
        let r = (FunctionRegistry::builtin()
            .scalar("TIMESTAMPADD")
            .unwrap()
            .resolve)(&[SqlType::String, SqlType::Int, SqlType::Timestamp])
        .unwrap();
        assert_eq!(r.arg_types[1], SqlType::Bigint);
    }

    #[test]
    fn formats_and_parses() {
        assert_eq!(
            call(
                "FORMAT_DATE",
                vec![Value::Date(18993), s("dd-MMM-yyyy")],
                vec![SqlType::Date, SqlType::String]
            ),
            Ok(s("01-Jan-2022"))
        );
        assert_eq!(
            call(
                "DATETOSTRING",
                vec![Value::Int(17662), s("yyyy-MM-dd")],
                vec![SqlType::Int, SqlType::String]
            ),
            Ok(s("2018-05-11"))
        );
        assert_eq!(
            call(
                "STRINGTODATE",
                vec![s("2018-05-11Lit"), s("yyyy-MM-dd'Lit'")],
                vec![SqlType::String, SqlType::String]
            ),
            Ok(Value::Int(17662))
        );
        assert_eq!(
            call(
                "PARSE_TIME",
                vec![s("11/05/19"), s("HH/mm/ss")],
                vec![SqlType::String, SqlType::String]
            ),
            Ok(Value::Time(39919000))
        );
        assert_eq!(
            call(
                "PARSE_TIMESTAMP",
                vec![s("2018-05-11T21:58:33"), s("yyyy-MM-dd'T'HH:mm:ss")],
                vec![SqlType::String, SqlType::String]
            ),
            Ok(Value::Timestamp(1526075913000))
        );
        assert_eq!(
            call(
                "TIMESTAMPTOSTRING",
                vec![
                    Value::Bigint(1526075913000),
                    s("yyyy-MM-dd HH:mm:ss zzz"),
                    s("America/Los_Angeles")
                ],
                vec![SqlType::Bigint, SqlType::String, SqlType::String]
            ),
            Ok(s("2018-05-11 14:58:33 PDT"))
        );
        assert!(call(
            "PARSE_DATE",
            vec![s("abcd"), s("yyyy-MM-dd")],
            vec![SqlType::String, SqlType::String]
        )
        .is_err());
    }

    #[test]
    fn zones() {
        let t = vec![SqlType::Timestamp, SqlType::String, SqlType::String];
        assert_eq!(
            call(
                "CONVERT_TZ",
                vec![Value::Timestamp(100), s("+0200"), s("+0500")],
                t.clone()
            ),
            Ok(Value::Timestamp(10800100))
        );
        assert_eq!(
            call(
                "CONVERT_TZ",
                vec![
                    Value::Timestamp(1589234313000),
                    s("America/Los_Angeles"),
                    s("America/New_York")
                ],
                t
            ),
            Ok(Value::Timestamp(1589245113000))
        );
    }
}
