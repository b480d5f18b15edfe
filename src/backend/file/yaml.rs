//! YAML straight from parser events into flattened keys.
//!
//! Working on events instead of a document tree keeps a 100k-key file at one pass and one copy,
//! and makes aliases safe: an alias replays the entries its anchor produced, counted against a
//! budget, so a "billion laughs" document is an error instead of an out-of-memory kill. Merge
//! keys (`<<: *defaults`) merge, as in confd's YAML library; explicit keys after them win.
//!
//! Scalars follow YAML 1.2's core schema (`true`/`false`, integers, floats, `null`/`~`); a
//! quoted scalar or one tagged `!!str` stays text.

use std::collections::HashMap;

use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The most entries one file may expand to (aliases included).
pub const MAX_ENTRIES: usize = 2_000_000;
/// The deepest nesting accepted; deeper documents are refused rather than overflowing the stack.
const MAX_DEPTH: usize = 256;

/// Why a YAML document cannot be read into keys.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error(transparent)]
    Syntax(#[from] yaml_rust2::ScanError),
    #[error("the document expands to more than {MAX_ENTRIES} keys (aliases included)")]
    TooManyKeys,
    #[error("line {line}: alias to an unknown anchor")]
    UnknownAnchor { line: usize },
    /// An event a document cannot hold where it came (the parser's own name for it).
    #[error("line {line}: unexpected {event}")]
    Unexpected { line: usize, event: String },
    #[error("line {line}: nested deeper than {MAX_DEPTH} levels")]
    TooDeep { line: usize },
    #[error("line {line}: a mapping key must be a scalar")]
    KeyNotScalar { line: usize },
    #[error("line {line}: a mapping key must be a scalar, not a list or map")]
    KeyIsCollection { line: usize },
}

/// Flattens `text` into `out` as `/a/b` → value entries.
pub fn flatten(text: &str, out: &mut Vec<(String, String)>) -> Result<(), YamlError> {
    let mut flattener = Flattener {
        parser: Parser::new_from_str(text),
        out,
        path: String::new(),
        anchors: HashMap::new(),
        depth: 0,
    };
    loop {
        let (event, mark) = flattener.next()?;
        match event {
            Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(()),
            other => flattener.node(other, mark)?,
        }
    }
}

struct Flattener<'a, 'p> {
    parser: Parser<std::str::Chars<'p>>,
    out: &'a mut Vec<(String, String)>,
    /// The key of the node being read.
    path: String,
    /// What each anchored node produced, relative to the node: `("", v)` for a scalar.
    anchors: HashMap<usize, Vec<(String, String)>>,
    depth: usize,
}

impl Flattener<'_, '_> {
    fn next(&mut self) -> Result<(Event, Marker), YamlError> {
        self.parser.next_token().map_err(YamlError::Syntax)
    }

    fn emit(&mut self, key: String, value: String) -> Result<(), YamlError> {
        if self.out.len() >= MAX_ENTRIES {
            return Err(YamlError::TooManyKeys);
        }
        self.out.push((key, value));
        Ok(())
    }

    fn current_key(&self) -> String {
        if self.path.is_empty() {
            "/".to_owned()
        } else {
            self.path.clone()
        }
    }

