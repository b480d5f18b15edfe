//! confd's command line, translated into terad's before clap parses it.
//!
//! confd reads its flags with Go's `flag` package: a flag has one or two dashes (`-onetime`,
//! `--onetime`); a value follows as `-flag value` or `-flag=value`; a boolean flag is set by its
//! name alone and takes a value only after `=` (`-onetime=false`), never as the next word; and
//! the flags end at the first argument that is not one, or after `--`. terad's options are
//! clap's long options, which read the same with two dashes. [`translate`] rewrites every flag
//! clap knows, in either syntax, as `--name` or `--name=value` (so a value may start with a
//! dash, as Go allows), and answers a flag it does not know with a hint, where clap would read
//! `-onetim` as the short options `-o -n -e …` and say only "unexpected argument '-o'".
//!
//! Which flags exist and which take a value comes from the clap command itself, so terad's own
//! options work with one dash too and the two can never disagree. Everything after the first
//! argument that is not a flag (a subcommand such as `register`) is left to clap untouched.

use std::ffi::OsString;

/// A flag written confd's way that terad does not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error(
        "unknown flag {flag:?}{} (terad takes confd's flags and its own options, with one or two \
         dashes; see --help)",
        match suggestion {
            Some(name) => format!("; did you mean -{name}?"),
            None => String::new(),
        }
    )]
    Unknown {
        flag: String,
        /// The closest flag terad knows, without dashes.
        suggestion: Option<String>,
    },
    #[error(
        "{flag:?} is a boolean flag and takes no separate value (to confd, {value:?} would end the \
         flags and the rest would be ignored); write {flag}={value}"
    )]
    SeparateBooleanValue { flag: String, value: String },
    /// Under the name consul-template: a flag consul-template does not have.
    #[error(
        "unknown flag {flag:?}{} (terad takes consul-template's flags under the name \
         consul-template; see -h)",
        match suggestion {
            Some(name) => format!("; did you mean -{name}?"),
            None => String::new(),
        }
    )]
    UnknownConsulTemplate {
        flag: String,
        suggestion: Option<String>,
    },
    #[error("flag {flag:?} needs a value")]
    MissingValue { flag: String },
    #[error("invalid boolean value {value:?} for {flag:?}: use true or false")]
    InvalidBoolean { flag: String, value: String },
    /// Arguments after the flags, which consul-template refuses (`cli: extra args`).
    #[error(
        "extra arguments {0:?}: consul-template takes only flags (a boolean flag takes its value after =, as -once=true)"
    )]
    ExtraArguments(Vec<String>),
}

/// What a long option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `--help`, `--version`: nothing.
    Switch,
    /// terad's booleans: nothing, or a value after `=`.
    Boolean,
    /// A value, after `=` or as the next argument.
    Value,
}

/// The flags of `command` (its long options, plus `--help` and `--version`).
struct Flags {
    long: Vec<(String, Kind)>,
    short: Vec<char>,
}

impl Flags {
    fn of(command: &clap::Command) -> Flags {
        let mut command = command.clone();
        // Adds the generated --help and --version.
        command.build();
        let mut long = Vec::new();
        let mut short = Vec::new();
        for arg in command.get_arguments() {
            short.extend(arg.get_short());
            let Some(name) = arg.get_long() else {
                continue;
            };
            let kind = if !arg.get_action().takes_values() {
                Kind::Switch
            } else if arg.get_num_args().is_some_and(|n| n.min_values() == 0) {
                Kind::Boolean
            } else {
                Kind::Value
            };
            long.push((name.to_owned(), kind));
        }
        Flags { long, short }
    }

    fn kind(&self, name: &str) -> Option<Kind> {
        self.long
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, kind)| *kind)
    }

    /// The flag meant by a misspelt or abbreviated `name`: the only one it begins, or the
    /// nearest within two edits.
    fn suggest(&self, name: &str) -> Option<String> {
        let mut starting = self
            .long
            .iter()
            .filter(|(known, _)| known.starts_with(name));
        if let (Some((only, _)), None) = (starting.next(), starting.next()) {
            return Some(only.clone());
        }
        self.long
            .iter()
            .map(|(known, _)| (edit_distance(name, known), known))
            .filter(|(distance, _)| *distance <= 2)
            .min()
            .map(|(_, known)| known.clone())
    }
}

