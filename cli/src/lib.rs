//! The `keyway` command: `keyway demo` runs the issuer, keyway-proxy and a demo tool locally.
#![forbid(unsafe_code)]

pub mod demo;
pub mod demo_tool;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for bad usage (EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// keyway: login and scoped OAuth access for in-house tools.
#[derive(Debug, Parser)]
#[command(
    name = "keyway",
    version,
    about = "keyway: login and scoped OAuth access for in-house tools on Kubernetes",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the issuer, keyway-proxy and a demo tool on this machine (no cluster needed).
    Demo(demo::DemoArgs),
}

/// Entry point of the `keyway` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => EXIT_USAGE,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Command::Demo(args) = cli.command;
    init_logging(args.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keyway: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyway demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
}
