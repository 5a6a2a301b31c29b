//! The webhook end to end: its serving certificate managed against the in-repo Kubernetes API
//! test server (Secret written, `caBundle` patched into the MutatingWebhookConfiguration, renewal,
//! idempotence, concurrent replicas), and AdmissionReview v1 requests over real HTTPS from a
//! client that trusts exactly the `caBundle` the API server would use. Every mutated pod is
//! validated with `kubernetes-validate --strict` against the Kubernetes 1.34 schema.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api::ConnectedApp;
use base64::Engine as _;
use bytes::Bytes;
use fake_apiserver::{FakeApiServer, ResourceType};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use operator::webhook::certs::{self, CA_CRT, CertSlot, ManagedCerts, TLS_CRT};
use operator::webhook::inject::SidecarConfig;
use operator::webhook::server::{self, Metrics, Webhook};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};

const NS: &str = "keyway-system";
const SERVICE: &str = "keyway-webhook";
const CONFIG: &str = "keyway";
const DAY: Duration = Duration::from_secs(86400);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn managed() -> ManagedCerts {
    ManagedCerts {
        namespace: NS.into(),
        secret_name: "keyway-webhook-tls".into(),
        service_name: SERVICE.into(),
        webhook_config: CONFIG.into(),
        validity: DAY * 30,
        renew_before: DAY * 10,
    }
}

/// The webhook configuration as the chart renders it (no caBundle).
fn webhook_configuration() -> MutatingWebhookConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIG},
        "webhooks": [{
            "name": "inject.keyway.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "clientConfig": {"service": {"name": SERVICE, "namespace": NS, "path": "/mutate", "port": 443}},
            "objectSelector": {"matchLabels": {"keyway.dev/inject": "enabled"}},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]
        }]
    }))
    .unwrap()
}

async fn api_server() -> (FakeApiServer, Client) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = FakeApiServer::start().await.unwrap();
    server.register(ResourceType::connected_app());
    let client = server.client().unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in [NS, "tools"] {
        let object = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    (server, client)
}

async fn create_webhook_configuration(client: &Client) {
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &webhook_configuration())
        .await
        .unwrap();
}

fn yaml_docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize as _;

/// The example ConnectedApp `grafana` (examples/browser-tool.yaml), created in the API.
async fn create_example_app(client: &Client) -> ConnectedApp {
    let doc = yaml_docs("examples/browser-tool.yaml").remove(0);
    let app: ConnectedApp = serde_json::from_value(doc).unwrap();
    assert!(
        api::validate(&app.spec).is_empty(),
        "{:?}",
        api::validate(&app.spec)
    );
    Api::<ConnectedApp>::namespaced(client.clone(), "tools")
        .create(&PostParams::default(), &app)
        .await
        .unwrap()
}

/// A pod as the ReplicaSet controller creates it from examples/tool-deployment.yaml.
fn example_pod() -> Value {
    let deployment = yaml_docs("examples/tool-deployment.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    let mut metadata = deployment["spec"]["template"]["metadata"].clone();
    metadata["generateName"] = json!("grafana-5d8c7b9f4-");
    metadata["namespace"] = json!("tools");
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": deployment["spec"]["template"]["spec"].clone(),
    })
}

