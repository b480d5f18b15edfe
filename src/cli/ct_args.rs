//! consul-template's command line, read with Go's `flag` syntax, as consul-template reads it.
//!
//! Under the name `consul-template` (or after `--consul-template`) terad takes consul-template's
//! flags instead of its own: `-template "in:out:command"`, `-consul-addr`, `-once`, … Their names
//! clash with terad's options (`-config` is an HCL file, not a `terad.toml`; `-exec` is split into
//! words, not run by a shell), so they are not translated into terad's options but read here, as
//! written, into [`ConsulTemplateArgs`]; what each means is decided when the settings are layered
//! (`crate::config::consul_template`), beside the same keys of its HCL configuration.
//!
//! Go's rules: a flag has one or two dashes; a value follows as `-flag value` or `-flag=value`; a
//! boolean flag is set by its name alone and takes a value only after `=`; the flags end at `--`
//! or at the first argument that is not one, and consul-template refuses any argument left.

use std::ffi::OsString;

use super::confd_args::{FlagError, edit_distance};

/// What a flag of consul-template takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Set by its name alone, or `-flag=false`.
    Boolean,
    /// A value, after `=` or as the next argument.
    Value,
}

use Kind::{Boolean, Value};

/// Every flag of consul-template v0.20.1, plus `-parse-only` (a later release's), with what each
/// takes. Which of them terad follows, warns about or refuses is decided where they are layered.
const FLAGS: &[(&str, Kind)] = &[
    ("config", Value),
    ("consul-addr", Value),
    ("consul-auth", Value),
    ("consul-retry", Boolean),
    ("consul-retry-attempts", Value),
    ("consul-retry-backoff", Value),
    ("consul-retry-max-backoff", Value),
    ("consul-ssl", Boolean),
    ("consul-ssl-ca-cert", Value),
    ("consul-ssl-ca-path", Value),
    ("consul-ssl-cert", Value),
    ("consul-ssl-key", Value),
    ("consul-ssl-server-name", Value),
    ("consul-ssl-verify", Boolean),
    ("consul-token", Value),
    ("consul-transport-dial-keep-alive", Value),
    ("consul-transport-dial-timeout", Value),
    ("consul-transport-disable-keep-alives", Boolean),
    ("consul-transport-max-idle-conns-per-host", Value),
    ("consul-transport-tls-handshake-timeout", Value),
    ("dedup", Boolean),
    ("dry", Boolean),
    ("exec", Value),
    ("exec-kill-signal", Value),
    ("exec-kill-timeout", Value),
    ("exec-reload-signal", Value),
    ("exec-splay", Value),
    ("kill-signal", Value),
    ("log-level", Value),
    ("max-stale", Value),
    ("once", Boolean),
    ("parse-only", Boolean),
    ("pid-file", Value),
    ("reload-signal", Value),
    ("retry", Value),
    ("syslog", Boolean),
    ("syslog-facility", Value),
    ("template", Value),
    ("vault-addr", Value),
    ("vault-agent-token-file", Value),
    ("vault-grace", Value),
    ("vault-renew-token", Boolean),
    ("vault-retry", Boolean),
    ("vault-retry-attempts", Value),
    ("vault-retry-backoff", Value),
    ("vault-retry-max-backoff", Value),
    ("vault-ssl", Boolean),
    ("vault-ssl-ca-cert", Value),
    ("vault-ssl-ca-path", Value),
    ("vault-ssl-cert", Value),
    ("vault-ssl-key", Value),
    ("vault-ssl-server-name", Value),
    ("vault-ssl-verify", Boolean),
    ("vault-token", Value),
    ("vault-transport-dial-keep-alive", Value),
    ("vault-transport-dial-timeout", Value),
    ("vault-transport-disable-keep-alives", Boolean),
    ("vault-transport-max-idle-conns-per-host", Value),
    ("vault-transport-tls-handshake-timeout", Value),
    ("vault-unwrap-token", Boolean),
    ("wait", Value),
    ("v", Boolean),
    ("version", Boolean),
    ("h", Boolean),
    ("help", Boolean),
];

/// One flag as given: its name without dashes and its value (`"true"` or `"false"` for a
/// boolean flag, whichever of Go's spellings was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenFlag {
    pub name: String,
    pub value: String,
}

/// consul-template's flags, in the order given (later ones win, `-template` and `-config` add
/// up, as in consul-template).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsulTemplateArgs {
    pub flags: Vec<GivenFlag>,
}

impl ConsulTemplateArgs {
    /// Whether the boolean flag `name` is set (its last value).
    pub fn is_set(&self, name: &str) -> bool {
        self.last(name).is_some_and(|value| value == "true")
    }

    /// The last value of the flag `name`.
    pub fn last(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|flag| flag.name == name)
            .map(|flag| flag.value.as_str())
    }

    /// `-v`, `-version`.
    pub fn wants_version(&self) -> bool {
        self.is_set("v") || self.is_set("version")
    }

    /// `-h`, `-help`.
    pub fn wants_help(&self) -> bool {
        self.is_set("h") || self.is_set("help")
    }
}

