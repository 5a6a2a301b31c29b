//! Bad command lines exit with 64 (EX_USAGE) and say why; help exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keyway-operator"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let (code, stderr) = run(&["controller", "--no-such-flag"]);
    assert_eq!(code, 64);
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let (code, stderr) = run(&["reconcile-everything"]);
    assert_eq!(code, 64);
    assert!(stderr.contains("reconcile-everything"), "{stderr}");
}

#[test]
fn help_is_not_an_error() {
    assert_eq!(run(&["--help"]).0, 0);
    assert_eq!(run(&["webhook", "--help"]).0, 0);
}

#[test]
fn bad_resource_host_bindings_are_a_usage_error_with_every_problem() {
    let (code, stderr) = run(&[
        "controller",
        "--issuer-url",
        "https://login.example.com",
        "--resource-hosts",
        "grafana.example.com *.10.0.0.1=tools",
    ]);
    assert_eq!(code, 64, "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("keyway-operator controller: --resource-hosts: "))
        .collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].contains("\"grafana.example.com\""), "{stderr}");
    assert!(lines[1].contains("\"*.10.0.0.1=tools\""), "{stderr}");
}
