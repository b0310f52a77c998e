use clap::Parser;
use sevloop::cli::{Cli, Command};
use sevloop::commands;
use tokio_util::sync::CancellationToken;

// Clustering allocates about 190 small, short-lived blocks per ticket; mimalloc serves them
// in a fraction of glibc's instructions (callgrind, docs/MEASUREMENTS.md, Clustering).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    sevloop::telemetry::init(cli.log_format);
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let result = match cli.command {
        Command::Up(args) => commands::up::run(args, shutdown).await,
        Command::Demo(args) => commands::demo::run(args, shutdown).await,
        Command::Serve(args) => commands::serve::run(args, shutdown).await,
        Command::Replay(args) => commands::replay::run(args, shutdown).await,
        Command::Bench(args) => commands::bench::run(args).await,
        Command::Eval(args) => commands::eval::run(args).await,
        Command::BenchClustering(args) => commands::bench_clustering::run(args).await,
        Command::BenchPages(args) => commands::bench_pages::run(args).await,
        Command::Digest(args) => commands::digest::run(args).await,
        Command::Backtest(args) => commands::backtest::run(args).await,
        Command::Token(command) => commands::token::run(command).await,
        Command::Endpoint(command) => commands::endpoint::run(command).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", sevloop::cli::report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM starts an orderly shutdown.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
