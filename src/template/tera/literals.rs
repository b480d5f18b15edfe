//! The key lookups a Tera template makes with literal arguments (`getv(key="/other/port")`,
//! `gets(pattern="/proxy/frontend/*")`), found in its text at load so that one outside the
//! resource's `keys` is a configuration error at start, for every template at once, instead of
//! a failed render later. Computed keys (`getv(key="/app/" ~ name)`) are checked when rendered.
//!
//! Tera has no public syntax tree, so this reads the tags itself: inside `{{ }}` and `{% %}`
//! (never in text, comments or `{% raw %}` blocks), a call of one of the lookup functions whose
//! key argument is a single string literal.

/// One literal lookup: which function, its literal, and where the literal starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralLookup {
    pub function: &'static str,
    /// A key (`getv`, `get`, `exists`, `ls`, `lsdir`) or a pattern (`gets`, `getvs`).
    pub literal: String,
    pub is_pattern: bool,
    /// Byte offset of the literal in the source.
    pub offset: usize,
}

const FUNCTIONS: &[(&str, &str, bool)] = &[
    ("getv", "key", false),
    ("get", "key", false),
    ("exists", "key", false),
    ("ls", "path", false),
    ("lsdir", "path", false),
    ("gets", "pattern", true),
    ("getvs", "pattern", true),
];

/// Every literal lookup in `source`.
pub fn literal_lookups(source: &str) -> Vec<LiteralLookup> {
    let mut found = Vec::new();
    let bytes = source.as_bytes();
    let mut at = 0;
    while let Some(open) = source[at..].find('{').map(|i| at + i) {
        let closer = match bytes.get(open + 1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => {
                at = source[open..]
                    .find("#}")
                    .map_or(source.len(), |i| open + i + 2);
                continue;
            }
            _ => {
                at = open + 1;
                continue;
            }
        };
        let body_start = open + 2;
        let end = tag_end(source, body_start, closer);
        let body = &source[body_start..end];
        if closer == "%}" && is_raw_start(body) {
            // `{% raw %}…{% endraw %}` is text.
            at = find_endraw(source, end).unwrap_or(source.len());
            continue;
        }
        scan_tag(source, body_start, end, &mut found);
        at = (end + 2).min(source.len());
    }
    found
}

fn is_raw_start(body: &str) -> bool {
    body.trim_matches(|c: char| c == '-' || c.is_whitespace()) == "raw"
}

fn find_endraw(source: &str, from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(open) = source[at..].find("{%").map(|i| at + i) {
        let end = tag_end(source, open + 2, "%}");
        if source[open + 2..end].trim_matches(|c: char| c == '-' || c.is_whitespace()) == "endraw" {
            return Some((end + 2).min(source.len()));
        }
        at = end;
    }
    None
}

/// Where the tag opened at `from` closes, skipping string literals.
fn tag_end(source: &str, from: usize, closer: &str) -> usize {
    let bytes = source.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'"' | b'\'' | b'`') => {
                i = source[i + 1..]
                    .find(quote as char)
                    .map_or(bytes.len(), |j| i + 1 + j + 1);
            }
            _ if source[i..].starts_with(closer) => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Finds lookup calls in one tag's body, `source[start..end]`.
fn scan_tag(source: &str, start: usize, end: usize, found: &mut Vec<LiteralLookup>) {
    let bytes = source.as_bytes();
    let mut i = start;
    while i < end {
        let c = bytes[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            i = source[i + 1..end]
                .find(c as char)
                .map_or(end, |j| i + 1 + j + 1);
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == b'_') {
            i += 1;
            continue;
        }
        let word_end = i + source[i..end]
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
            .unwrap_or(end - i);
        let word = &source[i..word_end];
        // A function call, not a field (`x.get`) or a filter argument.
        let preceded_by_dot = i > start && bytes[i - 1] == b'.';
        let next = skip_space(source, word_end, end);
        if !preceded_by_dot
            && next < end
            && bytes[next] == b'('
            && let Some((function, argument, is_pattern)) =
                FUNCTIONS.iter().find(|(name, _, _)| *name == word)
            && let Some((literal, offset)) = keyword_literal(source, next + 1, end, argument)
        {
            found.push(LiteralLookup {
                function,
                literal,
                is_pattern: *is_pattern,
                offset,
            });
        }
        i = word_end;
    }
}

fn skip_space(source: &str, mut i: usize, end: usize) -> usize {
    let bytes = source.as_bytes();
    while i < end && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// In the argument list starting at `from`, the value of `argument=` when it is one string
/// literal followed by `,` or `)`.
fn keyword_literal(
    source: &str,
    from: usize,
    end: usize,
    argument: &str,
) -> Option<(String, usize)> {
    let bytes = source.as_bytes();
    let mut i = from;
    loop {
        i = skip_space(source, i, end);
        let name_end = i + source[i..end]
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
            .unwrap_or(end - i);
        let name = &source[i..name_end];
        let mut j = skip_space(source, name_end, end);
        if name.is_empty() || j >= end || bytes[j] != b'=' {
            return None;
        }
        j = skip_space(source, j + 1, end);
        let quote = *bytes.get(j)?;
        let value_end = if matches!(quote, b'"' | b'\'' | b'`') {
            let close = source[j + 1..end].find(quote as char)? + j + 1;
            let after = skip_space(source, close + 1, end);
            let alone = after < end && matches!(bytes[after], b',' | b')');
            if name == argument {
                return alone.then(|| (source[j + 1..close].to_owned(), j + 1));
            }
            after
        } else {
            if name == argument {
                return None;
            }
            // Skip a non-literal value up to the next top-level comma.
            let mut depth = 0usize;
            let mut k = j;
            while k < end {
                match bytes[k] {
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' if depth == 0 => break,
                    b')' | b']' | b'}' => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
                k += 1;
            }
            k
        };
        if value_end >= end || bytes[value_end] != b',' {
            return None;
        }
        i = value_end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literals(source: &str) -> Vec<(&'static str, String)> {
        literal_lookups(source)
            .into_iter()
            .map(|l| (l.function, l.literal))
            .collect()
    }

    #[test]
    fn finds_literal_keys_and_patterns_in_tags_only() {
        let source = r#"getv(key="/text") {{ getv(key="/a", default="x") }}
{% for kv in gets(pattern='/p/*') %}{{ kv.key | base }}{% endfor %}
{# getv(key="/comment") #}{% raw %}{{ getv(key="/raw") }}{% endraw %}
{{ getv(default="d", key="/b") }} {{ get(key = "/c") }} {{ x.get(key="/field") }}
{{ getv(key="/app/" ~ name) }} {{ getv(key=name) }} {{ exists(key="/e") }}
{% set v = getvs(pattern="/v/*") | join(sep=",") %}{{ ls(path="/l") }}"#;
        assert_eq!(
            literals(source),
            [
                ("getv", "/a".to_owned()),
                ("gets", "/p/*".to_owned()),
                ("getv", "/b".to_owned()),
                ("get", "/c".to_owned()),
                ("exists", "/e".to_owned()),
                ("getvs", "/v/*".to_owned()),
                ("ls", "/l".to_owned()),
            ]
        );
        let first = &literal_lookups(source)[0];
        assert_eq!(&source[first.offset..first.offset + 2], "/a");
    }

    #[test]
    fn odd_input_does_not_panic() {
        for source in [
            "{{",
            "{{ getv(",
            "{{ getv(key=",
            "{{ getv(key=\"",
            "{% raw %}",
            "{#",
            "}}{{",
        ] {
            let _ = literal_lookups(source);
        }
    }
}
