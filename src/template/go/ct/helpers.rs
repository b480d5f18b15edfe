//! consul-template's helper functions, as its `template/funcs.go` defines them: lists and
//! maps (`byKey byTag explode in contains containsAll/Any/None/NotAll loop`), text (`split
//! join indent replaceAll regexMatch regexReplaceAll toLower toUpper toTitle trimSpace
//! base64…`), parsing (`parseBool parseFloat parseInt parseUint parseJSON`), the environment
//! and files (`env envOrDefault file`), `executeTemplate`, `timestamp`, digests and math.
//!
//! consul-template's argument order is kept: the value a pipeline feeds comes last
//! (`{{ .Tags | join "," }}`, `{{ 5 | subtract 2 }}` is 3).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::catalog::HEALTH_SERVICES;
use super::kv::PAIRS;
use super::{ANY2, CtError, KeyPair, Result, STRING, STRING2, STRING3, text};
use crate::template::go::confd;
use crate::template::go::context::GoContext;
use crate::template::go::{FuncError, Functions, ListType, Param, Signature, Value};

pub(super) fn register(f: &mut Functions<GoContext>) {
    let s = Signature::new;
    f.register("byKey", s(&[PAIRS], None), by_key)
        .register("byTag", s(&[Param::Any], None), by_tag)
        .register("contains", s(ANY2, None), |_, a| {
            Ok(Value::Bool(in_list(&a[1], &a[0])))
        })
        .register(
            "containsAll",
            s(&[Param::AnyList, Param::Any], None),
            |_, a| contains_some(a, true, true),
        )
        .register(
            "containsAny",
            s(&[Param::AnyList, Param::Any], None),
            |_, a| contains_some(a, false, false),
        )
        .register(
            "containsNone",
            s(&[Param::AnyList, Param::Any], None),
            |_, a| contains_some(a, true, false),
        )
        .register(
            "containsNotAll",
            s(&[Param::AnyList, Param::Any], None),
            |_, a| contains_some(a, false, true),
        )
        .register("in", s(ANY2, None), |_, a| {
            Ok(Value::Bool(in_list(&a[0], &a[1])))
        })
        .register("explode", s(&[PAIRS], None), explode)
        .register("env", s(STRING, None), |_, a| {
            Ok(Value::from(std::env::var(text(a, 0)).unwrap_or_default()))
        })
        .register("envOrDefault", s(STRING2, None), |_, a| {
            Ok(match std::env::var(text(a, 0)) {
                Ok(value) => Value::from(value),
                Err(_) => a[1].clone(),
            })
        })
        .register("file", s(STRING, None), file)
        .register(
            "executeTemplate",
            s(STRING, Some(Param::Any)),
            execute_template,
        )
        .register("indent", s(&[Param::Int, Param::String], None), indent)
        .register("join", s(&[Param::String, Param::StringList], None), join)
        .register("split", s(STRING2, None), split)
        .register("loop", s(&[], Some(Param::Int)), looping)
        .register("trimSpace", s(STRING, None), |_, a| {
            Ok(Value::str(text(a, 0).trim()))
        })
        .register("replaceAll", s(STRING3, None), |_, a| {
            Ok(Value::from(text(a, 2).replace(text(a, 0), text(a, 1))))
        })
        .register("regexMatch", s(STRING2, None), regex_match)
        .register("regexReplaceAll", s(STRING3, None), regex_replace_all)
        .register("toLower", s(STRING, None), confd::to_lower)
        .register("toUpper", s(STRING, None), confd::to_upper)
        .register("toTitle", s(STRING, None), |_, a| {
            Ok(Value::from(title(text(a, 0))))
        })
        .register("base64Encode", s(STRING, None), confd::base64_encode)
        .register("base64Decode", s(STRING, None), |c, a| {
            wrap("base64Decode", confd::base64_decode(c, a))
        })
        .register("base64URLEncode", s(STRING, None), |_, a| {
            use base64::Engine as _;
            Ok(Value::from(
                base64::engine::general_purpose::URL_SAFE.encode(text(a, 0)),
            ))
        })
        .register("base64URLDecode", s(STRING, None), base64_url_decode)
        .register("sha256Hex", s(STRING, None), |_, a| {
            let digest = ring::digest::digest(&ring::digest::SHA256, text(a, 0).as_bytes());
            Ok(Value::from(hex(digest.as_ref())))
        })
        .register("md5sum", s(STRING, None), |_, a| {
            Ok(Value::from(hex(&md5(text(a, 0).as_bytes()))))
        })
        .register("parseBool", s(STRING, None), parse_bool)
        .register("parseFloat", s(STRING, None), parse_float)
        .register("parseInt", s(STRING, None), parse_int)
        .register("parseUint", s(STRING, None), parse_uint)
        .register("parseJSON", s(STRING, None), parse_json)
        .register("timestamp", s(&[], Some(Param::String)), timestamp);
    for (name, op) in [
        ("add", Op::Add),
        ("subtract", Op::Subtract),
        ("multiply", Op::Multiply),
        ("divide", Op::Divide),
        ("modulo", Op::Modulo),
        ("minimum", Op::Minimum),
        ("maximum", Op::Maximum),
    ] {
        let function: crate::template::go::Native<GoContext> = match op {
            Op::Add => |_, a| math(Op::Add, a),
            Op::Subtract => |_, a| math(Op::Subtract, a),
            Op::Multiply => |_, a| math(Op::Multiply, a),
            Op::Divide => |_, a| math(Op::Divide, a),
            Op::Modulo => |_, a| math(Op::Modulo, a),
            Op::Minimum => |_, a| math(Op::Minimum, a),
            Op::Maximum => |_, a| math(Op::Maximum, a),
        };
        f.register(name, s(ANY2, None), function);
    }
}

