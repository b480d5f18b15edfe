//! consul-template's configuration files, HCL or JSON, into a tree of values with their
//! positions, read by serde into the raw types of [`super::file`].
//!
//! consul-template reads HCL 1; hcl-edit parses HCL 2, which reads the same files with three
//! differences this module undoes, so that a file means what it meant to consul-template:
//!
//! - a number with a leading `0` is octal in HCL 1 (`perms = 0600`), decimal in HCL 2;
//! - `${…}` in a string or a heredoc is an HCL 2 template, plain text in HCL 1 (consul-template
//!   never evaluates it, and a shell command may hold `${HOME}`): such a value is taken from the
//!   file as written. (`%{` opens an HCL 2 directive: a string holding one that is not a
//!   directive does not parse, and is written `%%{`.)
//! - a block given twice keeps its last value, as consul-template's `flattenKeys` does, except
//!   `template`, whose blocks add up (an attribute given twice is an error of HCL 2's).
//!
//! A file whose first character is `{` is JSON, as HCL 1 decides; JSON is an HCL 2 expression,
//! so it is read by the same parser, with positions.

use std::fmt;
use std::ops::Range;

use hcl_edit::Span;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Body, Structure};
use serde::de::{
    self, DeserializeSeed, Error as _, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

/// A value of the file and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    pub value: Value,
    pub span: Range<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<Node>),
    /// Keys in the file's order, each with its own position; a key appears once.
    Map(Vec<(String, Range<usize>, Node)>),
}

/// Keys whose repeated blocks add up instead of the last one winning.
const LISTS: &[&str] = &["template"];

/// Why a file cannot be read, with the position in it and the key when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ReadError {
    pub message: String,
    pub span: Option<Range<usize>>,
    /// The dotted path of the key at fault (`consul.ssl.verify`).
    pub key: Option<String>,
    /// A line and column from the parser itself.
    pub position: Option<(usize, usize)>,
}

impl ReadError {
    fn at(mut self, span: &Range<usize>) -> ReadError {
        if self.span.is_none() {
            self.span = Some(span.clone());
        }
        self
    }

    fn key(mut self, path: &str) -> ReadError {
        if self.key.is_none() && !path.is_empty() {
            self.key = Some(path.to_owned());
        }
        self
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ReadError {}

impl de::Error for ReadError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        ReadError {
            message: message.to_string(),
            span: None,
            key: None,
            position: None,
        }
    }
}

/// Parses a configuration file's text (HCL, or JSON when it starts with `{`).
pub(super) fn parse(text: &str) -> Result<Node, ReadError> {
    let syntax = |error: hcl_edit::parser::Error| ReadError {
        message: error.message().to_owned(),
        span: None,
        key: None,
        position: Some((error.location().line(), error.location().column())),
    };
    if text.trim_start().starts_with('{') {
        // The expression parser takes the expression alone, without white space around it;
        // positions are then moved back to the file's.
        let start = text.len() - text.trim_start().len();
        let expression = hcl_edit::parser::parse_expr(text.trim()).map_err(|error| {
            let mut error = syntax(error);
            if let Some((line, column)) = error.position {
                let skipped = &text[..start];
                let lines = skipped.matches('\n').count();
                let column = if line == 1 {
                    column + skipped.len() - skipped.rfind('\n').map_or(0, |i| i + 1)
                } else {
                    column
                };
                error.position = Some((line + lines, column));
            }
            error
        })?;
        let mut tree = node(&text[start..], &expression)?;
        shift(&mut tree, start);
        return Ok(tree);
    }
    let body = hcl_edit::parser::parse_body(text).map_err(syntax)?;
    body_node(text, &body, 0..text.len())
}

fn body_node(text: &str, body: &Body, span: Range<usize>) -> Result<Node, ReadError> {
    let mut entries: Vec<(String, Range<usize>, Node)> = Vec::new();
    for structure in body.iter() {
        let (key, key_span, value) = match structure {
            Structure::Attribute(attribute) => (
                attribute.key.as_str().to_owned(),
                attribute.key.span().unwrap_or_default(),
                node(text, &attribute.value)?,
            ),
            Structure::Block(block) => {
                if let Some(label) = block.labels.first() {
                    return Err(ReadError {
                        message: format!(
                            "block {:?} takes no label (consul-template's blocks have none)",
                            block.ident.as_str()
                        ),
                        span: label.span(),
                        key: Some(block.ident.as_str().to_owned()),
                        position: None,
                    });
                }
                let block_span = block.span().unwrap_or_default();
                (
                    block.ident.as_str().to_owned(),
                    block.ident.span().unwrap_or_default(),
                    body_node(text, &block.body, block_span)?,
                )
            }
        };
        insert(&mut entries, key, key_span, value);
    }
    Ok(Node {
        value: Value::Map(entries),
        span,
    })
}

