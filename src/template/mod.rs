//! Templates: every engine behind one [`Templates`] that loads what the resources reference and
//! renders any [`TemplateRef`] against a [`RenderInput`].
//!
//! - [`confd`]: confd's functions, written once over the store view, engine-neutral.
//! - [`tera`]: the Tera engine, a thin adapter exposing them as functions and filters.
//! - [`go`]: Go's `text/template`, natively, with confd's function map (confd templates render
//!   unchanged and byte for byte) or consul-template's ([`go::ct`], chosen per resource).
//! - [`services`]: Consul's service catalog (`service`, `services`, `nodes`), engine-neutral.
//! - [`prepare`](mod@prepare): the second step of loading: the resources' templates, checked
//!   against them.
//! - [`vet`]: checks of store data before it is interpolated (`host_port`, `safe_name`).
//!
//! A template is parsed once, at load; every syntax error of every template is reported at once
//! with file, line and column, and nothing is written when there is one.

pub mod confd;
pub mod go;
pub mod prepare;
pub mod services;
pub mod tera;
pub mod vet;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

pub use crate::config::{EngineChoice, TemplateRef, TemplateText};
use crate::diagnostic::{ConfigError, ConfigErrors};
use crate::store::{KeyStore, ValuePolicy, View};
pub use prepare::prepare;

/// The template languages terad renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EngineKind {
    Tera,
    /// Go's `text/template` with confd's functions.
    Go,
    /// Go's `text/template` with consul-template's functions.
    ConsulTemplate,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Tera => "tera",
            EngineKind::Go => "go",
            EngineKind::ConsulTemplate => "consul-template",
        }
    }
}

/// Which engine renders a template, and whether that was decided from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineChosen {
    pub template: String,
    pub engine: EngineKind,
    pub automatic: bool,
}

/// What one resource's template may see: its absolute prefix and keys, and what it accepts
/// from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyScope {
    /// The resource's name, for messages.
    pub resource: String,
    pub prefix: String,
    pub keys: Vec<String>,
    pub values: ValuePolicy,
}

/// Everything one render reads: the key store at one state, and the resource's window on it.
#[derive(Debug, Clone)]
pub struct RenderInput {
    pub store: Arc<KeyStore>,
    pub scope: Arc<KeyScope>,
    /// Consul's catalog at one state, for `service()` and friends ([`services`]).
    pub services: crate::catalog::ServiceInput,
}

impl RenderInput {
    pub fn view(&self) -> View<'_> {
        View::new(&self.store, &self.scope.prefix, &self.scope.keys).with_policy(&self.scope.values)
    }
}

/// A rendering failure: which template, where in it when the engine tells, and why. It
/// displays as its engine reports it (Go: `template: t.tmpl:3:5: executing "t.tmpl" at <getv
/// "/a">: error calling getv: …`; Tera: its report with the line it points at).
#[derive(Debug, thiserror::Error)]
#[error("{cause}")]
pub struct RenderError {
    /// The template file rendered, as resources name it (below `templates/`).
    pub template: String,
    /// The line and column (1-based) of the failure, when the engine gives them.
    pub position: Option<(usize, usize)>,
    #[source]
    pub cause: RenderCause,
}

/// Why a render failed, per engine.
#[derive(Debug, thiserror::Error)]
pub enum RenderCause {
    /// A template that was not loaded: every template a resource names is loaded with the
    /// configuration, so this is a bug.
    #[error("template {0:?} was not loaded")]
    NotLoaded(String),
    /// A Go template failed executing: a function's error, a missing field, the deadline.
    /// (The engines' errors are boxed: a `Result` of a render stays small.)
    #[error(transparent)]
    Go(Box<go::ExecError>),
    /// A Tera template failed rendering (Tera gives its causes as text).
    #[error(transparent)]
    Tera(Box<::tera::Error>),
}

impl From<go::ExecError> for RenderCause {
    fn from(error: go::ExecError) -> RenderCause {
        RenderCause::Go(Box::new(error))
    }
}

impl From<::tera::Error> for RenderCause {
    fn from(error: ::tera::Error) -> RenderCause {
        RenderCause::Tera(Box::new(error))
    }
}

