//! Rendering the HAProxy example for 1k, 10k and 100k servers, by both engines: Tera with
//! `templates/haproxy.cfg.tmpl`, Go's `text/template` with the same example as a confd template
//! (`examples/confd/templates/haproxy.cfg.tmpl`; both check every name and address with
//! `safe_name`/`host_port`), and confd's classic template, which checks nothing
//! (`benches/haproxy-classic.cfg.tmpl`: `{{range gets "/proxy/frontend/*"}}    server
//! {{base .Key}} {{.Value}} check` …). Same store, same output bytes.
//!
//! And for Consul services: reading Consul's health answer for 10 and 1 000 instances and
//! rendering the services example (`examples/consul-services/templates/haproxy-services.cfg.tmpl`) from it.
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

/// Consul 1.8's answer to `/v1/health/service/web?passing` for `instances` agent-registered
/// instances with a TTL check each, as it sends it (indented, every field).
pub fn consul_health_answer(instances: usize) -> String {
    let entries: Vec<String> = (0..instances)
        .map(|i| {
            let address = format!("10.0.{}.{}", (i >> 8) & 0xff, i & 0xff);
            format!(
                r#"    {{
        "Node": {{
            "ID": "b4ffde7d-ae4a-5074-2bdc-1a3d7695539a",
            "Node": "vm",
            "Address": "127.0.0.1",
            "Datacenter": "dc1",
            "TaggedAddresses": {{
                "lan": "127.0.0.1",
                "lan_ipv4": "127.0.0.1",
                "wan": "127.0.0.1",
                "wan_ipv4": "127.0.0.1"
            }},
            "Meta": {{
                "consul-network-segment": ""
            }},
            "CreateIndex": 11,
            "ModifyIndex": 12
        }},
        "Service": {{
            "ID": "web-{i:06}",
            "Service": "web",
            "Tags": [],
            "Address": "{address}",
            "TaggedAddresses": {{
                "lan_ipv4": {{
                    "Address": "{address}",
                    "Port": 8080
                }},
                "wan_ipv4": {{
                    "Address": "{address}",
                    "Port": 8080
                }}
            }},
            "Meta": null,
            "Port": 8080,
            "Weights": {{
                "Passing": 1,
                "Warning": 1
            }},
            "EnableTagOverride": false,
            "Proxy": {{
                "MeshGateway": {{}},
                "Expose": {{}}
            }},
            "Connect": {{}},
            "CreateIndex": 13,
            "ModifyIndex": 13
        }},
        "Checks": [
            {{
                "Node": "vm",
                "CheckID": "serfHealth",
                "Name": "Serf Health Status",
                "Status": "passing",
                "Notes": "",
                "Output": "Agent alive and reachable",
                "ServiceID": "",
                "ServiceName": "",
                "ServiceTags": [],
                "Type": "",
                "Definition": {{}},
                "CreateIndex": 11,
                "ModifyIndex": 11
            }},
            {{
                "Node": "vm",
                "CheckID": "check-web-{i}",
                "Name": "ttl",
                "Status": "passing",
                "Notes": "",
                "Output": "",
                "ServiceID": "web-{i:06}",
                "ServiceName": "web",
                "ServiceTags": [],
                "Type": "ttl",
                "Definition": {{}},
                "CreateIndex": 13,
                "ModifyIndex": 1014
            }}
        ]
    }}"#
            )
        })
        .collect();
    format!("[\n{}\n]", entries.join(",\n"))
}

fn services(c: &mut Criterion) {
    use terad::template::services::{HealthQuery, ServiceInput, ServiceQuery, ServiceSnapshot};
    let templates =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/consul-services/templates");
    let template = TemplateRef {
        name: "haproxy-services.cfg.tmpl".to_owned(),
        engine: EngineChoice::Tera,
    };
    let engine = Templates::load(&templates, [&template]).expect("the example loads");
    let scope = Arc::new(KeyScope {
        resource: "haproxy-services".to_owned(),
        prefix: "/".to_owned(),
        keys: vec!["/proxy/port".to_owned()],
        values: Default::default(),
    });
    let query = ServiceQuery::Health(HealthQuery::new("web").unwrap());
    let mut group = c.benchmark_group("consul_services");
    group.sample_size(20);
    for instances in [10, 1_000] {
        let answer = consul_health_answer(instances);
        let data = terad::backend::consul::parse_service_answer(&query, answer.as_bytes())
            .expect("parses");
        assert_eq!(data.len(), instances);
        group.throughput(Throughput::Elements(instances as u64));
        group.bench_with_input(
            BenchmarkId::new("parse", instances),
            &answer,
            |b, answer| {
                b.iter(|| {
                    terad::backend::consul::parse_service_answer(&query, answer.as_bytes())
                        .unwrap()
                        .len()
                })
            },
        );
        let mut snapshot = ServiceSnapshot::default();
        snapshot.results.insert(query.clone(), Ok(Arc::new(data)));
        let snapshot = Arc::new(snapshot);
        let mut store = KeyStore::new();
        store.insert("/proxy/port", "80");
        let store = Arc::new(store);
        let mut out = Vec::new();
        group.bench_function(BenchmarkId::new("render", instances), |b| {
            b.iter(|| {
                let input = RenderInput {
                    store: Arc::clone(&store),
                    scope: Arc::clone(&scope),
                    services: ServiceInput::new(Arc::clone(&snapshot)),
                };
                out.clear();
                engine.render(&template, &input, &mut out).expect("renders");
                out.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, render, services);
criterion_main!(benches);