fn review(uid: &str, operation: &str, pod: &Value) -> Value {
    let gvk = json!({"group": "", "version": "v1", "kind": "Pod"});
    let gvr = json!({"group": "", "version": "v1", "resource": "pods"});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": "",
            "namespace": "tools",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": if operation == "UPDATE" { pod.clone() } else { Value::Null },
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// A running webhook on 127.0.0.1:0; stops when dropped.
struct Running {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn start_webhook(client: Client, slot: Arc<CertSlot>) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let webhook = Arc::new(Webhook {
        directory: client,
        sidecar: SidecarConfig::default(),
        metrics: Arc::new(Metrics::default()),
    });
    let tls = server::tls_config(slot).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve_tls(
        listener,
        tls,
        server::router(webhook),
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

/// One HTTPS request, trusting only `ca_bundle` and checking the certificate for `name`.
async fn https(
    addr: std::net::SocketAddr,
    ca_bundle: &[u8],
    name: &str,
    method: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_bundle) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = http::Request::builder()
        .method(method)
        .uri("/mutate")
        .header("host", name)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok((status, body.to_vec()))
}

const SERVICE_DNS: &str = "keyway-webhook.keyway-system.svc";

/// Posts a review and returns the `response` object of the answer.
async fn admit(addr: std::net::SocketAddr, ca: &[u8], review: &Value) -> Value {
    let (status, body) = https(
        addr,
        ca,
        SERVICE_DNS,
        "POST",
        serde_json::to_vec(review).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
    answer["response"].clone()
}

fn apply_patch(pod: &Value, response: &Value) -> Value {
    assert_eq!(response["patchType"], "JSONPatch");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&raw).unwrap();
    let mut out = pod.clone();
    json_patch::patch(&mut out, &patch).unwrap();
    out
}

/// `kubernetes-validate -k 1.34.0 --strict`, from the repository's venv (tests/setup.sh) unless
/// `KUBERNETES_VALIDATE` names another.
fn kubernetes_validate(object: &Value) {
    let tool = std::env::var_os("KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/kubernetes-validate"));
    assert!(
        tool.exists(),
        "{} is missing: run `bash tests/setup.sh` (or set KUBERNETES_VALIDATE)",
        tool.display()
    );
    // At admission a pod from a ReplicaSet may have only `generateName`; the validator needs a
    // name, as the stored object will have.
    let mut object = object.clone();
    if object["metadata"].get("name").is_none() {
        let generated = format!(
            "{}x7k2p",
            object["metadata"]["generateName"].as_str().unwrap()
        );
        object["metadata"]["name"] = json!(generated);
    }
    let object = &object;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, serde_yaml::to_string(object).unwrap()).unwrap();
    let out = std::process::Command::new(&tool)
        .args(["-k", "1.34.0", "--strict"])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("passed") && !text.contains("ERROR"),
        "kubernetes-validate rejected the pod:\n{text}\n{}",
        serde_yaml::to_string(object).unwrap()
    );
}

async fn ca_bundle_opt(client: &Client) -> Option<Vec<u8>> {
    let config = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(CONFIG)
        .await
        .unwrap();
    config.webhooks.unwrap()[0]
        .client_config
        .ca_bundle
        .clone()
        .map(|b| b.0)
}

async fn ca_bundle_in_api(client: &Client) -> Vec<u8> {
    let config = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(CONFIG)
        .await
        .unwrap();
    let webhooks = config.webhooks.unwrap();
    webhooks[0]
        .client_config
        .ca_bundle
        .clone()
        .expect("caBundle set")
        .0
}

