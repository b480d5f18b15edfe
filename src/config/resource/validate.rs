//! One `[template]` table checked key by key into a [`Resource`], every problem collected.

use std::path::{Component, Path, PathBuf};

use super::raw::RawTemplate;
use super::{
    DEFAULT_CHECK_TIMEOUT, DEFAULT_RELOAD_TIMEOUT, DEFAULT_RENDER_TIMEOUT, EngineChoice, Reading,
    Resource, TemplateRef,
};
use crate::cli::GlobalPrefix;
use crate::config::duration::{duration_key, parse_duration};
use crate::config::value::ValueError;
use crate::config::warning::Warning;
use crate::diagnostic::{ConfigError, ConfigErrors};
use crate::process::CommandLine;
use crate::store::{Glob, ValuePolicy, join_key};
use toml::Spanned;

/// The hint for a mode written as a number: `mode = 0644` is a TOML syntax error (a leading
/// zero) and `mode = 644` an integer, but a mode is a string of octal digits.
pub(super) fn unquoted_mode(text: &str, offset: usize) -> Option<String> {
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, value) = line.split_once('=')?;
    let value = value.split('#').next()?.trim();
    let number = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (key.trim() == "mode" && number && value.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| format!("; write it as a string: mode = \"{value}\""))
}

/// Checks every key of one `[template]` table.
pub(super) fn validate(
    name: String,
    file: &Path,
    text: &str,
    raw: RawTemplate,
    templates_dir: &Path,
    reading: Reading<'_>,
    warnings: &mut Vec<Warning>,
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
                error("src", Some(src.span()), message.to_string());
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
                    error("engine", Some(engine.span()), message.to_string());
                    None
                }
            });
    let resource_prefix = raw.prefix.as_ref().map_or("", |p| p.get_ref().as_str());
    let prefix = match reading.rules.global_prefix {
        GlobalPrefix::Joined => join_key(&[reading.global_prefix, resource_prefix]),
        // confd: `if config.Prefix != "" { tr.Prefix = config.Prefix }`.
        GlobalPrefix::Replaces if !reading.global_prefix.is_empty() => {
            join_key(&[reading.global_prefix])
        }
        GlobalPrefix::Replaces => join_key(&[resource_prefix]),
    };
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
            Ok(parsed) => {
                if reading.rules.warn_decimal_mode
                    && let Some(confd) = confd_decimal_mode(mode.get_ref())
                {
                    warnings.push(Warning::DecimalMode {
                        file: file.to_owned(),
                        line: crate::diagnostic::line_and_column(text, mode.span().start).0,
                        mode: mode.get_ref().clone(),
                        terad: parsed,
                        confd,
                    });
                }
                Some(parsed)
            }
            Err(message) => {
                error("mode", Some(mode.span()), message.to_string());
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
                error(key, Some(raw.span()), message.to_string());
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
        .and_then(|wait| match crate::config::parse_wait(wait.get_ref()) {
            Ok(spec) => Some(spec),
            Err(message) => {
                error("wait", Some(wait.span()), message.to_string());
                None
            }
        });

    let reload_interval = raw.reload_interval.as_ref().and_then(|interval| {
        match parse_duration(interval.get_ref()) {
            Ok(interval) => Some(interval),
            Err(message) => {
                error(
                    "reload_interval",
                    Some(interval.span()),
                    message.to_string(),
                );
                None
            }
        }
    });

    let coordination = raw
        .coordination
        .as_ref()
        .and_then(|raw| raw.validate("coordination.", &mut error));
    let health = crate::config::coordination::RawHealth {
        cmd: &raw.health_cmd,
        url: &raw.health_url,
        timeout: &raw.health_timeout,
        retries: &raw.health_retries,
        interval: &raw.health_interval,
    }
    .validate(&mut error);
    let haproxy = raw
        .haproxy
        .as_ref()
        .and_then(|raw| raw.get_ref().validate(raw.span(), &mut error));

    match (template, dest) {
        (Some(template), Some(dest)) if errors.is_empty() => Ok(Resource {
            name,
            file: file.to_owned(),
            template: TemplateRef {
                name: template,
                engine: engine.unwrap_or_default(),
            },
            engine,
            text: super::TemplateText::default(),
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
            reload_interval,
            min_keys,
            allow_empty: raw.allow_empty.unwrap_or(false),
            values,
            coordination,
            health,
            haproxy,
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
pub fn parse_mode(text: &str) -> Result<u32, ValueError> {
    let digits = text.trim();
    let digits = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
        .unwrap_or(digits);
    let invalid = || ValueError::ModeDigits(text.to_owned());
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(invalid());
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| invalid())?;
    if mode > 0o7777 {
        return Err(ValueError::ModeRange(text.to_owned()));
    }
    Ok(mode)
}

/// The permissions confd applies for a `mode` it reads as a decimal number, when it does: Go's
/// `strconv.ParseUint(mode, 0, 32)` reads digits without a leading `0` (or a `0x`, `0o`, `0b`
/// prefix) as decimal, and `os.Chmod` keeps the low nine bits, so `"644"` becomes 0204.
fn confd_decimal_mode(text: &str) -> Option<u32> {
    let decimal = text.starts_with(|c: char| ('1'..='9').contains(&c))
        && text.bytes().all(|b| b.is_ascii_digit());
    let value: u32 = text.parse().ok().filter(|_| decimal)?;
    Some(value & 0o777)
}

/// Checks that `src` names a file inside `templates_dir` and returns its name there.
fn template_name(src: &str, templates_dir: &Path) -> Result<String, ValueError> {
    let relative = Path::new(src);
    if src.trim().is_empty() {
        return Err(ValueError::EmptyTemplate);
    }
    if relative.is_absolute() {
        return Err(ValueError::AbsoluteTemplate {
            src: src.to_owned(),
            templates: templates_dir.to_owned(),
        });
    }
    let mut parts = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(ValueError::TemplateOutside {
                        src: src.to_owned(),
                        templates: templates_dir.to_owned(),
                    });
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ValueError::RootedTemplate {
                    src: src.to_owned(),
                });
            }
        }
    }
    let path = templates_dir.join(parts.join("/"));
    if !path.is_file() {
        return Err(ValueError::TemplateMissing(path));
    }
    // A link inside templates/ must not lead outside it either.
    if let (Ok(real), Ok(root)) = (path.canonicalize(), templates_dir.canonicalize())
        && !real.starts_with(&root)
    {
        return Err(ValueError::TemplateLinksOutside {
            src: src.to_owned(),
            real,
        });
    }
    Ok(parts.join("/"))
}

/// Lexically normalizes a path (`a/./b/../c` → `a/c`) so two spellings of one destination compare
/// equal.
pub(super) fn normalize(path: &Path) -> PathBuf {
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
