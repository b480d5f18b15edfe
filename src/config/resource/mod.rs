//! Template resources: the `conf.d/**/*.toml` files, confd's schema plus a few keys users expect.
//!
//! Each file is read into [`RawResourceFile`] (serde, unknown keys rejected) and then checked key
//! by key into a [`Resource`], collecting every problem instead of stopping at the first.
//!
//! - [`raw`]: the file as serde reads it.
//! - [`validate`]: key by key into a [`Resource`].

mod raw;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use self::raw::{RawResourceFile, RawTemplate};
pub use self::validate::parse_mode;
use self::validate::{normalize, unquoted_mode, validate};
use super::unknown;
use super::warning::Warning;
use crate::cli::Rules;
use crate::diagnostic::{ConfigError, ConfigErrors, from_toml_error};
use crate::process::CommandLine;
use crate::store::ValuePolicy;

/// How long a `check_cmd` may run unless the resource says otherwise.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a `reload_cmd` may run unless the resource says otherwise.
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long rendering a template may take unless the resource says otherwise. Generous: the
/// HAProxy example renders 100k servers in about 50 ms; only a runaway template gets near it.
pub const DEFAULT_RENDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The language a resource asks for: one, or `auto`, decided per template file at load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EngineChoice {
    /// A template that parses as Tera is Tera; one that parses only as Go is Go. An unchanged
    /// confd confdir therefore works with no new keys.
    #[default]
    Auto,
    Tera,
    /// Go's `text/template` with confd's functions.
    Go,
    /// Go's `text/template` with consul-template's functions. Its names clash with confd's
    /// (`ls`, `split`, `join`, `contains` take other arguments), so it is never guessed: a
    /// resource (or the command line) names it.
    ConsulTemplate,
}

impl EngineChoice {
    /// `auto`, `tera`, `go` or `consul-template`.
    pub fn parse(text: &str) -> Result<EngineChoice, super::value::ValueError> {
        match text {
            "auto" => Ok(EngineChoice::Auto),
            "tera" => Ok(EngineChoice::Tera),
            "go" => Ok(EngineChoice::Go),
            "consul-template" => Ok(EngineChoice::ConsulTemplate),
            other => Err(super::value::ValueError::Engine(other.to_owned())),
        }
    }
}

/// A resource's template: its name below `templates/` and the language it is written in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateRef {
    /// The path below `templates/`, with `/` separators.
    pub name: String,
    pub engine: EngineChoice,
}

impl std::fmt::Display for TemplateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// How a template's text is read when it is not its file as written with `{{ }}`:
/// consul-template's `contents` (the template inline, its name then only names it) and
/// `left_delimiter`/`right_delimiter`. Go templates only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateText {
    pub contents: Option<String>,
    /// Left and right; an empty one keeps Go's default, as in Go.
    pub delimiters: Option<(String, String)>,
}

/// A validated template resource, ready to render and sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// The resource file's path below `conf.d`, without `.toml`: `haproxy`, `edge/nginx`.
    pub name: String,
    /// The resource file itself, for messages.
    pub file: PathBuf,
    /// The template: its name below `templates/` and its language (`engine`, else the global
    /// `--template-engine`, set by [`super::load`]).
    pub template: TemplateRef,
    /// The language the resource file names, if it names one.
    pub engine: Option<EngineChoice>,
    /// Inline contents or other delimiters (consul-template's); default for a `conf.d` file.
    pub text: TemplateText,
    pub dest: PathBuf,
    /// Absolute key prefix: the global `--prefix` joined with the resource's `prefix`.
    pub prefix: String,
    /// Absolute keys (the prefix joined with each of `keys`): what the resource watches and
    /// what its template may read.
    pub keys: Vec<String>,
    /// File mode for the destination; `None` keeps the existing file's mode (0644 for a new file).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub check_cmd: Option<CommandLine>,
    pub reload_cmd: Option<CommandLine>,
    pub check_timeout: Duration,
    pub reload_timeout: Duration,
    /// The render's time budget: a render over it fails and the last good file stays.
    pub render_timeout: Duration,
    /// Create the destination's missing parent directories instead of failing.
    pub create_dirs: bool,
    /// Quiescence for this resource, overriding the global `--wait`.
    pub wait: Option<super::WaitSpec>,
    /// The least time between two runs of this resource's reload, overriding
    /// `--reload-interval`.
    pub reload_interval: Option<Duration>,
    /// Never render with fewer keys than this (a guard against an emptied or wrong store).
    pub min_keys: Option<usize>,
    /// Render when the resource's keys went from some to none. Off by default: a store that
    /// restarted empty must not silently render an empty configuration.
    pub allow_empty: bool,
    /// What the template may read beyond its scope's keys: key names never hold control
    /// characters; with `strict_values`, values do not either, except under `multiline`.
    pub values: ValuePolicy,
    /// Take turns with the other instances of a group (`[template.coordination]`, or the
    /// configuration file's `[coordination]`).
    pub coordination: Option<crate::config::coordination::Coordination>,
    /// Run after each reload; a failure rolls the destination back.
    pub health: Option<crate::config::coordination::HealthCheck>,
    /// Change HAProxy's servers through its runtime API instead of reloading it, when only
    /// `server` lines changed (`[template.haproxy]`).
    pub haproxy: Option<crate::config::haproxy::HaproxyRuntime>,
}

