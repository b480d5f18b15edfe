//! The Tera engine: loading and validating templates, and rendering one resource against the
//! key store. confd's functions ([`super::confd`]) are exposed as Tera functions and filters.
//!
//! All templates live in one Tera instance, named by their path below `templates/`, so a template
//! shared by many resources is parsed once and `{% include %}` / `{% extends %}` work between
//! them. Only the templates resources use (and what they include) are loaded: a `templates/`
//! directory may still hold confd's Go templates during a migration.
//!
//! Template functions need the store, but Tera functions are registered once per engine and get
//! no user data at call time. The store and the resource's view on it are therefore handed to
//! them through a thread-local (`RENDER_SCOPE`, the render's input) that exists only for the
//! duration of one render.

mod calls;
mod filters;
mod functions;
pub mod literals;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use tera::{Context, ErrorKind, Tera};

use super::services::FoundCall;
use super::{RenderError, RenderInput, read_source, stays_inside};
use crate::diagnostic::{ConfigError, ConfigErrors};
use crate::store::View;

thread_local! {
    static RENDER_SCOPE: RefCell<Option<RenderInput>> = const { RefCell::new(None) };
}

/// Runs `f` with the current render's view of the store. Template functions call this; outside
/// a render (which cannot happen through [`Engine::render`]) they get an error.
fn with_view<T>(f: impl FnOnce(View<'_>) -> tera::TeraResult<T>) -> tera::TeraResult<T> {
    RENDER_SCOPE.with(|cell| {
        let borrowed = cell.borrow();
        let Some(scope) = borrowed.as_ref() else {
            return Err(tera::Error::message(
                "key functions are only available while rendering a resource",
            ));
        };
        f(scope.view())
    })
}

/// The loaded Tera templates, ready to render.
pub struct TeraEngine {
    tera: Tera,
    templates_dir: PathBuf,
    /// Per file: what it reads that can be checked or watched before a render (literal key
    /// lookups, catalog calls, with line and column) and the files it includes or extends, so
    /// that a root's facts include those of everything it pulls in.
    files: BTreeMap<String, FileFacts>,
}

struct FileFacts {
    lookups: Vec<Located>,
    /// Calls of the catalog functions (`service`, `services`, `nodes`).
    service_calls: Vec<FoundCall>,
    references: Vec<String>,
}

/// A literal lookup and where it is.
#[derive(Debug, Clone)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub lookup: literals::LiteralLookup,
}

impl std::fmt::Debug for TeraEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeraEngine")
            .field("templates_dir", &self.templates_dir)
            .finish_non_exhaustive()
    }
}

