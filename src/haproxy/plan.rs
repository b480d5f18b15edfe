//! The plan: what the runtime API must change so that the running HAProxy serves the new file,
//! or the reason ([`Structural`]) it cannot and HAProxy must reload.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use super::config::{self, ConfigFile, Endpoint, Host, Line, Port, Section, ServerLine};
use super::options::Folded;

/// Why a new file needs a reload: the change is not one the runtime API makes. Its text names
/// the section and the line: `backend "nodes": "timeout server 30s" changed to "timeout server
/// 40s"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{detail}", section_prefix(.section))]
pub struct Structural {
    section: String,
    line: Option<usize>,
    detail: String,
}

fn section_prefix(section: &str) -> String {
    if section.is_empty() {
        String::new()
    } else {
        format!("{section}: ")
    }
}

impl Structural {
    fn new(section: &Section, line: Option<usize>, detail: String) -> Structural {
        Structural {
            section: section.label(),
            line,
            detail,
        }
    }

    fn file(line: Option<usize>, detail: String) -> Structural {
        Structural {
            section: String::new(),
            line,
            detail,
        }
    }

    /// The section, as messages name it (`backend "nodes"`); empty for the file as a whole.
    pub fn section(&self) -> &str {
        &self.section
    }

    /// The line's number: in the new file, or in the live one for a line that was removed.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

/// What the runtime API changes: per backend, the server changes and the servers it must list
/// afterwards. Empty when the files differ in nothing HAProxy sees (comments, blank lines, the
/// order of `server` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    backends: Vec<BackendPlan>,
}

/// One backend's (or listen section's) part of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendPlan {
    pub backend: String,
    pub changes: Vec<ServerChange>,
    /// Every server of the backend as the new file configures it, in file order: what `show
    /// servers state` must list once the changes are made.
    pub expected: Vec<ExpectedServer>,
}

/// A change to one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerChange {
    /// `add server` with the file's options and its `default-server` options folded in.
    Add {
        server: String,
        /// The address as `add server` takes it (IPv6 in brackets).
        address: String,
        options: Vec<String>,
        /// `check` is on: health checks start with `enable health`.
        check: bool,
        /// `agent-check` is on: the agent starts with `enable agent`.
        agent: bool,
        /// `disabled`: added in maintenance, and left there.
        disabled: bool,
    },
    /// `set server … addr … [port …]`.
    Readdress {
        server: String,
        ip: IpAddr,
        /// `None` when the server has no port (or a port offset) in both files.
        port: Option<u16>,
    },
    /// `set weight`: the weight in use. HAProxy keeps the weight it started with (its initial
    /// weight, a base for relative weights) until the next reload.
    Weight {
        server: String,
        weight: u32,
    },
    Disable {
        server: String,
    },
    Enable {
        server: String,
    },
    /// Drained (maintenance, then its sessions end or are shut down), then `del server`.
    Remove {
        server: String,
    },
}

/// A server as `show servers state` must show it after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedServer {
    pub name: String,
    /// `None` for a host name or socket: HAProxy resolved it, and it is not compared.
    pub ip: Option<IpAddr>,
    /// `Some(0)` for no port (what HAProxy lists); `None` for a port offset (not compared).
    pub port: Option<u16>,
    pub weight: u32,
    /// In maintenance (`disabled`).
    pub disabled: bool,
}

impl fmt::Display for ExpectedServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            None => f.write_str("(name)")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}")?,
            None => f.write_str(":(offset)")?,
        }
        write!(
            f,
            " weight {} {}",
            self.weight,
            if self.disabled { "maint" } else { "ready" }
        )
    }
}

/// What a successful command answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Nothing (an empty line).
    Empty,
    /// "New server registered."
    Registered,
    /// "Server deleted."
    Deleted,
    /// "IP changed from …" or "no need to change the addr…".
    AddressChanged,
}

/// One step of [`Plan`]'s application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Send {
        command: String,
        reply: Reply,
    },
    /// Wait (within the drain timeout) for the server's current sessions to end.
    Drain {
        backend: String,
        server: String,
    },
}

