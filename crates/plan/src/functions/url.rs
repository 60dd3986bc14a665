//! URL functions, with `java.net.URI`'s view of a URL and `URLEncoder`'s form encoding.
//!
//! Components that a URL lacks are NULL (ports too, rather than Java's -1); a string that does
//! not parse as a URI is an error, which becomes NULL.

use super::sig::{bad_arg, sig, strict, Udf, P};
use super::ScalarFunction;
use crate::value::Value;
use runnel_sql::SqlType;

/// The parts of a URI reference (`scheme://user@host:port/path?query#fragment`).
#[derive(Debug, Default, PartialEq)]
struct Uri {
    scheme: Option<String>,
    host: Option<String>,
    port: Option<i32>,
    path: Option<String>,
    query: Option<String>,
    fragment: Option<String>,
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

fn parse_uri(s: &str) -> Result<Uri, String> {
    if s.chars().any(|c| c == ' ' || c.is_control()) {
        return Err(format!("Illegal character in URI: {s}"));
    }
    let mut uri = Uri::default();
    let (rest, fragment) = match s.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (s, None),
    };
    uri.fragment = fragment.map(percent_decode_lossy);
    let rest = match rest.split_once(':') {
        Some((scheme, tail)) if is_scheme(scheme) => {
            uri.scheme = Some(scheme.to_string());
            tail
        }
        _ => rest,
    };
    let (rest, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    uri.query = query.map(percent_decode_lossy);
    let path = if let Some(after) = rest.strip_prefix("//") {
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let host_port = authority
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(authority);
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || p.is_empty() => (h, Some(p)),
            _ => (host_port, None),
        };
        if !host.is_empty() {
            uri.host = Some(host.to_string());
        }
        if let Some(p) = port.filter(|p| !p.is_empty()) {
            uri.port = Some(p.parse().map_err(|_| format!("Illegal port in URI: {s}"))?);
        }
        path
    } else {
        rest
    };
    uri.path = Some(percent_decode_lossy(path));
    Ok(uri)
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = hex_val(*bytes.get(i + 1)?)?;
                let lo = hex_val(*bytes.get(i + 2)?)?;
                out.push(hi * 16 + lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn percent_decode_lossy(s: &str) -> String {
    percent_decode(s, false).unwrap_or_else(|| s.to_string())
}

/// `URLEncoder.encode(s, UTF-8)`.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn text(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| bad_arg("URL function", v))
}

fn opt(s: Option<String>) -> Value {
    s.map(Value::String).unwrap_or(Value::Null)
}

pub(super) fn register(out: &mut Vec<ScalarFunction>) {
    use SqlType::{Int, String as Str};
    let one = || vec![sig(vec![P::String], Str)];
    out.push(
        Udf::new(
            "URL_ENCODE_PARAM",
            "url_encode_param",
            "Form-encodes a URL parameter.",
            one(),
        )
        .build(|args, _| strict(args, |a| Ok(Value::String(form_encode(text(&a[0])?))))),
    );
    out.push(
        Udf::new(
            "URL_DECODE_PARAM",
            "url_decode_param",
            "Decodes a form-encoded URL parameter.",
            one(),
        )
        .build(|args, _| {
            strict(args, |a| {
                let s = text(&a[0])?;
                percent_decode(s, true)
                    .map(Value::String)
                    .ok_or_else(|| format!("Illegal escape in '{s}'"))
            })
        }),
    );
    out.push(
        Udf::new(
            "URL_EXTRACT_FRAGMENT",
            "url_extract_fragment",
            "The fragment of a URL.",
            one(),
        )
        .build(|args, _| strict(args, |a| Ok(opt(parse_uri(text(&a[0])?)?.fragment)))),
    );
    out.push(
        Udf::new(
            "URL_EXTRACT_HOST",
            "url_extract_host",
            "The host of a URL.",
            one(),
        )
        .build(|args, _| strict(args, |a| Ok(opt(parse_uri(text(&a[0])?)?.host)))),
    );
    out.push(
        Udf::new(
            "URL_EXTRACT_PATH",
            "url_extract_path",
            "The path of a URL.",
            one(),
        )
        .build(|args, _| strict(args, |a| Ok(opt(parse_uri(text(&a[0])?)?.path)))),
    );
    out.push(
        Udf::new(
            "URL_EXTRACT_PROTOCOL",
            "url_extract_protocol",
            "The scheme of a URL.",
            one(),
        )
        .build(|args, _| strict(args, |a| Ok(opt(parse_uri(text(&a[0])?)?.scheme)))),
    );
    out.push(
        Udf::new(
            "URL_EXTRACT_QUERY",
            "url_extract_query",
            "The query of a URL.",
            one(),
        )
        .build(|args, _| strict(args, |a| Ok(opt(parse_uri(text(&a[0])?)?.query)))),
    );
    out.push(
        Udf::new(
            "URL_EXTRACT_PORT",
            "url_extract_port",
            "The port of a URL.",
            vec![sig(vec![P::String], Int)],
        )
        .build(|args, _| {
            strict(args, |a| {
                Ok(parse_uri(text(&a[0])?)?
                    .port
                    .map(Value::Int)
                    .unwrap_or(Value::Null))
            })
        }),
    );
    out.push(
        Udf::new(
            "URL_EXTRACT_PARAMETER",
            "url_extract_parameter",
            "The value of a query parameter of a URL.",
            vec![sig(vec![P::String, P::String], Str)],
        )
        .build(|args, _| {
            strict(args, |a| {
                let uri = parse_uri(text(&a[0])?)?;
                let name = text(&a[1])?;
                let found = uri
                    .query
                    .as_deref()
                    .unwrap_or("")
                    .split('&')
                    .find_map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (k == name).then(|| v.to_string())
                    });
                Ok(opt(found))
            })
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_java_uri() {
        let u = parse_uri("http://test@confluent.io:8080/nested/path?query&jobs").unwrap();
        assert_eq!(u.scheme.as_deref(), Some("http"));
        assert_eq!(u.host.as_deref(), Some("confluent.io"));
        assert_eq!(u.port, Some(8080));
        assert_eq!(u.path.as_deref(), Some("/nested/path"));
        assert_eq!(u.query.as_deref(), Some("query&jobs"));
        let u = parse_uri("http://www.test.com?query#fragment").unwrap();
        assert_eq!(u.path.as_deref(), Some(""));
        assert_eq!(u.fragment.as_deref(), Some("fragment"));
        let u = parse_uri("www.confluent.io").unwrap();
        assert_eq!(u.scheme, None);
        assert_eq!(parse_uri("http://test@confluent.io").unwrap().port, None);
        assert_eq!(
            parse_uri("http://www.nofragment.com").unwrap().fragment,
            None
        );
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("?foo $bar"), "%3Ffoo+%24bar");
        assert_eq!(form_encode("hello&world"), "hello%26world");
        assert_eq!(
            percent_decode("%3Ffoo+%24bar", true).as_deref(),
            Some("?foo $bar")
        );
        assert_eq!(
            percent_decode("url%20encoded", true).as_deref(),
            Some("url encoded")
        );
        assert_eq!(percent_decode("%zz", true), None);
    }
}
