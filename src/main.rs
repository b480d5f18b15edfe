use std::process::ExitCode;

use terad::Failure;
use terad::cli::{Flavour, ParseError};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    // Before anything else: it may fork, which is only safe while there is one thread.
    terad::signal::become_init_if_pid1();
    tune_allocator();
    let flavour = Flavour::from_args(&std::env::args_os().collect::<Vec<_>>());
    match run() {
        Ok(status) => status,
        Err(failure) => {
            eprintln!("terad: {}", terad::logging::chain(&failure));
            ExitCode::from(failure.exit_code(&flavour.rules()))
        }
    }
}

fn run() -> Result<ExitCode, Failure> {
    let cli = match terad::cli::try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        // --help and --version too: clap prints them and exits 0; its errors exit 2.
        Err(ParseError::Clap(error)) => error.exit(),
        Err(ParseError::Flag(error)) => return Err(error.into()),
    };
    if let Some(args) = &cli.consul_template {
        // As consul-template: its usage and its version go to standard error, exit 0.
        if args.wants_help() {
            eprint!("{}", terad::cli::ct_args::USAGE);
            return Ok(ExitCode::SUCCESS);
        }
        if args.wants_version() {
            let rules = cli.flavour.rules();
            eprintln!("{} {}", rules.program, rules.version);
            return Ok(ExitCode::SUCCESS);
        }
    }
    if let Some(kind) = cli.generate {
        terad::cli::generate(kind, &mut std::io::stdout().lock()).map_err(Failure::Output)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(command) = &cli.command {
        return subcommand(&cli, command);
    }
    let config = terad::setup::load(&cli)?;
    if let Some(errors) = config.nothing_to_run() {
        return Err(errors.into());
    }
    terad::logging::init(config.settings.log_level, config.settings.log_format);
    config.settings.log_origin();
    if config.settings.parse_only {
        // The configuration loaded and every template parsed: said what it was accepted with,
        // nothing else to do.
        config.log_warnings();
        let mut errors = terad::diagnostic::ConfigErrors::default();
        for broken in &config.broken {
            errors.extend(broken.errors.clone());
        }
        return errors.into_result(ExitCode::SUCCESS).map_err(Into::into);
    }
    // A sidecar needs little parallelism; two workers keep the footprint small on big hosts.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    let status = runtime.block_on(terad::run(cli, config, CancellationToken::new()));
    // terad's own work is done. What may still run on a blocking thread is a log line's hash, or
    // a render abandoned at its render_timeout, which must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    status
}

/// `terad register` and `terad rollout`: the backend settings only, no resources.
fn subcommand(cli: &terad::cli::Cli, command: &terad::cli::Command) -> Result<ExitCode, Failure> {
    let settings = terad::config::Settings::load(cli, |name| std::env::var(name).ok())?;
    terad::logging::init(settings.log_level, settings.log_format);
    let mut command = command.clone();
    if let terad::cli::Command::Rollout {
        action: terad::cli::RolloutAction::Status { group, service },
    } = &mut command
        && service.is_none()
    {
        *service = terad::command::configured_service(cli, group);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    runtime.block_on(terad::command::run(&settings, &command))?;
    Ok(ExitCode::from(terad::EXIT_OK))
}

/// glibc's malloc gives each thread that allocates its own arena and keeps freed memory in it;
/// for a sidecar whose threads take turns (the runner renders, a worker writes) that is memory
/// held for nothing. One arena, and a fixed mmap threshold so that large buffers (a rendered
/// file, the file read back) go back to the kernel as soon as they are freed.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
