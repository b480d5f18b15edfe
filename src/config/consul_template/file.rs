//! consul-template's configuration files (`-config`), as serde reads them from the tree
//! [`super::hcl`] makes: every key consul-template v0.20.1 knows (plus a later release's `user`,
//! `group`, `uid`, `gid` and list `command`), unknown keys refused with the valid ones listed,
//! then into a [`Given`] whose every value knows its line.
//!
//! A directory is read file by file, recursively, in name order, and the files merge in order,
//! later over earlier, as consul-template's `FromPath` walks and merges them.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::hcl::{self, Node, Reader, Value};
use super::{At, CommandValue, Given, Perms, Place, TemplateSpec};
use crate::diagnostic::{ConfigError, line_and_column};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    consul: Option<RawConsulField>,
    deduplicate: Option<RawDedup>,
    exec: Option<RawExec>,
    kill_signal: Option<String>,
    log_level: Option<String>,
    max_stale: Option<String>,
    pid_file: Option<String>,
    reload_signal: Option<String>,
    syslog: Option<RawSyslog>,
    template: Option<Vec<RawTemplate>>,
    vault: Option<IgnoredAny>,
    wait: Option<RawWait>,
}

/// `consul { … }`, or the old `consul = "address"`.
#[derive(Debug)]
enum RawConsulField {
    Address(String),
    Block(Box<RawConsul>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsul {
    address: Option<String>,
    auth: Option<RawAuth>,
    retry: Option<RawRetry>,
    ssl: Option<RawSsl>,
    token: Option<String>,
    transport: Option<RawTransport>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    enabled: Option<bool>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[allow(dead_code)]
    enabled: Option<bool>,
    #[allow(dead_code)]
    attempts: Option<i64>,
    #[allow(dead_code)]
    backoff: Option<String>,
    #[allow(dead_code)]
    max_backoff: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsl {
    enabled: Option<bool>,
    verify: Option<bool>,
    cert: Option<String>,
    key: Option<String>,
    ca_cert: Option<String>,
    ca_path: Option<String>,
    server_name: Option<String>,
}

/// Read only to be refused when misspelt; terad keeps its own connection settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawTransport {
    dial_keep_alive: Option<String>,
    dial_timeout: Option<String>,
    disable_keep_alives: Option<bool>,
    idle_conn_timeout: Option<String>,
    max_idle_conns: Option<i64>,
    max_idle_conns_per_host: Option<i64>,
    tls_handshake_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawDedup {
    enabled: Option<bool>,
    max_stale: Option<String>,
    prefix: Option<String>,
    ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawSyslog {
    enabled: Option<bool>,
    facility: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExec {
    command: Option<RawCommand>,
    enabled: Option<bool>,
    env: Option<IgnoredAny>,
    kill_signal: Option<String>,
    kill_timeout: Option<String>,
    reload_signal: Option<String>,
    splay: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    backup: Option<bool>,
    command: Option<RawCommand>,
    command_timeout: Option<String>,
    contents: Option<String>,
    create_dest_dirs: Option<bool>,
    destination: Option<String>,
    error_on_missing_key: Option<bool>,
    exec: Option<RawExec>,
    perms: Option<RawPerms>,
    source: Option<String>,
    wait: Option<RawWait>,
    left_delimiter: Option<String>,
    right_delimiter: Option<String>,
    user: Option<String>,
    group: Option<String>,
    uid: Option<i64>,
    gid: Option<i64>,
}

/// `wait = "5s:10s"`, or `wait { min = "5s" max = "10s" }`.
#[derive(Debug)]
enum RawWait {
    Text(String),
    Block(RawWaitBlock),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaitBlock {
    min: Option<String>,
    max: Option<String>,
    /// consul-template's field is named `bool` in its decoder.
    #[serde(rename = "bool", alias = "enabled")]
    enabled: Option<bool>,
}

#[derive(Debug)]
enum RawCommand {
    Text(String),
    Words(Vec<String>),
}

#[derive(Debug)]
enum RawPerms {
    Text(String),
    Number(i64),
}

/// Reads `consul`, `wait`, `command` and `perms`, which take a string or something else.
macro_rules! either {
    ($ty:ident, $expecting:literal, $($method:ident)*) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Either;
                impl<'de> Visitor<'de> for Either {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    $(either!(@ $ty $method);)*
                }
                deserializer.deserialize_any(Either)
            }
        }
    };
    (@ RawConsulField str) => {
        fn visit_str<E: de::Error>(self, text: &str) -> Result<RawConsulField, E> {
            Ok(RawConsulField::Address(text.to_owned()))
        }
    };
    (@ RawConsulField map) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawConsulField, A::Error> {
            RawConsul::deserialize(MapAccessDeserializer::new(map))
                .map(|consul| RawConsulField::Block(Box::new(consul)))
        }
    };
    (@ RawWait str) => {
        fn visit_str<E: de::Error>(self, text: &str) -> Result<RawWait, E> {
            Ok(RawWait::Text(text.to_owned()))
        }
    };
    (@ RawWait map) => {
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawWait, A::Error> {
            RawWaitBlock::deserialize(MapAccessDeserializer::new(map)).map(RawWait::Block)
        }
    };
    (@ RawCommand str) => {
        fn visit_str<E: de::Error>(self, text: &str) -> Result<RawCommand, E> {
            Ok(RawCommand::Text(text.to_owned()))
        }
    };
    (@ RawCommand seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawCommand, A::Error> {
            Vec::<String>::deserialize(SeqAccessDeserializer::new(seq)).map(RawCommand::Words)
        }
    };
    (@ RawPerms str) => {
        fn visit_str<E: de::Error>(self, text: &str) -> Result<RawPerms, E> {
            Ok(RawPerms::Text(text.to_owned()))
        }
    };
    (@ RawPerms i64) => {
        fn visit_i64<E: de::Error>(self, number: i64) -> Result<RawPerms, E> {
            Ok(RawPerms::Number(number))
        }
    };
}

either!(RawConsulField, "an address or a consul block", str map);
either!(RawWait, "\"MIN[:MAX]\" or a wait block with min and max", str map);
either!(RawCommand, "a command as a string or a list of words", str seq);
either!(RawPerms, "file permissions such as \"0644\" or 0644", str i64);

impl From<RawCommand> for CommandValue {
    fn from(raw: RawCommand) -> CommandValue {
        match raw {
            RawCommand::Text(text) => CommandValue::Text(text),
            RawCommand::Words(words) => CommandValue::Words(words),
        }
    }
}

/// Reads every file of `paths` (a directory's files in name order) and merges them in order.
pub(in crate::config) fn read_files(paths: &[PathBuf], errors: &mut Vec<ConfigError>) -> Given {
    let mut given = Given::default();
    for path in paths {
        let files = match files_of(path) {
            Ok(files) => files,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        for file in files {
            match read_file(&file) {
                Ok(read) => given = read.over(given),
                Err(error) => errors.push(error),
            }
        }
    }
    given
}

/// `path` itself, or every file below it in name order.
fn files_of(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let metadata = std::fs::metadata(path).map_err(|error| {
        ConfigError::option(
            "-config",
            format!("cannot read {:?}: {error}", path.display().to_string()),
        )
    })?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|error| ConfigError::in_file(path, format!("cannot read: {error}")))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    entries.sort();
    for entry in entries {
        files.extend(files_of(&entry)?);
    }
    Ok(files)
}

/// One file into a [`Given`].
fn read_file(path: &Path) -> Result<Given, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::in_file(path, format!("cannot read: {error}")))?;
    let to_config_error = |error: hcl::ReadError| ConfigError {
        file: Some(path.to_owned()),
        position: error.position.or_else(|| {
            error
                .span
                .as_ref()
                .map(|span| line_and_column(&text, span.start))
        }),
        key: error.key,
        message: error.message,
    };
    let tree = hcl::parse(&text).map_err(to_config_error)?;
    let raw = RawConfig::deserialize(Reader {
        node: &tree,
        path: String::new(),
    })
    .map_err(to_config_error)?;
    Ok(Places {
        file: path,
        text: &text,
        tree: &tree,
    }
    .given(raw))
}

