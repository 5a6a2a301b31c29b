//! The binary refuses a clients directory whose manifests claim one client ID twice: exit code
//! 64 and a message naming both files and both apps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const APP: &str = "apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: NAME, namespace: tools}
spec:
  displayName: NAME
  clientID: shared
  grantTypes: [client_credentials]
";

fn run(dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keyway-issuer"))
        .args([
            "--issuer-url",
            "http://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--clients-dir")
        .arg(dir.join("clients"))
        .arg("--keys-dir")
        .arg(dir.join("keys"))
        .arg("--store")
        .arg(format!("sqlite://{}", dir.join("issuer.db").display()))
        .env_remove("KEYWAY_WATCH_CONNECTEDAPPS")
        .output()
        .unwrap()
}

#[test]
fn a_client_id_claimed_by_two_manifests_exits_64_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let clients = dir.path().join("clients");
    std::fs::create_dir(&clients).unwrap();
    std::fs::write(clients.join("a.yaml"), APP.replace("NAME", "first")).unwrap();
    std::fs::write(clients.join("b.yaml"), APP.replace("NAME", "second")).unwrap();
    std::fs::write(
        clients.join("shared.secret"),
        "not-to-be-printed-0123456789",
    )
    .unwrap();
    let out = run(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("a.yaml") && stderr.contains("b.yaml"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tools/first") && stderr.contains("tools/second"),
        "{stderr}"
    );
    assert!(stderr.contains("\"shared\""), "{stderr}");
    assert!(!stderr.contains("not-to-be-printed"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("not-to-be-printed"));

    // With the conflict removed, the same set-up starts (and is stopped by the test).
    std::fs::remove_file(clients.join("b.yaml")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyway-issuer"))
        .args([
            "--issuer-url",
            "http://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--clients-dir")
        .arg(&clients)
        .arg("--keys-dir")
        .arg(dir.path().join("keys"))
        .arg("--store")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("issuer.db").display()
        ))
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let early_exit = child.try_wait().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(early_exit, None, "the issuer should still be running");
}