#[tokio::test]
async fn injects_over_https_with_a_managed_certificate() {
    let (server, client) = api_server().await;
    create_webhook_configuration(&client).await;
    let app = create_example_app(&client).await;

    let ensured = managed()
        .ensure(&client, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(ensured.generated && ensured.patched_webhooks);
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get("keyway-webhook-tls")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.unwrap();
    // The API server trusts what the Secret says, and nothing else.
    let ca = ca_bundle_in_api(&client).await;
    assert_eq!(ca, data[CA_CRT].0);
    let info = certs::inspect(&data[TLS_CRT].0).unwrap();
    assert_eq!(info.dns_names, certs::service_dns_names(SERVICE, NS));

    let slot = Arc::new(CertSlot::default());
    slot.set(ensured.key);
    let running = start_webhook(client.clone(), slot).await;

    // An opted-in pod gets the sidecar, and the result is a valid pod.
    let pod = example_pod();
    let response = admit(running.addr, &ca, &review("u-1", "CREATE", &pod)).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(
        response["warnings"][0]
            .as_str()
            .unwrap()
            .contains("not Ready yet")
    );
    let mutated = apply_patch(&pod, &response);
    kubernetes_validate(&mutated);
    // A native sidecar (Kubernetes 1.29+): the first init container, restartPolicy Always, so
    // it starts before the tool and a Job's pod completes when its containers do.
    let containers = mutated["spec"]["containers"].as_array().unwrap();
    assert_eq!(
        containers.len(),
        1,
        "the pod's own containers are left as they are"
    );
    let init = mutated["spec"]["initContainers"].as_array().unwrap();
    let sidecar = &init[0];
    assert_eq!(sidecar["name"], "keyway-proxy");
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert_eq!(sidecar["securityContext"]["runAsUser"], 65532);
    assert_eq!(sidecar["securityContext"]["runAsGroup"], 65532);
    // The pod's ServiceAccount token is not mounted into the sidecar: an empty read-only volume
    // holds its path, so the API server's ServiceAccount admission leaves the sidecar out.
    let token = sidecar["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount")
        .expect("the token path is held");
    assert_eq!(token["readOnly"], true);
    let held = mutated["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == token["name"])
        .unwrap();
    assert!(held["emptyDir"].is_object(), "{held}");
    assert_eq!(sidecar["ports"][0]["name"], "keyway");
    assert_eq!(sidecar["ports"][0]["containerPort"], 4180);
    let sc = &sidecar["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(sidecar["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(sidecar["resources"]["requests"]["memory"].is_string());
    let env: Vec<(String, String)> = sidecar["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(env.contains(&("KEYWAY_UPSTREAM".into(), "http://127.0.0.1:3000".into())));
    assert!(env.contains(&("KEYWAY_LISTEN".into(), "0.0.0.0:4180".into())));
    let volumes = mutated["spec"]["volumes"].as_array().unwrap();
    let secret_volume = volumes
        .iter()
        .find(|v| v["name"] == "keyway-client")
        .unwrap();
    assert_eq!(secret_volume["secret"]["secretName"], app.secret_name());
    assert_eq!(sidecar["volumeMounts"][0]["readOnly"], true);

    // Never twice: the mutated pod comes back (reinvocation, or a controller re-creating it).
    let again = admit(running.addr, &ca, &review("u-2", "CREATE", &mutated)).await;
    assert_eq!(again["allowed"], true);
    assert!(again.get("patch").is_none(), "{again}");

    // Pods without the label (or with another value) are left alone.
    for labels in [
        json!({"app.kubernetes.io/name": "grafana"}),
        json!({"keyway.dev/inject": "disabled"}),
    ] {
        let mut other = pod.clone();
        other["metadata"]["labels"] = labels;
        let response = admit(running.addr, &ca, &review("u-3", "CREATE", &other)).await;
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none(), "{response}");
    }
    // Only CREATE is mutated.
    let response = admit(running.addr, &ca, &review("u-4", "UPDATE", &pod)).await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());

    // A pod without volumes gets the volume list created.
    let mut bare = pod.clone();
    bare["spec"].as_object_mut().unwrap().remove("volumes");
    let response = admit(running.addr, &ca, &review("u-5", "CREATE", &bare)).await;
    let mutated = apply_patch(&bare, &response);
    assert_eq!(mutated["spec"]["volumes"].as_array().unwrap().len(), 2);
    kubernetes_validate(&mutated);

    // A pod with init containers of its own: the sidecar goes first, so it runs during theirs.
    let mut with_init = pod.clone();
    with_init["spec"]["initContainers"] = json!([{"name": "migrate", "image": "tool:1"}]);
    let response = admit(running.addr, &ca, &review("u-7", "CREATE", &with_init)).await;
    let mutated = apply_patch(&with_init, &response);
    let names: Vec<&str> = mutated["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["keyway-proxy", "migrate"]);
    kubernetes_validate(&mutated);

    // Extra proxy settings and a custom listen port.
    let mut custom = pod.clone();
    custom["metadata"]["annotations"]["keyway.dev/listen-port"] = json!("8443");
    custom["metadata"]["annotations"]["keyway.dev/proxy-env"] =
        json!("{\"KEYWAY_PASS_ACCESS_TOKEN\":\"true\"}");
    let response = admit(running.addr, &ca, &review("u-6", "CREATE", &custom)).await;
    let mutated = apply_patch(&custom, &response);
    kubernetes_validate(&mutated);
    let sidecar = &mutated["spec"]["initContainers"][0];
    assert_eq!(sidecar["ports"][0]["containerPort"], 8443);
    assert!(
        sidecar["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "KEYWAY_PASS_ACCESS_TOKEN")
    );

    running.stop().await;
    drop(server);
}

#[tokio::test]
async fn refuses_pods_that_cannot_be_protected_and_says_what_to_fix() {
    let (server, client) = api_server().await;
    create_webhook_configuration(&client).await;
    create_example_app(&client).await;
    let ensured = managed()
        .ensure(&client, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let ca = ca_bundle_in_api(&client).await;
    let slot = Arc::new(CertSlot::default());
    slot.set(ensured.key);
    let running = start_webhook(client.clone(), slot).await;

    let mut pod = example_pod();
    pod["metadata"]["annotations"]["keyway.dev/connected-app"] = json!("grafanna");
    let response = admit(running.addr, &ca, &review("r-1", "CREATE", &pod)).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("ConnectedApp \"grafanna\" does not exist in namespace \"tools\"")
            && message.contains("keyway.dev/connected-app")
            && message.contains("kubectl get connectedapps -n tools"),
        "{message}"
    );

    let mut pod = example_pod();
    let annotations = pod["metadata"]["annotations"].as_object_mut().unwrap();
    annotations.remove("keyway.dev/upstream-port");
    annotations.remove("keyway.dev/connected-app");
    let response = admit(running.addr, &ca, &review("r-2", "CREATE", &pod)).await;
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("annotation keyway.dev/connected-app is missing")
            && message.contains("annotation keyway.dev/upstream-port is missing"),
        "{message}"
    );

    // The sidecar's port is taken by the tool.
    let mut pod = example_pod();
    pod["spec"]["containers"][0]["ports"] = json!([{"containerPort": 4180}]);
    let response = admit(running.addr, &ca, &review("r-3", "CREATE", &pod)).await;
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("already uses port 4180")
    );

    // Not an AdmissionReview: 400 with a reason, and the server keeps serving.
    let (status, body) = https(
        running.addr,
        &ca,
        SERVICE_DNS,
        "POST",
        b"{\"kind\":".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("not an AdmissionReview"));
    let (status, _) = https(running.addr, &ca, SERVICE_DNS, "GET", Vec::new())
        .await
        .unwrap();
    assert_eq!(status, 405);

    // The certificate is checked: another name, or another CA, does not verify.
    let err = https(running.addr, &ca, "evil.example.com", "POST", Vec::new())
        .await
        .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    let other = certs::generate(
        &certs::service_dns_names(SERVICE, NS),
        DAY,
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let err = https(
        running.addr,
        other.ca_pem.as_bytes(),
        SERVICE_DNS,
        "POST",
        Vec::new(),
    )
    .await
    .unwrap_err();
    assert!(err.contains("certificate"), "{err}");

    // The API is down: the pod is refused (not admitted unprotected), with a reason to retry.
    drop(server);
    let response = admit(running.addr, &ca, &review("r-4", "CREATE", &example_pod())).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 500);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("could not look up ConnectedApp \"grafana\""),
        "{message}"
    );
    assert!(message.ends_with("try again"), "{message}");
    running.stop().await;
}

#[tokio::test]
async fn renews_before_expiry_and_keeps_the_old_ca_trusted_meanwhile() {
    let (server, client) = api_server().await;
    create_webhook_configuration(&client).await;
    // The first chain was made 21 days ago (30 days validity, renew 10 days before expiry).
    let now = OffsetDateTime::now_utc();
    let first = managed().ensure(&client, now - DAY * 21).await.unwrap();
    let first_bundle = ca_bundle_in_api(&client).await;
    assert_eq!(
        certs::split_bundle(&String::from_utf8_lossy(&first_bundle)).len(),
        1
    );

    // Settled: another pass (as every replica makes every few minutes) writes nothing.
    server.reset_counts();
    let again = managed().ensure(&client, now - DAY * 20).await.unwrap();
    assert!(!again.generated && !again.patched_webhooks);
    assert_eq!(server.write_counts().total_requests(), 0);
    assert_eq!(again.renew_at, first.renew_at);

    // Today is inside the renewal window: a new chain, and a bundle that trusts both.
    assert!(now.unix_timestamp() >= first.renew_at);
    let renewed = managed().ensure(&client, now).await.unwrap();
    assert!(renewed.generated && renewed.patched_webhooks);
    assert!(renewed.renew_at > first.renew_at);
    let bundle = ca_bundle_in_api(&client).await;
    let cas = certs::split_bundle(&String::from_utf8_lossy(&bundle));
    assert_eq!(cas.len(), 2);
    assert_eq!(cas[1].as_bytes(), first_bundle.as_slice());

    // A replica still serving the old certificate and one serving the new are both trusted.
    for key in [first.key.clone(), renewed.key.clone()] {
        let slot = Arc::new(CertSlot::default());
        slot.set(key);
        let running = start_webhook(client.clone(), slot).await;
        let (status, _) = https(running.addr, &bundle, SERVICE_DNS, "POST", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(status, 400);
        running.stop().await;
    }
    // The old serving certificate is not trusted by a bundle without the old CA: this is why
    // the bundle keeps it until it expires.
    let slot = Arc::new(CertSlot::default());
    slot.set(first.key.clone());
    let running = start_webhook(client.clone(), slot).await;
    let err = https(
        running.addr,
        cas[0].as_bytes(),
        SERVICE_DNS,
        "POST",
        b"{}".to_vec(),
    )
    .await
    .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    running.stop().await;

    // At the next renewal the expired first CA leaves the bundle.
    managed().ensure(&client, now + DAY * 21).await.unwrap();
    let bundle = ca_bundle_in_api(&client).await;
    let later = certs::split_bundle(&String::from_utf8_lossy(&bundle));
    assert_eq!(later.len(), 2);
    assert_eq!(later[1], cas[0]);
}

#[tokio::test]
async fn concurrent_replicas_agree_on_one_certificate() {
    let (_server, client) = api_server().await;
    create_webhook_configuration(&client).await;
    let now = OffsetDateTime::now_utc();
    let certs = managed();
    let (a, b, c) = tokio::join!(
        certs.ensure(&client, now),
        certs.ensure(&client, now),
        certs.ensure(&client, now)
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a.key.cert, b.key.cert);
    assert_eq!(b.key.cert, c.key.cert);
    let bundle = ca_bundle_in_api(&client).await;
    assert_eq!(
        certs::split_bundle(&String::from_utf8_lossy(&bundle)).len(),
        1
    );
}

#[tokio::test]
async fn a_missing_webhook_configuration_is_not_fatal() {
    let (_server, client) = api_server().await;
    let ensured = managed()
        .ensure(&client, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(ensured.generated && !ensured.patched_webhooks);
    // Created later (chart installed in another order): the next pass patches it.
    create_webhook_configuration(&client).await;
    let again = managed()
        .ensure(&client, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(!again.generated && again.patched_webhooks);
}

#[tokio::test]
async fn cert_manager_files_are_loaded_and_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let names = certs::service_dns_names(SERVICE, NS);
    let write = |g: &certs::Generated| {
        std::fs::write(dir.path().join("tls.crt"), &g.cert_pem).unwrap();
        std::fs::write(dir.path().join("tls.key"), &g.key_pem).unwrap();
    };
    let first = certs::generate(&names, DAY, OffsetDateTime::now_utc()).unwrap();
    write(&first);
    let slot = Arc::new(CertSlot::default());
    let metrics = Arc::new(Metrics::default());
    let task = tokio::spawn(operator::webhook::keep_files(
        certs::FileCerts {
            dir: dir.path().to_path_buf(),
            poll: Duration::from_millis(50),
        },
        slot.clone(),
        metrics.clone(),
    ));
    let loaded = |slot: &CertSlot| slot.get().map(|k| k.cert[0].as_ref().to_vec());
    let first_der = CertificateDer::from_pem_slice(first.cert_pem.as_bytes()).unwrap();
    for _ in 0..50 {
        if loaded(&slot).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(loaded(&slot).unwrap(), first_der.as_ref());
    assert!(
        metrics
            .encode()
            .contains("keyway_webhook_certificate_expiry_timestamp_seconds")
    );

    // cert-manager renews: the files change and the new certificate is served without restart.
    let second = certs::generate(&names, DAY * 2, OffsetDateTime::now_utc()).unwrap();
    write(&second);
    let second_der = CertificateDer::from_pem_slice(second.cert_pem.as_bytes()).unwrap();
    let mut reloaded = false;
    for _ in 0..100 {
        if loaded(&slot).as_deref() == Some(second_der.as_ref()) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
    assert!(reloaded, "the new certificate was not picked up");
}

/// Kills the child process if the test ends early.
struct ChildGuard(Option<std::process::Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain-HTTP GET; `None` while nothing listens.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    let request = http::Request::builder()
        .uri(path)
        .header("host", "127.0.0.1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The real binary, `keyway-operator webhook`, against the API test server through a
/// kubeconfig: it generates and publishes its certificate, becomes ready, injects, counts, and
/// on SIGTERM reports not ready, keeps answering for its drain delay, then stops cleanly.
#[tokio::test]
async fn the_binary_serves_until_sigterm() {
    let (server, client) = api_server().await;
    create_webhook_configuration(&client).await;
    create_example_app(&client).await;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: '{}'}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]\n\
             current-context: fake\n",
            server.url()
        ),
    )
    .unwrap();
    let (listen, admin) = (free_port(), free_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_keyway-operator"))
        .arg("webhook")
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args(["--namespace", NS, "--service-name", SERVICE])
        .args(["--webhook-configuration", CONFIG])
        .args(["--sidecar-image", "registry.internal/keyway-proxy:1.2.3"])
        .args(["--shutdown-delay", "2s"])
        .args(["--sidecar-uid", "10001", "--sidecar-gid", "10002"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));

    let mut ready = false;
    for _ in 0..200 {
        if let Some((200, _)) = http_get(admin, "/readyz").await {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the webhook did not become ready");
    assert_eq!(http_get(admin, "/healthz").await.unwrap().0, 200);

    let ca = ca_bundle_in_api(&client).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], listen));
    let pod = example_pod();
    let response = admit(addr, &ca, &review("b-1", "CREATE", &pod)).await;
    let mutated = apply_patch(&pod, &response);
    assert_eq!(
        mutated["spec"]["initContainers"][0]["image"],
        "registry.internal/keyway-proxy:1.2.3"
    );
    let sc = &mutated["spec"]["initContainers"][0]["securityContext"];
    assert_eq!(
        (&sc["runAsUser"], &sc["runAsGroup"]),
        (&json!(10001), &json!(10002))
    );
    kubernetes_validate(&mutated);
    let (_, metrics) = http_get(admin, "/metrics").await.unwrap();
    assert!(
        metrics.contains("keyway_webhook_admissions_total{outcome=\"injected\"} 1"),
        "{metrics}"
    );

    let mut child = guard.0.take().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = std::time::Instant::now();
    // The drain delay: not ready at once, and still answering admission requests meanwhile.
    let mut unready = false;
    for _ in 0..20 {
        if let Some((503, body)) = http_get(admin, "/readyz").await {
            assert!(body.contains("shutting down"), "{body}");
            unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(unready, "/readyz still ready after SIGTERM");
    let response = admit(addr, &ca, &review("b-2", "CREATE", &pod)).await;
    assert_eq!(response["uid"], "b-2", "served during the drain delay");
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited before the drain delay"
    );
    let mut exited = None;
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(status) = exited else {
        let _ = child.kill();
        panic!("the webhook did not stop within 15 s of SIGTERM");
    };
    let mut logs = String::new();
    use std::io::Read as _;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(status.success(), "exit {status}: {logs}");
    assert!(logs.contains("webhook stopped"), "{logs}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "stopped {:?} after SIGTERM, before its 2 s drain delay",
        signalled.elapsed()
    );
}

/// The API server may speak HTTP/2 (ALPN `h2`); the webhook answers it too.
#[tokio::test]
async fn answers_over_http2() {
    let (_server, client) = api_server().await;
    create_webhook_configuration(&client).await;
    create_example_app(&client).await;
    let ensured = managed()
        .ensure(&client, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let ca = ca_bundle_in_api(&client).await;
    let slot = Arc::new(CertSlot::default());
    slot.set(ensured.key);
    let running = start_webhook(client.clone(), slot).await;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(running.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(SERVICE_DNS).unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let pod = example_pod();
    let body = serde_json::to_vec(&review("h2-1", "CREATE", &pod)).unwrap();
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("https://{SERVICE_DNS}/mutate"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["response"]["uid"], "h2-1");
    assert_eq!(answer["response"]["allowed"], true);
    apply_patch(&pod, &answer["response"]);
    running.stop().await;
}

/// The chart's split: the controller's leader keeps the webhook's certificate (Secret and
/// `caBundle`), so the webhook needs no Secret access and reads the Secret as mounted files.
#[tokio::test]
async fn the_controller_keeps_the_webhook_certificate() {
    let (_server, client) = api_server().await;
    create_webhook_configuration(&client).await;
    let mut config = operator::ControllerConfig::new("https://id.example.test");
    config.webhook_certs = Some(managed());
    let operator = operator::Operator::new(client.clone(), config);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move { operator.run(stop).await });
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let secret = loop {
        if let Some(s) = secrets.get_opt("keyway-webhook-tls").await.unwrap() {
            break s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no certificate Secret"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let data = secret.data.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let bundle = Api::<MutatingWebhookConfiguration>::all(client.clone())
            .get(CONFIG)
            .await
            .unwrap()
            .webhooks
            .unwrap()[0]
            .client_config
            .ca_bundle
            .clone();
        if let Some(bundle) = bundle {
            assert_eq!(bundle.0, data[CA_CRT].0, "caBundle is the Secret's bundle");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "caBundle not patched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A caBundle stripped, then one replaced by a wrong one: each put back within seconds.
    let configs = Api::<MutatingWebhookConfiguration>::all(client.clone());
    let other = certs::generate(&["elsewhere".into()], DAY, OffsetDateTime::now_utc()).unwrap();
    for value in [None, Some(other.ca_pem)] {
        let op = match &value {
            None => json!([{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}]),
            Some(pem) => json!([{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle",
                                 "value": base64::engine::general_purpose::STANDARD.encode(pem)}]),
        };
        let patch: json_patch::Patch = serde_json::from_value(op).unwrap();
        configs
            .patch(
                CONFIG,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::<()>::Json(patch),
            )
            .await
            .unwrap();
        assert_ne!(
            ca_bundle_opt(&client).await.as_deref(),
            Some(data[CA_CRT].0.as_slice())
        );
        let broken = tokio::time::Instant::now();
        loop {
            let bundle = ca_bundle_opt(&client).await;
            if bundle.as_deref() == Some(data[CA_CRT].0.as_slice()) {
                break;
            }
            assert!(
                broken.elapsed() < Duration::from_secs(8),
                "caBundle not repaired within 8 s ({})",
                if value.is_some() { "wrong" } else { "stripped" }
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();

    // The webhook reads the Secret as kubelet mounts it, and serves a certificate the bundle trusts.
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in &data {
        std::fs::write(dir.path().join(key), &value.0).unwrap();
    }
    let slot = Arc::new(CertSlot::default());
    let files = tokio::spawn(operator::webhook::keep_files(
        certs::FileCerts {
            dir: dir.path().to_path_buf(),
            poll: Duration::from_millis(50),
        },
        slot.clone(),
        Arc::new(Metrics::default()),
    ));
    for _ in 0..100 {
        if slot.get().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    create_example_app(&client).await;
    let running = start_webhook(client.clone(), slot).await;
    let response = admit(
        running.addr,
        &data[CA_CRT].0,
        &review("u1", "CREATE", &example_pod()),
    )
    .await;
    assert_eq!(response["uid"], "u1", "{response}");
    assert_eq!(response["allowed"], true, "{response}");
    files.abort();
    running.stop().await;
}
