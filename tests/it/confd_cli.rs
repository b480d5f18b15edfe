//! confd's command line and configuration file with the real binary: Go's flag syntax, a
//! `confd.toml` in the confdir, the name `confd` (a symlink), and the messages a confd user
//! gets for what terad does not understand.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{Fixture, run, stderr};

const LIMIT: Duration = Duration::from_secs(20);

/// A confdir rendering `/app/name` into `out/app.conf`, keys in `keys.yaml`.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.write("keys.yaml", "app:\n  name: demo\n");
    fx.template("app.tmpl", "name={{ getv(key=\"/app/name\") }}\n");
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\n",
            fx.path("out/app.conf").display()
        ),
    );
    fx
}

/// `program` (the terad binary or a link to it) with a clean environment and no arguments.
fn bare(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars() {
        if name.starts_with("TERAD_") || name.starts_with("CONSUL_HTTP") {
            command.env_remove(name);
        }
    }
    command.env_remove("RUST_LOG");
    command
}

fn terad() -> Command {
    bare(Path::new(env!("CARGO_BIN_EXE_terad")))
}

#[test]
fn a_confd_command_line_renders_in_every_go_spelling() {
    for spelling in [
        "-onetime -backend file -file KEYS -confdir DIR",
        "--onetime --backend file --file KEYS --confdir DIR",
        "-onetime=true -backend=file -file=KEYS -confdir=DIR",
        "--onetime=true --backend=file --file=KEYS --confdir=DIR",
    ] {
        let fx = fixture();
        let keys = fx.path("keys.yaml").display().to_string();
        let dir = fx.root().display().to_string();
        let args: Vec<String> = spelling
            .split(' ')
            .map(|arg| arg.replace("KEYS", &keys).replace("DIR", &dir))
            .collect();
        let output = run(terad().args(&args), LIMIT);
        assert!(output.status.success(), "{spelling}: {}", stderr(&output));
        assert_eq!(fx.read("out/app.conf"), "name=demo\n", "{spelling}");
    }
}

