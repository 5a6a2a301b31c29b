//! The committed CRD manifest is what `keyway-operator crdgen` generates from the current types.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn committed_crd_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join(operator::crdgen::CRD_PATH);
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `keyway-operator crdgen`", path.display()));
    let generated = operator::crdgen::crd_yaml().unwrap();
    assert!(
        committed == generated,
        "{} is stale: run `cargo run -p operator -- crdgen` from the repository root and commit the result",
        operator::crdgen::CRD_PATH
    );
}

#[test]
fn crd_has_what_kubectl_needs() {
    let crd: serde_json::Value =
        serde_yaml::from_str(&operator::crdgen::crd_yaml().unwrap()).unwrap();
    assert_eq!(crd["metadata"]["name"], "connectedapps.keyway.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "capp");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Client ID", "Ready", "Reason", "Age"]);
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert!(
        spec["properties"]["redirectURIs"]["description"]
            .as_str()
            .unwrap()
            .contains("loopback")
    );
    assert_eq!(spec["properties"]["clientType"]["default"], "confidential");
    assert_eq!(spec["required"], serde_json::json!(["displayName"]));
}
