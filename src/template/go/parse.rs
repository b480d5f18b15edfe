//! The parser: tokens → trees, with Go's grammar, checks and messages.
//!
//! One source gives a set of trees: the main one and one per `{{define}}` / `{{block}}`.
//! Function names are resolved here (an unknown one is an error, as in Go), to indexes into
//! the [`Functions`] table or to a builtin, so execution never looks a name up. Variables are
//! checked against the declarations in scope and interned to small ids.

use std::collections::HashMap;
use std::sync::Arc;

use super::builtins::Builtin;
use super::lex::{Kind, Token, lex};
use super::value::Value;
use super::{Functions, ParseError};

/// Deepest nesting of control structures and parentheses a template may have.
pub const MAX_PARSE_DEPTH: usize = 100;

/// A parsed template: its name and its top-level nodes.
pub(crate) struct Tree {
    pub name: Arc<str>,
    pub root: Vec<Node>,
}

pub(crate) enum Node {
    /// Text to copy: a byte range of the source.
    Text {
        start: u32,
        end: u32,
    },
    Action(Pipe),
    If(Box<Branch>),
    Range(Box<Branch>),
    With(Box<Branch>),
    Template {
        pos: u32,
        name: Arc<str>,
        /// Index of the named tree in the set, if it exists.
        target: Option<u32>,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

pub(crate) struct Branch {
    pub pos: u32,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

pub(crate) struct Pipe {
    pub pos: u32,
    pub is_assign: bool,
    pub decl: Vec<VarRef>,
    pub cmds: Vec<Command>,
}

#[derive(Clone, Copy)]
pub(crate) struct VarRef {
    pub pos: u32,
    pub id: u32,
}

pub(crate) struct Command {
    pub pos: u32,
    pub args: Vec<Arg>,
}

/// What a function name refers to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Callee {
    Builtin(Builtin),
    /// An index into the [`Functions`] table the template was parsed with.
    User(u32),
}

/// An operand.
pub(crate) enum Arg {
    /// `.a.b`
    Field {
        pos: u32,
        fields: Box<[Arc<str>]>,
    },
    /// `$x`, `$x.a.b`
    Variable {
        pos: u32,
        id: u32,
        fields: Box<[Arc<str>]>,
    },
    /// `(pipeline).a.b`, `func.a`
    Chain {
        pos: u32,
        node: Box<Arg>,
        fields: Box<[Arc<str>]>,
    },
    Func {
        pos: u32,
        name: Arc<str>,
        callee: Callee,
    },
    Dot(u32),
    Nil(u32),
    Bool(u32, bool),
    Number(u32, Box<Number>),
    /// A string literal: its value and the source span of its quoted form.
    Str {
        pos: u32,
        end: u32,
        value: Value,
    },
    Pipe(Box<Pipe>),
}

impl Arg {
    pub fn pos(&self) -> u32 {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Chain { pos, .. }
            | Arg::Func { pos, .. }
            | Arg::Dot(pos)
            | Arg::Nil(pos)
            | Arg::Bool(pos, _)
            | Arg::Number(pos, _)
            | Arg::Str { pos, .. } => *pos,
            Arg::Pipe(pipe) => pipe.pos,
        }
    }
}

/// A number constant with every Go type it can take.
pub(crate) struct Number {
    pub text: Box<str>,
    pub int: Option<i64>,
    pub is_uint: bool,
    pub float: Option<f64>,
}

impl Number {
    /// Go's `idealConstant`: the value of the constant where any type will do.
    pub fn ideal(&self) -> Result<Value, String> {
        let text = &*self.text;
        let hex_int = text.len() > 2
            && text.starts_with('0')
            && matches!(text.as_bytes()[1], b'x' | b'X')
            && !text.contains(['p', 'P']);
        let rune = text.starts_with('\'');
        if let Some(f) = self.float
            && !hex_int
            && !rune
            && text.contains(['.', 'e', 'E', 'p', 'P'])
        {
            return Ok(Value::Float(f));
        }
        if let Some(i) = self.int {
            return Ok(Value::Int(i));
        }
        Err(format!("{text} overflows int"))
    }
}

// ---- rendering nodes back to text, for error contexts (Go's Node.String) ----

pub(crate) struct Show<'a, T: ?Sized> {
    pub node: &'a T,
    pub src: &'a str,
    pub names: &'a [Arc<str>],
}

