use std::process::ExitCode;

use terad::cli::ParseError;

fn main() -> ExitCode {
    // Before anything else: it may fork, which is only safe while there is one thread.
    terad::signal::become_init_if_pid1();
    tune_allocator();
    let cli = match terad::cli::try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        // --help and --version too: clap prints them and exits 0; its errors exit 2.
        Err(ParseError::Clap(error)) => error.exit(),
        Err(error @ ParseError::Flag(_)) => {
            eprintln!("terad: {error}");
            return ExitCode::from(terad::EXIT_CONFIG);
        }
    };
    if let Some(kind) = cli.generate {
        return match terad::cli::generate(kind, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("terad: cannot write: {error}");
                ExitCode::from(terad::EXIT_FAILURE)
            }
        };
    }
    if let Some(command) = &cli.command {
        return fleet_command(&cli, command);
    }
    let config = match terad::config::load(&cli) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("terad: {errors}");
            return ExitCode::from(terad::EXIT_CONFIG);
        }
    };
    terad::logging::init(&config.settings);
    config.settings.log_origin();
    // A sidecar needs little parallelism; two workers keep the footprint small on big hosts.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("terad: cannot start the async runtime: {error}");
            return ExitCode::from(terad::EXIT_FAILURE);
        }
    };
    let status = runtime.block_on(terad::run(cli, config));
    // terad's own work is done. What may still run on a blocking thread is a log line's hash, or
    // a render abandoned at its render_timeout, which must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    status
}

/// `terad register` and `terad rollout`: the backend settings only, no resources.
fn fleet_command(cli: &terad::cli::Cli, command: &terad::cli::Command) -> ExitCode {
    let settings = match terad::config::Settings::load(cli, |name| std::env::var(name).ok()) {
        Ok(settings) => settings,
        Err(errors) => {
            eprintln!("terad: {errors}");
            return ExitCode::from(terad::EXIT_CONFIG);
        }
    };
    terad::logging::init(&settings);
    let mut command = command.clone();
    if let terad::cli::Command::Rollout {
        action: terad::cli::RolloutAction::Status { group, service },
    } = &mut command
        && service.is_none()
    {
        *service = terad::fleet::register::configured_service(cli, group);
    }
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(terad::fleet::register::run_command(&settings, &command)),
        Err(error) => {
            eprintln!("terad: cannot start the async runtime: {error}");
            ExitCode::from(terad::EXIT_FAILURE)
        }
    }
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
