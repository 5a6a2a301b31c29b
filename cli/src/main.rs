//! `keyway`: the command-line entry point. `keyway demo` runs the local demo.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    cli::main()
}
