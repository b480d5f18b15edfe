//! The errors of the Go engine, with Go's messages: a [`ParseError`] for a template that does
//! not parse; an [`ExecError`] for one that fails executing, which says where and, as an
//! [`ExecErrorKind`], what failed; a [`FuncError`] for a function or method that failed (what
//! Go prints after `error calling X: `), of which a builtin's is a [`BuiltinError`]. They mirror
//! the errors of Go's `text/template`: `exec.go`'s `ExecError` and its `errorf` calls, and the
//! errors `funcs.go` returns.
//!
//! A message quotes its cause, as Go's do (`error calling getv: key "/a" refused: …`), and the
//! cause is also the error's `source`: the error-chain printer skips a cause the message
//! already quotes.
//!
//! A leaf of the engine: every other file of it may import this one, and this one imports none
//! of them (a value's method fails with a [`FuncError`], and the executor reports it).

use crate::catalog::ServiceError;
use crate::store::LookupError;

/// A template that does not parse: where, and why.
///
/// The message is text: Go's parse errors are, nobody branches on them, and they end up in a
/// configuration error that shows the line they point at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: {name}:{line}:{column}: {message}")]
pub struct ParseError {
    /// The template's name.
    pub name: String,
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// A failed execution: where, in which template, at which part of the action, and what failed.
#[derive(Debug, thiserror::Error)]
#[error("template: {name}:{line}:{column}: executing {template:?} at <{context}>: {kind}")]
pub struct ExecError {
    /// The name the source was parsed under.
    pub name: String,
    /// The template (main, `define` or `block`) that was executing.
    pub template: String,
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// The part of the action that failed, as Go shows it (`index .a 5`).
    pub context: String,
    /// Boxed: errors are rare, and a `Result` of the executor stays small.
    #[source]
    pub kind: Box<ExecErrorKind>,
}

/// What failed executing a template. Values and constants are named as Go prints them in the
/// message (`"a"`, `.b`, `$x`), types by their Go names (`[]string`, `memkv.KVPair`).
#[derive(Debug, thiserror::Error)]
pub enum ExecErrorKind {
    /// A function or method returned an error.
    #[error("error calling {function}: {error}")]
    Call {
        function: String,
        #[source]
        error: FuncError,
    },
    /// Too few or too many arguments; `variadic`: the function takes `want` or more.
    #[error(
        "wrong number of args for {function}: want {}{want} got {got}",
        if *.variadic { "at least " } else { "" }
    )]
    ArgCount {
        function: String,
        want: usize,
        got: usize,
        variadic: bool,
    },
    /// A constant that does not fit a `bool`, `int`, `float64` or `string` parameter
    /// (`expected` is `bool`, `integer`, `float` or `string`).
    #[error("expected {expected}; found {constant}")]
    ConstantType {
        expected: &'static str,
        constant: String,
    },
    /// A constant given to a parameter of another type (`[]string`, `memkv.KVPair`, …).
    #[error("can't handle {constant} for arg of type {param}")]
    ConstantFor {
        constant: String,
        param: &'static str,
    },
    /// A number constant that fits no `int` where any type would do (`18446744073709551615`).
    #[error("{0} overflows int")]
    ConstantOverflow(String),
    /// A value of another type than the parameter's.
    #[error("wrong type for value; expected {expected}; got {got}")]
    ArgType { expected: &'static str, got: String },
    /// Nothing (a missing field, a nil) given to a parameter that cannot be nil.
    #[error("invalid value; expected {0}")]
    NoValue(&'static str),
    /// The constant `nil` given to a parameter that cannot be nil.
    #[error("cannot assign nil to {0}")]
    NilArgument(&'static str),
    #[error("nil is not a command")]
    NilCommand,
    /// Arguments after something that is not a function (`{{.a 1}}` on a map, `{{$x 1}}`).
    #[error("can't give argument to non-function {0}")]
    NotAFunction(String),
    #[error("undefined variable: {0}")]
    UndefinedVariable(String),
    /// A field of the constant `nil` (`{{(nil).a}}`).
    #[error("indirection through explicit nil in {0}")]
    NilIndirection(String),
    /// A field of a nil held in an interface (a JSON `null`).
    #[error("nil pointer evaluating interface {{}}.{0}")]
    NilInterfaceField(String),
    /// Arguments after a map key (`{{.m.k 1}}`).
    #[error("{0} is not a method but has arguments")]
    KeyWithArguments(String),
    /// Arguments after a struct field (`{{.Key 1}}`).
    #[error("{0} has arguments but cannot be invoked as function")]
    FieldWithArguments(String),
    #[error("can't evaluate field {field} in type {type_name}")]
    NoField { field: String, type_name: String },
    /// `range` over something that is neither a list nor a map (printed as `%v`).
    #[error("range can't iterate over {0}")]
    RangeOver(String),
    #[error("template {0:?} not defined")]
    TemplateNotDefined(String),
    /// Templates and blocks nested deeper than the limit (`MAX_EXEC_DEPTH`).
    #[error("exceeded maximum template depth ({0})")]
    TooDeep(usize),
    /// The render's deadline passed: its caller gave up on it.
    #[error("stopped: the render took longer than its time budget")]
    Deadline,
    /// `ExecuteTemplate` of a name the set does not have.
    #[error("no template {name:?} associated with template {set:?}")]
    NoTemplate { name: String, set: String },
    /// Executed with a function table other than the one the template was parsed with.
    #[error("function {0:?} not defined: the template was parsed with another function table")]
    OtherFunctionTable(String),
}

/// Why a function or method a template called failed: the `error` of a Go function returning
/// `(T, error)`. Go prints it after `error calling X: `.
#[derive(Debug, thiserror::Error)]
pub enum FuncError {
    /// A builtin refused its operands.
    #[error(transparent)]
    Builtin(#[from] BuiltinError),
    /// A key the function read is refused, or out of the resource's reach.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// Consul's catalog has no answer (not watched yet, refused), or the query is wrong.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A method the object announced, which it then does not answer.
    #[error("{type_name} has no method {method}")]
    NoMethod { type_name: String, method: String },
    /// The function's own failure: what the function map defines (confd's, in
    /// `super::confd::ConfdError`), or what a function registered by a program returns.
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl FuncError {
    /// A function's own failure, from its error (or from a message: a `&str` or `String`
    /// becomes an error that displays it, as Go's `errors.New` does).
    pub fn failed(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> FuncError {
        FuncError::Failed(error.into())
    }
}

/// Why a builtin (`len`, `index`, `slice`, `eq`, `lt`, …) refused its operands: Go's
/// `funcs.go`, whose `errBadComparisonType`, `errBadComparison` and `errNoComparison` are the
/// three comparison variants. Types are named as Go names them; `reflect:` messages are the
/// panics Go's reflection reports for what its own checks let through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuiltinError {
    /// `len nil`
    #[error("reflect: call of reflect.Value.Type on zero Value")]
    LenOfNil,
    #[error("len of type {0}")]
    LenOfType(String),
    #[error("cannot index slice/array with nil")]
    NilIndex,
    #[error("cannot index slice/array with type {0}")]
    IndexType(String),
    #[error("index out of range: {0}")]
    IndexOutOfRange(i64),
    /// An index equal to the length of a list.
    #[error("reflect: slice index out of range")]
    SliceIndexOutOfRange,
    /// An index equal to the length of a string.
    #[error("reflect: string index out of range")]
    StringIndexOutOfRange,
    #[error("index of untyped nil")]
    IndexOfNil,
    /// A nil map key.
    #[error("value is nil; should be of type string")]
    NilKey,
    #[error("value has type {0}; should be string")]
    KeyType(String),
    /// Indexing into a nil found inside the item.
    #[error("index of nil pointer")]
    IndexOfNilPointer,
    #[error("can't index item of type {0}")]
    CannotIndex(String),
    #[error("slice of untyped nil")]
    SliceOfNil,
    #[error("too many slice indexes: {0}")]
    TooManySliceIndexes(usize),
    #[error("cannot 3-index slice a string")]
    ThreeIndexString,
    #[error("can't slice item of type {0}")]
    CannotSlice(String),
    /// Slice indexes out of order (`low > high`).
    #[error("invalid slice index: {0} > {1}")]
    SliceIndexOrder(usize, usize),
    /// `eq` with one operand.
    #[error("missing argument for comparison")]
    NoComparison,
    /// An operand of `lt`, `le`, `gt` or `ge` that is not a bool, number or string.
    #[error("invalid type for comparison")]
    BadComparisonType,
    /// Operands of different basic kinds.
    #[error("incompatible types for comparison")]
    BadComparison,
    /// `eq` of values of different types that are not basic kinds (each printed as `%v`).
    #[error("non-comparable types {left}: {left_type}, {right_type}: {right}")]
    NonComparableTypes {
        left: String,
        left_type: String,
        right: String,
        right_type: String,
    },
    /// `eq` of two lists or two maps.
    #[error("non-comparable type {value}: {type_name}")]
    NonComparable { value: String, type_name: String },
}
