//! The `keyway` command.
#![forbid(unsafe_code)]

pub mod demo_tool;

/// Entry point of the `keyway` binary.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
