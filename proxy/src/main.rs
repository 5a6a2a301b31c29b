//! `keyway-proxy`: parses flags, sets up logging and the runtime, and runs [`proxy::server`].
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use kit::exit::USAGE;
use kit::log::Format;
use proxy::config::Cli;

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return kit::exit::refused(&e),
    };
    let settings = match cli.settings() {
        Ok(s) => s,
        Err(problems) => return kit::exit::invalid_configuration("keyway-proxy", problems),
    };
    let format = if settings.log_json {
        Format::Json
    } else {
        Format::Text
    };
    let logging = kit::log::filter(&settings.log)
        .and_then(|filter| kit::log::init(format, filter, proxy::logbuf::stdout()));
    if let Err(e) = logging {
        eprintln!("keyway-proxy: {e}");
        return ExitCode::from(USAGE);
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
                return ExitCode::from(USAGE);
            }
            Err(e) => {
                eprintln!("keyway-proxy: {e}");
                return ExitCode::FAILURE;
            }
        };
        match server.run(kit::shutdown::signal()).await {
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
