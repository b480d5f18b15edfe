//! An HAProxy configuration file as the planner reads it: sections of tokenised lines, and the
//! `server` lines of proxies split into name, address and options.
//!
//! Only the syntax is read here, the way HAProxy 2.6 splits a line into words (quotes, escapes,
//! comments); what the words mean is for [`super::options`] and [`super::plan`].

use std::fmt;
use std::net::IpAddr;

/// The words that open a section in HAProxy 2.6, and a few later ones, so that their lines are
/// never taken for a proxy's (`peers` and `ring` sections have `server` lines of their own).
const SECTION_KEYWORDS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "peers",
    "mailers",
    "resolvers",
    "program",
    "http-errors",
    "ring",
    "log-forward",
    "cache",
    "fcgi-app",
    "crt-store",
    "traces",
    "acme",
];

/// A whole configuration file.
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    pub sections: Vec<Section>,
}

/// One section: its header line and the lines up to the next header. Lines before the first
/// header (HAProxy accepts none, but a template may emit one) form a section with no header.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    /// `backend`, `defaults`…; empty for the lines before the first header.
    pub keyword: String,
    pub header: Option<Line>,
    pub lines: Vec<Line>,
}

/// A line that says something: blank lines and comments are dropped, they change nothing in
/// HAProxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// 1-based, in its file.
    pub number: usize,
    /// The line without its comment and surrounding blanks, for messages.
    pub text: String,
    /// The words, unquoted and unescaped: what HAProxy compares.
    pub tokens: Vec<String>,
}

impl Section {
    /// The proxy's or section's name: the first word after the keyword.
    pub fn name(&self) -> Option<&str> {
        self.header
            .as_ref()
            .and_then(|header| header.tokens.get(1))
            .map(String::as_str)
            .filter(|name| *name != "from")
    }

    /// `backend`/`listen`: the sections whose `server` lines the runtime API changes.
    pub fn is_proxy_with_servers(&self) -> bool {
        matches!(self.keyword.as_str(), "backend" | "listen")
    }

    /// The named defaults section this one inherits from (`… from <name>`), if any.
    pub fn inherited_defaults(&self) -> Option<&str> {
        let tokens = &self.header.as_ref()?.tokens;
        let at = tokens.iter().position(|token| token == "from")?;
        tokens.get(at + 1).map(String::as_str)
    }

    /// How messages name the section: `global`, `backend "nodes"`.
    pub fn label(&self) -> String {
        match (self.keyword.as_str(), self.name()) {
            ("", _) => "the lines before the first section".to_owned(),
            (keyword, Some(name)) => format!("{keyword} {name:?}"),
            (keyword, None) => keyword.to_owned(),
        }
    }
}

impl Line {
    pub fn keyword(&self) -> &str {
        self.tokens.first().map(String::as_str).unwrap_or("")
    }
}

/// Why a file could not be read as an HAProxy configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub text: String,
    pub reason: &'static str,
}

/// Reads `text` into sections.
pub(crate) fn parse(text: &str) -> Result<ConfigFile, SyntaxError> {
    let mut sections = vec![Section {
        keyword: String::new(),
        header: None,
        lines: Vec::new(),
    }];
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let (tokens, code) = tokenize(raw).map_err(|reason| SyntaxError {
            line: number,
            text: raw.trim().to_owned(),
            reason,
        })?;
        if tokens.is_empty() {
            continue;
        }
        let line = Line {
            number,
            text: code.trim().to_owned(),
            tokens,
        };
        if SECTION_KEYWORDS.contains(&line.keyword()) {
            sections.push(Section {
                keyword: line.keyword().to_owned(),
                header: Some(line),
                lines: Vec::new(),
            });
        } else {
            sections.last_mut().expect("never empty").lines.push(line);
        }
    }
    // The headerless section only stays when something is in it, so that two files compare
    // section for section.
    if sections[0].lines.is_empty() {
        sections.remove(0);
    }
    Ok(ConfigFile { sections })
}

/// Splits a line into words as HAProxy 2.6 does: blanks separate words, `\` escapes the next
/// character, `'…'` quotes literally, `"…"` quotes with escapes, `#` outside quotes starts a
/// comment. Returns the words and the line up to its comment. Environment variables are left
/// as written: the planner compares text, and the same text means the same value.
fn tokenize(line: &str) -> Result<(Vec<String>, &str), &'static str> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_token = false;
    let mut chars = line.char_indices().peekable();
    let mut end = line.len();
    while let Some((at, c)) = chars.next() {
        match c {
            '#' => {
                end = at;
                break;
            }
            ' ' | '\t' | '\r' => {
                if in_token {
                    tokens.push(std::mem::take(&mut current));
                    in_token = false;
                }
            }
            '\\' => {
                let (_, escaped) = chars.next().ok_or("the line ends with a lone '\\'")?;
                current.push(escaped);
                in_token = true;
            }
            '\'' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => current.push(c),
                        None => return Err("a single quote is not closed"),
                    }
                }
            }
            '"' => {
                in_token = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => {
                            let (_, escaped) =
                                chars.next().ok_or("a double quote is not closed")?;
                            current.push(escaped);
                        }
                        Some((_, c)) => current.push(c),
                        None => return Err("a double quote is not closed"),
                    }
                }
            }
            c => {
                current.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        tokens.push(current);
    }
    Ok((tokens, &line[..end]))
}

