//! Go's predefined template functions: `and or not len index slice print printf println eq ne
//! lt le gt ge html js urlquery`. (`call` is not provided: there are no function values.)
//!
//! `and` and `or` are evaluated by the executor, which must short-circuit; the rest are plain
//! functions over evaluated arguments, with Go's messages for their errors.

use std::sync::Arc;

use super::error::BuiltinError;
use super::fmt::{sprint, sprintf, sprintln};
use super::value::{List, Value};
use super::{Param, Signature};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Builtin {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Print,
    Printf,
    Println,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Html,
    Js,
    Urlquery,
}

const ANY1: &[Param] = &[Param::Any];
const ANY2: &[Param] = &[Param::Any, Param::Any];
const NONE: &[Param] = &[];

impl Builtin {
    pub fn lookup(name: &str) -> Option<Builtin> {
        Some(match name {
            "and" => Builtin::And,
            "or" => Builtin::Or,
            "not" => Builtin::Not,
            "len" => Builtin::Len,
            "index" => Builtin::Index,
            "slice" => Builtin::Slice,
            "print" => Builtin::Print,
            "printf" => Builtin::Printf,
            "println" => Builtin::Println,
            "eq" => Builtin::Eq,
            "ne" => Builtin::Ne,
            "lt" => Builtin::Lt,
            "le" => Builtin::Le,
            "gt" => Builtin::Gt,
            "ge" => Builtin::Ge,
            "html" => Builtin::Html,
            "js" => Builtin::Js,
            "urlquery" => Builtin::Urlquery,
            _ => return None,
        })
    }

    /// The Go signature, for argument counting and conversion.
    pub fn signature(self) -> Signature {
        use Builtin::*;
        match self {
            And | Or | Index | Slice | Eq => Signature {
                params: ANY1,
                variadic: Some(Param::Any),
            },
            Not | Len => Signature {
                params: ANY1,
                variadic: None,
            },
            Print | Println | Html | Js | Urlquery => Signature {
                params: NONE,
                variadic: Some(Param::Any),
            },
            Printf => Signature {
                params: &[Param::String],
                variadic: Some(Param::Any),
            },
            Ne | Lt | Le | Gt | Ge => Signature {
                params: ANY2,
                variadic: None,
            },
        }
    }

    /// Calls the function on checked arguments. (`and` and `or` never get here.)
    pub fn call(self, args: &[Value]) -> Result<Value, BuiltinError> {
        use Builtin::*;
        match self {
            And | Or => unreachable_and_or(self, args),
            Not => Ok(Value::Bool(!args[0].is_true())),
            Len => length(&args[0]),
            Index => index(&args[0], &args[1..]),
            Slice => slice(&args[0], &args[1..]),
            Print => Ok(printed(|out| sprint(out, args))),
            Println => Ok(printed(|out| sprintln(out, args))),
            Printf => {
                let format = args[0].as_str().unwrap_or_default();
                Ok(printed(|out| sprintf(out, format, &args[1..])))
            }
            Eq => eq(&args[0], &args[1..]).map(Value::Bool),
            Ne => eq(&args[0], &args[1..2]).map(|b| Value::Bool(!b)),
            Lt => lt(&args[0], &args[1]).map(Value::Bool),
            Le => le(&args[0], &args[1]).map(Value::Bool),
            Gt => le(&args[0], &args[1]).map(|b| Value::Bool(!b)),
            Ge => lt(&args[0], &args[1]).map(|b| Value::Bool(!b)),
            Html => Ok(Value::from(html_escape(&eval_args(args)))),
            Js => Ok(Value::from(js_escape(&eval_args(args)))),
            Urlquery => Ok(Value::from(query_escape(&eval_args(args)))),
        }
    }
}

/// `and`/`or` as plain functions, should a caller ever get here: the deciding value.
fn unreachable_and_or(b: Builtin, args: &[Value]) -> Result<Value, BuiltinError> {
    let want = b == Builtin::Or;
    for arg in args {
        if arg.is_true() == want {
            return Ok(arg.clone());
        }
    }
    Ok(args.last().cloned().unwrap_or_default())
}