pub(crate) fn show<'a, T: ?Sized>(node: &'a T, src: &'a str, names: &'a [Arc<str>]) -> Show<'a, T> {
    Show { node, src, names }
}

impl std::fmt::Display for Show<'_, Arg> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.node {
            Arg::Field { fields, .. } => {
                for field in fields.iter() {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
            Arg::Variable { id, fields, .. } => {
                write!(f, "{}", self.names[*id as usize])?;
                for field in fields.iter() {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
            Arg::Chain { node, fields, .. } => {
                if let Arg::Pipe(_) = **node {
                    write!(f, "({})", show(&**node, self.src, self.names))?;
                } else {
                    write!(f, "{}", show(&**node, self.src, self.names))?;
                }
                for field in fields.iter() {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
            Arg::Func { name, .. } => f.write_str(name),
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number(_, n) => f.write_str(&n.text),
            Arg::Str { pos, end, .. } => f.write_str(&self.src[*pos as usize..*end as usize]),
            Arg::Pipe(pipe) => write!(f, "{}", show(&**pipe, self.src, self.names)),
        }
    }
}

impl std::fmt::Display for Show<'_, Command> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, arg) in self.node.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if let Arg::Pipe(_) = arg {
                write!(f, "({})", show(arg, self.src, self.names))?;
            } else {
                write!(f, "{}", show(arg, self.src, self.names))?;
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Show<'_, Pipe> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pipe = self.node;
        if !pipe.decl.is_empty() {
            for (i, v) in pipe.decl.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(&self.names[v.id as usize])?;
            }
            f.write_str(if pipe.is_assign { " = " } else { " := " })?;
        }
        for (i, cmd) in pipe.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{}", show(cmd, self.src, self.names))?;
        }
        Ok(())
    }
}

// ---- the parser ----

/// The result of parsing one source: trees and the names they use.
pub(crate) struct Parsed {
    pub trees: Vec<Tree>,
    pub main: u32,
    pub var_names: Vec<Arc<str>>,
    pub user_funcs: Vec<(u32, Arc<str>)>,
}

/// What `textOrAction` found: a node, or the `{{end}}` / `{{else}}` closing a list.
enum Item {
    Node(Node),
    End(u32),
    Else(u32),
}

struct Parser<'a, C> {
    name: &'a str,
    src: &'a str,
    tokens: Vec<Token>,
    i: usize,
    funcs: &'a Functions<C>,
    /// Variables declared at this point (Go's `t.vars`), as ids.
    vars: Vec<u32>,
    var_names: Vec<Arc<str>>,
    var_ids: HashMap<Arc<str>, u32>,
    user_funcs: Vec<(u32, Arc<str>)>,
    range_depth: usize,
    depth: usize,
    trees: Vec<Tree>,
    tree_index: HashMap<Arc<str>, u32>,
}

type PResult<T> = Result<T, ParseError>;

pub(crate) fn parse<C>(name: &str, src: &str, funcs: &Functions<C>) -> PResult<Parsed> {
    let tokens = lex(
        name,
        src,
        !funcs.contains("break"),
        !funcs.contains("continue"),
    );
    let mut p = Parser {
        name,
        src,
        tokens,
        i: 0,
        funcs,
        vars: Vec::new(),
        var_names: Vec::new(),
        var_ids: HashMap::new(),
        user_funcs: Vec::new(),
        range_depth: 0,
        depth: 0,
        trees: Vec::new(),
        tree_index: HashMap::new(),
    };
    let dollar = p.intern("$");
    p.vars.push(dollar);
    let root = p.parse_top()?;
    let main_name: Arc<str> = Arc::from(name);
    p.add_tree(main_name.clone(), root, 0)?;
    let main = p.tree_index[&main_name];
    // Resolve template calls now that every tree is known.
    let index = std::mem::take(&mut p.tree_index);
    for tree in &mut p.trees {
        resolve_templates(&mut tree.root, &index);
    }
    Ok(Parsed {
        trees: p.trees,
        main,
        var_names: p.var_names,
        user_funcs: p.user_funcs,
    })
}

fn resolve_templates(list: &mut [Node], index: &HashMap<Arc<str>, u32>) {
    for node in list {
        match node {
            Node::Template { name, target, .. } => *target = index.get(name).copied(),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                resolve_templates(&mut b.list, index);
                if let Some(else_list) = &mut b.else_list {
                    resolve_templates(else_list, index);
                }
            }
            _ => {}
        }
    }
}

