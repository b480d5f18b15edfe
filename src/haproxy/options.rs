//! The options of `server` and `default-server` lines: how many words each takes, how a server's
//! own options override the `default-server` lines before it, and which ones HAProxy 2.6 takes on
//! a server added through the runtime API.
//!
//! `add server` ignores `default-server` (HAProxy 2.6's management guide, "add server"), so a
//! server added at runtime gets the folded options spelled out; otherwise it would run with
//! other settings than the same file gives it after the next restart. The table follows
//! HAProxy 2.6's configuration manual (section 5.2) and the answers of a real 2.6.12 to `add
//! server` with each option: a keyword missing here is unknown to the planner, and a backend
//! using it is reloaded rather than guessed at.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    Zero,
    One,
    /// `source <addr> [usesrc <addr>] [interface <name>]`.
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// A setting with a value; the server's own wins over `default-server`, the last one wins.
    Value,
    /// Turns `slot` on or off (`check`/`no-check`, `no-tls-tickets`/`tls-tickets`).
    Switch {
        slot: &'static str,
        on: bool,
    },
    Weight,
    /// `disabled` (true) or `enabled` (false).
    Disabled(bool),
    /// Combines with `default-server` in ways not modelled here: HAProxy ORs these into flag
    /// sets (`proxy-v2-options`, the `send-proxy-v2-ssl` family) or copies them field by field
    /// (`source`). Kept as written on the server's own line; from `default-server` they make an
    /// added server a reload.
    Opaque,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    /// `add server` takes it.
    Accepted,
    /// `add server` answers "'<kw>' option is not accepted for dynamic server".
    Refused,
    /// Refused too, but it only matters when HAProxy resolves a host name, and a server the
    /// planner adds always has an IP address: dropping it changes nothing.
    ResolutionOnly,
}

struct Keyword {
    name: &'static str,
    arity: Arity,
    effect: Effect,
    runtime: Runtime,
}

const fn kw(name: &'static str, arity: Arity, effect: Effect, runtime: Runtime) -> Keyword {
    Keyword {
        name,
        arity,
        effect,
        runtime,
    }
}

const fn value(name: &'static str, runtime: Runtime) -> Keyword {
    kw(name, Arity::One, Effect::Value, runtime)
}

const fn on(name: &'static str, slot: &'static str, runtime: Runtime) -> Keyword {
    kw(
        name,
        Arity::Zero,
        Effect::Switch { slot, on: true },
        runtime,
    )
}

/// Negations are never sent: folding resolves them, and 2.6 refuses several on `add server`.
const fn off(name: &'static str, slot: &'static str) -> Keyword {
    kw(
        name,
        Arity::Zero,
        Effect::Switch { slot, on: false },
        Runtime::Refused,
    )
}

use Runtime::{Accepted, Refused, ResolutionOnly};