/// Adds `key` to a map: a repeated `template` adds to its list, another repeated key replaces
/// the earlier value.
fn insert(
    entries: &mut Vec<(String, Range<usize>, Node)>,
    key: String,
    span: Range<usize>,
    value: Node,
) {
    let list = LISTS.contains(&key.as_str());
    let value = match (list, value) {
        (
            true,
            Node {
                value: Value::Map(map),
                span,
            },
        ) => Node {
            span: span.clone(),
            value: Value::List(vec![Node {
                value: Value::Map(map),
                span,
            }]),
        },
        (_, value) => value,
    };
    match entries.iter_mut().find(|(known, _, _)| *known == key) {
        Some((
            _,
            _,
            Node {
                value: Value::List(items),
                ..
            },
        )) if list => {
            if let Value::List(more) = value.value {
                items.extend(more);
            }
        }
        Some(entry) => *entry = (key, span, value),
        None => entries.push((key, span, value)),
    }
}

fn node(text: &str, expression: &Expression) -> Result<Node, ReadError> {
    let span = expression.span().unwrap_or_default();
    let value = match expression {
        Expression::Null(_) => Value::Null,
        Expression::Bool(value) => Value::Bool(*value.value()),
        Expression::Number(_) => number(&text[span.clone()], &span)?,
        Expression::String(value) => Value::String(value.value().clone()),
        // HCL 1 has no templates: the text as written, escapes decoded.
        Expression::StringTemplate(_) => {
            let quoted = &text[span.clone()];
            let inner = quoted
                .strip_prefix('"')
                .and_then(|rest| rest.strip_suffix('"'))
                .unwrap_or(quoted);
            Value::String(unescape(inner))
        }
        Expression::HeredocTemplate(_) => Value::String(heredoc(&text[span.clone()])),
        Expression::Array(array) => Value::List(
            array
                .iter()
                .map(|item| node(text, item))
                .collect::<Result<_, _>>()?,
        ),
        Expression::Object(object) => {
            let mut entries = Vec::new();
            for (key, value) in object.iter() {
                let key_span = key.span().unwrap_or_default();
                let name = match key {
                    ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                    ObjectKey::Expression(Expression::String(name)) => name.value().clone(),
                    ObjectKey::Expression(_) => {
                        return Err(
                            ReadError::custom("a key must be a name or a string").at(&key_span)
                        );
                    }
                };
                insert(&mut entries, name, key_span, node(text, value.expr())?);
            }
            Value::Map(entries)
        }
        Expression::Parenthesis(inner) => return node(text, inner.inner()),
        _ => {
            return Err(ReadError::custom(format!(
                "{:?} is an expression; consul-template's configuration holds plain values",
                &text[span.clone()]
            ))
            .at(&span));
        }
    };
    Ok(Node { value, span })
}

/// Moves every position of `node` `by` bytes further into the file.
fn shift(node: &mut Node, by: usize) {
    node.span = node.span.start + by..node.span.end + by;
    match &mut node.value {
        Value::List(items) => items.iter_mut().for_each(|item| shift(item, by)),
        Value::Map(entries) => {
            for (_, span, value) in entries {
                *span = span.start + by..span.end + by;
                shift(value, by);
            }
        }
        _ => {}
    }
}

/// A number as HCL 1 reads it: Go's `strconv.ParseInt(text, 0, 64)` for integers, so a leading
/// `0` is octal; otherwise a float. (HCL 2 has no `0x` numbers, so neither has terad.)
fn number(text: &str, span: &Range<usize>) -> Result<Value, ReadError> {
    let invalid = || ReadError::custom(format!("invalid number {text:?}")).at(span);
    if text.contains(['.', 'e', 'E']) {
        return text.parse().map(Value::Float).map_err(|_| invalid());
    }
    let (digits, radix) = if text.len() > 1 && text.starts_with('0') {
        (&text[1..], 8)
    } else {
        (text, 10)
    };
    i64::from_str_radix(digits, radix)
        .map(Value::Int)
        .map_err(|_| invalid())
}

/// The escapes of a quoted string: `\"`, `\\`, `\n`, `\r`, `\t`, `\uXXXX`, `\UXXXXXXXX`.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(digits @ ('u' | 'U')) => {
                let count = if digits == 'u' { 4 } else { 8 };
                let hex: String = chars.by_ref().take(count).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => {
                        out.push('\\');
                        out.push(digits);
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A heredoc's text as written: the lines between `<<MARK` and `MARK`, each with its newline;
/// with `<<-`, less the indentation the lines share.
fn heredoc(written: &str) -> String {
    let indented = written.starts_with("<<-");
    let Some((_, rest)) = written.split_once('\n') else {
        return String::new();
    };
    let body = match rest.rfind('\n') {
        Some(end) => &rest[..=end],
        None => "",
    };
    if !indented {
        return body.to_owned();
    }
    let indent = body
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start_matches([' ', '\t']).len())
        .min()
        .unwrap_or(0);
    body.split_inclusive('\n')
        .map(|line| {
            line.get(indent..)
                .unwrap_or(line.trim_start_matches([' ', '\t']))
        })
        .collect()
}