/// Go's `IsEmptyTree`: nothing but white space and comments.
fn is_empty_tree(src: &str, list: &[Node]) -> bool {
    list.iter().all(|node| match node {
        Node::Text { start, end } => src[*start as usize..*end as usize].trim().is_empty(),
        _ => false,
    })
}

/// Go's `strconv.Unquote` for string and character literals, and raw strings.
pub(crate) fn unquote(text: &str) -> Result<String, String> {
    let bad = || format!("invalid syntax in {text}");
    if let Some(raw) = text.strip_prefix('`') {
        let raw = raw.strip_suffix('`').ok_or_else(bad)?;
        return Ok(raw.replace('\r', ""));
    }
    let quote = text.chars().next().ok_or_else(bad)?;
    if quote != '"' && quote != '\'' {
        return Err(bad());
    }
    let body = text[1..].strip_suffix(quote).ok_or_else(bad)?;
    if body.contains('\n') {
        return Err(bad());
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut rest = body;
    while !rest.is_empty() {
        let (piece, tail) = unquote_char(rest, quote).map_err(|()| bad())?;
        match piece {
            Piece::Char(c) => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
            Piece::Byte(b) => out.push(b),
        }
        rest = tail;
        if quote == '\'' && !rest.is_empty() {
            return Err(bad());
        }
    }
    // A `\x` or octal escape may make bytes that are not UTF-8; those cannot be held here.
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

pub(crate) enum Piece {
    Char(char),
    Byte(u8),
}

/// Go's `strconv.UnquoteChar`: the first character of `s`, escapes decoded, and the rest.
pub(crate) fn unquote_char(s: &str, quote: char) -> Result<(Piece, &str), ()> {
    let mut chars = s.chars();
    let c = chars.next().ok_or(())?;
    if c == quote && (quote == '\'' || quote == '"') {
        return Err(());
    }
    if c != '\\' {
        return Ok((Piece::Char(c), chars.as_str()));
    }
    let e = chars.next().ok_or(())?;
    let rest = chars.as_str();
    let simple = match e {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        '\\' => Some('\\'),
        '\'' | '"' if e == quote => Some(e),
        _ => None,
    };
    if let Some(c) = simple {
        return Ok((Piece::Char(c), rest));
    }
    match e {
        'x' | 'u' | 'U' => {
            let n = match e {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            if rest.len() < n || !rest.is_char_boundary(n) {
                return Err(());
            }
            let v = u32::from_str_radix(&rest[..n], 16).map_err(|_| ())?;
            if rest[..n].starts_with(['+', '-']) {
                return Err(());
            }
            if e == 'x' {
                return Ok((Piece::Byte(v as u8), &rest[n..]));
            }
            let c = char::from_u32(v).ok_or(())?;
            Ok((Piece::Char(c), &rest[n..]))
        }
        '0'..='7' => {
            let digits = &s[1..];
            if digits.len() < 3 || !digits.is_char_boundary(3) {
                return Err(());
            }
            let mut v = 0u32;
            for b in digits[..3].bytes() {
                if !(b'0'..=b'7').contains(&b) {
                    return Err(());
                }
                v = v * 8 + u32::from(b - b'0');
            }
            if v > 255 {
                return Err(());
            }
            Ok((Piece::Byte(v as u8), &digits[3..]))
        }
        _ => Err(()),
    }
}

/// Go's `underscoreOK`: underscores only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// Go's `strconv.ParseUint(s, 0, 64)`.
fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() || s.starts_with(['+', '-']) {
        return None;
    }
    let (base, digits) = match s.as_bytes() {
        [b'0', b'x' | b'X', ..] => (16, &s[2..]),
        [b'0', b'o' | b'O', ..] => (8, &s[2..]),
        [b'0', b'b' | b'B', ..] => (2, &s[2..]),
        [b'0', _, ..] => (8, &s[1..]),
        _ => (10, s),
    };
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let digits: String = digits.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(&digits, base).ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let u = parse_uint(body)?;
    if neg {
        if u > 1 << 63 {
            None
        } else {
            Some((u as i64).wrapping_neg())
        }
    } else {
        i64::try_from(u).ok()
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms the lexer lets through.
fn parse_float(s: &str) -> Option<f64> {
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, &clean[..]),
    };
    let value = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        parse_hex_float(hex)?
    } else {
        if !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    Some(if neg { -value } else { value })
}

fn parse_hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = s.split_once(['p', 'P'])?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in int.chars().chain(frac.chars()) {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let shift = exp - 4 * frac.len() as i32;
    Some(value * 2f64.powi(shift))
}

/// Go's `newNumber`.
fn parse_number(text: &str, kind: Kind) -> Result<Number, String> {
    let mut n = Number {
        text: text.into(),
        int: None,
        is_uint: false,
        float: None,
    };
    match kind {
        Kind::CharConstant => {
            let (piece, tail) =
                unquote_char(&text[1..], '\'').map_err(|()| format!("invalid syntax in {text}"))?;
            if tail != "'" {
                return Err(format!("malformed character constant: {text}"));
            }
            let code = match piece {
                Piece::Char(c) => c as u32,
                Piece::Byte(b) => u32::from(b),
            };
            n.int = Some(i64::from(code));
            n.is_uint = true;
            n.float = Some(f64::from(code));
            return Ok(n);
        }
        Kind::Complex => return Err(format!("complex constants are not supported: {text}")),
        _ => {}
    }
    if let Some(imaginary) = text.strip_suffix('i')
        && parse_float(imaginary).is_some()
    {
        return Err(format!("complex constants are not supported: {text}"));
    }
    let u = parse_uint(text);
    n.is_uint = u.is_some();
    if let Some(i) = parse_int(text) {
        n.int = Some(i);
        if i == 0 {
            n.is_uint = true;
        }
        n.float = Some(i as f64);
    } else if let Some(u) = u {
        n.float = Some(u as f64);
    } else if let Some(f) = parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {}", quoted(text)));
        }
        n.float = Some(f);
        if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
            n.int = Some(f as i64);
        }
        if f.fract() == 0.0 && (0.0..1.844_674_407_370_955_2e19).contains(&f) {
            n.is_uint = true;
        }
    }
    if n.int.is_none() && !n.is_uint && n.float.is_none() {
        return Err(format!("illegal number syntax: {}", quoted(text)));
    }
    Ok(n)
}

