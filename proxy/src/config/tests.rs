//! Tests of the flags and the mounted files.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::*;
use clap::Parser as _;
use std::time::Duration;

fn cli(args: &[&str]) -> Cli {
    let mut all = vec!["keyway-proxy"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).unwrap()
}

fn write_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (n, c) in files {
        std::fs::write(dir.path().join(n), c).unwrap();
    }
    dir
}

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

#[test]
fn the_http1_fast_path_can_be_turned_off() {
    let on = |args: &[&str]| {
        let mut all = vec!["--upstream-port", "8080"];
        all.extend_from_slice(args);
        cli(&all).settings().unwrap().http1_fast_path
    };
    assert!(on(&[]));
    assert!(on(&["--http1-fast-path"]));
    assert!(on(&["--http1-fast-path=true"]));
    assert!(!on(&["--http1-fast-path=false"]));
    let mut all = vec!["keyway-proxy"];
    all.extend_from_slice(&["--upstream-port", "8080", "--http1-fast-path=no"]);
    assert!(Cli::try_parse_from(all).is_err(), "only true or false");
}

#[test]
fn every_flag_problem_is_reported() {
    let c = cli(&[
        "--upstream",
        "https://x/y",
        "--upstream-port",
        "0",
        "--admin-listen",
        "nowhere",
        "--cookie-name",
        "__Host-x",
        "--scopes",
        "email",
        "--tls-cert-file",
        "/c",
        "--max-header-bytes",
        "10",
    ]);
    let problems = c.settings().unwrap_err();
    assert_eq!(problems.len(), 6, "{problems:#?}");
}

#[test]
fn durations_take_units_or_bare_seconds() {
    let s = cli(&[
        "--upstream-port",
        "8080",
        "--session-lifetime",
        "8h",
        "--upstream-timeout",
        "1m30s",
        "--send-timeout",
        "45",
        "--cookie-secret-grace",
        "1d",
    ])
    .settings()
    .unwrap();
    assert_eq!(s.session_lifetime, Duration::from_secs(8 * 3600));
    assert_eq!(s.upstream_timeout, Duration::from_secs(90));
    assert_eq!(s.send_timeout, Duration::from_secs(45));
    assert_eq!(s.cookie_secret_grace, 86400);
    // The defaults, written with units in --help, are the same as before.
    let d = cli(&["--upstream-port", "8080"]).settings().unwrap();
    assert_eq!(d.session_lifetime, Duration::from_secs(43_200));
    assert_eq!(d.header_read_timeout, Duration::from_secs(10));
    assert_eq!(d.idle_timeout, Duration::from_secs(75));
    assert!(d.http1_fast_path, "the fast path is on by default");
    for bad in ["1.5h", "-1s", "ten", ""] {
        let flag = format!("--session-lifetime={bad}");
        let e = Cli::try_parse_from(["keyway-proxy", flag.as_str()]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad:?}");
        assert!(e.to_string().contains("is not a duration"), "{e}");
    }
}

#[test]
fn good_config_loads_with_derived_urls() {
    let dir = write_dir(&[
        ("client-id", "tool\n"),
        ("client-secret", "s3cret\n"),
        ("issuer-url", "https://id.example.com\n"),
        ("cookie-secret", KEY),
        (
            "policy.json",
            r#"{"resource":"https://tool.example.com/mcp","scopes":["tool:read"],"access":{"rules":[{"path":"/healthz","public":true}]}}"#,
        ),
    ]);
    let s = cli(&[
        "--upstream-port",
        "8080",
        "--config-dir",
        dir.path().to_str().unwrap(),
    ])
    .settings()
    .unwrap();
    assert_eq!(s.upstream.as_str(), "127.0.0.1:8080");
    let app = load_app(&s).unwrap();
    assert_eq!(app.client_id, "tool");
    assert_eq!(app.client_secret.as_deref(), Some("s3cret"));
    let shown = format!("{app:?}");
    assert!(
        shown.contains("tool") && !shown.contains("s3cret"),
        "Debug shows the client ID, never the secret: {shown}"
    );
    let key_bytes = format!("{:?}", app.cookie_key);
    assert!(!shown.contains(&key_bytes[1..20]), "nor the cookie key");
    assert_eq!(app.redirect_uri, "https://tool.example.com/oauth2/callback");
    assert_eq!(
        app.resource_metadata_url,
        "https://tool.example.com/.well-known/oauth-protected-resource/mcp"
    );
    assert_eq!(
        app.request_scopes, "openid tool:read",
        "only scopes the app may request, openid always"
    );
    assert!(app.secure_cookies);
}

#[test]
fn every_file_problem_is_reported() {
    let dir = write_dir(&[
        ("issuer-url", "http://id.example.com"),
        ("cookie-secret", "c2hvcnQ="),
        ("policy.json", r#"{"access":{"rules":[{"path":"api"}]}}"#),
    ]);
    let s = cli(&[
        "--upstream-port",
        "8080",
        "--config-dir",
        dir.path().to_str().unwrap(),
    ])
    .settings()
    .unwrap();
    let problems = load_app(&s).unwrap_err();
    // client-id, issuer over http, cookie secret length, bad rule, no resource
    assert_eq!(problems.len(), 5, "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("client-id")));
    assert!(problems.iter().any(|p| p.contains("allow-http-issuer")));
}

#[test]
fn a_previous_cookie_secret_comes_with_its_replacement_time() {
    let load = |extra: &[(&str, &str)]| {
        let mut files = vec![
            ("client-id", "tool"),
            ("issuer-url", "https://id.example.com"),
            ("cookie-secret", KEY),
            ("policy.json", r#"{"resource":"https://tool.example.com"}"#),
        ];
        files.extend_from_slice(extra);
        let dir = write_dir(&files);
        let s = cli(&[
            "--upstream-port",
            "8080",
            "--config-dir",
            dir.path().to_str().unwrap(),
        ])
        .settings()
        .unwrap();
        load_app(&s)
    };
    let previous = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    assert_eq!(load(&[]).unwrap().previous_cookie_key, None);
    let app = load(&[
        ("cookie-secret-previous", previous),
        ("cookie-secret-replaced-at", "1767225600\n"),
    ])
    .unwrap();
    assert_eq!(app.previous_cookie_key, Some(([1u8; 32], 1_767_225_600)));
    assert!(!format!("{app:?}").contains("[1, 1, 1"), "no key in Debug");
    let problems = load(&[("cookie-secret-previous", previous)]).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("give both or neither"),
        "{problems:#?}"
    );
    let problems = load(&[
        ("cookie-secret-previous", "c2hvcnQ="),
        ("cookie-secret-replaced-at", "yesterday"),
    ])
    .unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("cookie-secret-previous: must be exactly 32 bytes"));
    assert!(problems[1].contains("cookie-secret-replaced-at: must be seconds"));
}