#[test]
fn a_confd_flag_terad_does_not_know_gets_a_hint() {
    let fx = fixture();
    let output = run(
        terad()
            .args(["-onetim", "-backend", "file", "-confdir"])
            .arg(fx.root()),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "terad: unknown flag \"-onetim\"; did you mean -onetime? (terad takes confd's flags and \
         its own options, with one or two dashes; see --help)\n"
    );

    let output = run(terad().args(["-onetime", "true", "-noop"]), LIMIT);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("write -onetime=true"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn confds_flags_for_what_terad_lacks_get_the_messages_of_confd_toml() {
    let fx = fixture();
    let output = run(
        fx.onetime()
            .args(["-table", "t", "-srv-domain", "example.com"]),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(
            "\"--srv-domain\": discovering nodes through DNS SRV records is not supported"
        ),
        "{text}"
    );
    assert!(!fx.path("out/app.conf").exists());

    let output = run(fx.onetime().args(["-table", "t", "-app-id", "a"]), LIMIT);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    for flag in ["--table", "--app-id"] {
        assert!(
            text.lines()
                .any(|line| line.contains("confd setting ignored")
                    && line.contains(&format!("key={flag}"))),
            "{flag}: {text}"
        );
    }
}

#[test]
fn a_confd_toml_in_the_confdir_is_loaded_and_named_in_the_log() {
    let fx = fixture();
    let config = fx.write(
        "confd.toml",
        &format!(
            "backend = \"file\"\nfile = [\"{}\"]\nlog-level = \"info\"\n",
            fx.path("keys.yaml").display()
        ),
    );
    let output = run(
        terad().arg("-onetime").arg("-confdir").arg(fx.root()),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "name=demo\n");
    let log = stderr(&output);
    assert!(
        log.lines().any(|line| line.contains("INFO")
            && line.contains("configuration file loaded")
            && line.contains(&format!("file={}", config.display()))),
        "{log}"
    );
}

#[test]
fn without_any_configuration_the_unreachable_error_says_the_default_etcd_endpoint_was_used() {
    let fx = fixture();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", 2379)).is_err(),
        "this test needs nothing listening on etcd's default port, 127.0.0.1:2379"
    );
    let output = run(
        terad()
            .args(["--onetime", "--backend-timeout", "1s", "--confdir"])
            .arg(fx.root()),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    let want = format!(
        "cannot reach etcd at http://127.0.0.1:2379 (the default endpoint: no --backend or --node \
         was given and no configuration file was found at {} or {})",
        fx.path("terad.toml").display(),
        fx.path("confd.toml").display()
    );
    assert!(
        log.lines()
            .any(|line| line.contains("giving up") && line.contains(&want)),
        "{log}"
    );
    assert!(
        log.contains("no configuration file; using the command line"),
        "{log}"
    );
}

#[test]
fn a_symlink_named_confd_is_the_whole_migration() {
    let fx = fixture();
    let bin = tempfile::tempdir().unwrap();
    let confd = bin.path().join("confd");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_terad"), &confd).unwrap();

    // confd's own command line, unchanged.
    let output = run(
        bare(&confd)
            .args(["-onetime", "-backend", "file", "-file"])
            .arg(fx.path("keys.yaml"))
            .arg("-confdir")
            .arg(fx.root()),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "name=demo\n");

    // Without -confdir, confd's directory.
    assert!(
        !Path::new("/etc/confd").exists(),
        "this test needs no /etc/confd on the machine"
    );
    let output = run(
        bare(&confd)
            .args(["-onetime", "-backend", "file", "-file"])
            .arg(fx.path("keys.yaml")),
        LIMIT,
    );
    // A configuration error exits 1 as confd, which ends every failure with log.Fatal.
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/etc/confd/conf.d: cannot read resource directory"),
        "{}",
        stderr(&output)
    );
    let output = run(bare(&confd).arg("-help"), LIMIT);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(help.contains("Usage: confd"), "{help}");
    assert!(help.contains("[default: /etc/confd]"), "{help}");
    assert!(
        help.contains("[default: /etc/confd/confd.toml, if present]"),
        "{help}"
    );

    // Under its own name, terad's.
    let output = run(
        terad()
            .args(["-onetime", "-backend", "file", "-file"])
            .arg(fx.path("keys.yaml")),
        LIMIT,
    );
    assert!(
        stderr(&output).contains("/etc/terad/conf.d"),
        "{}",
        stderr(&output)
    );
}

/// The README's quick start, the second way: the bundled HAProxy example as a confd template
/// (`examples/confd/`) with confd's flags renders the same file as the Tera example.
#[test]
fn the_confd_example_renders_the_same_file_as_the_tera_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let render = |confdir: &str, template: &str, args: &[&str]| {
        let fx = Fixture::new();
        fx.template(
            "haproxy.cfg.tmpl",
            &std::fs::read_to_string(root.join(confdir).join("templates").join(template)).unwrap(),
        );
        let resource =
            std::fs::read_to_string(root.join(confdir).join("conf.d/haproxy.toml")).unwrap();
        assert!(resource.contains("dest = \"/etc/haproxy/haproxy.cfg\""));
        fx.resource(
            "haproxy.toml",
            &resource.replace(
                "/etc/haproxy/haproxy.cfg",
                &fx.path("out/haproxy.cfg").display().to_string(),
            ),
        );
        let mut command = fx.terad();
        command
            .args(args)
            .arg(root.join("examples/haproxy-keys.yaml"));
        let output = run(&mut command, Duration::from_secs(30));
        assert!(output.status.success(), "{}", stderr(&output));
        (fx.read("out/haproxy.cfg"), stderr(&output))
    };
    let (tera, _) = render(
        ".",
        "haproxy.cfg.tmpl",
        &["--onetime", "--sync-only", "--backend", "file", "--file"],
    );
    let (go, log) = render(
        "examples/confd",
        "haproxy.cfg.tmpl",
        &["-onetime", "-sync-only", "-backend", "file", "-file"],
    );
    assert!(tera.contains("server web1 10.0.0.11:8080 check"), "{tera}");
    assert_eq!(go, tera);
    assert!(log.contains("engine=\"go\""), "{log}");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(
            "-onetime -noop -backend file -file examples/haproxy-keys.yaml -confdir examples/confd"
        ),
        "the README's quick start shows the confd way"
    );
}

