//! A client of HAProxy's runtime API (the stats socket, at level admin): sends a [`Plan`]'s
//! commands one connection each, drains the servers it removes, and then reads `show servers
//! state` back to check that HAProxy runs what the file says.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info};

use super::plan::{BackendPlan, ExpectedServer, Plan, Reply, Step};

/// The largest answer read: `show servers state` of a backend with thousands of servers is a
/// few hundred KiB; anything much larger is not an answer to these commands.
const MAX_ANSWER: u64 = 16 << 20;
/// How often a draining server's sessions are counted.
const DRAIN_POLL: Duration = Duration::from_millis(25);
/// `del server` right after `shutdown sessions` can find connections still closing.
const STILL_CONNECTED: &str = "still has connections";

/// Where the runtime API listens, written as HAProxy's `stats socket` takes it:
/// `/run/haproxy/admin.sock`, `unix@/path`, `ipv4@127.0.0.1:9999`, `ipv6@[::1]:9999`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeAddress {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// Why a runtime API address was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is no runtime api address: give a socket path (\"/run/haproxy/admin.sock\", \
     \"unix@/path\") or \"ipv4@127.0.0.1:9999\", \"ipv6@[::1]:9999\""
)]
pub struct AddressError(String);

impl FromStr for RuntimeAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<RuntimeAddress, AddressError> {
        let error = || AddressError(text.to_owned());
        if let Some(path) = text.strip_prefix("unix@") {
            return match path {
                "" => Err(error()),
                path => Ok(RuntimeAddress::Unix(PathBuf::from(path))),
            };
        }
        if text.starts_with('/') {
            return Ok(RuntimeAddress::Unix(PathBuf::from(text)));
        }
        let tcp = |address: &str| address.parse::<SocketAddr>().map_err(|_| error());
        let address = if let Some(v4) = text.strip_prefix("ipv4@") {
            tcp(v4).and_then(|a| if a.is_ipv4() { Ok(a) } else { Err(error()) })?
        } else if let Some(v6) = text.strip_prefix("ipv6@") {
            // HAProxy's own form writes no brackets: the port follows the last colon.
            let address = match v6.starts_with('[') {
                true => tcp(v6)?,
                false => {
                    let (ip, port) = v6.rsplit_once(':').ok_or_else(error)?;
                    tcp(&format!("[{ip}]:{port}"))?
                }
            };
            if !address.is_ipv6() {
                return Err(error());
            }
            address
        } else {
            tcp(text)?
        };
        Ok(RuntimeAddress::Tcp(address))
    }
}

impl fmt::Display for RuntimeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeAddress::Unix(path) if path.is_absolute() => write!(f, "{}", path.display()),
            RuntimeAddress::Unix(path) => write!(f, "unix@{}", path.display()),
            RuntimeAddress::Tcp(address @ SocketAddr::V4(_)) => write!(f, "ipv4@{address}"),
            RuntimeAddress::Tcp(address @ SocketAddr::V6(_)) => write!(f, "ipv6@{address}"),
        }
    }
}

/// Why applying a plan through the runtime API failed. The caller falls back to a reload,
/// which makes HAProxy run the file whatever state the failure left it in; the text says
/// what went wrong, with HAProxy's own answer where there is one.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot reach haproxy's runtime api at {address:?}: {source}")]
    Unreachable {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("haproxy's runtime api at {address:?} dropped {command:?}: {source}")]
    Lost {
        address: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("haproxy's runtime api at {address:?} did not answer {command:?} within {}", humantime::format_duration(*.after))]
    Timeout {
        address: String,
        command: String,
        after: Duration,
    },
    #[error("haproxy refused {command:?}: {answer:?}")]
    Refused { command: String, answer: String },
    #[error("haproxy's answer to {command:?} is not understood: {answer:?}")]
    Unexpected { command: String, answer: String },
    #[error(
        "backend {backend:?}: server {server:?} is {found:?} after the change, the file says {expected:?}"
    )]
    Mismatch {
        backend: String,
        server: String,
        expected: String,
        found: String,
    },
}

