//! Go's `text/template`, natively: confd templates render byte for byte as confd renders them.
//!
//! # Layout
//!
//! The pipeline is the one Go's own package has, lex → parse → exec:
//!
//! - `lex`: source → tokens with byte spans (`{{- -}}` trimming, comments).
//! - `parse`: tokens → trees (the main template and every `define`/`block`), Go's
//!   `parse/parse.go`. Function names are resolved to table indexes here and unknown names
//!   rejected, as Go does; variables are checked and interned; template calls are linked to
//!   their trees. The trees' nodes are `node` (Go's `parse/node.go`).
//! - `exec`: walks a tree against a [`Value`], writing straight into the output
//!   buffer. Variables live in one stack, function arguments in another reused buffer, so
//!   rendering allocates only for the values functions return.
//! - `value`: [`Value`], Go's values as confd hands them to templates (`memkv.KVPair`,
//!   `map[string]interface {}`, typed slices, objects with methods), cheap to clone.
//! - `fmt`: Go's `fmt` printing, used by actions, `print`, `printf` and `println`;
//!   `strconv`: Go's reading of literals (`Unquote`, `ParseInt`, `ParseFloat`) and writing of
//!   quoted strings and floats.
//! - `builtins`: `and or not len index slice print* eq ne lt le gt ge html js
//!   urlquery`.
//! - `isprint`: Go's table of printable characters, for `%q`.
//! - [`confd`]: confd's function map over the store view; [`time`]: the `time.Time` its
//!   `datetime` returns; [`engine`]: template files loaded, parsed once, rendered by name.
//!
//! # Functions
//!
//! Functions are plain `fn` pointers registered with a Go-like [`Signature`], so the executor
//! converts and checks arguments as Go's reflection does (an untyped constant fits an `int` or
//! `float64` parameter, a `string` parameter rejects an `int` value, variadic tails) and
//! reports Go's errors. A function returning `Err` (a [`FuncError`]) stops execution, like a Go function
//! returning `(T, error)`. The render context `C` (terad's view of the store) is passed to every
//! call; since one [`Functions`] table serves every render, `C` is best an owned type (the
//! store and the resource's scope behind `Arc`s) rather than one borrowing for a lifetime.
//!
//! ```
//! use terad::template::go::{FuncError, Functions, Param, Signature, Template, Value};
//!
//! fn to_upper(_: &(), args: &[Value]) -> Result<Value, FuncError> {
//!     Ok(Value::from(args[0].as_str().unwrap_or_default().to_uppercase()))
//! }
//!
//! let mut funcs = Functions::new();
//! funcs.register("toUpper", Signature::new(&[Param::String], None), to_upper);
//! let template = Template::parse("t", r#"{{range $i, $s := .}}{{$i}}={{toUpper $s}} {{end}}"#, &funcs).unwrap();
//! let mut out = Vec::new();
//! template.execute(&(), &funcs, &Value::strings(["a", "b"]), &mut out).unwrap();
//! assert_eq!(out, b"0=A 1=B ");
//! ```
//!
//! # Differences from Go
//!
//! Output matches Go 1.19 (`{{else with}}` from Go 1.23 is accepted too), except where Go shows
//! things this model does not have:
//!
//! - Go strings are bytes, ours are UTF-8: a `\x`/octal escape or a `slice` that makes invalid
//!   UTF-8 gets U+FFFD in its place; `index` of a string gives an `int`, not a `uint8`.
//! - Complex constants, `call`, channels and pointers do not exist here; `%p` complains
//!   instead of printing an address, and an [`Object`] prints through [`Object::fmt_v`] (or
//!   complains about a verb) instead of showing its struct fields.
//! - Error columns are 1-based characters (Go's are 0-based bytes) and parse errors have one
//!   too; a few contexts differ (`range` errors show `range <pipeline>`).
//! - Execution stops at a depth of [`MAX_EXEC_DEPTH`] nested templates and blocks (Go: 100 000
//!   template calls), and templates at [`MAX_PARSE_DEPTH`] levels of nesting.
//!
//! `tests::differential` (ignored) renders a JSON list of cases for comparison with the output
//! of a Go program running the same cases through `text/template`.

mod builtins;
mod clock;
pub mod confd;
pub mod context;
pub mod ct;
pub mod engine;
mod error;
mod exec;
mod fmt;
mod isprint;
mod json;
mod lex;
mod node;
mod parse;
pub mod services;
mod sort;
mod strconv;
pub mod time;
mod value;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

pub use error::{BuiltinError, ExecError, ExecErrorKind, FuncError, ParseError};
pub use exec::MAX_EXEC_DEPTH;
pub use parse::MAX_PARSE_DEPTH;
pub use value::{List, ListType, Object, Pair, Value};

/// The Go type of a function parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `string`
    String,
    /// `int`
    Int,
    /// `float64`
    Float,
    /// `bool`
    Bool,
    /// `interface {}`: any value, nil included.
    Any,
    /// `[]string`
    StringList,
    /// `[]memkv.KVPair` (which a `memkv.KVPairs` is assignable to).
    PairList,
    /// `memkv.KVPair`
    Pair,
    /// `map[string]interface {}`
    Map,
    /// `[]interface {}`
    AnyList,
    /// A slice of pointers to structs, by its Go spelling (`[]*dependency.KeyPair`).
    ObjectList(&'static str),
}

