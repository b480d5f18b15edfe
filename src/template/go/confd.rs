//! confd's function map for the Go engine: every name as confd spells it, with confd's argument
//! order and Go signatures, over the engine-neutral functions of [`crate::template::confd`].
//!
//! The Go dialect keeps confd's behaviour where byte-identical output is the promise: `ls "/"`
//! lists only top-level keys that hold values, `lsdir "/"` is empty, and a key outside the
//! resource's `keys` reads as missing (as in confd, where it is simply absent), with a warning
//! logged once per resource and key so that the mistake does not go unnoticed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::context::GoContext;
use super::json::JsonError;
use super::{FuncError, Functions, ListType, Object, Param, Signature, Value};
use crate::store::{Glob, GlobError, LookupError};
use crate::template::confd::{self, FunctionErrorKind, IpFamily};

/// What confd's functions return: a value, or why the function failed.
type Result<T> = std::result::Result<T, FuncError>;

/// The failures of confd's functions themselves, with the messages its Go functions give (a
/// failed lookup is a [`LookupError`], the catalog's a [`crate::catalog::ServiceError`]).
#[derive(Debug, thiserror::Error)]
pub enum ConfdError {
    /// memkv's `ErrNotExist`: `get`, or `getv` without a default, of a key the store lacks.
    #[error("key does not exist: {0}")]
    KeyNotFound(String),
    /// Go's `path.ErrBadPattern`, for a pattern `gets` or `getvs` cannot compile.
    #[error("syntax error in pattern")]
    BadPattern(#[source] GlobError),
    /// `json`, `jsonArray`.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// `map` with an odd number of arguments.
    #[error("invalid map call")]
    OddMapArguments,
    /// `map` with a key that is not a string.
    #[error("map keys must be strings")]
    MapKeyNotString,
    /// `base64Decode`: Go's `base64.CorruptInputError`, the offset of the first bad byte.
    #[error("illegal base64 data at input byte {offset}")]
    Base64 {
        offset: usize,
        #[source]
        source: base64::DecodeError,
    },
    /// `parseBool`, `atoi`: Go's `*strconv.NumError` (its input quoted as confd's Go does).
    #[error("strconv.{function}: parsing {input:?}: {reason}")]
    Strconv {
        function: &'static str,
        input: String,
        reason: StrconvReason,
    },
    /// `div` or `mod` by zero: the panic Go's runtime reports.
    #[error("runtime error: integer divide by zero")]
    DivideByZero,
    /// `seq` of more numbers than a template sensibly asks for.
    #[error("seq: {0} numbers is too many")]
    TooManyNumbers(i64),
    /// `hostPort`, `safeName` (terad's own): the value is not what a directive takes. The
    /// subject is the key, or the value described by its length: never the value itself.
    #[error("{subject} is not {what}: {why}")]
    Refused {
        subject: String,
        what: &'static str,
        why: &'static str,
    },
}

/// Go's `strconv.ErrSyntax` and `strconv.ErrRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StrconvReason {
    #[error("invalid syntax")]
    Syntax,
    #[error("value out of range")]
    Range,
}

impl From<ConfdError> for FuncError {
    fn from(error: ConfdError) -> FuncError {
        FuncError::failed(error)
    }
}

const STRING: &[Param] = &[Param::String];
const STRING2: &[Param] = &[Param::String, Param::String];
const INT2: &[Param] = &[Param::Int, Param::Int];

