//! The lexer: template source → tokens with byte spans.
//!
//! It follows Go's `text/template/parse` scanner: text up to `{{`, then the action's words,
//! `{{- ` and ` -}}` trimming the surrounding white space (the space next to the dash is
//! required), `{{/* comments */}}` dropped, numbers scanned loosely (the parser validates them).
//! The whole input is scanned up front; the first error ends the token list.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Error,
    Bool,
    /// A printable ASCII character with no other meaning, such as `,`.
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl Kind {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            Kind::Block
                | Kind::Break
                | Kind::Continue
                | Kind::Dot
                | Kind::Define
                | Kind::Else
                | Kind::End
                | Kind::If
                | Kind::Nil
                | Kind::Range
                | Kind::Template
                | Kind::With
        )
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// For [`Kind::Error`]: what is wrong.
    pub message: Option<Box<str>>,
}

impl Token {
    pub fn text<'s>(&self, src: &'s str) -> &'s str {
        &src[self.start..self.end]
    }

    /// The token as Go's parser names it in messages: `"foo"`, `<range>`, `EOF`.
    pub fn describe(&self, src: &str) -> String {
        let text = self.text(src);
        match self.kind {
            Kind::Eof => "EOF".to_owned(),
            Kind::Error => self.message.as_deref().unwrap_or_default().to_owned(),
            k if k.is_keyword() => format!("<{text}>"),
            _ => {
                let mut out = Vec::new();
                if text.chars().count() > 10 {
                    let short: String = text.chars().take(10).collect();
                    super::strconv::quote(&mut out, &short, false);
                    out.extend_from_slice(b"...");
                } else {
                    super::strconv::quote(&mut out, text, false);
                }
                String::from_utf8_lossy(&out).into_owned()
            }
        }
    }
}

/// Go's default delimiters; consul-template's `left_delimiter`/`right_delimiter` replace them.
pub(crate) const LEFT_DELIM: &str = "{{";
pub(crate) const RIGHT_DELIM: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

/// Go's white space inside actions and for trimming.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space_byte(b[1])
}

fn has_right_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space_byte(b[0]) && b[1] == b'-'
}

/// `U+0041 'A'`, as Go's `%#U` shows a character in messages.
pub(crate) fn describe_char(c: char) -> String {
    if super::isprint::is_print(c) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

struct Lexer<'s> {
    /// The template's name, for messages.
    name: &'s str,
    src: &'s str,
    pos: usize,
    start: usize,
    paren_depth: usize,
    break_ok: bool,
    continue_ok: bool,
    tokens: Vec<Token>,
    /// Where the action being scanned began, for "unclosed action started at …".
    action_start: usize,
    left: &'s str,
    right: &'s str,
}

/// Scans `src`. `break` and `continue` are keywords unless functions of that name exist.
#[cfg(test)]
pub(crate) fn lex(name: &str, src: &str, break_ok: bool, continue_ok: bool) -> Vec<Token> {
    lex_with(name, src, break_ok, continue_ok, (LEFT_DELIM, RIGHT_DELIM))
}

/// Scans `src` between the delimiters `left` and `right` (Go's `Delims`; `{{` and `}}` unless
/// the template says).
pub(crate) fn lex_with<'s>(
    name: &'s str,
    src: &'s str,
    break_ok: bool,
    continue_ok: bool,
    (left, right): (&'s str, &'s str),
) -> Vec<Token> {
    let mut lexer = Lexer {
        name,
        src,
        pos: 0,
        start: 0,
        paren_depth: 0,
        break_ok,
        continue_ok,
        tokens: Vec::new(),
        action_start: 0,
        left,
        right,
    };
    lexer.run();
    lexer.tokens
}

/// Where the next state goes.
enum Next {
    Text,
    Action,
    Done,
}

impl<'s> Lexer<'s> {
    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn emit(&mut self, kind: Kind) {
        self.tokens.push(Token {
            kind,
            start: self.start,
            end: self.pos,
            message: None,
        });
        self.start = self.pos;
    }

    fn error(&mut self, message: String) -> Next {
        self.tokens.push(Token {
            kind: Kind::Error,
            start: self.start,
            end: self.pos,
            message: Some(message.into()),
        });
        Next::Done
    }

    fn run(&mut self) {
        let mut state = Next::Text;
        loop {
            state = match state {
                Next::Text => self.lex_text(),
                Next::Action => self.lex_inside_action(),
                Next::Done => return,
            }
        }
    }