    /// Reads one node that starts with `event`, emitting its entries under the current path.
    fn node(&mut self, event: Event, mark: Marker) -> Result<(), YamlError> {
        let start = self.out.len();
        let base = self.path.len();
        let anchor = match event {
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(value) = scalar(text, style, tag.as_ref()) {
                    let key = self.current_key();
                    self.emit(key, value)?;
                }
                anchor
            }
            Event::SequenceStart(anchor, _) => {
                self.enter(mark)?;
                let mut index = 0usize;
                loop {
                    let (event, mark) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    let len = self.path.len();
                    self.path.push('/');
                    self.path.push_str(&index.to_string());
                    self.node(event, mark)?;
                    self.path.truncate(len);
                    index += 1;
                }
                self.depth -= 1;
                anchor
            }
            Event::MappingStart(anchor, _) => {
                self.enter(mark)?;
                loop {
                    let (event, mark) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.key_text(event, mark)?;
                    let len = self.path.len();
                    // A merge key merges its value here; any other key nests.
                    if key != "<<" {
                        for segment in key.split('/').filter(|s| !s.is_empty()) {
                            self.path.push('/');
                            self.path.push_str(segment);
                        }
                    }
                    let (event, mark) = self.next()?;
                    self.node(event, mark)?;
                    self.path.truncate(len);
                }
                self.depth -= 1;
                anchor
            }
            Event::Alias(id) => {
                let Some(entries) = self.anchors.get(&id).cloned() else {
                    return Err(YamlError::UnknownAnchor { line: mark.line() });
                };
                for (suffix, value) in entries {
                    let key = if suffix.is_empty() {
                        self.current_key()
                    } else {
                        format!("{}{suffix}", self.path)
                    };
                    self.emit(key, value)?;
                }
                0
            }
            other => {
                return Err(YamlError::Unexpected {
                    line: mark.line(),
                    event: format!("{other:?}"),
                });
            }
        };
        if anchor > 0 {
            let recorded = self.out[start..]
                .iter()
                .map(|(key, value)| {
                    let suffix = if key.len() > base && key != "/" {
                        &key[base..]
                    } else {
                        ""
                    };
                    (suffix.to_owned(), value.clone())
                })
                .collect();
            self.anchors.insert(anchor, recorded);
        }
        Ok(())
    }

    fn enter(&mut self, mark: Marker) -> Result<(), YamlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(YamlError::TooDeep { line: mark.line() });
        }
        Ok(())
    }

    /// A mapping key as text: a scalar, or an alias to a scalar.
    fn key_text(&mut self, event: Event, mark: Marker) -> Result<String, YamlError> {
        match event {
            Event::Scalar(text, _, anchor, _) => {
                if anchor > 0 {
                    self.anchors
                        .insert(anchor, vec![(String::new(), text.clone())]);
                }
                Ok(text)
            }
            Event::Alias(id) => match self.anchors.get(&id).map(Vec::as_slice) {
                Some([(suffix, value)]) if suffix.is_empty() => Ok(value.clone()),
                _ => Err(YamlError::KeyNotScalar { line: mark.line() }),
            },
            _ => Err(YamlError::KeyIsCollection { line: mark.line() }),
        }
    }
}

/// The text of a scalar; `None` for null.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Option<String> {
    if tag.is_some_and(|tag| tag.suffix == "str") || style != TScalarStyle::Plain {
        return Some(text);
    }
    match Yaml::from_str(&text) {
        Yaml::Null => None,
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Integer(i) => Some(i.to_string()),
        // As Go formats floats: no exponent, fewest digits that round-trip.
        Yaml::Real(real) => Some(real.parse::<f64>().map_or(real, |f| f.to_string())),
        _ => Some(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        flatten(text, &mut out).unwrap();
        out.sort();
        out
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let got = flat(
            "a: 1\nb: 1.50\nc: true\nd: ~\ne: \"007\"\nf: !!str 12\ng: 0x1A\nh: on\ni: text\nj: 2.0\n",
        );
        assert_eq!(
            got,
            pairs(&[
                ("/a", "1"),
                ("/b", "1.5"),
                ("/c", "true"),
                ("/e", "007"),
                ("/f", "12"),
                ("/g", "26"),
                ("/h", "on"),
                ("/i", "text"),
                ("/j", "2"),
            ])
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let got = flat(
            "defaults: &d\n  port: 80\n  mode: http\nweb:\n  <<: *d\n  port: 8080\nname: &n shop\nalias: *n\nlist: [*n, *n]\n",
        );
        let mut expected = pairs(&[
            ("/defaults/port", "80"),
            ("/defaults/mode", "http"),
            ("/web/port", "80"),
            ("/web/mode", "http"),
            ("/web/port", "8080"),
            ("/name", "shop"),
            ("/alias", "shop"),
            ("/list/0", "shop"),
            ("/list/1", "shop"),
        ]);
        expected.sort();
        assert_eq!(got, expected);
        // In file order the explicit key comes after the merged one, so it wins the merge step.
        let mut out = Vec::new();
        flatten("d: &d {port: 80}\nweb:\n  <<: *d\n  port: 8080\n", &mut out).unwrap();
        let web_ports: Vec<_> = out
            .iter()
            .filter(|(k, _)| k == "/web/port")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(web_ports, ["80", "8080"]);
    }

    #[test]
    fn an_alias_bomb_is_an_error_not_an_oom() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let prev = level - 1;
            bomb.push_str(&format!(
                "a{level}: &a{level} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let mut out = Vec::new();
        let err = flatten(&bomb, &mut out).unwrap_err().to_string();
        assert!(err.contains("expands to more than"), "{err}");
    }

    #[test]
    fn deep_nesting_and_bad_syntax_are_errors() {
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        let err = flatten(&deep, &mut Vec::new()).unwrap_err().to_string();
        // The scanner's own limit (or ours, whichever comes first) stops it.
        assert!(
            err.contains("recursion limit") || err.contains("nested deeper than"),
            "{err}"
        );
        let err = flatten("a: [unclosed\n", &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line"), "{err}");
        let err = flatten("? [a, b]\n: v\n", &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("mapping key must be a scalar"), "{err}");
    }
}