/// confd's whole function map.
pub fn functions() -> Functions<GoContext> {
    let mut f = Functions::new();
    let s = Signature::new;
    f.register("getv", s(STRING, Some(Param::String)), getv)
        .register("getvs", s(STRING, None), getvs)
        .register("get", s(STRING, None), get)
        .register("gets", s(STRING, None), gets)
        .register("ls", s(STRING, None), ls)
        .register("lsdir", s(STRING, None), lsdir)
        .register("exists", s(STRING, None), exists)
        .register("base", s(STRING, None), base)
        .register("dir", s(STRING, None), dir)
        .register("split", s(STRING2, None), split)
        .register("json", s(STRING, None), json)
        .register("jsonArray", s(STRING, None), json_array)
        .register("map", s(&[], Some(Param::Any)), create_map)
        .register("join", s(&[Param::StringList, Param::String], None), join)
        .register("toUpper", s(STRING, None), to_upper)
        .register("toLower", s(STRING, None), to_lower)
        .register("contains", s(STRING2, None), contains)
        .register(
            "replace",
            s(
                &[Param::String, Param::String, Param::String, Param::Int],
                None,
            ),
            replace,
        )
        .register("trimSuffix", s(STRING2, None), trim_suffix)
        .register("lookupIP", s(STRING, None), lookup_ip)
        .register("lookupIPV4", s(STRING, None), lookup_ipv4)
        .register("lookupIPV6", s(STRING, None), lookup_ipv6)
        .register(
            "lookupSRV",
            s(&[Param::String, Param::String, Param::String], None),
            lookup_srv,
        )
        .register("fileExists", s(STRING, None), file_exists)
        .register("base64Encode", s(STRING, None), base64_encode)
        .register("base64Decode", s(STRING, None), base64_decode)
        .register("parseBool", s(STRING, None), parse_bool)
        .register("reverse", s(&[Param::Any], None), reverse)
        .register(
            "sortByLength",
            s(&[Param::StringList], None),
            sort_by_length,
        )
        .register(
            "sortKVByLength",
            s(&[Param::PairList], None),
            sort_kv_by_length,
        )
        .register("add", s(INT2, None), |_, a| {
            Ok(Value::Int(int(a, 0).wrapping_add(int(a, 1))))
        })
        .register("sub", s(INT2, None), |_, a| {
            Ok(Value::Int(int(a, 0).wrapping_sub(int(a, 1))))
        })
        .register("mul", s(INT2, None), |_, a| {
            Ok(Value::Int(int(a, 0).wrapping_mul(int(a, 1))))
        })
        .register("div", s(INT2, None), div)
        .register("mod", s(INT2, None), modulo)
        .register("seq", s(INT2, None), seq)
        .register("atoi", s(STRING, None), atoi)
        .register("getenv", s(STRING, Some(Param::String)), getenv)
        .register("datetime", s(&[], None), datetime)
        // terad's own, for templates whose keys untrusted parties write (see the book's
        // Security page, docs/src/security.md): the value when it is what a directive takes, else the render fails.
        .register("hostPort", s(STRING, Some(Param::String)), host_port)
        .register("safeName", s(STRING, Some(Param::String)), safe_name);
    f
}

/// `{{hostPort .Value .Key}}`: the value when it is `host:port`; the optional key names it in
/// the error (the value itself is never printed).
fn host_port(_: &GoContext, args: &[Value]) -> Result<Value> {
    vetted(args, "host:port", crate::template::vet::host_port)
}

/// `{{safeName (base .Key) .Key}}`: the value when it is one word of `[A-Za-z0-9._-]`.
fn safe_name(_: &GoContext, args: &[Value]) -> Result<Value> {
    vetted(args, "a safe name", crate::template::vet::safe_name)
}

fn vetted(
    args: &[Value],
    what: &'static str,
    check: fn(&str) -> std::result::Result<(), &'static str>,
) -> Result<Value> {
    let value = text(args, 0);
    match check(value) {
        Ok(()) => Ok(args[0].clone()),
        Err(why) => {
            let subject = match args.get(1).and_then(Value::as_str) {
                Some(key) => format!("the value of key {key:?}"),
                None => crate::redact::describe(value),
            };
            Err(ConfdError::Refused { subject, what, why }.into())
        }
    }
}