impl Plan {
    /// Nothing to change in the running HAProxy.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    pub fn backends(&self) -> &[BackendPlan] {
        &self.backends
    }

    /// The commands [`super::RuntimeApi::apply`] sends, in its order: for `--noop` and logs.
    /// Besides these it reads `show stat` while draining a removed server and `show servers
    /// state` of each backend to verify.
    pub fn commands(&self) -> Vec<String> {
        self.steps()
            .into_iter()
            .filter_map(|step| match step {
                Step::Send { command, .. } => Some(command),
                Step::Drain { .. } => None,
            })
            .collect()
    }

    /// Additions first, in every backend, so that no backend is ever left without its servers
    /// and a refusal (the likeliest on `add server`) comes before anything was taken away; then
    /// changes in place; removals last.
    pub(crate) fn steps(&self) -> Vec<Step> {
        let send = |command: String, reply: Reply| Step::Send { command, reply };
        let mut adds = Vec::new();
        let mut updates = Vec::new();
        let mut removals = Vec::new();
        for backend in &self.backends {
            let b = &backend.backend;
            for change in &backend.changes {
                match change {
                    ServerChange::Add {
                        server,
                        address,
                        options,
                        check,
                        agent,
                        disabled,
                    } => {
                        let mut command = format!("add server {b}/{server} {address}");
                        for option in options {
                            command.push(' ');
                            command.push_str(option);
                        }
                        adds.push(send(command, Reply::Registered));
                        // Checks of a dynamic server start disabled (management guide, "add
                        // server"), and the server itself in maintenance.
                        if *check {
                            adds.push(send(format!("enable health {b}/{server}"), Reply::Empty));
                        }
                        if *agent {
                            adds.push(send(format!("enable agent {b}/{server}"), Reply::Empty));
                        }
                        if !disabled {
                            adds.push(send(format!("enable server {b}/{server}"), Reply::Empty));
                        }
                    }
                    ServerChange::Readdress { server, ip, port } => {
                        let mut command = format!("set server {b}/{server} addr {ip}");
                        if let Some(port) = port {
                            command.push_str(&format!(" port {port}"));
                        }
                        updates.push(send(command, Reply::AddressChanged));
                    }
                    ServerChange::Weight { server, weight } => {
                        updates.push(send(
                            format!("set weight {b}/{server} {weight}"),
                            Reply::Empty,
                        ));
                    }
                    ServerChange::Disable { server } => {
                        updates.push(send(format!("disable server {b}/{server}"), Reply::Empty));
                    }
                    ServerChange::Enable { server } => {
                        updates.push(send(format!("enable server {b}/{server}"), Reply::Empty));
                    }
                    ServerChange::Remove { server } => {
                        removals.push(send(
                            format!("set server {b}/{server} state maint"),
                            Reply::Empty,
                        ));
                        removals.push(Step::Drain {
                            backend: b.clone(),
                            server: server.clone(),
                        });
                        removals.push(send(
                            format!("shutdown sessions server {b}/{server}"),
                            Reply::Empty,
                        ));
                        removals.push(send(format!("del server {b}/{server}"), Reply::Deleted));
                    }
                }
            }
        }
        adds.into_iter().chain(updates).chain(removals).collect()
    }
}

/// Compares the live file with the new render: the runtime changes that make HAProxy serve the
/// new file, or why only a reload does.
pub fn plan(current: &str, rendered: &str) -> Result<Plan, Structural> {
    let syntax = |which: &str, error: config::SyntaxError| {
        Structural::file(
            Some(error.line),
            format!(
                "line {} of the {which} file ({:?}) cannot be read: {}",
                error.line, error.text, error.reason
            ),
        )
    };
    let old = config::parse(current).map_err(|error| syntax("live", error))?;
    let new = config::parse(rendered).map_err(|error| syntax("new", error))?;
    compare_sections(&old, &new)?;

    let mut backends = Vec::new();
    for (index, (old_section, new_section)) in old.sections.iter().zip(&new.sections).enumerate() {
        compare_lines(
            new_section,
            &other_lines(old_section),
            &other_lines(new_section),
        )?;
        if !new_section.is_proxy_with_servers() {
            continue;
        }
        let chain = defaults_chain(&new, index);
        if let Some(backend) = plan_backend(old_section, new_section, &chain)? {
            backends.push(backend);
        }
    }
    if !backends.is_empty()
        && let Some(line) = new
            .sections
            .iter()
            .flat_map(|section| &section.lines)
            .find(|line| line.keyword().starts_with('.'))
    {
        return Err(Structural::file(
            Some(line.number),
            format!(
                "{:?}: haproxy evaluates conditional blocks, terad's planner does not",
                line.text
            ),
        ));
    }
    Ok(Plan { backends })
}

