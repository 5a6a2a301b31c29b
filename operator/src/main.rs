//! `keyway-operator`: parses the command line and runs the command (`operator::Cli`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser as _;
use operator::Cli;

fn main() -> ExitCode {
    match Cli::try_parse() {
        Ok(cli) => cli.run(),
        Err(e) => Cli::refused(&e),
    }
}
