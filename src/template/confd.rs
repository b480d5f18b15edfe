//! confd's template functions, written once over the store view and returning plain Rust values.
//! Each engine exposes them in its own spelling: Tera as keyword functions and filters
//! (`getv(key="/a")`, `"x" | base`), the Go engine under confd's own names and argument order
//! (`getv "/a"`, `base "x"`). The engines only convert arguments and results; the semantics live
//! here.

use std::net::ToSocketAddrs;

use base64::Engine as _;

use crate::redact::{describe, preview};
use crate::store::{Glob, GlobError, LookupError, View};

/// A key and its value, as `get` and `gets` return them (confd's `memkv.KVPair`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Kv<'a> {
    pub key: &'a str,
    pub value: &'a str,
}

/// A function failed on its argument. Messages name the function; a value that may be a secret
/// is described by its length, never printed.
#[derive(Debug, thiserror::Error)]
#[error("{function}: {kind}")]
pub struct FunctionError {
    pub function: &'static str,
    #[source]
    pub kind: FunctionErrorKind,
}

/// What was wrong with a function's argument. The argument is `described` (by its length) where
/// it may be a secret, `previewed` (its start, escaped) where it is a short word.
#[derive(Debug, thiserror::Error)]
pub enum FunctionErrorKind {
    /// A key pattern that does not compile.
    #[error(transparent)]
    Pattern(#[from] GlobError),
    #[error("cannot parse {described}: {source}")]
    Json {
        described: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid base64 in {described}: {source}")]
    Base64 {
        described: String,
        #[source]
        source: base64::DecodeError,
    },
    /// Base64 that decodes to bytes that are not text. (The cause is the UTF-8 error alone: the
    /// decoded bytes may be a secret.)
    #[error("{described} does not decode to UTF-8 text")]
    NotUtf8 {
        described: String,
        #[source]
        source: std::str::Utf8Error,
    },
    #[error("{previewed} is not a boolean")]
    NotABoolean { previewed: String },
    #[error("{previewed} is not an integer")]
    NotAnInteger { previewed: String },
    /// An integer beyond 64 bits.
    #[error("{previewed} is out of range")]
    OutOfRange { previewed: String },
}

fn fail(function: &'static str, kind: FunctionErrorKind) -> FunctionError {
    FunctionError { function, kind }
}

/// `getv`: the value of one key.
pub fn getv<'a>(view: &View<'a>, key: &str) -> Result<&'a str, LookupError> {
    view.lookup(key)
}

/// `get`: one key with its value.
pub fn get<'a>(view: &View<'a>, key: &'a str) -> Result<Kv<'a>, LookupError> {
    view.lookup(key).map(|value| Kv { key, value })
}

/// `gets`: every pair whose key matches `pattern`, sorted by key.
pub fn gets<'a>(view: &View<'a>, pattern: &Glob) -> Result<Vec<Kv<'a>>, LookupError> {
    view.check_pattern(pattern)?;
    Ok(view
        .glob(pattern)?
        .into_iter()
        .map(|(key, value)| Kv { key, value })
        .collect())
}

/// `getvs`: the values of every key matching `pattern`, sorted by value (confd sorts values,
/// not keys).
pub fn getvs<'a>(view: &View<'a>, pattern: &Glob) -> Result<Vec<&'a str>, LookupError> {
    view.check_pattern(pattern)?;
    let mut values: Vec<&str> = view.glob(pattern)?.into_iter().map(|(_, v)| v).collect();
    values.sort_unstable();
    Ok(values)
}

/// `exists`: whether the key holds a value this resource may see.
pub fn exists(view: &View<'_>, key: &str) -> bool {
    view.get(key).is_some()
}

/// Parses a key pattern (`*`, `?`, `[a-z]`, `\` escapes, as Go's `path.Match`).
pub fn pattern(text: &str) -> Result<Glob, FunctionError> {
    Glob::new(text).map_err(|e| fail("gets", e.into()))
}

/// `getenv`: the variable's value; an unset or empty variable gives `default` (or "").
pub fn getenv(name: &str, default: Option<&str>) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => default.unwrap_or_default().to_owned(),
    }
}

/// `fileExists`.
pub fn file_exists(path: &str) -> bool {
    std::path::Path::new(path).exists()
}

/// Which addresses `lookupIP` and friends return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFamily {
    Any,
    V4,
    V6,
}

/// `lookupIP`: the sorted, distinct addresses of a host name; an empty list when it does not
/// resolve (confd's behaviour, so a template can fall back).
pub fn lookup_ip(name: &str, family: IpFamily) -> Vec<String> {
    let mut addresses: Vec<String> = match (name, 0u16).to_socket_addrs() {
        Ok(found) => found
            .map(|a| a.ip())
            .filter(|ip| match family {
                IpFamily::Any => true,
                IpFamily::V4 => ip.is_ipv4(),
                IpFamily::V6 => ip.is_ipv6(),
            })
            .map(|ip| ip.to_string())
            .collect(),
        Err(_) => Vec::new(),
    };
    addresses.sort();
    addresses.dedup();
    addresses
}

