//! The errors Go's `encoding/json` reports, for confd's `json` and `jsonArray`: a template
//! author sees the message confd would have shown (`invalid character '}' looking for beginning
//! of value`). Go checks the whole document's syntax before decoding, so these come first.

/// Why confd's `json` or `jsonArray` refused a document, as Go's `encoding/json` says it.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Malformed JSON: Go's scanner reports it before decoding anything.
    #[error(transparent)]
    Syntax(#[from] JsonSyntaxError),
    /// Well-formed JSON that serde refuses (a number out of its range, nesting deeper than it
    /// allows); the document is described by its length, as it may be a secret.
    #[error("json: {source} ({described})")]
    Decode {
        #[source]
        source: serde_json::Error,
        described: String,
    },
    /// Go's `*json.UnmarshalTypeError`: a document of another kind than the function returns
    /// (`found` is JSON's name for it: `array`, `string`, …; `into` the Go type).
    #[error("json: cannot unmarshal {found} into Go value of type {into}")]
    Unmarshal {
        found: &'static str,
        into: &'static str,
    },
}

/// Go's `*json.SyntaxError`: what was wrong where the scan stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonSyntaxError {
    #[error("unexpected end of JSON input")]
    UnexpectedEnd,
    /// A character that cannot come here; `context` says where the scanner was
    /// (`looking for beginning of value`, `after object key`, …).
    #[error("invalid character {} {context}", quote(*.found))]
    InvalidCharacter { found: char, context: &'static str },
    /// A character that breaks `true`, `false` or `null`.
    #[error("invalid character {} in literal {literal} (expecting {})", quote(*.found), quote(*.expected))]
    InLiteral {
        found: char,
        literal: &'static str,
        expected: char,
    },
}

/// Go's error for malformed JSON in `text`; `None` when it is well-formed.
pub fn syntax_error(text: &str) -> Option<JsonSyntaxError> {
    let mut scanner = Scanner {
        chars: text.chars().collect(),
        at: 0,
    };
    scanner.document().err()
}

struct Scanner {
    chars: Vec<char>,
    at: usize,
}

type Scan = Result<(), JsonSyntaxError>;

/// Go's `quoteChar`.
fn quote(c: char) -> String {
    match c {
        '\'' => "'\\''".to_owned(),
        '"' => "'\"'".to_owned(),
        _ => {
            let quoted = format!("{:?}", c.to_string());
            format!("'{}'", &quoted[1..quoted.len() - 1])
        }
    }
}