/// Sections must be the same, in the same order: which `defaults` a proxy takes depends on it.
fn compare_sections(old: &ConfigFile, new: &ConfigFile) -> Result<(), Structural> {
    let header = |section: &Section| section.header.as_ref().map(|line| line.tokens.clone());
    let old_headers: Vec<_> = old.sections.iter().map(header).collect();
    let new_headers: Vec<_> = new.sections.iter().map(header).collect();
    if old_headers == new_headers {
        return Ok(());
    }
    let line_of = |section: &Section| section.header.as_ref().map(|line| line.number);
    if let Some(added) = new
        .sections
        .iter()
        .find(|section| !old_headers.contains(&header(section)))
    {
        return Err(Structural::new(added, line_of(added), "added".into()).without_colon());
    }
    if let Some(removed) = old
        .sections
        .iter()
        .find(|section| !new_headers.contains(&header(section)))
    {
        return Err(Structural::new(removed, line_of(removed), "removed".into()).without_colon());
    }
    let moved = new
        .sections
        .iter()
        .zip(&old.sections)
        .find(|(new, old)| header(new) != header(old))
        .map(|(new, _)| new)
        .expect("the headers differ");
    Err(Structural::new(
        moved,
        line_of(moved),
        "moved to another place in the file".into(),
    )
    .without_colon())
}

impl Structural {
    /// `backend "api" added` rather than `backend "api": added`.
    fn without_colon(mut self) -> Structural {
        self.detail = format!("{} {}", self.section, self.detail);
        self.section.clear();
        self
    }
}

/// A section's lines that must not change: all but the `server` lines of a backend.
fn other_lines(section: &Section) -> Vec<&Line> {
    section
        .lines
        .iter()
        .filter(|line| !(section.is_proxy_with_servers() && line.keyword() == "server"))
        .collect()
}

/// The first difference between two lists of lines that must be equal.
fn compare_lines(section: &Section, old: &[&Line], new: &[&Line]) -> Result<(), Structural> {
    let same = |a: &Line, b: &Line| a.tokens == b.tokens;
    for index in 0..old.len().max(new.len()) {
        let detail = match (old.get(index), new.get(index)) {
            (Some(a), Some(b)) if same(a, b) => continue,
            (Some(a), Some(b)) => {
                if new[index + 1..].iter().any(|later| same(later, a)) {
                    Structural::new(section, Some(b.number), format!("{:?} added", b.text))
                } else if old[index + 1..].iter().any(|later| same(later, b)) {
                    Structural::new(section, Some(a.number), format!("{:?} removed", a.text))
                } else {
                    Structural::new(
                        section,
                        Some(b.number),
                        format!("{:?} changed to {:?}", a.text, b.text),
                    )
                }
            }
            (None, Some(b)) => {
                Structural::new(section, Some(b.number), format!("{:?} added", b.text))
            }
            (Some(a), None) => {
                Structural::new(section, Some(a.number), format!("{:?} removed", a.text))
            }
            (None, None) => unreachable!("index below the longer length"),
        };
        return Err(detail);
    }
    Ok(())
}

/// The option words of the `default-server` lines a proxy inherits from its `defaults`
/// section (the one named by `from`, or the last one before it), that one's own `from` first.
fn defaults_chain(file: &ConfigFile, index: usize) -> Vec<&[String]> {
    let mut chain = Vec::new();
    let mut at = index;
    // Bounded: a cycle of `from` is an error in HAProxy; here it ends the chain.
    for _ in 0..file.sections.len() {
        let section = &file.sections[at];
        let found = match section.inherited_defaults() {
            Some(name) => file.sections[..at]
                .iter()
                .rposition(|s| s.keyword == "defaults" && s.name() == Some(name)),
            None if section.keyword == "defaults" => None,
            None => file.sections[..at]
                .iter()
                .rposition(|s| s.keyword == "defaults"),
        };
        let Some(defaults) = found else { break };
        let lines: Vec<&[String]> = file.sections[defaults]
            .lines
            .iter()
            .filter(|line| line.keyword() == "default-server")
            .map(|line| &line.tokens[1..])
            .collect();
        chain.splice(0..0, lines);
        at = defaults;
    }
    chain
}

