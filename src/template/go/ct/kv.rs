//! consul-template's KV functions over the store view: `key`, `keyExists`, `keyOrDefault`,
//! `ls`, `safeLs`, `tree`, `safeTree`.
//!
//! As in consul-template, a path loses one leading `/`, and `ls`/`tree` match their prefix as
//! plain text (`ls "app"` lists `app/x` and `application/y` alike, the latter as `lication/y`):
//! each pair's `.Key` is its path with the prefix and then any leading `/` cut off. `ls` keeps
//! the pairs directly below (no `/` left in `.Key`), `tree` every pair but the prefix itself.
//!
//! [`literal_reads`] finds at load the calls whose path is a literal, and [`watched_prefix`]
//! turns each into the store prefix the resource watches: a consul-template template needs no
//! `keys`.

use super::{CtError, KEY_PAIRS, KeyPair, Result, STRING, STRING2, text};
use crate::store::LookupError;
use crate::template::go::context::GoContext;
use crate::template::go::{FuncError, Functions, ListType, Param, Signature, Template, Value};

/// The KV functions, by the names templates call them.
pub const FUNCTIONS: [&str; 7] = [
    "key",
    "keyExists",
    "keyOrDefault",
    "ls",
    "safeLs",
    "tree",
    "safeTree",
];

pub(super) fn register(f: &mut Functions<GoContext>) {
    let s = Signature::new;
    f.register("key", s(STRING, None), key)
        .register("keyExists", s(STRING, None), key_exists)
        .register("keyOrDefault", s(STRING2, None), key_or_default)
        .register("ls", s(STRING, None), |c, a| list(c, a, Listing::Ls))
        .register("safeLs", s(STRING, None), |c, a| {
            list(c, a, Listing::SafeLs)
        })
        .register("tree", s(STRING, None), |c, a| list(c, a, Listing::Tree))
        .register("safeTree", s(STRING, None), |c, a| {
            list(c, a, Listing::SafeTree)
        });
}

/// What a KV call reads: one key (`key`, `keyExists`, `keyOrDefault`) or a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Key,
    Prefix,
}

impl Read {
    pub fn of(function: &str) -> Read {
        match function {
            "key" | "keyExists" | "keyOrDefault" => Read::Key,
            _ => Read::Prefix,
        }
    }

    /// consul-template's name of the query, for its messages.
    fn query(self) -> &'static str {
        match self {
            Read::Key => "kv.get",
            Read::Prefix => "kv.list",
        }
    }
}

/// The path of a KV argument, as consul-template's `/?(?P<key>[^@]+)(@(?P<dc>…))?` reads it:
/// one leading `/` dropped. Another datacenter's KV is refused: terad reads one.
pub fn parse_path(read: Read, input: &str) -> std::result::Result<String, CtError> {
    let invalid = || CtError::InvalidFormat {
        what: read.query(),
        input: input.to_owned(),
    };
    let (body, datacenter) = match input.split_once('@') {
        Some((body, dc)) => (body, Some(dc)),
        None => (input, None),
    };
    if body.is_empty() {
        return Err(invalid());
    }
    if let Some(dc) = datacenter {
        if dc.is_empty()
            || !dc
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(invalid());
        }
        return Err(CtError::NotSupported {
            function: match read {
                Read::Key => "key",
                Read::Prefix => "ls",
            },
            input: input.to_owned(),
            why: "terad reads the KV store of one datacenter",
        });
    }
    // `/?` gives way when the rest would be empty: `"/"` is the path `/`.
    Ok(match body.strip_prefix('/') {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ => body.to_owned(),
    })
}

/// The store prefix a read of `path` needs watched. A key is its own prefix; a text prefix is
/// watched from its last `/` (`app/we` needs `/app`, whose keys `app/web` and `app/west` it
/// matches), the whole store when it has none.
pub fn watched_prefix(read: Read, path: &str) -> String {
    let absolute = format!("/{}", path.trim_start_matches('/'));
    match read {
        Read::Key => absolute,
        Read::Prefix => match absolute.rfind('/') {
            Some(0) | None => "/".to_owned(),
            Some(at) => absolute[..at].to_owned(),
        },
    }
}

/// One KV call found in a template at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRead {
    pub line: usize,
    pub column: usize,
    pub function: String,
    /// The path, when the argument is a literal; an error for one that can never work.
    pub path: std::result::Result<Option<String>, CtError>,
}

