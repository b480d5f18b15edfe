//! The parse tree: Go's `text/template/parse/node.go`. Nodes hold byte offsets into the source
//! instead of copies of it; function names are already resolved ([`Callee`]) and variables
//! interned to ids. [`Show`] prints a node back as Go's `Node.String` does, for the context of
//! execution errors, and [`parse_number`] is Go's `newNumber`, which gives a number constant
//! every Go type it fits.

use std::sync::Arc;

use super::builtins::Builtin;
use super::lex::Kind;
use super::strconv::{
    Piece, SyntaxError, parse_float, parse_int, parse_uint, quoted, unquote_char,
};
use super::value::Value;

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

/// A number constant that is not one: the errors of Go's `newNumber`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NumberError {
    /// A character constant whose escape is wrong (`'\q'`).
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// More than one character between the quotes (`'ab'`).
    #[error("malformed character constant: {0}")]
    MalformedChar(String),
    /// `1i`: Go's complex numbers have no counterpart here.
    #[error("complex constants are not supported: {0}")]
    Complex(String),
    /// An integer beyond 64 bits, unsigned or not.
    #[error("integer overflow: {}", quoted(.0))]
    Overflow(String),
    /// Neither an integer nor a float (`0x`, `1__0`).
    #[error("illegal number syntax: {}", quoted(.0))]
    Illegal(String),
}

/// Go's `newNumber`.
pub(crate) fn parse_number(text: &str, kind: Kind) -> Result<Number, NumberError> {
    let mut n = Number {
        text: text.into(),
        int: None,
        is_uint: false,
        float: None,
    };
    match kind {
        Kind::CharConstant => {
            let (piece, tail) = unquote_char(&text[1..], '\'')
                .map_err(|()| NumberError::Syntax(SyntaxError(text.to_owned())))?;
            if tail != "'" {
                return Err(NumberError::MalformedChar(text.to_owned()));
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
        Kind::Complex => return Err(NumberError::Complex(text.to_owned())),
        _ => {}
    }
    if let Some(imaginary) = text.strip_suffix('i')
        && parse_float(imaginary).is_some()
    {
        return Err(NumberError::Complex(text.to_owned()));
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
            return Err(NumberError::Overflow(text.to_owned()));
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
        return Err(NumberError::Illegal(text.to_owned()));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> Result<(Option<i64>, bool, Option<f64>), NumberError> {
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
        let error = |text: &str| number(text).unwrap_err().to_string();
        assert_eq!(
            error("99999999999999999999"),
            "integer overflow: \"99999999999999999999\""
        );
        assert_eq!(error("1__0"), "illegal number syntax: \"1__0\"");
        assert_eq!(error("0x"), "illegal number syntax: \"0x\"");
        assert_eq!(error("'ab'"), "malformed character constant: 'ab'");
    }
}