impl RenderError {
    pub(crate) fn not_loaded(template: &str) -> RenderError {
        RenderError {
            template: template.to_owned(),
            position: None,
            cause: RenderCause::NotLoaded(template.to_owned()),
        }
    }
}

/// The loaded templates of every engine, ready to render.
#[derive(Debug)]
pub struct Templates {
    tera: tera::TeraEngine,
    go: go::engine::GoEngine,
    /// The same engine with consul-template's function map: one template file may be
    /// rendered by both dialects (two resources naming it), each parse against its own table.
    consul_template: go::engine::GoEngine,
    /// What `auto` became for each template file.
    resolved: BTreeMap<String, EngineKind>,
    /// Every template's engine, for the start-up log and `--noop`.
    pub chosen: Vec<EngineChosen>,
    /// Go templates whose output follows the clock (`datetime` beyond the date): each render
    /// differs, so each render writes.
    pub time_dependent: Vec<String>,
    templates_dir: PathBuf,
}

impl Templates {
    /// Loads and checks every referenced template (and what each includes), reporting every
    /// problem in every template at once.
    pub fn load<'a>(
        templates_dir: &Path,
        refs: impl IntoIterator<Item = &'a TemplateRef>,
    ) -> Result<Templates, ConfigErrors> {
        Templates::load_with(templates_dir, refs, &BTreeMap::new())
    }

    /// [`Templates::load`] where some Go templates, by name, are not read from their file as
    /// written with `{{ }}`: consul-template's inline `contents` and other delimiters.
    pub fn load_with<'a>(
        templates_dir: &Path,
        refs: impl IntoIterator<Item = &'a TemplateRef>,
        texts: &BTreeMap<String, TemplateText>,
    ) -> Result<Templates, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut wanted: BTreeMap<(String, EngineKind), bool> = BTreeMap::new();
        let mut resolved = BTreeMap::new();
        for template in refs {
            let kind = match template.engine {
                EngineChoice::Tera => EngineKind::Tera,
                EngineChoice::Go => EngineKind::Go,
                EngineChoice::ConsulTemplate => EngineKind::ConsulTemplate,
                EngineChoice::Auto => match resolved.get(&template.name) {
                    Some(kind) => *kind,
                    None => {
                        let path = templates_dir.join(&template.name);
                        // A missing file is reported by the engine, where it is named.
                        let source = read_source(&path, &mut errors).unwrap_or_default();
                        let kind = detect(&template.name, &source);
                        resolved.insert(template.name.clone(), kind);
                        kind
                    }
                },
            };
            let automatic = template.engine == EngineChoice::Auto;
            let entry = wanted
                .entry((template.name.clone(), kind))
                .or_insert(automatic);
            *entry &= automatic;
        }

        let tera_roots = wanted
            .keys()
            .filter(|(_, kind)| *kind == EngineKind::Tera)
            .map(|(name, _)| name.as_str());
        let tera = match tera::TeraEngine::load(templates_dir, tera_roots) {
            Ok(tera) => Some(tera),
            Err(tera_errors) => {
                errors.extend(tera_errors);
                None
            }
        };
        let mut go = go::engine::GoEngine::default();
        let mut consul_template = go::engine::GoEngine::consul_template();
        let mut time_dependent = Vec::new();
        for (name, kind) in wanted.keys() {
            let engine = match kind {
                EngineKind::Go => &mut go,
                EngineKind::ConsulTemplate => &mut consul_template,
                EngineKind::Tera => continue,
            };
            let path = templates_dir.join(name);
            let text = texts.get(name);
            let inline = text.and_then(|text| text.contents.clone());
            let Some(source) = inline.or_else(|| read_source(&path, &mut errors)) else {
                if path.exists() {
                    continue;
                }
                errors.push(ConfigError::in_file(&path, "template not found"));
                continue;
            };
            let delims = text
                .and_then(|text| text.delimiters.as_ref())
                .map(|(left, right)| (left.as_str(), right.as_str()));
            match engine.parse_with_delims(name, &source, delims) {
                Ok(template) => {
                    if template.follows_the_clock() && !time_dependent.contains(name) {
                        time_dependent.push(name.clone());
                    }
                    if *kind == EngineKind::ConsulTemplate {
                        for error in go::ct::unsupported_calls(name, &template) {
                            errors.push(go::engine::config_error(&path, &source, &error));
                        }
                    }
                    engine.insert(name, template);
                }
                Err(error) => errors.push(go::engine::config_error(&path, &source, &error)),
            }
        }
        let chosen = wanted
            .iter()
            .map(|((name, kind), automatic)| EngineChosen {
                template: name.clone(),
                engine: *kind,
                automatic: *automatic,
            })
            .collect();
        match tera {
            Some(tera) if errors.is_empty() => Ok(Templates {
                tera,
                go,
                consul_template,
                resolved,
                chosen,
                time_dependent,
                templates_dir: templates_dir.to_owned(),
            }),
            _ => Err(errors),
        }
    }

    /// The key lookups with literal arguments a template (and what it pulls in) makes, for
    /// checking them against a resource's keys at start. Tera only: a Go template reads keys
    /// outside its resource's keys as confd does (as missing).
    pub fn literal_lookups(&self, template: &TemplateRef) -> Vec<tera::Located> {
        match self.engine_of(template) {
            EngineKind::Tera => self.tera.literal_lookups(&template.name),
            EngineKind::Go | EngineKind::ConsulTemplate => Vec::new(),
        }
    }

    /// The KV reads of a consul-template template (`key`, `ls`, `tree`, …), found at load;
    /// none for the other dialects, whose resources list their `keys`.
    pub fn kv_reads(&self, template: &TemplateRef) -> Vec<go::ct::kv::FoundRead> {
        match self.engine_of(template) {
            EngineKind::ConsulTemplate => self
                .consul_template
                .template(&template.name)
                .map(go::ct::kv::literal_reads)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The engine that renders `template`.
    pub fn engine_of(&self, template: &TemplateRef) -> EngineKind {
        match template.engine {
            EngineChoice::Tera => EngineKind::Tera,
            EngineChoice::Go => EngineKind::Go,
            EngineChoice::ConsulTemplate => EngineKind::ConsulTemplate,
            EngineChoice::Auto => self
                .resolved
                .get(&template.name)
                .copied()
                .unwrap_or(EngineKind::Tera),
        }
    }

    /// Renders `template` against `input`, appending to `out`.
    pub fn render(
        &self,
        template: &TemplateRef,
        input: &RenderInput,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        self.render_until(template, input, None, out)
    }

    /// [`Templates::render`] that gives up at `deadline` where the engine can be interrupted
    /// (Go); a Tera render always runs to its end.
    pub fn render_until(
        &self,
        template: &TemplateRef,
        input: &RenderInput,
        deadline: Option<std::time::Instant>,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        match self.engine_of(template) {
            EngineKind::Tera => self.tera.render(&template.name, input, out),
            EngineKind::Go => self.go.render(&template.name, input, deadline, out),
            EngineKind::ConsulTemplate => {
                self.consul_template
                    .render(&template.name, input, deadline, out)
            }
        }
    }

    pub fn templates_dir(&self) -> &Path {
        &self.templates_dir
    }
}

/// `auto`: decides a template file's language from its text.
///
/// An action that opens with what only Go writes (`.Key`, `$x`, `/* … */`, `if`, `range`,
/// `end`, `nil`, …) makes the file Go, and Tera's block or comment tags make it Tera, whether
/// it parses or not (its errors are then that dialect's). Otherwise a template that parses as
/// Go is Go (a template of literals parses as both and renders the same), and one that parses
/// only as Tera is Tera.
fn detect(name: &str, source: &str) -> EngineKind {
    if opens_go_action(source) {
        EngineKind::Go
    } else if source.contains("{%") || source.contains("{#") {
        // To Go these are text: a template with them is Tera, broken or not.
        EngineKind::Tera
    } else if go::engine::GoEngine::default().parse(name, source).is_ok()
        || !tera::TeraEngine::parses(name, source)
    {
        EngineKind::Go
    } else {
        EngineKind::Tera
    }
}

/// Whether some `{{ … }}` begins with a token no Tera expression begins with.
fn opens_go_action(source: &str) -> bool {
    const GO_WORDS: &[&str] = &[
        "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
        "nil",
    ];
    let mut rest = source;
    while let Some(at) = rest.find("{{") {
        rest = &rest[at + 2..];
        let mut action = rest;
        // A trim marker is `-` and a space; `{{-3}}` is a number.
        if let Some(after) = action.strip_prefix('-')
            && after.starts_with(|c: char| c.is_ascii_whitespace())
        {
            action = after;
        }
        let action = action.trim_start();
        if action.starts_with(['.', '$', '`']) || action.starts_with("/*") {
            return true;
        }
        let word: String = action
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if GO_WORDS.contains(&word.as_str()) {
            return true;
        }
    }
    false
}

/// Reads one template file as UTF-8; a missing file is `None` (the engine that asked reports it
/// where it is referenced).
pub(crate) fn read_source(path: &Path, errors: &mut ConfigErrors) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => {
                errors.push(ConfigError::in_file(path, "template is not valid UTF-8"));
                None
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => {
            errors.push(ConfigError::in_file(path, format!("cannot read: {error}")));
            None
        }
    }
}

