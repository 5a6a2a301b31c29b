//! The webhook's opt-in label and configuration annotations (set by tool owners on a pod template).

/// Label that makes a pod visible to the webhook (its `objectSelector`). Value: [`INJECT_ENABLED`].
pub const INJECT_LABEL: &str = "keyway.dev/inject";
/// The only value of [`INJECT_LABEL`] that asks for injection.
pub const INJECT_ENABLED: &str = "enabled";
/// Annotation naming the `ConnectedApp` (same namespace) whose Secret configures the sidecar.
pub const CONNECTED_APP_ANNOTATION: &str = "keyway.dev/connected-app";
/// Annotation giving the port the tool listens on at localhost.
pub const UPSTREAM_PORT_ANNOTATION: &str = "keyway.dev/upstream-port";
/// Optional annotation: the port the sidecar listens on (default [`DEFAULT_LISTEN_PORT`]).
pub const LISTEN_PORT_ANNOTATION: &str = "keyway.dev/listen-port";
/// Optional annotation: extra keyway-proxy settings, a JSON object of `KEYWAY_*` environment
/// variables (string values), e.g. `{"KEYWAY_PASS_ACCESS_TOKEN":"true"}`. The variables the
/// webhook itself sets cannot be overridden.
pub const PROXY_ENV_ANNOTATION: &str = "keyway.dev/proxy-env";
/// Name of the injected container; its presence means "already injected".
pub const SIDECAR_CONTAINER_NAME: &str = "keyway-proxy";
/// Name of the sidecar's container port, for Services to target.
pub const SIDECAR_PORT_NAME: &str = "keyway";
/// Default port of the sidecar.
pub const DEFAULT_LISTEN_PORT: u16 = 4180;
