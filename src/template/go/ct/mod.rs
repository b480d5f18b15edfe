//! consul-template's function map for the Go engine: a third dialect beside confd's, chosen per
//! resource (`engine = "consul-template"`). Its names clash with confd's (`ls` returns pairs,
//! `split`, `join` and `contains` take their arguments the other way round, `contains` on a
//! string is a substring test), so it is a table of its own, never guessed by `auto`.
//!
//! The functions follow consul-template v0.20.1's `template/funcs.go`; those added after it
//! (`safeLs`, `safeTree`, `envOrDefault`, `parseYAML`, `sha256Hex`, `md5sum`, `minimum`,
//! `maximum`, `sockaddr`) follow its current head. By area:
//!
//! - [`kv`]: `key keyExists keyOrDefault ls safeLs tree safeTree` over the store view, and the
//!   KV prefixes a template reads, found at load.
//! - [`catalog`]: `service services node nodes datacenters` over Consul's catalog.
//! - [`helpers`]: the pure functions (`byKey byTag contains in split join regex… math …`).
//! - [`encode`]: `toJSON toJSONPretty toYAML toTOML parseYAML`, Go's encoders' output.
//! - [`sockaddr`]: `sockaddr` (after v0.20.1, as consul-template's head defines it), a
//!   go-sockaddr template over the host's interface table, on this same engine.
//!
//! Vault, Nomad, Connect and `plugin` functions parse (so a template using them gets a clear
//! error rather than Go's `function not defined`), and [`unsupported_calls`] refuses them at
//! load with their position.

pub mod catalog;
pub mod encode;
pub mod helpers;
pub mod kv;
pub mod sockaddr;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::context::{GoContext, Scratch};
use super::{FuncError, Functions, Object, Param, ParseError, Signature, Template, Value};

/// Why one of consul-template's functions failed, as consul-template words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtError {
    /// A dependency string that does not parse (`kv.get: invalid format: "a@"`).
    #[error("{what}: invalid format: {}", super::strconv::quoted(.input))]
    InvalidFormat { what: &'static str, input: String },
    /// A status filter consul-template does not know.
    #[error("health.service: invalid filter: {} in {}", super::strconv::quoted(.filter), super::strconv::quoted(.input))]
    InvalidFilter { filter: String, input: String },
    /// A part of a query consul-template knows and terad does not follow (another
    /// datacenter's KV, `~near` sorting).
    #[error("{function} {}: {why}", super::strconv::quoted(.input))]
    NotSupported {
        function: &'static str,
        input: String,
        why: &'static str,
    },
    /// `key` of a key the store does not hold: consul-template waits for it without a word;
    /// terad fails the render naming the key, and the runner waits for it.
    #[error("key {} does not exist (consul-template waits for it to be written)", super::strconv::quoted(.0))]
    MissingKey(String),
    /// `safeLs` or `safeTree` of a prefix with nothing below it: consul-template waits.
    #[error("{function} {}: no keys under the prefix (consul-template waits for some)", super::strconv::quoted(.prefix))]
    EmptyPrefix {
        function: &'static str,
        prefix: String,
    },
    /// A function called with the wrong number of arguments (`loop`, `timestamp`, …).
    #[error("{function}: wrong number of arguments, expected {expected}, but got {got}")]
    ArgumentCount {
        function: &'static str,
        expected: &'static str,
        got: usize,
    },
    /// Go's `errors.Wrap(err, function)`.
    #[error("{function}: {message}")]
    Wrapped {
        function: &'static str,
        message: String,
    },
    /// A message consul-template's function gives as it is.
    #[error("{0}")]
    Plain(String),
}

impl From<CtError> for FuncError {
    fn from(error: CtError) -> FuncError {
        FuncError::failed(error)
    }
}

type Result<T> = std::result::Result<T, FuncError>;

const STRING: &[Param] = &[Param::String];
const STRING2: &[Param] = &[Param::String, Param::String];
const STRING3: &[Param] = &[Param::String, Param::String, Param::String];
const ANY2: &[Param] = &[Param::Any, Param::Any];