/// confd's exit statuses: 1 for every failure, 2 only for a command line Go's flag package
/// cannot parse; and `-version` in confd's shape, on standard output, exiting 0.
#[test]
fn as_confd_every_failure_exits_1_and_the_version_has_confds_shape() {
    let fx = fixture();
    let bin = tempfile::tempdir().unwrap();
    let confd = bin.path().join("confd");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_terad"), &confd).unwrap();
    let keys = fx.path("keys.yaml");
    let onetime = |extra: &[&str]| {
        let mut command = bare(&confd);
        command
            .args(["-onetime", "-backend", "file", "-file"])
            .arg(&keys)
            .arg("-confdir")
            .arg(fx.root())
            .args(extra);
        run(&mut command, LIMIT)
    };
    // Configuration errors: a bad value, a refused confd setting.
    for extra in [&["-log-level", "loud"][..], &["-srv-domain", "example.com"]] {
        let output = onetime(extra);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{extra:?}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).contains("configuration error"), "{extra:?}");
    }
    // A render that fails.
    fx.template("app.tmpl", "{{ getv \"/app/missing\" }}\n");
    assert_eq!(onetime(&[]).status.code(), Some(1));
    // A command line that cannot be parsed: 2, as Go's flag package exits.
    assert_eq!(onetime(&["-onetim"]).status.code(), Some(2));
    // terad's own name keeps 2 for a configuration error.
    let output = run(fx.onetime().args(["--log-level", "loud"]), LIMIT);
    assert_eq!(output.status.code(), Some(2));

    for flag in ["-version", "--version"] {
        let output = run(bare(&confd).arg(flag), LIMIT);
        assert!(output.status.success());
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("confd 0.17.0-terad (terad {})\n", env!("CARGO_PKG_VERSION"))
        );
    }
    let output = run(terad().arg("-version"), LIMIT);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("terad {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// A link named `confd` to the terad binary, in a directory of its own.
fn confd_link() -> (tempfile::TempDir, std::path::PathBuf) {
    let bin = tempfile::tempdir().unwrap();
    let confd = bin.path().join("confd");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_terad"), &confd).unwrap();
    (bin, confd)
}

/// confd's own integration suite runs `confd --onetime … --watch`: confd runs once.
#[test]
fn as_confd_onetime_with_watch_runs_once_and_says_so() {
    let fx = fixture();
    let (_bin, confd) = confd_link();
    let output = run(
        bare(&confd)
            .args(["--onetime", "--backend", "file", "--file"])
            .arg(fx.path("keys.yaml"))
            .arg("--confdir")
            .arg(fx.root())
            .arg("--watch"),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "name=demo\n");
    let log = stderr(&output);
    assert!(
        log.lines().any(|line| line.contains("WARN")
            && line.contains("kind=\"onetime_over_watch\"")
            && line.contains("--onetime and --watch are both set: running once")),
        "{log}"
    );
    // Under its own name, terad refuses the contradiction.
    let output = run(fx.onetime().arg("--watch"), LIMIT);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot be combined with --watch"));
}

/// confd let its confd.toml override the command line; terad lets the command line win, and
/// as confd says so once for each setting the file contradicts.
#[test]
fn as_confd_each_flag_that_overrides_confd_toml_is_warned_once() {
    let fx = fixture();
    let (_bin, confd) = confd_link();
    let config = fx.write(
        "confd.toml",
        &format!(
            "backend = \"file\"\nfile = [\"{}\"]\nnoop = true\nlog-level = \"info\"\n",
            fx.path("keys.yaml").display()
        ),
    );
    let output = run(
        bare(&confd)
            .args(["-onetime", "-noop=false", "-log-level", "debug", "-confdir"])
            .arg(fx.root())
            .arg("-config-file")
            .arg(&config),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    // -noop=false won: the file was written.
    assert_eq!(fx.read("out/app.conf"), "name=demo\n");
    let log = stderr(&output);
    for (flag, key) in [("--noop", "noop"), ("--log-level", "log_level")] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|line| line.contains("kind=\"file_overridden\"") && line.contains(flag))
            .collect();
        assert_eq!(lines.len(), 1, "{flag}: {log}");
        assert!(
            lines[0].contains(&format!(
                "{flag} on the command line overrides \"{key}\" in {}",
                config.display()
            )),
            "{log}"
        );
    }
}

