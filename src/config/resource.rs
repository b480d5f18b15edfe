//! Template resources: the `conf.d/**/*.toml` files, confd's schema plus a few keys users expect.
//!
//! Each file is read into [`RawResourceFile`] (serde, unknown keys rejected) and then checked key
//! by key into a [`Resource`], collecting every problem instead of stopping at the first.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, ConfigErrors, from_toml_error};
use crate::process::CommandLine;
use crate::store::{Glob, ValuePolicy, join_key};
use crate::template::{EngineChoice, TemplateRef};

/// How long a `check_cmd` may run unless the resource says otherwise.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a `reload_cmd` may run unless the resource says otherwise.
pub const DEFAULT_RELOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long rendering a template may take unless the resource says otherwise. Generous: the
/// HAProxy example renders 100k servers in about 50 ms; only a runaway template gets near it.
pub const DEFAULT_RENDER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResourceFile {
    template: RawTemplate,
}

/// A `[template]` table as written. Every field is optional here so that all missing and invalid
/// fields are reported together by [`validate`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    src: Option<Spanned<String>>,
    engine: Option<Spanned<String>>,
    dest: Option<Spanned<String>>,
    keys: Option<Spanned<Vec<Spanned<String>>>>,
    prefix: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    uid: Option<Spanned<i64>>,
    gid: Option<Spanned<i64>>,
    owner: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    check_cmd: Option<Spanned<String>>,
    reload_cmd: Option<Spanned<String>>,
    create_dirs: Option<bool>,
    min_keys: Option<Spanned<i64>>,
    allow_empty: Option<bool>,
    strict_values: Option<bool>,
    multiline: Option<Spanned<Vec<Spanned<String>>>>,
    check_timeout: Option<Spanned<DurationValue>>,
    reload_timeout: Option<Spanned<DurationValue>>,
    render_timeout: Option<Spanned<DurationValue>>,
    wait: Option<Spanned<String>>,
    coordination: Option<super::coordination::RawCoordination>,
    health_cmd: Option<Spanned<String>>,
    health_url: Option<Spanned<String>>,
    health_timeout: Option<Spanned<DurationValue>>,
    health_retries: Option<Spanned<i64>>,
    health_interval: Option<Spanned<DurationValue>>,
}

/// A duration written as a string (`"500ms"`, `"2m"`) or as whole seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum DurationValue {
    Seconds(u64),
    Text(String),
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
    pub coordination: Option<super::coordination::Coordination>,
    /// Run after each reload; a failure rolls the destination back.
    pub health: Option<super::coordination::HealthCheck>,
}

/// Reads every resource below `confdir/conf.d`, validating each against `templates_dir` and the
/// global key `prefix`. Returns the valid resources together with every problem across all files
/// (the caller still checks the valid resources' templates, so all errors surface in one run).
pub fn load_resources(
    conf_d: &Path,
    templates_dir: &Path,
    global_prefix: &str,
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
        match load_resource(conf_d, file, templates_dir, global_prefix) {
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
    global_prefix: &str,
) -> Result<Resource, ConfigErrors> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| ConfigError::in_file(file, format!("cannot read: {error}")))?;
    let name = file
        .strip_prefix(conf_d)
        .unwrap_or(file)
        .with_extension("")
        .to_string_lossy()
        .into_owned();
    parse_resource(name, file, &text, templates_dir, global_prefix)
}

/// Parses and validates one resource file's text (`file` is only used in messages).
pub fn parse_resource(
    name: String,
    file: &Path,
    text: &str,
    templates_dir: &Path,
    global_prefix: &str,
) -> Result<Resource, ConfigErrors> {
    let raw: RawResourceFile = toml::from_str(text).map_err(|error| {
        let mut converted = from_toml_error(file, text, &error);
        if let Some(hint) = error
            .span()
            .and_then(|span| unquoted_mode(text, span.start))
        {
            converted.message.push_str(&hint);
        }
        converted
    })?;
    validate(name, file, text, raw.template, templates_dir, global_prefix)
}

/// The hint for a mode written as a number: `mode = 0644` is a TOML syntax error (a leading
/// zero) and `mode = 644` an integer, but a mode is a string of octal digits.
fn unquoted_mode(text: &str, offset: usize) -> Option<String> {
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, value) = line.split_once('=')?;
    let value = value.split('#').next()?.trim();
    let number = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (key.trim() == "mode" && number && value.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| format!("; write it as a string: mode = \"{value}\""))
}