/// Every server option of HAProxy 2.6.
const KEYWORDS: &[Keyword] = &[
    value("addr", Accepted),
    value("agent-addr", Accepted),
    on("agent-check", "agent-check", Accepted),
    value("agent-inter", Accepted),
    value("agent-port", Accepted),
    value("agent-send", Accepted),
    on("allow-0rtt", "allow-0rtt", Accepted),
    value("alpn", Accepted),
    on("backup", "backup", Accepted),
    value("ca-file", Accepted),
    on("check", "check", Accepted),
    value("check-alpn", Accepted),
    value("check-proto", Accepted),
    on("check-send-proxy", "check-send-proxy", Accepted),
    value("check-sni", Accepted),
    on("check-ssl", "check-ssl", Accepted),
    on("check-via-socks4", "check-via-socks4", Accepted),
    value("ciphers", Accepted),
    value("ciphersuites", Accepted),
    value("cookie", Refused),
    value("crl-file", Accepted),
    value("crt", Accepted),
    kw("disabled", Arity::Zero, Effect::Disabled(true), Accepted),
    value("downinter", Accepted),
    kw("enabled", Arity::Zero, Effect::Disabled(false), Accepted),
    value("error-limit", Accepted),
    value("fall", Accepted),
    value("fastinter", Accepted),
    on("force-sslv3", "force-sslv3", Accepted),
    on("force-tlsv10", "force-tlsv10", Accepted),
    on("force-tlsv11", "force-tlsv11", Accepted),
    on("force-tlsv12", "force-tlsv12", Accepted),
    on("force-tlsv13", "force-tlsv13", Accepted),
    value("id", Accepted),
    value("init-addr", ResolutionOnly),
    value("inter", Accepted),
    value("log-proto", Refused),
    value("max-reuse", Refused),
    value("maxconn", Accepted),
    value("maxqueue", Accepted),
    value("minconn", Accepted),
    value("namespace", Refused),
    off("no-agent-check", "agent-check"),
    off("no-backup", "backup"),
    off("no-check", "check"),
    off("no-check-ssl", "check-ssl"),
    off("no-send-proxy", "send-proxy"),
    off("no-send-proxy-v2", "send-proxy-v2"),
    kw("no-send-proxy-v2-ssl", Arity::Zero, Effect::Opaque, Refused),
    kw(
        "no-send-proxy-v2-ssl-cn",
        Arity::Zero,
        Effect::Opaque,
        Refused,
    ),
    off("no-ssl", "ssl"),
    on("no-ssl-reuse", "no-ssl-reuse", Accepted),
    on("no-sslv3", "no-sslv3", Accepted),
    off("no-tfo", "tfo"),
    on("no-tls-tickets", "no-tls-tickets", Accepted),
    on("no-tlsv10", "no-tlsv10", Accepted),
    on("no-tlsv11", "no-tlsv11", Accepted),
    on("no-tlsv12", "no-tlsv12", Accepted),
    on("no-tlsv13", "no-tlsv13", Accepted),
    on("non-stick", "non-stick", Refused),
    value("npn", Accepted),
    value("observe", Accepted),
    value("on-error", Accepted),
    value("on-marked-down", Accepted),
    value("on-marked-up", Accepted),
    value("pool-low-conn", Accepted),
    value("pool-max-conn", Accepted),
    value("pool-purge-delay", Accepted),
    value("port", Accepted),
    value("proto", Accepted),
    kw("proxy-v2-options", Arity::One, Effect::Opaque, Accepted),
    value("redir", Refused),
    value("resolve-net", ResolutionOnly),
    value("resolve-opts", ResolutionOnly),
    value("resolve-prefer", ResolutionOnly),
    value("resolvers", ResolutionOnly),
    value("rise", Accepted),
    on("send-proxy", "send-proxy", Accepted),
    on("send-proxy-v2", "send-proxy-v2", Accepted),
    kw("send-proxy-v2-ssl", Arity::Zero, Effect::Opaque, Accepted),
    kw(
        "send-proxy-v2-ssl-cn",
        Arity::Zero,
        Effect::Opaque,
        Accepted,
    ),
    value("slowstart", Accepted),
    value("sni", Accepted),
    value("socks4", Refused),
    kw("source", Arity::Source, Effect::Opaque, Accepted),
    on("ssl", "ssl", Accepted),
    value("ssl-max-ver", Accepted),
    value("ssl-min-ver", Accepted),
    off("ssl-reuse", "no-ssl-reuse"),
    off("stick", "non-stick"),
    value("tcp-ut", Refused),
    on("tfo", "tfo", Accepted),
    off("tls-tickets", "no-tls-tickets"),
    value("track", Accepted),
    value("verify", Accepted),
    value("verifyhost", Accepted),
    kw("weight", Arity::One, Effect::Weight, Accepted),
    value("ws", Accepted),
];

fn keyword(name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|keyword| keyword.name == name)
}