impl Scanner {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.at += 1;
        }
    }

    fn invalid(found: char, context: &'static str) -> JsonSyntaxError {
        JsonSyntaxError::InvalidCharacter { found, context }
    }

    fn document(&mut self) -> Scan {
        self.value()?;
        self.space();
        match self.peek() {
            None => Ok(()),
            Some(c) => Err(Self::invalid(c, "after top-level value")),
        }
    }

    fn value(&mut self) -> Scan {
        self.space();
        match self.bump() {
            None => Err(JsonSyntaxError::UnexpectedEnd),
            Some('{') => self.object(),
            Some('[') => self.array(),
            Some('"') => self.string(),
            Some(c @ ('-' | '0'..='9')) => self.number(c),
            Some('t') => self.literal("true"),
            Some('f') => self.literal("false"),
            Some('n') => self.literal("null"),
            Some(c) => Err(Self::invalid(c, "looking for beginning of value")),
        }
    }

    fn object(&mut self) -> Scan {
        self.space();
        if self.peek() == Some('}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.space();
            match self.bump() {
                None => return Err(JsonSyntaxError::UnexpectedEnd),
                Some('"') => self.string()?,
                Some(c) => {
                    return Err(Self::invalid(
                        c,
                        "looking for beginning of object key string",
                    ));
                }
            }
            self.space();
            match self.bump() {
                None => return Err(JsonSyntaxError::UnexpectedEnd),
                Some(':') => {}
                Some(c) => return Err(Self::invalid(c, "after object key")),
            }
            self.value()?;
            self.space();
            match self.bump() {
                None => return Err(JsonSyntaxError::UnexpectedEnd),
                Some(',') => {}
                Some('}') => return Ok(()),
                Some(c) => return Err(Self::invalid(c, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Scan {
        self.space();
        if self.peek() == Some(']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.space();
            match self.bump() {
                None => return Err(JsonSyntaxError::UnexpectedEnd),
                Some(',') => {}
                Some(']') => return Ok(()),
                Some(c) => return Err(Self::invalid(c, "after array element")),
            }
        }
    }

    fn string(&mut self) -> Scan {
        loop {
            match self.bump() {
                None => return Err(JsonSyntaxError::UnexpectedEnd),
                Some('"') => return Ok(()),
                Some('\\') => match self.bump() {
                    None => return Err(JsonSyntaxError::UnexpectedEnd),
                    Some('"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') => {}
                    Some('u') => {
                        for _ in 0..4 {
                            match self.bump() {
                                None => return Err(JsonSyntaxError::UnexpectedEnd),
                                Some(c) if c.is_ascii_hexdigit() => {}
                                Some(c) => {
                                    return Err(Self::invalid(
                                        c,
                                        "in \\u hexadecimal character escape",
                                    ));
                                }
                            }
                        }
                    }
                    Some(c) => return Err(Self::invalid(c, "in string escape code")),
                },
                Some(c) if (c as u32) < 0x20 => {
                    return Err(Self::invalid(c, "in string literal"));
                }
                Some(_) => {}
            }
        }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some('0'..='9')) {
            self.at += 1;
        }
    }

    /// Requires one digit next; `context` names where.
    fn digit(&mut self, context: &'static str) -> Scan {
        match self.bump() {
            None => Err(JsonSyntaxError::UnexpectedEnd),
            Some('0'..='9') => Ok(()),
            Some(c) => Err(Self::invalid(c, context)),
        }
    }

    fn number(&mut self, first: char) -> Scan {
        let first = if first == '-' {
            match self.bump() {
                None => return Err(JsonSyntaxError::UnexpectedEnd),
                Some(c @ '0'..='9') => c,
                Some(c) => return Err(Self::invalid(c, "in numeric literal")),
            }
        } else {
            first
        };
        if first != '0' {
            self.digits();
        }
        if self.peek() == Some('.') {
            self.at += 1;
            self.digit("after decimal point in numeric literal")?;
            self.digits();
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.at += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.at += 1;
            }
            self.digit("in exponent of numeric literal")?;
            self.digits();
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static str) -> Scan {
        for expected in word.chars().skip(1) {
            match self.bump() {
                None => return Err(JsonSyntaxError::UnexpectedEnd),
                Some(c) if c == expected => {}
                Some(found) => {
                    return Err(JsonSyntaxError::InLiteral {
                        found,
                        literal: word,
                        expected,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::syntax_error;

    /// Messages as Go 1.19's `json.Unmarshal` gives them.
    #[test]
    fn go_messages() {
        for (text, want) in [
            (
                "{\"a\": }",
                "invalid character '}' looking for beginning of value",
            ),
            ("", "unexpected end of JSON input"),
            ("{\"a\": 1", "unexpected end of JSON input"),
            (
                "{a: 1}",
                "invalid character 'a' looking for beginning of object key string",
            ),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "{\"a\": 1 \"b\"}",
                "invalid character '\"' after object key:value pair",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            ("tru", "unexpected end of JSON input"),
            (
                "trux",
                "invalid character 'x' in literal true (expecting 'e')",
            ),
            ("\"a\nb\"", "invalid character '\\n' in string literal"),
            ("\"\\x\"", "invalid character 'x' in string escape code"),
            ("1.", "unexpected end of JSON input"),
            (
                "1.x",
                "invalid character 'x' after decimal point in numeric literal",
            ),
            ("-x", "invalid character 'x' in numeric literal"),
            ("1 2", "invalid character '2' after top-level value"),
            (
                "'a'",
                "invalid character '\\'' looking for beginning of value",
            ),
        ] {
            let error = syntax_error(text).map(|e| e.to_string());
            assert_eq!(error.as_deref(), Some(want), "{text:?}");
        }
        for good in [
            "{}",
            "[]",
            "{\"a\": [1, -2.5e3, true, null, \"\\u00e9\"]}",
            " 1 ",
        ] {
            assert_eq!(syntax_error(good), None, "{good:?}");
        }
    }
}