impl TeraEngine {
    /// Loads the named templates (and everything they include or extend) from `templates_dir`,
    /// checking syntax, functions, filters and includes. Every problem in every template is
    /// reported, with file, line and column.
    pub fn load<'a>(
        templates_dir: &Path,
        roots: impl IntoIterator<Item = &'a str>,
    ) -> Result<TeraEngine, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let sources = read_with_dependencies(templates_dir, roots, &mut errors);

        // Parse each template on its own first: Tera stops at the first syntax error of a batch,
        // and an operator should see the syntax errors of every file at once.
        let mut parsed = Vec::new();
        for (name, source) in &sources {
            let mut scratch = new_tera();
            match scratch.add_raw_template(name, source) {
                Err(error) if matches!(error.kind(), ErrorKind::SyntaxError(_)) => {
                    errors.push(ConfigError::in_file(
                        &templates_dir.join(name),
                        error.to_string(),
                    ));
                }
                // Anything else (an include of a template not in this scratch instance) is
                // checked below with all templates together.
                _ => parsed.push((name.as_str(), source.as_str())),
            }
        }

        let mut tera = new_tera();
        if let Err(error) = tera.add_raw_templates(parsed) {
            for report in split_reports(&error.to_string()) {
                // Name the file the report points into, as for syntax errors above.
                let path = reported_file(&report)
                    .map_or_else(|| templates_dir.to_owned(), |name| templates_dir.join(name));
                errors.push(ConfigError::in_file(&path, report));
            }
        }
        let files = sources
            .iter()
            .map(|(name, source)| {
                let lookups = literals::literal_lookups(source)
                    .into_iter()
                    .map(|lookup| {
                        let (line, column) = crate::config::line_and_column(source, lookup.offset);
                        Located {
                            file: name.clone(),
                            line,
                            column,
                            lookup,
                        }
                    })
                    .collect();
                let facts = FileFacts {
                    lookups,
                    service_calls: calls::scan(name, source),
                    references: referenced_templates(source),
                };
                (name.clone(), facts)
            })
            .collect();
        errors.into_result(TeraEngine {
            tera,
            templates_dir: templates_dir.to_owned(),
            files,
        })
    }

    /// `root` and every template it includes or extends, transitively, each once.
    fn reachable(&self, root: &str) -> impl Iterator<Item = &FileFacts> {
        let mut seen = BTreeSet::new();
        let mut queue = vec![root.to_owned()];
        let mut found = Vec::new();
        while let Some(name) = queue.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(facts) = self.files.get(&name) {
                found.push(facts);
                queue.extend(facts.references.iter().cloned());
            }
        }
        found.into_iter()
    }

    /// The literal key lookups of `root` and of every template it includes or extends.
    pub fn literal_lookups(&self, root: &str) -> Vec<Located> {
        self.reachable(root)
            .flat_map(|facts| facts.lookups.iter().cloned())
            .collect()
    }

    /// The catalog functions (`service`, `services`, `nodes`) `root` calls, itself or through
    /// what it includes or extends.
    pub fn service_calls(&self, root: &str) -> Vec<FoundCall> {
        self.reachable(root)
            .flat_map(|facts| facts.service_calls.iter().cloned())
            .collect()
    }

    /// Whether `source` is Tera syntax (for telling Tera from Go): an unknown function or a
    /// missing include is still Tera, and is reported as such at load.
    pub fn parses(name: &str, source: &str) -> bool {
        match new_tera().add_raw_template(name, source) {
            Ok(()) => true,
            Err(error) => !matches!(error.kind(), ErrorKind::SyntaxError(_)),
        }
    }

    /// Renders `template` against `input`, appending to `out`.
    pub fn render(
        &self,
        template: &str,
        input: &RenderInput,
        out: &mut Vec<u8>,
    ) -> Result<(), RenderError> {
        let previous = RENDER_SCOPE.with(|cell| cell.replace(Some(input.clone())));
        let result = self.tera.render_to(template, &Context::new(), &mut *out);
        // Drop the store reference right away: the runner updates the store in place only when
        // nothing else holds it.
        RENDER_SCOPE.with(|cell| cell.replace(previous));
        result.map_err(|error| {
            // A report points into the template it is about, which may be an included one.
            let (template, position) = match error.kind() {
                ErrorKind::RenderingError(report) if !report.filename().is_empty() => {
                    let span = report.span();
                    // Tera's columns are 0-based.
                    let position = Some((span.start_line, span.start_col + 1));
                    (report.filename().to_owned(), position)
                }
                _ => (template.to_owned(), None),
            };
            RenderError {
                template,
                position,
                cause: error.into(),
            }
        })
    }
}

fn new_tera() -> Tera {
    let mut tera = Tera::new();
    // Configuration files are not HTML: never escape, whatever the template's suffix.
    tera.autoescape_on(Vec::<&str>::new());
    functions::register(&mut tera);
    filters::register(&mut tera);
    tera
}

/// The template a Tera report points into: `t.tmpl` in `--> t.tmpl:1:10`.
fn reported_file(report: &str) -> Option<&str> {
    let location = report
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("--> "))?;
    let mut parts = location.rsplitn(3, ':');
    let (_column, _line) = (parts.next()?, parts.next()?);
    parts.next()
}

/// Tera joins several reports with blank lines; each starts with `error:`.
fn split_reports(text: &str) -> Vec<String> {
    let mut reports: Vec<String> = Vec::new();
    for block in text.split("\n\n") {
        match reports.last_mut() {
            Some(last) if !block.starts_with("error") => {
                last.push_str("\n\n");
                last.push_str(block);
            }
            _ => reports.push(block.to_owned()),
        }
    }
    reports
}

/// Reads the root templates and, transitively, every template they include or extend.
fn read_with_dependencies<'a>(
    templates_dir: &Path,
    roots: impl IntoIterator<Item = &'a str>,
    errors: &mut ConfigErrors,
) -> BTreeMap<String, String> {
    let mut sources = BTreeMap::new();
    let mut queue: VecDeque<String> = roots.into_iter().map(str::to_owned).collect();
    let mut seen: BTreeSet<String> = queue.iter().cloned().collect();
    while let Some(name) = queue.pop_front() {
        let path = templates_dir.join(&name);
        // A missing dependency is reported by Tera, with the line that names it.
        let Some(source) = read_source(&path, errors) else {
            continue;
        };
        for dependency in referenced_templates(&source) {
            if !stays_inside(&dependency) {
                errors.push(ConfigError::in_file(
                    &path,
                    format!("{dependency:?} points outside the templates directory"),
                ));
            } else if seen.insert(dependency.clone()) {
                queue.push_back(dependency);
            }
        }
        sources.insert(name, source);
    }
    sources
}

