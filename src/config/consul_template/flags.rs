//! consul-template's flags ([`ConsulTemplateArgs`], as given) into a [`Given`], and the
//! `-config` paths to read.

use std::path::PathBuf;

use super::{At, CommandValue, Given, Place, TemplateSpec};
use crate::cli::ct_args::ConsulTemplateArgs;
use crate::diagnostic::ConfigError;

/// Why terad does nothing with a flag it accepts; each becomes a warning naming the flag.
const RETRY: &str = "terad retries Consul with its own backoff (for as long as it runs when \
                     watching, up to --backend-timeout with -once); not followed";
const TRANSPORT: &str = "terad's HTTP client keeps its own connection settings; not followed";
const DEDUP: &str = "not needed: terad makes each Consul query once for all its templates, \
                     however many share it; ignored";
const SYSLOG: &str = "terad logs to standard error (the journal, under systemd); not followed";
const VAULT: &str = "terad does not read Vault: remove the Vault settings, and render secrets \
                     with a tool that reads Vault";

/// The flags as consul-template's settings, and the `-config` paths in order.
pub(in crate::config) fn command_line(
    args: &ConsulTemplateArgs,
    errors: &mut Vec<ConfigError>,
) -> (Given, Vec<PathBuf>) {
    let mut given = Given::default();
    let mut configs = Vec::new();
    for flag in &args.flags {
        let place = Place::Flag(format!("-{}", flag.name));
        let text = || {
            Some(At {
                value: flag.value.clone(),
                place: place.clone(),
            })
        };
        let yes = flag.value == "true";
        let note = |why| At {
            value: why,
            place: place.clone(),
        };
        match flag.name.as_str() {
            "config" => configs.push(PathBuf::from(&flag.value)),
            "consul-addr" => given.consul_address = text(),
            "consul-token" => given.consul_token = text(),
            "consul-auth" => {
                let (user, password) = match flag.value.split_once(':') {
                    Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
                    None => (flag.value.clone(), None),
                };
                if user.is_empty() {
                    errors.push(
                        place.error("the value is empty; write -consul-auth USER[:PASSWORD]"),
                    );
                } else {
                    given.consul_auth = Some(At {
                        value: (true, user, password),
                        place: place.clone(),
                    });
                }
            }
            "consul-ssl" => given.ssl_enabled = Some(At { value: yes, place }),
            "consul-ssl-verify" => given.ssl_verify = Some(At { value: yes, place }),
            "consul-ssl-cert" => given.ssl_cert = text(),
            "consul-ssl-key" => given.ssl_key = text(),
            "consul-ssl-ca-cert" => given.ssl_ca_cert = text(),
            "consul-ssl-ca-path" => given.ssl_ca_path = text(),
            "consul-ssl-server-name" => given.ssl_server_name = text(),
            "consul-retry"
            | "consul-retry-attempts"
            | "consul-retry-backoff"
            | "consul-retry-max-backoff"
            | "retry" => given.not_followed.push(note(RETRY)),
            name if name.starts_with("consul-transport-") => {
                given.not_followed.push(note(TRANSPORT));
            }
            "dedup" if yes => given.not_followed.push(note(DEDUP)),
            "syslog" if yes => given.not_followed.push(note(SYSLOG)),
            "syslog-facility" => given.not_followed.push(note(SYSLOG)),
            "dedup" | "syslog" => {}
            name if name.starts_with("vault-") => given.refused.push(note(VAULT)),
            "exec" => {
                given.exec_command = Some(At {
                    value: CommandValue::Text(flag.value.clone()),
                    place,
                });
            }
            "exec-kill-signal" => given.exec_kill_signal = text(),
            "exec-kill-timeout" => given.exec_kill_timeout = text(),
            "exec-reload-signal" => given.exec_reload_signal = text(),
            "exec-splay" => given.exec_splay = text(),
            "kill-signal" => given.kill_signal = text(),
            "reload-signal" => given.reload_signal = text(),
            "log-level" => given.log_level = text(),
            "max-stale" => given.max_stale = text(),
            "pid-file" => given.pid_file = text(),
            "wait" => given.wait = text(),
            "once" => given.once = Some(yes),
            "dry" => given.dry = Some(yes),
            "parse-only" => given.parse_only = Some(yes),
            "template" => match template(&flag.value, &place) {
                Ok(spec) => given.templates.push(spec),
                Err(error) => errors.push(error),
            },
            // -v, -h: main has answered them already.
            _ => {}
        }
    }
    (given, configs)
}

