//! What the webhook does to a pod, as pure functions: read the pod's opt-in label and annotations,
//! decide whether to inject, and build the JSON patch (RFC 6902) that adds the `keyway-proxy`
//! container and the read-only volume holding the ConnectedApp's client Secret.
//!
//! The sidecar is a native sidecar (Kubernetes 1.29+): the first init container, with
//! `restartPolicy: Always`, so it starts before the tool (and the pod's other init containers),
//! runs as long as the pod, and does not keep a Job's pod from completing. It needs no API
//! access, so the pod's ServiceAccount token is kept out of it: an empty read-only volume holds
//! the token's path, and the API server's ServiceAccount admission skips a container that
//! already mounts something there.
//!
//! The sidecar is configured through environment variables, each the `KEYWAY_*` equivalent of a
//! keyway-proxy flag (see `env`); the Secret's keys ([`contract::secret`]) appear as files in
//! `SECRET_MOUNT_PATH`.

use std::collections::BTreeMap;

use contract::inject::{
    CONNECTED_APP_ANNOTATION, DEFAULT_LISTEN_PORT, INJECT_ENABLED, INJECT_LABEL,
    LISTEN_PORT_ANNOTATION, SIDECAR_CONTAINER_NAME, SIDECAR_PORT_NAME, UPSTREAM_PORT_ANNOTATION,
};
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, Pod,
    Probe, ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub(crate) use contract::inject::PROXY_ENV_ANNOTATION;

/// Name of the pod volume that holds the client Secret.
pub(crate) const SECRET_VOLUME_NAME: &str = "keyway-client";
/// Where the client Secret is mounted (read-only) in the sidecar: one file per Secret key
/// (keyway-proxy's default `--config-dir`).
pub(crate) const SECRET_MOUNT_PATH: &str = "/etc/keyway/app";
/// Name of the sidecar's admin port (health, readiness, metrics).
pub(crate) const ADMIN_PORT_NAME: &str = "keyway-admin";
/// The non-root user and group the sidecar runs as by default.
pub(crate) const SIDECAR_UID: i64 = 65532;
/// Name of the empty volume that holds the ServiceAccount token's path in the sidecar.
pub(crate) const NO_TOKEN_VOLUME_NAME: &str = "keyway-no-token";
/// Where kubelet would mount the pod's ServiceAccount token.
pub(crate) const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The keyway-proxy environment variables the webhook sets (the flags' `KEYWAY_*` equivalents).
pub(crate) mod env {
    /// Address the proxy listens on, `0.0.0.0:<listen port>`.
    pub(crate) const LISTEN: &str = "KEYWAY_LISTEN";
    /// The tool on localhost, `http://127.0.0.1:<upstream port>`.
    pub(crate) const UPSTREAM: &str = "KEYWAY_UPSTREAM";
    /// Address of the admin server (`/healthz`, `/readyz`, `/metrics`).
    pub(crate) const ADMIN_LISTEN: &str = "KEYWAY_ADMIN_LISTEN";
    /// Directory holding the client Secret's files (`--config-dir`).
    pub(crate) const CONFIG_DIR: &str = "KEYWAY_CONFIG_DIR";
    /// `--upstream-port`, exclusive with [`UPSTREAM`]; reserved so that it cannot be added.
    pub(crate) const UPSTREAM_PORT: &str = "KEYWAY_UPSTREAM_PORT";
    /// Log format (`json`).
    pub(crate) const LOG_FORMAT: &str = "KEYWAY_LOG_FORMAT";
    /// Every variable the webhook owns; annotations cannot override these.
    pub(crate) const RESERVED: [&str; 6] = [
        LISTEN,
        UPSTREAM,
        UPSTREAM_PORT,
        ADMIN_LISTEN,
        CONFIG_DIR,
        LOG_FORMAT,
    ];
}

/// How injected sidecars look: set by the webhook's flags (and so by the Helm chart's values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarConfig {
    /// The keyway-proxy image.
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: String,
    /// The sidecar's admin port.
    pub admin_port: u16,
    /// CPU request, e.g. `10m`.
    pub cpu_request: String,
    /// Memory request, e.g. `32Mi`.
    pub memory_request: String,
    /// CPU limit; none by default (throttling a proxy adds latency to every request).
    pub cpu_limit: Option<String>,
    /// Memory limit, e.g. `128Mi`.
    pub memory_limit: String,
    /// Log format passed to the proxy.
    pub log_format: String,
    /// The user the sidecar runs as (not 0).
    pub uid: i64,
    /// The group the sidecar runs as (not 0).
    pub gid: i64,
    /// A native sidecar (the first init container, `restartPolicy: Always`; Kubernetes 1.29+),
    /// else a regular container after the pod's own (for older API servers, which refuse
    /// probes on init containers).
    pub native: bool,
}