/// consul-template's `errors.Wrap(err, function)`.
fn wrap(function: &'static str, result: Result<Value>) -> Result<Value> {
    result.map_err(|error| {
        CtError::Wrapped {
            function,
            message: error.to_string(),
        }
        .into()
    })
}

fn pairs(value: &Value) -> &[Value] {
    match value {
        Value::List(list) => &list.items,
        _ => &[],
    }
}

fn field_str(value: &Value, name: &str) -> String {
    match value {
        Value::Object(object) => object
            .field(name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// `byKey`: pairs grouped by the first segment of their key, which each loses.
fn by_key(_: &GoContext, args: &[Value]) -> Result<Value> {
    let mut groups: BTreeMap<Arc<str>, BTreeMap<Arc<str>, Value>> = BTreeMap::new();
    for pair in pairs(&args[0]) {
        let key = field_str(pair, "Key");
        let (top, rest) = key.split_once('/').unwrap_or((&key, ""));
        if rest.is_empty() {
            continue;
        }
        groups.entry(Arc::from(top)).or_default().insert(
            Arc::from(rest),
            KeyPair::value(&field_str(pair, "Path"), rest, &field_str(pair, "Value")),
        );
    }
    Ok(Value::map(
        groups
            .into_iter()
            .map(|(top, group)| (top, Value::Map(Arc::new(group)))),
    ))
}

/// `byTag`: instances (or catalog services) by each of their tags.
fn by_tag(_: &GoContext, args: &[Value]) -> Result<Value> {
    let items = match &args[0] {
        Value::Nil => &[][..],
        Value::List(list) if matches!(list.ty, ListType::Objects(ty) if ty == HEALTH_SERVICES || ty == "[]*dependency.CatalogSnippet") => {
            &list.items[..]
        }
        other => {
            return Err(CtError::Plain(format!(
                "byTag: wrong argument type {}",
                other.type_name()
            ))
            .into());
        }
    };
    let mut by_tag: BTreeMap<Arc<str>, Vec<Value>> = BTreeMap::new();
    for item in items {
        let Value::Object(object) = item else {
            continue;
        };
        if let Some(Value::List(tags)) = object.field("Tags") {
            for tag in tags.items.iter().filter_map(Value::as_str) {
                by_tag.entry(Arc::from(tag)).or_default().push(item.clone());
            }
        }
    }
    Ok(Value::map(by_tag.into_iter().map(|(tag, items)| {
        (tag, Value::list(ListType::Any, items))
    })))
}

/// consul-template's `in`: whether the list `l` holds `v` (numbers of the same kind, strings
/// equal), or the string `l` contains the string `v`.
fn in_list(l: &Value, v: &Value) -> bool {
    match l {
        Value::List(list) => list.items.iter().any(|item| match (item, v) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Str(a), Value::Str(b)) => a == b,
            _ => false,
        }),
        Value::Str(haystack) => matches!(v, Value::Str(needle) if haystack.contains(&**needle)),
        _ => false,
    }
}

/// `containsAll/Any/None/NotAll v l`.
fn contains_some(args: &[Value], ret_true: bool, invert: bool) -> Result<Value> {
    for item in pairs(&args[0]) {
        if in_list(&args[1], item) != invert {
            return Ok(Value::Bool(!ret_true));
        }
    }
    Ok(Value::Bool(ret_true))
}

/// `explode`: pairs into nested maps by their key's segments.
fn explode(_: &GoContext, args: &[Value]) -> Result<Value> {
    let mut root = BTreeMap::new();
    for pair in pairs(&args[0]) {
        let key = field_str(pair, "Key");
        explode_into(&mut root, &key, &field_str(pair, "Value"), &key)?;
    }
    Ok(Value::Map(Arc::new(root)))
}

fn explode_into(
    map: &mut BTreeMap<Arc<str>, Value>,
    key: &str,
    value: &str,
    path: &str,
) -> Result<()> {
    let Some((top, rest)) = key.split_once('/') else {
        if !key.is_empty() {
            map.insert(Arc::from(key), Value::str(value));
        }
        return Ok(());
    };
    let entry = map.entry(Arc::from(top)).or_insert_with(|| Value::map([]));
    let Value::Map(nested) = entry else {
        let existing = entry.as_str().unwrap_or_default().to_owned();
        return Err(CtError::Plain(format!(
            "explode: not a map: {}: {} already has value {}",
            quoted(path),
            quoted(top),
            quoted(&existing)
        ))
        .into());
    };
    explode_into(Arc::make_mut(nested), rest, value, key)
}

fn quoted(text: &str) -> String {
    crate::template::go::strconv::quoted(text)
}

fn file(_: &GoContext, args: &[Value]) -> Result<Value> {
    let path = text(args, 0);
    if path.is_empty() {
        return Ok(Value::str(""));
    }
    match std::fs::read(path) {
        Ok(bytes) => Ok(Value::from(String::from_utf8_lossy(&bytes).into_owned())),
        Err(error) => Err(CtError::Plain(format!(
            "file({path}): {}",
            crate::template::go::ct::encode::io_reason(&error)
        ))
        .into()),
    }
}

fn execute_template(context: &GoContext, args: &[Value]) -> Result<Value> {
    let name = text(args, 0);
    let dot = match args.len() {
        1 => Value::Nil,
        2 => args[1].clone(),
        n => {
            return Err(CtError::ArgumentCount {
                function: "executeTemplate",
                expected: "1 or 2",
                got: n,
            }
            .into());
        }
    };
    let Some((template, funcs)) = &context.set else {
        return Err(CtError::Plain("executeTemplate: no template set".to_owned()).into());
    };
    if !template.templates().any(|defined| defined == name) {
        return Err(CtError::Plain(format!(
            "template: no template {} associated with template {}",
            quoted(name),
            quoted(template.name())
        ))
        .into());
    }
    let mut out = Vec::new();
    template
        .execute_template(name, context, funcs, &dot, &mut out)
        .map_err(FuncError::failed)?;
    Ok(Value::from(String::from_utf8_lossy(&out).into_owned()))
}

fn indent(_: &GoContext, args: &[Value]) -> Result<Value> {
    let spaces = args[0].as_int().unwrap_or_default();
    if spaces < 0 {
        return Err(CtError::Plain("indent value must be a positive integer".to_owned()).into());
    }
    let prefix = " ".repeat(spaces as usize);
    let mut out = String::new();
    let mut at_line_start = true;
    for c in text(args, 1).chars() {
        if at_line_start && c != '\n' {
            out.push_str(&prefix);
        }
        out.push(c);
        at_line_start = c == '\n';
    }
    Ok(Value::from(out))
}

fn join(_: &GoContext, args: &[Value]) -> Result<Value> {
    let items: Vec<&str> = pairs(&args[1]).iter().filter_map(Value::as_str).collect();
    Ok(Value::from(items.join(text(args, 0))))
}

fn split(_: &GoContext, args: &[Value]) -> Result<Value> {
    let (separator, s) = (text(args, 0), text(args, 1).trim());
    if s.is_empty() {
        return Ok(Value::strings(Vec::<&str>::new()));
    }
    if separator.is_empty() {
        // Go's `strings.Split` with an empty separator: one string per character.
        return Ok(Value::strings(s.chars().map(String::from)));
    }
    Ok(Value::strings(s.split(separator)))
}

fn looping(_: &GoContext, args: &[Value]) -> Result<Value> {
    let (start, stop) = match args {
        [stop] => (0, stop.as_int().unwrap_or_default()),
        [start, stop] => (
            start.as_int().unwrap_or_default(),
            stop.as_int().unwrap_or_default(),
        ),
        _ => {
            return Err(CtError::ArgumentCount {
                function: "loop",
                expected: "1 or 2",
                got: args.len(),
            }
            .into());
        }
    };
    const MAX: i64 = 10_000_000;
    if stop.saturating_sub(start) > MAX {
        return Err(CtError::Plain(format!(
            "loop: {} numbers is too many",
            stop.saturating_sub(start)
        ))
        .into());
    }
    Ok(Value::list(
        ListType::Ints,
        (start..stop).map(Value::Int).collect(),
    ))
}

fn compile(pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern).map_err(|error| {
        // The words are the regex crate's, not Go's: only the start is the same.
        let last = error.to_string();
        let reason = last.lines().last().unwrap_or_default().trim();
        CtError::Plain(format!(
            "error parsing regexp: {}",
            reason.strip_prefix("error: ").unwrap_or(reason)
        ))
        .into()
    })
}