/// confd ignores keys it does not know, in conf.d and in confd.toml; as confd, terad warns
/// naming the key and the valid ones and goes on. Its own name stays strict.
#[test]
fn as_confd_unknown_keys_are_warned_and_the_rest_loads() {
    let fx = fixture();
    let (_bin, confd) = confd_link();
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\nreload-cmd = \"false\"\n",
            fx.path("out/app.conf").display()
        ),
    );
    let config = fx.write(
        "confd.toml",
        &format!(
            "backend = \"file\"\nfile = [\"{}\"]\nnewer_confd_key = true\n",
            fx.path("keys.yaml").display()
        ),
    );
    let output = run(
        bare(&confd)
            .args(["-onetime", "-confdir"])
            .arg(fx.root())
            .arg("-config-file")
            .arg(&config),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("out/app.conf"), "name=demo\n");
    let log = stderr(&output);
    let warned = |needle: &str| {
        log.lines()
            .any(|line| line.contains("kind=\"unknown_key\"") && line.contains(needle))
    };
    assert!(
        warned(&format!(
            "{}:5: unknown key \"reload-cmd\" in [template] ignored, as confd ignores it; did \
             you mean \"reload_cmd\"?; valid keys: src, engine, dest, keys, prefix, mode, uid",
            fx.path("conf.d/app.toml").display()
        )),
        "{log}"
    );
    assert!(
        warned(&format!(
            "{}:3: unknown key \"newer_confd_key\" ignored",
            config.display()
        )),
        "{log}"
    );

    let output = run(
        terad()
            .args(["-onetime", "-confdir"])
            .arg(fx.root())
            .arg("-config-file")
            .arg(&config),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unknown field `newer_confd_key`"),
        "{}",
        stderr(&output)
    );
}