impl Default for SidecarConfig {
    fn default() -> Self {
        Self {
            image: "ghcr.io/keyway-dev/keyway-proxy:latest".to_string(),
            image_pull_policy: "IfNotPresent".to_string(),
            admin_port: 4181,
            cpu_request: "10m".to_string(),
            memory_request: "32Mi".to_string(),
            cpu_limit: None,
            memory_limit: "128Mi".to_string(),
            log_format: "json".to_string(),
            uid: SIDECAR_UID,
            gid: SIDECAR_UID,
            native: true,
        }
    }
}

/// What a pod asks for, read from its annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Injection {
    /// The ConnectedApp (same namespace).
    pub(crate) app: String,
    /// The port the tool listens on at localhost.
    pub(crate) upstream_port: u16,
    /// The port the sidecar listens on.
    pub(crate) listen_port: u16,
    /// Extra `KEYWAY_*` variables from [`PROXY_ENV_ANNOTATION`], sorted by name.
    pub(crate) extra_env: BTreeMap<String, String>,
}

/// Whether (and how) to inject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Leave the pod as it is, for the reason given.
    Skip(&'static str),
    /// Inject a sidecar.
    Inject(Injection),
}

/// Reads the pod's label and annotations. `Err` holds every problem found, each a message that
/// says what to fix; the pod is then refused.
pub(crate) fn plan(pod: &Pod) -> Result<Plan, Vec<String>> {
    let labels = pod.metadata.labels.as_ref();
    if labels.and_then(|l| l.get(INJECT_LABEL)).map(String::as_str) != Some(INJECT_ENABLED) {
        return Ok(Plan::Skip("pod does not carry the injection label"));
    }
    if already_injected(pod) {
        return Ok(Plan::Skip("pod already has the keyway-proxy container"));
    }
    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let mut problems = Vec::new();

    let app = match annotations.get(CONNECTED_APP_ANNOTATION).map(|s| s.trim()) {
        None | Some("") => {
            problems.push(format!(
                "annotation {CONNECTED_APP_ANNOTATION} is missing: set it to the name of the \
                 ConnectedApp (in this namespace) that protects this pod"
            ));
            String::new()
        }
        Some(name) if !is_dns_subdomain(name) => {
            problems.push(format!(
                "annotation {CONNECTED_APP_ANNOTATION}: {name:?} is not a valid object name \
                 (lower-case letters, digits, '-' and '.', at most 253 characters)"
            ));
            String::new()
        }
        Some(name) => name.to_string(),
    };

    let upstream_port = match annotations.get(UPSTREAM_PORT_ANNOTATION) {
        None => {
            problems.push(format!(
                "annotation {UPSTREAM_PORT_ANNOTATION} is missing: set it to the port the tool \
                 listens on at localhost, e.g. \"8080\""
            ));
            None
        }
        Some(v) => match parse_port(v) {
            Some(p) => Some(p),
            None => {
                problems.push(format!(
                    "annotation {UPSTREAM_PORT_ANNOTATION}: {v:?} is not a port number (1-65535)"
                ));
                None
            }
        },
    };

    let listen_port = match annotations.get(LISTEN_PORT_ANNOTATION) {
        None => Some(DEFAULT_LISTEN_PORT),
        Some(v) => match parse_port(v) {
            Some(p) => Some(p),
            None => {
                problems.push(format!(
                    "annotation {LISTEN_PORT_ANNOTATION}: {v:?} is not a port number (1-65535)"
                ));
                None
            }
        },
    };

    let extra_env = match annotations.get(PROXY_ENV_ANNOTATION) {
        None => BTreeMap::new(),
        Some(raw) => match parse_extra_env(raw) {
            Ok(env) => env,
            Err(mut p) => {
                problems.append(&mut p);
                BTreeMap::new()
            }
        },
    };

    if let (Some(up), Some(listen)) = (upstream_port, listen_port)
        && up == listen
    {
        problems.push(format!(
            "the sidecar cannot listen on port {listen}, the tool's own port: set \
             {LISTEN_PORT_ANNOTATION} to another port"
        ));
    }

    match (problems.is_empty(), upstream_port, listen_port) {
        (true, Some(upstream_port), Some(listen_port)) => Ok(Plan::Inject(Injection {
            app,
            upstream_port,
            listen_port,
            extra_env,
        })),
        _ => Err(problems),
    }
}

