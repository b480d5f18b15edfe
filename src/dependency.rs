//! What a resource's template reads, and which resources a change reaches.
//!
//! A [`Dependency`] is one thing the runner lists, watches and counts for a resource: today a
//! key prefix (a resource's `keys`). The [`DependencyIndex`] maps each dependency to the
//! resources that read it, so a batch of changed keys finds its resources by looking up each
//! key's ancestors (a handful of hash lookups per key) instead of testing every resource's keys
//! against every changed key.

use std::collections::{BTreeSet, HashMap};

use crate::store::KeyStore;

/// One thing a resource's template reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dependency {
    /// Every key at or below this absolute prefix (on `/` boundaries; `/` is every key).
    Prefix(String),
}

impl Dependency {
    /// The dependencies of a resource with these absolute `keys`, covered ones merged away.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a String>) -> Vec<Dependency> {
        crate::backend::merge_prefixes(keys)
            .into_iter()
            .map(Dependency::Prefix)
            .collect()
    }

    /// How many entries the dependency has now, for the empty-store guard.
    pub fn count(&self, store: &KeyStore) -> usize {
        match self {
            Dependency::Prefix(prefix) => store.subtree(prefix).count(),
        }
    }
}

/// The keys of a map from a prefix: `/` and `` both mean the root.
fn prefix_key(prefix: &str) -> &str {
    prefix.trim_end_matches('/')
}

/// Dependency → the resources (by position) that read it.
#[derive(Debug, Default)]
pub struct DependencyIndex {
    by_prefix: HashMap<String, Vec<usize>>,
}

impl DependencyIndex {
    /// Indexes each resource's dependencies under its position.
    pub fn new<'a>(resources: impl IntoIterator<Item = &'a [Dependency]>) -> DependencyIndex {
        let mut by_prefix: HashMap<String, Vec<usize>> = HashMap::new();
        for (position, dependencies) in resources.into_iter().enumerate() {
            for dependency in dependencies {
                match dependency {
                    Dependency::Prefix(prefix) => by_prefix
                        .entry(prefix_key(prefix).to_owned())
                        .or_default()
                        .push(position),
                }
            }
        }
        DependencyIndex { by_prefix }
    }

    /// The resources that read any of `keys`: each key's ancestors on `/` boundaries (the key
    /// itself, its parents, the root) looked up in the index.
    pub fn touched<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> BTreeSet<usize> {
        let mut touched = BTreeSet::new();
        if self.by_prefix.is_empty() {
            return touched;
        }
        let mut add = |prefix: &str| {
            if let Some(positions) = self.by_prefix.get(prefix) {
                touched.extend(positions.iter().copied());
            }
        };
        for key in keys {
            add(prefix_key(key));
            for (index, _) in key.match_indices('/') {
                add(&key[..index]);
            }
        }
        touched
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::key_in_scope;

    fn deps(keys: &[&str]) -> Vec<Dependency> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        Dependency::from_keys(&keys)
    }

    #[test]
    fn a_change_reaches_exactly_the_resources_whose_keys_cover_it() {
        let resources = [
            deps(&["/proxy"]),
            deps(&["/proxy/frontend", "/app"]),
            deps(&["/"]),
            deps(&["/app2"]),
        ];
        let index = DependencyIndex::new(resources.iter().map(Vec::as_slice));
        let touched = |key: &str| index.touched([key]).into_iter().collect::<Vec<_>>();
        assert_eq!(touched("/proxy/frontend/web1"), [0, 1, 2]);
        assert_eq!(touched("/proxy/port"), [0, 2]);
        assert_eq!(touched("/proxy"), [0, 2]);
        assert_eq!(touched("/app/x"), [1, 2]);
        assert_eq!(touched("/app2/x"), [2, 3]);
        assert_eq!(touched("/app-x"), [2], "no match across a segment boundary");
        assert_eq!(touched("/proxy/"), [0, 2]);
    }

    /// The index answers exactly what testing every resource's keys against every key did.
    #[test]
    fn the_index_agrees_with_the_scan_it_replaces() {
        let scopes: &[&[&str]] = &[&["/a"], &["/a/b"], &["/"], &["/a/b/c", "/d"], &["/ab"]];
        let resources: Vec<Vec<Dependency>> = scopes.iter().map(|keys| deps(keys)).collect();
        let index = DependencyIndex::new(resources.iter().map(Vec::as_slice));
        for key in [
            "/a", "/a/b", "/a/b/c/d", "/ab", "/abc", "/d/x", "/e", "/", "/a/",
        ] {
            let scanned: BTreeSet<usize> = scopes
                .iter()
                .enumerate()
                .filter(|(_, keys)| keys.iter().any(|scope| key_in_scope(scope, key)))
                .map(|(position, _)| position)
                .collect();
            assert_eq!(index.touched([key]), scanned, "{key}");
        }
    }

    #[test]
    fn counts_follow_the_store() {
        let store: KeyStore = [("/a/1", "x"), ("/a/2", "y"), ("/ab", "z")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(Dependency::Prefix("/a".into()).count(&store), 2);
        assert_eq!(Dependency::Prefix("/".into()).count(&store), 3);
    }
}
