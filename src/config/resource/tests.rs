//! Resource files as an operator writes them: every key, every mistake.

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
        std::fs::create_dir_all(dir.path().join("templates/sub")).unwrap();
        std::fs::write(dir.path().join("templates/app.tmpl"), "x").unwrap();
        std::fs::write(dir.path().join("templates/sub/b.tmpl"), "y").unwrap();
        Fixture { dir }
    }

    fn resource(&self, name: &str, body: &str) -> &Self {
        let path = self.dir.path().join("conf.d").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
        self
    }

    fn load(&self, prefix: &str) -> Result<Vec<Resource>, ConfigErrors> {
        let reading = Reading {
            global_prefix: prefix,
            ..Reading::terad()
        };
        self.load_as(reading).map(|(resources, _)| resources)
    }

    /// Under `reading`, with the warnings.
    fn load_as(&self, reading: Reading<'_>) -> Result<(Vec<Resource>, Vec<String>), ConfigErrors> {
        let mut warnings = Vec::new();
        let (resources, errors) = load_resources(
            &self.dir.path().join("conf.d"),
            &self.dir.path().join("templates"),
            reading,
            &mut warnings,
        );
        let root = format!("{}/", self.dir.path().display());
        let warnings = warnings
            .iter()
            .map(|w| w.to_string().replace(&root, ""))
            .collect();
        errors.into_result((resources, warnings))
    }

    fn errors(&self) -> Vec<String> {
        let root = format!("{}/", self.dir.path().display());
        self.load("")
            .unwrap_err()
            .0
            .iter()
            .map(|e| e.to_string().replace(&root, ""))
            .collect()
    }
}

#[test]
fn parses_confd_resource_with_every_key() {
    let fx = Fixture::new();
    fx.resource(
        "app.toml",
        r#"
[template]
src = "app.tmpl"
dest = "/tmp/app.conf"
prefix = "/prod"
keys = ["/app/db", "app/cache", "/app/db"]
mode = "0640"
uid = 0
gid = 0
check_cmd = "check {{.src}}"
reload_cmd = "reload {{ .dest }}"
create_dirs = true
check_timeout = "5s"
reload_timeout = 90
"#,
    );
    let resources = fx.load("/global").unwrap();
    let r = &resources[0];
    assert_eq!(r.name, "app");
    assert_eq!(r.template.name, "app.tmpl");
    assert_eq!(r.dest, PathBuf::from("/tmp/app.conf"));
    assert_eq!(r.prefix, "/global/prod");
    assert_eq!(r.keys, ["/global/prod/app/cache", "/global/prod/app/db"]);
    assert_eq!(r.mode, Some(0o640));
    assert_eq!((r.uid, r.gid), (Some(0), Some(0)));
    assert!(r.check_cmd.is_some() && r.reload_cmd.is_some());
    assert!(r.create_dirs);
    assert_eq!(r.check_timeout, Duration::from_secs(5));
    assert_eq!(r.reload_timeout, Duration::from_secs(90));
}

#[test]
fn coordination_and_health_keys_parse_with_defaults() {
    use crate::config::coordination::{Coordination, HealthCheck, HealthProbe};
    let fx = Fixture::new();
    fx.resource(
        "app.toml",
        r#"
[template]
src = "app.tmpl"
dest = "/tmp/app.conf"
health_url = "http://127.0.0.1:8404/health"
health_retries = 5

[template.coordination]
group = "edge-haproxy"
ttl = "30s"
"#,
    );
    let r = &fx.load("").unwrap()[0];
    assert_eq!(
        r.coordination,
        Some(Coordination {
            group: "edge-haproxy".into(),
            max_concurrent: 1,
            ttl: Duration::from_secs(30),
            jitter: Duration::from_secs(1),
            service: None,
        })
    );
    assert_eq!(
        r.health,
        Some(HealthCheck {
            probe: HealthProbe::Url("http://127.0.0.1:8404/health".into()),
            timeout: Duration::from_secs(5),
            retries: 5,
            interval: Duration::from_secs(1),
        })
    );
}