/// Go's `strconv.ParseBool` literals: after a boolean flag, the word that shows a value was
/// meant for it.
const GO_BOOLEANS: [&str; 12] = [
    "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
];

/// Rewrites `args` (the program name first) for clap: every flag of `command` given with one or
/// two dashes becomes `--name` or `--name=value`.
pub fn translate(args: Vec<OsString>, command: &clap::Command) -> Result<Vec<OsString>, FlagError> {
    let flags = Flags::of(command);
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    out.extend(args.next());
    while let Some(arg) = args.next() {
        // Not UTF-8: no flag of terad's; clap says what it makes of it.
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" || text == "-" || !text.starts_with('-') {
            // The flags end here (Go's rule); a subcommand and its arguments are clap's.
            out.push(arg);
            out.extend(args);
            break;
        }
        let body = text.strip_prefix("--").unwrap_or(&text[1..]);
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let single_dash = !text.starts_with("--");
        if single_dash
            && let Some(first) = name.chars().next()
            && name.len() == first.len_utf8()
            && flags.short.contains(&first)
        {
            // -h, -V: clap's short options, unchanged.
            out.push(arg);
            continue;
        }
        let Some(kind) = flags.kind(name) else {
            return Err(FlagError::Unknown {
                flag: text.split('=').next().unwrap_or(text).to_owned(),
                suggestion: flags.suggest(name),
            });
        };
        match (kind, value) {
            (Kind::Switch, Some(value)) if GO_BOOLEANS[6..].contains(&value) => {}
            (Kind::Switch, _) => out.push(format!("--{name}").into()),
            (Kind::Boolean, Some(value)) | (Kind::Value, Some(value)) => {
                out.push(format!("--{name}={value}").into());
            }
            (Kind::Boolean, None) => {
                if let Some(next) = args.as_slice().first().and_then(|next| next.to_str())
                    && GO_BOOLEANS.contains(&next)
                {
                    return Err(FlagError::SeparateBooleanValue {
                        flag: format!("-{name}"),
                        value: next.to_owned(),
                    });
                }
                out.push(format!("--{name}").into());
            }
            (Kind::Value, None) => match args.next() {
                Some(value) => {
                    let mut joined = OsString::from(format!("--{name}="));
                    joined.push(value);
                    out.push(joined);
                }
                // clap reports the missing value.
                None => out.push(format!("--{name}").into()),
            },
        }
    }
    Ok(out)
}

