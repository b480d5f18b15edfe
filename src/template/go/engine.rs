//! The Go engine as terad uses it: confd templates read from `templates/`, parsed once with
//! confd's function map, rendered against a resource's input with nil data (confd executes
//! every template with `nil` as `.`).
//!
//! Like confd, a template file is one set: `{{template "x"}}` finds what the file itself
//! defines; templates are not shared between files.
//!
//! Besides confd's map, templates have consul-template's `service`, `services` and `nodes`
//! ([`super::services`]); the literal calls of each file are found when it is inserted.
//!
//! [`GoEngine::consul_template`] is the same engine with consul-template's function map
//! ([`super::ct`]) instead of confd's: a third dialect, chosen per resource.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::confd::functions;
use super::context::GoContext;
use super::services;
use super::{Functions, ParseError, Template, Value};
use crate::diagnostic::ConfigError;
use crate::template::services::FoundCall;
use crate::template::{RenderError, RenderInput};

/// The parsed Go templates, by name below `templates/`.
pub struct GoEngine {
    /// Shared with each render's context, for consul-template's `executeTemplate`.
    funcs: Arc<Functions<GoContext>>,
    templates: HashMap<String, Arc<Template>>,
    /// The catalog calls of each template, found at insert.
    service_calls: HashMap<String, Vec<FoundCall>>,
    /// How the dialect finds a template's catalog calls (confd's map has consul-template's
    /// catalog functions with terad's own argument checks).
    find_service_calls: fn(&str, &Template) -> Vec<FoundCall>,
}

impl std::fmt::Debug for GoEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoEngine")
            .field("templates", &self.templates.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for GoEngine {
    fn default() -> Self {
        let mut funcs = functions();
        services::register(&mut funcs);
        GoEngine::with(funcs, services::literal_calls)
    }
}

impl GoEngine {
    /// The engine with consul-template's function map.
    pub fn consul_template() -> GoEngine {
        GoEngine::with(super::ct::functions(), super::ct::catalog::literal_calls)
    }

    fn with(
        funcs: Functions<GoContext>,
        find_service_calls: fn(&str, &Template) -> Vec<FoundCall>,
    ) -> GoEngine {
        GoEngine {
            funcs: Arc::new(funcs),
            templates: HashMap::new(),
            service_calls: HashMap::new(),
            find_service_calls,
        }
    }

    /// Parses `source` as the template `name` (below `templates/`). Errors name the file by
    /// its base name, as confd's do (`template: haproxy.cfg.tmpl:9: …`).
    pub fn parse(&self, name: &str, source: &str) -> Result<Template, ParseError> {
        self.parse_with_delims(name, source, None)
    }

    /// [`GoEngine::parse`] with other delimiters (consul-template's `left_delimiter` and
    /// `right_delimiter`).
    pub fn parse_with_delims(
        &self,
        name: &str,
        source: &str,
        delims: Option<(&str, &str)>,
    ) -> Result<Template, ParseError> {
        let base = name.rsplit('/').next().unwrap_or(name);
        Template::parse_with_delims(base, source, &self.funcs, delims)
    }

    pub fn insert(&mut self, name: &str, template: Template) {
        self.service_calls
            .insert(name.to_owned(), (self.find_service_calls)(name, &template));
        self.templates.insert(name.to_owned(), Arc::new(template));
    }

    /// The parsed template `name`, if it was loaded.
    pub fn template(&self, name: &str) -> Option<&Template> {
        self.templates.get(name).map(|template| &**template)
    }

    /// The calls of `service`, `services` and `nodes` in the template `name`.
    pub fn service_calls(&self, name: &str) -> Vec<FoundCall> {
        self.service_calls.get(name).cloned().unwrap_or_default()
    }

    /// Renders the template `name` against `input`, appending to `out`; gives up with an error
    /// once `deadline` has passed.
    pub fn render(
        &self,
        name: &str,
        input: &RenderInput,
        deadline: Option<std::time::Instant>,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        let Some(template) = self.templates.get(name) else {
            return Err(RenderError::not_loaded(name));
        };
        let mut context = GoContext::new(input.clone());
        context.set = Some((Arc::clone(template), Arc::clone(&self.funcs)));
        let executed = match deadline {
            Some(deadline) => {
                template.execute_before(deadline, &context, &self.funcs, &Value::Nil, out)
            }
            None => template.execute(&context, &self.funcs, &Value::Nil, out),
        };
        executed.map_err(|error| RenderError {
            template: name.to_owned(),
            position: Some((error.line, error.column)),
            cause: error.into(),
        })
    }
}

/// A Go parse error as a configuration error: the file, the position and the offending line.
pub fn config_error(path: &Path, source: &str, error: &ParseError) -> ConfigError {
    let line = source
        .lines()
        .nth(error.line.saturating_sub(1))
        .unwrap_or("");
    let mut converted = ConfigError::in_file(
        path,
        format!(
            "{}\n     --> {}:{}:{}\n{:>5} | {}",
            error.message, error.name, error.line, error.column, error.line, line
        ),
    );
    converted.position = Some((error.line, error.column));
    converted
}
