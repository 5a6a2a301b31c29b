//! Process exit codes (BSD `sysexits.h`, which shells and Kubernetes show as they are) and the
//! reports that go with them.

use std::fmt::Display;
use std::process::ExitCode;

/// Bad usage or configuration (EX_USAGE): unknown or malformed flags, invalid values, files
/// that do not say what they must. The process printed every problem on stderr.
pub const USAGE: u8 = 64;

/// A service the process needs is unavailable (EX_UNAVAILABLE), e.g. the store cannot be
/// reached or an address cannot be bound.
pub const UNAVAILABLE: u8 = 69;

/// Prints why clap refused the command line (or the help or version asked for) and returns the
/// exit code: 0 for `--help` and `--version`, [`USAGE`] for everything else.
pub fn refused(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    ExitCode::from(refused_code(e))
}

/// The exit code [`refused`] returns for `e`.
pub fn refused_code(e: &clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
        _ => USAGE,
    }
}

/// Prints every configuration problem under one heading on stderr and returns [`USAGE`]:
///
/// ```text
/// keyway-proxy: invalid configuration:
///   - --listen (KEYWAY_LISTEN): "x" is not an address
/// ```
pub fn invalid_configuration<P: Display>(
    program: &str,
    problems: impl IntoIterator<Item = P>,
) -> ExitCode {
    eprint!("{}", configuration_report(program, problems));
    ExitCode::from(USAGE)
}

/// The text [`invalid_configuration`] prints.
pub fn configuration_report<P: Display>(
    program: &str,
    problems: impl IntoIterator<Item = P>,
) -> String {
    let mut out = format!("{program}: invalid configuration:\n");
    for p in problems {
        out.push_str(&format!("  - {p}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::Parser;

    #[derive(Debug, Parser)]
    #[command(name = "t", version)]
    struct Cli {
        #[arg(long)]
        port: u16,
    }

    fn code(args: &[&str]) -> u8 {
        super::refused_code(&Cli::try_parse_from(args).unwrap_err())
    }

    #[test]
    fn help_and_version_are_not_errors_everything_else_is_usage() {
        assert_eq!(code(&["t", "--help"]), 0);
        assert_eq!(code(&["t", "--version"]), 0);
        assert_eq!(code(&["t"]), super::USAGE);
        assert_eq!(code(&["t", "--port", "x"]), super::USAGE);
        assert_eq!(code(&["t", "--port", "1", "--nope"]), super::USAGE);
        assert_eq!(super::USAGE, 64);
    }

    #[test]
    fn the_report_lists_every_problem() {
        let text = super::configuration_report("p", ["--a: bad", "--b: worse"]);
        assert_eq!(
            text,
            "p: invalid configuration:\n  - --a: bad\n  - --b: worse\n"
        );
    }
}