impl RuntimeError {
    /// A short label for metrics: why the runtime path gave way to a reload.
    pub fn reason(&self) -> &'static str {
        match self {
            RuntimeError::Unreachable { .. } | RuntimeError::Lost { .. } => "unreachable",
            RuntimeError::Timeout { .. } => "timeout",
            RuntimeError::Refused { .. } => "refused",
            RuntimeError::Unexpected { .. } => "unexpected",
            RuntimeError::Mismatch { .. } => "mismatch",
        }
    }
}

/// What [`RuntimeApi::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Commands sent (retries of `del server` included).
    pub commands: usize,
    /// Backends verified with `show servers state`.
    pub backends: usize,
    /// Sessions still open on removed servers when the drain timeout ran out, then shut down.
    pub sessions_shut_down: u64,
    pub elapsed: Duration,
}

/// A server as `show servers state` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveServer {
    pub name: String,
    /// `-` when a name has not been resolved.
    pub address: String,
    /// 0 for no port.
    pub port: u16,
    pub weight: u32,
    /// `srv_admin_state`: 0x01 forced maintenance, 0x04 `disabled` in the file, 0x08 forced
    /// drain…
    pub admin_state: u32,
}

impl LiveServer {
    fn admin(&self) -> &'static str {
        // 0x04 stays set on a server the file disabled even after `enable server` brings it
        // back into service (HAProxy 2.6 shows 5, then 4): only 0x01 means maintenance.
        if self.admin_state & 0x01 != 0 {
            "maint"
        } else if self.admin_state & 0x08 != 0 {
            "drain"
        } else {
            "ready"
        }
    }

    fn describe(&self) -> String {
        let address = match self.address.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => self.address.clone(),
        };
        format!(
            "{address}:{} weight {} {}",
            self.port,
            self.weight,
            self.admin()
        )
    }

    /// Whether it is what `expected` describes; what is not compared (a resolved name's
    /// address, a port offset) is left out.
    fn matches(&self, expected: &ExpectedServer) -> bool {
        let address = match expected.ip {
            Some(ip) => self.address.parse::<IpAddr>().ok() == Some(ip),
            None => true,
        };
        let port = expected.port.is_none_or(|port| port == self.port);
        let admin = if expected.disabled { "maint" } else { "ready" };
        address && port && self.weight == expected.weight && self.admin() == admin
    }
}

/// HAProxy's runtime API at one address.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    address: RuntimeAddress,
    /// Bounds each command: connecting, sending, reading the answer.
    timeout: Duration,
    /// How long a removed server's sessions may take to end before they are shut down.
    drain_timeout: Duration,
}

impl RuntimeApi {
    pub fn new(address: RuntimeAddress, timeout: Duration, drain_timeout: Duration) -> RuntimeApi {
        RuntimeApi {
            address,
            timeout,
            drain_timeout,
        }
    }

    pub fn address(&self) -> &RuntimeAddress {
        &self.address
    }

