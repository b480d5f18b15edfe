//! The in-memory copy of the watched key space that templates read.
//!
//! One [`KeyStore`] per backend holds every watched key in a sorted map. Backends fill it with a
//! full listing and then apply changes in place, so a key change never costs a re-fetch. A
//! template never sees the whole store: it reads through a [`View`] limited to its resource's
//! `keys` and with its resource's `prefix` stripped, exactly like confd's per-resource store.
//! Prefix, glob and `ls` queries are range scans over the sorted map, never full scans.

mod glob;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

pub use glob::{Glob, GlobError};

/// A sorted map from absolute key to value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyStore {
    entries: BTreeMap<String, String>,
}

/// One change to apply to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put { key: String, value: String },
    Delete { key: String },
}

impl Change {
    pub fn key(&self) -> &str {
        match self {
            Change::Put { key, .. } | Change::Delete { key } => key,
        }
    }
}

impl KeyStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.insert(key.into(), value.into());
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.entries.remove(key)
    }

    /// Applies one change; returns whether the store differs afterwards.
    pub fn apply(&mut self, change: Change) -> bool {
        match change {
            Change::Put { key, value } => match self.entries.get_mut(&key) {
                Some(existing) if *existing == value => false,
                Some(existing) => {
                    *existing = value;
                    true
                }
                None => {
                    self.entries.insert(key, value);
                    true
                }
            },
            Change::Delete { key } => self.entries.remove(&key).is_some(),
        }
    }

    /// Replaces everything under `prefix` (on `/` boundaries) with `entries`, as a backend does
    /// after a fresh listing. Returns the keys whose value changed, appeared or disappeared.
    pub fn replace_subtree(
        &mut self,
        prefix: &str,
        entries: impl IntoIterator<Item = (String, String)>,
    ) -> Vec<String> {
        let mut fresh: BTreeMap<String, String> = entries.into_iter().collect();
        let mut changed = Vec::new();
        let stale: Vec<String> = self
            .subtree(prefix)
            .filter(|(key, _)| !fresh.contains_key(*key))
            .map(|(key, _)| key.to_owned())
            .collect();
        for key in stale {
            self.entries.remove(&key);
            changed.push(key);
        }
        for (key, value) in std::mem::take(&mut fresh) {
            if self.get(&key) != Some(value.as_str()) {
                changed.push(key.clone());
                self.entries.insert(key, value);
            }
        }
        changed.sort();
        changed
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The entry at `path` and every entry below it, on `/` boundaries: the subtree of `/app`
    /// holds `/app` and `/app/x`, never `/app2`. The root (`/` or ``) holds every key.
    pub fn subtree<'a>(&'a self, path: &str) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        let base = path.trim_end_matches('/');
        let exact = if base.is_empty() {
            None
        } else {
            self.entries
                .get_key_value(base)
                .map(|(k, v)| (k.as_str(), v.as_str()))
        };
        // Children of `/app` are exactly the keys in [`/app/`, `/app0`): `0` follows `/` in ASCII.
        let lower = format!("{base}/");
        let upper = format!("{base}0");
        exact.into_iter().chain(
            self.entries
                .range::<str, _>((
                    Bound::Included(lower.as_str()),
                    Bound::Excluded(upper.as_str()),
                ))
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// Entries whose key starts with `prefix` as plain text, in key order.
    pub fn with_text_prefix(&self, prefix: String) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .take_while(move |(k, _)| k.starts_with(prefix.as_str()))
    }
}

impl FromIterator<(String, String)> for KeyStore {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().collect(),
        }
    }
}

/// Whether `key` is `scope` itself or lies below it on a `/` boundary. The root scope `/`
/// covers every key.
pub fn key_in_scope(scope: &str, key: &str) -> bool {
    let scope = scope.trim_end_matches('/');
    if scope.is_empty() {
        return true;
    }
    match key.strip_prefix(scope) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Joins key paths the way resource prefixes and keys combine: `/` + `app` + `/db` is `/app/db`,
/// never doubling or dropping a separator, and an empty part adds nothing.
pub fn join_key(parts: &[&str]) -> String {
    let mut joined = String::new();
    for part in parts {
        for segment in part.split('/').filter(|s| !s.is_empty()) {
            joined.push('/');
            joined.push_str(segment);
        }
    }
    if joined.is_empty() {
        joined.push('/');
    }
    joined
}

/// What a resource accepts from the store besides its scope: key names never hold control
/// characters (a newline in a key name rewrites the config it is printed into); with `strict`,
/// values do not either, except for the keys `multiline` matches (certificates, whole config
/// sections).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValuePolicy {
    pub strict: bool,
    /// Absolute key patterns whose values may span lines.
    pub multiline: Vec<Glob>,
}

