//! `keyway-issuer`: parses configuration and runs [`issuer::serve`].
#![forbid(unsafe_code)]

use clap::Parser;
use issuer::config::{Args, Config, EXIT_CONFIG, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(problems) => {
            eprintln!("keyway-issuer: invalid configuration:");
            for p in problems {
                eprintln!("  - {p}");
            }
            std::process::exit(EXIT_CONFIG);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }
    let store = match issuer::store::open(&config.store).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("keyway-issuer: cannot open the store: {e}");
            std::process::exit(if e.is_unavailable() { 69 } else { EXIT_CONFIG });
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("keyway-issuer: cannot listen on {}: {e}", config.listen);
            std::process::exit(EXIT_CONFIG);
        }
    };
    tracing::info!(issuer = %config.issuer, listen = %listener.local_addr()?, "keyway-issuer listening");
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    if let Err(e) = issuer::serve(config, store, listener, shutdown).await {
        eprintln!("keyway-issuer: {e:#}");
        std::process::exit(EXIT_CONFIG);
    }
    Ok(())
}