/// The names confd's map has, for telling a Go template from a Tera one.
pub fn names() -> impl Iterator<Item = &'static str> {
    [
        "getv",
        "getvs",
        "get",
        "gets",
        "ls",
        "lsdir",
        "exists",
        "base",
        "dir",
        "split",
        "json",
        "jsonArray",
        "map",
        "join",
        "toUpper",
        "toLower",
        "contains",
        "replace",
        "trimSuffix",
        "lookupIP",
        "lookupIPV4",
        "lookupIPV6",
        "lookupSRV",
        "fileExists",
        "base64Encode",
        "base64Decode",
        "parseBool",
        "reverse",
        "sortByLength",
        "sortKVByLength",
        "add",
        "sub",
        "mul",
        "div",
        "mod",
        "seq",
        "atoi",
        "getenv",
        "datetime",
    ]
    .into_iter()
}

// Arguments arrive checked against the signature, so these only unpack.
pub(super) fn text(args: &[Value], i: usize) -> &str {
    args[i].as_str().unwrap_or_default()
}

pub(super) fn int(args: &[Value], i: usize) -> i64 {
    args[i].as_int().unwrap_or_default()
}

/// A key outside the resource's `keys` is absent to a confd template. Reading it is still a
/// mistake (a change to it never re-renders the resource): said once per resource and key.
fn out_of_scope(ctx: &GoContext, error: &LookupError) {
    static WARNED: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);
    if let LookupError::OutOfScope { key, keys, .. } = error {
        let resource = ctx.input.scope.resource.clone();
        let mut warned = WARNED.lock().expect("warned lock");
        if warned
            .get_or_insert_with(HashSet::new)
            .insert((resource.clone(), key.clone()))
        {
            tracing::warn!(
                resource = %resource,
                key = %key,
                keys = ?keys,
                "the template reads a key outside the resource's keys: it renders as missing (as in confd), and a change to it does not re-render the resource; add it to `keys`"
            );
        }
    }
}

/// A lookup as confd answers it: `Ok(None)` for a key confd would not have.
fn lookup<'a>(ctx: &'a GoContext, key: &str) -> std::result::Result<Option<&'a str>, LookupError> {
    match confd::getv(&ctx.input.view(), key) {
        Ok(value) => Ok(Some(value)),
        Err(LookupError::Missing { .. }) => Ok(None),
        Err(error @ LookupError::OutOfScope { .. }) => {
            out_of_scope(ctx, &error);
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

fn missing(key: &str) -> FuncError {
    ConfdError::KeyNotFound(key.to_owned()).into()
}

fn getv(ctx: &GoContext, args: &[Value]) -> Result<Value> {
    let key = text(args, 0);
    match lookup(ctx, key)? {
        Some(value) => Ok(Value::str(value)),
        // confd takes the first default and ignores the rest.
        None => match args.get(1) {
            Some(default) => Ok(default.clone()),
            None => Err(missing(key)),
        },
    }
}

fn get(ctx: &GoContext, args: &[Value]) -> Result<Value> {
    let key = text(args, 0);
    match lookup(ctx, key)? {
        Some(value) => Ok(Value::pair(key, value)),
        None => Err(missing(key)),
    }
}

/// Pairs matching a pattern; an out-of-scope pattern matches nothing, as in confd.
fn matching<'a>(ctx: &'a GoContext, pattern: &str) -> Result<Vec<(&'a str, &'a str)>> {
    let glob = Glob::new(pattern).map_err(ConfdError::BadPattern)?;
    let view = ctx.input.view();
    if let Err(error) = view.check_pattern(&glob) {
        out_of_scope(ctx, &error);
        return Ok(Vec::new());
    }
    Ok(view.glob(&glob)?)
}

fn gets(ctx: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::pairs(matching(ctx, text(args, 0))?))
}

fn getvs(ctx: &GoContext, args: &[Value]) -> Result<Value> {
    let mut values: Vec<&str> = matching(ctx, text(args, 0))?
        .into_iter()
        .map(|(_, value)| value)
        .collect();
    values.sort_unstable();
    Ok(Value::strings(values))
}

fn ls(ctx: &GoContext, args: &[Value]) -> Result<Value> {
    let names = ctx.input.view().list(text(args, 0), true)?;
    Ok(Value::strings(names))
}

