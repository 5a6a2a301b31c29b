"""keyway on the real control plane: the chart (rendered by helm, applied as helm would) and the
real binaries run as local processes authenticated as the chart's own ServiceAccounts."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import shlex
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import requests
import yaml

from cluster import ROOT, ControlPlane, Kube, Proc, State, TestNet, clean_env, free_port, is_ready, log, wait_for

RELEASE = "keyway"
NAMESPACE = "keyway-system"
# The chart's floor (Chart.yaml kubeVersion): `helm install` refuses the 1.20 server, so the test
# renders for the floor and applies what it renders, as `helm install` would.
KUBE_VERSION = "1.29.0"
HELM = ROOT / ".venv/bin/helm"
OPERATOR_BIN = ROOT / "target/debug/keyway-operator"
CRD_NAME = "connectedapps.keyway.dev"


def key(obj: dict) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])


def describe(obj: dict) -> str:
    ns = obj["metadata"].get("namespace")
    return f"{obj['kind']} {ns + '/' if ns else ''}{obj['metadata']['name']}"


# -- what the 1.20 server lacks, adapted by name ---------------------------------------------------


def _pdb_v1beta1(obj: dict) -> str:
    obj["apiVersion"] = "policy/v1beta1"
    return "policy/v1 is served from 1.21: applied as policy/v1beta1 (same fields)"


def _strip_cel(obj: dict) -> str:
    count = 0

    def strip(node: Any) -> None:
        nonlocal count
        if isinstance(node, dict):
            if "x-kubernetes-validations" in node:
                count += len(node.pop("x-kubernetes-validations"))
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(obj)
    return (f"{count} CEL rules (x-kubernetes-validations, 1.25+) removed; they are tested against the "
            "in-repo API server and api/tests/cel.rs")


# (kind, name) -> adaptation. Anything else the server refuses fails the test.
ADAPTATIONS = {
    ("PodDisruptionBudget", f"{RELEASE}-operator"): _pdb_v1beta1,
    ("PodDisruptionBudget", f"{RELEASE}-issuer"): _pdb_v1beta1,
    ("PodDisruptionBudget", f"{RELEASE}-webhook"): _pdb_v1beta1,
    ("CustomResourceDefinition", CRD_NAME): _strip_cel,
}


def render(values: dict | None = None) -> list[dict]:
    """`helm template` of charts/keyway for the chart's floor version, CRDs included."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values or {}, f)
        f.flush()
        out = subprocess.run(
            [str(HELM), "template", RELEASE, str(ROOT / "charts/keyway"), "--namespace", NAMESPACE,
             "--kube-version", KUBE_VERSION, "--include-crds", "-f", f.name],
            check=True, capture_output=True, text=True,
        ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def adapt(objects: list[dict]) -> tuple[list[dict], list[str]]:
    """The objects with the named adaptations applied, and one note per adaptation."""
    out, notes = [], []
    for obj in objects:
        obj = copy.deepcopy(obj)
        fix = ADAPTATIONS.get((obj["kind"], obj["metadata"]["name"]))
        if fix:
            notes.append(f"{describe(obj)}: {fix(obj)}")
        out.append(obj)
    return out, notes


def documented_unblock_command(name: str, namespace: str) -> list[str]:
    """The command of docs/operator.md ("The finalizer") that unblocks an app deleted while the
    operator is down, as argv for the app `name` in `namespace`."""
    text = (ROOT / "docs/operator.md").read_text()
    section = text.split("## The finalizer", 1)[1].split("\n## ", 1)[0]
    # The block sits in a list item: indented.
    blocks = [b.strip() for b in re.findall(r"```sh\n(.*?)\n\s*```", section, re.S)]
    (block,) = [b for b in blocks if b.startswith("kubectl patch")]
    return [{"NAME": name, "NAMESPACE": namespace}.get(word, word) for word in shlex.split(block)]


def is_hook(obj: dict) -> bool:
    return "helm.sh/hook" in (obj["metadata"].get("annotations") or {})


def documented_crd_upgrade() -> list[str]:
    """The CRD upgrade command of docs/install.md ("Upgrades and removal"), as argv."""
    text = (ROOT / "docs/install.md").read_text()
    section = text.split("## Upgrades and removal", 1)[1].split("\n## ", 1)[0]
    commands = [block.split() for block in re.findall(r"```sh\n(.*?)\n```", section, re.S)
                if block.startswith("kubectl apply")]
    assert len(commands) == 1, f"one kubectl apply command in the upgrade section: {commands}"
    return commands[0]


class Chart:
    """charts/keyway as release `keyway` in `keyway-system`, applied the way helm applies it:
    CRDs first (never upgraded or deleted), then every manifest; an upgrade deletes what the
    new render no longer has; uninstall deletes everything but CRDs and objects annotated
    `helm.sh/resource-policy: keep`."""

    def __init__(self, cp: ControlPlane):
        self.cp = cp
        self.kube: Kube = cp.kube
        self.objects: list[dict] = []
        self.values: dict = {}
        self.notes: list[str] = []
        self.hooks: list[dict] = []

    @property
    def installed(self) -> bool:
        return bool(self.objects)

    def find(self, kind: str, name: str) -> dict:
        return next(o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name)

    def apply(self, values: dict | None = None) -> list[str]:
        """Install or upgrade; returns the adaptation notes. Hooks (post-delete) are kept for
        `uninstall`, as helm keeps them."""
        everything, notes = adapt(render(values))
        self.hooks = [o for o in everything if is_hook(o)]
        rendered = [o for o in everything if not is_hook(o)]
        self.kube.namespace(NAMESPACE)
        for obj in rendered:
            if obj["kind"] == "CustomResourceDefinition":
                if self.kube.read(obj) is None:
                    self.kube.apply(obj, manager="helm")
                wait_for(f"CRD {obj['metadata']['name']} Established", lambda: any(
                    c["type"] == "Established" and c["status"] == "True"
                    for c in (self.kube.read(obj) or {}).get("status", {}).get("conditions", [])))
        for obj in rendered:
            if obj["kind"] != "CustomResourceDefinition":
                if obj["metadata"].get("namespace") is None and self.kube.resource(obj["apiVersion"], obj["kind"])[1]:
                    obj["metadata"]["namespace"] = NAMESPACE
                self.kube.apply(obj, manager="helm")
        new_keys = {key(o) for o in rendered}
        for old in self.objects:
            if key(old) not in new_keys and old["kind"] != "CustomResourceDefinition":
                self.kube.remove(old)
        self.objects, self.values, self.notes = rendered, values or {}, notes
        for deployment in (o for o in rendered if o["kind"] == "Deployment"):
            self.roll_out(deployment["metadata"]["name"])
        return notes

    def roll_out(self, name: str) -> None:
        """Waits until the Deployment runs its current template only, doing kubelet's part:
        there is no kubelet, so its Pods are marked Running and Ready here (the local processes
        stand in for their containers); otherwise no rollout would ever finish."""
        path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}"
        selector = ",".join(f"{k}={v}" for k, v in self.find("Deployment", name)["spec"]["selector"]["matchLabels"].items())

        def rolled_out() -> bool:
            pods = self.kube.get(f"/api/v1/namespaces/{NAMESPACE}/pods", params={"labelSelector": selector})["items"]
            for pod in pods:
                ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))
                if not ready and not pod["metadata"].get("deletionTimestamp"):
                    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    self.kube.patch(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}/status", {"status": {
                        "phase": "Running",
                        "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                                       for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                    }}, kind="strategic")
            d = self.kube.get(path)
            want = d["spec"]["replicas"]
            st = d.get("status", {})
            return (st.get("observedGeneration", 0) >= d["metadata"]["generation"] and st.get("replicas") == want
                    and st.get("updatedReplicas") == want and st.get("readyReplicas") == want and len(pods) == want)

        wait_for(f"Deployment {name} rolled out", rolled_out, timeout=90, every=0.5)

    def uninstall(self, run_hooks: bool = True) -> list[dict]:
        """Deletes what helm uninstall deletes, then runs the chart's post-delete hooks (their
        Job's container as a local process, authenticated as the hook's ServiceAccount: there is
        no kubelet) and deletes them when they succeed; returns the objects it keeps."""
        kept = []
        for obj in reversed(self.objects):
            annotations = obj["metadata"].get("annotations") or {}
            if obj["kind"] == "CustomResourceDefinition" or annotations.get("helm.sh/resource-policy") == "keep":
                kept.append(obj)
                continue
            self.kube.remove(obj)
        for obj in self.objects:
            if obj not in kept:
                wait_for(f"{describe(obj)} deleted", lambda: self.kube.read(obj) is None, timeout=60)
        self.objects = []
        if run_hooks:
            self.run_post_delete_hooks()
        return kept

    def run_post_delete_hooks(self) -> None:
        hooks = sorted(self.hooks, key=lambda o: int(o["metadata"]["annotations"].get("helm.sh/hook-weight", "0")))
        for obj in hooks:
            if obj["kind"] != "Job":
                self.kube.apply(obj, manager="helm")
        for job in (o for o in hooks if o["kind"] == "Job"):
            spec = job["spec"]["template"]["spec"]
            (container,) = spec["containers"]
            env = {e["name"]: e["value"] for e in container.get("env", [])}
            token = self.cp.service_account_token(NAMESPACE, spec["serviceAccountName"])
            kubeconfig = self.cp.write_kubeconfig(self.cp.dir / f"{job['metadata']['name']}.kubeconfig", token)
            env.update({"KUBECONFIG": str(kubeconfig), "KEYWAY_LOG_FORMAT": "text"})
            proc = subprocess.run([str(OPERATOR_BIN), *container["args"]], env=clean_env(env), capture_output=True,
                                  text=True, timeout=int(job["spec"].get("activeDeadlineSeconds", 600)))
            log(f"post-delete hook {job['metadata']['name']}: exit {proc.returncode}; {proc.stderr.strip()[-400:]}")
            assert proc.returncode == 0, f"the post-delete hook failed: {proc.stderr}"
        for obj in reversed(hooks):
            if obj["kind"] != "Job" and "hook-succeeded" in obj["metadata"]["annotations"].get("helm.sh/hook-delete-policy", ""):
                self.kube.remove(obj)

    # -- what the chart's pods would run ----------------------------------------------------------

    # The Deployment each container of the chart's runs in.
    DEPLOYMENT = {"controller": f"{RELEASE}-operator", "webhook": f"{RELEASE}-webhook"}

    def container(self, name: str) -> dict:
        deployment = self.find("Deployment", self.DEPLOYMENT[name])
        return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)

    def env(self, container: str, pod: dict) -> dict[str, str]:
        """The container's environment as kubelet would set it for `pod` (fieldRefs resolved)."""
        env = {}
        for var in self.container(container).get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                path = var["valueFrom"]["fieldRef"]["fieldPath"]
                env[var["name"]] = {"metadata.name": pod["metadata"]["name"],
                                    "metadata.namespace": pod["metadata"]["namespace"]}[path]
        return env

    def operator_pods(self, count: int = 1) -> list[dict]:
        """The Pods the controller-manager made from the chart's controller Deployment (rolled
        out by `apply`), whose tokens the local controller processes use."""
        return self.pods_of(f"{RELEASE}-operator", count)

    def webhook_pods(self, count: int = 1) -> list[dict]:
        """The Pods of the chart's webhook Deployment, whose tokens the local webhooks use."""
        return self.pods_of(f"{RELEASE}-webhook", count)

    def pods_of(self, name: str, count: int) -> list[dict]:
        deployment = self.find("Deployment", name)
        selector = ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items())
        items = self.kube.get(f"/api/v1/namespaces/{NAMESPACE}/pods", params={"labelSelector": selector})["items"]
        live = sorted((p for p in items if not p["metadata"].get("deletionTimestamp")), key=lambda p: p["metadata"]["name"])
        assert len(live) >= count, f"{len(live)} operator pod(s), {count} wanted"
        return live

    def service_account(self, component: str = "controller") -> str:
        """The ServiceAccount the chart runs `component` (controller or webhook) as."""
        deployment = self.find("Deployment", self.DEPLOYMENT[component])
        return deployment["spec"]["template"]["spec"]["serviceAccountName"]