#[test]
fn a_coordination_service_replaces_max_concurrent_with_max_unavailable() {
    use crate::config::coordination::ServiceCoordination;
    let fx = Fixture::new();
    fx.resource(
        "app.toml",
        r#"
[template]
src = "app.tmpl"
dest = "/tmp/app.conf"

[template.coordination]
group = "api"
service = "api"
max_unavailable = 2
service_id = "api-1"
"#,
    );
    let r = &fx.load("").unwrap()[0];
    let coordination = r.coordination.as_ref().unwrap();
    assert_eq!(coordination.max_concurrent, 2, "the slots are bounded too");
    assert_eq!(
        coordination.service,
        Some(ServiceCoordination {
            name: "api".into(),
            max_unavailable: 2,
            service_id: Some("api-1".into()),
        })
    );

    let fx = Fixture::new();
    fx.resource(
        "a.toml",
        "[template]\nsrc = \"a.tmpl\"\ndest = \"/tmp/a\"\n\n[template.coordination]\ngroup = \"g\"\nservice = \"api\"\nmax_concurrent = 2\n",
    );
    fx.resource(
        "b.toml",
        "[template]\nsrc = \"b.tmpl\"\ndest = \"/tmp/b\"\n\n[template.coordination]\ngroup = \"g\"\nservice_id = \"api-1\"\n",
    );
    let errors = fx.errors();
    for want in [
        "conf.d/a.toml:8:18: \"coordination.max_concurrent\": a group that names a service is bounded by max_unavailable instead",
        "conf.d/b.toml:7:14: \"coordination.service_id\": needs `service`, the Consul service whose instances take turns",
    ] {
        assert!(
            errors.iter().any(|e| e == want),
            "{want:?} not in {errors:#?}"
        );
    }
}

#[test]
fn bad_coordination_and_health_keys_are_named() {
    let fx = Fixture::new();
    fx.resource(
        "app.toml",
        r#"
[template]
src = "app.tmpl"
dest = "/tmp/app.conf"
health_cmd = "true"
health_url = "ftp://x"
health_retries = -1

[template.coordination]
group = "a/b"
max_concurrent = 0
ttl = "1s"
"#,
    );
    let errors = fx.errors();
    let expect = [
        "conf.d/app.toml:5:14: \"health_cmd\": set either health_cmd or health_url, not both",
        "conf.d/app.toml:7:18: \"health_retries\": -1 is not a number of retries",
        "conf.d/app.toml:10:9: \"coordination.group\": \"a/b\" is not a group name (letters, digits, '-', '_' and '.', at most 128)",
        "conf.d/app.toml:11:18: \"coordination.max_concurrent\": 0 is not at least 1",
        "conf.d/app.toml:12:7: \"coordination.ttl\": must be at least 2s",
    ];
    for want in expect {
        assert!(
            errors.iter().any(|e| e == want),
            "{want:?} not in {errors:#?}"
        );
    }
}

#[test]
fn defaults_for_optional_keys() {
    let fx = Fixture::new();
    fx.resource(
        "a.toml",
        "[template]\nsrc = \"sub/b.tmpl\"\ndest = \"out\"\n",
    );
    let r = &fx.load("").unwrap()[0];
    assert_eq!(r.template.name, "sub/b.tmpl");
    assert_eq!(r.prefix, "/");
    assert!(r.keys.is_empty());
    assert_eq!(r.mode, None);
    assert_eq!((r.uid, r.gid), (None, None));
    assert!(!r.create_dirs);
    assert_eq!(r.check_timeout, DEFAULT_CHECK_TIMEOUT);
}

#[test]
fn owner_and_group_names_resolve() {
    let fx = Fixture::new();
    fx.resource(
        "a.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/x\"\nowner = \"root\"\ngroup = \"root\"\n",
    );
    let r = &fx.load("").unwrap()[0];
    assert_eq!((r.uid, r.gid), (Some(0), Some(0)));
}

#[test]
fn a_mode_written_as_a_number_is_told_to_be_a_string() {
    let fx = Fixture::new();
    fx.resource(
        "a.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/a\"\nmode = 0644   # rw-r--r--\n",
    );
    let errors = fx.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("conf.d/a.toml:4:8: "), "{errors:?}");
    assert!(
        errors[0].ends_with("; write it as a string: mode = \"0644\""),
        "{errors:?}"
    );
}