fn quoted(s: &str) -> String {
    let mut out = Vec::new();
    super::fmt::quote(&mut out, s, false);
    String::from_utf8_lossy(&out).into_owned()
}

impl<C> Parser<'_, C> {
    // ---- errors ----

    fn error_at(&self, pos: usize, message: impl Into<String>) -> ParseError {
        let (line, column) = super::line_col(self.src, pos);
        ParseError {
            name: self.name.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    fn unexpected(&self, token: &Token, context: &str) -> ParseError {
        if token.kind == Kind::Error {
            return self.error_at(token.start, token.describe(self.src));
        }
        self.error_at(
            token.start,
            format!("unexpected {} in {context}", token.describe(self.src)),
        )
    }

    // ---- token stream ----

    fn next(&mut self) -> PResult<Token> {
        let token = self.tokens[self.i.min(self.tokens.len() - 1)].clone();
        if token.kind == Kind::Error {
            return Err(self.error_at(token.start, token.describe(self.src)));
        }
        if self.i < self.tokens.len() {
            self.i += 1;
        }
        Ok(token)
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn peek(&mut self) -> PResult<Token> {
        let token = self.next()?;
        self.backup();
        Ok(token)
    }

    fn next_non_space(&mut self) -> PResult<Token> {
        loop {
            let token = self.next()?;
            if token.kind != Kind::Space {
                return Ok(token);
            }
        }
    }

    fn peek_non_space(&mut self) -> PResult<Token> {
        let token = self.next_non_space()?;
        self.backup();
        Ok(token)
    }

    fn expect(&mut self, kind: Kind, context: &str) -> PResult<Token> {
        let token = self.next_non_space()?;
        if token.kind != kind {
            return Err(self.unexpected(&token, context));
        }
        Ok(token)
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.var_ids.get(name) {
            return id;
        }
        let id = self.var_names.len() as u32;
        let name: Arc<str> = Arc::from(name);
        self.var_names.push(name.clone());
        self.var_ids.insert(name, id);
        id
    }

    fn enter(&mut self, pos: usize) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return Err(self.error_at(
                pos,
                format!("template nested too deeply (more than {MAX_PARSE_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ---- trees ----

    /// Go's `Tree.add`: a name may be defined once, an empty definition never replaces.
    fn add_tree(&mut self, name: Arc<str>, root: Vec<Node>, pos: usize) -> PResult<()> {
        if let Some(&index) = self.tree_index.get(&name) {
            let existing = &self.trees[index as usize];
            if is_empty_tree(self.src, &existing.root) {
                self.trees[index as usize] = Tree { name, root };
                return Ok(());
            }
            if !is_empty_tree(self.src, &root) {
                return Err(self.error_at(
                    pos,
                    // Go's message comes from the template set, hence its own prefix.
                    format!(
                        "template: multiple definition of template {}",
                        quoted(&name)
                    ),
                ));
            }
            return Ok(());
        }
        self.tree_index
            .insert(name.clone(), self.trees.len() as u32);
        self.trees.push(Tree { name, root });
        Ok(())
    }

    /// Parses a nested tree (`define`, `block` body) with its own variables.
    fn nested_list(&mut self, context: &str) -> PResult<Vec<Node>> {
        let vars = std::mem::replace(&mut self.vars, vec![0]);
        let range_depth = std::mem::replace(&mut self.range_depth, 0);
        let (list, end) = self.item_list()?;
        if let Item::Else(pos) = end {
            return Err(self.error_at(
                pos as usize,
                format!("unexpected {{{{else}}}} in {context}"),
            ));
        }
        self.vars = vars;
        self.range_depth = range_depth;
        Ok(list)
    }

    // ---- grammar ----

    fn parse_top(&mut self) -> PResult<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek()?.kind != Kind::Eof {
            if self.peek()?.kind == Kind::LeftDelim {
                let mark = self.i;
                self.next()?;
                if self.next_non_space()?.kind == Kind::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.i = mark;
            }
            match self.text_or_action()? {
                Item::Node(node) => root.push(node),
                Item::End(pos) => return Err(self.error_at(pos as usize, "unexpected {{end}}")),
                Item::Else(pos) => return Err(self.error_at(pos as usize, "unexpected {{else}}")),
            }
        }
        Ok(root)
    }

    fn parse_definition(&mut self) -> PResult<()> {
        const CONTEXT: &str = "define clause";
        let token = self.next_non_space()?;
        if !matches!(token.kind, Kind::String | Kind::RawString) {
            return Err(self.unexpected(&token, CONTEXT));
        }
        let name = unquote(token.text(self.src)).map_err(|e| self.error_at(token.start, e))?;
        self.expect(Kind::RightDelim, CONTEXT)?;
        let list = self.nested_list(CONTEXT)?;
        self.add_tree(Arc::from(name), list, token.start)
    }

    fn item_list(&mut self) -> PResult<(Vec<Node>, Item)> {
        let mut list = Vec::new();
        while self.peek_non_space()?.kind != Kind::Eof {
            match self.text_or_action()? {
                Item::Node(node) => list.push(node),
                end => return Ok((list, end)),
            }
        }
        let eof = self.peek()?;
        Err(self.error_at(eof.start, "unexpected EOF"))
    }

    fn text_or_action(&mut self) -> PResult<Item> {
        let token = self.next_non_space()?;
        match token.kind {
            Kind::Text => Ok(Item::Node(Node::Text {
                start: token.start as u32,
                end: token.end as u32,
            })),
            Kind::LeftDelim => self.action(),
            _ => Err(self.unexpected(&token, "input")),
        }
    }

    fn action(&mut self) -> PResult<Item> {
        let token = self.next_non_space()?;
        let node = match token.kind {
            Kind::Block => self.block_control()?,
            Kind::Break | Kind::Continue => {
                let name = if token.kind == Kind::Break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                let next = self.next_non_space()?;
                if next.kind != Kind::RightDelim {
                    return Err(self.unexpected(&next, name));
                }
                if self.range_depth == 0 {
                    return Err(self.error_at(token.start, format!("{name} outside {{{{range}}}}")));
                }
                if token.kind == Kind::Break {
                    Node::Break
                } else {
                    Node::Continue
                }
            }
            Kind::Else => {
                // `{{else if …}}` and `{{else with …}}` leave the keyword for the caller.
                let peek = self.peek_non_space()?;
                if matches!(peek.kind, Kind::If | Kind::With) {
                    return Ok(Item::Else(peek.start as u32));
                }
                self.expect(Kind::RightDelim, "else")?;
                return Ok(Item::Else(token.start as u32));
            }
            Kind::End => {
                self.expect(Kind::RightDelim, "end")?;
                return Ok(Item::End(token.start as u32));
            }
            Kind::If => Node::If(Box::new(self.parse_control("if")?)),
            Kind::Range => Node::Range(Box::new(self.parse_control("range")?)),
            Kind::With => Node::With(Box::new(self.parse_control("with")?)),
            Kind::Template => self.template_control()?,
            _ => {
                self.backup();
                Node::Action(self.pipeline("command", Kind::RightDelim)?)
            }
        };
        Ok(Item::Node(node))
    }

    fn parse_control(&mut self, context: &str) -> PResult<Branch> {
        let mark = self.vars.len();
        let start = self.peek_non_space()?.start;
        self.enter(start)?;
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let mut else_list = None;
        if let Item::Else(_) = next {
            let chained = match self.peek()?.kind {
                Kind::If if context == "if" => Some("if"),
                Kind::With if context == "with" => Some("with"),
                _ => None,
            };
            if let Some(keyword) = chained {
                // `{{else if x}}…{{end}}` is `{{else}}{{if x}}…{{end}}{{end}}`: one end.
                self.next()?;
                let inner = self.parse_control(keyword)?;
                else_list = Some(vec![if keyword == "if" {
                    Node::If(Box::new(inner))
                } else {
                    Node::With(Box::new(inner))
                }]);
            } else {
                // `{{else with}}` outside a `with` is refused where Go refuses it, by the
                // `else` (Go 1.19 knows no `else with`; 1.23 allows it only after a `with`).
                // `{{else if}}` outside an `if` is refused as the next item, as in Go.
                let after = self.peek()?;
                if after.kind == Kind::With {
                    return Err(self.unexpected(&after, "else"));
                }
                let (list, next) = self.item_list()?;
                if let Item::Else(pos) = next {
                    return Err(self.error_at(pos as usize, "expected end; found {{else}}"));
                }
                else_list = Some(list);
            }
        }
        self.vars.truncate(mark);
        self.leave();
        Ok(Branch {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    fn template_name(&mut self, token: &Token, context: &str) -> PResult<Arc<str>> {
        match token.kind {
            Kind::String | Kind::RawString => unquote(token.text(self.src))
                .map(Arc::from)
                .map_err(|e| self.error_at(token.start, e)),
            _ => Err(self.unexpected(token, context)),
        }
    }

    fn template_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "template clause";
        let token = self.next_non_space()?;
        let name = self.template_name(&token, CONTEXT)?;
        let mut pipe = None;
        if self.next_non_space()?.kind != Kind::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(CONTEXT, Kind::RightDelim)?);
        }
        Ok(Node::Template {
            pos: token.start as u32,
            name,
            target: None,
            pipe,
        })
    }

    fn block_control(&mut self) -> PResult<Node> {
        const CONTEXT: &str = "block clause";
        let token = self.next_non_space()?;
        let name = self.template_name(&token, CONTEXT)?;
        let pipe = self.pipeline(CONTEXT, Kind::RightDelim)?;
        self.enter(token.start)?;
        let list = self.nested_list(CONTEXT)?;
        self.leave();
        self.add_tree(name.clone(), list, token.start)?;
        Ok(Node::Template {
            pos: token.start as u32,
            name,
            target: None,
            pipe: Some(pipe),
        })
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> PResult<Pipe> {
        let first = self.peek_non_space()?;
        let mut pipe = Pipe {
            pos: first.start as u32,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        // Declarations or assignments: `$x :=`, `$x =`, `$i, $e :=`.
        loop {
            let v = self.peek_non_space()?;
            if v.kind != Kind::Variable {
                break;
            }
            let at_variable = self.i;
            self.next()?;
            let next = self.peek_non_space()?;
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next_non_space()?;
                    let id = self.intern(v.text(self.src));
                    pipe.decl.push(VarRef {
                        pos: v.start as u32,
                        id,
                    });
                    self.vars.push(id);
                }
                Kind::Char if next.text(self.src) == "," => {
                    self.next_non_space()?;
                    let id = self.intern(v.text(self.src));
                    pipe.decl.push(VarRef {
                        pos: v.start as u32,
                        id,
                    });
                    self.vars.push(id);
                    if context == "range" && pipe.decl.len() < 2 {
                        let after = self.peek_non_space()?;
                        if matches!(
                            after.kind,
                            Kind::Variable | Kind::RightDelim | Kind::RightParen
                        ) {
                            continue;
                        }
                        return Err(
                            self.error_at(after.start, "range can only initialize variables")
                        );
                    }
                    return Err(
                        self.error_at(next.start, format!("too many declarations in {context}"))
                    );
                }
                _ => self.i = at_variable,
            }
            break;
        }
        loop {
            let token = self.next_non_space()?;
            if token.kind == end {
                self.check_pipeline(&pipe, context, token.start)?;
                return Ok(pipe);
            }
            match token.kind {
                Kind::Bool
                | Kind::CharConstant
                | Kind::Complex
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return Err(self.unexpected(&token, context)),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str, pos: usize) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return Err(self.error_at(pos, format!("missing value for {context}")));
        }
        for (i, cmd) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                cmd.args[0],
                Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(..) | Arg::Str { .. }
            ) {
                return Err(self.error_at(
                    cmd.pos as usize,
                    format!("non executable command in pipeline stage {}", i + 1),
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let pos = self.peek_non_space()?.start;
        let mut args = Vec::new();
        loop {
            self.peek_non_space()?;
            if let Some(operand) = self.operand()? {
                args.push(operand);
            }
            let token = self.next()?;
            match token.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return Err(self.unexpected(&token, "operand")),
            }
            break;
        }
        if args.is_empty() {
            return Err(self.error_at(pos, "empty command"));
        }
        Ok(Command {
            pos: pos as u32,
            args,
        })
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek()?.kind != Kind::Field {
            return Ok(Some(node));
        }
        let mut fields: Vec<Arc<str>> = Vec::new();
        while self.peek()?.kind == Kind::Field {
            let token = self.next()?;
            fields.push(Arc::from(&token.text(self.src)[1..]));
        }
        Ok(Some(match node {
            Arg::Field { pos, fields: first } => {
                let mut all = first.into_vec();
                all.extend(fields);
                Arg::Field {
                    pos,
                    fields: all.into(),
                }
            }
            Arg::Variable {
                pos,
                id,
                fields: first,
            } => {
                let mut all = first.into_vec();
                all.extend(fields);
                Arg::Variable {
                    pos,
                    id,
                    fields: all.into(),
                }
            }
            Arg::Bool(..) | Arg::Str { .. } | Arg::Number(..) | Arg::Nil(_) | Arg::Dot(_) => {
                let text = show(&node, self.src, &self.var_names).to_string();
                return Err(self.error_at(
                    node.pos() as usize,
                    format!("unexpected . after term {}", quoted(&text)),
                ));
            }
            node => Arg::Chain {
                pos: node.pos(),
                node: Box::new(node),
                fields: fields.into(),
            },
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let token = self.next_non_space()?;
        let pos = token.start as u32;
        let text = token.text(self.src);
        Ok(Some(match token.kind {
            Kind::Identifier => {
                let callee = if let Some(index) = self.funcs.index_of(text) {
                    let name: Arc<str> = Arc::from(text);
                    if !self.user_funcs.iter().any(|(i, _)| *i == index) {
                        self.user_funcs.push((index, name));
                    }
                    Callee::User(index)
                } else if let Some(builtin) = Builtin::lookup(text) {
                    Callee::Builtin(builtin)
                } else {
                    return Err(self.error_at(
                        token.start,
                        format!("function {} not defined", quoted(text)),
                    ));
                };
                Arg::Func {
                    pos,
                    name: Arc::from(text),
                    callee,
                }
            }
            Kind::Dot => Arg::Dot(pos),
            Kind::Nil => Arg::Nil(pos),
            Kind::Variable => {
                let id = self.var_ids.get(text).copied();
                match id {
                    Some(id) if self.vars.contains(&id) => Arg::Variable {
                        pos,
                        id,
                        fields: Box::new([]),
                    },
                    _ => {
                        return Err(self.error_at(
                            token.start,
                            format!("undefined variable {}", quoted(text)),
                        ));
                    }
                }
            }
            Kind::Field => Arg::Field {
                pos,
                fields: Box::new([Arc::from(&text[1..])]),
            },
            Kind::Bool => Arg::Bool(pos, text == "true"),
            Kind::CharConstant | Kind::Complex | Kind::Number => {
                let number =
                    parse_number(text, token.kind).map_err(|e| self.error_at(token.start, e))?;
                Arg::Number(pos, Box::new(number))
            }
            Kind::LeftParen => {
                self.enter(token.start)?;
                let pipe = self.pipeline("parenthesized pipeline", Kind::RightParen)?;
                self.leave();
                Arg::Pipe(Box::new(pipe))
            }
            Kind::String | Kind::RawString => {
                let value = unquote(text).map_err(|e| self.error_at(token.start, e))?;
                Arg::Str {
                    pos,
                    end: token.end as u32,
                    value: Value::from(value),
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> Result<(Option<i64>, bool, Option<f64>), String> {
        let kind = if text.starts_with('\'') {
            Kind::CharConstant
        } else {
            Kind::Number
        };
        parse_number(text, kind).map(|n| (n.int, n.is_uint, n.float))
    }

    #[test]
    fn numbers_take_every_type_they_fit() {
        assert_eq!(number("42"), Ok((Some(42), true, Some(42.0))));
        assert_eq!(number("-7"), Ok((Some(-7), false, Some(-7.0))));
        assert_eq!(number("0x1F"), Ok((Some(31), true, Some(31.0))));
        assert_eq!(number("0o17"), Ok((Some(15), true, Some(15.0))));
        assert_eq!(number("017"), Ok((Some(15), true, Some(15.0))));
        assert_eq!(number("0b101"), Ok((Some(5), true, Some(5.0))));
        assert_eq!(number("1_000"), Ok((Some(1000), true, Some(1000.0))));
        assert_eq!(number("1.0"), Ok((Some(1), true, Some(1.0))));
        assert_eq!(number("1e3"), Ok((Some(1000), true, Some(1000.0))));
        assert_eq!(number("1.5"), Ok((None, false, Some(1.5))));
        assert_eq!(number("0x1p-2"), Ok((None, false, Some(0.25))));
        assert_eq!(number("'a'"), Ok((Some(97), true, Some(97.0))));
        assert_eq!(number("'\\n'"), Ok((Some(10), true, Some(10.0))));
        assert_eq!(
            number("18446744073709551615"),
            Ok((None, true, Some(18446744073709551615.0)))
        );
        assert_eq!(
            number("99999999999999999999"),
            Err("integer overflow: \"99999999999999999999\"".into())
        );
        assert_eq!(
            number("1__0"),
            Err("illegal number syntax: \"1__0\"".into())
        );
        assert_eq!(number("0x"), Err("illegal number syntax: \"0x\"".into()));
        assert_eq!(
            number("'ab'"),
            Err("malformed character constant: 'ab'".into())
        );
    }

    #[test]
    fn ideal_constants_are_int_unless_written_as_floats() {
        let ideal = |text: &str| {
            let kind = if text.starts_with('\'') {
                Kind::CharConstant
            } else {
                Kind::Number
            };
            parse_number(text, kind).unwrap().ideal()
        };
        assert!(matches!(ideal("3"), Ok(Value::Int(3))));
        assert!(matches!(ideal("0x1E"), Ok(Value::Int(30))));
        assert!(matches!(ideal("'x'"), Ok(Value::Int(120))));
        assert!(matches!(ideal("1e3"), Ok(Value::Float(f)) if f == 1000.0));
        assert!(matches!(ideal("3.0"), Ok(Value::Float(f)) if f == 3.0));
        assert_eq!(
            ideal("18446744073709551615").unwrap_err(),
            "18446744073709551615 overflows int"
        );
    }

    #[test]
    fn unquoting_follows_strconv() {
        assert_eq!(
            unquote(r#""a\tb\n\"\\\x41\u00e9\101\U0001F600""#).as_deref(),
            Ok("a\tb\n\"\\AéA😀")
        );
        assert_eq!(unquote("`a\\n\r\nb`").as_deref(), Ok("a\\n\nb"));
        // UTF-8 made of byte escapes is whole again.
        assert_eq!(unquote(r#""\xc3\xa9""#).as_deref(), Ok("é"));
        for bad in [r#""\q""#, r#""\'""#, r#""\x4""#, r#""\400""#, r#""\ud800""#] {
            assert!(unquote(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn underscores_only_between_digits() {
        for ok in ["1_000", "0x_ff", "0b1_0", "-1_0"] {
            assert!(underscore_ok(ok), "{ok}");
        }
        for bad in ["_1", "1_", "1__0", "1_.5"] {
            assert!(!underscore_ok(bad), "{bad}");
        }
    }
}
