//! The only place terad runs commands (`check_cmd`, `reload_cmd`).
//!
//! A command runs under `/bin/sh -c` in its own process group, so a timeout kills the shell and
//! everything it started. Its stderr is captured and becomes part of the error, because "exit
//! status 1" alone tells an operator nothing. Key values never reach a command line: the only
//! substitutions are `{{.src}}` and `{{.dest}}`, and both are shell-quoted paths.

use std::fmt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How much of a command's output is kept for messages; the tail matters most.
const OUTPUT_LIMIT: usize = 16 * 1024;
/// How long to wait for a command's pipes to close after it exited. A reload command that
/// daemonizes a service can leave the pipes open in the daemon forever.
const PIPE_GRACE: Duration = Duration::from_millis(200);

/// A `check_cmd` or `reload_cmd` as written in a resource, with its `{{.src}}` and `{{.dest}}`
/// placeholders located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Src,
    Dest,
}

/// A `{{…}}` in a command that is not one of the two placeholders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    #[error("unterminated placeholder {0:?}")]
    Unterminated(String),
    #[error("unknown placeholder {0:?}: only {{{{.src}}}} and {{{{.dest}}}} are replaced")]
    Unknown(String),
}

impl CommandLine {
    /// Parses a command, accepting confd's placeholder spellings (`{{.src}}`, `{{ .dest }}`).
    /// Any other `{{…}}` is an error rather than a literal that would surprise at run time.
    pub fn parse(source: &str) -> Result<Self, PlaceholderError> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                return Err(PlaceholderError::Unterminated(rest[start..].to_owned()));
            };
            let placeholder = &rest[start..start + len + 2];
            let part = match placeholder[2..placeholder.len() - 2].trim() {
                ".src" => Part::Src,
                ".dest" => Part::Dest,
                _ => return Err(PlaceholderError::Unknown(placeholder.to_owned())),
            };
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            parts.push(part);
            rest = &rest[start + len + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(CommandLine {
            source: source.to_owned(),
            parts,
        })
    }

    /// The command as written, for messages.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The shell command with `{{.src}}` → the quoted stage file and `{{.dest}}` → the quoted
    /// destination.
    pub fn render(&self, src: &Path, dest: &Path) -> String {
        let mut command = String::with_capacity(self.source.len() + 64);
        for part in &self.parts {
            match part {
                Part::Text(text) => command.push_str(text),
                Part::Src => command.push_str(&quote(src)),
                Part::Dest => command.push_str(&quote(dest)),
            }
        }
        command
    }
}

impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::redact::urls_in(&self.source))
    }
}

fn quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    // Paths never contain NUL, the one thing shlex refuses to quote.
    shlex::try_quote(&text)
        .map(|quoted| quoted.into_owned())
        .unwrap_or_else(|_| text.into_owned())
}

/// What a successful command printed.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Why a command did not succeed. The command's own stderr is part of the message.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot start {:?}: {source}", crate::redact::urls_in(.command))]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{:?} failed with {status}{}", crate::redact::urls_in(.command), stderr_suffix(.stderr))]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("{:?} timed out after {}s; its process group was killed{}", crate::redact::urls_in(.command), .timeout.as_secs_f64(), stderr_suffix(.stderr))]
    TimedOut {
        command: String,
        timeout: Duration,
        stderr: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!(": {}", crate::redact::urls_in(trimmed))
    }
}

/// The soft limit of open descriptors terad started with, when it raised its own.
static INHERITED_OPEN_FILE_LIMIT: AtomicU64 = AtomicU64::new(0);

/// Raises terad's soft limit of open descriptors to the hard limit, so a flood of connections to
/// `--listen` or a burst of syncs is less likely to leave a sync without one. Commands and the
/// `--exec` service get the limit terad started with back ([`spawn_with_inherited_limits`]):
/// programs that use `select(2)` break above 1024.
pub fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        INHERITED_OPEN_FILE_LIMIT.store(soft, Ordering::Relaxed);
        tracing::debug!(from = soft, to = hard, "raised the open-file limit");
    }
}

/// Makes `command`'s process start with the descriptor limit terad inherited (see
/// [`raise_open_file_limit`]).
pub fn spawn_with_inherited_limits(command: &mut Command) -> &mut Command {
    let soft = INHERITED_OPEN_FILE_LIMIT.load(Ordering::Relaxed);
    if soft != 0 {
        // SAFETY: the closure runs in the child between fork and exec and only makes the
        // getrlimit and setrlimit system calls, which are async-signal-safe; it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                use nix::sys::resource::{Resource, getrlimit, setrlimit};
                if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
                    let _ = setrlimit(Resource::RLIMIT_NOFILE, soft, hard);
                }
                Ok(())
            });
        }
    }
    command
}

