"""A real Kubernetes control plane on 127.0.0.1 for keyway's tests (docs/testing.md).

etcd (Debian's etcd-server 3.4), kube-apiserver 1.20.2 and kube-controller-manager 1.20.2 (built
by build.sh) run as child processes in their own process groups; every pid and the test network
namespace are recorded in the state directory ($KEYWAY_CP_STATE), so that run.sh can end them
even when this process is killed. Nothing listens on a fixed port.

- `ControlPlane`: starts, restarts and stops the three servers; admin and ServiceAccount
  credentials (TokenRequest API); the audit log of every request.
- `Kube`: a small REST client (requests) with discovery, server-side apply and waits.
- `Proc`: a child process with its log; `stop()` measures how long SIGTERM took.
- `TestNet`: a network namespace with a veth pair, for the admission webhook: the real API
  server reaches it through the chart's Service (Endpoints may not point at loopback).

Run standalone, it starts a control plane, runs a command with KUBECONFIG set to an admin
kubeconfig and stops everything (the benchmark's --real mode uses this):

    .venv/bin/python tests/controlplane/cluster.py -- cargo bench -p operator --bench controller_scale -- --real

`--audit FILE` before `--` runs kube-apiserver with the audit log of every request (metadata
only, as the scenarios have it; it costs the server CPU, so the benchmark runs without it) and
copies it to FILE when the command ends.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import requests
import urllib3
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBE_BIN = Path(
    os.environ.get("KEYWAY_KUBE_BIN")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keyway/kube-1.20.2/bin"
)
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
# The User-Agent of the tests' own requests (`Kube`).
TEST_USER_AGENT = "keyway-controlplane-tests"

# Admission plugins the issue asks for, on top of 1.20's defaults.
ADMISSION = (
    "NamespaceLifecycle,ServiceAccount,OwnerReferencesPermissionEnforcement,"
    "MutatingAdmissionWebhook,ValidatingAdmissionWebhook"
)
# The controllers whose behaviour keyway meets: garbage collection, namespace deletion,
# ServiceAccounts and their tokens (pods are refused without one), Deployments and ReplicaSets
# (a labelled Deployment becomes a ReplicaSet's Pod that passes the webhook), and the aggregation
# of ClusterRoles (the chart's tenant rules into the built-in admin, edit and view).
CONTROLLERS = "garbagecollector,namespace,serviceaccount,serviceaccount-token,deployment,replicaset,clusterrole-aggregation"
# Proxy variables would send the API server's webhook calls elsewhere.
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


def log(msg: str) -> None:
    print(f"[controlplane] {msg}", flush=True)


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux's default when it cannot be read)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    return low if low > 2048 else 32768


PORT_LOW = 10000
PORT_HIGH = max(PORT_LOW + 1000, _ephemeral_low())
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, below the kernel's ephemeral range, not handed out before.

    The port is bound later by another process (and bound again when a scenario restarts that
    process). A port from the ephemeral range could meanwhile become the local end of any outgoing
    connection, and the bind would then fail with EADDRINUSE; below the range only an explicit
    bind takes it."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(PORT_LOW, PORT_HIGH)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {PORT_LOW}-{PORT_HIGH - 1} after 200 tries")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and not k.startswith("KUBE")}
    env.update(extra or {})
    return env


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """Polls `check` until it returns something truthy; fails with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported below if it never succeeds
            last_error = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))
        time.sleep(every)


class State:
    """The state directory: certificates, data, logs, and the pids run.sh ends."""

    def __init__(self, path: Path | None = None):
        given = path or (Path(os.environ["KEYWAY_CP_STATE"]) if os.environ.get("KEYWAY_CP_STATE") else None)
        self.owned = given is None
        self.path = given or Path(tempfile.mkdtemp(prefix="keyway-cp."))
        self.path.mkdir(parents=True, exist_ok=True)
        self.logs = self.path / "logs"
        self.logs.mkdir(exist_ok=True)

    def record(self, kind: str, value: str) -> None:
        with open(self.path / kind, "a") as f:
            f.write(value + "\n")


