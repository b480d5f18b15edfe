//! consul-template's templates (`-template`, `template {}`) into terad's resources: each key
//! onto the resource key that does the same (`perms` is `mode`, `create_dest_dirs`
//! `create_dirs`, `command` `reload_cmd`, `command_timeout` `reload_timeout`), a warning for
//! what terad does not do (`backup`, `error_on_missing_key`, a template's `exec` signals), an
//! error for what cannot work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{At, Perms, Place, TemplateSpec, go_duration, go_wait};
use crate::config::resource::{DEFAULT_RENDER_TIMEOUT, parse_mode};
use crate::config::warning::Warning;
use crate::config::{EngineChoice, Resource, Settings, TemplateRef, TemplateText};
use crate::diagnostic::{ConfigError, ConfigErrors};
use crate::process::CommandLine;
use crate::store::{ValuePolicy, join_key};

/// consul-template's `DefaultTemplateCommandTimeout`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The resources of `settings.consul_templates`, every problem collected.
pub fn resources(
    settings: &Settings,
    warnings: &mut Vec<Warning>,
) -> (Vec<Resource>, ConfigErrors) {
    let mut errors = ConfigErrors::default();
    let mut resources: Vec<Resource> = Vec::new();
    let mut by_dest: BTreeMap<PathBuf, Place> = BTreeMap::new();
    if settings.consul_templates.is_empty() {
        errors.push(ConfigError::option(
            "-template",
            "no template to render: give one with -template \"IN:OUT\" or a template {} block in \
             a -config file",
        ));
    }
    for spec in &settings.consul_templates {
        let place = spec
            .place
            .clone()
            .unwrap_or_else(|| Place::Flag("-template".to_owned()));
        let mut problems = Vec::new();
        let resource = resource(settings, spec, &place, &mut problems, warnings);
        if let Some(resource) = resource.filter(|_| problems.is_empty()) {
            let dest = normalize(&resource.dest);
            if let Some(first) = by_dest.insert(dest, place.clone()) {
                errors.push(place.error(format!(
                    "destination {:?} is also written by the template at {first}",
                    resource.dest.display().to_string()
                )));
            }
            resources.push(resource);
        }
        for problem in problems {
            errors.push(problem);
        }
    }
    (resources, errors)
}

