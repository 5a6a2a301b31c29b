"""Scenario 3: the API server itself calls the webhook, through the chart's
MutatingWebhookConfiguration and Service (the Service's endpoint is the webhook in the test
network namespace)."""

from __future__ import annotations

import pytest
import yaml

from cluster import ROOT, ApiError, wait_for
from harness import RELEASE, log, scenario, wait_ready

SIDECAR = "keyway-proxy"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def tool_deployment() -> list[dict]:
    return [d for d in yaml.safe_load_all((ROOT / "examples/tool-deployment.yaml").read_text()) if d]


def pods_of(kube, namespace: str, selector: str) -> list[dict]:
    return kube.get(f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector})["items"]


def pod(name: str, labelled: bool, app: str = "grafana") -> dict:
    meta: dict = {"name": name, "namespace": "tools"}
    if labelled:
        meta["labels"] = {"keyway.dev/inject": "enabled"}
        meta["annotations"] = {"keyway.dev/connected-app": app, "keyway.dev/upstream-port": "3000"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "tool", "image": "registry.example/tool:1"}]}}


@pytest.fixture(scope="module", autouse=True)
def remove_the_tool(cp):
    yield
    kube = cp.kube
    for obj in tool_deployment():
        kube.remove(obj)
    wait_for("the tool Deployment's Pods gone (garbage collector)",
             lambda: not pods_of(kube, "tools", "app.kubernetes.io/name=grafana"), timeout=60)


