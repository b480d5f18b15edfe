//! What a resource's template reads, and which resources a change reaches.
//!
//! A [`Dependency`] is one thing the runner lists, watches and counts for a resource: a key
//! prefix (a resource's `keys`), or a query of Consul's service catalog its template makes
//! (found in the template at load, or recorded at render). The [`DependencyIndex`] maps each
//! dependency to the resources that read it, so a batch of changed keys finds its resources by
//! looking up each key's ancestors (a handful of hash lookups per key) instead of testing every
//! resource's keys against every changed key, and a health change finds exactly the resources
//! that use that service.

use std::collections::{BTreeSet, HashMap};

use crate::catalog::{ServiceQuery, ServiceSnapshot};
use crate::store::KeyStore;

/// One thing a resource's template reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dependency {
    /// Every key at or below this absolute prefix (on `/` boundaries; `/` is every key).
    Prefix(String),
    /// The answer to one query of Consul's catalog (`service(name="web")`, `nodes()`, …).
    Service(ServiceQuery),
}

impl Dependency {
    /// The dependencies of a resource with these absolute `keys`, covered ones merged away.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a String>) -> Vec<Dependency> {
        crate::backend::merge_prefixes(keys)
            .into_iter()
            .map(Dependency::Prefix)
            .collect()
    }

    /// How many entries the dependency has now (keys, or instances, services or nodes), for
    /// the empty-store guard.
    pub fn count(&self, store: &KeyStore, services: &ServiceSnapshot) -> usize {
        match self {
            Dependency::Prefix(prefix) => store.subtree(prefix).count(),
            Dependency::Service(query) => services.count(query),
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
    by_service: HashMap<ServiceQuery, Vec<usize>>,
}

impl DependencyIndex {
    /// Indexes each resource's dependencies under its position.
    pub fn new<'a>(resources: impl IntoIterator<Item = &'a [Dependency]>) -> DependencyIndex {
        let mut index = DependencyIndex::default();
        for (position, dependencies) in resources.into_iter().enumerate() {
            for dependency in dependencies {
                index.add(position, dependency);
            }
        }
        index
    }

    /// Indexes one more dependency of the resource at `position` (a query its render made).
    pub fn add(&mut self, position: usize, dependency: &Dependency) {
        let positions = match dependency {
            Dependency::Prefix(prefix) => self
                .by_prefix
                .entry(prefix_key(prefix).to_owned())
                .or_default(),
            Dependency::Service(query) => self.by_service.entry(query.clone()).or_default(),
        };
        if !positions.contains(&position) {
            positions.push(position);
        }
    }

    /// The resources that use the answer to `query`.
    pub fn using(&self, query: &ServiceQuery) -> &[usize] {
        self.by_service.get(query).map_or(&[], Vec::as_slice)
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
        let services = ServiceSnapshot::default();
        assert_eq!(Dependency::Prefix("/a".into()).count(&store, &services), 2);
        assert_eq!(Dependency::Prefix("/".into()).count(&store, &services), 3);
    }

    #[test]
    fn a_health_change_reaches_exactly_the_resources_using_that_query() {
        use crate::catalog::HealthQuery;
        let web = Dependency::Service(ServiceQuery::Health(HealthQuery::new("web").unwrap()));
        let api = Dependency::Service(ServiceQuery::Health(HealthQuery::new("api").unwrap()));
        let resources = [
            vec![Dependency::Prefix("/proxy".into()), web.clone()],
            vec![api.clone()],
            vec![web.clone(), api.clone()],
            deps(&["/"]),
        ];
        let mut index = DependencyIndex::new(resources.iter().map(Vec::as_slice));
        let Dependency::Service(web_query) = &web else {
            unreachable!()
        };
        assert_eq!(index.using(web_query), [0, 2]);
        index.add(3, &web);
        index.add(3, &web);
        assert_eq!(index.using(web_query), [0, 2, 3]);
        assert!(
            index
                .using(&ServiceQuery::Nodes { datacenter: None })
                .is_empty()
        );
        assert_eq!(
            index.touched(["/proxy/x"]).into_iter().collect::<Vec<_>>(),
            [0, 3],
            "keys never reach a service-only resource"
        );
    }
}