impl ValuePolicy {
    /// Why `key` (absolute) with `value` must not reach a template, if it must not.
    fn refuse(&self, key: &str, value: &str) -> Option<&'static str> {
        if key.chars().any(char::is_control) {
            return Some("its name holds a control character");
        }
        if self.strict
            && value.chars().any(char::is_control)
            && !self.multiline.iter().any(|glob| glob.matches(key))
        {
            return Some(
                "strict_values is set and its value holds a control character (a newline?); list the key in `multiline` if it may span lines",
            );
        }
        None
    }
}

/// Why a template's lookup found nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// A key this resource may see holds what it must not render. The key is printed escaped.
    #[error("key {key:?} refused: {reason}")]
    Refused { key: String, reason: &'static str },
    #[error("key {key:?} not found")]
    Missing { key: String },
    /// The template read a key (or a pattern) its resource does not watch: a change to it
    /// would never re-render the resource, so reading it is a mistake, not a miss.
    #[error(
        "{what} {key:?} is outside this resource's keys {keys:?}; add it to `keys` in the resource file"
    )]
    OutOfScope {
        what: &'static str,
        key: String,
        keys: Vec<String>,
    },
}

/// A resource's window on the store: keys outside its `keys` are invisible, and keys are seen
/// relative to its `prefix` (`/app/db/host` under prefix `/app` reads as `/db/host`).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    store: &'a KeyStore,
    /// The resource's absolute prefix without a trailing `/`; empty for the root.
    prefix: &'a str,
    /// The resource's absolute watched keys.
    scopes: &'a [String],
    policy: Option<&'a ValuePolicy>,
}

impl<'a> View<'a> {
    /// `prefix` is the resource's absolute prefix (`/` for none); `scopes` its absolute keys.
    pub fn new(store: &'a KeyStore, prefix: &'a str, scopes: &'a [String]) -> Self {
        View {
            store,
            prefix: prefix.trim_end_matches('/'),
            scopes,
            policy: None,
        }
    }

    /// The view with a resource's value policy applied to what it returns.
    pub fn with_policy(self, policy: &'a ValuePolicy) -> Self {
        View {
            policy: Some(policy),
            ..self
        }
    }

    /// Checks one entry against the policy (key names are always checked).
    fn vet(&self, absolute: &str, value: &str) -> Result<(), LookupError> {
        let default = ValuePolicy::default();
        match self.policy.unwrap_or(&default).refuse(absolute, value) {
            Some(reason) => Err(LookupError::Refused {
                key: absolute.to_owned(),
                reason,
            }),
            None => Ok(()),
        }
    }

    fn absolute(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    fn relative(&self, absolute: &'a str) -> &'a str {
        let rest = &absolute[self.prefix.len()..];
        if rest.is_empty() { "/" } else { rest }
    }

    fn visible(&self, absolute: &str) -> bool {
        key_in_scope(self.prefix, absolute)
            && self
                .scopes
                .iter()
                .any(|scope| key_in_scope(scope, absolute))
    }

    /// The value of one key, as the template names it.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        if !key.starts_with('/') {
            return None;
        }
        let absolute = self.absolute(key);
        let value = self.store.get(&absolute)?;
        self.visible(&absolute).then_some(value)
    }

    /// The resource's keys as the template names them (relative to its prefix).
    fn relative_scopes(&self) -> Vec<String> {
        self.scopes
            .iter()
            .map(|scope| match scope.strip_prefix(self.prefix) {
                Some("") => "/".to_owned(),
                Some(rest) if rest.starts_with('/') => rest.to_owned(),
                _ => scope.clone(),
            })
            .collect()
    }