#[test]
fn mode_parsing_is_always_octal() {
    assert_eq!(parse_mode("0644"), Ok(0o644));
    assert_eq!(parse_mode("644"), Ok(0o644));
    assert_eq!(parse_mode("0o600"), Ok(0o600));
    assert_eq!(parse_mode("4755"), Ok(0o4755));
    assert_eq!(parse_mode("0"), Ok(0));
    for bad in ["", "0999", "rw-r--r--", "-644", "0x1a4", "77777", " "] {
        assert!(parse_mode(bad).is_err(), "{bad:?} must be rejected");
    }
    assert_eq!(
        parse_mode("0999").unwrap_err().to_string(),
        "invalid mode \"0999\": expected octal digits such as \"0644\""
    );
}

#[test]
fn every_error_in_every_file_is_reported_with_position() {
    let fx = Fixture::new();
    fx.resource(
        "a.toml",
        r#"[template]
src = "../etc/passwd"
dest = "/tmp/a"
mode = "0999"
uid = 1
owner = "root"
check_cmd = "check {{.source}}"
check_timeout = "soon"
"#,
    )
    .resource(
        "b.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/a\"\nkeyz = []\n",
    )
    .resource("c.toml", "[template\nsrc = 1")
    .resource(
        "d.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/d\"\nmode = 644\n",
    )
    // confd's `keys = [""]` (the whole prefix) is valid.
    .resource("e.toml", "[template]\nkeys = [\"\"]\n")
    .resource(
        "f.toml",
        "[template]\nsrc = \"missing.tmpl\"\ndest = \"/tmp/f\"\n",
    );
    let errors = fx.errors();
    let expected = [
        "conf.d/a.toml:2:7: \"src\": \"../etc/passwd\" points outside the templates directory",
        "conf.d/a.toml:4:8: \"mode\": invalid mode \"0999\": expected octal digits such as \"0644\"",
        "conf.d/a.toml:5:7: \"uid\": set either uid or owner, not both",
        "conf.d/a.toml:7:13: \"check_cmd\": unknown placeholder \"{{.source}}\"",
        "conf.d/a.toml:8:17: \"check_timeout\": invalid duration \"soon\"",
        "conf.d/b.toml:4:1: unknown field `keyz`",
        "conf.d/c.toml:1:10:",
        "conf.d/d.toml:4:8: invalid type: integer `644`, expected a string; write it as a \
         string: mode = \"644\"",
        "conf.d/e.toml: \"src\": missing",
        "conf.d/e.toml: \"dest\": missing",
        "conf.d/f.toml:2:7: \"src\": template",
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in\n{}",
            errors.join("\n")
        );
    }
    assert_eq!(errors.len(), expected.len(), "{}", errors.join("\n"));
}

#[test]
fn two_resources_with_one_destination_are_an_error() {
    let fx = Fixture::new();
    fx.resource(
        "a.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/same\"\n",
    )
    .resource(
        "b.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/./same\"\n",
    );
    let errors = fx.errors();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .starts_with("conf.d/b.toml: \"dest\": destination \"/tmp/./same\" is also written by")
    );
}

#[test]
fn walks_subdirectories_in_order_and_skips_hidden_entries() {
    let fx = Fixture::new();
    fx.resource(
        "z.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/z\"\n",
    )
    .resource(
        "edge/a.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/ea\"\n",
    )
    .resource(
        "..data/a.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/ea\"\n",
    )
    .resource(".hidden.toml", "not toml at all")
    .resource("notes.txt", "ignored");
    let names: Vec<_> = fx.load("").unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["edge/a", "z"]);
}

#[test]
fn empty_conf_d_is_an_error() {
    let fx = Fixture::new();
    let errors = fx.errors();
    assert_eq!(
        errors,
        ["conf.d: no template resources (*.toml files) found"]
    );
}