/// A `server <name> <address>[:<port>] [options…]` line of a backend or listen section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerLine {
    pub name: String,
    pub endpoint: Endpoint,
    /// Everything after the address, as written.
    pub options: Vec<String>,
    pub line: Line,
}

impl ServerLine {
    /// Reads a `server` line; `None` when it has no name or no address (HAProxy's own check
    /// refuses such a file, and the planner treats the line as one it cannot change at runtime).
    pub fn parse(line: &Line) -> Option<ServerLine> {
        let [keyword, name, address, options @ ..] = line.tokens.as_slice() else {
            return None;
        };
        debug_assert_eq!(keyword, "server");
        Some(ServerLine {
            name: name.clone(),
            endpoint: Endpoint::parse(address),
            options: options.to_vec(),
            line: line.clone(),
        })
    }
}

/// A server's address and port as the `server` line writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The word as written, for messages.
    pub written: String,
    pub host: Host,
    pub port: Port,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    /// An IP address: the only kind the runtime API can set (it resolves no names).
    Ip(IpAddr),
    /// A host name, resolved by HAProxy at start-up; or a socket path, `unix@…` and the like.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Port {
    /// No port: HAProxy connects to the port the client connected to.
    None,
    Fixed(u16),
    /// `+N`/`-N`: the client's port shifted, or anything else HAProxy may accept there.
    Other(String),
}

