use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = terad::cli::Cli::parse();
    let config = match terad::config::load(&cli) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("terad: {errors}");
            return ExitCode::from(terad::EXIT_CONFIG);
        }
    };
    terad::logging::init(&config.settings);
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
    runtime.block_on(terad::run(config))
}
