//! Rendering the HAProxy example for 1k, 10k and 100k servers, by both engines: Tera with
//! `templates/haproxy.cfg.tmpl`, Go's `text/template` with the same example as a confd template
//! (`examples/confd/templates/haproxy.cfg.tmpl`; both check every name and address with
//! `safe_name`/`host_port`), and confd's classic template, which checks nothing
//! (`benches/haproxy-classic.cfg.tmpl`: `{{range gets "/proxy/frontend/*"}}    server
//! {{base .Key}} {{.Value}} check` …). Same store, same output bytes.
//!
//! `cargo bench --bench render`. The figures are recorded in BENCHMARKS.md.

use std::path::Path;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use terad::store::KeyStore;
use terad::template::{EngineChoice, KeyScope, RenderInput, TemplateRef, Templates};

/// A store with `servers` registrations under /proxy/frontend, as containers would make them.
pub fn haproxy_store(servers: usize) -> KeyStore {
    let mut store = KeyStore::new();
    store.insert("/proxy/port", "80");
    for i in 0..servers {
        store.insert(
            format!("/proxy/frontend/web-{i:06}"),
            format!(
                "10.{}.{}.{}:8080",
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            ),
        );
    }
    store
}

/// A templates directory holding both templates.
fn templates_dir() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::copy(
        root.join("templates/haproxy.cfg.tmpl"),
        dir.path().join("haproxy.cfg.tmpl"),
    )
    .expect("the Tera example");
    std::fs::copy(
        root.join("examples/confd/templates/haproxy.cfg.tmpl"),
        dir.path().join("haproxy-go.cfg.tmpl"),
    )
    .expect("the Go example");
    std::fs::copy(
        root.join("benches/haproxy-classic.cfg.tmpl"),
        dir.path().join("haproxy-classic.cfg.tmpl"),
    )
    .expect("confd's classic template");
    dir
}

fn render(c: &mut Criterion) {
    let dir = templates_dir();
    let tera = TemplateRef {
        name: "haproxy.cfg.tmpl".to_owned(),
        engine: EngineChoice::Tera,
    };
    let go = TemplateRef {
        name: "haproxy-go.cfg.tmpl".to_owned(),
        engine: EngineChoice::Go,
    };
    let classic = TemplateRef {
        name: "haproxy-classic.cfg.tmpl".to_owned(),
        engine: EngineChoice::Go,
    };
    let engine = Templates::load(dir.path(), [&tera, &go, &classic]).expect("the examples load");
    let scope = Arc::new(KeyScope {
        resource: "haproxy".to_owned(),
        prefix: "/".to_owned(),
        keys: vec!["/proxy".to_owned()],
        values: Default::default(),
    });
    let inputs: Vec<(usize, RenderInput)> = [1_000, 10_000, 100_000]
        .into_iter()
        .map(|servers| {
            let input = RenderInput {
                store: Arc::new(haproxy_store(servers)),
                scope: Arc::clone(&scope),
                services: Default::default(),
            };
            (servers, input)
        })
        .collect();
    // The shipped examples write the same file, with either engine; confd's classic template
    // (no checks of what it interpolates) the same servers.
    for (_, input) in &inputs {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        engine.render(&tera, input, &mut a).expect("Tera renders");
        engine.render(&go, input, &mut b).expect("Go renders");
        engine
            .render(&classic, input, &mut c)
            .expect("the classic renders");
        assert!(a == b, "the Tera and Go renders differ");
        assert!(a == c, "the classic template renders other servers");
    }
    for (group_name, template) in [
        ("haproxy_render", &tera),
        ("haproxy_render_go", &go),
        ("haproxy_render_go_classic", &classic),
    ] {
        let mut group = c.benchmark_group(group_name);
        group.sample_size(20);
        for (servers, input) in &inputs {
            let mut out = Vec::new();
            group.throughput(Throughput::Elements(*servers as u64));
            group.bench_with_input(BenchmarkId::from_parameter(servers), servers, |b, _| {
                b.iter(|| {
                    out.clear();
                    engine.render(template, input, &mut out).expect("renders");
                    out.len()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, render);
criterion_main!(benches);
