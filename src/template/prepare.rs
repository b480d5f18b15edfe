//! The second step of loading: the templates the resources name, parsed and checked against the
//! resources and settings (a lookup outside a resource's keys, a catalog function without Consul),
//! and `auto` decided per template. The first step, settings and resources, is
//! [`crate::config::load`]; [`crate::setup`] runs both.

use super::{EngineKind, Templates};
use crate::config::{BackendKind, EngineChoice, Resource, Settings, TemplateText};
use crate::diagnostic::{ConfigError, ConfigErrors};

/// Loads the templates of `resources`, adding every problem to `errors`; `None` when a template
/// cannot be loaded. On return each resource names the engine that renders it.
pub fn prepare(
    settings: &Settings,
    resources: &mut [Resource],
    errors: &mut ConfigErrors,
) -> Option<Templates> {
    // consul-template's inline `contents` and delimiters, by template name.
    let texts = resources
        .iter()
        .filter(|r| r.text != TemplateText::default())
        .map(|r| (r.template.name.clone(), r.text.clone()))
        .collect();
    let templates = match Templates::load_with(
        &settings.templates_dir(),
        resources.iter().map(|r| &r.template),
        &texts,
    ) {
        Ok(templates) => Some(templates),
        Err(template_errors) => {
            errors.extend(template_errors);
            None
        }
    };
    if let Some(templates) = &templates {
        for resource in resources.iter() {
            check_literal_lookups(resource, templates, &settings.templates_dir(), errors);
        }
        // From here on a resource names the engine that renders it (`auto` is decided).
        for resource in resources.iter_mut() {
            resource.template.engine = match templates.engine_of(&resource.template) {
                EngineKind::Tera => EngineChoice::Tera,
                EngineKind::Go => EngineChoice::Go,
                EngineKind::ConsulTemplate => EngineChoice::ConsulTemplate,
            };
        }
        check_service_calls(settings, resources, templates, errors);
        watch_kv_reads(settings, resources, templates, errors);
    }
    templates
}

/// A consul-template template lists no `keys`: what its `key`, `ls` and `tree` calls read with
/// literal paths becomes what its resource watches, here at load. A path computed at render
/// cannot be known here, so a template with one watches its whole prefix: a change anywhere
/// renders it again (an unchanged output writes nothing and runs no command), which is
/// correct where watching only the literal paths would miss the computed one. A literal path
/// that can never work is a configuration error.
fn watch_kv_reads(
    settings: &Settings,
    resources: &mut [Resource],
    templates: &Templates,
    errors: &mut ConfigErrors,
) {
    use crate::template::go::ct::kv::{Read, watched_prefix};
    for resource in resources.iter_mut() {
        let reads = templates.kv_reads(&resource.template);
        for found in reads {
            match found.path {
                Ok(Some(path)) => {
                    let watched = watched_prefix(Read::of(&found.function), &path);
                    resource.keys.push(watched_key(&resource.prefix, &watched));
                }
                // Computed: read when the template renders; watched as the whole prefix.
                Ok(None) => resource.keys.push(watched_key(&resource.prefix, "")),
                Err(problem) => {
                    let mut error = ConfigError::in_file(
                        &settings.templates_dir().join(&resource.template.name),
                        format!("{}: {problem}", found.function),
                    );
                    error.position = Some((found.line, found.column));
                    errors.push(error);
                }
            }
        }
        resource.keys.sort();
        resource.keys.dedup();
    }
}

/// `path` under the resource's `prefix` as a watched key; the store's root is `/`.
fn watched_key(prefix: &str, path: &str) -> String {
    let key = crate::store::join_key(&[prefix, path]);
    if key.is_empty() { "/".to_owned() } else { key }
}

/// A literal lookup outside the resource's keys (`getv(key="/other/port")` with
/// `keys = ["/proxy"]`) can never work: a configuration error at start, with file and line,
/// whether or not it has a default.
fn check_literal_lookups(
    resource: &Resource,
    templates: &Templates,
    templates_dir: &std::path::Path,
    errors: &mut ConfigErrors,
) {
    use crate::store::{Glob, KeyStore, LookupError, View};
    let empty = KeyStore::new();
    let view = View::new(&empty, &resource.prefix, &resource.keys);
    for found in templates.literal_lookups(&resource.template) {
        let lookup = &found.lookup;
        let problem = if lookup.is_pattern {
            match Glob::new(&lookup.literal) {
                Ok(glob) => view.check_pattern(&glob).err().map(|e| e.to_string()),
                Err(error) => Some(error.to_string()),
            }
        } else {
            match view.lookup(&lookup.literal) {
                Err(error @ LookupError::OutOfScope { .. }) => Some(error.to_string()),
                _ => None,
            }
        };
        if let Some(problem) = problem {
            let mut error = ConfigError::in_file(
                &templates_dir.join(&found.file),
                format!(
                    "{}: {problem} (resource {:?}, {})",
                    lookup.function,
                    resource.name,
                    resource.file.display()
                ),
            );
            error.position = Some((found.line, found.column));
            errors.push(error);
        }
    }
}

/// The catalog functions (`service()`, `services()`, `nodes()`) read Consul: with another
/// backend a template that calls one is refused at start, as is a call whose literal arguments
/// can never work (an unknown status, a misspelt argument).
fn check_service_calls(
    settings: &Settings,
    resources: &[Resource],
    templates: &Templates,
    errors: &mut ConfigErrors,
) {
    let mut reported = std::collections::BTreeSet::new();
    for resource in resources {
        for call in templates.service_calls(&resource.template) {
            let path = settings.templates_dir().join(&call.template);
            if settings.backend != BackendKind::Consul {
                errors.push(
                    ConfigError::in_file(
                        &resource.file,
                        format!(
                            "the template calls {}() at {}:{}:{}, which reads Consul's service catalog: it needs --backend consul, not {}",
                            call.function,
                            path.display(),
                            call.line,
                            call.column,
                            settings.backend.name()
                        ),
                    )
                    .with_key("src"),
                );
            } else if let Err(bad) = &call.query
                && reported.insert((path.clone(), call.line, call.column))
            {
                errors.push(ConfigError {
                    file: Some(path),
                    position: Some((call.line, call.column)),
                    key: None,
                    message: bad.to_string(),
                });
            }
        }
    }
}