/// Checks every key of one `[template]` table.
fn validate(
    name: String,
    file: &Path,
    text: &str,
    raw: RawTemplate,
    templates_dir: &Path,
    global_prefix: &str,
) -> Result<Resource, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut error = |key: &str, span: Option<std::ops::Range<usize>>, message: String| {
        let mut e = ConfigError::in_file(file, message).with_key(key);
        if let Some(span) = span {
            e = e.at(text, span);
        }
        errors.push(e);
    };

    let template = match &raw.src {
        None => {
            error(
                "src",
                None,
                "missing: the template file, relative to templates/".into(),
            );
            None
        }
        Some(src) => match template_name(src.get_ref(), templates_dir) {
            Ok(name) => Some(name),
            Err(message) => {
                error("src", Some(src.span()), message);
                None
            }
        },
    };

    let dest = match &raw.dest {
        None => {
            error("dest", None, "missing: the file to write".into());
            None
        }
        Some(dest) if dest.get_ref().trim().is_empty() => {
            error("dest", Some(dest.span()), "must not be empty".into());
            None
        }
        Some(dest) => {
            let path = PathBuf::from(dest.get_ref());
            if path.file_name().is_none() {
                error(
                    "dest",
                    Some(dest.span()),
                    format!("{:?} does not name a file", dest.get_ref()),
                );
            }
            Some(path)
        }
    };

    let engine =
        raw.engine
            .as_ref()
            .and_then(|engine| match EngineChoice::parse(engine.get_ref()) {
                Ok(choice) => Some(choice),
                Err(message) => {
                    error("engine", Some(engine.span()), message);
                    None
                }
            });
    let resource_prefix = raw.prefix.as_ref().map_or("", |p| p.get_ref().as_str());
    let prefix = join_key(&[global_prefix, resource_prefix]);
    let mut keys = Vec::new();
    if let Some(raw_keys) = &raw.keys {
        for key in raw_keys.get_ref() {
            // confd's `""` means the whole prefix, like "/".
            keys.push(join_key(&[&prefix, key.get_ref()]));
        }
    }
    keys.sort();
    keys.dedup();

    let mut multiline = Vec::new();
    if let Some(patterns) = &raw.multiline {
        for pattern in patterns.get_ref() {
            match Glob::new(&join_key(&[&prefix, pattern.get_ref()])) {
                Ok(glob) => multiline.push(glob),
                Err(err) => error("multiline", Some(pattern.span()), err.to_string()),
            }
        }
    }
    let values = ValuePolicy {
        strict: raw.strict_values.unwrap_or(false),
        multiline,
    };

    let mode = raw
        .mode
        .as_ref()
        .and_then(|mode| match parse_mode(mode.get_ref()) {
            Ok(mode) => Some(mode),
            Err(message) => {
                error("mode", Some(mode.span()), message);
                None
            }
        });

    let uid = owner_id(
        "uid",
        raw.uid.as_ref(),
        "owner",
        raw.owner.as_ref(),
        |name| {
            nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw())
        },
        &mut error,
    );
    let gid = owner_id(
        "gid",
        raw.gid.as_ref(),
        "group",
        raw.group.as_ref(),
        |name| {
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
        },
        &mut error,
    );

    let mut command = |key: &str, raw: &Option<Spanned<String>>| -> Option<CommandLine> {
        let raw = raw.as_ref()?;
        if raw.get_ref().trim().is_empty() {
            return None;
        }
        match CommandLine::parse(raw.get_ref()) {
            Ok(command) => Some(command),
            Err(message) => {
                error(key, Some(raw.span()), message);
                None
            }
        }
    };
    let check_cmd = command("check_cmd", &raw.check_cmd);
    let reload_cmd = command("reload_cmd", &raw.reload_cmd);

    let check_timeout = duration_key(
        "check_timeout",
        &raw.check_timeout,
        DEFAULT_CHECK_TIMEOUT,
        None,
        &mut error,
    );
    let reload_timeout = duration_key(
        "reload_timeout",
        &raw.reload_timeout,
        DEFAULT_RELOAD_TIMEOUT,
        None,
        &mut error,
    );
    let render_timeout = duration_key(
        "render_timeout",
        &raw.render_timeout,
        DEFAULT_RENDER_TIMEOUT,
        None,
        &mut error,
    );
    let min_keys = raw
        .min_keys
        .as_ref()
        .and_then(|min| match usize::try_from(*min.get_ref()) {
            Ok(min) => Some(min),
            Err(_) => {
                error(
                    "min_keys",
                    Some(min.span()),
                    format!("{:?} is not a number of keys", min.get_ref()),
                );
                None
            }
        });
    let wait = raw
        .wait
        .as_ref()
        .and_then(|wait| match super::parse_wait(wait.get_ref()) {
            Ok(spec) => Some(spec),
            Err(message) => {
                error("wait", Some(wait.span()), message);
                None
            }
        });

    let coordination = raw
        .coordination
        .as_ref()
        .and_then(|raw| raw.validate("coordination.", &mut error));
    let health = super::coordination::RawHealth {
        cmd: &raw.health_cmd,
        url: &raw.health_url,
        timeout: &raw.health_timeout,
        retries: &raw.health_retries,
        interval: &raw.health_interval,
    }
    .validate(&mut error);

    match (template, dest) {
        (Some(template), Some(dest)) if errors.is_empty() => Ok(Resource {
            name,
            file: file.to_owned(),
            template: TemplateRef {
                name: template,
                engine: engine.unwrap_or_default(),
            },
            engine,
            dest,
            prefix,
            keys,
            mode,
            uid,
            gid,
            check_cmd,
            reload_cmd,
            check_timeout,
            reload_timeout,
            render_timeout,
            create_dirs: raw.create_dirs.unwrap_or(false),
            wait,
            min_keys,
            allow_empty: raw.allow_empty.unwrap_or(false),
            values,
            coordination,
            health,
        }),
        _ => Err(errors),
    }
}

