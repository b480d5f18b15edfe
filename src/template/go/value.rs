//! The values templates work with, shaped after the Go types confd hands to `text/template`.
//!
//! Every variant is cheap to clone: scalars are copied, everything else sits behind an `Arc`.
//! Lists remember their Go element type (`[]string`, `[]interface {}`, `memkv.KVPairs`, …)
//! because Go's `%T`, argument checks and printing depend on it.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A Go value as a template sees it.
#[derive(Clone, Default)]
pub enum Value {
    /// Go's untyped `nil`, a nil interface, and "no value" (a missing map key). An action that
    /// evaluates to it prints `<no value>`; `print` and `printf` show it as `<nil>`.
    #[default]
    Nil,
    Bool(bool),
    /// Go's `int` (64 bits).
    Int(i64),
    /// Go's `float64`.
    Float(f64),
    Str(Arc<str>),
    List(Arc<List>),
    /// `map[string]interface {}`, keys in Go's printing and ranging order (sorted bytewise).
    Map(Arc<BTreeMap<Arc<str>, Value>>),
    /// confd's `memkv.KVPair`: a struct with the fields `Key` and `Value`.
    Pair(Arc<Pair>),
    /// Anything else with fields and methods (a `time.Time`, …).
    Object(Arc<dyn Object>),
}

/// The Go type of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// `[]interface {}`: elements of any type, `nil` included.
    Any,
    /// `[]string`
    Strings,
    /// `[]int`
    Ints,
    /// `[]float64`
    Floats,
    /// `memkv.KVPairs` (confd's named `[]memkv.KVPair`, what `gets` returns).
    Pairs,
    /// `[]memkv.KVPair`
    PairSlice,
    /// A slice of pointers to structs (consul-template's `[]*dependency.KeyPair`, …): the
    /// Go spelling of the type.
    Objects(&'static str),
}

impl ListType {
    /// The Go spelling of the type, as `%T` prints it.
    pub fn name(self) -> &'static str {
        match self {
            ListType::Any => "[]interface {}",
            ListType::Strings => "[]string",
            ListType::Ints => "[]int",
            ListType::Floats => "[]float64",
            ListType::Pairs => "memkv.KVPairs",
            ListType::PairSlice => "[]memkv.KVPair",
            ListType::Objects(name) => name,
        }
    }

    /// Whether elements are interfaces (and so may be nil).
    pub fn holds_interfaces(self) -> bool {
        self == ListType::Any
    }
}

/// A Go slice: its type and elements.
#[derive(Clone)]
pub struct List {
    pub ty: ListType,
    pub items: Vec<Value>,
}

/// confd's `memkv.KVPair`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub key: Arc<str>,
    pub value: Arc<str>,
}

use super::Signature;
use super::error::FuncError;