/// Names given to `include` and `extends` tags. Only literal names can be loaded ahead of time,
/// which is all Tera accepts.
fn referenced_templates(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        rest = &rest[start + 2..];
        let tag = rest.trim_start_matches('-').trim_start();
        let Some(after) = tag
            .strip_prefix("include")
            .or_else(|| tag.strip_prefix("extends"))
        else {
            continue;
        };
        let end = after.find("%}").unwrap_or(after.len());
        let mut args = &after[..end];
        // `include` may name a list of candidates; take every quoted literal.
        while let Some(open) = args.find(['"', '\'', '`']) {
            let quote = args[open..].chars().next().unwrap_or('"');
            let body = &args[open + 1..];
            let Some(close) = body.find(quote) else { break };
            names.push(body[..close].to_owned());
            args = &body[close + 1..];
        }
    }
    names
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::template::{EngineChoice, TemplateRef, Templates};

    fn engine_with(
        files: &[(&str, &str)],
        roots: &[&str],
    ) -> (tempfile::TempDir, Result<Templates, ConfigErrors>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        let refs: Vec<TemplateRef> = roots.iter().map(|name| tera_ref(name)).collect();
        let engine = Templates::load(dir.path(), &refs);
        (dir, engine)
    }

    #[test]
    fn service_calls_follow_includes() {
        let (_dir, templates) = engine_with(
            &[
                ("main", "{% include \"part\" %}{{ services() }}"),
                ("part", "{{ service(name=\"web\") }}"),
                ("other", "{{ nodes() }}"),
            ],
            &["main", "other"],
        );
        let templates = templates.unwrap();
        let found: Vec<(String, &str)> = templates
            .service_calls(&tera_ref("main"))
            .into_iter()
            .map(|call| (call.template, call.function))
            .collect();
        assert_eq!(
            found,
            [
                ("main".to_owned(), "services"),
                ("part".to_owned(), "service")
            ]
        );
    }

    pub(crate) fn tera_ref(name: &str) -> TemplateRef {
        TemplateRef {
            name: name.to_owned(),
            engine: EngineChoice::Tera,
        }
    }

    pub(crate) fn render_with(
        templates: &Templates,
        template: &str,
        pairs: &[(&str, &str)],
    ) -> Result<String, RenderError> {
        crate::template::tests::render_with(templates, &tera_ref(template), pairs)
    }

    #[test]
    fn includes_and_extends_are_loaded_transitively() {
        let (_dir, engine) = engine_with(
            &[
                (
                    "main.tmpl",
                    "{% extends \"base.tmpl\" %}{% block body %}[{% include 'parts/line.tmpl' %}]{% endblock %}",
                ),
                ("base.tmpl", "<{% block body %}{% endblock %}>"),
                ("parts/line.tmpl", "{{ getv(key=\"/a\") }}"),
                ("unused.tmpl", "{{ a Go template .Foo }} is never loaded"),
            ],
            &["main.tmpl"],
        );
        let engine = engine.unwrap();
        assert_eq!(
            render_with(&engine, "main.tmpl", &[("/a", "1")]).unwrap(),
            "<[1]>"
        );
    }

    #[test]
    fn output_is_never_html_escaped() {
        let (_dir, engine) =
            engine_with(&[("page.html", "{{ getv(key=\"/v\") }}")], &["page.html"]);
        let out = render_with(&engine.unwrap(), "page.html", &[("/v", "<a & 'b'>")]).unwrap();
        assert_eq!(out, "<a & 'b'>");
    }

    #[test]
    fn every_syntax_and_reference_error_is_reported_with_position() {
        let (_dir, engine) = engine_with(
            &[
                ("a.tmpl", "line one\n{% for x in %}\n"),
                (
                    "b.tmpl",
                    "ok\n{{ unknown_function(x=1) }}\n{{ 1 | no_such_filter }}",
                ),
                ("c.tmpl", "{% include \"missing.tmpl\" %}"),
                ("d.tmpl", "{% include \"../../etc/passwd\" %}"),
            ],
            &["a.tmpl", "b.tmpl", "c.tmpl", "d.tmpl"],
        );
        let errors = engine.unwrap_err().to_string();
        for want in [
            "a.tmpl:2:",
            "Unknown function `unknown_function`",
            "b.tmpl:2:4",
            "Unknown filter `no_such_filter`",
            "b.tmpl:3:",
            "Unknown template `missing.tmpl`",
            "\"../../etc/passwd\" points outside the templates directory",
        ] {
            assert!(errors.contains(want), "missing {want:?} in:\n{errors}");
        }
    }

    #[test]
    fn finds_literal_include_and_extends_names() {
        let names = referenced_templates(
            "{% extends \"base\" %}{%- include 'a/b' -%}{% include [\"x\", \"y\"] %}{% if %}{{ include }}",
        );
        assert_eq!(names, ["base", "a/b", "x", "y"]);
    }
}