/// `mode = "644"` is the decimal number 644 to confd (permissions 0204); terad keeps reading it
/// as octal 0644 and, as confd, says that confd would not.
#[test]
fn as_confd_a_mode_confd_reads_as_decimal_is_written_as_octal_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let fx = fixture();
    let (_bin, confd) = confd_link();
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\nmode = \"644\"\n",
            fx.path("out/app.conf").display()
        ),
    );
    let output = run(
        bare(&confd)
            .args(["-onetime", "-backend", "file", "-file"])
            .arg(fx.path("keys.yaml"))
            .arg("-confdir")
            .arg(fx.root()),
        LIMIT,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let mode = std::fs::metadata(fx.path("out/app.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o644);
    let log = stderr(&output);
    assert!(
        log.lines().any(|line| {
            line.contains("kind=\"decimal_mode\"")
            && line.contains(
                "mode \"644\" is read as octal 0644; confd reads it as the decimal number 644 and \
                 writes permissions 0204; write \"0644\" to mean 0644 to both"
            )
        }),
        "{log}"
    );
    let output = run(&mut fx.onetime(), LIMIT);
    assert!(!stderr(&output).contains("decimal"), "{}", stderr(&output));
}

/// `-keep-stage-file` keeps every stage file, as confd: an unchanged render's and a rejected
/// one's, each with its path in the log, and a later run does not delete them.
#[test]
fn keep_stage_file_keeps_every_stage_file_and_logs_its_path() {
    let fx = fixture();
    let (_bin, confd) = confd_link();
    let stage_files = || -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(fx.path("out"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".app.conf.")
            })
            .collect();
        found.sort();
        found
    };
    let keep = || {
        let output = run(
            bare(&confd)
                .args(["-onetime", "-keep-stage-file", "-backend", "file", "-file"])
                .arg(fx.path("keys.yaml"))
                .arg("-confdir")
                .arg(fx.root()),
            LIMIT,
        );
        (output.status.code(), stderr(&output))
    };
    // The first render is committed: its stage file became the destination.
    let (status, _) = keep();
    assert_eq!(status, Some(0));
    assert_eq!(fx.read("out/app.conf"), "name=demo\n");
    assert!(stage_files().is_empty());
    // Unchanged: the stage file of what would have been written stays, named in the log.
    let (status, log) = keep();
    assert_eq!(status, Some(0));
    let kept = stage_files();
    assert_eq!(kept.len(), 1, "{log}");
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), "name=demo\n");
    assert!(
        log.lines().any(|line| line.contains("kept the stage file")
            && line.contains(&format!("path={}", kept[0].display()))),
        "{log}"
    );
    // Rejected by check_cmd: kept too, and the earlier one was not cleaned up.
    fx.write("keys.yaml", "app:\n  name: other\n");
    fx.resource(
        "app.toml",
        &format!(
            "[template]\nsrc = \"app.tmpl\"\ndest = \"{}\"\nkeys = [\"/app\"]\ncheck_cmd = \"false\"\n",
            fx.path("out/app.conf").display()
        ),
    );
    let (status, log) = keep();
    assert_eq!(status, Some(1), "{log}");
    let now = stage_files();
    assert_eq!(now.len(), 2, "{log}");
    assert!(now.contains(&kept[0]));
    let rejected = now.iter().find(|path| **path != kept[0]).unwrap();
    assert_eq!(std::fs::read_to_string(rejected).unwrap(), "name=other\n");
    assert!(
        log.contains(&format!("path={}", rejected.display())),
        "{log}"
    );
    assert_eq!(fx.read("out/app.conf"), "name=demo\n");
    // Without the flag, the crash clean-up at start removes them.
    let output = run(
        bare(&confd)
            .args(["-onetime", "-backend", "file", "-file"])
            .arg(fx.path("keys.yaml"))
            .arg("-confdir")
            .arg(fx.root()),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stage_files().is_empty(), "{}", stderr(&output));
}

/// The `datetime` warning ("every render differs") only for a template that prints the time of
/// day, not for one that prints the year or the date.
#[test]
fn the_datetime_warning_only_when_the_output_follows_the_clock() {
    for (template, warned) in [
        (
            "# (c) {{ datetime.Year }} {{ getv \"/app/name\" }}\n",
            false,
        ),
        ("{{ (datetime).Format \"2006-01-02\" }}\n", false),
        ("{{ datetime.Format \"15:04:05\" }}\n", true),
        ("{{ datetime }}\n", true),
    ] {
        let fx = fixture();
        fx.template("app.tmpl", template);
        let output = run(&mut fx.onetime(), LIMIT);
        assert!(output.status.success(), "{}", stderr(&output));
        let log = stderr(&output);
        assert_eq!(
            log.contains("every render differs"),
            warned,
            "{template}: {log}"
        );
    }
}

/// A watching run whose every resource has a broken template has nothing to serve: a
/// configuration error, as before (2, or 1 as confd).
#[test]
fn a_watching_run_whose_every_template_is_broken_does_not_start() {
    let fx = fixture();
    fx.template("app.tmpl", "{{ range nosuchfunc \"/app/*\" }}{{ end }}\n");
    let output = run(
        fx.terad()
            .args(["--watch", "--backend", "file", "--file"])
            .arg(fx.path("keys.yaml")),
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("nosuchfunc"),
        "{}",
        stderr(&output)
    );
}