/// Whether the pod already has the sidecar (as a container or an init container).
pub(crate) fn already_injected(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| c.name == SIDECAR_CONTAINER_NAME)
    })
}

/// The JSON patch that injects the sidecar, or every reason it cannot be injected (port or name
/// clashes with what the pod already has).
pub(crate) fn patch(
    pod: &Pod,
    injection: &Injection,
    secret_name: &str,
    config: &SidecarConfig,
) -> Result<Patch, Vec<String>> {
    let Some(spec) = pod.spec.as_ref() else {
        return Err(vec!["the pod has no spec".to_string()]);
    };
    let mut problems = Vec::new();
    if spec.host_network == Some(true) {
        problems.push(
            "the pod uses hostNetwork: the sidecar's ports would be open on the node, around any \
             Service; keyway protects only pods on the pod network"
                .to_string(),
        );
    }
    if injection.listen_port == config.admin_port {
        problems.push(format!(
            "port {} is the sidecar's admin port: set {LISTEN_PORT_ANNOTATION} to another port",
            config.admin_port
        ));
    }
    if injection.upstream_port == config.admin_port {
        problems.push(format!(
            "the tool's port {} is the sidecar's admin port; move the tool to another port",
            config.admin_port
        ));
    }
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for p in c.ports.iter().flatten() {
            let number = u16::try_from(p.container_port).ok();
            if number == Some(injection.listen_port) {
                problems.push(format!(
                    "container {:?} already uses port {}, where the sidecar would listen: set \
                     {LISTEN_PORT_ANNOTATION} to a free port",
                    c.name, injection.listen_port
                ));
            }
            if number == Some(config.admin_port) {
                problems.push(format!(
                    "container {:?} already uses port {}, the sidecar's admin port",
                    c.name, config.admin_port
                ));
            }
            if let Some(name) = &p.name
                && (name == SIDECAR_PORT_NAME || name == ADMIN_PORT_NAME)
            {
                problems.push(format!(
                    "container {:?} already has a port named {name:?}, which the sidecar uses",
                    c.name
                ));
            }
        }
    }
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    for name in [SECRET_VOLUME_NAME, NO_TOKEN_VOLUME_NAME] {
        if volumes.iter().any(|v| v.name == name) {
            problems.push(format!(
                "the pod already has a volume named {name:?}, which the sidecar uses"
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let container = sidecar(injection, config);
    let volume = Volume {
        name: SECRET_VOLUME_NAME.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret_name.to_string()),
            // Readable by the sidecar's non-root user; the files never change mode.
            default_mode: Some(0o444),
            optional: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let no_token = Volume {
        name: NO_TOKEN_VOLUME_NAME.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_string()),
            size_limit: Some(Quantity("1Ki".to_string())),
        }),
        ..Default::default()
    };
    // Native: first among the init containers, so it runs while theirs do, and before the tool.
    let mut ops = vec![match (config.native, &spec.init_containers) {
        (true, Some(_)) => add(&["spec", "initContainers", "0"], to_json(&container)),
        (true, None) => add(&["spec", "initContainers"], json_list(&[&container])),
        (false, _) => add(&["spec", "containers", "-"], to_json(&container)),
    }];
    if spec.volumes.is_some() {
        ops.push(add(&["spec", "volumes", "-"], to_json(&volume)));
        ops.push(add(&["spec", "volumes", "-"], to_json(&no_token)));
    } else {
        ops.push(add(&["spec", "volumes"], json_list(&[&volume, &no_token])));
    }
    Ok(Patch(ops))
}