/// Why a line's options could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OptionError {
    Unknown(String),
    MissingValue(String),
    Weight(String),
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::Unknown(word) => {
                write!(
                    f,
                    "option {word:?} is not one terad knows haproxy 2.6 to have"
                )
            }
            OptionError::MissingValue(word) => write!(f, "option {word:?} has no value"),
            OptionError::Weight(value) => {
                write!(f, "weight {value:?} is not a number from 0 to 256")
            }
        }
    }
}

/// One option with its words, the keyword first.
struct Setting {
    keyword: &'static Keyword,
    words: Vec<String>,
}

fn split(words: &[String]) -> Result<Vec<Setting>, OptionError> {
    let mut settings = Vec::new();
    let mut rest = words;
    while let [first, tail @ ..] = rest {
        let keyword = keyword(first).ok_or_else(|| OptionError::Unknown(first.clone()))?;
        let mut taken = 1;
        match keyword.arity {
            Arity::Zero => {}
            Arity::One => {
                if tail.is_empty() {
                    return Err(OptionError::MissingValue(first.clone()));
                }
                taken = 2;
            }
            Arity::Source => {
                if tail.is_empty() {
                    return Err(OptionError::MissingValue(first.clone()));
                }
                taken = 2;
                while matches!(
                    rest.get(taken).map(String::as_str),
                    Some("usesrc" | "interface")
                ) {
                    if rest.len() < taken + 2 {
                        return Err(OptionError::MissingValue(rest[taken].clone()));
                    }
                    taken += 2;
                }
            }
        }
        settings.push(Setting {
            keyword,
            words: rest[..taken].to_vec(),
        });
        rest = &rest[taken..];
    }
    Ok(settings)
}

/// A server's settings with its `default-server` lines folded in, as HAProxy builds it.
#[derive(Debug, Clone)]
pub(crate) struct Folded {
    /// By slot, in the order first set: the words that set it, or `None` when switched off.
    settings: Vec<(&'static str, Option<Vec<String>>)>,
    /// [`Effect::Opaque`] options from `default-server` lines, and from the server's own line.
    opaque_defaults: Vec<Vec<String>>,
    opaque_own: Vec<Vec<String>>,
    pub weight: Option<u32>,
    pub disabled: bool,
}

impl Folded {
    /// Folds `defaults` (the option words of each `default-server` line that applies, in
    /// order) and the server's own option words.
    pub fn new(defaults: &[&[String]], own: &[String]) -> Result<Folded, OptionError> {
        let mut folded = Folded {
            settings: Vec::new(),
            opaque_defaults: Vec::new(),
            opaque_own: Vec::new(),
            weight: None,
            disabled: false,
        };
        for line in defaults {
            for setting in split(line)? {
                folded.set(setting, true)?;
            }
        }
        for setting in split(own)? {
            folded.set(setting, false)?;
        }
        Ok(folded)
    }

    fn set(&mut self, setting: Setting, from_defaults: bool) -> Result<(), OptionError> {
        let (slot, value) = match setting.keyword.effect {
            Effect::Value => (setting.keyword.name, Some(setting.words)),
            Effect::Switch { slot, on } => (slot, on.then_some(setting.words)),
            Effect::Weight => {
                let text = &setting.words[1];
                let weight = text
                    .parse::<u32>()
                    .ok()
                    .filter(|weight| *weight <= 256 && text.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| OptionError::Weight(text.clone()))?;
                self.weight = Some(weight);
                return Ok(());
            }
            Effect::Disabled(disabled) => {
                self.disabled = disabled;
                return Ok(());
            }
            Effect::Opaque => {
                if from_defaults {
                    self.opaque_defaults.push(setting.words);
                } else {
                    self.opaque_own.push(setting.words);
                }
                return Ok(());
            }
        };
        match self.settings.iter_mut().find(|(name, _)| *name == slot) {
            Some(existing) => existing.1 = value,
            None => self.settings.push((slot, value)),
        }
        Ok(())
    }