@pytest.fixture
def webhook_up(keyway, kube):
    """Controller and webhook running as the chart's ServiceAccounts; grafana Ready."""
    chart_pod = keyway.chart.operator_pods()[0]
    keyway.controller(chart_pod)
    proc = keyway.webhook()
    keyway.wait_webhook_ready(proc)
    # The controller's leader patches the managed certificate's CA into the chart's webhook
    # configuration right after it writes the Secret the webhook mounts.
    wait_for("caBundle in the webhook configuration", lambda: all(
        w["clientConfig"].get("caBundle") for w in
        kube.get(f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{RELEASE}")["webhooks"]))
    kube.namespace("tools")
    grafana = next(d for d in yaml.safe_load_all((ROOT / "examples/browser-tool.yaml").read_text()) if d)
    kube.apply(grafana, manager="kubectl")
    wait_ready(kube, "tools", "grafana")
    return proc


def test_3_a_labelled_deployment_gets_the_sidecar_through_the_api_server(cp, keyway, webhook_up, kube):
    scenario("3. examples/tool-deployment.yaml: controller-manager makes ReplicaSet and Pod; the stored Pod has the sidecar")
    for obj in tool_deployment():
        kube.ensure(obj)
    pods = wait_for("the Deployment's Pod", lambda: pods_of(kube, "tools", "app.kubernetes.io/name=grafana"), timeout=60)
    stored = pods[0]
    owner = stored["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ReplicaSet", "the Pod was made by the controller-manager's ReplicaSet controller"
    names = [c["name"] for c in stored["spec"]["containers"]] + [c["name"] for c in stored["spec"].get("initContainers", [])]
    assert names.count(SIDECAR) == 1, f"containers: {names}"
    assert "grafana" in names
    sidecar = next(c for c in stored["spec"]["containers"] + stored["spec"].get("initContainers", []) if c["name"] == SIDECAR)
    log(f"stored pod {stored['metadata']['name']}: containers {names}, sidecar image {sidecar['image']}")
    assert any(p.get("name") == "keyway" for p in sidecar.get("ports", []))
    volumes = {v["name"]: v for v in stored["spec"]["volumes"]}
    assert volumes["keyway-client"]["secret"]["secretName"] == "grafana-keyway"


def test_3_the_native_sidecar_reaches_the_api_server_as_the_first_init_container(cp, keyway, kube):
    scenario("3. the chart's native sidecar: the webhook's answer, and 1.20 refusing what it cannot run")
    keyway.controller(keyway.chart.operator_pods()[0])
    proc = keyway.webhook(native=True)
    keyway.wait_webhook_ready(proc)
    kube.namespace("tools")
    grafana = next(d for d in yaml.safe_load_all((ROOT / "examples/browser-tool.yaml").read_text()) if d)
    kube.apply(grafana, manager="kubectl")
    wait_ready(kube, "tools", "grafana")
    # The webhook's own answer: keyway-proxy the first init container, restartPolicy Always.
    template = next(d for d in tool_deployment() if d["kind"] == "Deployment")["spec"]["template"]
    sent = {"apiVersion": "v1", "kind": "Pod", "metadata": {**template["metadata"], "namespace": "tools",
                                                           "generateName": "grafana-"}, "spec": template["spec"]}
    added = [op for op in keyway.admission_patch(sent) if op["path"].startswith("/spec/initContainers")]
    assert len(added) == 1 and added[0]["op"] == "add", added
    container = added[0]["value"][0] if added[0]["path"] == "/spec/initContainers" else added[0]["value"]
    assert container["name"] == SIDECAR and container["restartPolicy"] == "Always", container
    # Through the API server: 1.20 (before native sidecars) refuses the pod with its validation
    # of init containers, which shows where the patch put keyway-proxy.
    with pytest.raises(ApiError) as refused:
        kube.create(pod("native-on-1-20", labelled=True))
    message = refused.value.body.get("message", "")
    log(f"1.20 on the native sidecar: {refused.value.status} {message[:200]}")
    assert refused.value.status == 422 and "initContainers[0]" in message, message


def test_3_the_sidecar_gets_no_service_account_token(cp, keyway, webhook_up, kube):
    scenario("3. the injected sidecar has no ServiceAccount token mounted")
    for obj in tool_deployment():
        kube.ensure(obj)
    stored = wait_for("the Deployment's Pod", lambda: pods_of(kube, "tools", "app.kubernetes.io/name=grafana"), timeout=60)[0]
    sidecar = next(c for c in stored["spec"]["containers"] + stored["spec"].get("initContainers", []) if c["name"] == SIDECAR)
    mounts = {m["mountPath"]: m["name"] for m in sidecar.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in stored["spec"]["volumes"]}
    held = volumes[mounts[TOKEN_PATH]] if TOKEN_PATH in mounts else {}
    assert "emptyDir" in held, f"sidecar mounts {mounts}: the token path is held by an empty volume, not the token"
    tool = next(c for c in stored["spec"]["containers"] if c["name"] == "grafana")
    tool_mounts = {m["mountPath"]: m["name"] for m in tool.get("volumeMounts", [])}
    log(f"the tool's token mount: {tool_mounts.get(TOKEN_PATH)}; the sidecar's: {mounts[TOKEN_PATH]} (emptyDir)")
    if TOKEN_PATH in tool_mounts:
        assert "emptyDir" not in volumes[tool_mounts[TOKEN_PATH]], "the tool keeps its own token"


def test_3_with_the_webhook_down_failure_policy_decides_and_unlabelled_pods_pass(cp, keyway, webhook_up, kube):
    scenario("3. webhook down: labelled pods refused (failurePolicy Fail), admitted without sidecar (Ignore); unlabelled untouched")
    assert webhook_up.stop() is not None
    with pytest.raises(ApiError) as refused:
        kube.create(pod("labelled-down", labelled=True))
    message = refused.value.body.get("message", "")
    log(f"labelled pod with the webhook down: {refused.value.status} {message[:160]}")
    assert refused.value.status == 500 and "inject.keyway.dev" in message
    assert kube.get("/api/v1/namespaces/tools/pods/labelled-down", missing_ok=True) is None

    plain = kube.create(pod("unlabelled-down", labelled=False))
    assert [c["name"] for c in plain["spec"]["containers"]] == ["tool"]

    keyway.chart.apply({"operator": {"webhook": {"failurePolicy": "Ignore"}}})
    admitted = kube.create(pod("labelled-ignore", labelled=True))
    assert [c["name"] for c in admitted["spec"]["containers"]] == ["tool"], "Ignore admits the pod as it was sent"
    for name in ("unlabelled-down", "labelled-ignore"):
        kube.delete(f"/api/v1/namespaces/tools/pods/{name}")


def test_3_unlabelled_pods_never_reach_the_webhook(cp, keyway, webhook_up, kube):
    scenario("3. webhook up: an unlabelled pod is stored as sent; a labelled one gets the sidecar once")
    plain = kube.create(pod("unlabelled-up", labelled=False))
    assert [c["name"] for c in plain["spec"]["containers"]] == ["tool"]
    injected = kube.create(pod("labelled-up", labelled=True))
    names = [c["name"] for c in injected["spec"]["containers"] + injected["spec"].get("initContainers", [])]
    assert names.count(SIDECAR) == 1
    with pytest.raises(ApiError) as refused:
        kube.create(pod("labelled-unknown-app", labelled=True, app="no-such-app"))
    assert "no-such-app" in refused.value.body.get("message", "")
    # A tool port that is not a port number: refused, the message names the annotation.
    bad_port = pod("labelled-bad-port", labelled=True)
    bad_port["metadata"]["annotations"]["keyway.dev/upstream-port"] = "http"
    with pytest.raises(ApiError) as refused:
        kube.create(bad_port)
    message = refused.value.body.get("message", "")
    assert "keyway.dev/upstream-port" in message and "not a port number" in message, message
    for name in ("unlabelled-up", "labelled-up"):
        kube.delete(f"/api/v1/namespaces/tools/pods/{name}")