fn lsdir(ctx: &GoContext, args: &[Value]) -> Result<Value> {
    let names = ctx.input.view().list_dirs(text(args, 0), true)?;
    Ok(Value::strings(names))
}

fn exists(ctx: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::Bool(lookup(ctx, text(args, 0))?.is_some()))
}

fn base(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::str(confd::base(text(args, 0))))
}

fn dir(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::from(confd::dir(text(args, 0))))
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn split(_: &GoContext, args: &[Value]) -> Result<Value> {
    let (s, sep) = (text(args, 0), text(args, 1));
    Ok(if sep.is_empty() {
        Value::strings(s.chars().map(String::from))
    } else {
        Value::strings(s.split(sep))
    })
}

/// Parses JSON as Go's `json.Unmarshal` would see it: its syntax error first.
pub(super) fn parse_json(text: &str) -> std::result::Result<serde_json::Value, JsonError> {
    if let Some(error) = super::json::syntax_error(text) {
        return Err(JsonError::Syntax(error));
    }
    serde_json::from_str(text).map_err(|source| JsonError::Decode {
        source,
        described: crate::redact::describe(text),
    })
}

fn json(_: &GoContext, args: &[Value]) -> Result<Value> {
    match parse_json(text(args, 0)).map_err(ConfdError::Json)? {
        parsed @ serde_json::Value::Object(_) => Ok(Value::from_json(&parsed)),
        // A JSON null leaves Go's map nil: it prints `map[]`.
        serde_json::Value::Null => Ok(Value::map([])),
        other => Err(ConfdError::Json(JsonError::Unmarshal {
            found: json_kind(&other),
            into: "map[string]interface {}",
        })
        .into()),
    }
}

fn json_array(_: &GoContext, args: &[Value]) -> Result<Value> {
    match parse_json(text(args, 0)).map_err(ConfdError::Json)? {
        parsed @ serde_json::Value::Array(_) => Ok(Value::from_json(&parsed)),
        serde_json::Value::Null => Ok(Value::list(ListType::Any, Vec::new())),
        other => Err(ConfdError::Json(JsonError::Unmarshal {
            found: json_kind(&other),
            into: "[]interface {}",
        })
        .into()),
    }
}

pub(super) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// confd's `CreateMap`: alternating string keys and values of any type.
fn create_map(_: &GoContext, args: &[Value]) -> Result<Value> {
    if !args.len().is_multiple_of(2) {
        return Err(ConfdError::OddMapArguments.into());
    }
    let mut entries = Vec::with_capacity(args.len() / 2);
    for pair in args.chunks(2) {
        let Some(key) = pair[0].as_str() else {
            return Err(ConfdError::MapKeyNotString.into());
        };
        entries.push((Arc::from(key), pair[1].clone()));
    }
    Ok(Value::map(entries))
}

fn strings_of(value: &Value) -> Vec<&str> {
    match value {
        Value::List(list) => list.items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn join(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::from(strings_of(&args[0]).join(text(args, 1))))
}

/// Go maps case rune by rune (`unicode.ToUpper`): a character whose full mapping is several
/// characters (`ß` → `SS`) stays as it is, and there is no final-sigma rule.
fn map_case(s: &str, map: impl Fn(char) -> Option<char>) -> String {
    s.chars().map(|c| map(c).unwrap_or(c)).collect()
}

fn single(mut mapped: impl ExactSizeIterator<Item = char>) -> Option<char> {
    if mapped.len() == 1 {
        mapped.next()
    } else {
        None
    }
}

pub(super) fn to_upper(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::from(map_case(text(args, 0), |c| {
        single(c.to_uppercase())
    })))
}

pub(super) fn to_lower(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::from(map_case(text(args, 0), |c| {
        // Go lowers İ (U+0130) to i; Rust's full mapping adds a combining dot.
        if c == '\u{130}' {
            Some('i')
        } else {
            single(c.to_lowercase())
        }
    })))
}