fn resource(
    settings: &Settings,
    spec: &TemplateSpec,
    place: &Place,
    problems: &mut Vec<ConfigError>,
    warnings: &mut Vec<Warning>,
) -> Option<Resource> {
    for noted in &spec.not_followed {
        warnings.push(noted.place.warning(noted.value));
    }
    let name = match (&spec.source, &spec.contents) {
        (Some(_), Some(_)) => {
            problems.push(place.error("give either source or contents, not both"));
            None
        }
        (None, None) => {
            problems.push(place.error("give the template: source (a file) or contents"));
            None
        }
        (Some(source), None) if source.value.trim().is_empty() => {
            problems.push(source.place.error("the template file's name is empty"));
            None
        }
        (Some(source), None) => Some(absolute(&source.value)),
        // An inline template is named after where it is written.
        (None, Some(_)) => Some(match place {
            Place::Key {
                file,
                position: (line, _),
                ..
            } => format!(
                "{} (template at line {line})",
                absolute_path(file).display()
            ),
            Place::Flag(flag) => flag.clone(),
        }),
    };
    let dest = match &spec.destination {
        Some(dest) if !dest.value.trim().is_empty() => Some(PathBuf::from(&dest.value)),
        Some(dest) => {
            problems.push(dest.place.error("the destination is empty"));
            None
        }
        None => {
            problems.push(place.error("give the file to write: destination"));
            None
        }
    };
    let reload_cmd = spec.command.as_ref().and_then(|command| {
        let split = match command.value.split(|name| std::env::var(name).ok()) {
            Ok(split) => split,
            Err(error) => {
                problems.push(command.place.error(error.to_string()));
                return None;
            }
        };
        if let Some(dropped) = &split.dropped {
            warnings.push(command.place.warning(format!(
                "{dropped:?} is not run: consul-template v0.20.1 splits a command into words \
                 without a shell and stops at the first ;, &, |, < or >, and so does terad (a \
                 later consul-template runs the command with sh -c); write sh -c '…' to run \
                 shell code"
            )));
        }
        let line = match command.value.shell() {
            Ok(line) => format!("exec {line}"),
            Err(error) => {
                problems.push(command.place.error(error.to_string()));
                return None;
            }
        };
        match CommandLine::parse(&line) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                problems.push(command.place.error(error.to_string()));
                None
            }
        }
    });
    let reload_timeout =
        duration(spec.command_timeout.as_ref(), problems).unwrap_or(COMMAND_TIMEOUT);
    let mode = spec.perms.as_ref().and_then(|perms| mode(perms, problems));
    if let Some(backup) = spec.backup.as_ref().filter(|backup| backup.value) {
        warnings.push(backup.place.warning(
            "terad keeps no .bak copy of the file it replaces (it checks a render before the \
             swap, and a health-gated change keeps the old file to roll back to); not followed",
        ));
    }
    if let Some(strict) = spec
        .error_on_missing_key
        .as_ref()
        .filter(|strict| strict.value)
    {
        warnings.push(strict.place.warning(
            "a missing map key renders as <no value>, as with consul-template's default; not \
             followed",
        ));
    }
    let wait = spec.wait.as_ref().and_then(|wait| {
        match go_wait(&wait.value)
            .map_err(|error| error.to_string())
            .and_then(|text| crate::config::parse_wait(&text).map_err(|error| error.to_string()))
        {
            Ok(wait) => Some(wait),
            Err(message) => {
                problems.push(wait.place.error(message));
                None
            }
        }
    });
    let uid = owner(
        spec.uid.as_ref(),
        spec.user.as_ref(),
        "user",
        problems,
        |name| {
            nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .map(|user| user.uid.as_raw())
        },
    );
    let gid = owner(
        spec.gid.as_ref(),
        spec.group.as_ref(),
        "group",
        problems,
        |name| {
            nix::unistd::Group::from_name(name)
                .ok()
                .flatten()
                .map(|group| group.gid.as_raw())
        },
    );
    let delimiters = match (&spec.left_delimiter, &spec.right_delimiter) {
        (None, None) => None,
        (left, right) => Some((
            left.clone().unwrap_or_default(),
            right.clone().unwrap_or_default(),
        )),
    };
    let (Some(name), Some(dest)) = (name, dest) else {
        return None;
    };
    Some(Resource {
        name: dest.display().to_string(),
        file: match place {
            Place::Key { file, .. } => file.clone(),
            Place::Flag(flag) => PathBuf::from(flag),
        },
        template: TemplateRef {
            name,
            engine: EngineChoice::ConsulTemplate,
        },
        engine: Some(EngineChoice::ConsulTemplate),
        text: TemplateText {
            contents: spec
                .contents
                .as_ref()
                .map(|contents| contents.value.clone()),
            delimiters,
        },
        dest,
        prefix: join_key(&[]),
        // What the template reads is found in it when it is loaded (`template::prepare`).
        keys: Vec::new(),
        mode,
        uid,
        gid,
        check_cmd: None,
        reload_cmd,
        check_timeout: crate::config::resource::DEFAULT_CHECK_TIMEOUT,
        reload_timeout,
        render_timeout: DEFAULT_RENDER_TIMEOUT,
        create_dirs: spec.create_dest_dirs.unwrap_or(true),
        wait,
        reload_interval: None,
        min_keys: None,
        allow_empty: false,
        values: ValuePolicy::default(),
        coordination: settings.coordination.clone(),
        health: None,
        haproxy: None,
    })
}

/// `perms`: `"0644"` (octal digits, as consul-template's `ParseUint(s, 8, 12)`), or a number
/// (already octal when written with a leading `0`, as HCL 1 reads it).
fn mode(perms: &At<Perms>, problems: &mut Vec<ConfigError>) -> Option<u32> {
    let parsed = match &perms.value {
        Perms::Text(text) => parse_mode(text).map_err(|error| error.to_string()),
        Perms::Number(number) => u32::try_from(*number)
            .ok()
            .filter(|mode| *mode <= 0o7777)
            .ok_or_else(|| format!("{number} is not a file mode (write e.g. 0644 or \"0644\")")),
    };
    parsed
        .map_err(|message| problems.push(perms.place.error(message)))
        .ok()
}

fn duration(given: Option<&At<String>>, problems: &mut Vec<ConfigError>) -> Option<Duration> {
    let given = given?;
    go_duration(&given.value)
        .map_err(|error| problems.push(given.place.error(error.to_string())))
        .ok()
}

/// `uid`/`gid` or `user`/`group` (a name looked up here).
fn owner(
    id: Option<&At<i64>>,
    name: Option<&At<String>>,
    what: &str,
    problems: &mut Vec<ConfigError>,
    lookup: impl Fn(&str) -> Option<u32>,
) -> Option<u32> {
    if let Some(id) = id {
        return u32::try_from(id.value)
            .map_err(|_| problems.push(id.place.error(format!("{} is not a valid id", id.value))))
            .ok();
    }
    let name = name?;
    lookup(&name.value).or_else(|| {
        problems.push(
            name.place
                .error(format!("no such {what} {:?} on this system", name.value)),
        );
        None
    })
}

/// A template's path as consul-template opens it: relative to the working directory.
fn absolute(path: &str) -> String {
    absolute_path(Path::new(path)).display().to_string()
}

fn absolute_path(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_owned();
    }
    std::env::current_dir().map_or_else(|_| path.to_owned(), |cwd| cwd.join(path))
}

/// `a/./b/../c` → `a/c`, so two spellings of one destination compare equal.
fn normalize(path: &Path) -> PathBuf {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                normalized.pop();
            }
            other => normalized.push(other),
        }
    }
    normalized
}
