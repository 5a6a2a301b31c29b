//! `keyway-proxy`: parses flags, sets up logging and the runtime, and runs [`proxy::server`].
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use proxy::config::Cli;

/// Exit code for bad configuration (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => EXIT_CONFIG,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let settings = match cli.settings() {
        Ok(s) => s,
        Err(problems) => {
            eprintln!("keyway-proxy: invalid configuration:");
            for p in problems {
                eprintln!("  - {p}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let filter = tracing_subscriber::EnvFilter::new(&settings.log);
    if settings.log_json {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter)
            .with_writer(proxy::logbuf::stdout())
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(proxy::logbuf::stdout())
            .init();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    proxy::logbuf::install_panic_flush();
    let mut builder = if settings.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(settings.worker_threads);
        b
    };
    // Buffered log lines go out whenever the runtime runs out of work (see proxy::logbuf).
    let runtime = builder
        .enable_all()
        .on_thread_park(|| proxy::logbuf::stdout().flush())
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keyway-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let server = match proxy::server::Server::bind(settings, started).await {
            Ok(s) => s,
            Err(e @ proxy::Error::Config(_)) => {
                eprintln!("keyway-proxy: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            Err(e) => {
                eprintln!("keyway-proxy: {e}");
                return ExitCode::FAILURE;
            }
        };
        match server.run(shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keyway-proxy: {e}");
                ExitCode::FAILURE
            }
        }
    });
    proxy::logbuf::stdout().flush();
    code
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
