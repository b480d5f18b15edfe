//! confd-compatible key patterns for `gets` and `getvs`.
//!
//! confd matches keys with Go's `path.Match`, and templates written for it rely on that syntax:
//! `*` matches any run of characters except `/`, `?` one character except `/`, `[a-z]` / `[^0-9]`
//! a character class (which, as in Go, may match `/`), and `\c` the character `c` literally.
//! A pattern is compiled once per call so a scan over many keys does no parsing, and a malformed
//! pattern is an error even when no key would reach the bad part (Go reports it the same way).

use std::fmt;

/// A compiled key pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    /// The pattern split at its stars: each chunk is a fixed-length run of atoms, optionally
    /// preceded by a star. Matching places each chunk at the leftmost position that fits, which is
    /// optimal for fixed-length chunks and is exactly how Go's `path.Match` decides.
    chunks: Vec<Chunk>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Chunk {
    star: bool,
    atoms: Vec<Atom>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Literal(char),
    /// `?`: any single character except `/`.
    AnyButSlash,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Why a pattern could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key pattern {pattern:?}: {reason}")]
pub struct GlobError {
    pub pattern: String,
    pub reason: &'static str,
}

impl Glob {
    /// Compiles `pattern`, rejecting unterminated classes, empty classes, bad ranges and a
    /// trailing backslash.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let fail = |reason| GlobError {
            pattern: pattern.to_owned(),
            reason,
        };
        let mut chunks = Vec::new();
        let mut current = Chunk {
            star: false,
            atoms: Vec::new(),
        };
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    // A star closes the chunk before it; consecutive stars are one star.
                    if current.atoms.is_empty() {
                        current.star = true;
                    } else {
                        let next = Chunk {
                            star: true,
                            atoms: Vec::new(),
                        };
                        chunks.push(std::mem::replace(&mut current, next));
                    }
                }
                '?' => current.atoms.push(Atom::AnyButSlash),
                '\\' => match chars.next() {
                    Some(escaped) => current.atoms.push(Atom::Literal(escaped)),
                    None => return Err(fail("trailing backslash")),
                },
                '[' => {
                    let negated = chars.next_if_eq(&'^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        let lo = match chars.next() {
                            None => return Err(fail("unterminated character class")),
                            Some(']') if !ranges.is_empty() => break,
                            Some(']') if ranges.is_empty() => {
                                // Go accepts `]` as the first member only when escaped.
                                return Err(fail("empty character class"));
                            }
                            Some('-') => return Err(fail("character range without a start")),
                            Some('\\') => chars.next().ok_or_else(|| fail("trailing backslash"))?,
                            Some(other) => other,
                        };
                        let hi = if chars.next_if_eq(&'-').is_some() {
                            match chars.next() {
                                None => return Err(fail("unterminated character class")),
                                Some(']') | Some('-') => {
                                    return Err(fail("character range without an end"));
                                }
                                Some('\\') => {
                                    chars.next().ok_or_else(|| fail("trailing backslash"))?
                                }
                                Some(other) => other,
                            }
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err(fail("character range is reversed"));
                        }
                        ranges.push((lo, hi));
                    }
                    current.atoms.push(Atom::Class { negated, ranges });
                }
                literal => current.atoms.push(Atom::Literal(literal)),
            }
        }
        chunks.push(current);
        Ok(Glob {
            source: pattern.to_owned(),
            chunks,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The longest literal text every match starts with: the store scans only keys with this
    /// prefix instead of the whole key space.
    pub fn literal_prefix(&self) -> String {
        let mut prefix = String::new();
        if let Some(first) = self.chunks.first() {
            if first.star {
                return prefix;
            }
            for atom in &first.atoms {
                match atom {
                    Atom::Literal(c) => prefix.push(*c),
                    _ => break,
                }
            }
        }
        prefix
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        let mut rest = name;
        let last = self.chunks.len() - 1;
        'chunks: for (index, chunk) in self.chunks.iter().enumerate() {
            let is_last = index == last;
            if chunk.star && chunk.atoms.is_empty() {
                // A trailing star takes the rest of the name unless it crosses a `/`.
                return !rest.contains('/');
            }
            if let Some(after) = chunk.match_at(rest)
                && (!is_last || after.is_empty())
            {
                rest = after;
                continue;
            }
            if chunk.star {
                // Let the star swallow one more character at a time, never a `/`.
                for (offset, c) in rest.char_indices() {
                    if c == '/' {
                        break;
                    }
                    let candidate = &rest[offset + c.len_utf8()..];
                    if let Some(after) = chunk.match_at(candidate) {
                        if is_last && !after.is_empty() {
                            continue;
                        }
                        rest = after;
                        continue 'chunks;
                    }
                }
            }
            return false;
        }
        rest.is_empty()
    }
}