/// The KV calls of a parsed template.
pub fn literal_reads(template: &Template) -> Vec<FoundRead> {
    template
        .find_calls(&FUNCTIONS)
        .into_iter()
        .map(|call| {
            let path = match call.literal_args.as_deref() {
                Some([first, ..]) if first.is_empty() => Ok(None),
                Some([first, ..]) => parse_path(Read::of(&call.function), first).map(Some),
                _ => Ok(None),
            };
            FoundRead {
                line: call.line,
                column: call.column,
                function: call.function.to_string(),
                path,
            }
        })
        .collect()
}

/// The value at `path`, `None` when the store has no such key.
fn read(context: &GoContext, path: &str) -> Result<Option<String>> {
    let path = path.strip_prefix('/').unwrap_or(path);
    match context.input.view().lookup(&format!("/{path}")) {
        Ok(value) => Ok(Some(value.to_owned())),
        Err(LookupError::Missing { .. }) => Ok(None),
        Err(error) => Err(FuncError::Lookup(error)),
    }
}

fn key(context: &GoContext, args: &[Value]) -> Result<Value> {
    let input = text(args, 0);
    if input.is_empty() {
        return Ok(Value::str(""));
    }
    let path = parse_path(Read::Key, input)?;
    match read(context, &path)? {
        Some(value) => Ok(Value::from(value)),
        None => Err(CtError::MissingKey(path).into()),
    }
}

fn key_exists(context: &GoContext, args: &[Value]) -> Result<Value> {
    let input = text(args, 0);
    if input.is_empty() {
        return Ok(Value::Bool(false));
    }
    let path = parse_path(Read::Key, input)?;
    Ok(Value::Bool(read(context, &path)?.is_some()))
}

fn key_or_default(context: &GoContext, args: &[Value]) -> Result<Value> {
    let (input, default) = (text(args, 0), &args[1]);
    if input.is_empty() {
        return Ok(default.clone());
    }
    let path = parse_path(Read::Key, input)?;
    match read(context, &path)? {
        Some(value) if !value.is_empty() => Ok(Value::from(value)),
        _ => Ok(default.clone()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    Ls,
    SafeLs,
    Tree,
    SafeTree,
}

fn list(context: &GoContext, args: &[Value], listing: Listing) -> Result<Value> {
    let input = text(args, 0);
    if input.is_empty() {
        return Ok(Value::list(ListType::Objects(KEY_PAIRS), Vec::new()));
    }
    let prefix = parse_path(Read::Prefix, input)?;
    let view = context.input.view();
    let mut pairs = Vec::new();
    // Consul drops one more leading `/` of what it is asked (`ls "/"` lists the root); the
    // pairs' keys lose the prefix as written.
    let query = prefix.strip_prefix('/').unwrap_or(&prefix);
    view.covers(&watched_prefix(Read::Prefix, query))?;
    for (relative, value) in view.text_prefixed(&format!("/{query}"))? {
        let path = &relative[1..];
        let key = path
            .strip_prefix(prefix.as_str())
            .unwrap_or(path)
            .trim_start_matches('/');
        let keep = match listing {
            Listing::Ls | Listing::SafeLs => !key.is_empty() && !key.contains('/'),
            Listing::Tree | Listing::SafeTree => !key.rsplit('/').next().unwrap_or("").is_empty(),
        };
        if keep {
            pairs.push(KeyPair::value(path, key, value));
        }
    }
    if pairs.is_empty() && matches!(listing, Listing::SafeLs | Listing::SafeTree) {
        return Err(CtError::EmptyPrefix {
            function: if listing == Listing::SafeLs {
                "safeLs"
            } else {
                "safeTree"
            },
            prefix,
        }
        .into());
    }
    Ok(Value::list(ListType::Objects(KEY_PAIRS), pairs))
}

/// `Param` of a list of pairs, for the helpers that take one.
pub(super) const PAIRS: Param = Param::ObjectList(KEY_PAIRS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_consul_template_reads_them() {
        assert_eq!(parse_path(Read::Key, "/a/b").unwrap(), "a/b");
        assert_eq!(parse_path(Read::Key, "//a").unwrap(), "/a");
        assert_eq!(parse_path(Read::Prefix, "/").unwrap(), "/");
        assert_eq!(
            parse_path(Read::Key, "@dc1").unwrap_err().to_string(),
            "kv.get: invalid format: \"@dc1\""
        );
        assert!(matches!(
            parse_path(Read::Key, "a@dc1"),
            Err(CtError::NotSupported { .. })
        ));
    }

    #[test]
    fn text_prefixes_are_watched_from_their_last_slash() {
        assert_eq!(watched_prefix(Read::Prefix, "app/we"), "/app");
        assert_eq!(watched_prefix(Read::Prefix, "app/"), "/app");
        assert_eq!(watched_prefix(Read::Prefix, "app"), "/");
        assert_eq!(watched_prefix(Read::Key, "app/port"), "/app/port");
    }
}