impl Param {
    /// The Go spelling, for messages.
    pub fn type_name(self) -> &'static str {
        match self {
            Param::String => "string",
            Param::Int => "int",
            Param::Float => "float64",
            Param::Bool => "bool",
            Param::Any => "interface {}",
            Param::StringList => "[]string",
            Param::PairList => "[]memkv.KVPair",
            Param::Pair => "memkv.KVPair",
            Param::Map => "map[string]interface {}",
            Param::AnyList => "[]interface {}",
            Param::ObjectList(name) => name,
        }
    }
}

/// A Go function's parameters: fixed ones, then optionally a variadic tail (`...T`).
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    pub params: &'static [Param],
    pub variadic: Option<Param>,
}

impl Signature {
    pub const fn new(params: &'static [Param], variadic: Option<Param>) -> Signature {
        Signature { params, variadic }
    }
}

/// A template function: the render context and the checked arguments; an error stops the
/// execution (`error calling …`).
pub type Native<C> = fn(&C, &[Value]) -> Result<Value, FuncError>;

struct Entry<C> {
    name: Arc<str>,
    signature: Signature,
    function: Native<C>,
}

/// The functions templates may call, besides Go's builtins (which a function of the same name
/// replaces, as in Go).
pub struct Functions<C> {
    entries: Vec<Entry<C>>,
    index: HashMap<Arc<str>, u32>,
}