    /// Sends one command on a new connection and returns HAProxy's whole answer (it closes
    /// the connection after answering).
    pub async fn command(&self, command: &str) -> Result<String, RuntimeError> {
        let address = || self.address.to_string();
        let exchange = async {
            match &self.address {
                RuntimeAddress::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path).await;
                    exchange(stream, command).await
                }
                RuntimeAddress::Tcp(socket) => {
                    let stream = tokio::net::TcpStream::connect(socket).await;
                    exchange(stream, command).await
                }
            }
        };
        let answer = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => {
                return Err(RuntimeError::Timeout {
                    address: address(),
                    command: command.to_owned(),
                    after: self.timeout,
                });
            }
            Ok(Err(Failure::Connect(source))) => {
                return Err(RuntimeError::Unreachable {
                    address: address(),
                    source,
                });
            }
            Ok(Err(Failure::Exchange(source))) => {
                return Err(RuntimeError::Lost {
                    address: address(),
                    command: command.to_owned(),
                    source,
                });
            }
            Ok(Ok(answer)) => answer,
        };
        debug!(command, answer = answer.trim_end(), "haproxy runtime api");
        Ok(answer)
    }

    /// `show servers state <backend>`.
    pub async fn servers_state(&self, backend: &str) -> Result<Vec<LiveServer>, RuntimeError> {
        let command = format!("show servers state {backend}");
        let answer = self.command(&command).await?;
        parse_servers_state(&command, &answer)
    }

    /// Makes the changes of `plan`, then checks that every backend it touches lists exactly the
    /// servers the new file has. Any error leaves HAProxy to be reloaded by the caller.
    ///
    /// Each command is bounded by the timeout, each removal's drain by the drain timeout; an
    /// empty plan sends nothing.
    pub async fn apply(&self, plan: &Plan) -> Result<Applied, RuntimeError> {
        let started = Instant::now();
        let mut applied = Applied::default();
        if plan.is_empty() {
            return Ok(applied);
        }
        for step in plan.steps() {
            match step {
                Step::Send { command, reply } => self.send(&command, reply, &mut applied).await?,
                Step::Drain { backend, server } => {
                    applied.sessions_shut_down += self.drain(&backend, &server).await?;
                }
            }
        }
        for backend in plan.backends() {
            self.verify(backend).await?;
            applied.backends += 1;
        }
        applied.elapsed = started.elapsed();
        // The apply path reports the change, with its resource (apply::report).
        debug!(
            backends = applied.backends,
            commands = applied.commands,
            sessions_shut_down = applied.sessions_shut_down,
            elapsed_ms = applied.elapsed.as_millis() as u64,
            address = %self.address,
            "haproxy servers changed through the runtime api"
        );
        Ok(applied)
    }

    async fn send(
        &self,
        command: &str,
        reply: Reply,
        applied: &mut Applied,
    ) -> Result<(), RuntimeError> {
        let started = Instant::now();
        loop {
            applied.commands += 1;
            let answer = self.command(command).await?;
            if accepted(reply, &answer) {
                return Ok(());
            }
            // `shutdown sessions` ends them asynchronously; their connections close a moment
            // later, and until then `del server` refuses.
            if reply == Reply::Deleted
                && answer.contains(STILL_CONNECTED)
                && started.elapsed() < self.timeout
            {
                tokio::time::sleep(DRAIN_POLL).await;
                continue;
            }
            return Err(RuntimeError::Refused {
                command: command.to_owned(),
                answer: answer.trim().to_owned(),
            });
        }
    }

    /// Waits until the server (in maintenance now) has no session left, within the drain
    /// timeout; returns how many were still open when it ran out.
    async fn drain(&self, backend: &str, server: &str) -> Result<u64, RuntimeError> {
        // `show stat` finds a proxy by name among frontends too; the backend's numeric id,
        // from `show servers state`, is unambiguous.
        let command = format!("show servers state {backend}");
        let answer = self.command(&command).await?;
        let id = backend_id(&command, &answer)?;
        let deadline = Instant::now() + self.drain_timeout;
        loop {
            let command = format!("show stat {id} 4 -1");
            let answer = self.command(&command).await?;
            let sessions = current_sessions(&command, &answer, server)?;
            if sessions == 0 {
                return Ok(0);
            }
            if Instant::now() >= deadline {
                info!(
                    backend,
                    server, sessions, "drain timeout: shutting down the sessions left"
                );
                return Ok(sessions);
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    async fn verify(&self, backend: &BackendPlan) -> Result<(), RuntimeError> {
        let live = self.servers_state(&backend.backend).await?;
        let mismatch = |server: &str, expected: String, found: String| RuntimeError::Mismatch {
            backend: backend.backend.clone(),
            server: server.to_owned(),
            expected,
            found,
        };
        let mut by_name: BTreeMap<&str, &LiveServer> = live
            .iter()
            .map(|server| (server.name.as_str(), server))
            .collect();
        for expected in &backend.expected {
            match by_name.remove(expected.name.as_str()) {
                None => {
                    return Err(mismatch(
                        &expected.name,
                        expected.to_string(),
                        "absent".into(),
                    ));
                }
                Some(server) if !server.matches(expected) => {
                    return Err(mismatch(
                        &expected.name,
                        expected.to_string(),
                        server.describe(),
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some((name, server)) = by_name.into_iter().next() {
            return Err(mismatch(name, "absent".into(), server.describe()));
        }
        Ok(())
    }
}

enum Failure {
    Connect(std::io::Error),
    Exchange(std::io::Error),
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: std::io::Result<S>,
    command: &str,
) -> Result<String, Failure> {
    let mut stream = stream.map_err(Failure::Connect)?;
    // Without the interactive prompt HAProxy answers one line and closes the connection.
    stream
        .write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(Failure::Exchange)?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .map_err(Failure::Exchange)?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// Whether `answer` is HAProxy 2.6's success reply for the command.
fn accepted(reply: Reply, answer: &str) -> bool {
    let answer = answer.trim();
    match reply {
        Reply::Empty => answer.is_empty(),
        Reply::Registered => answer == "New server registered.",
        Reply::Deleted => answer == "Server deleted.",
        Reply::AddressChanged => {
            answer.starts_with("IP changed from")
                || answer.starts_with("no need to change the addr")
        }
    }
}

/// The rows of `show servers state` (format 1), by their header's column names. An answer
/// without the format line is HAProxy's error, such as "Can't find backend.".
fn servers_state_rows<'a>(
    command: &str,
    answer: &'a str,
) -> Result<Vec<BTreeMap<&'a str, &'a str>>, RuntimeError> {
    let mut lines = answer.lines();
    if lines.next().map(str::trim) != Some("1") {
        return Err(RuntimeError::Refused {
            command: command.to_owned(),
            answer: answer.trim().to_owned(),
        });
    }
    let unexpected = || RuntimeError::Unexpected {
        command: command.to_owned(),
        answer: answer.trim().to_owned(),
    };
    let header: Vec<&str> = lines
        .next()
        .and_then(|line| line.strip_prefix('#'))
        .ok_or_else(unexpected)?
        .split_whitespace()
        .collect();
    let mut rows = Vec::new();
    for line in lines.filter(|line| !line.trim().is_empty() && !line.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < header.len() {
            return Err(unexpected());
        }
        rows.push(header.iter().copied().zip(fields).collect());
    }
    Ok(rows)
}

fn parse_servers_state(command: &str, answer: &str) -> Result<Vec<LiveServer>, RuntimeError> {
    let unexpected = || RuntimeError::Unexpected {
        command: command.to_owned(),
        answer: answer.trim().to_owned(),
    };
    servers_state_rows(command, answer)?
        .into_iter()
        .map(|row| {
            let number = |column: &str| row.get(column).and_then(|value| value.parse::<u32>().ok());
            Some(LiveServer {
                name: row.get("srv_name")?.to_string(),
                address: row.get("srv_addr")?.to_string(),
                port: u16::try_from(number("srv_port")?).ok()?,
                weight: number("srv_uweight")?,
                admin_state: number("srv_admin_state")?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(unexpected)
}

/// The backend's numeric id; an empty backend lists no row to read it from, but then it has no
/// server to drain either, and the caller's `show stat` fails on the id 0 it gets.
fn backend_id(command: &str, answer: &str) -> Result<u32, RuntimeError> {
    let rows = servers_state_rows(command, answer)?;
    Ok(rows
        .first()
        .and_then(|row| row.get("be_id")?.parse().ok())
        .unwrap_or(0))
}

/// `scur` of `server` in a `show stat` CSV answer; 0 when the server is not listed (gone).
fn current_sessions(command: &str, answer: &str, server: &str) -> Result<u64, RuntimeError> {
    let unexpected = || RuntimeError::Unexpected {
        command: command.to_owned(),
        answer: answer.trim().to_owned(),
    };
    let mut lines = answer.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|line| line.strip_prefix("# "))
        .ok_or_else(|| RuntimeError::Refused {
            command: command.to_owned(),
            answer: answer.trim().to_owned(),
        })?
        .split(',')
        .collect();
    let column = |name: &str| header.iter().position(|field| *field == name);
    let (name_at, sessions_at) = column("svname")
        .zip(column("scur"))
        .ok_or_else(unexpected)?;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.get(name_at) == Some(&server) {
            return fields
                .get(sessions_at)
                .and_then(|value| value.parse().ok())
                .ok_or_else(unexpected);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_stats_socket_takes_them() {
        let unix = |path: &str| RuntimeAddress::Unix(PathBuf::from(path));
        let tcp = |address: &str| RuntimeAddress::Tcp(address.parse().unwrap());
        for (text, address, shown) in [
            (
                "/run/haproxy/admin.sock",
                unix("/run/haproxy/admin.sock"),
                "/run/haproxy/admin.sock",
            ),
            (
                "unix@/run/haproxy/admin.sock",
                unix("/run/haproxy/admin.sock"),
                "/run/haproxy/admin.sock",
            ),
            ("unix@admin.sock", unix("admin.sock"), "unix@admin.sock"),
            (
                "ipv4@127.0.0.1:9999",
                tcp("127.0.0.1:9999"),
                "ipv4@127.0.0.1:9999",
            ),
            (
                "127.0.0.1:9999",
                tcp("127.0.0.1:9999"),
                "ipv4@127.0.0.1:9999",
            ),
            ("ipv6@[::1]:9999", tcp("[::1]:9999"), "ipv6@[::1]:9999"),
            ("ipv6@::1:9999", tcp("[::1]:9999"), "ipv6@[::1]:9999"),
        ] {
            let parsed: RuntimeAddress = text.parse().unwrap();
            assert_eq!(parsed, address, "{text}");
            assert_eq!(parsed.to_string(), shown);
            assert_eq!(shown.parse::<RuntimeAddress>().unwrap(), address);
        }
        for bad in [
            "",
            "unix@",
            "admin.sock",
            "ipv4@[::1]:9999",
            "ipv6@127.0.0.1:80",
            "ipv4@1.2.3.4",
            "host:80",
        ] {
            let error = bad.parse::<RuntimeAddress>().unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("{bad:?} is no runtime api address")),
                "{error}"
            );
        }
    }

    /// Answers of HAProxy 2.6.12, as read from its socket.
    const STATE: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 nodes 1 s1 127.0.0.1 2 0 5 5 1 6 3 4 6 0 0 0 - 18001 - 0 0 - - 0\n3 nodes 2 s2 127.0.0.1 0 5 3 3 1 1 0 0 14 0 0 0 - 18002 - 0 0 - - 0\n3 nodes 3 s3 127.0.0.1 2 0 5 5 1 6 3 4 6 0 0 0 - 0 - 0 18003 - - 18003\n3 nodes 4 s4 ::1 2 0 5 5 1 1 0 2 6 0 0 0 - 18004 - 0 0 - - 0\n3 nodes 7 n4 - 0 1 1 1 5 1 0 0 0 0 0 0 web.example 80 - 0 0 - - 0\n\n";

    #[test]
    fn servers_state_is_read_by_column_name() {
        let servers = parse_servers_state("show servers state nodes", STATE).unwrap();
        assert_eq!(servers.len(), 5);
        assert_eq!(
            servers[1],
            LiveServer {
                name: "s2".into(),
                address: "127.0.0.1".into(),
                port: 18002,
                weight: 3,
                admin_state: 5,
            }
        );
        assert_eq!(servers[1].describe(), "127.0.0.1:18002 weight 3 maint");
        assert_eq!(servers[3].describe(), "[::1]:18004 weight 5 ready");
        assert_eq!(servers[4].describe(), "-:80 weight 1 maint");
        assert_eq!(backend_id("c", STATE).unwrap(), 3);
    }

    #[test]
    fn a_server_the_file_disabled_and_enable_server_brought_back_is_ready() {
        let server = |admin_state| LiveServer {
            name: "s".into(),
            address: "10.0.0.1".into(),
            port: 0,
            weight: 1,
            admin_state,
        };
        assert_eq!(server(4).admin(), "ready");
        assert_eq!(server(5).admin(), "maint");
        assert_eq!(server(1).admin(), "maint");
        assert_eq!(server(8).admin(), "drain");
        let expected = ExpectedServer {
            name: "s".into(),
            ip: Some("10.0.0.1".parse().unwrap()),
            port: Some(0),
            weight: 1,
            disabled: false,
        };
        assert!(server(4).matches(&expected));
        assert!(!server(5).matches(&expected));
        assert!(!server(8).matches(&expected));
        assert!(server(5).matches(&ExpectedServer {
            disabled: true,
            ..expected.clone()
        }));
        assert!(!server(0).matches(&ExpectedServer {
            weight: 2,
            ..expected.clone()
        }));
        assert!(!server(0).matches(&ExpectedServer {
            port: Some(80),
            ..expected.clone()
        }));
        assert!(server(0).matches(&ExpectedServer {
            port: None,
            ip: None,
            ..expected.clone()
        }));
        assert!(!server(0).matches(&ExpectedServer {
            ip: Some("10.0.0.2".parse().unwrap()),
            ..expected
        }));
    }

    #[test]
    fn errors_instead_of_a_state_are_refusals() {
        let error =
            parse_servers_state("show servers state x", "Can't find backend.\n\n").unwrap_err();
        assert_eq!(error.reason(), "refused");
        assert_eq!(
            error.to_string(),
            "haproxy refused \"show servers state x\": \"Can't find backend.\""
        );
        let error = parse_servers_state("c", "1\nno header\n").unwrap_err();
        assert_eq!(error.reason(), "unexpected");
        let error = parse_servers_state("c", "1\n# a b c\n1 2\n").unwrap_err();
        assert_eq!(error.reason(), "unexpected");
    }

    #[test]
    fn sessions_are_read_from_show_stat() {
        let answer = "# pxname,svname,qcur,qmax,scur,smax\nnodes,s1,0,0,3,4\nnodes,s2,0,0,0,1\n\n";
        assert_eq!(current_sessions("c", answer, "s1").unwrap(), 3);
        assert_eq!(current_sessions("c", answer, "s2").unwrap(), 0);
        assert_eq!(current_sessions("c", answer, "gone").unwrap(), 0);
        let refused = current_sessions("c", "No such proxy.\n\n", "s1").unwrap_err();
        assert_eq!(refused.reason(), "refused");
    }

    #[test]
    fn success_replies_are_haproxys() {
        assert!(accepted(Reply::Empty, "\n"));
        assert!(!accepted(Reply::Empty, "No such server.\n\n"));
        assert!(accepted(Reply::Registered, "New server registered.\n\n"));
        assert!(!accepted(
            Reply::Registered,
            "'cookie' option is not accepted for dynamic server\n\n"
        ));
        assert!(accepted(Reply::Deleted, "Server deleted.\n"));
        assert!(!accepted(
            Reply::Deleted,
            "Only servers in maintenance mode can be deleted.\n"
        ));
        assert!(accepted(
            Reply::AddressChanged,
            "IP changed from '127.0.0.1' to '127.0.0.2', port changed from '18001' to '18002' by 'stats socket command'\n\n"
        ));
        assert!(accepted(
            Reply::AddressChanged,
            "no need to change the addr, port changed from '18004' to '18005' by 'stats socket command'\n\n"
        ));
        assert!(!accepted(
            Reply::AddressChanged,
            "Invalid addr 'web.example' by 'stats socket command'\n\n"
        ));
    }

    #[test]
    fn reasons_label_every_error() {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let errors = [
            (
                RuntimeError::Unreachable {
                    address: "/a.sock".into(),
                    source: io(),
                },
                "unreachable",
            ),
            (
                RuntimeError::Lost {
                    address: "/a.sock".into(),
                    command: "c".into(),
                    source: io(),
                },
                "unreachable",
            ),
            (
                RuntimeError::Timeout {
                    address: "/a.sock".into(),
                    command: "c".into(),
                    after: Duration::from_secs(2),
                },
                "timeout",
            ),
            (
                RuntimeError::Refused {
                    command: "c".into(),
                    answer: "a".into(),
                },
                "refused",
            ),
            (
                RuntimeError::Unexpected {
                    command: "c".into(),
                    answer: "a".into(),
                },
                "unexpected",
            ),
            (
                RuntimeError::Mismatch {
                    backend: "b".into(),
                    server: "s".into(),
                    expected: "e".into(),
                    found: "f".into(),
                },
                "mismatch",
            ),
        ];
        for (error, reason) in errors {
            assert_eq!(error.reason(), reason);
        }
        let timeout = RuntimeError::Timeout {
            address: "/a.sock".into(),
            command: "show info".into(),
            after: Duration::from_secs(2),
        };
        assert_eq!(
            timeout.to_string(),
            "haproxy's runtime api at \"/a.sock\" did not answer \"show info\" within 2s"
        );
        let mismatch = RuntimeError::Mismatch {
            backend: "nodes".into(),
            server: "s1".into(),
            expected: "10.0.0.1:80 weight 1 ready".into(),
            found: "absent".into(),
        };
        assert_eq!(
            mismatch.to_string(),
            "backend \"nodes\": server \"s1\" is \"absent\" after the change, the file says \"10.0.0.1:80 weight 1 ready\""
        );
    }
}