/// Serialising the k8s-openapi types cannot fail: they hold only strings, numbers, booleans and
/// maps with string keys.
fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn json_list<T: serde::Serialize>(items: &[&T]) -> serde_json::Value {
    serde_json::Value::Array(items.iter().map(to_json).collect())
}

fn add(tokens: &[&str], value: serde_json::Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(tokens.iter().copied()),
        value,
    })
}

/// The sidecar container.
pub(crate) fn sidecar(injection: &Injection, config: &SidecarConfig) -> Container {
    let mut env = vec![
        env_var(env::LISTEN, format!("0.0.0.0:{}", injection.listen_port)),
        env_var(
            env::UPSTREAM,
            format!("http://127.0.0.1:{}", injection.upstream_port),
        ),
        env_var(env::ADMIN_LISTEN, format!("0.0.0.0:{}", config.admin_port)),
        env_var(env::CONFIG_DIR, SECRET_MOUNT_PATH.to_string()),
        env_var(env::LOG_FORMAT, config.log_format.clone()),
    ];
    env.extend(
        injection
            .extra_env
            .iter()
            .map(|(k, v)| env_var(k, v.clone())),
    );
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String(ADMIN_PORT_NAME.to_string()),
            scheme: Some("HTTP".to_string()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    let mut limits =
        BTreeMap::from([("memory".to_string(), Quantity(config.memory_limit.clone()))]);
    if let Some(cpu) = &config.cpu_limit {
        limits.insert("cpu".to_string(), Quantity(cpu.clone()));
    }
    Container {
        name: SIDECAR_CONTAINER_NAME.to_string(),
        // A native sidecar: restarted for the pod's whole life (see the module's doc).
        restart_policy: config.native.then(|| "Always".to_string()),
        image: Some(config.image.clone()),
        image_pull_policy: Some(config.image_pull_policy.clone()),
        env: Some(env),
        ports: Some(vec![
            ContainerPort {
                name: Some(SIDECAR_PORT_NAME.to_string()),
                container_port: i32::from(injection.listen_port),
                protocol: Some("TCP".to_string()),
                ..Default::default()
            },
            ContainerPort {
                name: Some(ADMIN_PORT_NAME.to_string()),
                container_port: i32::from(config.admin_port),
                protocol: Some("TCP".to_string()),
                ..Default::default()
            },
        ]),
        // Ready once the issuer's metadata and keys are loaded; the startup probe gives a slow
        // issuer a minute before liveness starts counting.
        startup_probe: Some(probe("/healthz", 2, 30)),
        liveness_probe: Some(probe("/healthz", 10, 3)),
        readiness_probe: Some(probe("/readyz", 5, 3)),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(config.cpu_request.clone())),
                (
                    "memory".to_string(),
                    Quantity(config.memory_request.clone()),
                ),
            ])),
            limits: Some(limits),
            ..Default::default()
        }),
        security_context: Some(security_context(config)),
        volume_mounts: Some(vec![
            VolumeMount {
                name: SECRET_VOLUME_NAME.to_string(),
                mount_path: SECRET_MOUNT_PATH.to_string(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: NO_TOKEN_VOLUME_NAME.to_string(),
                mount_path: TOKEN_MOUNT_PATH.to_string(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Default::default()
    }
}

/// The sidecar's security context: non-root as the configured user and group, nothing more.
fn security_context(config: &SidecarConfig) -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(config.uid),
        run_as_group: Some(config.gid),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Default::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn env_var(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value),
        ..Default::default()
    }
}

fn parse_port(v: &str) -> Option<u16> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u16>().ok().filter(|p| *p != 0)
}

