//! The static binary (`scripts/build-static.sh` → `target/static/terad-<version>-linux-<arch>`)
//! in a chroot that holds nothing but what docs/src/operating.md ("The static binary") lists:
//! the binary, a confdir, a keys file, `/dev/null`, `/dev/random`, `/dev/urandom` (every container has them;
//! one test shows the random devices are not needed), `/etc/passwd` and `/etc/group`, plus
//! `/etc/hosts` and `/etc/resolv.conf` for the test of host names. No shared library, no
//! dynamic loader, no shell, no `/proc`, no environment.
//!
//! `scripts/test.sh` builds the binary before the tests and names it in `TERAD_TEST_STATIC_BIN`;
//! then, and under `CI=true` (which `.ci/run` sets), a missing binary fails these tests; a plain
//! `cargo nextest run` without it skips them with a message. They need root (chroot, mknod), as
//! CI has.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::consul::Consul;
use crate::support::etcd::Etcd;
use crate::support::{root_or_skip, run, stderr, stdout};

const LIMIT: Duration = Duration::from_secs(30);
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The jail's user and group: names and ids that exist only in the jail's own files, so a
/// resolved owner proves the lookup read them.
const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
                      jailuser:x:4321:4322:terad test:/nonexistent:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\njailgroup:x:4322:\n";

/// The static binary, or `None` (after saying why) when the calling test cannot run here.
/// Without root it is skipped, or fails under `CI=true` (`root_or_skip`); a missing binary is
/// the same, and fails too when `TERAD_TEST_STATIC_BIN` names it.
fn static_binary() -> Option<PathBuf> {
    // The test harness names each test's thread after the test.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a static binary test");
    if !root_or_skip(test, "chroot and mknod") {
        return None;
    }
    let named = std::env::var_os("TERAD_TEST_STATIC_BIN").map(PathBuf::from);
    let required = named.is_some() || std::env::var("CI").is_ok_and(|ci| ci == "true" || ci == "1");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let binary = named.unwrap_or_else(|| {
        Path::new(ROOT).join(format!("target/static/terad-{VERSION}-linux-{arch}"))
    });
    if binary.is_file() {
        warn_if_stale(&binary);
        return Some(binary);
    }
    let problem = format!(
        "{} is missing: run ./scripts/build-static.sh (./scripts/test.sh does)",
        binary.display()
    );
    if required {
        panic!("{test} cannot run: {problem}");
    }
    eprintln!("skipped {test}: {problem}");
    None
}

/// A binary older than the sources is tested as it is, with a warning: rebuilding it here
/// would take minutes.
fn warn_if_stale(binary: &Path) {
    fn newest(dir: &Path) -> Option<std::time::SystemTime> {
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                if meta.is_dir() {
                    newest(&entry.path())
                } else {
                    meta.modified().ok()
                }
            })
            .max()
    }
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(source)) = (built, newest(&Path::new(ROOT).join("src")))
        && source > built
    {
        eprintln!(
            "warning: {} is older than src/; ./scripts/build-static.sh rebuilds it",
            binary.display()
        );
    }
}

/// `chroot` by its full path: the command runs with an empty environment, so no `PATH`.
fn chroot() -> PathBuf {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|dir| dir.join("chroot"))
        .find(|candidate| candidate.is_file())
        .expect("chroot (coreutils) is installed")
}

/// A directory to chroot into, removed (device nodes and all) when dropped.
struct Jail {
    dir: tempfile::TempDir,
}

