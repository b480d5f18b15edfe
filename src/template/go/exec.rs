//! The executor: walks a tree, evaluating pipelines against `.` and writing into the output.
//!
//! It mirrors Go's `text/template/exec.go`: the same evaluation order, variable scoping (one
//! stack; `if`, `with` and `range` pop what they pushed, each `range` iteration too; a template
//! call starts a new frame holding only `$`), argument conversion against function signatures,
//! and the same messages. Text is copied from the source, values are printed straight into
//! the output, and function arguments are gathered in one reused buffer.

use std::io::Write as _;

use super::builtins::Builtin;
use super::error::{ExecError, ExecErrorKind, FuncError};
use super::node::{Arg, Branch, Callee, Command, Node, Number, Pipe, show};
use super::value::{ListType, Object, Value};
use super::{Functions, Native, Param, Signature, Template};

/// How deep templates may nest at execution: template calls plus `if`, `with` and `range`
/// blocks. (Go allows 100 000 template calls; this bound keeps the stack safe.)
pub const MAX_EXEC_DEPTH: usize = 1000;

/// How many blocks and range iterations run between two looks at the clock, when a deadline
/// is set: often enough to stop within a millisecond or so, rarely enough to cost nothing.
const DEADLINE_STRIDE: u32 = 256;

/// Why a walk stopped early.
enum Flow {
    Break,
    Continue,
    Error(Box<ExecError>),
}

type R<T> = Result<T, Flow>;

/// Where an error happened, for its position and context.
#[derive(Clone, Copy)]
enum At<'b> {
    Arg(&'b Arg),
    Cmd(&'b Command),
    Text(u32, &'b str),
}

/// What a call calls.
enum Target<'b> {
    Builtin(Builtin),
    User(usize),
    Method(&'b dyn Object, &'b str),
    PairsLen(usize),
}

/// A call about to be made, and where its problems are reported.
struct Call<'b> {
    name: &'b str,
    signature: Signature,
    target: Target<'b>,
    /// Argument count and type errors point at the function or method name.
    at_name: At<'b>,
    /// The callee's own error points at the whole command.
    at_call: At<'b>,
}

struct State<'a, C> {
    t: &'a Template,
    ctx: &'a C,
    funcs: &'a Functions<C>,
    out: &'a mut Vec<u8>,
    /// The variables; the current template's start at `frame`.
    vars: Vec<Var>,
    frame: usize,
    /// Arguments being gathered for calls.
    args: Vec<Value>,
    depth: usize,
    tree: u32,
    /// When to give up (the caller's render budget), and the steps since the clock was read.
    deadline: Option<std::time::Instant>,
    steps: u32,
    /// Whether dot is held in an interface (an element of the `[]interface {}` or map being
    /// ranged over): Go then names its type `interface {}` and refuses a field of a nil one.
    dot_in_interface: bool,
}

/// A variable on the stack.
struct Var {
    id: u32,
    value: Value,
    /// Held in an interface (a `range` variable over `[]interface {}`), as `dot_in_interface`.
    in_interface: bool,
}

impl Var {
    fn new(id: u32, value: Value) -> Var {
        Var {
            id,
            value,
            in_interface: false,
        }
    }
}

pub(crate) fn execute<C>(
    t: &Template,
    tree: u32,
    ctx: &C,
    funcs: &Functions<C>,
    data: &Value,
    out: &mut Vec<u8>,
    deadline: Option<std::time::Instant>,
) -> Result<(), ExecError> {
    let mut state = State {
        t,
        ctx,
        funcs,
        out,
        vars: vec![Var::new(0, data.clone())],
        frame: 0,
        args: Vec::new(),
        depth: 0,
        tree,
        deadline,
        steps: 0,
        dot_in_interface: false,
    };
    match state.walk_list(data, &t.trees[tree as usize].root) {
        Ok(()) | Err(Flow::Break | Flow::Continue) => Ok(()),
        Err(Flow::Error(e)) => Err(*e),
    }
}