/// `-template "in:out[:command]"`, split as consul-template splits it: each part is matched by
/// `([a-zA-Z]:)?([^:]+)` (a Windows drive letter stays with its path), parts beyond the second
/// are the command, joined again with `:`.
fn template(spec: &str, place: &Place) -> Result<TemplateSpec, ConfigError> {
    let usage = "write -template \"IN:OUT[:COMMAND]\"";
    if spec.trim().is_empty() {
        return Err(place.error(format!("the value is empty; {usage}")));
    }
    let parts = template_parts(spec);
    let at = |value: &str| {
        Some(At {
            value: value.to_owned(),
            place: place.clone(),
        })
    };
    let (source, destination, command) = match parts.as_slice() {
        [] => return Err(place.error(format!("{spec:?} names no template; {usage}"))),
        [source] => {
            return Err(place.error(format!(
                "{spec:?} names the template {source:?} but no file to write; {usage}"
            )));
        }
        [source, destination] => (*source, *destination, None),
        [source, destination, rest @ ..] => (*source, *destination, Some(rest.join(":"))),
    };
    Ok(TemplateSpec {
        place: Some(place.clone()),
        source: at(source),
        destination: at(destination),
        command: command.map(|command| At {
            value: CommandValue::Text(command),
            place: place.clone(),
        }),
        ..TemplateSpec::default()
    })
}

/// The matches of `([a-zA-Z]:)?([^:]+)` in `spec`, left to right.
fn template_parts(spec: &str) -> Vec<&str> {
    let bytes = spec.as_bytes();
    let mut parts = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b':' {
            at += 1;
            continue;
        }
        let drive = bytes[at].is_ascii_alphabetic()
            && bytes.get(at + 1) == Some(&b':')
            && bytes.get(at + 2).is_some_and(|b| *b != b':');
        let from = if drive { at + 2 } else { at };
        let end = spec[from..].find(':').map_or(spec.len(), |i| from + i);
        parts.push(&spec[at..end]);
        at = end;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_specs_split_as_consul_template_splits_them() {
        assert_eq!(template_parts("in.tmpl:out"), ["in.tmpl", "out"]);
        assert_eq!(
            template_parts("/a/in.tmpl:/b/out:systemctl reload x"),
            ["/a/in.tmpl", "/b/out", "systemctl reload x"]
        );
        assert_eq!(
            template_parts("in:out:sh -c 'a:b'"),
            ["in", "out", "sh -c 'a", "b'"]
        );
        // A drive letter, and a one-letter name that looks like one.
        assert_eq!(template_parts("C:\\in:out"), ["C:\\in", "out"]);
        assert_eq!(template_parts("a:b:c"), ["a:b", "c"]);
        assert_eq!(template_parts("in::out"), ["in", "out"]);

        let place = Place::Flag("-template".into());
        let spec = template("in:out:sh -c 'a:b'", &place).unwrap();
        assert_eq!(
            spec.command.map(|c| c.value),
            Some(CommandValue::Text("sh -c 'a:b'".into()))
        );
        assert_eq!(
            template("in.tmpl", &place).unwrap_err().to_string(),
            "\"-template\": \"in.tmpl\" names the template \"in.tmpl\" but no file to write; \
             write -template \"IN:OUT[:COMMAND]\""
        );
        assert_eq!(
            template(" ", &place).unwrap_err().to_string(),
            "\"-template\": the value is empty; write -template \"IN:OUT[:COMMAND]\""
        );
    }
}