/// Functions of consul-template that read Vault, Nomad, Connect's CA or run programs: they
/// parse, and [`unsupported_calls`] refuses them at load, naming what they need.
pub const UNSUPPORTED: &[(&str, &str)] = &[
    ("secret", "reads Vault"),
    ("secrets", "reads Vault"),
    ("pkiCert", "reads Vault"),
    ("plugin", "runs a program"),
    ("writeToFile", "writes files from a template"),
    ("caLeaf", "reads Consul Connect's CA"),
    ("caRoots", "reads Consul Connect's CA"),
    ("connect", "reads Consul Connect"),
    ("nomadService", "reads Nomad"),
    ("nomadServices", "reads Nomad"),
    ("nomadVar", "reads Nomad"),
    ("nomadVarExists", "reads Nomad"),
    ("nomadVarList", "reads Nomad"),
    ("nomadVarListSafe", "reads Nomad"),
];

/// consul-template's whole function map.
pub fn functions() -> Functions<GoContext> {
    let mut f = Functions::new();
    let s = Signature::new;
    kv::register(&mut f);
    catalog::register(&mut f);
    helpers::register(&mut f);
    encode::register(&mut f);
    sockaddr::register(&mut f);
    f.register("scratch", s(&[], None), scratch);
    for (name, _) in UNSUPPORTED {
        f.register(name, s(&[], Some(Param::Any)), unsupported);
    }
    f
}

fn unsupported(_: &GoContext, _: &[Value]) -> Result<Value> {
    // Never reached: a template calling one is refused at load.
    Err(CtError::Plain("this function is not supported by terad".to_owned()).into())
}

/// The calls of functions terad does not provide, as load errors with their position, and
/// `sockaddr` calls whose literal go-sockaddr template does not parse or needs what terad
/// does not provide.
pub fn unsupported_calls(file: &str, template: &Template) -> Vec<ParseError> {
    let names: Vec<&str> = UNSUPPORTED.iter().map(|(name, _)| *name).collect();
    let mut errors = sockaddr::literal_call_errors(file, template);
    let refused = template.find_calls(&names).into_iter().map(|call| {
        let why = UNSUPPORTED
            .iter()
            .find(|(name, _)| *name == &*call.function)
            .map_or("", |(_, why)| why);
        ParseError {
            name: file.rsplit('/').next().unwrap_or(file).to_owned(),
            line: call.line,
            column: call.column,
            message: format!(
                "function {:?} {why}, which terad does not do: remove it from the template",
                call.function
            ),
        }
    });
    errors.extend(refused);
    errors
}

/// What a failed render of consul-template's dialect waits for in the KV store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Awaited {
    /// A key `key` read that does not exist (or an empty `safeLs`/`safeTree` prefix): the
    /// render is repeated when it appears. The path as the template wrote it, without `/`.
    Key(String),
    /// A path computed at render that the resource does not watch yet (absolute below the
    /// resource's prefix, as the view names it): watched, then rendered again.
    Unwatched(String),
}

/// What the failed render `error` waits for, if it failed for want of KV data.
pub fn awaited(error: &crate::template::RenderError) -> Option<Awaited> {
    use super::ExecErrorKind;
    use crate::store::LookupError;
    let crate::template::RenderCause::Go(exec) = &error.cause else {
        return None;
    };
    let ExecErrorKind::Call { error, .. } = &*exec.kind else {
        return None;
    };
    match error {
        FuncError::Failed(failure) => match failure.downcast_ref::<CtError>()? {
            CtError::MissingKey(path) => Some(Awaited::Key(path.clone())),
            CtError::EmptyPrefix { prefix, .. } => Some(Awaited::Key(prefix.clone())),
            _ => None,
        },
        FuncError::Lookup(LookupError::OutOfScope { key, .. }) => {
            Some(Awaited::Unwatched(key.clone()))
        }
        _ => None,
    }
}

pub(super) fn text(args: &[Value], i: usize) -> &str {
    args.get(i).and_then(Value::as_str).unwrap_or_default()
}

fn scratch(context: &GoContext, _: &[Value]) -> Result<Value> {
    Ok(Value::Object(Arc::new(context.scratch.clone())))
}