/// Levenshtein distance, for suggestions among a few dozen short names.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Flavour, command};

    fn translated(args: &[&str]) -> Result<Vec<String>, FlagError> {
        let mut all = vec!["terad".to_owned()];
        all.extend(args.iter().map(|arg| (*arg).to_owned()));
        translate(
            all.into_iter().map(OsString::from).collect(),
            &command(Flavour::Terad),
        )
        .map(|out| {
            out.into_iter()
                .skip(1)
                .map(|arg| arg.into_string().unwrap())
                .collect()
        })
    }

    /// Every flag in confd's `-help` (confd 0.16), with what it takes.
    const CONFD_FLAGS: &[(&str, Option<&str>)] = &[
        ("app-id", Some("a")),
        ("auth-token", Some("t")),
        ("auth-type", Some("app-id")),
        ("backend", Some("file")),
        ("basic-auth", None),
        ("client-ca-keys", Some("/ca.pem")),
        ("client-cert", Some("/cert.pem")),
        ("client-insecure", None),
        ("client-key", Some("/key.pem")),
        ("confdir", Some("/etc/confd")),
        ("config-file", Some("/etc/confd/confd.toml")),
        ("file", Some("keys.yaml")),
        ("filter", Some("*")),
        ("interval", Some("60")),
        ("keep-stage-file", None),
        ("log-level", Some("debug")),
        ("node", Some("http://127.0.0.1:2379")),
        ("noop", None),
        ("onetime", None),
        ("password", Some("p")),
        ("path", Some("/auth")),
        ("prefix", Some("/app")),
        ("role-id", Some("r")),
        ("scheme", Some("https")),
        ("secret-id", Some("s")),
        ("separator", Some(":")),
        ("srv-domain", Some("example.com")),
        ("srv-record", Some("_etcd._tcp.example.com")),
        ("sync-only", None),
        ("table", Some("t")),
        ("user-id", Some("u")),
        ("username", Some("u")),
        ("version", None),
        ("watch", None),
    ];

    #[test]
    fn every_confd_flag_is_understood_in_every_go_spelling() {
        for (name, value) in CONFD_FLAGS {
            let spellings: Vec<Vec<String>> = match value {
                Some(value) => vec![
                    vec![format!("-{name}"), (*value).to_owned()],
                    vec![format!("--{name}"), (*value).to_owned()],
                    vec![format!("-{name}={value}")],
                    vec![format!("--{name}={value}")],
                ],
                None => vec![vec![format!("-{name}")], vec![format!("--{name}")]],
            };
            let want = match value {
                Some(value) => format!("--{name}={value}"),
                None => format!("--{name}"),
            };
            for args in spellings {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                assert_eq!(translated(&args), Ok(vec![want.clone()]), "{args:?}");
            }
        }
    }

    #[test]
    fn booleans_take_a_value_only_after_an_equals_sign() {
        assert_eq!(
            translated(&["-onetime=true", "-noop=false", "--watch=1"]),
            Ok(vec![
                "--onetime=true".into(),
                "--noop=false".into(),
                "--watch=1".into()
            ])
        );
        assert_eq!(
            translated(&["-onetime", "true", "-backend", "file"]),
            Err(FlagError::SeparateBooleanValue {
                flag: "-onetime".into(),
                value: "true".into()
            })
        );
        assert_eq!(
            translated(&["-onetime", "true"]).unwrap_err().to_string(),
            "\"-onetime\" is a boolean flag and takes no separate value (to confd, \"true\" would \
             end the flags and the rest would be ignored); write -onetime=true"
        );
    }

    #[test]
    fn values_are_taken_whole_even_when_they_start_with_a_dash() {
        assert_eq!(
            translated(&[
                "-prefix",
                "-odd",
                "-node",
                "a:1",
                "-node=b:2",
                "-exec",
                "sh -c 'x'"
            ]),
            Ok(vec![
                "--prefix=-odd".into(),
                "--node=a:1".into(),
                "--node=b:2".into(),
                "--exec=sh -c 'x'".into()
            ])
        );
        assert_eq!(
            translated(&["-log-level="]),
            Ok(vec!["--log-level=".into()])
        );
    }

    #[test]
    fn terads_own_options_pass_unchanged_in_meaning() {
        assert_eq!(
            translated(&[
                "--onetime",
                "--backend",
                "file",
                "--file=a.yaml",
                "--log-format",
                "json",
                "-listen",
                "127.0.0.1:9100",
                "-h",
                "-V"
            ]),
            Ok(vec![
                "--onetime".into(),
                "--backend=file".into(),
                "--file=a.yaml".into(),
                "--log-format=json".into(),
                "--listen=127.0.0.1:9100".into(),
                "-h".into(),
                "-V".into(),
            ])
        );
        assert_eq!(translated(&["-help"]), Ok(vec!["--help".into()]));
        assert_eq!(translated(&["-version=false"]), Ok(vec![]));
    }

    #[test]
    fn the_flags_end_at_the_first_argument_that_is_not_one() {
        assert_eq!(
            translated(&["-backend", "etcd", "register", "--key", "/k", "-x"]),
            Ok(vec![
                "--backend=etcd".into(),
                "register".into(),
                "--key".into(),
                "/k".into(),
                "-x".into()
            ])
        );
        assert_eq!(
            translated(&["--", "-onetime"]),
            Ok(vec!["--".into(), "-onetime".into()])
        );
    }

    #[test]
    fn an_unknown_flag_gets_a_hint_instead_of_a_reading_as_short_options() {
        let error = translated(&["-onetim"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown flag \"-onetim\"; did you mean -onetime? (terad takes confd's flags and its \
             own options, with one or two dashes; see --help)"
        );
        assert_eq!(
            translated(&["-o"]),
            Err(FlagError::Unknown {
                flag: "-o".into(),
                suggestion: Some("onetime".into())
            })
        );
        assert_eq!(
            translated(&["--bakend=etcd"]),
            Err(FlagError::Unknown {
                flag: "--bakend".into(),
                suggestion: Some("backend".into())
            })
        );
        assert_eq!(
            translated(&["-zzzzzz"]),
            Err(FlagError::Unknown {
                flag: "-zzzzzz".into(),
                suggestion: None
            })
        );
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("onetime", "onetime"), 0);
        assert_eq!(edit_distance("onetim", "onetime"), 1);
        assert_eq!(edit_distance("bakcend", "backend"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