fn printed(f: impl FnOnce(&mut Vec<u8>)) -> Value {
    let mut out = Vec::new();
    f(&mut out);
    Value::from(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

fn length(item: &Value) -> Result<Value, BuiltinError> {
    match item {
        Value::Str(s) => Ok(Value::Int(s.len() as i64)),
        Value::List(list) => Ok(Value::Int(list.items.len() as i64)),
        Value::Map(map) => Ok(Value::Int(map.len() as i64)),
        // Go asks reflect for the type of an invalid value and reports its panic.
        Value::Nil => Err(BuiltinError::LenOfNil),
        other => Err(BuiltinError::LenOfType(other.type_name().to_owned())),
    }
}

/// Go's `indexArg`: an integer index no greater than `cap`.
fn index_arg(index: &Value, cap: usize) -> Result<usize, BuiltinError> {
    let x = match index {
        Value::Int(i) => *i,
        Value::Nil => return Err(BuiltinError::NilIndex),
        other => return Err(BuiltinError::IndexType(other.type_name().to_owned())),
    };
    if x < 0 || x as u64 > cap as u64 {
        return Err(BuiltinError::IndexOutOfRange(x));
    }
    Ok(x as usize)
}

fn index(item: &Value, indexes: &[Value]) -> Result<Value, BuiltinError> {
    if let Value::Nil = item {
        return Err(BuiltinError::IndexOfNil);
    }
    let mut item = item.clone();
    for index in indexes {
        item = match &item {
            Value::List(list) => {
                let x = index_arg(index, list.items.len())?;
                match list.items.get(x) {
                    Some(v) => v.clone(),
                    // Go's bound check lets len through; reflect then panics.
                    None => return Err(BuiltinError::SliceIndexOutOfRange),
                }
            }
            Value::Str(s) => {
                let x = index_arg(index, s.len())?;
                match s.as_bytes().get(x) {
                    Some(&b) => Value::Int(i64::from(b)),
                    None => return Err(BuiltinError::StringIndexOutOfRange),
                }
            }
            Value::Map(map) => match index {
                Value::Str(key) => map.get(&**key).cloned().unwrap_or_default(),
                Value::Nil => return Err(BuiltinError::NilKey),
                other => return Err(BuiltinError::KeyType(other.type_name().to_owned())),
            },
            Value::Nil => return Err(BuiltinError::IndexOfNilPointer),
            other => return Err(BuiltinError::CannotIndex(other.type_name().to_owned())),
        };
    }
    Ok(item)
}

fn slice(item: &Value, indexes: &[Value]) -> Result<Value, BuiltinError> {
    if let Value::Nil = item {
        return Err(BuiltinError::SliceOfNil);
    }
    if indexes.len() > 3 {
        return Err(BuiltinError::TooManySliceIndexes(indexes.len()));
    }
    let len = match item {
        Value::Str(s) => {
            if indexes.len() == 3 {
                return Err(BuiltinError::ThreeIndexString);
            }
            s.len()
        }
        Value::List(list) => list.items.len(),
        other => return Err(BuiltinError::CannotSlice(other.type_name().to_owned())),
    };
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(index, len)?;
    }
    if idx[0] > idx[1] {
        return Err(BuiltinError::SliceIndexOrder(idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(BuiltinError::SliceIndexOrder(idx[1], idx[2]));
    }
    Ok(match item {
        Value::Str(s) => {
            let bytes = &s.as_bytes()[idx[0]..idx[1]];
            Value::from(String::from_utf8_lossy(bytes).into_owned())
        }
        Value::List(list) => Value::List(Arc::new(List {
            ty: list.ty,
            items: list.items[idx[0]..idx[1]].to_vec(),
        })),
        _ => unreachable!("checked above"),
    })
}

/// Go's `basicKind`.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    String,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::String,
        _ => Kind::Invalid,
    }
}

fn eq(arg1: &Value, rest: &[Value]) -> Result<bool, BuiltinError> {
    if rest.is_empty() {
        return Err(BuiltinError::NoComparison);
    }
    let k1 = basic_kind(arg1);
    for arg in rest {
        let k2 = basic_kind(arg);
        let truth = if k1 != k2 {
            if !matches!(arg1, Value::Nil) && !matches!(arg, Value::Nil) {
                return Err(BuiltinError::BadComparison);
            }
            false
        } else {
            match (arg1, arg) {
                (Value::Bool(a), Value::Bool(b)) => a == b,
                (Value::Int(a), Value::Int(b)) => a == b,
                (Value::Float(a), Value::Float(b)) => a == b,
                (Value::Str(a), Value::Str(b)) => a == b,
                _ => compare_others(arg1, arg)?,
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `eq` on values that are not basic kinds: nil, structs, lists, maps, objects.
fn compare_others(a: &Value, b: &Value) -> Result<bool, BuiltinError> {
    let a_nil = matches!(a, Value::Nil);
    let b_nil = matches!(b, Value::Nil);
    if a_nil || b_nil {
        return Ok(a_nil == b_nil);
    }
    let same_kind = std::mem::discriminant(a) == std::mem::discriminant(b)
        || (matches!(a, Value::Pair(_) | Value::Object(_))
            && matches!(b, Value::Pair(_) | Value::Object(_)));
    if !same_kind {
        return Err(BuiltinError::NonComparableTypes {
            left: a.to_string(),
            left_type: a.type_name().to_owned(),
            right: b.to_string(),
            right_type: b.type_name().to_owned(),
        });
    }
    match (a, b) {
        (Value::Pair(x), Value::Pair(y)) => Ok(x == y),
        (Value::Object(x), Value::Object(y)) => {
            Ok(x.type_name() == y.type_name() && Arc::ptr_eq(x, y))
        }
        // Two structs of different types are simply unequal.
        (Value::Pair(_), Value::Object(_)) | (Value::Object(_), Value::Pair(_)) => Ok(false),
        _ => Err(BuiltinError::NonComparable {
            value: b.to_string(),
            type_name: b.type_name().to_owned(),
        }),
    }
}

fn lt(arg1: &Value, arg2: &Value) -> Result<bool, BuiltinError> {
    let k1 = basic_kind(arg1);
    let k2 = basic_kind(arg2);
    if k1 == Kind::Invalid || k2 == Kind::Invalid {
        return Err(BuiltinError::BadComparisonType);
    }
    if k1 != k2 {
        return Err(BuiltinError::BadComparison);
    }
    match (arg1, arg2) {
        (Value::Int(a), Value::Int(b)) => Ok(a < b),
        (Value::Float(a), Value::Float(b)) => Ok(a < b),
        (Value::Str(a), Value::Str(b)) => Ok(a < b),
        _ => Err(BuiltinError::BadComparisonType),
    }
}

fn le(arg1: &Value, arg2: &Value) -> Result<bool, BuiltinError> {
    if lt(arg1, arg2)? {
        return Ok(true);
    }
    eq(arg1, std::slice::from_ref(arg2))
}

/// Go's `evalArgs` for the escapers: one string as is, anything else printed, where a nil
/// operand prints as `<no value>`.
fn eval_args(args: &[Value]) -> String {
    if let [Value::Str(s)] = args {
        return s.to_string();
    }
    let shown: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Nil => Value::str("<no value>"),
            other => other.clone(),
        })
        .collect();
    let mut out = Vec::new();
    sprint(&mut out, &shown);
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `JSEscapeString`.
pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if c.is_ascii() => out.push(c),
            c if super::isprint::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapers_match_go() {
        assert_eq!(
            html_escape("<a href='x'>&\"\0"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34;\u{FFFD}"
        );
        assert_eq!(
            js_escape("it's \"q\" <x> & = \\ \n é \u{2028}"),
            "it\\'s \\\"q\\\" \\u003Cx\\u003E \\u0026 \\u003D \\\\ \\u000A é \\u2028"
        );
        assert_eq!(query_escape("a b&c=d/é~"), "a+b%26c%3Dd%2F%C3%A9~");
    }

    #[test]
    fn comparisons_follow_basic_kinds() {
        let (one, two, half) = (Value::Int(1), Value::Int(2), Value::Float(0.5));
        assert_eq!(eq(&one, &[two.clone(), one.clone()]), Ok(true));
        // The messages are Go's sentinel errors.
        assert_eq!(
            eq(&one, std::slice::from_ref(&half)).map_err(|e| e.to_string()),
            Err("incompatible types for comparison".to_owned())
        );
        assert_eq!(eq(&Value::Nil, std::slice::from_ref(&one)), Ok(false));
        assert_eq!(eq(&Value::Nil, &[Value::Nil]), Ok(true));
        assert_eq!(
            eq(&Value::pair("a", "b"), &[Value::pair("a", "b")]),
            Ok(true)
        );
        assert_eq!(lt(&one, &two), Ok(true));
        assert_eq!(le(&two, &two), Ok(true));
        assert_eq!(lt(&Value::str("a"), &Value::str("b")), Ok(true));
        assert_eq!(
            lt(&one, &half).map_err(|e| e.to_string()),
            Err("incompatible types for comparison".to_owned())
        );
        assert_eq!(
            lt(&Value::Bool(true), &Value::Bool(false)).map_err(|e| e.to_string()),
            Err("invalid type for comparison".to_owned())
        );
    }

    #[test]
    fn index_and_slice_bounds() {
        let list = Value::strings(["a", "b"]);
        assert_eq!(index(&list, &[Value::Int(1)]).unwrap().as_str(), Some("b"));
        assert_eq!(
            index(&list, &[Value::Int(3)]).unwrap_err().to_string(),
            "index out of range: 3"
        );
        assert_eq!(
            index(&list, &[Value::Int(2)]).unwrap_err().to_string(),
            "reflect: slice index out of range"
        );
        let map = Value::map([(std::sync::Arc::from("k"), list.clone())]);
        assert_eq!(
            index(&map, &[Value::str("k"), Value::Int(0)])
                .unwrap()
                .as_str(),
            Some("a")
        );
        assert!(matches!(index(&map, &[Value::str("x")]), Ok(Value::Nil)));
        assert_eq!(
            slice(&Value::str("hello"), &[Value::Int(1), Value::Int(3)])
                .unwrap()
                .as_str(),
            Some("el")
        );
        assert_eq!(
            slice(&list, &[Value::Int(2), Value::Int(1)])
                .unwrap_err()
                .to_string(),
            "invalid slice index: 2 > 1"
        );
        let Value::List(tail) = slice(&list, &[Value::Int(1)]).unwrap() else {
            panic!("not a list")
        };
        assert_eq!(tail.ty, crate::template::go::ListType::Strings);
        assert_eq!(tail.items.len(), 1);
    }
}