/// Positions of the file's values, by key path, for the messages about them.
struct Places<'a> {
    file: &'a Path,
    text: &'a str,
    tree: &'a Node,
}

impl Places<'_> {
    /// Where the value at `path` (`["consul", "ssl", "verify"]`, an index for a template) is.
    fn of(&self, path: &[&str]) -> Place {
        let mut node = self.tree;
        for part in path {
            let next = match &node.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(key, _, _)| key == part)
                    .map(|(_, _, value)| value),
                Value::List(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(found) => node = found,
                None => break,
            }
        }
        let key = path
            .iter()
            .filter(|part| part.parse::<usize>().is_err())
            .copied()
            .collect::<Vec<_>>()
            .join(".");
        self.place(node.span.clone(), key)
    }

    fn place(&self, span: Range<usize>, key: String) -> Place {
        Place::Key {
            file: self.file.to_owned(),
            position: line_and_column(self.text, span.start),
            key,
        }
    }

    fn at<T>(&self, value: Option<T>, path: &[&str]) -> Option<At<T>> {
        value.map(|value| At {
            value,
            place: self.of(path),
        })
    }

    fn given(&self, raw: RawConfig) -> Given {
        let mut given = Given::default();
        match raw.consul {
            Some(RawConsulField::Address(address)) => {
                given.consul_address = self.at(Some(address), &["consul"]);
            }
            Some(RawConsulField::Block(consul)) => self.consul(*consul, &mut given),
            None => {}
        }
        if let Some(dedup) = raw.deduplicate
            && dedup.enabled != Some(false)
        {
            given.not_followed.push(At {
                value: "not needed: terad makes each Consul query once for all its templates, \
                        however many share it; ignored",
                place: self.of(&["deduplicate"]),
            });
        }
        if let Some(syslog) = raw.syslog
            && syslog.enabled == Some(true)
        {
            given.not_followed.push(At {
                value: "terad logs to standard error (the journal, under systemd); not followed",
                place: self.of(&["syslog"]),
            });
        }
        if raw.vault.is_some() {
            given.refused.push(At {
                value: "terad does not read Vault: remove the vault block, and render secrets \
                        with a tool that reads Vault",
                place: self.of(&["vault"]),
            });
        }
        if let Some(exec) = raw.exec {
            let disabled = exec.enabled == Some(false);
            if exec.env.is_some() {
                given.not_followed.push(At {
                    value: "the service gets terad's environment; not followed",
                    place: self.of(&["exec", "env"]),
                });
            }
            if exec.timeout.is_some() {
                given.not_followed.push(At {
                    value: "a supervised service runs until terad stops; not followed",
                    place: self.of(&["exec", "timeout"]),
                });
            }
            if !disabled {
                given.exec_command = self.at(exec.command.map(Into::into), &["exec", "command"]);
            }
            given.exec_kill_signal = self.at(exec.kill_signal, &["exec", "kill_signal"]);
            given.exec_kill_timeout = self.at(exec.kill_timeout, &["exec", "kill_timeout"]);
            given.exec_reload_signal = self.at(exec.reload_signal, &["exec", "reload_signal"]);
            given.exec_splay = self.at(exec.splay, &["exec", "splay"]);
        }
        given.kill_signal = self.at(raw.kill_signal, &["kill_signal"]);
        given.reload_signal = self.at(raw.reload_signal, &["reload_signal"]);
        given.log_level = self.at(raw.log_level, &["log_level"]);
        given.max_stale = self.at(raw.max_stale, &["max_stale"]);
        given.pid_file = self.at(raw.pid_file, &["pid_file"]);
        given.wait = self.wait(raw.wait, &["wait"]);
        for (index, template) in raw.template.into_iter().flatten().enumerate() {
            given
                .templates
                .push(self.template(template, &index.to_string()));
        }
        given
    }

    fn consul(&self, consul: RawConsul, given: &mut Given) {
        given.consul_address = self.at(consul.address, &["consul", "address"]);
        given.consul_token = self.at(consul.token, &["consul", "token"]);
        if let Some(auth) = consul.auth
            && auth.enabled != Some(false)
            && let Some(user) = auth.username
        {
            given.consul_auth = self.at(Some((true, user, auth.password)), &["consul", "auth"]);
        }
        if consul.retry.is_some() {
            given.not_followed.push(At {
                value: "terad retries Consul with its own backoff (for as long as it runs when \
                        watching, up to --backend-timeout with -once); not followed",
                place: self.of(&["consul", "retry"]),
            });
        }
        if consul.transport.is_some() {
            given.not_followed.push(At {
                value: "terad's HTTP client keeps its own connection settings; not followed",
                place: self.of(&["consul", "transport"]),
            });
        }
        if let Some(ssl) = consul.ssl {
            let key = |name| ["consul", "ssl", name];
            // As consul-template: any SSL setting enables SSL unless `enabled` says otherwise.
            let any = ssl.cert.is_some()
                || ssl.key.is_some()
                || ssl.ca_cert.is_some()
                || ssl.ca_path.is_some()
                || ssl.server_name.is_some()
                || ssl.verify.is_some();
            given.ssl_enabled = self.at(ssl.enabled.or(any.then_some(true)), &key("enabled"));
            given.ssl_verify = self.at(ssl.verify, &key("verify"));
            given.ssl_cert = self.at(ssl.cert, &key("cert"));
            given.ssl_key = self.at(ssl.key, &key("key"));
            given.ssl_ca_cert = self.at(ssl.ca_cert, &key("ca_cert"));
            given.ssl_ca_path = self.at(ssl.ca_path, &key("ca_path"));
            given.ssl_server_name = self.at(ssl.server_name, &key("server_name"));
        }
    }

    fn wait(&self, wait: Option<RawWait>, path: &[&str]) -> Option<At<String>> {
        let text = match wait? {
            RawWait::Text(text) => text,
            RawWait::Block(RawWaitBlock {
                enabled: Some(false),
                ..
            }) => return None,
            RawWait::Block(block) => match (block.min, block.max) {
                (Some(min), Some(max)) => format!("{min}:{max}"),
                (Some(min), None) => min,
                (None, Some(max)) => format!("0s:{max}"),
                (None, None) => return None,
            },
        };
        self.at(Some(text), path)
    }

    fn template(&self, raw: RawTemplate, index: &str) -> TemplateSpec {
        let key = |name| ["template", index, name];
        let mut spec = TemplateSpec {
            place: Some(self.of(&["template", index])),
            source: self.at(raw.source, &key("source")),
            contents: self.at(raw.contents, &key("contents")),
            destination: self.at(raw.destination, &key("destination")),
            command: self.at(raw.command.map(Into::into), &key("command")),
            command_timeout: self.at(raw.command_timeout, &key("command_timeout")),
            perms: self.at(
                raw.perms.map(|perms| match perms {
                    RawPerms::Text(text) => Perms::Text(text),
                    RawPerms::Number(number) => Perms::Number(number),
                }),
                &key("perms"),
            ),
            backup: self.at(raw.backup, &key("backup")),
            create_dest_dirs: raw.create_dest_dirs,
            left_delimiter: raw.left_delimiter,
            right_delimiter: raw.right_delimiter,
            wait: self.wait(raw.wait, &key("wait")),
            error_on_missing_key: self.at(raw.error_on_missing_key, &key("error_on_missing_key")),
            user: self.at(raw.user, &key("user")),
            group: self.at(raw.group, &key("group")),
            uid: self.at(raw.uid, &key("uid")),
            gid: self.at(raw.gid, &key("gid")),
            not_followed: Vec::new(),
        };
        if let Some(exec) = raw.exec {
            // A template's exec {} is its command (consul-template's newer spelling).
            if spec.command.is_none() && exec.enabled != Some(false) {
                spec.command = self.at(exec.command.map(Into::into), &key("exec"));
            }
            if spec.command_timeout.is_none() {
                spec.command_timeout = self.at(exec.timeout, &key("exec"));
            }
            for (set, name) in [
                (exec.env.is_some(), "env"),
                (exec.kill_signal.is_some(), "kill_signal"),
                (exec.kill_timeout.is_some(), "kill_timeout"),
                (exec.reload_signal.is_some(), "reload_signal"),
                (exec.splay.is_some(), "splay"),
            ] {
                if set {
                    spec.not_followed.push(At {
                        value: "a template's command runs to its end (command_timeout) in \
                                terad's environment; not followed",
                        place: self.of(&["template", index, "exec", name]),
                    });
                }
            }
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Given, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.hcl");
        std::fs::write(&path, text).unwrap();
        read_file(&path).map_err(|error| {
            error
                .to_string()
                .replace(&dir.path().display().to_string(), "DIR")
        })
    }

    #[test]
    fn a_whole_configuration_is_read_with_its_places() {
        let given = read(
            r#"
consul {
  address = "127.0.0.1:8500"
  token = "t"
  ssl {
    verify = false
  }
}
max_stale = "10s"
wait {
  min = "2s"
  max = "10s"
}
template {
  source = "in.tmpl"
  destination = "out"
  perms = 0600
  command = ["systemctl", "reload", "x"]
  left_delimiter = "[["
  right_delimiter = "]]"
}
template {
  contents = "{{ key \"a\" }}"
  destination = "out2"
  command = "touch x"
}
"#,
        )
        .unwrap();
        assert_eq!(
            given.consul_address.as_ref().unwrap().value,
            "127.0.0.1:8500"
        );
        assert_eq!(given.ssl_enabled.as_ref().map(|s| s.value), Some(true));
        assert_eq!(given.wait.as_ref().unwrap().value, "2s:10s");
        assert_eq!(given.templates.len(), 2);
        let first = &given.templates[0];
        assert_eq!(first.perms.as_ref().unwrap().value, Perms::Number(0o600));
        let place = first.perms.as_ref().unwrap().place.to_string();
        assert!(
            place.ends_with("config.hcl:17:11: \"template.perms\""),
            "{place}"
        );
        assert_eq!(first.left_delimiter.as_deref(), Some("[["));
        assert_eq!(
            given.templates[1].command.as_ref().unwrap().value,
            CommandValue::Text("touch x".into())
        );
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_place_and_the_valid_keys() {
        assert_eq!(
            read("consul {\n  adress = \"x\"\n}\n").unwrap_err(),
            "DIR/config.hcl:2:3: \"consul.adress\": unknown field `adress`, expected one of \
             `address`, `auth`, `retry`, `ssl`, `token`, `transport`"
        );
        assert_eq!(
            read("template {\n  source = \"a\"\n  destination = \"b\"\n  perm = \"0644\"\n}\n")
                .unwrap_err(),
            "DIR/config.hcl:4:3: \"template.perm\": unknown field `perm`, expected one of \
             `backup`, `command`, `command_timeout`, `contents`, `create_dest_dirs`, \
             `destination`, `error_on_missing_key`, `exec`, `perms`, `source`, `wait`, \
             `left_delimiter`, `right_delimiter`, `user`, `group`, `uid`, `gid`"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_at_its_place() {
        assert_eq!(
            read("log_level = 3\n").unwrap_err(),
            "DIR/config.hcl:1:13: \"log_level\": invalid type: integer `3`, expected a string"
        );
    }
}