    fn lex_text(&mut self) -> Next {
        let Some(x) = self.rest().find(self.left) else {
            self.pos = self.src.len();
            if self.pos > self.start {
                self.emit(Kind::Text);
            }
            self.emit(Kind::Eof);
            return Next::Done;
        };
        let delim = self.pos + x;
        let after = &self.src[delim + self.left.len()..];
        let trim = has_left_trim_marker(after);
        let mut text_end = delim;
        if trim {
            let text = &self.src[self.start..delim];
            text_end = self.start + text.trim_end_matches(is_space).len();
        }
        if text_end > self.start {
            self.pos = text_end;
            self.emit(Kind::Text);
        }
        // The left delimiter.
        self.start = delim;
        self.pos = delim + self.left.len();
        let after_marker = if trim { 2 } else { 0 };
        if self.src[self.pos + after_marker..].starts_with(LEFT_COMMENT) {
            self.pos += after_marker;
            return self.lex_comment();
        }
        self.action_start = delim;
        self.emit(Kind::LeftDelim);
        self.pos += after_marker;
        self.start = self.pos;
        self.paren_depth = 0;
        Next::Action
    }

    /// Whether a right delimiter starts here, and whether it trims (` -}}`).
    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        if has_right_trim_marker(rest) && rest[2..].starts_with(self.right) {
            return (true, true);
        }
        (rest.starts_with(self.right), false)
    }

    fn lex_comment(&mut self) -> Next {
        self.pos += LEFT_COMMENT.len();
        let Some(i) = self.rest().find(RIGHT_COMMENT) else {
            return self.error("unclosed comment".to_owned());
        };
        self.pos += i + RIGHT_COMMENT.len();
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter".to_owned());
        }
        if trim {
            self.pos += 2;
        }
        self.pos += self.right.len();
        if trim {
            self.skip_leading_space();
        }
        self.start = self.pos;
        Next::Text
    }

    fn skip_leading_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_space).len();
    }

    fn lex_right_delim(&mut self) -> Next {
        let trim = has_right_trim_marker(self.rest());
        if trim {
            self.pos += 2;
            self.start = self.pos;
        }
        self.pos += self.right.len();
        self.emit(Kind::RightDelim);
        if trim {
            self.skip_leading_space();
            self.start = self.pos;
        }
        Next::Text
    }

    fn lex_inside_action(&mut self) -> Next {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return self.lex_right_delim();
            }
            return self.error("unclosed left paren".to_owned());
        }
        let Some(c) = self.next() else {
            // Go names where the action started.
            let line = 1 + self.src[..self.action_start].matches('\n').count();
            return self.error(format!("unclosed action started at {}:{line}", self.name));
        };
        match c {
            c if is_space(c) => {
                self.pos -= c.len_utf8();
                return self.lex_space();
            }
            '=' => self.emit(Kind::Assign),
            ':' => {
                if self.next() != Some('=') {
                    return self.error("expected :=".to_owned());
                }
                self.emit(Kind::Declare);
            }
            '|' => self.emit(Kind::Pipe),
            '"' => return self.lex_quote(),
            '`' => return self.lex_raw_quote(),
            '$' => return self.lex_variable(),
            '\'' => return self.lex_char(),
            '.' => {
                // A field unless a digit follows: then it starts a number.
                match self.rest().as_bytes().first() {
                    Some(b) if b.is_ascii_digit() => {
                        self.pos -= 1;
                        return self.lex_number();
                    }
                    Some(_) => return self.lex_field_or_variable(Kind::Field),
                    None => {
                        self.pos -= 1;
                        return self.lex_number();
                    }
                }
            }
            '+' | '-' | '0'..='9' => {
                self.pos -= 1;
                return self.lex_number();
            }
            c if is_alphanumeric(c) => {
                self.pos -= c.len_utf8();
                return self.lex_identifier();
            }
            '(' => {
                self.emit(Kind::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.emit(Kind::RightParen);
                if self.paren_depth == 0 {
                    return self.error(format!("unexpected right paren {}", describe_char(c)));
                }
                self.paren_depth -= 1;
            }
            c if c.is_ascii() && super::isprint::is_print(c) => self.emit(Kind::Char),
            c => {
                return self.error(format!(
                    "unrecognized character in action: {}",
                    describe_char(c)
                ));
            }
        }
        Next::Action
    }

    fn lex_space(&mut self) -> Next {
        let mut spaces = 0;
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.next();
            spaces += 1;
        }
        // " -}}": the last space belongs to the trim marker.
        let last_space = &self.src[self.pos - 1..];
        if has_right_trim_marker(last_space) && last_space[2..].starts_with(self.right) {
            self.pos -= 1;
            if spaces == 1 {
                return self.lex_right_delim();
            }
        }
        self.emit(Kind::Space);
        Next::Action
    }

    /// Go's `atTerminator`: may an identifier end here?
    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            Some(_) => self.rest().starts_with(self.right),
        }
    }

    fn bad_character(&mut self) -> Next {
        let c = self.peek().unwrap_or('\u{FFFD}');
        self.error(format!("bad character {}", describe_char(c)))
    }

    fn lex_identifier(&mut self) -> Next {
        while let Some(c) = self.peek() {
            if !is_alphanumeric(c) {
                break;
            }
            self.next();
        }
        if !self.at_terminator() {
            return self.bad_character();
        }
        let kind = match &self.src[self.start..self.pos] {
            "block" => Kind::Block,
            "break" if self.break_ok => Kind::Break,
            "continue" if self.continue_ok => Kind::Continue,
            "define" => Kind::Define,
            "else" => Kind::Else,
            "end" => Kind::End,
            "if" => Kind::If,
            "range" => Kind::Range,
            "nil" => Kind::Nil,
            "template" => Kind::Template,
            "with" => Kind::With,
            "true" | "false" => Kind::Bool,
            _ => Kind::Identifier,
        };
        self.emit(kind);
        Next::Action
    }

    fn lex_variable(&mut self) -> Next {
        if self.at_terminator() {
            self.emit(Kind::Variable);
            return Next::Action;
        }
        self.lex_field_or_variable(Kind::Variable)
    }

    fn lex_field_or_variable(&mut self, kind: Kind) -> Next {
        if self.at_terminator() {
            self.emit(if kind == Kind::Variable {
                Kind::Variable
            } else {
                Kind::Dot
            });
            return Next::Action;
        }
        while let Some(c) = self.peek() {
            if !is_alphanumeric(c) {
                break;
            }
            self.next();
        }
        if !self.at_terminator() {
            return self.bad_character();
        }
        self.emit(kind);
        Next::Action
    }

    fn lex_quoted(&mut self, quote: char, kind: Kind, unterminated: &str) -> Next {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    Some('\n') | None => return self.error(unterminated.to_owned()),
                    Some(_) => {}
                },
                Some('\n') | None => return self.error(unterminated.to_owned()),
                Some(c) if c == quote => break,
                Some(_) => {}
            }
        }
        self.emit(kind);
        Next::Action
    }

    fn lex_char(&mut self) -> Next {
        self.lex_quoted('\'', Kind::CharConstant, "unterminated character constant")
    }

    fn lex_quote(&mut self) -> Next {
        self.lex_quoted('"', Kind::String, "unterminated quoted string")
    }

    fn lex_raw_quote(&mut self) -> Next {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string".to_owned()),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::RawString);
        Next::Action
    }

    fn lex_number(&mut self) -> Next {
        if !self.scan_number() {
            return self.bad_number();
        }
        if let Some('+' | '-') = self.peek() {
            // A complex number: 1+2i.
            if !self.scan_number() || !self.src[..self.pos].ends_with('i') {
                return self.bad_number();
            }
            self.emit(Kind::Complex);
        } else {
            self.emit(Kind::Number);
        }
        Next::Action
    }

    fn bad_number(&mut self) -> Next {
        let mut quoted = Vec::new();
        super::strconv::quote(&mut quoted, &self.src[self.start..self.pos], false);
        self.error(format!(
            "bad number syntax: {}",
            String::from_utf8_lossy(&quoted)
        ))
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn scan_number(&mut self) -> bool {
        const DECIMAL: &str = "0123456789_";
        const HEX: &str = "0123456789abcdefABCDEF_";
        self.accept("+-");
        let mut digits = DECIMAL;
        if self.accept("0") {
            if self.accept("xX") {
                digits = HEX;
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits == DECIMAL && self.accept("eE") {
            self.accept("+-");
            self.accept_run(DECIMAL);
        }
        if digits == HEX && self.accept("pP") {
            self.accept("+-");
            self.accept_run(DECIMAL);
        }
        self.accept("i");
        if let Some(c) = self.peek()
            && is_alphanumeric(c)
        {
            self.next();
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Kind, String)> {
        lex("t", src, true, true)
            .into_iter()
            .map(|t| {
                let text = match t.kind {
                    Kind::Error => t.message.unwrap().into_string(),
                    _ => src[t.start..t.end].to_owned(),
                };
                (t.kind, text)
            })
            .collect()
    }

    #[test]
    fn text_and_actions() {
        use Kind::*;
        let got = kinds("a {{.B | f $x 1.5 \"s\" `r` 'c'}} z");
        let want = [
            (Text, "a "),
            (LeftDelim, "{{"),
            (Field, ".B"),
            (Space, " "),
            (Pipe, "|"),
            (Space, " "),
            (Identifier, "f"),
            (Space, " "),
            (Variable, "$x"),
            (Space, " "),
            (Number, "1.5"),
            (Space, " "),
            (String, "\"s\""),
            (Space, " "),
            (RawString, "`r`"),
            (Space, " "),
            (CharConstant, "'c'"),
            (RightDelim, "}}"),
            (Text, " z"),
            (Eof, ""),
        ];
        let want: Vec<_> = want.iter().map(|(k, s)| (*k, s.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn trim_markers_need_the_space() {
        use Kind::*;
        let got = kinds("a \n{{- 3 -}}\n b{{-3}}");
        let want = [
            (Text, "a"),
            (LeftDelim, "{{"),
            (Number, "3"),
            (RightDelim, "}}"),
            (Text, "b"),
            (LeftDelim, "{{"),
            (Number, "-3"),
            (RightDelim, "}}"),
            (Eof, ""),
        ];
        let want: Vec<_> = want.iter().map(|(k, s)| (*k, s.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn comments_vanish_and_trim() {
        use Kind::*;
        let got = kinds("a  {{- /* x */ -}}  b{{/* y */}}c");
        let want = [(Text, "a"), (Text, "b"), (Text, "c"), (Eof, "")];
        let want: Vec<_> = want.iter().map(|(k, s)| (*k, s.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn keywords_chains_and_punctuation() {
        use Kind::*;
        let got = kinds("{{range $i, $e := .}}{{$e.a.b}}{{end}}");
        let texts: Vec<Kind> = got.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            texts,
            [
                LeftDelim, Range, Space, Variable, Char, Space, Variable, Space, Declare, Space,
                Dot, RightDelim, LeftDelim, Variable, Field, Field, RightDelim, LeftDelim, End,
                RightDelim, Eof
            ]
        );
    }

    #[test]
    fn break_is_an_identifier_when_a_function_has_its_name() {
        let tokens = lex("t", "{{break}}", false, true);
        assert_eq!(tokens[1].kind, Kind::Identifier);
    }

    #[test]
    fn errors() {
        for (src, want) in [
            ("{{.a", "unclosed action started at t:1"),
            ("{{\"abc}}", "unterminated quoted string"),
            ("{{`abc}}", "unterminated raw quoted string"),
            ("{{'a}}", "unterminated character constant"),
            ("{{/* x }}", "unclosed comment"),
            ("{{/* x */ x}}", "comment ends before closing delimiter"),
            ("{{(1}}", "unclosed left paren"),
            ("{{1)}}", "unexpected right paren U+0029 ')'"),
            ("{{a:b}}", "expected :="),
            ("{{3k}}", "bad number syntax: \"3k\""),
            ("{{.a#}}", "bad character U+0023 '#'"),
            ("{{\u{1}}}", "unrecognized character in action: U+0001"),
        ] {
            let tokens = lex("t", src, true, true);
            let last = tokens.last().unwrap();
            assert_eq!(last.kind, Kind::Error, "{src}");
            assert_eq!(last.message.as_deref(), Some(want), "{src}");
        }
    }

    /// consul-template's `left_delimiter`/`right_delimiter`: the default ones are then text,
    /// and trimming and comments work with the new ones, as in Go.
    #[test]
    fn other_delimiters() {
        let src = "{{x}} <<- .a ->> [[ <</* c */>>";
        let tokens = lex_with("t", src, true, true, ("<<", ">>"));
        let kinds: Vec<Kind> = tokens.iter().map(|t| t.kind).collect();
        use Kind::*;
        assert_eq!(
            kinds,
            [Text, LeftDelim, Field, RightDelim, Text, Eof],
            "{tokens:?}"
        );
        assert_eq!(tokens[0].text(src), "{{x}}");
        assert_eq!(tokens[4].text(src), "[[ ");
    }
}