impl Scratch {
    fn values(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Value>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn map_set(&self, args: &[Value], overwrite: bool) -> Result<Value> {
        let (key, map_key) = (text(args, 0), text(args, 1));
        let mut values = self.values();
        let entry = values
            .entry(key.to_owned())
            .or_insert_with(|| Value::map([]));
        let Value::Map(map) = entry else {
            return Err(
                CtError::Plain(format!("{} is not a map", super::strconv::quoted(key))).into(),
            );
        };
        if overwrite || !map.contains_key(map_key) {
            Arc::make_mut(map).insert(Arc::from(map_key), args[2].clone());
        }
        Ok(Value::str(""))
    }
}

impl Object for Scratch {
    fn type_name(&self) -> &str {
        "*template.Scratch"
    }

    fn method(&self, name: &str) -> Option<Signature> {
        Some(match name {
            "Key" | "Get" | "MapValues" => Signature::new(STRING, None),
            "Set" | "SetX" => Signature::new(&[Param::String, Param::Any], None),
            "MapSet" | "MapSetX" => {
                Signature::new(&[Param::String, Param::String, Param::Any], None)
            }
            _ => return None,
        })
    }

    fn call(&self, name: &str, args: &[Value]) -> Result<Value> {
        let key = text(args, 0);
        match name {
            "Key" => Ok(Value::Bool(self.values().contains_key(key))),
            "Get" => Ok(self.values().get(key).cloned().unwrap_or_default()),
            "Set" => {
                self.values().insert(key.to_owned(), args[1].clone());
                Ok(Value::str(""))
            }
            "SetX" => {
                self.values()
                    .entry(key.to_owned())
                    .or_insert_with(|| args[1].clone());
                Ok(Value::str(""))
            }
            "MapSet" => self.map_set(args, true),
            "MapSetX" => self.map_set(args, false),
            "MapValues" => match self.values().get(key) {
                // Sorted by the map's keys, as consul-template sorts them.
                Some(Value::Map(map)) => Ok(Value::list(
                    super::ListType::Any,
                    map.values().cloned().collect(),
                )),
                _ => Ok(Value::list(super::ListType::Any, Vec::new())),
            },
            _ => Err(FuncError::NoMethod {
                type_name: self.type_name().to_owned(),
                method: name.to_owned(),
            }),
        }
    }

    fn fmt_v(&self, out: &mut String, _plus: bool) {
        out.push_str("&{}");
    }
}

/// consul-template's `*dependency.KeyPair`, what `ls` and `tree` list. terad's store keeps no
/// Consul indexes: they read as 0.
pub struct KeyPair {
    pub path: Arc<str>,
    pub key: Arc<str>,
    pub value: Arc<str>,
}

/// The Go type of a list of [`KeyPair`]s.
pub const KEY_PAIRS: &str = "[]*dependency.KeyPair";

impl KeyPair {
    const FIELDS: [&'static str; 8] = [
        "Path",
        "Key",
        "Value",
        "CreateIndex",
        "ModifyIndex",
        "LockIndex",
        "Flags",
        "Session",
    ];

    pub fn value(path: &str, key: &str, value: &str) -> Value {
        Value::Object(Arc::new(KeyPair {
            path: Arc::from(path),
            key: Arc::from(key),
            value: Arc::from(value),
        }))
    }
}

impl Object for KeyPair {
    fn type_name(&self) -> &str {
        "*dependency.KeyPair"
    }

    fn field(&self, name: &str) -> Option<Value> {
        Some(match name {
            "Path" => Value::Str(Arc::clone(&self.path)),
            "Key" => Value::Str(Arc::clone(&self.key)),
            "Value" => Value::Str(Arc::clone(&self.value)),
            "CreateIndex" | "ModifyIndex" | "LockIndex" | "Flags" => Value::Int(0),
            "Session" => Value::str(""),
            _ => return None,
        })
    }

    fn fields(&self) -> Vec<(&'static str, Value)> {
        Self::FIELDS
            .iter()
            .map(|name| (*name, self.field(name).unwrap_or_default()))
            .collect()
    }

    fn fmt_v(&self, out: &mut String, plus: bool) {
        super::services::fmt_struct(out, plus, &self.fields());
    }
}
