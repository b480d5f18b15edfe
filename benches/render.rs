//! Rendering the HAProxy example (`templates/haproxy.cfg.tmpl`) for 1k, 10k and 100k servers.
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

fn render(c: &mut Criterion) {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let template = TemplateRef {
        name: "haproxy.cfg.tmpl".to_owned(),
        engine: EngineChoice::Tera,
    };
    let engine = Templates::load(&templates, [&template]).expect("the example loads");
    let scope = Arc::new(KeyScope {
        resource: "haproxy".to_owned(),
        prefix: "/".to_owned(),
        keys: vec!["/proxy".to_owned()],
        values: Default::default(),
    });
    let mut group = c.benchmark_group("haproxy_render");
    group.sample_size(20);
    for servers in [1_000, 10_000, 100_000] {
        let input = RenderInput {
            store: Arc::new(haproxy_store(servers)),
            scope: Arc::clone(&scope),
        };
        let mut out = Vec::new();
        engine.render(&template, &input, &mut out).expect("renders");
        group.throughput(Throughput::Elements(servers as u64));
        group.bench_with_input(BenchmarkId::from_parameter(servers), &servers, |b, _| {
            b.iter(|| {
                out.clear();
                engine.render(&template, &input, &mut out).expect("renders");
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