/// Go's `idealConstant`: the value of a number constant where any type will do, an `int`
/// unless it is written as a float.
fn ideal(n: &Number) -> Result<Value, ExecErrorKind> {
    let text = &*n.text;
    let hex_int = text.len() > 2
        && text.starts_with('0')
        && matches!(text.as_bytes()[1], b'x' | b'X')
        && !text.contains(['p', 'P']);
    let rune = text.starts_with('\'');
    if let Some(f) = n.float
        && !hex_int
        && !rune
        && text.contains(['.', 'e', 'E', 'p', 'P'])
    {
        return Ok(Value::Float(f));
    }
    if let Some(i) = n.int {
        return Ok(Value::Int(i));
    }
    Err(ExecErrorKind::ConstantOverflow(text.to_owned()))
}

fn can_be_nil(param: Param) -> bool {
    matches!(
        param,
        Param::Any
            | Param::StringList
            | Param::PairList
            | Param::Map
            | Param::AnyList
            | Param::ObjectList(_)
    )
}

/// The value Go gives a nil argument of a parameter type that can be nil.
fn nil_of(param: Param) -> Value {
    match param {
        Param::StringList => Value::list(ListType::Strings, Vec::new()),
        Param::PairList => Value::list(ListType::PairSlice, Vec::new()),
        Param::Map => Value::map([]),
        Param::AnyList => Value::list(ListType::Any, Vec::new()),
        Param::ObjectList(name) => Value::list(ListType::Objects(name), Vec::new()),
        _ => Value::Nil,
    }
}

impl<'a, C> State<'a, C> {
    // ---- errors ----

    fn error(&self, at: At<'_>, kind: ExecErrorKind) -> Flow {
        let src = &*self.t.source;
        let names = &self.t.var_names;
        let (pos, context) = match at {
            At::Arg(arg) => (arg.pos(), show(arg, src, names).to_string()),
            At::Cmd(cmd) => (cmd.pos, show(cmd, src, names).to_string()),
            At::Text(pos, text) => (pos, text.to_owned()),
        };
        let (line, column) = super::line_col(src, pos as usize);
        Flow::Error(Box::new(ExecError {
            name: self.t.name.to_string(),
            template: self.t.trees[self.tree as usize].name.to_string(),
            line,
            column,
            context,
            kind: Box::new(kind),
        }))
    }