#[test]
fn template_links_may_not_leave_the_templates_directory() {
    let fx = Fixture::new();
    let outside = fx.dir.path().join("secret");
    std::fs::write(&outside, "s").unwrap();
    std::os::unix::fs::symlink(&outside, fx.dir.path().join("templates/link.tmpl")).unwrap();
    fx.resource(
        "a.toml",
        "[template]\nsrc = \"link.tmpl\"\ndest = \"/tmp/a\"\n",
    );
    let errors = fx.errors();
    assert!(
        errors[0].contains("outside the templates directory"),
        "{errors:?}"
    );
}

fn confd(global_prefix: &str) -> Reading<'_> {
    Reading {
        global_prefix,
        rules: crate::cli::Flavour::Confd.rules(),
    }
}

#[test]
fn as_confd_a_global_prefix_replaces_the_resources_own() {
    let fx = Fixture::new();
    fx.resource(
        "app.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/a\"\nprefix = \"/app\"\nkeys = [\"/db\"]\n",
    );
    fx.resource(
        "bare.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/b\"\nkeys = [\"/db\"]\n",
    );
    let (resources, _) = fx.load_as(confd("/production")).unwrap();
    assert_eq!(resources[0].prefix, "/production");
    assert_eq!(resources[0].keys, ["/production/db"]);
    assert_eq!(resources[1].prefix, "/production");
    // Without a global prefix, the resource's own (with the leading slash confd adds).
    let (resources, _) = fx.load_as(confd("")).unwrap();
    assert_eq!(resources[0].prefix, "/app");
    assert_eq!(resources[0].keys, ["/app/db"]);
    assert_eq!(resources[1].prefix, "/");
    // terad's own rule joins them.
    assert_eq!(fx.load("/production").unwrap()[0].prefix, "/production/app");
}

#[test]
fn as_confd_unknown_keys_are_warnings_naming_the_valid_ones() {
    let fx = Fixture::new();
    fx.resource(
        "app.toml",
        "version = 2\n[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/a\"\nkeys = [\"/db\"]\n\
         reload-cmd = \"true\"\nfuture_key = 1\n",
    );
    let (resources, warnings) = fx.load_as(confd("")).unwrap();
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].reload_cmd, None);
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(
        warnings[0].starts_with(
            "conf.d/app.toml:1: unknown key \"version\" ignored, as confd ignores it; valid keys: \
             template"
        ),
        "{warnings:#?}"
    );
    assert!(
        warnings[1].starts_with(
            "conf.d/app.toml:6: unknown key \"reload-cmd\" in [template] ignored, as confd ignores \
             it; did you mean \"reload_cmd\"?; valid keys: src, engine, dest, keys, prefix, mode,"
        ),
        "{warnings:#?}"
    );
    assert!(warnings[2].contains("\"future_key\""), "{warnings:#?}");
    // terad's own format stays strict.
    let errors = fx.errors();
    assert!(
        errors[0].contains("unknown field `future_key`"),
        "{errors:?}"
    );
}

#[test]
fn as_confd_a_mode_confd_reads_as_decimal_is_read_as_octal_with_a_warning() {
    let fx = Fixture::new();
    for (name, mode) in [("a", "644"), ("b", "0644"), ("c", "0o755"), ("d", "0")] {
        fx.resource(
            &format!("{name}.toml"),
            &format!("[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/{name}\"\nmode = \"{mode}\"\n"),
        );
    }
    let (resources, warnings) = fx.load_as(confd("")).unwrap();
    assert_eq!(resources[0].mode, Some(0o644));
    assert_eq!(
        warnings,
        [
            "conf.d/a.toml:4: mode \"644\" is read as octal 0644; confd reads it as the decimal number \
          644 and writes permissions 0204; write \"0644\" to mean 0644 to both"
        ]
    );
    assert!(fx.load_as(Reading::terad()).unwrap().1.is_empty());
}