/// Resolves a numeric id or a name into an id; setting both is ambiguous and an error.
fn owner_id(
    id_key: &str,
    id: Option<&Spanned<i64>>,
    name_key: &str,
    name: Option<&Spanned<String>>,
    lookup: impl Fn(&str) -> Option<u32>,
    error: &mut impl FnMut(&str, Option<std::ops::Range<usize>>, String),
) -> Option<u32> {
    match (id, name) {
        (Some(id), Some(_)) => {
            error(
                id_key,
                Some(id.span()),
                format!("set either {id_key} or {name_key}, not both"),
            );
            None
        }
        (Some(id), None) => match u32::try_from(*id.get_ref()) {
            Ok(value) => Some(value),
            Err(_) => {
                error(
                    id_key,
                    Some(id.span()),
                    format!("{:?} is not a valid id", id.get_ref()),
                );
                None
            }
        },
        (None, Some(name)) => match lookup(name.get_ref()) {
            Some(value) => Some(value),
            None => {
                error(
                    name_key,
                    Some(name.span()),
                    format!("no such {name_key} {:?} on this system", name.get_ref()),
                );
                None
            }
        },
        (None, None) => None,
    }
}

/// Parses a file mode. Modes are always octal, with or without a leading `0` or `0o`:
/// `"0644"`, `"644"` and `"0o644"` are the same mode.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim();
    let digits = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
        .unwrap_or(digits);
    let invalid = || format!("invalid mode {text:?}: expected octal digits such as \"0644\"");
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(invalid());
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| invalid())?;
    if mode > 0o7777 {
        return Err(format!(
            "invalid mode {text:?}: above 07777, the largest file mode"
        ));
    }
    Ok(mode)
}

/// A duration key: `default` when absent. A value that does not parse, or is zero (`min` None)
/// or shorter than `min`, is reported and the default used, so validation goes on.
pub(super) fn duration_key(
    key: &str,
    raw: &Option<Spanned<DurationValue>>,
    default: Duration,
    min: Option<Duration>,
    error: &mut super::coordination::Report<'_>,
) -> Duration {
    let Some(raw) = raw else { return default };
    match parse_duration(raw.get_ref()) {
        Ok(duration) => match min {
            None if duration.is_zero() => {
                error(key, Some(raw.span()), "must be longer than zero".into());
                default
            }
            Some(min) if duration < min => {
                error(
                    key,
                    Some(raw.span()),
                    format!("must be at least {}", humantime::format_duration(min)),
                );
                default
            }
            _ => duration,
        },
        Err(message) => {
            error(key, Some(raw.span()), message);
            default
        }
    }
}

pub(super) fn parse_duration(value: &DurationValue) -> Result<Duration, String> {
    match value {
        DurationValue::Seconds(seconds) => Ok(Duration::from_secs(*seconds)),
        DurationValue::Text(text) => humantime::parse_duration(text.trim()).map_err(|e| {
            format!("invalid duration {text:?}: {e} (write e.g. \"30s\" or \"500ms\")")
        }),
    }
}