fn parse_extra_env(raw: &str) -> Result<BTreeMap<String, String>, Vec<String>> {
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_str(raw).map_err(|e| {
        vec![format!(
            "annotation {PROXY_ENV_ANNOTATION} must be a JSON object of KEYWAY_* variables to \
             strings, e.g. {{\"KEYWAY_PASS_ACCESS_TOKEN\":\"true\"}} ({e})"
        )]
    })?;
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, value) in map {
        let valid_name = name.len() > "KEYWAY_".len()
            && name.starts_with("KEYWAY_")
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            problems.push(format!(
                "annotation {PROXY_ENV_ANNOTATION}: {name:?} is not a KEYWAY_* variable name \
                 (upper-case letters, digits and _)"
            ));
            continue;
        }
        if env::RESERVED.contains(&name.as_str()) {
            problems.push(format!(
                "annotation {PROXY_ENV_ANNOTATION}: {name} is set by the webhook from the pod's \
                 other annotations and cannot be overridden"
            ));
            continue;
        }
        match value {
            serde_json::Value::String(s) => {
                out.insert(name, s);
            }
            _ => problems.push(format!(
                "annotation {PROXY_ENV_ANNOTATION}: the value of {name} must be a string"
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// RFC 1123 subdomain, as Kubernetes object names are.
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn pod(labels: serde_json::Value, annotations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "tool", "labels": labels, "annotations": annotations},
            "spec": {"containers": [{"name": "tool", "image": "tool:1",
                "ports": [{"containerPort": 8080, "name": "http"}]}]}
        }))
        .unwrap()
    }

    fn opted_in(annotations: serde_json::Value) -> Pod {
        pod(json!({INJECT_LABEL: INJECT_ENABLED}), annotations)
    }

    #[test]
    fn skips_pods_without_the_label() {
        let p = pod(json!({}), json!({CONNECTED_APP_ANNOTATION: "a"}));
        assert!(matches!(plan(&p), Ok(Plan::Skip(_))));
        let p = pod(json!({INJECT_LABEL: "disabled"}), json!({}));
        assert!(matches!(plan(&p), Ok(Plan::Skip(_))));
    }

    #[test]
    fn reads_annotations() {
        let p = opted_in(json!({
            CONNECTED_APP_ANNOTATION: "grafana", UPSTREAM_PORT_ANNOTATION: "3000",
            PROXY_ENV_ANNOTATION: "{\"KEYWAY_PASS_ACCESS_TOKEN\":\"true\"}"
        }));
        let Ok(Plan::Inject(i)) = plan(&p) else {
            panic!("{:?}", plan(&p))
        };
        assert_eq!(i.app, "grafana");
        assert_eq!(i.upstream_port, 3000);
        assert_eq!(i.listen_port, DEFAULT_LISTEN_PORT);
        assert_eq!(i.extra_env["KEYWAY_PASS_ACCESS_TOKEN"], "true");
    }

    #[test]
    fn reports_every_problem() {
        let p = opted_in(json!({
            CONNECTED_APP_ANNOTATION: "Bad_Name", UPSTREAM_PORT_ANNOTATION: "0",
            LISTEN_PORT_ANNOTATION: "+80",
            PROXY_ENV_ANNOTATION: "{\"PATH\":\"/\",\"KEYWAY_UPSTREAM\":\"x\",\"KEYWAY_X\":1}"
        }));
        let problems = plan(&p).unwrap_err();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        let p = opted_in(json!({}));
        let problems = plan(&p).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].contains(CONNECTED_APP_ANNOTATION));
        assert!(problems[1].contains(UPSTREAM_PORT_ANNOTATION));
        let p = opted_in(json!({
            CONNECTED_APP_ANNOTATION: "a", UPSTREAM_PORT_ANNOTATION: "4180"
        }));
        assert!(plan(&p).unwrap_err()[0].contains("the tool's own port"));
    }

    #[test]
    fn never_injects_twice() {
        let mut p = opted_in(json!({
            CONNECTED_APP_ANNOTATION: "a", UPSTREAM_PORT_ANNOTATION: "8080"
        }));
        let Ok(Plan::Inject(i)) = plan(&p) else {
            panic!()
        };
        let patch = patch(&p, &i, "a-client", &SidecarConfig::default()).unwrap();
        let mut doc = serde_json::to_value(&p).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        p = serde_json::from_value(doc).unwrap();
        assert!(already_injected(&p));
        assert_eq!(
            plan(&p),
            Ok(Plan::Skip("pod already has the keyway-proxy container"))
        );
    }

    #[test]
    fn a_regular_container_when_native_sidecars_are_off() {
        let p = opted_in(json!({
            CONNECTED_APP_ANNOTATION: "a", UPSTREAM_PORT_ANNOTATION: "8080"
        }));
        let Ok(Plan::Inject(i)) = plan(&p) else {
            panic!()
        };
        let config = SidecarConfig {
            native: false,
            ..SidecarConfig::default()
        };
        let mut doc = serde_json::to_value(&p).unwrap();
        json_patch::patch(&mut doc, &patch(&p, &i, "s", &config).unwrap()).unwrap();
        assert!(doc["spec"].get("initContainers").is_none(), "{doc}");
        let sidecar = &doc["spec"]["containers"][1];
        assert_eq!(sidecar["name"], SIDECAR_CONTAINER_NAME);
        assert!(sidecar.get("restartPolicy").is_none(), "{sidecar}");
        assert_eq!(sidecar["volumeMounts"][1]["mountPath"], TOKEN_MOUNT_PATH);
    }

    #[test]
    fn refuses_clashes() {
        let p = opted_in(json!({
            CONNECTED_APP_ANNOTATION: "a", UPSTREAM_PORT_ANNOTATION: "9000",
            LISTEN_PORT_ANNOTATION: "8080"
        }));
        let Ok(Plan::Inject(i)) = plan(&p) else {
            panic!()
        };
        let problems = patch(&p, &i, "s", &SidecarConfig::default()).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("already uses port 8080"));
    }

    #[test]
    fn refuses_host_network_pods() {
        let mut p = opted_in(json!({
            CONNECTED_APP_ANNOTATION: "a", UPSTREAM_PORT_ANNOTATION: "9000"
        }));
        let Ok(Plan::Inject(i)) = plan(&p) else {
            panic!()
        };
        assert!(patch(&p, &i, "s", &SidecarConfig::default()).is_ok());
        if let Some(spec) = p.spec.as_mut() {
            spec.host_network = Some(true);
        }
        let problems = patch(&p, &i, "s", &SidecarConfig::default()).unwrap_err();
        assert!(problems[0].contains("hostNetwork"), "{problems:?}");
    }

    #[test]
    fn subdomain_names() {
        assert!(is_dns_subdomain("a.b-c.d1"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain("A"));
        assert!(!is_dns_subdomain(&"a".repeat(64)));
    }
}