/// `lookupSRV`: the records of `_service._proto.name`, sorted like confd (by target, then
/// port, priority, weight); an empty list when the lookup fails.
pub fn lookup_srv(service: &str, proto: &str, name: &str) -> Vec<crate::dns::SrvRecord> {
    let mut records = crate::dns::lookup_srv(service, proto, name).unwrap_or_default();
    records.sort_by(|a, b| {
        (&a.target, a.port, a.priority, a.weight).cmp(&(&b.target, b.port, b.priority, b.weight))
    });
    records
}

/// Go's `path.Base`: the last element, trailing slashes ignored; `"."` for an empty path.
pub fn base(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// Go's `path.Dir`: everything but the last element, cleaned; `"."` when there is no directory.
pub fn dir(path: &str) -> String {
    let dir = match path.rfind('/') {
        Some(index) => &path[..=index],
        None => "",
    };
    clean_path(dir)
}

/// Go's `path.Clean`, which `path.Dir` applies to its result.
fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// `json` / `jsonArray`: a JSON document parsed into a value.
pub fn parse_json(function: &'static str, text: &str) -> Result<serde_json::Value, FunctionError> {
    serde_json::from_str(text).map_err(|source| {
        let described = describe(text);
        fail(function, FunctionErrorKind::Json { described, source })
    })
}

pub fn base64_encode(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// `base64Decode`: standard base64 to UTF-8 text.
pub fn base64_decode(function: &'static str, text: &str) -> Result<String, FunctionError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|source| {
            let described = describe(text);
            fail(function, FunctionErrorKind::Base64 { described, source })
        })?;
    String::from_utf8(bytes).map_err(|e| {
        let (described, source) = (describe(text), e.utf8_error());
        fail(function, FunctionErrorKind::NotUtf8 { described, source })
    })
}

/// Go's `strconv.ParseBool`: 1, t, T, TRUE, true, True and their false counterparts.
pub fn parse_bool(function: &'static str, text: &str) -> Result<bool, FunctionError> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(fail(
            function,
            FunctionErrorKind::NotABoolean {
                previewed: preview(text),
            },
        )),
    }
}

/// Go's `strconv.Atoi`: an optionally signed decimal integer, nothing else.
pub fn atoi(function: &'static str, text: &str) -> Result<i64, FunctionError> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail(
            function,
            FunctionErrorKind::NotAnInteger {
                previewed: preview(text),
            },
        ));
    }
    // Digits only, so the one way left to fail is a number beyond 64 bits.
    text.parse::<i64>().map_err(|_| {
        let previewed = preview(text);
        fail(function, FunctionErrorKind::OutOfRange { previewed })
    })
}

/// Stable sort by length in characters (confd's `sortByLength` and `sortKVByLength`).
pub fn sort_by_length<T>(items: &mut [T], length_of: impl Fn(&T) -> usize) {
    items.sort_by_key(length_of);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_and_dir_follow_go_path() {
        for (input, expected) in [
            ("/a/b/c", "c"),
            ("/a/b/", "b"),
            ("c", "c"),
            ("/", "/"),
            ("", "."),
        ] {
            assert_eq!(base(input), expected, "base({input:?})");
        }
        for (input, expected) in [
            ("/a/b/c", "/a/b"),
            ("/a/b/", "/a/b"),
            ("/a", "/"),
            ("a", "."),
            ("", "."),
            ("a/b", "a"),
            ("/a//b/../c/d", "/a/c"),
        ] {
            assert_eq!(dir(input), expected, "dir({input:?})");
        }
    }

    #[test]
    fn errors_describe_values_by_length_not_content() {
        let err = base64_decode("base64Decode", "s3cr3t!!").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        assert!(err.to_string().contains("8 bytes"), "{err}");
        let err = parse_json("json", "{\"password\": ").unwrap_err();
        assert!(!err.to_string().contains("password"), "{err}");
    }

    #[test]
    fn strconv_rules() {
        assert!(matches!(parse_bool("f", "T"), Ok(true)));
        assert!(parse_bool("f", "yes").is_err());
        assert!(matches!(atoi("f", "-42"), Ok(-42)));
        assert!(atoi("f", "4x").is_err());
        assert!(
            atoi("f", "99999999999999999999")
                .unwrap_err()
                .to_string()
                .contains("out of range")
        );
    }

    #[test]
    fn sort_by_length_is_stable() {
        let mut items = vec!["ccc", "a", "bb", "d"];
        sort_by_length(&mut items, |s| s.chars().count());
        assert_eq!(items, ["a", "d", "bb", "ccc"]);
    }
}