    /// Whether a switch (`check`, `agent-check`…) ends up on.
    pub fn is_on(&self, slot: &str) -> bool {
        self.settings
            .iter()
            .any(|(name, value)| *name == slot && value.is_some())
    }

    /// The same server apart from its weight and `disabled`: the two things (besides the
    /// address) the runtime API changes on a server that stays.
    pub fn same_apart_from_runtime(&self, other: &Folded) -> bool {
        fn sorted(folded: &Folded) -> Vec<(&'static str, Option<Vec<String>>)> {
            let mut settings: Vec<_> = folded
                .settings
                .iter()
                // A switch never turned on equals one switched off.
                .filter(|(_, value)| value.is_some())
                .cloned()
                .collect();
            settings.sort();
            settings
        }
        sorted(self) == sorted(other)
            && self.opaque_defaults == other.opaque_defaults
            && self.opaque_own == other.opaque_own
    }

    /// The options for `add server`, so that the added server runs as the file says; or why the
    /// runtime API cannot add it so.
    pub fn for_add_server(&self) -> Result<Vec<String>, NotAtRuntime> {
        if let Some(words) = self.opaque_defaults.first() {
            return Err(NotAtRuntime::FromDefaults(words[0].clone()));
        }
        let mut out = Vec::new();
        let settings = self
            .settings
            .iter()
            .filter_map(|(_, words)| words.as_ref())
            .chain(&self.opaque_own);
        for words in settings {
            let keyword = keyword(&words[0]).expect("folded from known keywords");
            match keyword.runtime {
                Runtime::Accepted => out.extend(words.iter().cloned()),
                Runtime::ResolutionOnly => {}
                Runtime::Refused => return Err(NotAtRuntime::Refused(words[0].clone())),
            }
        }
        if let Some(weight) = self.weight {
            out.extend(["weight".to_owned(), weight.to_string()]);
        }
        if self.disabled {
            out.push("disabled".to_owned());
        }
        Ok(out)
    }
}

/// Why a server in the file cannot be added through the runtime API as the file configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotAtRuntime {
    /// HAProxy 2.6 refuses the option on a server added at runtime.
    Refused(String),
    /// An [`Effect::Opaque`] option from `default-server`.
    FromDefaults(String),
}