/// How resource files are read: the global key prefix, and the rules of the name terad runs
/// under (how that prefix combines with a resource's, whether an unknown key is an error).
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub global_prefix: &'a str,
    pub rules: Rules,
}

impl Reading<'_> {
    /// terad's own rules with no global prefix.
    pub fn terad() -> Reading<'static> {
        Reading {
            global_prefix: "",
            rules: crate::cli::Flavour::Terad.rules(),
        }
    }
}

/// Reads every resource below `confdir/conf.d`, validating each against `templates_dir` and
/// `reading`. Returns the valid resources together with every problem across all files (the
/// caller still checks the valid resources' templates, so all errors surface in one run); what
/// was accepted with a warning is added to `warnings`.
pub fn load_resources(
    conf_d: &Path,
    templates_dir: &Path,
    reading: Reading<'_>,
    warnings: &mut Vec<Warning>,
) -> (Vec<Resource>, ConfigErrors) {
    let mut errors = ConfigErrors::default();
    let files = match find_resource_files(conf_d) {
        Ok(files) => files,
        Err(error) => return (Vec::new(), error.into()),
    };
    if files.is_empty() {
        let error = ConfigError::in_file(conf_d, "no template resources (*.toml files) found");
        return (Vec::new(), error.into());
    }
    let mut resources = Vec::new();
    for file in &files {
        match load_resource(conf_d, file, templates_dir, reading, warnings) {
            Ok(resource) => resources.push(resource),
            Err(file_errors) => errors.extend(file_errors),
        }
    }

    let mut by_dest: BTreeMap<PathBuf, &Resource> = BTreeMap::new();
    for resource in &resources {
        if let Some(first) = by_dest.insert(normalize(&resource.dest), resource) {
            errors.push(
                ConfigError::in_file(
                    &resource.file,
                    format!(
                        "destination {:?} is also written by {}",
                        resource.dest.display().to_string(),
                        first.file.display()
                    ),
                )
                .with_key("dest"),
            );
        }
    }
    (resources, errors)
}

/// Every `*.toml` below `conf_d`, recursively, in sorted order. Hidden entries are skipped: a
/// Kubernetes ConfigMap mount exposes each file twice, once through the hidden `..data` link.
fn find_resource_files(conf_d: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let mut found = Vec::new();
    let mut pending = vec![(conf_d.to_owned(), 0usize)];
    while let Some((dir, depth)) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|error| {
            ConfigError::in_file(&dir, format!("cannot read resource directory: {error}"))
        })?;
        for entry in entries {
            let entry = entry.map_err(|error| {
                ConfigError::in_file(&dir, format!("cannot read resource directory: {error}"))
            })?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            // Follow links: ConfigMap files are links into the hidden data directory.
            let Ok(metadata) = std::fs::metadata(&path) else {
                continue;
            };
            if metadata.is_dir() {
                // A link cycle must not hang start-up.
                if depth < 16 {
                    pending.push((path, depth + 1));
                }
            } else if path.extension().is_some_and(|ext| ext == "toml") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn load_resource(
    conf_d: &Path,
    file: &Path,
    templates_dir: &Path,
    reading: Reading<'_>,
    warnings: &mut Vec<Warning>,
) -> Result<Resource, ConfigErrors> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| ConfigError::in_file(file, format!("cannot read: {error}")))?;
    let name = file
        .strip_prefix(conf_d)
        .unwrap_or(file)
        .with_extension("")
        .to_string_lossy()
        .into_owned();
    parse_resource_as(name, file, &text, templates_dir, reading, warnings)
}

/// Parses and validates one resource file's text under terad's own rules (`file` is only used in
/// messages).
pub fn parse_resource(
    name: String,
    file: &Path,
    text: &str,
    templates_dir: &Path,
    global_prefix: &str,
) -> Result<Resource, ConfigErrors> {
    let reading = Reading {
        global_prefix,
        ..Reading::terad()
    };
    parse_resource_as(name, file, text, templates_dir, reading, &mut Vec::new())
}

/// Parses and validates one resource file's text under `reading`.
pub fn parse_resource_as(
    name: String,
    file: &Path,
    text: &str,
    templates_dir: &Path,
    reading: Reading<'_>,
    warnings: &mut Vec<Warning>,
) -> Result<Resource, ConfigErrors> {
    let tables = [
        unknown::Table {
            name: None,
            valid: unknown::fields_of::<RawResourceFile>(),
        },
        unknown::Table {
            name: Some("template"),
            valid: unknown::fields_of::<RawTemplate>(),
        },
    ];
    let parsed = unknown::parse(file, text, reading.rules.unknown_keys, &tables);
    let (raw, ignored): (RawResourceFile, _) = parsed.map_err(|error| {
        let mut converted = from_toml_error(file, text, &error);
        if let Some(hint) = error
            .span()
            .and_then(|span| unquoted_mode(text, span.start))
        {
            converted.message.push_str(&hint);
        }
        converted
    })?;
    warnings.extend(ignored);
    validate(
        name,
        file,
        text,
        raw.template,
        templates_dir,
        reading,
        warnings,
    )
}