fn contains(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::Bool(text(args, 0).contains(text(args, 1))))
}

/// Go's `strings.Replace`: the first `n` matches, all of them when `n < 0`.
fn replace(_: &GoContext, args: &[Value]) -> Result<Value> {
    let (s, old, new, n) = (text(args, 0), text(args, 1), text(args, 2), int(args, 3));
    Ok(Value::from(match usize::try_from(n) {
        Ok(n) if old.is_empty() => replace_empty(s, new, n),
        Ok(n) => s.replacen(old, new, n),
        Err(_) if old.is_empty() => replace_empty(s, new, usize::MAX),
        Err(_) => s.replace(old, new),
    }))
}

/// An empty `old` matches before every character and at the end, as in Go.
fn replace_empty(s: &str, new: &str, n: usize) -> String {
    let mut out = String::with_capacity(s.len() + new.len());
    let mut done = 0;
    for c in s.chars() {
        if done < n {
            out.push_str(new);
            done += 1;
        }
        out.push(c);
    }
    if done < n {
        out.push_str(new);
    }
    out
}

fn trim_suffix(_: &GoContext, args: &[Value]) -> Result<Value> {
    let (s, suffix) = (text(args, 0), text(args, 1));
    Ok(Value::str(s.strip_suffix(suffix).unwrap_or(s)))
}

fn lookup_ip(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::strings(confd::lookup_ip(
        text(args, 0),
        IpFamily::Any,
    )))
}

fn lookup_ipv4(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::strings(confd::lookup_ip(
        text(args, 0),
        IpFamily::V4,
    )))
}

fn lookup_ipv6(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::strings(confd::lookup_ip(
        text(args, 0),
        IpFamily::V6,
    )))
}

/// One of Go's `*net.SRV`.
struct Srv(crate::dns::SrvRecord);

impl Object for Srv {
    fn type_name(&self) -> &str {
        "*net.SRV"
    }

    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Target" => Value::str(&self.0.target),
            "Port" => Value::Int(i64::from(self.0.port)),
            "Priority" => Value::Int(i64::from(self.0.priority)),
            "Weight" => Value::Int(i64::from(self.0.weight)),
            _ => return None,
        })
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        let r = &self.0;
        if plus {
            out.push_str(&format!(
                "&{{Target:{} Port:{} Priority:{} Weight:{}}}",
                r.target, r.port, r.priority, r.weight
            ));
        } else {
            out.push_str(&format!(
                "&{{{} {} {} {}}}",
                r.target, r.port, r.priority, r.weight
            ));
        }
    }
}

fn lookup_srv(_: &GoContext, args: &[Value]) -> Result<Value> {
    let records = confd::lookup_srv(text(args, 0), text(args, 1), text(args, 2));
    Ok(Value::list(
        ListType::Any,
        records
            .into_iter()
            .map(|record| Value::Object(Arc::new(Srv(record))))
            .collect(),
    ))
}

fn file_exists(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::Bool(confd::file_exists(text(args, 0))))
}

pub(super) fn base64_encode(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::from(confd::base64_encode(text(args, 0))))
}

pub(super) fn base64_decode(_: &GoContext, args: &[Value]) -> Result<Value> {
    let encoded = text(args, 0);
    use base64::Engine as _;
    match base64::engine::general_purpose::STANDARD.decode(encoded) {
        Ok(bytes) => Ok(Value::from(String::from_utf8_lossy(&bytes).into_owned())),
        Err(source) => {
            let offset = match source {
                base64::DecodeError::InvalidByte(at, _)
                | base64::DecodeError::InvalidLastSymbol { offset: at, .. } => at,
                // A wrong length: Go reports the start of the incomplete last quantum.
                _ => encoded.len() - encoded.len() % 4,
            };
            Err(ConfdError::Base64 { offset, source }.into())
        }
    }
}

