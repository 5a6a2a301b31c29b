//! The `keyway` command: `keyway demo` runs the issuer, keyway-proxy and a demo tool locally.
#![forbid(unsafe_code)]

pub mod demo;
pub mod demo_tool;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
        Err(e) => return kit::exit::refused(&e),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Command::Demo(args) = cli.command;
    let format = if args.log_json {
        kit::log::Format::Json
    } else {
        kit::log::Format::Text
    };
    let filter = kit::log::filter_from_env("KEYWAY_LOG", "warn");
    if let Err(e) = kit::log::init(format, filter, std::io::stderr) {
        eprintln!("keyway: {e}");
        return ExitCode::FAILURE;
    }
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