/// Reads a [`Node`] into a serde type; errors carry the position and the dotted key.
pub(super) struct Reader<'a> {
    pub node: &'a Node,
    pub path: String,
}

impl Reader<'_> {
    fn fail(&self, error: ReadError) -> ReadError {
        error.at(&self.node.span).key(&self.path)
    }
}

impl<'de> de::Deserializer<'de> for Reader<'_> {
    type Error = ReadError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(value) => visitor.visit_bool(*value),
            Value::Int(value) => visitor.visit_i64(*value),
            Value::Float(value) => visitor.visit_f64(*value),
            Value::String(value) => visitor.visit_str(value),
            Value::List(items) => visitor.visit_seq(Items {
                items: items.iter(),
                path: &self.path,
            }),
            Value::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                value: None,
                path: &self.path,
            }),
        };
        result.map_err(|error| self.fail(error))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match &self.node.value {
            // One block where a list of them is read (a single `template` in JSON).
            Value::Map(_) => visitor
                .visit_seq(Items {
                    items: std::slice::from_ref(self.node).iter(),
                    path: &self.path,
                })
                .map_err(|error| self.fail(error)),
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

struct Items<'a, I> {
    items: I,
    path: &'a str,
}

impl<'de, 'a, I: Iterator<Item = &'a Node>> SeqAccess<'de> for Items<'a, I> {
    type Error = ReadError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ReadError> {
        match self.items.next() {
            None => Ok(None),
            Some(node) => seed
                .deserialize(Reader {
                    node,
                    path: self.path.to_owned(),
                })
                .map(Some),
        }
    }
}

struct Entries<'a, I> {
    entries: I,
    value: Option<(&'a Node, String)>,
    path: &'a str,
}

impl<'de, 'a, I: Iterator<Item = &'a (String, Range<usize>, Node)>> MapAccess<'de>
    for Entries<'a, I>
{
    type Error = ReadError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ReadError> {
        let Some((key, span, value)) = self.entries.next() else {
            return Ok(None);
        };
        let path = if self.path.is_empty() {
            key.clone()
        } else {
            format!("{}.{key}", self.path)
        };
        let read = seed
            .deserialize(key.as_str().into_deserializer())
            .map_err(|error: ReadError| error.at(span).key(&path))?;
        self.value = Some((value, path));
        Ok(Some(read))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ReadError> {
        let (node, path) = self
            .value
            .take()
            .ok_or_else(|| ReadError::custom("a value without its key"))?;
        seed.deserialize(Reader { node, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Value {
        parse(text).unwrap().value
    }

    fn string(text: &str, key: &str) -> String {
        match value(text) {
            Value::Map(entries) => {
                match &entries.iter().find(|(k, _, _)| k == key).unwrap().2.value {
                    Value::String(s) => s.clone(),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn numbers_are_read_as_hcl_1_reads_them() {
        let first = |text: &str| match value(text) {
            Value::Map(entries) => entries[0].2.value.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(first("a = 0600"), Value::Int(384));
        assert_eq!(first("a = 600"), Value::Int(600));
        assert_eq!(first("a = 1.5"), Value::Float(1.5));
    }

    #[test]
    fn templates_of_hcl_2_are_text() {
        assert_eq!(
            string(r#"command = "sh -c 'echo ${HOME}' \"q\"""#, "command"),
            "sh -c 'echo ${HOME}' \"q\""
        );
        assert_eq!(
            string(
                "contents = <<EOF\n{{ key \"a\" }} ${x}\nline\nEOF\n",
                "contents"
            ),
            "{{ key \"a\" }} ${x}\nline\n"
        );
        assert_eq!(
            string("contents = <<-EOF\n    a\n      b\n    EOF\n", "contents"),
            "a\n  b\n"
        );
        assert_eq!(string("a = \"x\\ty\"", "a"), "x\ty");
    }

    #[test]
    fn repeated_keys_keep_the_last_value_and_templates_add_up() {
        let text = "consul {\n token = \"a\"\n}\nconsul {\n token = \"b\"\n}\ntemplate {\n source = \"a\"\n}\ntemplate {\n source = \"b\"\n}\n";
        let Value::Map(entries) = value(text) else {
            panic!()
        };
        assert_eq!(entries.len(), 2);
        let Value::Map(consul) = &entries[0].2.value else {
            panic!()
        };
        assert_eq!(consul[0].2.value, Value::String("b".into()));
        assert!(matches!(&entries[1].2.value, Value::List(items) if items.len() == 2));
    }

    #[test]
    fn json_is_read_with_positions() {
        let text = "  {\n  \"consul\": {\"address\": \"127.0.0.1:8500\"},\n  \"template\": [{\"source\": \"a\"}]\n}\n";
        let Value::Map(entries) = value(text) else {
            panic!()
        };
        assert_eq!(entries[0].0, "consul");
        assert_eq!(&text[entries[0].1.clone()], "\"consul\"");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let error = parse("consul {\n  address = \n}\n").unwrap_err();
        assert!(error.position.is_some(), "{error:?}");
    }
}
