//! `keyway-issuer`: parses configuration and runs [`issuer::serve`].
#![forbid(unsafe_code)]

use clap::Parser;
use issuer::{Args, Command, Config};
use kit::exit::{UNAVAILABLE, USAGE};

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
            let code = kit::exit::refused_code(&e);
            let _ = e.print();
            std::process::exit(code.into());
        }
    };
    if let Some(cmd) = args.command.clone() {
        return admin(cmd, &args.store).await;
    }
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(problems) => {
            eprint!(
                "{}",
                kit::exit::configuration_report("keyway-issuer", problems)
            );
            std::process::exit(USAGE.into());
        }
    };
    let filter = kit::log::filter_from_env("RUST_LOG", "info");
    if let Err(e) = kit::log::init(config.log_format, filter, std::io::stdout) {
        eprintln!("keyway-issuer: {e}");
        std::process::exit(1);
    }
    let store = match issuer::store::open(&config.store).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("keyway-issuer: cannot open the store: {e}");
            std::process::exit(
                if e.is_unavailable() {
                    UNAVAILABLE
                } else {
                    USAGE
                }
                .into(),
            );
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("keyway-issuer: cannot listen on {}: {e}", config.listen);
            std::process::exit(USAGE.into());
        }
    };
    tracing::info!(issuer = %config.issuer, listen = %listener.local_addr()?, "keyway-issuer listening");
    if let Err(e) = issuer::serve(config, store, listener, kit::shutdown::signal()).await {
        eprintln!("keyway-issuer: {e:#}");
        std::process::exit(USAGE.into());
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
        let hash =
            issuer::hash_password(password).ok_or_else(|| anyhow::anyhow!("hashing failed"))?;
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