impl Chunk {
    /// Matches the chunk's atoms against the start of `name`, returning what follows.
    fn match_at<'a>(&self, name: &'a str) -> Option<&'a str> {
        let mut chars = name.char_indices();
        for atom in &self.atoms {
            let (_, c) = chars.next()?;
            let ok = match atom {
                Atom::Literal(expected) => c == *expected,
                Atom::AnyButSlash => c != '/',
                Atom::Class { negated, ranges } => {
                    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
                }
            };
            if !ok {
                return None;
            }
        }
        Some(chars.as_str())
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Glob::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn star_matches_within_one_segment_only() {
        assert!(m("/x/*", "/x/a"));
        assert!(m("/x/*", "/x/"));
        assert!(!m("/x/*", "/x/a/b"));
        assert!(!m("/x/*", "/x"));
        assert!(m("/x/*/port", "/x/web/port"));
        assert!(!m("/x/*/port", "/x/web/extra/port"));
        assert!(m("/x/*-db", "/x/main-db"));
        assert!(!m("/x/*-db", "/x/main-db2"));
        assert!(m("/*/*", "/a/b"));
        assert!(m("*", "abc"));
        assert!(!m("*", "a/c"));
        assert!(m("/x/**", "/x/abc"), "two stars are one star, as in Go");
        assert!(!m("/x/**", "/x/a/b"));
    }

    #[test]
    fn star_backtracks_within_a_segment() {
        assert!(m("/x/*a", "/x/banana"));
        assert!(m("/x/*a*b", "/x/aaab"));
        assert!(m("/x/a*b*c", "/x/abbbc"));
        assert!(!m("/x/a*b*c", "/x/ab/bc"));
        assert!(m("*.cfg", "haproxy.cfg"));
    }

    #[test]
    fn question_mark_is_one_non_slash_character() {
        assert!(m("/x/?", "/x/a"));
        assert!(m("/x/?", "/x/é"));
        assert!(!m("/x/?", "/x/ab"));
        assert!(!m("/x?y", "/x/y"));
    }

    #[test]
    fn classes_ranges_negation_and_escapes() {
        assert!(m("/n/[0-9]", "/n/7"));
        assert!(!m("/n/[0-9]", "/n/a"));
        assert!(m("/n/[^0-9]", "/n/a"));
        assert!(!m("/n/[^0-9]", "/n/3"));
        assert!(m("/n/[abc]x", "/n/bx"));
        assert!(m("/n/[a-cx-z]", "/n/y"));
        assert!(m(r"/n/\*", "/n/*"));
        assert!(!m(r"/n/\*", "/n/a"));
        assert!(m(r"/n/[\]]", "/n/]"));
        // As in Go's path.Match, a class is not barred from matching `/`.
        assert!(m("/a[/]b", "/a/b"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for (pattern, reason) in [
            ("/x/[", "unterminated character class"),
            ("/x/[]", "empty character class"),
            ("/x/[a-", "unterminated character class"),
            ("/x/[z-a]", "character range is reversed"),
            ("/x/[-a]", "character range without a start"),
            ("/x/[a-]", "character range without an end"),
            ("/x/\\", "trailing backslash"),
        ] {
            let err = Glob::new(pattern).unwrap_err();
            assert_eq!(err.reason, reason, "{pattern}");
            assert!(err.to_string().contains(&format!("{pattern:?}")));
        }
    }

    #[test]
    fn literal_prefix_stops_at_the_first_wildcard() {
        assert_eq!(
            Glob::new("/proxy/frontend/*").unwrap().literal_prefix(),
            "/proxy/frontend/"
        );
        assert_eq!(Glob::new("/a/b?c").unwrap().literal_prefix(), "/a/b");
        assert_eq!(Glob::new(r"/a/\*x*").unwrap().literal_prefix(), "/a/*x");
        assert_eq!(Glob::new("*").unwrap().literal_prefix(), "");
        assert_eq!(Glob::new("/exact").unwrap().literal_prefix(), "/exact");
    }

    #[test]
    fn exact_patterns_match_only_themselves() {
        assert!(m("/a/b", "/a/b"));
        assert!(!m("/a/b", "/a/bc"));
        assert!(!m("/a/b", "/a"));
        assert!(m("", ""));
        assert!(!m("", "x"));
    }
}