/// Runs `command` with `/bin/sh -c` in a new process group, killing the whole group if it runs
/// longer than `timeout`.
pub async fn run_shell(command: &str, timeout: Duration) -> Result<CommandOutput, CommandError> {
    let started = Instant::now();
    let mut child = spawn_with_inherited_limits(&mut Command::new("/bin/sh"))
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CommandError::Spawn {
            command: command.to_owned(),
            source,
        })?;
    let pid = child.id();
    let stdout = tokio::spawn(read_tail(child.stdout.take()));
    let stderr = tokio::spawn(read_tail(child.stderr.take()));

    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(|source| CommandError::Spawn {
            command: command.to_owned(),
            source,
        })?,
        Err(_) => {
            if let Some(pid) = pid.and_then(|pid| i32::try_from(pid).ok()) {
                // The group id is the shell's pid (process_group(0)).
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            return Err(CommandError::TimedOut {
                command: command.to_owned(),
                timeout,
                stderr: collect(stderr).await,
            });
        }
    };
    let stdout = collect(stdout).await;
    let stderr = collect(stderr).await;
    if status.success() {
        Ok(CommandOutput {
            stdout,
            stderr,
            elapsed: started.elapsed(),
        })
    } else {
        Err(CommandError::Failed {
            command: command.to_owned(),
            status,
            stderr,
        })
    }
}

async fn collect(reader: tokio::task::JoinHandle<String>) -> String {
    match tokio::time::timeout(PIPE_GRACE, reader).await {
        Ok(Ok(text)) => text,
        _ => String::new(),
    }
}

/// Reads a pipe to its end, keeping only the last [`OUTPUT_LIMIT`] bytes.
async fn read_tail(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buffer[..n]);
                if kept.len() > OUTPUT_LIMIT * 2 {
                    kept.drain(..kept.len() - OUTPUT_LIMIT);
                }
            }
        }
    }
    if kept.len() > OUTPUT_LIMIT {
        kept.drain(..kept.len() - OUTPUT_LIMIT);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn placeholders_are_replaced_by_quoted_paths() {
        let command =
            CommandLine::parse("haproxy -c -f {{.src}} && cp {{ .src }} {{.dest}}").unwrap();
        let rendered = command.render(
            Path::new("/etc/haproxy/.haproxy.cfg.abc"),
            &PathBuf::from("/etc/my haproxy/it's.cfg"),
        );
        assert_eq!(
            rendered,
            "haproxy -c -f /etc/haproxy/.haproxy.cfg.abc && cp /etc/haproxy/.haproxy.cfg.abc \"/etc/my haproxy/it's.cfg\""
        );
    }

    #[test]
    fn unknown_and_unterminated_placeholders_are_rejected() {
        assert_eq!(
            CommandLine::parse("check {{.source}}")
                .unwrap_err()
                .to_string(),
            "unknown placeholder \"{{.source}}\": only {{.src}} and {{.dest}} are replaced"
        );
        assert!(
            CommandLine::parse("check {{.src")
                .unwrap_err()
                .to_string()
                .starts_with("unterminated")
        );
        assert_eq!(
            CommandLine::parse("plain")
                .unwrap()
                .render(Path::new("a"), Path::new("b")),
            "plain"
        );
    }

    #[tokio::test]
    async fn failure_carries_status_and_stderr() {
        let err = run_shell(
            "echo out; echo 'bad config line 3' >&2; exit 3",
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(text.ends_with(": bad config line 3"), "{text}");
    }

    #[tokio::test]
    async fn success_returns_output() {
        let out = run_shell("printf hello; printf warn >&2", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(out.stdout, "hello");
        assert_eq!(out.stderr, "warn");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-survived");
        // The shell starts a grandchild that would write the marker after one second.
        let command = format!("(sleep 1; touch {}) & sleep 30", quote(&marker));
        let started = Instant::now();
        let err = run_shell(&command, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "the grandchild outlived the timeout");
    }

    #[tokio::test]
    async fn a_daemonized_child_holding_the_pipes_does_not_hang_the_command() {
        let started = Instant::now();
        run_shell("(sleep 5 &) ; echo started", Duration::from_secs(10))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let out = run_shell(
            "head -c 1000000 /dev/zero | tr '\\0' x",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout.len(), OUTPUT_LIMIT);
    }

    #[tokio::test]
    async fn commands_get_the_descriptor_limit_terad_started_with() {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        if hard <= 512 {
            return;
        }
        // Each test is its own process under nextest; this one starts with a low soft limit.
        setrlimit(Resource::RLIMIT_NOFILE, 512, hard).unwrap();
        raise_open_file_limit();
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap().0, hard);
        let output = run_shell("ulimit -n", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(output.stdout.trim(), "512");
    }
}
