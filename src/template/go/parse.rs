//! The parser: tokens → trees, with Go's grammar, checks and messages (Go's
//! `text/template/parse/parse.go`; the nodes are in `node`, as Go's are in `node.go`).
//!
//! One source gives a set of trees: the main one and one per `{{define}}` / `{{block}}`.
//! Function names are resolved here (an unknown one is an error, as in Go), to indexes into
//! the [`Functions`] table or to a builtin, so execution never looks a name up. Variables are
//! checked against the declarations in scope and interned to small ids.

use std::collections::HashMap;
use std::sync::Arc;

use super::builtins::Builtin;
use super::lex::{Kind, Token, lex_with};
use super::node::{Arg, Branch, Callee, Command, Node, Pipe, Tree, VarRef, parse_number, show};
use super::strconv::{quoted, unquote};
use super::value::Value;
use super::{Functions, ParseError};

/// Deepest nesting of control structures and parentheses a template may have.
pub const MAX_PARSE_DEPTH: usize = 100;

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

/// Parses `src` between the delimiters `delims` (Go's `{{` and `}}` unless the template says).
pub(crate) fn parse<C>(
    name: &str,
    src: &str,
    funcs: &Functions<C>,
    delims: (&str, &str),
) -> PResult<Parsed> {
    let tokens = lex_with(
        name,
        src,
        !funcs.contains("break"),
        !funcs.contains("continue"),
        delims,
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
        let name =
            unquote(token.text(self.src)).map_err(|e| self.error_at(token.start, e.to_string()))?;
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
                .map_err(|e| self.error_at(token.start, e.to_string())),
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
                let number = parse_number(text, token.kind)
                    .map_err(|e| self.error_at(token.start, e.to_string()))?;
                Arg::Number(pos, Box::new(number))
            }
            Kind::LeftParen => {
                self.enter(token.start)?;
                let pipe = self.pipeline("parenthesized pipeline", Kind::RightParen)?;
                self.leave();
                Arg::Pipe(Box::new(pipe))
            }
            Kind::String | Kind::RawString => {
                let value = unquote(text).map_err(|e| self.error_at(token.start, e.to_string()))?;
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