fn regex_match(_: &GoContext, args: &[Value]) -> Result<Value> {
    Ok(Value::Bool(compile(text(args, 0))?.is_match(text(args, 1))))
}

fn regex_replace_all(_: &GoContext, args: &[Value]) -> Result<Value> {
    let regex = compile(text(args, 0))?;
    Ok(Value::from(
        regex.replace_all(text(args, 2), text(args, 1)).into_owned(),
    ))
}

/// Go's `strings.Title`: the first letter of each word in title case; words are separated
/// by spaces and by ASCII characters other than letters, digits and `_`.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut previous = ' ';
    for c in s.chars() {
        let separator = if previous.is_ascii() {
            !(previous.is_ascii_alphanumeric() || previous == '_')
        } else {
            previous.is_whitespace()
        };
        if separator {
            let mut upper = c.to_uppercase();
            if upper.len() == 1 {
                out.extend(upper.by_ref());
            } else {
                out.push(c);
            }
        } else {
            out.push(c);
        }
        previous = c;
    }
    out
}

fn base64_url_decode(_: &GoContext, args: &[Value]) -> Result<Value> {
    use base64::Engine as _;
    match base64::engine::general_purpose::URL_SAFE.decode(text(args, 0)) {
        Ok(bytes) => Ok(Value::from(String::from_utf8_lossy(&bytes).into_owned())),
        Err(error) => Err(CtError::Wrapped {
            function: "base64URLDecode",
            message: error.to_string(),
        }
        .into()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// MD5 (RFC 1321), for consul-template's `md5sum`: a checksum, never a protection.
fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
        .collect();
    let (mut a0, mut b0, mut c0, mut d0) =
        (0x67452301u32, 0xefcdab89u32, 0x98badcfeu32, 0x10325476u32);
    let mut message = input.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((input.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in message.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut digest = [0u8; 16];
    for (i, word) in [a0, b0, c0, d0].iter().enumerate() {
        digest[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    digest
}

/// Go's `*strconv.NumError`, wrapped with the function's name.
fn num_error(function: &'static str, go_function: &str, input: &str, range: bool) -> FuncError {
    CtError::Wrapped {
        function,
        message: format!(
            "strconv.{go_function}: parsing {}: {}",
            quoted(input),
            if range {
                "value out of range"
            } else {
                "invalid syntax"
            }
        ),
    }
    .into()
}

/// Whether a string Go's integer parsing refused is a number too large rather than no number.
fn is_digits(s: &str, signed: bool) -> bool {
    let digits = if signed {
        s.strip_prefix(['+', '-']).unwrap_or(s)
    } else {
        s
    };
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn parse_bool(_: &GoContext, args: &[Value]) -> Result<Value> {
    let s = text(args, 0);
    if s.is_empty() {
        return Ok(Value::Bool(false));
    }
    crate::template::confd::parse_bool("parseBool", s)
        .map(Value::Bool)
        .map_err(|_| num_error("parseBool", "ParseBool", s, false))
}

fn parse_float(_: &GoContext, args: &[Value]) -> Result<Value> {
    let s = text(args, 0);
    if s.is_empty() {
        return Ok(Value::Float(0.0));
    }
    match crate::template::go::strconv::parse_float(s) {
        Some(f) if f.is_finite() || !s.bytes().any(|b| b.is_ascii_digit()) => Ok(Value::Float(f)),
        Some(_) => Err(num_error("parseFloat", "ParseFloat", s, true)),
        None => Err(num_error("parseFloat", "ParseFloat", s, false)),
    }
}

fn parse_int(_: &GoContext, args: &[Value]) -> Result<Value> {
    let s = text(args, 0);
    if s.is_empty() {
        return Ok(Value::Int(0));
    }
    match s.parse::<i64>() {
        Ok(n) if !s.starts_with('+') || s.len() > 1 => Ok(Value::Int(n)),
        _ => Err(num_error("parseInt", "ParseInt", s, is_digits(s, true))),
    }
}

fn parse_uint(_: &GoContext, args: &[Value]) -> Result<Value> {
    let s = text(args, 0);
    if s.is_empty() {
        return Ok(Value::Int(0));
    }
    if !is_digits(s, false) {
        return Err(num_error("parseUint", "ParseUint", s, false));
    }
    match s.parse::<u64>() {
        // terad's integers are Go's `int`: past its range the value wraps, as a conversion does.
        Ok(n) => Ok(Value::Int(n as i64)),
        Err(_) => Err(num_error("parseUint", "ParseUint", s, true)),
    }
}

fn parse_json(_: &GoContext, args: &[Value]) -> Result<Value> {
    let s = text(args, 0);
    if s.is_empty() {
        return Ok(Value::map([]));
    }
    let parsed = confd::parse_json(s).map_err(FuncError::failed)?;
    Ok(Value::from_json(&parsed))
}

fn timestamp(_: &GoContext, args: &[Value]) -> Result<Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let time = crate::template::go::time::Time::utc(now.as_secs() as i64, now.subsec_nanos());
    match args {
        [] => Ok(Value::from(time.format("2006-01-02T15:04:05Z07:00"))),
        [layout] if layout.as_str() == Some("unix") => Ok(Value::from(now.as_secs().to_string())),
        [layout] => Ok(Value::from(
            time.format(layout.as_str().unwrap_or_default()),
        )),
        _ => Err(CtError::ArgumentCount {
            function: "timestamp",
            expected: "0 or 1",
            got: args.len(),
        }
        .into()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    Minimum,
    Maximum,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Subtract => "subtract",
            Op::Multiply => "multiply",
            Op::Divide => "divide",
            Op::Modulo => "modulo",
            Op::Minimum => "minimum",
            Op::Maximum => "maximum",
        }
    }
}

/// consul-template's `%q (%T)` of an operand it cannot use.
fn unknown_type(op: Op, value: &Value) -> FuncError {
    let shown = match value {
        Value::Nil => "<invalid reflect.Value>".to_owned(),
        other => {
            let mut out = Vec::new();
            crate::template::go::fmt::sprintf(&mut out, "%q", std::slice::from_ref(other));
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    CtError::Plain(format!(
        "{}: unknown type for {shown} ({})",
        op.name(),
        value.type_name()
    ))
    .into()
}

/// The math functions: `op b a` computes `a op b` (the piped value comes last), in integers
/// when both are integers, else in floats, as consul-template's reflection does.
fn math(op: Op, args: &[Value]) -> Result<Value> {
    let (b, a) = (&args[0], &args[1]);
    let number = |v: &Value| matches!(v, Value::Int(_) | Value::Float(_));
    if !number(a) {
        return Err(unknown_type(op, a));
    }
    if !number(b) || (op == Op::Modulo && matches!(b, Value::Float(_))) {
        return Err(unknown_type(op, b));
    }
    if op == Op::Modulo && matches!(a, Value::Float(_)) {
        return Err(unknown_type(op, a));
    }
    if let (Value::Int(a), Value::Int(b)) = (a, b) {
        let (a, b) = (*a, *b);
        return Ok(Value::Int(match op {
            Op::Add => a.wrapping_add(b),
            Op::Subtract => a.wrapping_sub(b),
            Op::Multiply => a.wrapping_mul(b),
            Op::Divide | Op::Modulo if b == 0 => {
                return Err(
                    CtError::Plain("runtime error: integer divide by zero".to_owned()).into(),
                );
            }
            Op::Divide => a.wrapping_div(b),
            Op::Modulo => a.wrapping_rem(b),
            Op::Minimum => a.min(b),
            Op::Maximum => a.max(b),
        }));
    }
    let float = |v: &Value| match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => 0.0,
    };
    let (x, y) = (float(a), float(b));
    Ok(match op {
        Op::Add => Value::Float(x + y),
        Op::Subtract => Value::Float(x - y),
        Op::Multiply => Value::Float(x * y),
        Op::Divide => Value::Float(x / y),
        // The smaller (larger) operand keeps its own type, as consul-template returns it.
        Op::Minimum => {
            if x < y {
                a.clone()
            } else {
                b.clone()
            }
        }
        Op::Maximum => {
            if x > y {
                a.clone()
            } else {
                b.clone()
            }
        }
        Op::Modulo => unreachable!("modulo of floats is refused above"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_known_digests() {
        assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hex(&md5(b"The quick brown fox jumps over the lazy dog")),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }

    #[test]
    fn title_follows_go() {
        assert_eq!(title("hello world-foo_bar x.y"), "Hello World-Foo_bar X.Y");
    }
}