impl Jail {
    /// The binary as `/terad`, `/dev/{null,random,urandom}`, `/etc/passwd` and `/etc/group`,
    /// an empty confdir `/conf` and `/out` for destinations.
    fn new(binary: &Path) -> Jail {
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        let jail = Jail {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::copy(binary, jail.path("terad")).unwrap();
        std::fs::create_dir(jail.path("dev")).unwrap();
        for (name, minor) in [("null", 3), ("random", 8), ("urandom", 9)] {
            let mode = Mode::from_bits_truncate(0o666);
            mknod(
                &jail.path("dev").join(name),
                SFlag::S_IFCHR,
                mode,
                makedev(1, minor),
            )
            .unwrap_or_else(|e| panic!("mknod /dev/{name}: {e}"));
        }
        for dir in ["conf/conf.d", "conf/templates", "out"] {
            std::fs::create_dir_all(jail.path(dir)).unwrap();
        }
        jail.write("etc/passwd", PASSWD);
        jail.write("etc/group", GROUP);
        jail
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn write(&self, relative: &str, body: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    /// `/conf/conf.d/app.toml` rendering `/conf/templates/app.tmpl` into `/out/app.conf`, with
    /// `extra` lines (owner, group, mode) in the resource.
    fn resource(&self, template: &str, extra: &str) {
        self.write("conf/templates/app.tmpl", template);
        self.write(
            "conf/conf.d/app.toml",
            &format!(
                "[template]\nsrc = \"app.tmpl\"\ndest = \"/out/app.conf\"\nkeys = [\"/app\"]\n{extra}"
            ),
        );
    }

    /// `chroot <jail> /terad ARGS` with an empty environment; `--confdir /conf` comes first.
    fn terad(&self, args: &[&str]) -> Output {
        let mut command = Command::new(chroot());
        command
            .arg(self.dir.path())
            .arg("/terad")
            .args(["--confdir", "/conf"])
            .args(args)
            .env_clear()
            .stdin(Stdio::null());
        run(&mut command, LIMIT)
    }

    /// Every path in the jail, relative, sorted: what terad found and what it left.
    fn tree(&self) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                out.push(path.strip_prefix(root).unwrap().display().to_string());
                if entry.file_type().unwrap().is_dir() {
                    walk(root, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out.sort();
        out
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap_or_default()
    }
}

const TEMPLATE: &str =
    "name = {{ getv(key=\"/app/name\") }}\nport = {{ getv(key=\"/app/port\") }}\n";
const OWNED: &str = "mode = \"0640\"\nowner = \"jailuser\"\ngroup = \"jailgroup\"\n";

fn assert_rendered(jail: &Jail, output: &Output, expected: &str) {
    use std::os::unix::fs::MetadataExt;
    assert!(
        output.status.success(),
        "terad --onetime in the chroot: {:?}\n{}",
        output.status,
        stderr(output)
    );
    assert_eq!(jail.read("out/app.conf"), expected, "{}", stderr(output));
    let meta = std::fs::metadata(jail.path("out/app.conf")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (4321, 4322, 0o640),
        "owner and group by name from the jail's /etc/passwd and /etc/group"
    );
}

/// The file backend: the binary's version, then a one-shot render whose owner and group are
/// names only the jail's `/etc/passwd` and `/etc/group` know. Nothing else in the jail is
/// needed, and nothing but the destination is left behind.
#[test]
fn static_binary_renders_from_files_in_an_empty_chroot() {
    let Some(binary) = static_binary() else {
        return;
    };
    let jail = Jail::new(&binary);
    let version = jail.terad(&["--version"]);
    assert_eq!(stdout(&version).trim(), format!("terad {VERSION}"));

    jail.resource(TEMPLATE, OWNED);
    jail.write("keys.yaml", "app:\n  name: jailed\n  port: \"8080\"\n");
    let before = jail.tree();
    let output = jail.terad(&["--onetime", "--backend", "file", "--file", "/keys.yaml"]);
    assert_rendered(&jail, &output, "name = jailed\nport = 8080\n");

    let mut expected = before;
    expected.push("out/app.conf".to_owned());
    expected.sort();
    assert_eq!(
        jail.tree(),
        expected,
        "the jail holds only what it held, and the destination"
    );
}

/// A real etcd on loopback, read by the static binary in the chroot.
#[test]
fn static_binary_renders_from_etcd_in_an_empty_chroot() {
    let Some(binary) = static_binary() else {
        return;
    };
    let etcd = Etcd::start();
    etcd.put("/app/name", "from-etcd");
    etcd.put("/app/port", "2379");
    let jail = Jail::new(&binary);
    jail.resource(TEMPLATE, OWNED);
    let output = jail.terad(&["--onetime", "--backend", "etcd", "--node", &etcd.url()]);
    assert_rendered(&jail, &output, "name = from-etcd\nport = 2379\n");
}

/// A real Consul agent on loopback, read by the static binary in the chroot (its own HTTP
/// client and TLS stack, not etcd's).
#[test]
fn static_binary_renders_from_consul_in_an_empty_chroot() {
    let Some(binary) = static_binary() else {
        return;
    };
    let consul = Consul::start_dev(false);
    consul.put("/app/name", "from-consul");
    consul.put("/app/port", "8500");
    let jail = Jail::new(&binary);
    jail.resource(TEMPLATE, OWNED);
    let output = jail.terad(&["--onetime", "--backend", "consul", "--node", &consul.url()]);
    assert_rendered(&jail, &output, "name = from-consul\nport = 8500\n");
}

/// A confd template (Go `text/template` with confd's functions), as confd users bring it: the
/// engine is detected, and the Go engine renders in the chroot as Tera does.
#[test]
fn static_binary_renders_a_confd_go_template_in_an_empty_chroot() {
    let Some(binary) = static_binary() else {
        return;
    };
    let jail = Jail::new(&binary);
    jail.resource(
        "name = {{getv \"/app/name\"}}\n\
         {{range gets \"/app/*\"}}{{base .Key}}: {{printf \"%q\" .Value}}\n{{end}}",
        OWNED,
    );
    jail.write("keys.yaml", "app:\n  name: jailed\n  port: \"8080\"\n");
    let output = jail.terad(&["--onetime", "--backend", "file", "--file", "/keys.yaml"]);
    assert_rendered(
        &jail,
        &output,
        "name = jailed\nname: \"jailed\"\nport: \"8080\"\n",
    );
    assert!(
        stderr(&output).contains("engine=\"go\" how=\"detected\""),
        "{}",
        stderr(&output)
    );
}

/// An owner or group name that the jail cannot resolve, because its `/etc/passwd` or
/// `/etc/group` is missing, is a configuration error naming the name: exit status 2, nothing
/// written.
#[test]
fn static_binary_without_passwd_or_group_reports_the_name_it_cannot_resolve() {
    let Some(binary) = static_binary() else {
        return;
    };
    for (missing, key, name) in [
        ("etc/passwd", "owner", "jailuser"),
        ("etc/group", "group", "jailgroup"),
    ] {
        let jail = Jail::new(&binary);
        std::fs::remove_file(jail.path(missing)).unwrap();
        jail.resource(TEMPLATE, OWNED);
        jail.write("keys.yaml", "app:\n  name: jailed\n  port: \"8080\"\n");
        let output = jail.terad(&["--onetime", "--backend", "file", "--file", "/keys.yaml"]);
        let message = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(2),
            "without /{missing}: {message}"
        );
        assert!(
            message.contains(&format!("no such {key} \"{name}\" on this system")),
            "without /{missing}: {message}"
        );
        assert!(
            !jail.path("out/app.conf").exists(),
            "nothing is written without /{missing}"
        );
    }
}

/// Host names, as a container has them: `/etc/hosts` and the DNS server of `/etc/resolv.conf`
/// (Docker and Kubernetes provide both in every container, even `FROM scratch`), and no
/// `/etc/nsswitch.conf`. The etcd node is a name only the DNS server knows; `lookup_ip` finds a
/// name from `/etc/hosts`, one from DNS, and nothing (not an error) for a name neither knows.
#[test]
fn static_binary_resolves_names_from_etc_hosts_and_dns() {
    let Some(binary) = static_binary() else {
        return;
    };
    let dns = DnsServer::start("127.83.0.53", "etcd-by-dns", [127, 0, 0, 1]);
    let etcd = Etcd::start();
    etcd.put("/app/name", "by-name");
    etcd.put("/app/port", "2379");
    let jail = Jail::new(&binary);
    jail.write(
        "etc/hosts",
        "127.0.0.1 localhost\n127.0.0.7 peer-by-hosts\n",
    );
    jail.write("etc/resolv.conf", "nameserver 127.83.0.53\n");
    jail.resource(
        &format!(
            "{TEMPLATE}{}",
            "hosts = {{ lookup_ip(name=\"peer-by-hosts\") | join(sep=\",\") }}\n\
             dns = {{ lookup_ip(name=\"etcd-by-dns\") | join(sep=\",\") }}\n\
             unknown = {{ lookup_ip(name=\"no-such-peer\") | length }}\n"
        ),
        OWNED,
    );
    let node = etcd.url().replace("127.0.0.1", "etcd-by-dns");
    let output = jail.terad(&["--onetime", "--backend", "etcd", "--node", &node]);
    assert_rendered(
        &jail,
        &output,
        "name = by-name\nport = 2379\nhosts = 127.0.0.7\ndns = 127.0.0.1\nunknown = 0\n",
    );
    assert!(
        dns.asked("etcd-by-dns"),
        "the DNS server was asked for etcd-by-dns"
    );
}

/// No `/dev/random`, no `/dev/urandom`: the binary gets randomness from the `getrandom` system
/// call (`scripts/build-static.sh` sets `getrandom_backend`; without it getrandom 0.3 and 0.4
/// cannot find glibc's function in a static binary and read the devices instead, and terad
/// aborts seeding Tera's hashes). Tera renders, and hickory (`lookup_srv`, random query ids)
/// asks the DNS server.
#[test]
fn static_binary_needs_no_random_devices() {
    let Some(binary) = static_binary() else {
        return;
    };
    let dns = DnsServer::start("127.83.0.54", "peer", [127, 0, 0, 9]);
    let jail = Jail::new(&binary);
    for device in ["dev/random", "dev/urandom"] {
        std::fs::remove_file(jail.path(device)).unwrap();
    }
    jail.write("etc/resolv.conf", "nameserver 127.83.0.54\n");
    jail.resource(
        &format!(
            "{TEMPLATE}{}",
            "srv = {{ lookup_srv(service=\"http\", proto=\"tcp\", name=\"peer\") | length }}\n"
        ),
        OWNED,
    );
    jail.write("keys.yaml", "app:\n  name: jailed\n  port: \"8080\"\n");
    let output = jail.terad(&["--onetime", "--backend", "file", "--file", "/keys.yaml"]);
    assert_rendered(&jail, &output, "name = jailed\nport = 8080\nsrv = 0\n");
    assert!(
        dns.asked("_http._tcp.peer"),
        "hickory asked the DNS server for _http._tcp.peer"
    );
}

/// A DNS server on port 53 (UDP) of a loopback address of its own (each test its own: nextest
/// runs them side by side), knowing one name with one IPv4 address; every other name does not
/// exist. Stopped when dropped.
struct DnsServer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    fn start(listen: &str, name: &'static str, address: [u8; 4]) -> DnsServer {
        use std::sync::atomic::Ordering;
        let socket = std::net::UdpSocket::bind((listen, 53))
            .unwrap_or_else(|e| panic!("bind {listen}:53 for the test's DNS server: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread = std::thread::spawn({
            let (stop, asked) = (stop.clone(), asked.clone());
            move || {
                let mut buffer = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((length, peer)) = socket.recv_from(&mut buffer) else {
                        continue;
                    };
                    if let Some((query, answer)) = dns_answer(&buffer[..length], name, address) {
                        asked.lock().unwrap().push(query);
                        let _ = socket.send_to(&answer, peer);
                    }
                }
            }
        });
        DnsServer {
            stop,
            asked,
            thread: Some(thread),
        }
    }

    fn asked(&self, name: &str) -> bool {
        self.asked.lock().unwrap().iter().any(|query| query == name)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The answer to one DNS query (RFC 1035): `address` for an A query for `name`, no records for
/// its other types, NXDOMAIN for any other name. `None` for what is not a one-question query.
fn dns_answer(query: &[u8], name: &str, address: [u8; 4]) -> Option<(String, Vec<u8>)> {
    if query.len() < 12 || query[4..6] != [0, 1] {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let length = usize::from(*query.get(at)?);
        if length == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at + 1..at + 1 + length)?).into_owned());
        at += 1 + length;
    }
    let question = query.get(12..at + 5)?;
    let qtype = u16::from_be_bytes([query[at + 1], query[at + 2]]);
    let asked = labels.join(".");
    let known = asked.eq_ignore_ascii_case(name);
    let answers: u16 = if known && qtype == 1 { 1 } else { 0 };
    // QR, RD, RA; rcode 3 (NXDOMAIN) for an unknown name.
    let flags: u16 = if known { 0x8180 } else { 0x8183 };
    let mut answer = query[0..2].to_vec();
    for field in [flags, 1, answers, 0, 0] {
        answer.extend_from_slice(&field.to_be_bytes());
    }
    answer.extend_from_slice(question);
    if answers == 1 {
        // The name by a pointer to the question's, type A, class IN, TTL 60, 4 bytes.
        answer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        answer.extend_from_slice(&address);
    }
    Some((asked, answer))
}