class Proc:
    """A child process in its own process group, logging to a file."""

    def __init__(self, state: State, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
        self.name = name
        self.argv = argv
        self.log_path = state.logs / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self._log.write(f"--- start {time.strftime('%H:%M:%S')}: {' '.join(argv)}\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=env if env is not None else clean_env(), cwd=cwd, start_new_session=True,
        )
        state.record("pids", str(self.popen.pid))

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL, at once (a crash)."""
        self.signal(signal.SIGKILL)
        self.popen.wait()
        self._log.close()

    def stop(self, grace: float = 30.0) -> float | None:
        """SIGTERM; returns the seconds it took to exit, or None when it was still running after
        `grace` (then it is killed)."""
        if not self.alive():
            self._log.close()
            return 0.0
        started = time.monotonic()
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
            took: float | None = time.monotonic() - started
        except subprocess.TimeoutExpired:
            took = None
            self.signal(signal.SIGKILL)
            self.popen.wait()
        self._log.close()
        return took

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Pki:
    """A CA, the API server's serving certificate and the ServiceAccount signing key."""

    def __init__(self, dir: Path, ip_sans: Iterable[str]):
        self.dir = dir
        dir.mkdir(exist_ok=True)
        self.ca, self.ca_key = dir / "ca.crt", dir / "ca.key"
        self.cert, self.key = dir / "apiserver.crt", dir / "apiserver.key"
        self.sa_key, self.sa_pub = dir / "sa.key", dir / "sa.pub"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", str(self.ca_key), "-out", str(self.ca), "-days", "2", "-subj", "/CN=keyway-test-ca")
        sans = ",".join(["DNS:localhost", "DNS:kubernetes.default.svc"] + [f"IP:{ip}" for ip in ip_sans])
        csr = dir / "apiserver.csr"
        openssl("req", "-new", *ec, "-keyout", str(self.key), "-out", str(csr), "-subj", "/CN=kube-apiserver")
        ext = dir / "apiserver.ext"
        ext.write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey", str(self.ca_key), "-CAcreateserial",
                "-days", "2", "-out", str(self.cert), "-extfile", str(ext))
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", str(self.sa_key))
        openssl("pkey", "-in", str(self.sa_key), "-pubout", "-out", str(self.sa_pub))


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  # Every request, with who made it, its verb, object and response code (no bodies: they hold
  # Secrets).
  - level: Metadata
