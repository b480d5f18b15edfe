//! A consul-template `command` (a template's, or `-exec`'s), run as consul-template v0.20.1 runs
//! it: split into words by go-shellwords (quotes and backslashes as a shell reads them, `$VAR`
//! and `${VAR}` replaced from the environment, the words cut at the first unquoted `;`, `&`,
//! `|`, `<` or `>`), then executed directly, without a shell. A command given as a list (a later
//! consul-template's `command = ["a", "b"]`) is its words already.
//!
//! terad runs commands with `/bin/sh -c`; such a command becomes `exec 'w1' 'w2' …`, each word
//! quoted, so the shell only starts the program with exactly those words and then is it: no
//! word is expanded, split or globbed again, and signals and timeouts reach the program.

/// A `command` as written: one string (split here), or a list of words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandValue {
    Text(String),
    Words(Vec<String>),
}

/// Why a command cannot be run as consul-template runs it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the command is empty")]
    Empty,
    #[error("{0:?} has an unclosed quote or a trailing backslash")]
    Unclosed(String),
    #[error(
        "{0:?} has a backtick: consul-template v0.20.1 ran it through $SHELL while reading the \
         command; terad does not: write sh -c '…' to run shell code"
    )]
    Backtick(String),
}

/// The words of a command, and what go-shellwords dropped from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub words: Vec<String>,
    /// The rest of the command from the first unquoted `;`, `&`, `|`, `<` or `>`, which
    /// consul-template v0.20.1 silently ignores.
    pub dropped: Option<String>,
}

impl CommandValue {
    /// The command as a `/bin/sh -c` line that runs its words without a shell, and what
    /// consul-template would have dropped from it.
    pub fn shell(&self) -> Result<String, CommandError> {
        let split = self.split(|name| std::env::var(name).ok())?;
        Ok(exec_line(&split.words))
    }

    /// The words, with `$VAR` read from `env`.
    pub fn split(&self, env: impl Fn(&str) -> Option<String>) -> Result<Split, CommandError> {
        match self {
            CommandValue::Words(words) if words.first().is_none_or(|w| w.trim().is_empty()) => {
                Err(CommandError::Empty)
            }
            CommandValue::Words(words) => Ok(Split {
                words: words.clone(),
                dropped: None,
            }),
            CommandValue::Text(text) => {
                let split = shell_words(text, env)?;
                if split.words.is_empty() {
                    return Err(CommandError::Empty);
                }
                Ok(split)
            }
        }
    }
}

/// `exec 'w1' 'w2'`: the words run as one program by `/bin/sh -c`, nothing re-read.
fn exec_line(words: &[String]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|word| {
            // Only NUL cannot be quoted, and an argument cannot hold it anyway.
            shlex::try_quote(word).map_or_else(|_| word.replace('\0', ""), |q| q.into_owned())
        })
        .collect();
    quoted.join(" ")
}

/// go-shellwords' `Parse` with `ParseEnv` set, as consul-template v0.20.1 calls it.
fn shell_words(line: &str, env: impl Fn(&str) -> Option<String>) -> Result<Split, CommandError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut escaped, mut double, mut single, mut got) = (false, false, false, false);
    let mut dropped = None;
    for (at, c) in line.char_indices() {
        if escaped {
            // go-shellwords does not count an escaped character as the start of a word.
            word.push(c);
            escaped = false;
            continue;
        }
        if c == '\\' {
            if single {
                word.push(c);
            } else {
                escaped = true;
            }
            continue;
        }
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            if single || double {
                word.push(c);
            } else if got {
                words.push(replace_env(&word, &env));
                word.clear();
                got = false;
            }
            continue;
        }
        match c {
            '`' if !single && !double => return Err(CommandError::Backtick(line.to_owned())),
            '"' if !single => {
                double = !double;
                continue;
            }
            '\'' if !double => {
                single = !single;
                continue;
            }
            ';' | '&' | '|' | '<' | '>' if !single && !double => {
                dropped = Some(line[at..].trim().to_owned());
                break;
            }
            _ => {}
        }
        got = true;
        word.push(c);
    }
    if escaped || single || double {
        return Err(CommandError::Unclosed(line.to_owned()));
    }
    if got {
        words.push(replace_env(&word, &env));
    }
    Ok(Split { words, dropped })
}

/// go-shellwords' `replaceEnv`: `$NAME` and `${NAME}` (letters, digits, `_`) from the
/// environment, unset as empty. It runs on each finished word, single-quoted parts included.
fn replace_env(word: &str, env: &impl Fn(&str) -> Option<String>) -> String {
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) if end > 0 && braced[..end].chars().all(name_char) => {
                    (&braced[..end], end + 2)
                }
                _ => ("", 0),
            }
        } else {
            let end = after.find(|c: char| !name_char(c)).unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
        } else {
            out.push_str(&env(name).unwrap_or_default());
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Result<Split, CommandError> {
        let env = |name: &str| (name == "HOME").then(|| "/root".to_owned());
        CommandValue::Text(line.to_owned()).split(env)
    }

    fn just(list: &[&str]) -> Split {
        Split {
            words: list.iter().map(|w| (*w).to_owned()).collect(),
            dropped: None,
        }
    }

    #[test]
    fn words_are_split_as_go_shellwords_splits_them() {
        assert_eq!(
            words("systemctl reload haproxy"),
            Ok(just(&["systemctl", "reload", "haproxy"]))
        );
        assert_eq!(
            words(r#"sh -c 'echo "a b" > /tmp/x'"#),
            Ok(just(&["sh", "-c", r#"echo "a b" > /tmp/x"#]))
        );
        assert_eq!(
            words(r#"touch "$HOME/a b" ${HOME}x \$HOME"#),
            Ok(just(&["touch", "/root/a b", "/rootx", "/root"]))
        );
        assert_eq!(words("echo '$HOME'"), Ok(just(&["echo", "/root"])));
    }

    #[test]
    fn the_rest_after_an_operator_is_dropped_and_said() {
        assert_eq!(
            words("systemctl reload haproxy || true"),
            Ok(Split {
                words: vec!["systemctl".into(), "reload".into(), "haproxy".into()],
                dropped: Some("|| true".into())
            })
        );
    }

    #[test]
    fn what_cannot_be_run_is_refused() {
        assert_eq!(words(""), Err(CommandError::Empty));
        assert_eq!(
            words("echo 'a"),
            Err(CommandError::Unclosed("echo 'a".into()))
        );
        assert!(matches!(
            words("echo `date`"),
            Err(CommandError::Backtick(_))
        ));
        assert_eq!(
            CommandValue::Words(vec![]).split(|_| None),
            Err(CommandError::Empty)
        );
    }

    #[test]
    fn the_shell_line_runs_the_words_exactly() {
        assert_eq!(
            exec_line(&["touch".into(), "a b".into(), "$x".into(), "it's".into()]),
            "touch 'a b' '$x' \"it's\""
        );
    }
}