/// Go's `strconv.ParseBool`.
fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Reads consul-template's flags from `args` (without the program name).
pub fn parse(args: &[OsString]) -> Result<ConsulTemplateArgs, FlagError> {
    let mut flags = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "-" || !text.starts_with('-') {
            // Go stops at the first argument that is not a flag; consul-template refuses it.
            let extra = std::iter::once(arg)
                .chain(rest)
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect();
            return Err(FlagError::ExtraArguments(extra));
        }
        let body = text.strip_prefix("--").unwrap_or(&text[1..]);
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (body, None),
        };
        let written = format!("-{name}");
        let Some(kind) = FLAGS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, kind)| *kind)
        else {
            return Err(FlagError::UnknownConsulTemplate {
                flag: written,
                suggestion: suggest(name),
            });
        };
        let value = match (kind, value) {
            (Boolean, None) => "true".to_owned(),
            (Boolean, Some(value)) => match go_bool(&value) {
                Some(set) => set.to_string(),
                None => {
                    return Err(FlagError::InvalidBoolean {
                        flag: written,
                        value,
                    });
                }
            },
            (Value, Some(value)) => value,
            (Value, None) => match rest.next() {
                Some(value) => value.to_string_lossy().into_owned(),
                None => return Err(FlagError::MissingValue { flag: written }),
            },
        };
        flags.push(GivenFlag {
            name: name.to_owned(),
            value,
        });
    }
    if let Some(extra) = rest.next() {
        let extra = std::iter::once(extra)
            .chain(rest)
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        return Err(FlagError::ExtraArguments(extra));
    }
    Ok(ConsulTemplateArgs { flags })
}

/// The flag meant by a misspelt one: the only one it begins, or the nearest within two edits.
fn suggest(name: &str) -> Option<String> {
    let mut starting = FLAGS.iter().filter(|(known, _)| known.starts_with(name));
    if let (Some((only, _)), None) = (starting.next(), starting.next()) {
        return Some((*only).to_owned());
    }
    FLAGS
        .iter()
        .map(|(known, _)| (edit_distance(name, known), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known.to_owned())
}

/// What `consul-template -h` prints: the flags terad follows, and where the rest are described.
pub const USAGE: &str = "\
Usage: consul-template [options]

  terad, run as consul-template: renders consul-template's templates from Consul, with its
  flags and its HCL configuration. See \"Coming from consul-template\" in terad's book for what
  each flag does here, and what differs.

Options:

  -config=<path>          an HCL (or JSON) configuration file or directory; repeatable
  -template=<in:out[:command]>
                          a template to render; repeatable
  -once                   render every template once and exit
  -dry                    print each rendered template to standard output; write nothing
  -parse-only             load the configuration and parse the templates, then exit
  -wait=<min[:max]>       quiescence before a render
  -consul-addr=<address>  Consul's HTTP address (also CONSUL_HTTP_ADDR)
  -consul-token=<token>   Consul's ACL token (also CONSUL_HTTP_TOKEN)
  -consul-auth=<user[:password]>
  -consul-ssl, -consul-ssl-verify, -consul-ssl-ca-cert, -consul-ssl-cert, -consul-ssl-key
  -max-stale=<duration>   allow stale reads (the default, 2s, allows them)
  -exec=<command>         supervise this command
  -exec-kill-signal, -exec-kill-timeout, -exec-reload-signal, -exec-splay
  -kill-signal, -reload-signal, -pid-file=<path>
  -log-level=<level>      trace, debug, info, warn or err
  -v, -version            print the version
";

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Vec<(String, String)>, FlagError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args).map(|parsed| {
            parsed
                .flags
                .into_iter()
                .map(|flag| (flag.name, flag.value))
                .collect()
        })
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn flags_are_read_in_every_go_spelling() {
        assert_eq!(
            parsed(&[
                "-once",
                "--dry=false",
                "-consul-addr",
                "127.0.0.1:8500",
                "--template=in:out",
                "-template",
                "-odd:out",
                "-log-level=err",
                "-consul-ssl=1",
            ]),
            Ok(pairs(&[
                ("once", "true"),
                ("dry", "false"),
                ("consul-addr", "127.0.0.1:8500"),
                ("template", "in:out"),
                ("template", "-odd:out"),
                ("log-level", "err"),
                ("consul-ssl", "true"),
            ]))
        );
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            parsed(&["-onse"]),
            Err(FlagError::UnknownConsulTemplate {
                flag: "-onse".into(),
                suggestion: Some("once".into())
            })
        );
        assert_eq!(
            parsed(&["-template"]),
            Err(FlagError::MissingValue {
                flag: "-template".into()
            })
        );
        assert_eq!(
            parsed(&["-once=yes"]),
            Err(FlagError::InvalidBoolean {
                flag: "-once".into(),
                value: "yes".into()
            })
        );
        assert_eq!(
            parsed(&["-once", "true"]),
            Err(FlagError::ExtraArguments(vec!["true".into()]))
        );
        assert_eq!(
            parsed(&["-once", "--", "x"]),
            Err(FlagError::ExtraArguments(vec!["x".into()]))
        );
        assert_eq!(
            FlagError::UnknownConsulTemplate {
                flag: "-onse".into(),
                suggestion: Some("once".into())
            }
            .to_string(),
            "unknown flag \"-onse\"; did you mean -once? (terad takes consul-template's flags \
             under the name consul-template; see -h)"
        );
    }

    #[test]
    fn the_last_value_wins_and_version_and_help_are_seen() {
        let args: Vec<OsString> = ["-once", "-once=false", "-v"]
            .iter()
            .map(OsString::from)
            .collect();
        let parsed = parse(&args).unwrap();
        assert!(!parsed.is_set("once"));
        assert!(parsed.wants_version());
        assert!(!parsed.wants_help());
    }
}