"""


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on 127.0.0.1."""

    def __init__(self, state: State, webhook_host_ip: str | None = None, audit: bool = True):
        for binary in ("kube-apiserver", "kube-controller-manager"):
            if not (KUBE_BIN / binary).is_file():
                raise RuntimeError(f"{KUBE_BIN / binary} is missing: run bash tests/controlplane/build.sh")
        if not shutil.which("etcd"):
            raise RuntimeError("etcd is missing: run bash tests/controlplane/build.sh (installs etcd-server)")
        self.state = state
        self.dir = state.path / "cp"
        self.dir.mkdir(exist_ok=True)
        # The webhook's network namespace reaches the API server through a forwarder on the
        # host side of its veth pair: the serving certificate names that address too.
        self.pki = Pki(self.dir / "pki", ["127.0.0.1"] + ([webhook_host_ip] if webhook_host_ip else []))
        self.admin_token = secrets.token_urlsafe(32)
        (self.dir / "tokens.csv").write_text(f'{self.admin_token},keyway-test-admin,keyway-test-admin,"system:masters"\n')
        (self.dir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        self.audit_log = self.dir / "audit.log" if audit else None
        shm = Path("/dev/shm")
        # etcd fsyncs every write: on tmpfs the benchmark measures the API server, not the disk.
        self.etcd_dir = Path(tempfile.mkdtemp(prefix="keyway-etcd.", dir=shm if shm.is_dir() else None))
        state.record("dirs", str(self.etcd_dir))
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.etcd: Proc | None = None
        self.apiserver: Proc | None = None
        self.kcm: Proc | None = None
        self.admin_kubeconfig = self.dir / "admin.kubeconfig"
        self.write_kubeconfig(self.admin_kubeconfig, self.admin_token)
        self.kube = Kube(self.url, self.admin_token, self.pki.ca)

    # -- kubeconfigs and credentials ---------------------------------------------------------

    def write_kubeconfig(self, path: Path, token: str, server: str | None = None) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": server or self.url, "certificate-authority": str(self.pki.ca)}}],
            "users": [{"name": "test", "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "default"}}],
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def service_account_token(self, namespace: str, name: str, pod: dict | None = None, seconds: int = 7200) -> str:
        """A token of the ServiceAccount from the TokenRequest API, bound to `pod` when given (so
        the audit log names the pod, as for a token projected into a real pod)."""
        spec: dict[str, Any] = {"audiences": [API_AUDIENCE], "expirationSeconds": seconds}
        if pod:
            spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        review = self.kube.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                                {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return review["status"]["token"]

    # -- processes ---------------------------------------------------------------------------

    def start(self) -> "ControlPlane":
        started = time.monotonic()
        self.start_etcd()
        self.start_apiserver()
        self.start_controller_manager()
        log(f"etcd, kube-apiserver and kube-controller-manager ready at {self.url} in {time.monotonic() - started:.1f} s")
        return self

    def start_etcd(self) -> None:
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        self.etcd = Proc(self.state, "etcd", [
            "etcd", "--name", "keyway-test", "--data-dir", str(self.etcd_dir),
            "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"keyway-test={peer}", "--log-level", "warn",
        ])
        wait_for("etcd", lambda: requests.get(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2).ok, timeout=30)

    def start_apiserver(self) -> None:
        argv = [
            str(KUBE_BIN / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--tls-cert-file={self.pki.cert}", f"--tls-private-key-file={self.pki.key}",
            f"--cert-dir={self.dir / 'apiserver-certs'}",
            f"--token-auth-file={self.dir / 'tokens.csv'}",
            "--authorization-mode=RBAC", f"--enable-admission-plugins={ADMISSION}",
            f"--service-account-issuer={API_AUDIENCE}", f"--api-audiences={API_AUDIENCE}",
            f"--service-account-key-file={self.pki.sa_pub}", f"--service-account-signing-key-file={self.pki.sa_key}",
            "--service-cluster-ip-range=10.96.0.0/24",
            # Webhooks through a Service are dialled at the Service's endpoint (the test network
            # namespace), not at its cluster IP, which nothing on this machine routes.
            "--enable-aggregator-routing=true",
            # The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints refuse.
            "--endpoint-reconciler-type=none",
            # /debug/pprof only when asked (bench/controller/apiserver-profile.sh).
            f"--profiling={'true' if os.environ.get('KEYWAY_APISERVER_PROFILING') == '1' else 'false'}",
            "--v=1",
        ]
        if self.audit_log:
            argv += [f"--audit-policy-file={self.dir / 'audit-policy.yaml'}", f"--audit-log-path={self.audit_log}",
                     "--audit-log-format=json", "--audit-log-mode=blocking", "--audit-log-maxsize=0"]
        self.apiserver = Proc(self.state, "kube-apiserver", argv)
        self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        def ready() -> bool:
            if self.apiserver and not self.apiserver.alive():
                raise RuntimeError(f"kube-apiserver exited:\n{self.apiserver.tail()}")
            r = self.kube.session.get(self.url + "/readyz", timeout=3)
            return r.status_code == 200 and r.text == "ok"
        wait_for("kube-apiserver /readyz", ready, timeout=timeout, every=0.3)

    def start_controller_manager(self) -> None:
        kubeconfig = self.write_kubeconfig(self.dir / "kcm.kubeconfig", self.admin_token)
        self.kcm = Proc(self.state, "kube-controller-manager", [
            str(KUBE_BIN / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}", f"--controllers={CONTROLLERS}",
            f"--service-account-private-key-file={self.pki.sa_key}", f"--root-ca-file={self.pki.ca}",
            "--leader-elect=false", "--port=0", "--secure-port=0", "--v=1",
        ])
        # The serviceaccount controller has started when `default` exists in `default`.
        wait_for("kube-controller-manager (default ServiceAccount)",
                 lambda: self.kube.get("/api/v1/namespaces/default/serviceaccounts/default", missing_ok=True), timeout=60)

    def stop_apiserver(self) -> None:
        """SIGTERM, then SIGKILL after 3 s: 1.20 waits up to a minute for open watches to end
        before it exits; for its clients the effect is the same."""
        assert self.apiserver
        self.apiserver.stop(grace=3)

    def restart_apiserver(self, down_for: float = 0.0) -> None:
        """Stops kube-apiserver, waits `down_for` s and starts it again on the same port."""
        self.stop_apiserver()
        time.sleep(down_for)
        self.start_apiserver()

    def stop(self) -> None:
        if self.kcm:
            self.kcm.stop(grace=20)
        if self.apiserver:
            self.stop_apiserver()
        if self.etcd:
            self.etcd.stop(grace=20)
        shutil.rmtree(self.etcd_dir, ignore_errors=True)

    # -- the audit log ------------------------------------------------------------------------

    def audit_events(self, since: float = 0.0) -> list[dict]:
        """Audit events (stage ResponseComplete) received at or after the Unix time `since`."""
        assert self.audit_log
        out = []
        with open(self.audit_log) as f:
            for line in f:
                event = json.loads(line)
                if event.get("stage") != "ResponseComplete":
                    continue
                if since and parse_time(event["requestReceivedTimestamp"]) < since:
                    continue
                out.append(event)
        return out


def parse_time(stamp: str) -> float:
    """RFC 3339 with microseconds (the audit log's timestamps) to Unix time."""
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class ApiError(Exception):
    def __init__(self, method: str, path: str, response: requests.Response):
        self.status = response.status_code
        try:
            self.body = response.json()
        except ValueError:
            self.body = {"message": response.text}
        self.reason = self.body.get("reason", "")
        super().__init__(f"{method} {path}: {self.status} {self.reason}: {self.body.get('message', '')}")


class Kube:
    """A small Kubernetes REST client: JSON in and out, discovery, server-side apply."""

    def __init__(self, url: str, token: str, ca: Path):
        self.url = url
        self.session = requests.Session()
        # Not the environment's CA bundle or proxies: this server's CA, directly.
        self.session.trust_env = False
        self.session.headers["Authorization"] = f"Bearer {token}"
        # The tests' own requests, told apart in the audit log from those of keyway's binaries.
        self.session.headers["User-Agent"] = TEST_USER_AGENT
        self.session.verify = str(ca)
        self._resources: dict[tuple[str, str], tuple[str, bool]] = {}

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                params: dict | None = None, timeout: float = 30) -> requests.Response:
        data = None
        if body is not None:
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.session.request(method, self.url + path, data=data, params=params, timeout=timeout,
                                    headers={"Content-Type": content_type} if data is not None else None)

    def _json(self, method: str, path: str, body: Any = None, missing_ok: bool = False, **kw: Any) -> Any:
        r = self.request(method, path, body, **kw)
        if missing_ok and r.status_code == 404:
            return None
        if r.status_code >= 400:
            raise ApiError(method, path, r)
        return r.json() if r.content else None

    def get(self, path: str, missing_ok: bool = False, **kw: Any) -> Any:
        return self._json("GET", path, missing_ok=missing_ok, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self._json("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self._json("PUT", path, body, **kw)

    def patch(self, path: str, body: Any, kind: str = "merge", **kw: Any) -> Any:
        types = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
                 "strategic": "application/strategic-merge-patch+json"}
        return self._json("PATCH", path, body, content_type=types[kind], **kw)

    def delete(self, path: str, missing_ok: bool = True, body: Any = None, **kw: Any) -> Any:
        return self._json("DELETE", path, body, missing_ok=missing_ok, **kw)

    # -- discovery and object paths ------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(collection path prefix without namespace, namespaced) for a kind, from discovery."""
        key = (api_version, kind)
        if key not in self._resources:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            listing = self.get(base, missing_ok=True)
            if listing is None:
                raise LookupError(f"the server does not serve {api_version}")
            for res in listing["resources"]:
                if "/" not in res["name"]:
                    self._resources[(api_version, res["kind"])] = (f"{base}/{{ns}}{res['name']}", res["namespaced"])
            if key not in self._resources:
                raise LookupError(f"the server does not serve {kind} in {api_version}")
        return self._resources[key]

    def path(self, obj: dict, name: bool = True) -> str:
        template, namespaced = self.resource(obj["apiVersion"], obj["kind"])
        ns = obj["metadata"].get("namespace") or "default"
        path = template.format(ns=f"namespaces/{ns}/" if namespaced else "")
        return f"{path}/{obj['metadata']['name']}" if name else path

    def apply(self, obj: dict, manager: str = "keyway-test", force: bool = True) -> dict:
        """Server-side apply of one object (what `kubectl apply --server-side` sends)."""
        return self._json("PATCH", self.path(obj), json.dumps(obj), content_type="application/apply-patch+yaml",
                          params={"fieldManager": manager, "force": "true" if force else "false"})

    def create(self, obj: dict) -> dict:
        return self.post(self.path(obj, name=False), obj)

    def ensure(self, obj: dict) -> dict:
        """Creates the object unless it exists (`kubectl create`; 1.20's server-side apply
        refuses a Service port without `protocol`, which later versions default)."""
        return self.read(obj) or self.create(obj)

    def read(self, obj: dict) -> dict | None:
        return self.get(self.path(obj), missing_ok=True)

    def remove(self, obj: dict, **params: str) -> Any:
        return self.delete(self.path(obj), params=params or None)

    # -- small helpers --------------------------------------------------------------------------

    def namespace(self, name: str) -> dict:
        """Creates the namespace (with the kubernetes.io/metadata.name label that 1.21+ sets
        itself and the webhook's namespaceSelector reads) unless it exists."""
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}}}
        return self.apply(body)

    def apps(self, namespace: str | None = None) -> list[dict]:
        where = f"namespaces/{namespace}/" if namespace else ""
        return self.get(f"/apis/keyway.dev/v1alpha1/{where}connectedapps")["items"]

    def app(self, namespace: str, name: str) -> dict | None:
        return self.get(f"/apis/keyway.dev/v1alpha1/namespaces/{namespace}/connectedapps/{name}", missing_ok=True)

    def secret(self, namespace: str, name: str) -> dict | None:
        return self.get(f"/api/v1/namespaces/{namespace}/secrets/{name}", missing_ok=True)

    def wait_gone(self, path: str, timeout: float = 60) -> None:
        wait_for(f"{path} to be gone", lambda: self.get(path, missing_ok=True) is None, timeout=timeout, every=0.3)


def is_ready(app: dict | None) -> bool:
    if not app:
        return False
    status = app.get("status") or {}
    meta = app["metadata"]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
    return ready and status.get("observedGeneration") == meta.get("generation")


# -- the test network namespace of the admission webhook -------------------------------------------


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


class TestNet:
    """A network namespace joined to the host by a veth pair (host 10.254.77.1, namespace
    10.254.77.2, a /30 that only this machine knows). The webhook listens inside; the API server
    reaches it through the chart's Service and an Endpoints object naming 10.254.77.2. The
    webhook reaches the API server through a TCP forwarder on 10.254.77.1."""

    HOST_IP = "10.254.77.1"
    NS_IP = "10.254.77.2"

    def __init__(self, state: State):
        self.state = state
        self.name = f"keyway-cp-{os.getpid()}"
        self.host_if = f"kwcp{os.getpid() % 100000}"
        run("ip", "netns", "add", self.name)
        state.record("netns", self.name)
        run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        run("ip", "addr", "add", f"{self.HOST_IP}/30", "dev", self.host_if)
        run("ip", "link", "set", self.host_if, "up")
        for cmd in (["ip", "addr", "add", f"{self.NS_IP}/30", "dev", "eth0"], ["ip", "link", "set", "eth0", "up"],
                    ["ip", "link", "set", "lo", "up"]):
            run("ip", "netns", "exec", self.name, *cmd)
        self._forwarders: list[Forwarder] = []

    def forward(self, target_port: int) -> int:
        """A port on the host side of the pair that forwards to 127.0.0.1:target_port."""
        fwd = Forwarder(self.HOST_IP, target_port)
        self._forwarders.append(fwd)
        return fwd.port

    def argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def close(self) -> None:
        for fwd in self._forwarders:
            fwd.close()
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.host_if], capture_output=True)