/// A value with Go fields and methods, such as the `time.Time` confd's `datetime` returns.
pub trait Object: Send + Sync {
    /// The Go type name, for `%T` and error messages (`time.Time`).
    fn type_name(&self) -> &str;
    /// An exported field, if the type has one by that name.
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    /// The signature of a method, if the type has one by that name: the executor checks and
    /// converts arguments against it exactly as for functions.
    fn method(&self, _name: &str) -> Option<Signature> {
        None
    }
    /// Calls a method [`Object::method`] announced, with arguments already checked against its
    /// signature. An `Err` stops execution, as a Go method returning an error does.
    fn call(&self, name: &str, _args: &[Value]) -> Result<Value, FuncError> {
        Err(FuncError::NoMethod {
            type_name: self.type_name().to_owned(),
            method: name.to_owned(),
        })
    }
    /// The exported fields in declaration order, for encoders (consul-template's `toJSON`
    /// of a struct); none for a type that is not a struct.
    fn fields(&self) -> Vec<(&'static str, Value)> {
        Vec::new()
    }
    /// How `%v` prints the value (`plus` is `%+v`). For a type with a `String` method this is
    /// what `String` returns.
    fn fmt_v(&self, out: &mut String, plus: bool);
    /// Whether the type implements `fmt.Stringer` (then `%s`, `%q`, `%x` print `fmt_v` too).
    fn is_stringer(&self) -> bool {
        false
    }
    /// Go's truth: a struct is always true.
    fn truthy(&self) -> bool {
        true
    }
    /// The value itself, for the functions of a dialect that take its own objects back
    /// (go-sockaddr's `include` of the `IfAddr`s its sources return).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Str(Arc::from(s))
    }

    pub fn pair(key: &str, value: &str) -> Value {
        Value::Pair(Arc::new(Pair {
            key: Arc::from(key),
            value: Arc::from(value),
        }))
    }

    pub fn list(ty: ListType, items: Vec<Value>) -> Value {
        Value::List(Arc::new(List { ty, items }))
    }

    /// A `[]string`.
    pub fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::list(
            ListType::Strings,
            items.into_iter().map(|s| Value::str(s.as_ref())).collect(),
        )
    }

    /// A `memkv.KVPairs`, what confd's `gets` returns.
    pub fn pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        Value::list(
            ListType::Pairs,
            pairs
                .into_iter()
                .map(|(key, value)| Value::pair(key, value))
                .collect(),
        )
    }

    pub fn map(entries: impl IntoIterator<Item = (Arc<str>, Value)>) -> Value {
        Value::Map(Arc::new(entries.into_iter().collect()))
    }

    /// A value as Go's `encoding/json` decodes into `interface{}`: numbers become `float64`,
    /// arrays `[]interface {}`, objects `map[string]interface {}`.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(items) => {
                Value::list(ListType::Any, items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(entries) => Value::map(
                entries
                    .iter()
                    .map(|(k, v)| (Arc::from(k.as_str()), Value::from_json(v))),
            ),
        }
    }

    /// The Go type name (`%T`, error messages). `nil` has none; callers print `<nil>`.
    pub fn type_name(&self) -> &str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(list) => list.ty.name(),
            Value::Map(_) => "map[string]interface {}",
            Value::Pair(_) => "memkv.KVPair",
            Value::Object(object) => object.type_name(),
        }
    }

    /// Go's truth, as `if`, `with`, `and`, `or` and `not` see it.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(list) => !list.items.is_empty(),
            Value::Map(map) => !map.is_empty(),
            Value::Pair(_) => true,
            Value::Object(object) => object.truthy(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The zero value of a list element type: what Go gives where it needs one.
    pub(crate) fn zero_of(ty: ListType) -> Value {
        match ty {
            ListType::Any => Value::Nil,
            ListType::Strings => Value::str(""),
            ListType::Ints => Value::Int(0),
            ListType::Floats => Value::Float(0.0),
            ListType::Pairs | ListType::PairSlice => Value::pair("", ""),
            ListType::Objects(_) => Value::Nil,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::str(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(Arc::from(s))
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_follows_go() {
        for falsy in [
            Value::Nil,
            Value::Bool(false),
            Value::Int(0),
            Value::Float(0.0),
            Value::str(""),
            Value::list(ListType::Any, vec![]),
            Value::map([]),
        ] {
            assert!(!falsy.is_true(), "{falsy:?}");
        }
        for truthy in [
            Value::Bool(true),
            Value::Int(-1),
            Value::Float(0.5),
            Value::str("0"),
            Value::strings(["a"]),
            Value::map([(Arc::from("a"), Value::Nil)]),
            Value::pair("", ""),
        ] {
            assert!(truthy.is_true(), "{truthy:?}");
        }
    }

    #[test]
    fn json_decodes_as_go_does() {
        let json: serde_json::Value =
            serde_json::from_str(r#"{"n": 1, "l": [1, "a", null], "m": {}}"#).unwrap();
        let value = Value::from_json(&json);
        let Value::Map(map) = &value else {
            panic!("not a map")
        };
        assert!(matches!(map["n"], Value::Float(f) if f == 1.0));
        assert_eq!(map["l"].type_name(), "[]interface {}");
        assert_eq!(value.type_name(), "map[string]interface {}");
    }
}