#[test]
fn a_haproxy_table_names_the_runtime_api_with_default_timeouts() {
    use crate::config::haproxy::{DEFAULT_DRAIN_TIMEOUT, DEFAULT_TIMEOUT, HaproxyRuntime};
    use crate::haproxy::RuntimeAddress;
    let table = |body: &str| {
        let fx = Fixture::new();
        fx.resource(
            "a.toml",
            &format!(
                "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/a\"\n\n[template.haproxy]\n{body}"
            ),
        );
        fx.load("").unwrap().remove(0).haproxy
    };
    assert_eq!(
        table("runtime_api = \"/run/haproxy/admin.sock\"\n"),
        Some(HaproxyRuntime {
            runtime_api: RuntimeAddress::Unix("/run/haproxy/admin.sock".into()),
            timeout: DEFAULT_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        })
    );
    assert_eq!(DEFAULT_TIMEOUT, Duration::from_secs(2));
    assert_eq!(DEFAULT_DRAIN_TIMEOUT, Duration::from_secs(10));
    for (written, address) in [
        (
            "unix@/run/haproxy/admin.sock",
            RuntimeAddress::Unix("/run/haproxy/admin.sock".into()),
        ),
        (
            "ipv4@127.0.0.1:9999",
            RuntimeAddress::Tcp("127.0.0.1:9999".parse().unwrap()),
        ),
        (
            "ipv6@[::1]:9999",
            RuntimeAddress::Tcp("[::1]:9999".parse().unwrap()),
        ),
    ] {
        let haproxy = table(&format!(
            "runtime_api = \"{written}\"\ntimeout = \"500ms\"\ndrain_timeout = 30\n"
        ))
        .unwrap();
        assert_eq!(haproxy.runtime_api, address, "{written}");
        assert_eq!(haproxy.timeout, Duration::from_millis(500));
        assert_eq!(haproxy.drain_timeout, Duration::from_secs(30));
    }
    // No drain: removed servers' sessions are shut down at once.
    let haproxy = table("runtime_api = \"/a.sock\"\ndrain_timeout = \"0s\"\n").unwrap();
    assert_eq!(haproxy.drain_timeout, Duration::ZERO);

    let fx = Fixture::new();
    fx.resource(
        "a.toml",
        "[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/a\"\n",
    );
    assert_eq!(
        fx.load("").unwrap()[0].haproxy,
        None,
        "off unless asked for"
    );
}

#[test]
fn bad_haproxy_tables_are_named_with_file_line_and_key() {
    let fx = Fixture::new();
    let resource = |name: &str, body: &str| {
        fx.resource(
            name,
            &format!("[template]\nsrc = \"app.tmpl\"\ndest = \"/tmp/{name}\"\n\n[template.haproxy]\n{body}"),
        );
    };
    resource(
        "a.toml",
        "runtime_api = \"admin.sock\"\ntimeout = \"0s\"\ndrain_timeout = \"soon\"\n",
    );
    resource("b.toml", "timeout = \"1s\"\n");
    resource("c.toml", "runtime_api = \"ipv4@[::1]:9999\"\n");
    resource(
        "d.toml",
        "runtime_api = \"/a.sock\"\nsocket = \"/b.sock\"\n",
    );
    resource("e.toml", "runtime_api = 9999\n");
    let errors = fx.errors();
    let expected = [
        "conf.d/a.toml:6:15: \"haproxy.runtime_api\": \"admin.sock\" is no runtime api address: give a socket path (\"/run/haproxy/admin.sock\", \"unix@/path\") or \"ipv4@127.0.0.1:9999\", \"ipv6@[::1]:9999\"",
        "conf.d/a.toml:7:11: \"haproxy.timeout\": must be longer than zero",
        "conf.d/a.toml:8:17: \"haproxy.drain_timeout\": invalid duration \"soon\"",
        "conf.d/b.toml:5:1: \"haproxy.runtime_api\": missing: haproxy's stats socket at level admin, such as \"/run/haproxy/admin.sock\" or \"ipv4@127.0.0.1:9999\"",
        "conf.d/c.toml:6:15: \"haproxy.runtime_api\": \"ipv4@[::1]:9999\" is no runtime api address",
        "conf.d/d.toml:7:1: unknown field `socket`, expected one of `runtime_api`, `timeout`, `drain_timeout`",
        "conf.d/e.toml:6:15: invalid type: integer `9999`, expected a string",
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in\n{}",
            errors.join("\n")
        );
    }
    assert_eq!(errors.len(), expected.len(), "{}", errors.join("\n"));
}