class Forwarder:
    """Copies TCP connections from (host, port) to 127.0.0.1:target, in threads."""

    def __init__(self, host: str, target: int):
        self.target = target
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind((host, 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.closed = True
        self.server.close()


def cleanup(state_dir: Path) -> None:
    """Ends every recorded process group and removes the network namespaces and data dirs: the
    safety net run.sh calls, whatever happened to the test process."""
    pids = state_dir / "pids"
    if pids.exists():
        groups = [int(p) for p in pids.read_text().split()]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in groups:
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            if sig == signal.SIGTERM:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and any(_group_alive(p) for p in groups):
                    time.sleep(0.2)
    netns = state_dir / "netns"
    if netns.exists():
        for name in netns.read_text().split():
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    dirs = state_dir / "dirs"
    if dirs.exists():
        for d in dirs.read_text().split():
            shutil.rmtree(d, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def main(argv: list[str]) -> int:
    """`cluster.py [--audit FILE] -- COMMAND...`: a control plane for COMMAND, then stop."""
    if "--" not in argv:
        print(__doc__)
        return 64
    options, command = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    if not command:
        print("cluster.py: no command after --", file=sys.stderr)
        return 64
    audit_copy = None
    if options[:1] == ["--audit"] and len(options) == 2:
        audit_copy = Path(options[1])
    elif options:
        print(f"cluster.py: unknown options {' '.join(options)} (only --audit FILE)", file=sys.stderr)
        return 64
    urllib3.disable_warnings()
    state = State()
    cp = ControlPlane(state, audit=audit_copy is not None)
    try:
        cp.start()
        log(f"running {' '.join(command)} with KUBECONFIG={cp.admin_kubeconfig}")
        return subprocess.run(command, env=clean_env({"KUBECONFIG": str(cp.admin_kubeconfig)})).returncode
    finally:
        if audit_copy is not None and cp.audit_log is not None and cp.audit_log.exists():
            shutil.copyfile(cp.audit_log, audit_copy)
            log(f"audit log copied to {audit_copy}")
        cp.stop()
        cleanup(state.path)
        if state.owned:
            shutil.rmtree(state.path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