/// A `server` line with what applies to it.
struct Server<'a> {
    line: ServerLine,
    /// The `default-server` option words before it: inherited, then its section's.
    defaults: Vec<&'a [String]>,
}

impl Server<'_> {
    fn fold(&self, section: &Section) -> Result<Folded, Structural> {
        Folded::new(&self.defaults, &self.line.options).map_err(|error| {
            Structural::new(
                section,
                Some(self.line.line.number),
                format!("server {:?}: {error}", self.line.name),
            )
        })
    }
}

fn servers<'a>(
    section: &'a Section,
    chain: &[&'a [String]],
) -> Result<BTreeMap<String, Server<'a>>, Structural> {
    let mut servers = BTreeMap::new();
    let mut defaults: Vec<&[String]> = chain.to_vec();
    for line in &section.lines {
        match line.keyword() {
            // HAProxy copies the default-server settings into a server as it reads its line:
            // a `default-server` line only affects the servers after it.
            "default-server" => defaults.push(&line.tokens[1..]),
            "server" => {
                let server = ServerLine::parse(line).ok_or_else(|| {
                    Structural::new(
                        section,
                        Some(line.number),
                        format!("{:?} has no name or no address", line.text),
                    )
                })?;
                let name = server.name.clone();
                let previous = servers.insert(
                    name.clone(),
                    Server {
                        line: server,
                        defaults: defaults.clone(),
                    },
                );
                if previous.is_some() {
                    return Err(Structural::new(
                        section,
                        Some(line.number),
                        format!("server {name:?} is declared twice"),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(servers)
}

fn plan_backend(
    old_section: &Section,
    section: &Section,
    chain: &[&[String]],
) -> Result<Option<BackendPlan>, Structural> {
    let old = servers(old_section, chain)?;
    let new = servers(section, chain)?;
    let mut changes = Vec::new();
    for (name, server) in &new {
        let Some(before) = old.get(name) else {
            changes.push(add(section, server)?);
            continue;
        };
        if before.line.line.tokens == server.line.line.tokens && before.defaults == server.defaults
        {
            continue;
        }
        changes.extend(change(section, before, server)?);
    }
    for name in old.keys() {
        if !new.contains_key(name) {
            changes.push(ServerChange::Remove {
                server: name.clone(),
            });
        }
    }
    if changes.is_empty() {
        return Ok(None);
    }
    let backend = section.name().unwrap_or_default().to_owned();
    if let Some(line) = section
        .lines
        .iter()
        .find(|line| line.keyword() == "server-template")
    {
        return Err(Structural::new(
            section,
            Some(line.number),
            format!(
                "servers change beside {:?}, whose servers the runtime plan does not track",
                line.text
            ),
        ));
    }
    cli_safe(section, None, &backend)?;
    let mut expected = Vec::new();
    for line in &section.lines {
        if line.keyword() != "server" {
            continue;
        }
        let server = &new[&line.tokens[1]];
        let folded = server.fold(section)?;
        expected.push(ExpectedServer {
            name: server.line.name.clone(),
            ip: match server.line.endpoint.host {
                Host::Ip(ip) => Some(ip),
                Host::Other(_) => None,
            },
            port: match server.line.endpoint.port {
                Port::None => Some(0),
                Port::Fixed(port) => Some(port),
                Port::Other(_) => None,
            },
            weight: folded.weight.unwrap_or(1),
            disabled: folded.disabled,
        });
    }
    Ok(Some(BackendPlan {
        backend,
        changes,
        expected,
    }))
}

/// The runtime API reads a command as blank-separated words up to `;` or the end of the line,
/// without quotes: a word it would read differently cannot be sent.
fn cli_safe(section: &Section, line: Option<usize>, word: &str) -> Result<(), Structural> {
    let unsafe_char = |c: char| c.is_whitespace() || c.is_control() || "\\;#'\"".contains(c);
    if word.is_empty() || word.contains(unsafe_char) {
        return Err(Structural::new(
            section,
            line,
            format!("{word:?} cannot be written on haproxy's command line"),
        ));
    }
    Ok(())
}

fn add(section: &Section, server: &Server) -> Result<ServerChange, Structural> {
    let line = &server.line;
    let at = Some(line.line.number);
    let fail = |detail: String| {
        Structural::new(
            section,
            at,
            format!("server {:?} added: {detail}", line.name),
        )
    };
    if let Host::Other(_) = line.endpoint.host {
        return Err(fail(format!(
            "address {:?} is no IP address, and haproxy resolves no names for servers added at runtime",
            line.endpoint.written
        )));
    }
    let folded = server.fold(section)?;
    let options = folded
        .for_add_server()
        .map_err(|why| fail(why.to_string()))?;
    let address = line.endpoint.for_add();
    for word in std::iter::once(&line.name)
        .chain([&address])
        .chain(&options)
    {
        cli_safe(section, at, word)?;
    }
    Ok(ServerChange::Add {
        server: line.name.clone(),
        address,
        options,
        check: folded.is_on("check"),
        agent: folded.is_on("agent-check"),
        disabled: folded.disabled,
    })
}

fn change(
    section: &Section,
    before: &Server,
    after: &Server,
) -> Result<Vec<ServerChange>, Structural> {
    let name = &after.line.name;
    let at = Some(after.line.line.number);
    let old = before.fold(section)?;
    let new = after.fold(section)?;
    if !old.same_apart_from_runtime(&new) {
        let detail = if before.line.line.tokens == after.line.line.tokens {
            format!(
                "server {name:?}: its default-server options change (it moved across a \"default-server\" line)"
            )
        } else {
            format!(
                "{:?} changed to {:?}",
                before.line.line.text, after.line.line.text
            )
        };
        return Err(Structural::new(section, at, detail));
    }
    let mut changes = Vec::new();
    let (from, to) = (&before.line.endpoint, &after.line.endpoint);
    if (&from.host, &from.port) != (&to.host, &to.port) {
        changes.push(readdress(section, at, name, from, to)?);
    }
    let weight = new.weight.unwrap_or(1);
    if old.weight.unwrap_or(1) != weight {
        // `set weight` changes the weight in use, not the initial one, and an agent's "75%"
        // is a share of the initial weight: only a reload gives the agent the file's weight.
        if new.is_on("agent-check") {
            return Err(Structural::new(
                section,
                at,
                format!(
                    "server {name:?}: its weight changes, and its agent check sets weights relative to the weight haproxy started with"
                ),
            ));
        }
        changes.push(ServerChange::Weight {
            server: name.clone(),
            weight,
        });
    }
    match (old.disabled, new.disabled) {
        (false, true) => changes.push(ServerChange::Disable {
            server: name.clone(),
        }),
        (true, false) => changes.push(ServerChange::Enable {
            server: name.clone(),
        }),
        _ => {}
    }
    cli_safe(section, at, name)?;
    Ok(changes)
}

fn readdress(
    section: &Section,
    at: Option<usize>,
    name: &str,
    from: &Endpoint,
    to: &Endpoint,
) -> Result<ServerChange, Structural> {
    let refuse = |why: &str| {
        Structural::new(
            section,
            at,
            format!(
                "server {name:?}: address {:?} changed to {:?}, {why}",
                from.written, to.written
            ),
        )
    };
    let (Host::Ip(_), Host::Ip(ip)) = (&from.host, &to.host) else {
        return Err(refuse(
            "and only IP addresses are set at runtime (haproxy resolves names at start-up)",
        ));
    };
    let port = match (&from.port, &to.port) {
        (Port::Fixed(_), Port::Fixed(port)) => Some(*port),
        (Port::None, Port::None) => None,
        (Port::Other(a), Port::Other(b)) if a == b => None,
        _ => {
            return Err(refuse(
                "a change of the kind of port the runtime api does not make",
            ));
        }
    };
    Ok(ServerChange::Readdress {
        server: name.to_owned(),
        ip: *ip,
        port,
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
