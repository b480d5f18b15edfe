//! The HAProxy example as the modes use it: a confdir with its template in either engine, its
//! keys, and waiting for watch mode's first render of it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::server_address;

/// `--go`: the modes use the confd (Go) template.
pub static GO_TEMPLATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The HAProxy example in each engine's language; both render the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `templates/haproxy.cfg.tmpl`
    Tera,
    /// `examples/confd/templates/haproxy.cfg.tmpl`: the same example as a confd template,
    /// names and addresses checked as in Tera (`safeName`, `hostPort`).
    Go,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Tera => "Tera",
            Engine::Go => "Go",
        }
    }
}

/// A confdir with the repository's HAProxy template (the Go one with `--go`) and a resource
/// writing into `out/`, with a reload command that counts reloads in `reloads.log`.
pub fn confdir(dir: &Path) -> PathBuf {
    let engine = if GO_TEMPLATE.load(std::sync::atomic::Ordering::Relaxed) {
        Engine::Go
    } else {
        Engine::Tera
    };
    confdir_with(dir, engine)
}

/// [`confdir`] with the template of `engine`, always named `haproxy.cfg.tmpl` and without an
/// `engine` key in the resource: the Go one is found by `auto`, as in a confd confdir.
pub fn confdir_with(dir: &Path, engine: Engine) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let template = match engine {
        Engine::Tera => "templates/haproxy.cfg.tmpl",
        Engine::Go => "examples/confd/templates/haproxy.cfg.tmpl",
    };
    std::fs::copy(root.join(template), dir.join("templates/haproxy.cfg.tmpl")).unwrap();
    let dest = dir.join("out/haproxy.cfg");
    std::fs::write(
        dir.join("conf.d/haproxy.toml"),
        format!(
            "[template]\nsrc = \"haproxy.cfg.tmpl\"\ndest = \"{}\"\nkeys = [\"/proxy\"]\nreload_cmd = \"echo reload >> {}\"\n",
            dest.display(),
            dir.join("reloads.log").display()
        ),
    )
    .unwrap();
    dest
}

/// The keys of the HAProxy example: the frontend port and `servers` registered servers.
pub fn haproxy_entries(port: &str, servers: usize) -> Vec<(String, String)> {
    let mut entries = vec![("/proxy/port".to_owned(), port.to_owned())];
    entries
        .extend((0..servers).map(|i| (format!("/proxy/frontend/web-{i:06}"), server_address(i))));
    entries
}

/// Waits until watch mode's first render (which lists the last server) is at `dest`.
pub fn wait_initial_render(dest: &Path, servers: usize, limit: Duration) {
    let last = format!("web-{:06}", servers - 1);
    let started = Instant::now();
    while !std::fs::read_to_string(dest).is_ok_and(|t| t.contains(&last)) {
        assert!(started.elapsed() < limit, "no initial render");
        std::thread::sleep(Duration::from_millis(5));
    }
}