    fn enter(&mut self, pos: u32, what: &str) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_EXEC_DEPTH {
            return Err(self.error(At::Text(pos, what), ExecErrorKind::TooDeep(MAX_EXEC_DEPTH)));
        }
        self.step(pos, what)
    }

    /// Counts a unit of repeated work (a block entered, a range iteration) and stops the walk
    /// once the deadline has passed.
    fn step(&mut self, pos: u32, what: &str) -> R<()> {
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        self.steps += 1;
        if self.steps < DEADLINE_STRIDE {
            return Ok(());
        }
        self.steps = 0;
        if std::time::Instant::now() >= deadline {
            return Err(self.error(At::Text(pos, what), ExecErrorKind::Deadline));
        }
        Ok(())
    }

    // ---- walking ----

    fn walk_list(&mut self, dot: &Value, list: &[Node]) -> R<()> {
        for node in list {
            self.walk(dot, node)?;
        }
        Ok(())
    }

    fn walk(&mut self, dot: &Value, node: &Node) -> R<()> {
        match node {
            Node::Text { start, end } => {
                self.out
                    .extend_from_slice(&self.t.source.as_bytes()[*start as usize..*end as usize]);
                Ok(())
            }
            Node::Action(pipe) => {
                let value = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.print(&value);
                }
                Ok(())
            }
            Node::If(branch) => self.walk_if_or_with(dot, branch, false),
            Node::With(branch) => self.walk_if_or_with(dot, branch, true),
            Node::Range(branch) => self.walk_range(dot, branch),
            Node::Template {
                pos,
                name,
                target,
                pipe,
            } => self.walk_template(dot, *pos, name, *target, pipe.as_ref()),
            Node::Break => Err(Flow::Break),
            Node::Continue => Err(Flow::Continue),
        }
    }

    /// An action's value: `<no value>` for nil, otherwise Go's `fmt.Fprint`.
    fn print(&mut self, value: &Value) {
        match value {
            Value::Nil => self.out.extend_from_slice(b"<no value>"),
            Value::Str(s) => self.out.extend_from_slice(s.as_bytes()),
            Value::Int(i) => {
                let _ = write!(self.out, "{i}");
            }
            Value::Bool(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            other => super::fmt::sprint(self.out, std::slice::from_ref(other)),
        }
    }

    fn walk_if_or_with(&mut self, dot: &Value, branch: &Branch, with: bool) -> R<()> {
        self.enter(branch.pos, if with { "with" } else { "if" })?;
        let mark = self.vars.len();
        let value = self.eval_pipeline(dot, &branch.pipe)?;
        let result = if value.is_true() {
            if with {
                let saved = std::mem::replace(&mut self.dot_in_interface, false);
                let result = self.walk_list(&value, &branch.list);
                self.dot_in_interface = saved;
                result
            } else {
                self.walk_list(dot, &branch.list)
            }
        } else if let Some(else_list) = &branch.else_list {
            self.walk_list(dot, else_list)
        } else {
            Ok(())
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        result
    }

    fn walk_range(&mut self, dot: &Value, branch: &Branch) -> R<()> {
        self.enter(branch.pos, "range")?;
        let mark = self.vars.len();
        let value = self.eval_pipeline(dot, &branch.pipe)?;
        let top = self.vars.len();
        let iterated = match &value {
            Value::List(list) if !list.items.is_empty() => {
                let interfaces = list.ty.holds_interfaces();
                for (i, item) in list.items.iter().enumerate() {
                    let index = Value::Int(i as i64);
                    if self.range_iteration(branch, top, index, item, interfaces)? {
                        break;
                    }
                }
                true
            }
            Value::Map(map) if !map.is_empty() => {
                for (key, item) in map.iter() {
                    if self.range_iteration(branch, top, Value::Str(key.clone()), item, true)? {
                        break;
                    }
                }
                true
            }
            Value::List(_) | Value::Map(_) | Value::Nil => false,
            other => {
                let context = format!(
                    "range {}",
                    show(&branch.pipe, &self.t.source, &self.t.var_names)
                );
                return Err(self.error(
                    At::Text(branch.pos, &context),
                    ExecErrorKind::RangeOver(other.to_string()),
                ));
            }
        };
        let result = match (&branch.else_list, iterated) {
            (Some(else_list), false) => self.walk_list(dot, else_list),
            _ => Ok(()),
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        result
    }

    /// One pass through a range body; true when it ends with `{{break}}`.
    /// One pass through a range body; true when it ends with `{{break}}`. `interfaces`: the
    /// elements are interfaces (a nil one is then a nil in an interface).
    fn range_iteration(
        &mut self,
        branch: &Branch,
        top: usize,
        index: Value,
        elem: &Value,
        interfaces: bool,
    ) -> R<bool> {
        self.step(branch.pos, "range")?;
        let declared = branch.pipe.decl.len();
        // The declared variables are the topmost: `$e` last, `$i` before it.
        if declared > 0
            && let Some(slot) = top.checked_sub(1).and_then(|i| self.vars.get_mut(i))
        {
            slot.value = elem.clone();
            slot.in_interface = interfaces;
        }
        if declared > 1
            && let Some(slot) = top.checked_sub(2).and_then(|i| self.vars.get_mut(i))
        {
            slot.value = index;
            slot.in_interface = false;
        }
        let saved = std::mem::replace(&mut self.dot_in_interface, interfaces);
        let result = self.walk_list(elem, &branch.list);
        self.dot_in_interface = saved;
        self.vars.truncate(top);
        match result {
            Ok(()) | Err(Flow::Continue) => Ok(false),
            Err(Flow::Break) => Ok(true),
            Err(error) => Err(error),
        }
    }

    fn walk_template(
        &mut self,
        dot: &Value,
        pos: u32,
        name: &str,
        target: Option<u32>,
        pipe: Option<&Pipe>,
    ) -> R<()> {
        let context = || match pipe {
            Some(pipe) => format!(
                "{{{{template {name:?} {}}}}}",
                show(pipe, &self.t.source, &self.t.var_names)
            ),
            None => format!("{{{{template {name:?}}}}}"),
        };
        let Some(target) = target else {
            let context = context();
            return Err(self.error(
                At::Text(pos, &context),
                ExecErrorKind::TemplateNotDefined(name.to_owned()),
            ));
        };
        if self.depth >= MAX_EXEC_DEPTH {
            let context = context();
            return Err(self.error(
                At::Text(pos, &context),
                ExecErrorKind::TooDeep(MAX_EXEC_DEPTH),
            ));
        }
        let new_dot = match pipe {
            Some(pipe) => self.eval_pipeline(dot, pipe)?,
            None => Value::Nil,
        };
        self.depth += 1;
        let saved_frame = self.frame;
        let saved_tree = self.tree;
        let base = self.vars.len();
        self.frame = base;
        self.tree = target;
        self.vars.push(Var::new(0, new_dot.clone()));
        let saved = std::mem::replace(&mut self.dot_in_interface, false);
        let t = self.t;
        let result = self.walk_list(&new_dot, &t.trees[target as usize].root);
        self.dot_in_interface = saved;
        self.vars.truncate(base);
        self.frame = saved_frame;
        self.tree = saved_tree;
        self.depth -= 1;
        result
    }

    // ---- variables ----

    /// A variable's value, and whether it is held in an interface.
    fn var_value(&self, id: u32, at: At<'_>) -> R<(Value, bool)> {
        for var in self.vars[self.frame..].iter().rev() {
            if var.id == id {
                return Ok((var.value.clone(), var.in_interface));
            }
        }
        Err(self.undefined(id, at))
    }

    fn undefined(&self, id: u32, at: At<'_>) -> Flow {
        let name = self.t.var_names[id as usize].to_string();
        self.error(at, ExecErrorKind::UndefinedVariable(name))
    }

    fn set_var(&mut self, id: u32, value: Value, at: At<'_>) -> R<()> {
        let frame = self.frame;
        for var in self.vars[frame..].iter_mut().rev() {
            if var.id == id {
                var.value = value;
                var.in_interface = false;
                return Ok(());
            }
        }
        Err(self.undefined(id, at))
    }

    // ---- pipelines and commands ----

    fn eval_pipeline(&mut self, dot: &Value, pipe: &Pipe) -> R<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or_default();
        for var in &pipe.decl {
            if pipe.is_assign {
                let name = self.t.var_names[var.id as usize].clone();
                self.set_var(var.id, value.clone(), At::Text(var.pos, &name))?;
            } else {
                self.vars.push(Var::new(var.id, value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], final_value: &Option<Value>) -> R<()> {
        if args.len() > 1 || final_value.is_some() {
            let Some(first) = args.first() else {
                return Ok(());
            };
            let text = show(first, &self.t.source, &self.t.var_names).to_string();
            return Err(self.error(At::Arg(first), ExecErrorKind::NotAFunction(text)));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &Command, final_value: Option<Value>) -> R<Value> {
        let first = &cmd.args[0];
        match first {
            Arg::Field { fields, .. } => {
                let receiver = (dot.clone(), self.dot_in_interface);
                self.eval_field_chain(dot, receiver, first, fields, &cmd.args, final_value)
            }
            Arg::Chain { node, fields, .. } => {
                self.eval_chain(dot, first, node, fields, &cmd.args, final_value)
            }
            Arg::Func { .. } => {
                self.eval_function(dot, first, At::Cmd(cmd), &cmd.args, final_value)
            }
            Arg::Pipe(pipe) => {
                self.not_a_function(&cmd.args, &final_value)?;
                self.eval_pipeline(dot, pipe)
            }
            Arg::Variable { .. } => self.eval_variable(dot, first, &cmd.args, final_value),
            _ => {
                self.not_a_function(&cmd.args, &final_value)?;
                match first {
                    Arg::Bool(_, b) => Ok(Value::Bool(*b)),
                    Arg::Dot(_) => Ok(dot.clone()),
                    Arg::Nil(_) => Err(self.error(At::Arg(first), ExecErrorKind::NilCommand)),
                    Arg::Number(_, n) => ideal(n).map_err(|e| self.error(At::Arg(first), e)),
                    Arg::Str { value, .. } => Ok(value.clone()),
                    _ => unreachable!("handled above"),
                }
            }
        }
    }

    fn eval_variable(
        &mut self,
        dot: &Value,
        node: &Arg,
        args: &[Arg],
        final_value: Option<Value>,
    ) -> R<Value> {
        let Arg::Variable { id, fields, .. } = node else {
            unreachable!("a variable node")
        };
        let (value, in_interface) = self.var_value(*id, At::Arg(node))?;
        if fields.is_empty() {
            self.not_a_function(args, &final_value)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, (value, in_interface), node, fields, args, final_value)
    }

    fn eval_chain(
        &mut self,
        dot: &Value,
        node: &Arg,
        inner: &Arg,
        fields: &[std::sync::Arc<str>],
        args: &[Arg],
        final_value: Option<Value>,
    ) -> R<Value> {
        if let Arg::Nil(_) = inner {
            let text = show(node, &self.t.source, &self.t.var_names).to_string();
            return Err(self.error(At::Arg(node), ExecErrorKind::NilIndirection(text)));
        }
        let receiver = self.eval_arg(dot, Param::Any, inner)?;
        self.eval_field_chain(dot, (receiver, false), node, fields, args, final_value)
    }

    /// `receiver.a.b.c`; `receiver` comes with whether it is held in an interface.
    fn eval_field_chain(
        &mut self,
        dot: &Value,
        receiver: (Value, bool),
        node: &Arg,
        fields: &[std::sync::Arc<str>],
        args: &[Arg],
        final_value: Option<Value>,
    ) -> R<Value> {
        let mut receiver = receiver;
        let (last, init) = fields.split_last().expect("a chain has fields");
        for field in init {
            let value = self.eval_field(dot, field, node, &[], None, receiver.clone())?;
            // An entry of a `map[string]interface {}` is an interface; a missing one nothing.
            let in_interface = matches!(&receiver.0, Value::Map(map) if map.contains_key(&**field));
            receiver = (value, in_interface);
        }
        self.eval_field(dot, last, node, args, final_value, receiver)
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &Arg,
        args: &[Arg],
        final_value: Option<Value>,
        receiver: (Value, bool),
    ) -> R<Value> {
        let (receiver, in_interface) = receiver;
        let has_args = args.len() > 1 || final_value.is_some();
        match &receiver {
            // Go refuses a field of a nil in an interface; a field of nothing is nothing.
            Value::Nil if in_interface => {
                return Err(self.error(
                    At::Arg(node),
                    ExecErrorKind::NilInterfaceField(name.to_owned()),
                ));
            }
            Value::Nil => return Ok(Value::Nil),
            Value::Map(map) => {
                if has_args {
                    return Err(self.error(
                        At::Arg(node),
                        ExecErrorKind::KeyWithArguments(name.to_owned()),
                    ));
                }
                return Ok(map.get(name).cloned().unwrap_or_default());
            }
            Value::Pair(pair) => {
                let field = match name {
                    "Key" => Some(&pair.key),
                    "Value" => Some(&pair.value),
                    _ => None,
                };
                if let Some(field) = field {
                    if has_args {
                        return Err(self.error(
                            At::Arg(node),
                            ExecErrorKind::FieldWithArguments(name.to_owned()),
                        ));
                    }
                    return Ok(Value::Str(field.clone()));
                }
            }
            Value::List(list) if list.ty == ListType::Pairs && name == "Len" => {
                // memkv.KVPairs implements sort.Interface.
                let len = list.items.len();
                let call = Call {
                    name,
                    signature: Signature::new(&[], None),
                    target: Target::PairsLen(len),
                    at_name: At::Arg(node),
                    at_call: At::Arg(node),
                };
                return self.eval_call(dot, call, args, final_value);
            }
            Value::Object(object) => {
                if let Some(signature) = object.method(name) {
                    let object = object.clone();
                    let call = Call {
                        name,
                        signature,
                        target: Target::Method(&*object, name),
                        at_name: At::Arg(node),
                        at_call: At::Arg(node),
                    };
                    return self.eval_call(dot, call, args, final_value);
                }
                if let Some(value) = object.field(name) {
                    if has_args {
                        return Err(self.error(
                            At::Arg(node),
                            ExecErrorKind::FieldWithArguments(name.to_owned()),
                        ));
                    }
                    return Ok(value);
                }
            }
            _ => {}
        }
        let type_name = if in_interface {
            "interface {}"
        } else {
            receiver.type_name()
        };
        Err(self.error(
            At::Arg(node),
            ExecErrorKind::NoField {
                field: name.to_owned(),
                type_name: type_name.to_owned(),
            },
        ))
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        node: &Arg,
        at_call: At<'_>,
        args: &[Arg],
        final_value: Option<Value>,
    ) -> R<Value> {
        let Arg::Func { name, callee, .. } = node else {
            unreachable!("a function node")
        };
        let (signature, target) = match *callee {
            Callee::Builtin(b @ (Builtin::And | Builtin::Or)) => {
                return self.eval_and_or(dot, node, name, b == Builtin::Or, args, final_value);
            }
            Callee::Builtin(b) => (b.signature(), Target::Builtin(b)),
            Callee::User(i) => (
                self.funcs.entries[i as usize].signature,
                Target::User(i as usize),
            ),
        };
        let call = Call {
            name,
            signature,
            target,
            at_name: At::Arg(node),
            at_call,
        };
        self.eval_call(dot, call, args, final_value)
    }

    /// `and` and `or` evaluate their arguments only as far as the first deciding one.
    fn eval_and_or(
        &mut self,
        dot: &Value,
        node: &Arg,
        name: &str,
        or: bool,
        args: &[Arg],
        final_value: Option<Value>,
    ) -> R<Value> {
        let rest = args.get(1..).unwrap_or_default();
        if rest.len() + usize::from(final_value.is_some()) < 1 {
            return Err(self.error(
                At::Arg(node),
                ExecErrorKind::ArgCount {
                    function: name.to_owned(),
                    want: 1,
                    got: 0,
                    variadic: true,
                },
            ));
        }
        let mut value = Value::Nil;
        for arg in rest {
            value = self.eval_arg(dot, Param::Any, arg)?;
            if value.is_true() == or {
                return Ok(value);
            }
        }
        if let Some(final_value) = final_value {
            value = final_value;
        }
        Ok(value)
    }

    fn eval_call(
        &mut self,
        dot: &Value,
        call: Call<'_>,
        args: &[Arg],
        final_value: Option<Value>,
    ) -> R<Value> {
        let name = call.name;
        let rest = args.get(1..).unwrap_or_default();
        let num_in = rest.len() + usize::from(final_value.is_some());
        let params = call.signature.params;
        let num_fixed = if call.signature.variadic.is_some() {
            if num_in < params.len() {
                return Err(self.error(
                    call.at_name,
                    ExecErrorKind::ArgCount {
                        function: name.to_owned(),
                        want: params.len(),
                        // As Go: the arguments written, a piped value not counted.
                        got: rest.len(),
                        variadic: true,
                    },
                ));
            }
            params.len()
        } else {
            if num_in != params.len() {
                return Err(self.error(
                    call.at_name,
                    ExecErrorKind::ArgCount {
                        function: name.to_owned(),
                        want: params.len(),
                        got: num_in,
                        variadic: false,
                    },
                ));
            }
            rest.len()
        };
        let base = self.args.len();
        let result = self
            .gather_args(dot, &call, rest, num_fixed, final_value)
            .and_then(|()| {
                let args = &self.args[base..];
                let result = match call.target {
                    Target::Builtin(b) => b.call(args).map_err(FuncError::from),
                    Target::User(i) => {
                        let function: Native<C> = self.funcs.entries[i].function;
                        function(self.ctx, args)
                    }
                    Target::Method(object, method) => object.call(method, args),
                    Target::PairsLen(len) => Ok(Value::Int(len as i64)),
                };
                result.map_err(|error| {
                    let function = name.to_owned();
                    self.error(call.at_call, ExecErrorKind::Call { function, error })
                })
            });
        self.args.truncate(base);
        result
    }

    /// Evaluates the arguments of `call` onto the argument stack, converted to its parameters;
    /// the piped value, if any, goes last.
    fn gather_args(
        &mut self,
        dot: &Value,
        call: &Call<'_>,
        rest: &[Arg],
        num_fixed: usize,
        final_value: Option<Value>,
    ) -> R<()> {
        let signature = call.signature;
        for (i, arg) in rest.iter().enumerate() {
            let param = match signature.variadic {
                Some(variadic) if i >= num_fixed => variadic,
                _ => signature.params[i],
            };
            let value = self.eval_arg(dot, param, arg)?;
            self.args.push(value);
        }
        if let Some(final_value) = final_value {
            let num_in = rest.len() + 1;
            let param = match signature.variadic {
                Some(variadic) if num_in > num_fixed => variadic,
                _ => signature.params[num_in - 1],
            };
            let value = self.validate(final_value, param, call.at_name)?;
            self.args.push(value);
        }
        Ok(())
    }

    // ---- arguments ----

    fn eval_arg(&mut self, dot: &Value, param: Param, arg: &Arg) -> R<Value> {
        let value = match arg {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) => {
                if can_be_nil(param) {
                    return Ok(nil_of(param));
                }
                return Err(self.error(At::Arg(arg), ExecErrorKind::NilArgument(param.type_name())));
            }
            Arg::Field { fields, .. } => self.eval_field_chain(
                dot,
                (dot.clone(), self.dot_in_interface),
                arg,
                fields,
                &[],
                None,
            )?,
            Arg::Variable { .. } => self.eval_variable(dot, arg, &[], None)?,
            Arg::Pipe(pipe) => self.eval_pipeline(dot, pipe)?,
            Arg::Func { .. } => {
                self.eval_function(dot, arg, At::Arg(arg), std::slice::from_ref(arg), None)?
            }
            Arg::Chain { node, fields, .. } => {
                self.eval_chain(dot, arg, node, fields, &[], None)?
            }
            Arg::Bool(..) | Arg::Number(..) | Arg::Str { .. } => {
                return self.eval_literal(param, arg);
            }
        };
        self.validate(value, param, At::Arg(arg))
    }

    /// A constant given to a parameter: it must fit the parameter's type.
    fn eval_literal(&self, param: Param, arg: &Arg) -> R<Value> {
        let fits = match (param, arg) {
            (Param::Any, Arg::Number(_, n)) => {
                return ideal(n).map_err(|e| self.error(At::Arg(arg), e));
            }
            (Param::Any | Param::Bool, Arg::Bool(_, b)) => Some(Value::Bool(*b)),
            (Param::Any | Param::String, Arg::Str { value, .. }) => Some(value.clone()),
            (Param::Int, Arg::Number(_, n)) => n.int.map(Value::Int),
            (Param::Float, Arg::Number(_, n)) => n.float.map(Value::Float),
            _ => None,
        };
        if let Some(value) = fits {
            return Ok(value);
        }
        let constant = show(arg, &self.t.source, &self.t.var_names).to_string();
        let expected = match param {
            Param::Bool => "bool",
            Param::Int => "integer",
            Param::Float => "float",
            Param::String => "string",
            other => {
                let param = other.type_name();
                return Err(
                    self.error(At::Arg(arg), ExecErrorKind::ConstantFor { constant, param })
                );
            }
        };
        Err(self.error(
            At::Arg(arg),
            ExecErrorKind::ConstantType { expected, constant },
        ))
    }

    /// Go's `validateType`: may `value` be passed as `param`?
    fn validate(&self, value: Value, param: Param, at: At<'_>) -> R<Value> {
        let ok = match (&value, param) {
            (Value::Nil, _) => {
                if can_be_nil(param) {
                    return Ok(nil_of(param));
                }
                return Err(self.error(at, ExecErrorKind::NoValue(param.type_name())));
            }
            (_, Param::Any)
            | (Value::Str(_), Param::String)
            | (Value::Int(_), Param::Int)
            | (Value::Float(_), Param::Float)
            | (Value::Bool(_), Param::Bool)
            | (Value::Map(_), Param::Map)
            | (Value::Pair(_), Param::Pair) => true,
            (Value::List(list), Param::StringList) => list.ty == ListType::Strings,
            (Value::List(list), Param::PairList) => {
                matches!(list.ty, ListType::Pairs | ListType::PairSlice)
            }
            (Value::List(list), Param::AnyList) => list.ty == ListType::Any,
            (Value::List(list), Param::ObjectList(name)) => list.ty == ListType::Objects(name),
            _ => false,
        };
        if ok {
            return Ok(value);
        }
        Err(self.error(
            at,
            ExecErrorKind::ArgType {
                expected: param.type_name(),
                got: value.type_name().to_owned(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::lex::Kind;
    use super::super::node::parse_number;
    use super::*;

    #[test]
    fn ideal_constants_are_int_unless_written_as_floats() {
        let ideal = |text: &str| {
            let kind = if text.starts_with('\'') {
                Kind::CharConstant
            } else {
                Kind::Number
            };
            ideal(&parse_number(text, kind).unwrap())
        };
        assert!(matches!(ideal("3"), Ok(Value::Int(3))));
        assert!(matches!(ideal("0x1E"), Ok(Value::Int(30))));
        assert!(matches!(ideal("'x'"), Ok(Value::Int(120))));
        assert!(matches!(ideal("1e3"), Ok(Value::Float(f)) if f == 1000.0));
        assert!(matches!(ideal("3.0"), Ok(Value::Float(f)) if f == 3.0));
        assert_eq!(
            ideal("18446744073709551615").unwrap_err().to_string(),
            "18446744073709551615 overflows int"
        );
    }
}