impl<C> Default for Functions<C> {
    fn default() -> Self {
        Functions {
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<C> Functions<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name`, or replaces the function of that name. Templates parsed before a
    /// replacement keep working: they refer to the slot, not the function.
    pub fn register(&mut self, name: &str, signature: Signature, function: Native<C>) -> &mut Self {
        let entry = Entry {
            name: Arc::from(name),
            signature,
            function,
        };
        match self.index.get(name) {
            Some(&i) => self.entries[i as usize] = entry,
            None => {
                self.index
                    .insert(Arc::from(name), self.entries.len() as u32);
                self.entries.push(entry);
            }
        }
        self
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn index_of(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }
}

/// A parsed template set: the main template and every `define`/`block` in its source.
/// Parse once, execute many times, from any thread.
pub struct Template {
    name: Arc<str>,
    source: Arc<str>,
    trees: Vec<node::Tree>,
    main: u32,
    var_names: Vec<Arc<str>>,
    /// The user functions the trees call, to check the table given at execution.
    user_funcs: Vec<(u32, Arc<str>)>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field(
                "templates",
                &self.trees.iter().map(|t| &*t.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses `source` as the template `name`, with `funcs` besides the builtins.
    pub fn parse<C>(
        name: &str,
        source: &str,
        funcs: &Functions<C>,
    ) -> Result<Template, ParseError> {
        Template::parse_with_delims(name, source, funcs, None)
    }

    /// [`Template::parse`] with other delimiters than `{{` and `}}` (Go's `Delims`; an empty
    /// one keeps the default, as in Go).
    pub fn parse_with_delims<C>(
        name: &str,
        source: &str,
        funcs: &Functions<C>,
        delims: Option<(&str, &str)>,
    ) -> Result<Template, ParseError> {
        let (left, right) = delims.unwrap_or_default();
        let left = if left.is_empty() {
            lex::LEFT_DELIM
        } else {
            left
        };
        let right = if right.is_empty() {
            lex::RIGHT_DELIM
        } else {
            right
        };
        let parsed = parse::parse(name, source, funcs, (left, right))?;
        Ok(Template {
            name: Arc::from(name),
            source: Arc::from(source),
            trees: parsed.trees,
            main: parsed.main,
            var_names: parsed.var_names,
            user_funcs: parsed.user_funcs,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The functions (not builtins) the set calls, each once.
    pub fn calls(&self) -> impl Iterator<Item = &str> {
        self.user_funcs.iter().map(|(_, name)| &**name)
    }

    /// Every call of the functions `names` in the set, with where it is and, when all its
    /// arguments are string literals, their values (a call fed by a pipeline, or with a
    /// computed argument, has none): what can be known of the call without executing it.
    pub fn find_calls(&self, names: &[&str]) -> Vec<FoundFunctionCall> {
        let mut finder = CallFinder {
            names,
            source: &self.source,
            found: Vec::new(),
        };
        for tree in &self.trees {
            finder.nodes(&tree.root);
        }
        finder.found
    }

    /// The names of the templates in the set, the main one included.
    pub fn templates(&self) -> impl Iterator<Item = &str> {
        self.trees.iter().map(|t| &*t.name)
    }

    /// Renders the main template with `data` as `.` and `$`, appending to `out`. `funcs` must
    /// be the table the template was parsed with (or one with the same names in the same
    /// slots). On error, `out` holds what was rendered before it.
    pub fn execute<C>(
        &self,
        ctx: &C,
        funcs: &Functions<C>,
        data: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), ExecError> {
        self.execute_tree(self.main, ctx, funcs, data, out, None)
    }

    /// [`Template::execute`] that gives up with an error once `deadline` has passed. A render
    /// that overran its budget is abandoned by its caller; this makes its thread stop too,
    /// instead of running on (a template calling itself twice per level runs for ever).
    pub fn execute_before<C>(
        &self,
        deadline: std::time::Instant,
        ctx: &C,
        funcs: &Functions<C>,
        data: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), ExecError> {
        self.execute_tree(self.main, ctx, funcs, data, out, Some(deadline))
    }

    /// Renders the template `name` of the set (Go's `ExecuteTemplate`).
    pub fn execute_template<C>(
        &self,
        name: &str,
        ctx: &C,
        funcs: &Functions<C>,
        data: &Value,
        out: &mut Vec<u8>,
    ) -> Result<(), ExecError> {
        let Some(index) = self.trees.iter().position(|t| &*t.name == name) else {
            return Err(self.plain_error(ExecErrorKind::NoTemplate {
                name: name.to_owned(),
                set: self.name.to_string(),
            }));
        };
        self.execute_tree(index as u32, ctx, funcs, data, out, None)
    }

    fn execute_tree<C>(
        &self,
        tree: u32,
        ctx: &C,
        funcs: &Functions<C>,
        data: &Value,
        out: &mut Vec<u8>,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), ExecError> {
        for (index, name) in &self.user_funcs {
            if funcs.entries.get(*index as usize).map(|e| &*e.name) != Some(&**name) {
                return Err(self.plain_error(ExecErrorKind::OtherFunctionTable(name.to_string())));
            }
        }
        exec::execute(self, tree, ctx, funcs, data, out, deadline)
    }

    /// An error of the whole set, before any template executes: at its start.
    fn plain_error(&self, kind: ExecErrorKind) -> ExecError {
        ExecError {
            name: self.name.to_string(),
            template: self.name.to_string(),
            line: 1,
            column: 1,
            context: String::new(),
            kind: Box::new(kind),
        }
    }
}

/// A call [`Template::find_calls`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFunctionCall {
    pub function: Arc<str>,
    /// 1-based, in characters.
    pub line: usize,
    pub column: usize,
    /// The arguments, when every one is a string literal.
    pub literal_args: Option<Vec<String>>,
}

struct CallFinder<'a> {
    names: &'a [&'a str],
    source: &'a str,
    found: Vec<FoundFunctionCall>,
}

impl CallFinder<'_> {
    fn nodes(&mut self, nodes: &[node::Node]) {
        for node in nodes {
            match node {
                node::Node::Action(pipe) => self.pipe(pipe),
                node::Node::If(branch) | node::Node::Range(branch) | node::Node::With(branch) => {
                    self.pipe(&branch.pipe);
                    self.nodes(&branch.list);
                    if let Some(list) = &branch.else_list {
                        self.nodes(list);
                    }
                }
                node::Node::Template {
                    pipe: Some(pipe), ..
                } => self.pipe(pipe),
                _ => {}
            }
        }
    }

    fn pipe(&mut self, pipe: &node::Pipe) {
        for (i, command) in pipe.cmds.iter().enumerate() {
            let mut args = command.args.iter();
            if let Some(node::Arg::Func { pos, name, .. }) = command.args.first()
                && self.names.contains(&&**name)
            {
                args.next();
                // After the first command of a pipeline, the previous result is the last
                // argument: never a literal.
                let literal_args = if i == 0 {
                    command.args[1..]
                        .iter()
                        .map(|arg| match arg {
                            node::Arg::Str { value, .. } => value.as_str().map(str::to_owned),
                            _ => None,
                        })
                        .collect()
                } else {
                    None
                };
                self.push(*pos, name, literal_args);
            }
            for arg in args {
                self.arg(arg);
            }
        }
    }

    fn arg(&mut self, arg: &node::Arg) {
        match arg {
            // A function named as an argument is called with no arguments.
            node::Arg::Func { pos, name, .. } if self.names.contains(&&**name) => {
                self.push(*pos, name, Some(Vec::new()));
            }
            node::Arg::Chain { node, .. } => self.arg(node),
            node::Arg::Pipe(pipe) => self.pipe(pipe),
            _ => {}
        }
    }

    fn push(&mut self, pos: u32, name: &Arc<str>, literal_args: Option<Vec<String>>) {
        let (line, column) = line_col(self.source, pos as usize);
        self.found.push(FoundFunctionCall {
            function: Arc::clone(name),
            line,
            column,
            literal_args,
        });
    }
}

/// 1-based line and column (in characters) of byte `pos` in `src`.
pub(crate) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = &src[..pos];
    let line = 1 + before.bytes().filter(|&b| b == b'\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = 1 + before[line_start..].chars().count();
    (line, column)
}

// The tree is shared between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<Functions<()>>();
    assert_send_sync::<Value>();
};