/// Whether a template name stays inside the templates directory.
pub(crate) fn stays_inside(name: &str) -> bool {
    let mut depth = 0usize;
    for component in Path::new(name).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Renders `template` of `templates` with the whole store `pairs` in scope.
    pub(crate) fn render_with(
        templates: &Templates,
        template: &TemplateRef,
        pairs: &[(&str, &str)],
    ) -> Result<String, RenderError> {
        let store: KeyStore = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let input = RenderInput {
            store: Arc::new(store),
            scope: Arc::new(KeyScope {
                resource: "test".into(),
                prefix: "/".into(),
                keys: vec!["/".into()],
                values: ValuePolicy::default(),
            }),
            services: Default::default(),
        };
        let mut out = Vec::new();
        templates.render(template, &input, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    /// A render abandoned at its budget used to run on in its thread for as long as the
    /// template liked; a Go template now stops at the deadline.
    #[test]
    fn a_go_render_stops_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        // Two calls per level, forty levels: 2^40 template calls, far beyond any budget.
        std::fs::write(
            dir.path().join("t.tmpl"),
            "{{define \"x\"}}{{if lt . 40}}{{template \"x\" (add . 1)}}{{template \"x\" (add . 1)}}{{end}}{{end}}{{template \"x\" 0}}",
        )
        .unwrap();
        let template = TemplateRef {
            name: "t.tmpl".into(),
            engine: EngineChoice::Go,
        };
        let templates = Templates::load(dir.path(), [&template]).unwrap();
        let input = RenderInput {
            store: Arc::new(KeyStore::default()),
            scope: Arc::new(KeyScope {
                resource: "test".into(),
                prefix: "/".into(),
                keys: vec!["/".into()],
                values: ValuePolicy::default(),
            }),
            services: Default::default(),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(50);
        let mut out = Vec::new();
        let error = templates
            .render_until(&template, &input, Some(deadline), &mut out)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("stopped: the render took longer than its time budget"),
            "{error}"
        );
        assert!(
            error.to_string().contains("t.tmpl:1:"),
            "names the place: {error}"
        );
    }

    #[test]
    fn auto_tells_go_from_tera() {
        for go in [
            "{{range gets \"/proxy/frontend/*\"}}server {{base .Key}} {{.Value}}\n{{end}}",
            "{{getv \"/a\"}}",
            "{{- $x := 1}}{{$x}}",
            "{{nil}}",
            "{{if}}",
            "{{`raw`}}",
            "{{/* a comment */}}x",
            "{{-3}} {{3}}",
            "plain text",
        ] {
            assert_eq!(detect("t", go), EngineKind::Go, "{go}");
        }
        for tera in [
            "{{ getv(key=\"/a\") }}",
            "{% for kv in gets(pattern=\"/x/*\") %}{{ kv.key | base }}{% endfor %}",
            "{# a comment #}text",
            "{{ \"a\" | upper }}",
            "{% if x %}",
        ] {
            assert_eq!(detect("t", tera), EngineKind::Tera, "{tera}");
        }
    }

    #[test]
    fn names_must_stay_inside_the_templates_directory() {
        assert!(stays_inside("a/../b"));
        assert!(!stays_inside("../b"));
        assert!(!stays_inside("/etc/passwd"));
    }
}
