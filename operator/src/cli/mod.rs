//! The command line of `keyway-operator`: one subcommand per component (`controller`,
//! `webhook`, `crdgen`), each flag with its `KEYWAY_*` environment variable; bad flags are
//! reported all at once and exit 64 (EX_USAGE). `main.rs` parses into [`Cli`] and calls
//! [`Cli::run`].

mod controller;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use self::controller::{ControllerArgs, controller_command};
use crate::crdgen;
use crate::uninstall::{self, RemoveFinalizersArgs};
use crate::webhook::{self, WebhookArgs};

/// keyway's operator: the ConnectedApp controller, and tools around it.
#[derive(Debug, Parser)]
#[command(name = "keyway-operator", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the ConnectedApp controller.
    Controller(ControllerArgs),
    /// Write the CustomResourceDefinition generated from the API types.
    Crdgen(CrdgenArgs),
    /// Run the sidecar-injecting admission webhook (HTTPS).
    Webhook(WebhookArgs),
    /// Remove the finalizer keyway.dev/cleanup from every ConnectedApp, once no controller
    /// holds the leader Lease (what `helm uninstall` runs).
    RemoveFinalizers(RemoveFinalizersArgs),
}

#[derive(Debug, Args)]
struct CrdgenArgs {
    /// Output file, `-` for standard output.
    #[arg(long, short, env = "KEYWAY_CRD_OUTPUT", default_value = crdgen::CRD_PATH)]
    output: String,
}

impl Cli {
    /// Runs the command; its outcome as the process's exit code.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Crdgen(args) => crdgen_command(&args),
            Command::Controller(args) => controller_command(&args),
            Command::Webhook(args) => webhook_command(args),
            Command::RemoveFinalizers(args) => {
                let problems = args.problems();
                if !problems.is_empty() {
                    return usage("remove-finalizers", problems);
                }
                let run = uninstall::run(args.remove_finalizers());
                let format = if args.log_format == "json" {
                    kit::log::Format::Json
                } else {
                    kit::log::Format::Text
                };
                serve(
                    "remove-finalizers",
                    format,
                    &args.log,
                    run,
                    "finalizers not removed",
                )
            }
        }
    }

    /// Prints why the command line was refused (or the help or version asked for) and returns
    /// the exit code: unknown or malformed flags are usage errors too, 64 like every other bad
    /// input; 0 for `--help` and `--version`.
    pub fn refused(e: &clap::Error) -> ExitCode {
        kit::exit::refused(e)
    }
}

/// `keyway-operator webhook`.
fn webhook_command(args: WebhookArgs) -> ExitCode {
    let problems = args.problems();
    if !problems.is_empty() {
        return usage("webhook", problems);
    }
    let format = if args.log_format == "json" {
        kit::log::Format::Json
    } else {
        kit::log::Format::Text
    };
    let log = args.log.clone();
    serve(
        "webhook",
        format,
        &log,
        webhook::run(args),
        "keyway-operator webhook stopped",
    )
}

/// Prints every flag problem and returns [`kit::exit::USAGE`].
pub(super) fn usage(command: &str, problems: Vec<String>) -> ExitCode {
    for p in problems {
        eprintln!("keyway-operator {command}: {p}");
    }
    ExitCode::from(kit::exit::USAGE)
}

/// Starts logging and a runtime, runs `service` to its end and maps the outcome to an exit code.
pub(super) fn serve<E: std::fmt::Display>(
    command: &str,
    format: kit::log::Format,
    log: &str,
    service: impl Future<Output = Result<(), E>>,
    stopped: &str,
) -> ExitCode {
    if let Err(e) = kit::log::filter(log).and_then(|f| kit::log::init(format, f, std::io::stderr)) {
        eprintln!("keyway-operator {command}: {e}");
        return ExitCode::from(kit::exit::USAGE);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("keyway-operator {command}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(service) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{stopped}");
            ExitCode::FAILURE
        }
    }
}

/// `keyway-operator crdgen`.
fn crdgen_command(args: &CrdgenArgs) -> ExitCode {
    let yaml = match crdgen::crd_yaml() {
        Ok(y) => y,
        Err(e) => {
            eprintln!("keyway-operator crdgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if args.output == "-" {
        use std::io::Write as _;
        std::io::stdout().write_all(yaml.as_bytes())
    } else {
        std::fs::write(&args.output, yaml)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keyway-operator crdgen: {}: {e}", args.output);
            ExitCode::FAILURE
        }
    }
}