/// Checks that `src` names a file inside `templates_dir` and returns its name there.
fn template_name(src: &str, templates_dir: &Path) -> Result<String, String> {
    let relative = Path::new(src);
    if src.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if relative.is_absolute() {
        return Err(format!(
            "{src:?} must be relative to {}",
            templates_dir.display()
        ));
    }
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!(
                        "{src:?} points outside the templates directory {}",
                        templates_dir.display()
                    ));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{src:?} must be a relative path"));
            }
        }
    }
    let path = templates_dir.join(parts.join("/"));
    if !path.is_file() {
        return Err(format!(
            "template {:?} not found",
            path.display().to_string()
        ));
    }
    // A link inside templates/ must not lead outside it either.
    if let (Ok(real), Ok(root)) = (path.canonicalize(), templates_dir.canonicalize())
        && !real.starts_with(&root)
    {
        return Err(format!(
            "{src:?} resolves to {}, outside the templates directory",
            real.display()
        ));
    }
    Ok(parts.join("/"))
}

/// Lexically normalizes a path (`a/./b/../c` → `a/c`) so two spellings of one destination compare
/// equal.
fn normalize(path: &Path) -> PathBuf {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normalized.pop();
            }
            other => normalized.push(other),
        }
    }
    normalized
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
            std::fs::create_dir_all(dir.path().join("templates/sub")).unwrap();
            std::fs::write(dir.path().join("templates/app.tmpl"), "x").unwrap();
            std::fs::write(dir.path().join("templates/sub/b.tmpl"), "y").unwrap();
            Fixture { dir }
        }

        fn resource(&self, name: &str, body: &str) -> &Self {
            let path = self.dir.path().join("conf.d").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
            self
        }

        fn load(&self, prefix: &str) -> Result<Vec<Resource>, ConfigErrors> {
            let (resources, errors) = load_resources(
                &self.dir.path().join("conf.d"),
                &self.dir.path().join("templates"),
                prefix,
            );
            errors.into_result(resources)
        }

        fn errors(&self) -> Vec<String> {
            let root = format!("{}/", self.dir.path().display());
            self.load("")
                .unwrap_err()
                .0
                .iter()
                .map(|e| e.to_string().replace(&root, ""))
                .collect()
        }
    }

    #[test]
    fn parses_confd_resource_with_every_key() {
        let fx = Fixture::new();
        fx.resource(
            "app.toml",
            r#"
[template]
src = "app.tmpl"
dest = "/tmp/app.conf"
prefix = "/prod"
keys = ["/app/db", "app/cache", "/app/db"]
mode = "0640"
uid = 0
gid = 0
check_cmd = "check {{.src}}"
reload_cmd = "reload {{ .dest }}"
create_dirs = true
check_timeout = "5s"
reload_timeout = 90
"#,
        );
        let resources = fx.load("/global").unwrap();
        let r = &resources[0];
        assert_eq!(r.name, "app");
        assert_eq!(r.template.name, "app.tmpl");
        assert_eq!(r.dest, PathBuf::from("/tmp/app.conf"));
        assert_eq!(r.prefix, "/global/prod");
        assert_eq!(r.keys, ["/global/prod/app/cache", "/global/prod/app/db"]);
        assert_eq!(r.mode, Some(0o640));
        assert_eq!((r.uid, r.gid), (Some(0), Some(0)));
        assert!(r.check_cmd.is_some() && r.reload_cmd.is_some());
        assert!(r.create_dirs);
        assert_eq!(r.check_timeout, Duration::from_secs(5));
        assert_eq!(r.reload_timeout, Duration::from_secs(90));
    }

    #[test]
    fn coordination_and_health_keys_parse_with_defaults() {
        use super::super::coordination::{Coordination, HealthCheck, HealthProbe};
        let fx = Fixture::new();
        fx.resource(
            "app.toml",
            r#"
[template]
src = "app.tmpl"
dest = "/tmp/app.conf"
health_url = "http://127.0.0.1:8404/health"
health_retries = 5

[template.coordination]
group = "edge-haproxy"
ttl = "30s"
"#,
        );
        let r = &fx.load("").unwrap()[0];
        assert_eq!(
            r.coordination,
            Some(Coordination {
                group: "edge-haproxy".into(),
                max_concurrent: 1,
                ttl: Duration::from_secs(30),
                jitter: Duration::from_secs(1),
                service: None,
            })
        );
        assert_eq!(
            r.health,
            Some(HealthCheck {
                probe: HealthProbe::Url("http://127.0.0.1:8404/health".into()),
                timeout: Duration::from_secs(5),
                retries: 5,
                interval: Duration::from_secs(1),
            })
        );
    }

    #[test]
    fn a_coordination_service_replaces_max_concurrent_with_max_unavailable() {
        use super::super::coordination::ServiceCoordination;
        let fx = Fixture::new();
        fx.resource(
            "app.toml",
            r#"
[template]
src = "app.tmpl"
dest = "/tmp/app.conf"

[template.coordination]
group = "api"
service = "api"
max_unavailable = 2
service_id = "api-1"
"#,
        );
        let r = &fx.load("").unwrap()[0];
        let coordination = r.coordination.as_ref().unwrap();
        assert_eq!(coordination.max_concurrent, 2, "the slots are bounded too");
        assert_eq!(
            coordination.service,
            Some(ServiceCoordination {
                name: "api".into(),
                max_unavailable: 2,
                service_id: Some("api-1".into()),
            })
        );

        let fx = Fixture::new();
        fx.resource(
            "a.toml",
            "[template]\nsrc = \"a.tmpl\"\ndest = \"/tmp/a\"\n\n[template.coordination]\ngroup = \"g\"\nservice = \"api\"\nmax_concurrent = 2\n",
        );
        fx.resource(
            "b.toml",
            "[template]\nsrc = \"b.tmpl\"\ndest = \"/tmp/b\"\n\n[template.coordination]\ngroup = \"g\"\nservice_id = \"api-1\"\n",
        );
        let errors = fx.errors();
        for want in [
            "conf.d/a.toml:8:18: \"coordination.max_concurrent\": a group that names a service is bounded by max_unavailable instead",
            "conf.d/b.toml:7:14: \"coordination.service_id\": needs `service`, the Consul service whose instances take turns",
        ] {
            assert!(
                errors.iter().any(|e| e == want),
                "{want:?} not in {errors:#?}"
            );
        }
    }

    #[test]
    fn bad_coordination_and_health_keys_are_named() {
        let fx = Fixture::new();
        fx.resource(
            "app.toml",
            r#"
[template]
src = "app.tmpl"
dest = "/tmp/app.conf"
health_cmd = "true"
health_url = "ftp://x"
health_retries = -1

[template.coordination]
group = "a/b"
max_concurrent = 0
ttl = "1s"
"#,
        );
        let errors = fx.errors();
        let expect = [
            "conf.d/app.toml:5:14: \"health_cmd\": set either health_cmd or health_url, not both",
            "conf.d/app.toml:7:18: \"health_retries\": -1 is not a number of retries",
            "conf.d/app.toml:10:9: \"coordination.group\": \"a/b\" is not a group name (letters, digits, '-', '_' and '.', at most 128)",
            "conf.d/app.toml:11:18: \"coordination.max_concurrent\": 0 is not at least 1",
            "conf.d/app.toml:12:7: \"coordination.ttl\": must be at least 2s",
        ];
        for want in expect {
            assert!(
                errors.iter().any(|e| e == want),
                "{want:?} not in {errors:#?}"
            );
        }
    }

    #[test]
    fn defaults_for_optional_keys() {
        let fx = Fixture::new();
        fx.resource(
            "a.toml",
            "[template]\nsrc = \"sub/b.tmpl\"\ndest = \"out\"\n",
        );
        let r = &fx.load("").unwrap()[0];
        assert_eq!(r.template.name, "sub/b.tmpl");
        assert_eq!(r.prefix, "/");
        assert!(r.keys.is_empty());
        assert_eq!(r.mode, None);
        assert_eq!((r.uid, r.gid), (None, None));
        assert!(!r.create_dirs);
        assert_eq!(r.check_timeout, DEFAULT_CHECK_TIMEOUT);
    }

    #[test]
    fn owner_and_group_names_resolve() {
        let fx = Fixture::new();
        fx.resource(
            "a.toml",
            "[template]\nsrc = \"app.tmpl\"\ndest = \"/x\"\nowner = \"root\"\ngroup = \"root\"\n",
        );
        let r = &fx.load("").unwrap()[0];
        assert_eq!((r.uid, r.gid), (Some(0), Some(0)));
    }

    #[test]
    fn a_mode_written_as_a_number_is_told_to_be_a_string() {
        let fx = Fixture::new();
        fx.resource(
            "a.toml",
            "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/a\"\nmode = 0644   # rw-r--r--\n",
        );
        let errors = fx.errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("conf.d/a.toml:4:8: "), "{errors:?}");
        assert!(
            errors[0].ends_with("; write it as a string: mode = \"0644\""),
            "{errors:?}"
        );
    }

    #[test]
    fn mode_parsing_is_always_octal() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("0o600"), Ok(0o600));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        assert_eq!(parse_mode("0"), Ok(0));
        for bad in ["", "0999", "rw-r--r--", "-644", "0x1a4", "77777", " "] {
            assert!(parse_mode(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(
            parse_mode("0999").unwrap_err(),
            "invalid mode \"0999\": expected octal digits such as \"0644\""
        );
    }

    #[test]
    fn every_error_in_every_file_is_reported_with_position() {
        let fx = Fixture::new();
        fx.resource(
            "a.toml",
            r#"[template]
src = "../etc/passwd"
dest = "/tmp/a"
mode = "0999"
uid = 1
owner = "root"
check_cmd = "check {{.source}}"
check_timeout = "soon"
"#,
        )
        .resource(
            "b.toml",
            "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/a\"\nkeyz = []\n",
        )
        .resource("c.toml", "[template\nsrc = 1")
        .resource(
            "d.toml",
            "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/d\"\nmode = 644\n",
        )
        // confd's `keys = [""]` (the whole prefix) is valid.
        .resource("e.toml", "[template]\nkeys = [\"\"]\n")
        .resource(
            "f.toml",
            "[template]\nsrc = \"missing.tmpl\"\ndest = \"/tmp/f\"\n",
        );
        let errors = fx.errors();
        let expected = [
            "conf.d/a.toml:2:7: \"src\": \"../etc/passwd\" points outside the templates directory",
            "conf.d/a.toml:4:8: \"mode\": invalid mode \"0999\": expected octal digits such as \"0644\"",
            "conf.d/a.toml:5:7: \"uid\": set either uid or owner, not both",
            "conf.d/a.toml:7:13: \"check_cmd\": unknown placeholder \"{{.source}}\"",
            "conf.d/a.toml:8:17: \"check_timeout\": invalid duration \"soon\"",
            "conf.d/b.toml:4:1: unknown field `keyz`",
            "conf.d/c.toml:1:10:",
            "conf.d/d.toml:4:8: invalid type: integer `644`, expected a string; write it as a \
             string: mode = \"644\"",
            "conf.d/e.toml: \"src\": missing",
            "conf.d/e.toml: \"dest\": missing",
            "conf.d/f.toml:2:7: \"src\": template",
        ];
        for want in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in\n{}",
                errors.join("\n")
            );
        }
        assert_eq!(errors.len(), expected.len(), "{}", errors.join("\n"));
    }

    #[test]
    fn two_resources_with_one_destination_are_an_error() {
        let fx = Fixture::new();
        fx.resource(
            "a.toml",
            "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/same\"\n",
        )
        .resource(
            "b.toml",
            "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/./same\"\n",
        );
        let errors = fx.errors();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with(
            "conf.d/b.toml: \"dest\": destination \"/tmp/./same\" is also written by"
        ));
    }

    #[test]
    fn walks_subdirectories_in_order_and_skips_hidden_entries() {
        let fx = Fixture::new();
        fx.resource(
            "z.toml",
            "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/z\"\n",
        )
        .resource(
            "edge/a.toml",
            "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/ea\"\n",
        )
        .resource(
            "..data/a.toml",
            "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/ea\"\n",
        )
        .resource(".hidden.toml", "not toml at all")
        .resource("notes.txt", "ignored");
        let names: Vec<_> = fx.load("").unwrap().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["edge/a", "z"]);
    }

    #[test]
    fn empty_conf_d_is_an_error() {
        let fx = Fixture::new();
        let errors = fx.errors();
        assert_eq!(
            errors,
            ["conf.d: no template resources (*.toml files) found"]
        );
    }

    #[test]
    fn template_links_may_not_leave_the_templates_directory() {
        let fx = Fixture::new();
        let outside = fx.dir.path().join("secret");
        std::fs::write(&outside, "s").unwrap();
        std::os::unix::fs::symlink(&outside, fx.dir.path().join("templates/link.tmpl")).unwrap();
        fx.resource(
            "a.toml",
            "[template]\nsrc = \"link.tmpl\"\ndest = \"/tmp/a\"\n",
        );
        let errors = fx.errors();
        assert!(
            errors[0].contains("outside the templates directory"),
            "{errors:?}"
        );
    }
}
