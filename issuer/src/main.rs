//! `keyway-issuer`: parses configuration and runs [`issuer::serve`].
#![forbid(unsafe_code)]

use clap::Parser;
use issuer::config::{Args, Command, Config, EXIT_CONFIG, LogFormat};

/// mimalloc rather than the C library's allocator: every token request allocates and frees a
/// few dozen small buffers, which glibc's malloc (with its consolidation of freed chunks) made
/// ~6 % of the token endpoint's CPU time (bench/issuer/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if let Some(cmd) = args.command.clone() {
        return admin(cmd, &args.store).await;
    }
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

/// Administrative commands (no server).
async fn admin(cmd: Command, store_url: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Command::HashPassword = cmd {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']);
        let hash = issuer::users::hash_password(password)
            .ok_or_else(|| anyhow::anyhow!("hashing failed"))?;
        writeln!(std::io::stdout(), "{hash}")?;
        return Ok(());
    }
    let store = issuer::store::open(store_url).await?;
    match cmd {
        Command::ListClients => {
            let mut out = std::io::stdout().lock();
            for c in store.list_clients().await? {
                writeln!(out, "{}", c.metadata)?;
            }
        }
        Command::DeleteClient { client_id } => {
            if !store.delete_client(&client_id).await? {
                eprintln!("keyway-issuer: no registered client {client_id:?}");
                std::process::exit(1);
            }
        }
        Command::HashPassword => {}
    }
    Ok(())
}