impl fmt::Display for NotAtRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAtRuntime::Refused(keyword) => {
                write!(
                    f,
                    "haproxy 2.6 takes no {keyword:?} on a server added at runtime"
                )
            }
            NotAtRuntime::FromDefaults(keyword) => write!(
                f,
                "{keyword:?} from default-server combines with the server's own options in ways terad does not fold"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn fold(defaults: &[&str], own: &str) -> Folded {
        let defaults: Vec<Vec<String>> = defaults.iter().map(|line| words(line)).collect();
        let defaults: Vec<&[String]> = defaults.iter().map(Vec::as_slice).collect();
        Folded::new(&defaults, &words(own)).unwrap()
    }

    fn added(defaults: &[&str], own: &str) -> String {
        fold(defaults, own).for_add_server().unwrap().join(" ")
    }

    #[test]
    fn every_keyword_is_listed_once() {
        for (index, keyword) in KEYWORDS.iter().enumerate() {
            assert!(
                KEYWORDS[index + 1..].iter().all(|k| k.name != keyword.name),
                "{} twice",
                keyword.name
            );
        }
    }

    #[test]
    fn default_server_options_are_spelled_out_for_add_server() {
        assert_eq!(
            added(&["inter 2s", "check weight 5"], "maxconn 10"),
            "inter 2s check maxconn 10 weight 5"
        );
        // The server's own value wins, wherever it is written.
        assert_eq!(
            added(&["check inter 2s weight 5"], "inter 3s weight 2"),
            "check inter 3s weight 2"
        );
        assert_eq!(added(&[], ""), "");
    }

    #[test]
    fn negations_cancel_defaults_and_are_never_sent() {
        assert_eq!(added(&["check backup"], "no-check no-backup"), "");
        assert_eq!(
            added(&["no-tls-tickets ssl verify none"], "tls-tickets"),
            "ssl verify none"
        );
        assert_eq!(added(&[], "no-check"), "");
        assert!(!fold(&["check"], "no-check").is_on("check"));
        assert!(fold(&["check"], "").is_on("check"));
        assert!(fold(&["no-check"], "check").is_on("check"));
    }

    #[test]
    fn disabled_and_enabled_fold_like_switches() {
        assert!(fold(&["disabled"], "").disabled);
        assert!(!fold(&["disabled"], "enabled").disabled);
        assert!(fold(&[], "enabled disabled").disabled);
        assert_eq!(added(&["disabled"], "check"), "check disabled");
    }

    #[test]
    fn resolution_options_are_dropped_for_ip_addresses() {
        assert_eq!(
            added(
                &["init-addr last,libc,none resolvers dns"],
                "check resolve-prefer ipv4"
            ),
            "check"
        );
    }

    #[test]
    fn options_haproxy_refuses_on_add_server_are_named() {
        for (defaults, own, keyword) in [
            (&[][..], "cookie s1", "cookie"),
            (&["cookie x"][..], "", "cookie"),
            (&[][..], "redir http://a", "redir"),
            (&[][..], "non-stick", "non-stick"),
            (&[][..], "socks4 127.0.0.1:1080", "socks4"),
            (&[][..], "max-reuse 5", "max-reuse"),
            (&[][..], "tcp-ut 5s", "tcp-ut"),
        ] {
            assert_eq!(
                fold(defaults, own).for_add_server(),
                Err(NotAtRuntime::Refused(keyword.to_owned())),
                "{own}"
            );
        }
        // Switched off again by the server's own line: nothing to refuse.
        assert_eq!(added(&["non-stick"], "stick"), "");
    }

    #[test]
    fn opaque_options_pass_from_the_server_line_only() {
        assert_eq!(
            added(
                &[],
                "source 10.0.0.9 usesrc clientip interface eth0 proxy-v2-options ssl"
            ),
            "source 10.0.0.9 usesrc clientip interface eth0 proxy-v2-options ssl"
        );
        assert_eq!(
            fold(&["proxy-v2-options ssl"], "").for_add_server(),
            Err(NotAtRuntime::FromDefaults("proxy-v2-options".into()))
        );
    }

    #[test]
    fn unknown_and_incomplete_options_are_errors() {
        let check = |own: &str| Folded::new(&[], &words(own)).unwrap_err();
        assert_eq!(check("check shard 2"), OptionError::Unknown("shard".into()));
        assert_eq!(check("inter"), OptionError::MissingValue("inter".into()));
        assert_eq!(
            check("source 1.2.3.4 usesrc"),
            OptionError::MissingValue("usesrc".into())
        );
        assert_eq!(check("weight 300"), OptionError::Weight("300".into()));
        assert_eq!(check("weight +3"), OptionError::Weight("+3".into()));
        assert_eq!(check("weight 50%"), OptionError::Weight("50%".into()));
    }

    #[test]
    fn comparison_ignores_order_weight_and_disabled() {
        let a = fold(&["check"], "inter 2s weight 3");
        assert!(a.same_apart_from_runtime(&fold(&[], "inter 2s check disabled weight 9")));
        assert!(a.same_apart_from_runtime(&fold(&["check"], "no-backup inter 2s")));
        assert!(!a.same_apart_from_runtime(&fold(&["check"], "inter 3s")));
        assert!(!a.same_apart_from_runtime(&fold(&[], "inter 2s")));
        assert!(!a.same_apart_from_runtime(&fold(&["check"], "inter 2s backup")));
        assert_eq!(fold(&["weight 5"], "").weight, Some(5));
        assert_eq!(fold(&[], "").weight, None);
    }
}
