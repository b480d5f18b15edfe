//! The empty-store guard: a resource whose data went from some to none (a store restarted empty,
//! a wiped prefix, every instance of a service failing its checks, a token that lost its rights)
//! keeps its last good file unless `allow_empty` is set; `min_keys` always applies.

use std::collections::HashMap;

use tracing::{error, info};

use crate::catalog::{ServiceQuery, ServiceSnapshot};
use crate::config::Resource;
use crate::dependency::Dependency;
use crate::store::KeyStore;
use crate::telemetry::Telemetry;

/// What the guard remembers of one resource between renders.
#[derive(Debug, Default)]
pub(super) struct Guard {
    /// How many keys the last render saw.
    last_keys: Option<usize>,
    /// How many entries each catalog query had at the last render.
    last_services: HashMap<ServiceQuery, usize>,
    /// The guard is holding the resource back (logged once per episode).
    held: bool,
}

impl Guard {
    /// Whether the resource rendered before: a resource waiting for its first answers renders
    /// at once, whatever its `wait`.
    pub(super) fn rendered_before(&self) -> bool {
        self.last_keys.is_some()
    }

    /// Whether `resource` may render against this store and catalog. A refusal is logged once
    /// per episode and shown by `/ready`; a release is logged.
    pub(super) fn admit(
        &mut self,
        resource: &Resource,
        store: &KeyStore,
        services: &ServiceSnapshot,
        dependencies: &[Dependency],
        telemetry: &Telemetry,
    ) -> bool {
        let keys = count_keys(store, services, dependencies);
        let counted = count_services(services, dependencies);
        let refusal = guard_services(resource, &counted, &self.last_services)
            .or_else(|| guard(resource, keys, self.last_keys));
        if let Some(refusal) = refusal {
            if !self.held {
                error!(resource = %resource.name, dest = %resource.dest.display(), keys, "{refusal}; the last good file stays");
                self.held = true;
            }
            telemetry.held(&resource.name, Some(refusal));
            return false;
        }
        if self.held {
            info!(resource = %resource.name, keys, "the empty-store guard releases the resource; rendering again");
            self.held = false;
            telemetry.held(&resource.name, None);
        }
        self.last_keys = Some(keys);
        self.last_services = counted.into_iter().collect();
        true
    }
}

/// Keys under the (merged) prefixes of one resource, plus the instances, services and nodes of
/// the catalog queries it makes: what `min_keys` and the empty-store guard count.
pub(super) fn count_keys(
    store: &KeyStore,
    services: &ServiceSnapshot,
    dependencies: &[Dependency],
) -> usize {
    dependencies
        .iter()
        .map(|dependency| dependency.count(store, services))
        .sum()
}

/// The entries each catalog query of a resource has now.
fn count_services(
    services: &ServiceSnapshot,
    dependencies: &[Dependency],
) -> Vec<(ServiceQuery, usize)> {
    dependencies
        .iter()
        .filter_map(|dependency| match dependency {
            Dependency::Service(query) => Some((query.clone(), services.count(query))),
            Dependency::Prefix(_) => None,
        })
        .collect()
}

/// The empty-store guard for services: unless `allow_empty` is set, a catalog query that went
/// from some entries to none (every instance of a service failing its checks, a token that
/// lost its rights) keeps the last good file.
fn guard_services(
    resource: &Resource,
    now: &[(ServiceQuery, usize)],
    last: &std::collections::HashMap<ServiceQuery, usize>,
) -> Option<String> {
    if resource.allow_empty {
        return None;
    }
    now.iter().find_map(|(query, count)| {
        let before = last.get(query).copied().unwrap_or(0);
        (*count == 0 && before > 0).then(|| {
            format!(
                "refusing to render: {query} went from {before} to none (set allow_empty = true if that is intended)"
            )
        })
    })
}

/// The empty-store guard: why a render must not happen, if it must not. `min_keys` always
/// applies; and unless `allow_empty` is set, a resource whose keys went from some to none (a
/// store restarted empty, a wiped prefix) keeps its last good file.
pub(super) fn guard(resource: &Resource, keys: usize, last_keys: Option<usize>) -> Option<String> {
    if let Some(min) = resource.min_keys
        && keys < min
    {
        return Some(format!(
            "refusing to render with {keys} keys: min_keys is {min}"
        ));
    }
    if !resource.allow_empty && keys == 0 && last_keys.is_some_and(|last| last > 0) {
        return Some(format!(
            "refusing to render: the resource's keys went from {} to none (set allow_empty = true if that is intended)",
            last_keys.unwrap_or(0)
        ));
    }
    None
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn resource(min_keys: Option<usize>, allow_empty: bool) -> Resource {
        Resource {
            name: "r".into(),
            file: "r.toml".into(),
            template: crate::template::TemplateRef {
                name: "t".into(),
                engine: crate::template::EngineChoice::Tera,
            },
            engine: None,
            text: Default::default(),
            dest: "/tmp/x".into(),
            prefix: "/".into(),
            keys: vec!["/app".into()],
            mode: None,
            uid: None,
            gid: None,
            check_cmd: None,
            reload_cmd: None,
            check_timeout: Duration::from_secs(1),
            reload_timeout: Duration::from_secs(1),
            render_timeout: Duration::from_secs(1),
            create_dirs: false,
            wait: None,
            reload_interval: None,
            min_keys,
            allow_empty,
            values: Default::default(),
            coordination: None,
            health: None,
            haproxy: None,
        }
    }

    #[test]
    fn the_empty_store_guard_defaults_to_safe() {
        let default = resource(None, false);
        assert!(guard(&default, 0, None).is_none(), "an empty start renders");
        assert!(guard(&default, 3, Some(5)).is_none());
        let refusal = guard(&default, 0, Some(5)).unwrap();
        assert!(refusal.contains("went from 5 to none"), "{refusal}");
        assert!(
            guard(&resource(None, true), 0, Some(5)).is_none(),
            "allow_empty"
        );
        let min = resource(Some(2), true);
        assert!(guard(&min, 1, None).unwrap().contains("min_keys is 2"));
        assert!(guard(&min, 2, None).is_none());
    }

    #[test]
    fn a_service_going_from_some_instances_to_none_is_refused() {
        use crate::catalog::HealthQuery;
        let web = ServiceQuery::Health(HealthQuery::new("web").unwrap());
        let api = ServiceQuery::Health(HealthQuery::new("api").unwrap());
        let last = [(web.clone(), 2), (api.clone(), 0)].into_iter().collect();
        let default = resource(None, false);
        let refusal =
            guard_services(&default, &[(web.clone(), 0), (api.clone(), 0)], &last).unwrap();
        assert!(
            refusal.contains("service \"web\" went from 2 to none"),
            "{refusal}"
        );
        assert!(guard_services(&default, &[(web.clone(), 1), (api.clone(), 0)], &last).is_none());
        assert!(
            guard_services(&default, &[(web.clone(), 0)], &Default::default()).is_none(),
            "an unknown service renders an empty list at first"
        );
        assert!(guard_services(&resource(None, true), &[(web, 0)], &last).is_none());
    }
}