class Supervised:
    """A process started again one second after it exits on its own, as kubelet restarts a
    container with restartPolicy Always (an operator exits when it loses its lease)."""

    def __init__(self, start: Callable[[], Proc], name: str):
        self._start, self.name = start, name
        self.proc = start()
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.2):
            if not self.proc.alive() and not self._stopping.wait(1.0):
                log(f"{self.name} exited ({self.proc.popen.returncode}); started again")
                self.proc = self._start()
                self.restarts += 1

    def alive(self) -> bool:
        return self.proc.alive()

    def signal(self, sig: int) -> None:
        self.proc.signal(sig)

    def tail(self, lines: int = 30) -> str:
        return self.proc.tail(lines)

    def kill(self) -> None:
        self._stopping.set()
        self._thread.join()
        self.proc.kill()

    def stop(self, grace: float = 30.0) -> float | None:
        self._stopping.set()
        self._thread.join()
        return self.proc.stop(grace)


class Keyway:
    _adaptation_noted = False

    """Starts `keyway-operator controller` and `keyway-operator webhook` as local processes with
    the chart's environment, each authenticated with a token of the chart's ServiceAccount bound
    to one of the chart's operator pods."""

    def __init__(self, state: State, cp: ControlPlane, chart: Chart, net: TestNet):
        if not OPERATOR_BIN.is_file():
            raise RuntimeError(f"{OPERATOR_BIN} is missing: cargo build --bins")
        self.state, self.cp, self.chart, self.net = state, cp, chart, net
        self.procs: list[Proc] = []
        self.net_api_port = net.forward(cp.port)
        self._endpoints_for: str | None = None

    def kubeconfig(self, pod: dict, server: str | None = None, component: str = "controller") -> Path:
        token = self.cp.service_account_token(NAMESPACE, self.chart.service_account(component), pod=pod)
        name = pod["metadata"]["name"]
        suffix = "-net" if server else ""
        return self.cp.write_kubeconfig(self.state.path / f"{name}{suffix}.kubeconfig", token, server=server)

    def controller(self, pod: dict, extra: dict[str, str] | None = None, name: str | None = None,
                   restart: bool = False) -> tuple[Any, int]:
        """Starts the controller as `pod`; returns the process and its HTTP port. With `restart`,
        it is started again whenever it exits on its own (kubelet's restartPolicy: Always)."""
        port = free_port()
        env = self.chart.env("controller", pod)
        env.update({"KEYWAY_HTTP_ADDR": f"127.0.0.1:{port}", "KEYWAY_LOG_FORMAT": "text",
                    "KUBECONFIG": str(self.kubeconfig(pod))})
        env.update(extra or {})
        label = name or f"controller-{pod['metadata']['name']}"

        def start() -> Proc:
            return Proc(self.state, label, [str(OPERATOR_BIN), "controller"], env=clean_env(env))

        proc: Any = Supervised(start, label) if restart else start()
        self.procs.append(proc)
        return proc, port

    # 1.20 refuses probes on init containers and knows no restartPolicy on containers, so the
    # webhooks of the scenarios inject the sidecar as a regular container (a named adaptation,
    # printed once); `webhook(native=True)` runs the chart's own setting.
    NATIVE_SIDECAR_ADAPTATION = ("webhook: KEYWAY_SIDECAR_NATIVE=false (kube-apiserver 1.20 refuses probes on init "
                                 "containers; the native sidecar is asserted on the webhook's answer and refused "
                                 "by 1.20's validation in test_3, and stored by the in-repo 1.29+ API server)")

    def webhook(self, pod: dict | None = None, native: bool = False) -> Proc:
        """Starts the webhook as `pod` (default: the chart's first webhook pod) inside the test
        network namespace, on the chart's port, with the chart's certificate Secret as the files
        kubelet would mount (the controller's leader writes it: start a controller first), and
        points the chart's Service at it (the Endpoints kubelet and the endpoints controller
        would write)."""
        pod = pod or self.chart.webhook_pods()[0]
        env = self.chart.env("webhook", pod)
        port = int(env["KEYWAY_WEBHOOK_LISTEN"].rsplit(":", 1)[1])
        admin = int(env["KEYWAY_WEBHOOK_ADMIN_LISTEN"].rsplit(":", 1)[1])
        env.update({
            "KEYWAY_WEBHOOK_LISTEN": f"{TestNet.NS_IP}:{port}",
            "KEYWAY_WEBHOOK_ADMIN_LISTEN": f"{TestNet.NS_IP}:{admin}",
            "KEYWAY_WEBHOOK_CERT_DIR": str(self.mount_cert_secret(pod)),
            "KEYWAY_SIDECAR_NATIVE": "true" if native else "false",
            "KEYWAY_LOG_FORMAT": "text",
            "KUBECONFIG": str(self.kubeconfig(pod, server=f"https://{TestNet.HOST_IP}:{self.net_api_port}",
                                              component="webhook")),
        })
        self.point_service_at(pod, port)
        self.webhook_url = f"https://{TestNet.NS_IP}:{port}"
        if not native and not Keyway._adaptation_noted:
            log(f"adapted by name: {self.NATIVE_SIDECAR_ADAPTATION}")
            Keyway._adaptation_noted = True
        proc = Proc(self.state, f"webhook-{pod['metadata']['name']}", self.net.argv([str(OPERATOR_BIN), "webhook"]),
                    env=clean_env(env))
        self.procs.append(proc)
        self.admin_url = f"http://{TestNet.NS_IP}:{admin}"
        return proc

    def mount_cert_secret(self, pod: dict) -> Path:
        """kubelet's part for the webhook pod's Secret volume: the Secret's keys as files."""
        spec = self.chart.find("Deployment", f"{RELEASE}-webhook")["spec"]["template"]["spec"]
        (volume,) = [v for v in spec["volumes"] if "secret" in v]
        name = volume["secret"]["secretName"]
        secret = wait_for(f"Secret {name} (the webhook's certificate, written by the controller's leader)",
                          lambda: (self.cp.kube.secret(NAMESPACE, name) or {}).get("data", {}).get("tls.crt")
                          and self.cp.kube.secret(NAMESPACE, name), timeout=60)
        directory = self.state.path / f"{pod['metadata']['name']}-{volume['name']}"
        directory.mkdir(exist_ok=True)
        for key, value in secret["data"].items():
            (directory / key).write_bytes(base64.b64decode(value))
        return directory

    def point_service_at(self, pod: dict, port: int) -> None:
        service = self.chart.find("Service", f"{RELEASE}-webhook")
        port_name = service["spec"]["ports"][0]["name"]
        self.cp.kube.apply({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": service["metadata"]["name"], "namespace": NAMESPACE},
            "subsets": [{
                "addresses": [{"ip": TestNet.NS_IP, "targetRef": {
                    "kind": "Pod", "namespace": NAMESPACE, "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}],
                "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            }],
        })

    def admission_patch(self, pod: dict) -> list[dict]:
        """What the running webhook answers to an AdmissionReview of creating `pod` in its
        namespace: the JSON patch (the API server of 1.20 applies it and then drops the fields it
        does not know, so this is where a 1.29+ field can be seen)."""
        gvk, gvr = {"group": "", "version": "v1", "kind": "Pod"}, {"group": "", "version": "v1", "resource": "pods"}
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "harness", "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "namespace": pod["metadata"]["namespace"], "operation": "CREATE", "userInfo": {"username": "harness"},
            "object": pod, "dryRun": False}}
        answer = requests.post(self.webhook_url + "/mutate", json=review, verify=False, timeout=10).json()["response"]
        assert answer["allowed"], answer
        return json.loads(base64.b64decode(answer["patch"])) if answer.get("patch") else []

    def wait_webhook_ready(self, proc: Proc, timeout: float = 60) -> None:
        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"webhook exited:\n{proc.tail()}")
            return requests.get(self.admin_url + "/readyz", timeout=2).status_code == 200

        wait_for("webhook /readyz", ready, timeout=timeout)

    def stop_all(self) -> None:
        for proc in self.procs:
            proc.stop(grace=30)
        self.procs = []


def leading(port: int) -> bool:
    """Whether the controller serving /metrics on `port` says it holds the lease."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except requests.RequestException:
        return False
    return any(line.split()[-1] == "1" for line in text.splitlines() if line.startswith("keyway_operator_leader "))


def leader(kube: Kube) -> str | None:
    lease = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{RELEASE}-operator", missing_ok=True)
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or None


def lease_renewals(kube: Kube) -> str | None:
    """The lease's renewTime (the leader writes a new one at each renewal)."""
    lease = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{RELEASE}-operator", missing_ok=True)
    return ((lease or {}).get("spec") or {}).get("renewTime")


def examples() -> list[dict]:
    """Every ConnectedApp in examples/ (and examples/demo/)."""
    out = []
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "ConnectedApp":
                out.append(doc)
    return out


def app_manifest(namespace: str, name: str, **spec: Any) -> dict:
    body = {"displayName": name, "redirectURIs": [f"https://{name}.example.test/oauth2/callback"]}
    body.update(spec)
    return {"apiVersion": "keyway.dev/v1alpha1", "kind": "ConnectedApp",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}


def writes_by(events: list[dict], user: str) -> list[dict]:
    """Audit events of successful writes (create, update, patch, delete) made by `user`."""
    return [e for e in events if e["user"]["username"] == user
            and e["verb"] in ("create", "update", "patch", "delete", "deletecollection")
            and e.get("responseStatus", {}).get("code", 0) < 300]


def sa_user(name: str | None = None) -> str:
    return f"system:serviceaccount:{NAMESPACE}:{name or RELEASE + '-operator'}"


def pod_of(event: dict) -> str | None:
    names = (event["user"].get("extra") or {}).get("authentication.kubernetes.io/pod-name")
    return names[0] if names else None


def scenario(text: str) -> None:
    log(f"scenario: {text}")


def wait_ready(kube, namespace: str, name: str, timeout: float = 60) -> dict:
    return wait_for(f"ConnectedApp {namespace}/{name} Ready", lambda: (app := kube.app(namespace, name)) and is_ready(app) and app,
                    timeout=timeout, every=0.25)


def secret_matches(kube, app: dict) -> tuple[bool, str]:
    """Whether the app's Secret exists, is owned by it, and its client secret's hash is the one the
    status publishes first (nothing lost between the two writes)."""
    status = app.get("status") or {}
    meta = app["metadata"]
    secret = kube.secret(meta["namespace"], status.get("secretName", ""))
    if secret is None:
        return False, "no Secret"
    owners = [o for o in secret["metadata"].get("ownerReferences", []) if o.get("controller")]
    if not owners or owners[0]["uid"] != meta["uid"]:
        return False, "Secret not owned by the app"
    data = secret.get("data") or {}
    if app["spec"].get("clientType", "confidential") == "confidential":
        client_secret = base64.b64decode(data.get("client-secret", "")).decode()
        digest = "sha256:" + hashlib.sha256(client_secret.encode()).hexdigest()
        hashes = [h["hash"] for h in status.get("clientSecrets", [])]
        if not hashes or hashes[0] != digest:
            return False, "the status does not publish the Secret's client secret"
    return True, "ok"


def audit_since(cp, since: float) -> list[dict]:
    # The audit log is written as each request completes; give the last ones a moment.
    time.sleep(0.5)
    return cp.audit_events(since)