    /// The value of one key, or why there is none: the key lies outside the resource's keys
    /// (whether or not the store has it), or it does not exist.
    pub fn lookup(&self, key: &str) -> Result<&'a str, LookupError> {
        if key.starts_with('/') && !self.visible(&self.absolute(key)) {
            return Err(LookupError::OutOfScope {
                what: "key",
                key: key.to_owned(),
                keys: self.relative_scopes(),
            });
        }
        let value = self.get(key).ok_or_else(|| LookupError::Missing {
            key: key.to_owned(),
        })?;
        self.vet(&self.absolute(key), value)?;
        Ok(value)
    }

    /// Whether a pattern can match a key this view sees: its literal part lies inside one of
    /// the resource's keys, or one of them lies inside what the pattern covers.
    pub fn check_pattern(&self, pattern: &Glob) -> Result<(), LookupError> {
        let literal = self.absolute(&pattern.literal_prefix());
        let reachable = key_in_scope(self.prefix, &literal)
            && self.scopes.iter().any(|scope| {
                key_in_scope(scope, &literal)
                    || scope.starts_with(literal.as_str())
                    || literal.trim_end_matches('/').is_empty()
            });
        if reachable {
            Ok(())
        } else {
            Err(LookupError::OutOfScope {
                what: "pattern",
                key: pattern.as_str().to_owned(),
                keys: self.relative_scopes(),
            })
        }
    }

    /// Every visible entry whose relative key matches `pattern`, sorted by key; an error when
    /// one of them is refused by the resource's value policy.
    pub fn glob(&self, pattern: &Glob) -> Result<Vec<(&'a str, &'a str)>, LookupError> {
        let literal = self.absolute(&pattern.literal_prefix());
        let store: &'a KeyStore = self.store;
        let mut found = Vec::new();
        for (key, value) in store.with_text_prefix(literal) {
            if self.visible(key) {
                let relative = self.relative(key);
                if pattern.matches(relative) {
                    self.vet(key, value)?;
                    found.push((relative, value));
                }
            }
        }
        Ok(found)
    }

    /// consul-template's listing: every visible entry whose relative key starts with `prefix`
    /// as plain text (`/app` lists `/app/x` and `/application` alike), in key order, with
    /// relative keys; an error when one of them is refused by the value policy.
    pub fn text_prefixed(&self, prefix: &str) -> Result<Vec<(&'a str, &'a str)>, LookupError> {
        let mut found = Vec::new();
        for (key, value) in self.store.with_text_prefix(self.absolute(prefix)) {
            if self.visible(key) {
                self.vet(key, value)?;
                found.push((self.relative(key), value));
            }
        }
        Ok(found)
    }

    /// Whether the resource watches everything at or below `path` (relative): a listing of
    /// something it does not watch would be silently incomplete, so it is an error instead.
    pub fn covers(&self, path: &str) -> Result<(), LookupError> {
        let absolute = self.absolute(path.trim_end_matches('/'));
        let absolute = if absolute.is_empty() { "/" } else { &absolute };
        if key_in_scope(self.prefix, absolute)
            && self
                .scopes
                .iter()
                .any(|scope| key_in_scope(scope, absolute))
        {
            Ok(())
        } else {
            Err(LookupError::OutOfScope {
                what: "prefix",
                key: path.to_owned(),
                keys: self.relative_scopes(),
            })
        }
    }

    /// Visible entries at or below `path` (relative), in key order, with relative keys.
    fn under(&self, path: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        let view = *self;
        let absolute = self.absolute(path.trim_end_matches('/'));
        self.store
            .subtree(&absolute)
            .filter(move |(key, _)| view.visible(key))
            .map(move |(key, _)| view.relative(key))
    }

    /// confd's `ls`: the sorted, distinct names directly below `path`, leaves and directories
    /// alike. Listing a leaf key gives its own name, as in confd. With `confd_root`, `ls "/"`
    /// keeps confd's quirk of listing only the top-level keys that hold a value; otherwise it
    /// lists top-level directories too.
    pub fn list(&self, path: &str, confd_root: bool) -> Result<Vec<String>, LookupError> {
        let base = path.trim_end_matches('/');
        let mut names = BTreeSet::new();
        for key in self.under(path) {
            if key == base {
                names.insert(key.rsplit('/').next().unwrap_or(key));
                continue;
            }
            let rest = key[base.len()..].trim_start_matches('/');
            match rest.split_once('/') {
                Some(_) if confd_root && base.is_empty() => {}
                Some((first, _)) if !first.is_empty() => {
                    names.insert(first);
                }
                None if !rest.is_empty() => {
                    names.insert(rest);
                }
                _ => {}
            }
        }
        Self::vetted_names(names)
    }

    /// confd's `lsdir`: the sorted, distinct names directly below `path` that have children.
    /// With `confd_root`, `lsdir "/"` is empty, as in confd.
    pub fn list_dirs(&self, path: &str, confd_root: bool) -> Result<Vec<String>, LookupError> {
        let base = path.trim_end_matches('/');
        if confd_root && base.is_empty() {
            return Ok(Vec::new());
        }
        let mut names = BTreeSet::new();
        for key in self.under(path) {
            let rest = key[base.len()..].trim_start_matches('/');
            if let Some((first, _)) = rest.split_once('/')
                && !first.is_empty()
            {
                names.insert(first);
            }
        }
        Self::vetted_names(names)
    }

    /// Names listed for a template: one with a control character is refused, as its key is.
    fn vetted_names(names: BTreeSet<&str>) -> Result<Vec<String>, LookupError> {
        names
            .into_iter()
            .map(|name| {
                if name.chars().any(char::is_control) {
                    Err(LookupError::Refused {
                        key: name.to_owned(),
                        reason: "its name holds a control character",
                    })
                } else {
                    Ok(name.to_owned())
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(pairs: &[(&str, &str)]) -> KeyStore {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn root_scope() -> Vec<String> {
        vec!["/".to_owned()]
    }

    #[test]
    fn subtree_respects_segment_boundaries() {
        let s = store(&[
            ("/app", "root"),
            ("/app/x", "1"),
            ("/app/y/z", "2"),
            ("/app-x", "no"),
            ("/app2/x", "no"),
            ("/ap", "no"),
        ]);
        let keys: Vec<_> = s.subtree("/app").map(|(k, _)| k).collect();
        assert_eq!(keys, ["/app", "/app/x", "/app/y/z"]);
        let keys: Vec<_> = s.subtree("/app/").map(|(k, _)| k).collect();
        assert_eq!(keys, ["/app", "/app/x", "/app/y/z"]);
        assert_eq!(s.subtree("/").count(), 6);
        assert_eq!(s.subtree("").count(), 6);
    }

    #[test]
    fn key_scope_and_join() {
        assert!(key_in_scope("/app", "/app"));
        assert!(key_in_scope("/app", "/app/x"));
        assert!(key_in_scope("/app/", "/app/x"));
        assert!(!key_in_scope("/app", "/app2/x"));
        assert!(!key_in_scope("/app", "/ap"));
        assert!(key_in_scope("/", "/anything"));
        assert_eq!(join_key(&["/", "app", "/db/"]), "/app/db");
        assert_eq!(join_key(&["/prod", "/app"]), "/prod/app");
        assert_eq!(join_key(&["", "/"]), "/");
        assert_eq!(join_key(&["//a//b"]), "/a/b");
    }

    #[test]
    fn apply_and_replace_subtree_report_real_changes() {
        let mut s = store(&[("/a/1", "x")]);
        assert!(!s.apply(Change::Put {
            key: "/a/1".into(),
            value: "x".into()
        }));
        assert!(s.apply(Change::Put {
            key: "/a/1".into(),
            value: "y".into()
        }));
        assert!(s.apply(Change::Delete { key: "/a/1".into() }));
        assert!(!s.apply(Change::Delete { key: "/a/1".into() }));

        let mut s = store(&[("/a/1", "x"), ("/a/2", "y"), ("/a2/3", "z")]);
        let changed = s.replace_subtree(
            "/a",
            vec![("/a/2".into(), "y".into()), ("/a/4".into(), "w".into())],
        );
        assert_eq!(changed, ["/a/1", "/a/4"]);
        assert_eq!(s.get("/a2/3"), Some("z"), "a sibling prefix is untouched");
        assert_eq!(s.get("/a/1"), None);
    }

    #[test]
    fn view_strips_prefix_and_hides_keys_outside_the_resource() {
        let s = store(&[
            ("/prod/app/db/host", "db1"),
            ("/prod/app/db/port", "5432"),
            ("/prod/app/secret", "hidden"),
            ("/prod/app2/db/host", "other"),
        ]);
        let scopes = vec!["/prod/app/db".to_owned()];
        let view = View::new(&s, "/prod/app", &scopes);
        assert_eq!(view.get("/db/host"), Some("db1"));
        assert_eq!(view.get("/secret"), None, "not among the resource's keys");
        assert_eq!(view.get("db/host"), None, "template keys are absolute");
        let all = view.glob(&Glob::new("/*/*").unwrap()).unwrap();
        assert_eq!(all, [("/db/host", "db1"), ("/db/port", "5432")]);
    }

    #[test]
    fn view_glob_sorts_by_key_and_stays_in_one_segment() {
        let s = store(&[
            ("/proxy/frontend/b", "10.0.0.2:80"),
            ("/proxy/frontend/a", "10.0.0.1:80"),
            ("/proxy/frontend/a/deep", "no"),
            ("/proxy/frontend2/c", "no"),
        ]);
        let scopes = root_scope();
        let view = View::new(&s, "/", &scopes);
        let got = view.glob(&Glob::new("/proxy/frontend/*").unwrap()).unwrap();
        assert_eq!(
            got,
            [
                ("/proxy/frontend/a", "10.0.0.1:80"),
                ("/proxy/frontend/b", "10.0.0.2:80")
            ]
        );
    }

    #[test]
    fn ls_and_lsdir_follow_confd() {
        let s = store(&[
            ("/app/upstream/web1", "a"),
            ("/app/upstream/web2", "b"),
            ("/app/upstream/pool/x", "c"),
            ("/app/name", "n"),
            ("/top", "t"),
            ("/appx/y", "no"),
        ]);
        let scopes = root_scope();
        let view = View::new(&s, "/", &scopes);
        assert_eq!(
            view.list("/app/upstream", false).unwrap(),
            ["pool", "web1", "web2"]
        );
        assert_eq!(
            view.list("/app/upstream/", false).unwrap(),
            ["pool", "web1", "web2"]
        );
        assert_eq!(view.list("/app", false).unwrap(), ["name", "upstream"]);
        assert_eq!(view.list_dirs("/app", false).unwrap(), ["upstream"]);
        assert_eq!(view.list_dirs("/app/upstream", false).unwrap(), ["pool"]);
        // Listing a leaf gives its own name (a confd quirk kept for compatibility).
        assert_eq!(view.list("/app/name", false).unwrap(), ["name"]);
        assert!(view.list("/missing", false).unwrap().is_empty());
        // At the root confd only lists leaves; terad lists directories too.
        assert_eq!(view.list("/", false).unwrap(), ["app", "appx", "top"]);
        assert_eq!(view.list_dirs("/", false).unwrap(), ["app", "appx"]);
        // The Go dialect keeps confd's root quirk: byte-identical output is its promise.
        assert_eq!(view.list("/", true).unwrap(), ["top"]);
        assert!(view.list_dirs("/", true).unwrap().is_empty());
        assert_eq!(view.list("/app", true).unwrap(), ["name", "upstream"]);
    }

    #[test]
    fn control_characters_in_key_names_are_refused_and_in_values_under_strict_values() {
        let s = store(&[
            ("/proxy/frontend/web1", "10.0.0.1:80"),
            ("/proxy/frontend/evil\nglobal", "10.0.0.2:80"),
            ("/proxy/backup/web2", "10.0.0.3:80 check\n\nprogram pwn"),
            ("/proxy/tls/cert", "-----BEGIN\nxyz\n-----END"),
        ]);
        let scopes = root_scope();
        let view = View::new(&s, "/", &scopes);
        let err = view
            .glob(&Glob::new("/proxy/frontend/*").unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "key \"/proxy/frontend/evil\\nglobal\" refused: its name holds a control character"
        );
        let err = view.list("/proxy/frontend", false).unwrap_err();
        assert!(err.to_string().contains("evil\\nglobal"), "{err}");
        // Values may span lines unless the resource says otherwise.
        assert!(view.lookup("/proxy/backup/web2").is_ok());
        let policy = ValuePolicy {
            strict: true,
            multiline: vec![Glob::new("/proxy/tls/*").unwrap()],
        };
        let strict = view.with_policy(&policy);
        let err = strict.lookup("/proxy/backup/web2").unwrap_err();
        assert!(err.to_string().contains("strict_values"), "{err}");
        assert!(strict.glob(&Glob::new("/proxy/backup/*").unwrap()).is_err());
        assert_eq!(
            strict.lookup("/proxy/tls/cert").unwrap(),
            "-----BEGIN\nxyz\n-----END"
        );
    }

    #[test]
    fn ls_under_a_prefix_sees_relative_names() {
        let s = store(&[("/svc/web/a", "1"), ("/svc/web/b/c", "2"), ("/svc/db", "3")]);
        let scopes = vec!["/svc/web".to_owned()];
        let view = View::new(&s, "/svc", &scopes);
        assert_eq!(
            view.list("/", false).unwrap(),
            ["web"],
            "keys outside `keys` stay hidden"
        );
        assert_eq!(view.list("/web", false).unwrap(), ["a", "b"]);
        assert_eq!(view.list_dirs("/web", false).unwrap(), ["b"]);
    }
}