impl Endpoint {
    /// Reads an address the way HAProxy 2.6 does: an optional `ipv4@`/`ipv6@` prefix, IPv6 in
    /// brackets, the port after the last colon (so `::1:80` is `::1` port 80, and a bare `::1`
    /// is no IPv6 address at all).
    pub fn parse(written: &str) -> Endpoint {
        let other = || Endpoint {
            written: written.to_owned(),
            host: Host::Other(written.to_owned()),
            port: Port::None,
        };
        let address = written
            .strip_prefix("ipv4@")
            .or_else(|| written.strip_prefix("ipv6@"))
            .unwrap_or(written);
        if address.contains('@') || address.starts_with('/') || address.contains('$') {
            return other();
        }
        let (host, port) = if let Some(bracketed) = address.strip_prefix('[') {
            let Some((host, rest)) = bracketed.split_once(']') else {
                return other();
            };
            match rest {
                "" => (host, None),
                _ => match rest.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return other(),
                },
            }
        } else {
            match address.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (address, None),
            }
        };
        let port = match port {
            None | Some("") => Port::None,
            // Digits only: Rust would also read `+10`, which HAProxy reads as an offset.
            Some(port) => match port.parse::<u16>() {
                Ok(number) if port.bytes().all(|b| b.is_ascii_digit()) => Port::Fixed(number),
                _ => Port::Other(port.to_owned()),
            },
        };
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Other(host.to_owned()),
        };
        Endpoint {
            written: written.to_owned(),
            host,
            port,
        }
    }

    /// The address for `add server`: IPv6 in brackets so that HAProxy does not read its last
    /// group as the port.
    pub fn for_add(&self) -> String {
        let host = match &self.host {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => ip.to_string(),
            Host::Other(_) => return self.written.clone(),
        };
        match &self.port {
            Port::None => host,
            Port::Fixed(port) => format!("{host}:{port}"),
            Port::Other(port) => format!("{host}:{port}"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        tokenize(line).unwrap().0
    }

    #[test]
    fn words_follow_haproxys_quoting_and_comments() {
        assert_eq!(
            words("  timeout   server 30s  "),
            ["timeout", "server", "30s"]
        );
        assert_eq!(
            words("server a 1.2.3.4:80 # web"),
            ["server", "a", "1.2.3.4:80"]
        );
        assert_eq!(words("# only a comment"), Vec::<String>::new());
        assert_eq!(
            words(r#"http-request set-header X "a b" 'c # d' e\ f"#),
            ["http-request", "set-header", "X", "a b", "c # d", "e f"]
        );
        assert_eq!(words(r#"x "a\"b""#), ["x", "a\"b"]);
        assert_eq!(
            tokenize("x \"open").unwrap_err(),
            "a double quote is not closed"
        );
        assert_eq!(
            tokenize("x 'open").unwrap_err(),
            "a single quote is not closed"
        );
        assert_eq!(
            tokenize("x \\").unwrap_err(),
            "the line ends with a lone '\\'"
        );
        assert_eq!(tokenize("a b # c").unwrap().1.trim(), "a b");
    }

    #[test]
    fn sections_start_at_their_keywords() {
        let file = parse(
            "# header comment\nglobal\n  daemon\n\ndefaults\n  mode http\nbackend nodes\n  server a 1.2.3.4:80\npeers p\n  server a 1.2.3.4:1024\n",
        )
        .unwrap();
        let labels: Vec<String> = file.sections.iter().map(Section::label).collect();
        assert_eq!(
            labels,
            ["global", "defaults", "backend \"nodes\"", "peers \"p\""]
        );
        assert!(file.sections[2].is_proxy_with_servers());
        assert!(!file.sections[3].is_proxy_with_servers());
        assert_eq!(file.sections[2].lines[0].number, 8);
        assert_eq!(file.sections[2].lines[0].text, "server a 1.2.3.4:80");
    }

    #[test]
    fn lines_before_the_first_section_are_kept() {
        let file = parse("maxconn 10\nglobal\n").unwrap();
        assert_eq!(file.sections[0].keyword, "");
        assert_eq!(file.sections[0].lines.len(), 1);
    }

    #[test]
    fn headers_name_the_defaults_they_inherit() {
        let file = parse("defaults base\nbackend b from base\nlisten l 127.0.0.1:80\n").unwrap();
        assert_eq!(file.sections[0].name(), Some("base"));
        assert_eq!(file.sections[1].name(), Some("b"));
        assert_eq!(file.sections[1].inherited_defaults(), Some("base"));
        assert_eq!(file.sections[2].name(), Some("l"));
        assert_eq!(file.sections[2].inherited_defaults(), None);
        let unnamed = parse("defaults from base\n").unwrap();
        assert_eq!(unnamed.sections[0].name(), None);
        assert_eq!(unnamed.sections[0].inherited_defaults(), Some("base"));
    }

    fn endpoint(written: &str) -> (Host, Port) {
        let endpoint = Endpoint::parse(written);
        (endpoint.host, endpoint.port)
    }

    fn ip(text: &str) -> Host {
        Host::Ip(text.parse().unwrap())
    }

    #[test]
    fn addresses_read_as_haproxy_reads_them() {
        assert_eq!(endpoint("10.0.0.1:80"), (ip("10.0.0.1"), Port::Fixed(80)));
        assert_eq!(endpoint("10.0.0.1"), (ip("10.0.0.1"), Port::None));
        assert_eq!(endpoint("10.0.0.1:"), (ip("10.0.0.1"), Port::None));
        assert_eq!(endpoint("[::1]:80"), (ip("::1"), Port::Fixed(80)));
        assert_eq!(endpoint("[::1]"), (ip("::1"), Port::None));
        assert_eq!(endpoint("::1:80"), (ip("::1"), Port::Fixed(80)));
        assert_eq!(endpoint("ipv6@::1:81"), (ip("::1"), Port::Fixed(81)));
        assert_eq!(
            endpoint("ipv4@127.0.0.1:83"),
            (ip("127.0.0.1"), Port::Fixed(83))
        );
        assert_eq!(
            endpoint("127.0.0.1:+10"),
            (ip("127.0.0.1"), Port::Other("+10".into()))
        );
        assert_eq!(
            endpoint("web-1.example:8080"),
            (Host::Other("web-1.example".into()), Port::Fixed(8080))
        );
        // HAProxy reads a bare `::1` as host ":" port 1: no IP address.
        assert_eq!(endpoint("::1").0, Host::Other(":".into()));
        assert!(matches!(endpoint("unix@/run/app.sock").0, Host::Other(_)));
        assert!(matches!(endpoint("/run/app.sock").0, Host::Other(_)));
        assert!(matches!(endpoint("${WEB}:80").0, Host::Other(_)));
        assert!(matches!(endpoint("[::1").0, Host::Other(_)));
        assert!(matches!(endpoint("10.0.0.1:99999").1, Port::Other(_)));
    }

    #[test]
    fn addresses_for_add_server_bracket_ipv6() {
        assert_eq!(Endpoint::parse("::1:80").for_add(), "[::1]:80");
        assert_eq!(Endpoint::parse("[::1]").for_add(), "[::1]");
        assert_eq!(Endpoint::parse("ipv4@10.0.0.1:80").for_add(), "10.0.0.1:80");
        assert_eq!(Endpoint::parse("10.0.0.1").for_add(), "10.0.0.1");
    }

    #[test]
    fn server_lines_split_into_name_address_and_options() {
        let file =
            parse("backend b\n  server web-1.a 10.0.0.1:80 check weight 3\n  server x\n").unwrap();
        let server = ServerLine::parse(&file.sections[0].lines[0]).unwrap();
        assert_eq!(server.name, "web-1.a");
        assert_eq!(server.endpoint.port, Port::Fixed(80));
        assert_eq!(server.options, ["check", "weight", "3"]);
        assert_eq!(ServerLine::parse(&file.sections[0].lines[1]), None);
    }
}