fn parse_bool(_: &GoContext, args: &[Value]) -> Result<Value> {
    let s = text(args, 0);
    confd::parse_bool("parseBool", s)
        .map(Value::Bool)
        .map_err(|_| {
            let reason = StrconvReason::Syntax;
            ConfdError::Strconv {
                function: "ParseBool",
                input: s.to_owned(),
                reason,
            }
            .into()
        })
}

fn atoi(_: &GoContext, args: &[Value]) -> Result<Value> {
    let s = text(args, 0);
    confd::atoi("atoi", s).map(Value::Int).map_err(|e| {
        let reason = match e.kind {
            FunctionErrorKind::OutOfRange { .. } => StrconvReason::Range,
            _ => StrconvReason::Syntax,
        };
        ConfdError::Strconv {
            function: "Atoi",
            input: s.to_owned(),
            reason,
        }
        .into()
    })
}

/// confd's `Reverse`: only `[]string` and `[]memkv.KVPair` are reversed; `gets`' named
/// `memkv.KVPairs` and everything else come back as they are. (confd reverses in place, so a
/// variable holding the list changes too; values here are immutable, so only the result is
/// reversed.)
fn reverse(_: &GoContext, args: &[Value]) -> Result<Value> {
    match &args[0] {
        Value::List(list) if matches!(list.ty, ListType::Strings | ListType::PairSlice) => {
            let mut items = list.items.clone();
            items.reverse();
            Ok(Value::list(list.ty, items))
        }
        other => Ok(other.clone()),
    }
}

/// By byte length (Go's `len`), with Go's unstable `sort.Sort`, so ties come out as in confd.
fn sort_by_length(_: &GoContext, args: &[Value]) -> Result<Value> {
    let mut items = match &args[0] {
        Value::List(list) => list.items.clone(),
        _ => Vec::new(),
    };
    let len = |v: &Value| v.as_str().map_or(0, str::len);
    super::sort::sort(&mut items, |a, b| len(a) < len(b));
    Ok(Value::list(ListType::Strings, items))
}

fn sort_kv_by_length(_: &GoContext, args: &[Value]) -> Result<Value> {
    let mut items = match &args[0] {
        Value::List(list) => list.items.clone(),
        _ => Vec::new(),
    };
    let len = |v: &Value| match v {
        Value::Pair(pair) => pair.key.len(),
        _ => 0,
    };
    super::sort::sort(&mut items, |a, b| len(a) < len(b));
    Ok(Value::list(ListType::PairSlice, items))
}

fn div(_: &GoContext, args: &[Value]) -> Result<Value> {
    int(args, 0)
        .checked_div(int(args, 1))
        .or_else(|| (int(args, 1) == -1).then(|| int(args, 0).wrapping_neg()))
        .map(Value::Int)
        .ok_or_else(|| ConfdError::DivideByZero.into())
}

fn modulo(_: &GoContext, args: &[Value]) -> Result<Value> {
    match int(args, 1) {
        0 => Err(ConfdError::DivideByZero.into()),
        -1 => Ok(Value::Int(0)),
        b => Ok(Value::Int(int(args, 0) % b)),
    }
}

fn seq(_: &GoContext, args: &[Value]) -> Result<Value> {
    let (first, last) = (int(args, 0), int(args, 1));
    if last < first {
        return Ok(Value::list(ListType::Ints, Vec::new()));
    }
    // A template asking for billions of numbers is a mistake, not a request.
    const MAX: i64 = 10_000_000;
    if last - first >= MAX {
        return Err(ConfdError::TooManyNumbers(last - first + 1).into());
    }
    Ok(Value::list(
        ListType::Ints,
        (first..=last).map(Value::Int).collect(),
    ))
}

fn getenv(_: &GoContext, args: &[Value]) -> Result<Value> {
    let default = args.get(1).and_then(Value::as_str);
    Ok(Value::from(confd::getenv(text(args, 0), default)))
}

fn datetime(_: &GoContext, _: &[Value]) -> Result<Value> {
    Ok(Value::Object(Arc::new(super::time::Time::now())))
}
