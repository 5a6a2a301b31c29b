"""Scenario 2: the controller and the webhook authenticated as the chart's own ServiceAccounts
(one each), so the chart's RBAC is what is tested."""

from __future__ import annotations

import base64
import time

from cluster import Kube, wait_for
from harness import (
    NAMESPACE,
    RELEASE,
    app_manifest,
    audit_since,
    examples,
    log,
    sa_user,
    scenario,
    secret_matches,
    wait_ready,
)

# The keys of a Secret keyway writes (contract::secret), with no cookie secret replaced yet.
SECRET_KEYS = {"client-id", "issuer-url", "cookie-secret", "cookie-secret-seen", "policy.json"}

def forbidden(events: list[dict], user: str) -> list[str]:
    return sorted({f"{e['verb']} {e.get('objectRef', {}).get('resource', '?')}"
                   f"{'/' + e['objectRef']['subresource'] if e.get('objectRef', {}).get('subresource') else ''}"
                   f" in {e.get('objectRef', {}).get('namespace', '(cluster)')}"
                   for e in events if e["user"]["username"] == user and e.get("responseStatus", {}).get("code") == 403})


def test_2_every_example_becomes_ready_as_the_charts_service_account(cp, keyway, kube):
    scenario("2. controller + webhook as the chart's ServiceAccounts: every example Ready with its Secret, no 403")
    since = time.time()
    pod = keyway.chart.operator_pods()[0]
    keyway.controller(pod)
    keyway.wait_webhook_ready(keyway.webhook())
    apps = examples()
    assert len(apps) >= 6, "examples/ and examples/demo/ hold the ConnectedApps"
    for app in apps:
        kube.namespace(app["metadata"]["namespace"])
        kube.apply(app, manager="kubectl")
    for app in apps:
        ns, name = app["metadata"]["namespace"], app["metadata"]["name"]
        ready = wait_ready(kube, ns, name)
        ok, why = secret_matches(kube, ready)
        assert ok, f"{ns}/{name}: {why}"
        secret = kube.secret(ns, ready["status"]["secretName"])
        keys = set(secret["data"])
        expected = SECRET_KEYS | ({"client-secret"} if app["spec"].get("clientType", "confidential") == "confidential" else set())
        assert keys == expected, f"{ns}/{name}: Secret keys {sorted(keys)}"
        assert base64.b64decode(secret["data"]["client-id"]).decode() == ready["status"]["clientID"]
        log(f"{ns}/{name}: Ready, Secret {ready['status']['secretName']} ({', '.join(sorted(keys))})")

    # Exercise the rest of the controller's rules: a policy change rewrites the Secret, a
    # deletion runs the finalizer (deletes the Secret, removes the finalizer).
    kube.apply(app_manifest("tools", "rbac-probe", access={"allowedGroups": ["a"]}), manager="kubectl")
    first = wait_ready(kube, "tools", "rbac-probe")
    kube.apply(app_manifest("tools", "rbac-probe", access={"allowedGroups": ["b"]}), manager="kubectl")
    wait_ready(kube, "tools", "rbac-probe")
    kube.delete("/apis/keyway.dev/v1alpha1/namespaces/tools/connectedapps/rbac-probe")
    kube.wait_gone("/apis/keyway.dev/v1alpha1/namespaces/tools/connectedapps/rbac-probe")
    assert kube.secret("tools", first["status"]["secretName"]) is None

    events = audit_since(cp, since)
    for component in ("controller", "webhook"):
        denied = forbidden(events, sa_user(keyway.chart.service_account(component)))
        assert not denied, f"the chart's ServiceAccount lacks permissions the {component} uses: {denied}"


def test_2_single_namespace_mode_cannot_read_other_namespaces_secrets(cp, keyway, kube):
    scenario("2. operator.watchNamespace=tools: Secrets of other namespaces are out of reach; tools apps still Ready")
    kube.namespace("reports")
    keyway.chart.apply({"operator": {"watchNamespace": "tools"}})
    pod = keyway.chart.operator_pods()[0]
    token = cp.service_account_token(NAMESPACE, keyway.chart.service_account(), pod=pod)
    as_operator = Kube(cp.url, token, cp.pki.ca)
    assert as_operator.request("GET", "/api/v1/namespaces/reports/secrets/report-job-oauth").status_code == 403
    assert as_operator.request("GET", "/api/v1/secrets").status_code == 403
    assert as_operator.request("GET", "/api/v1/namespaces/tools/secrets").status_code == 200
    assert as_operator.request("GET", "/apis/keyway.dev/v1alpha1/namespaces/reports/connectedapps").status_code == 403

    since = time.time()  # the probes above were refused on purpose
    keyway.controller(pod)
    kube.apply(app_manifest("tools", "single-namespace"), manager="kubectl")
    ok, why = secret_matches(kube, wait_ready(kube, "tools", "single-namespace"))
    assert ok, why
    denied = forbidden(audit_since(cp, since), sa_user())
    assert not denied, f"single-namespace mode lacks permissions the operator uses: {denied}"


def test_2_the_webhook_has_no_secret_access(cp, installed, kube):
    scenario("2. the webhook's own ServiceAccount cannot read Secrets, not even its certificate's")
    webhook_sa = installed.service_account("webhook")
    assert webhook_sa != installed.service_account("controller"), "the webhook runs as a ServiceAccount of its own"
    token = cp.service_account_token(NAMESPACE, webhook_sa)
    as_webhook = Kube(cp.url, token, cp.pki.ca)
    assert as_webhook.request("GET", "/api/v1/namespaces/tools/secrets/grafana-keyway").status_code == 403
    assert as_webhook.request("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/{RELEASE}-webhook-tls").status_code == 403
    assert as_webhook.request("GET", "/api/v1/secrets").status_code == 403
    assert as_webhook.request("GET", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{RELEASE}").status_code == 403
    # What it does need: the ConnectedApp a pod names.
    assert as_webhook.request("GET", "/apis/keyway.dev/v1alpha1/namespaces/tools/connectedapps/grafana").status_code in (200, 404)


def test_2_tenants_manage_connectedapps_but_cannot_write_their_status(cp, installed, kube):
    scenario("2. a namespace user with the built-in edit role (keyway's aggregated rules): apps yes, their status no")
    wait_for("the chart's rules aggregated into the built-in edit role (controller-manager)", lambda: any(
        "connectedapps" in r.get("resources", [])
        for r in kube.get("/apis/rbac.authorization.k8s.io/v1/clusterroles/edit")["rules"]), timeout=60)
    kube.namespace("tenant-a")
    kube.ensure({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "developer", "namespace": "tenant-a"}})
    kube.ensure({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": "developer-edit", "namespace": "tenant-a"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                 "subjects": [{"kind": "ServiceAccount", "name": "developer", "namespace": "tenant-a"}]})
    developer = Kube(cp.url, cp.service_account_token("tenant-a", "developer"), cp.pki.ca)
    path = "/apis/keyway.dev/v1alpha1/namespaces/tenant-a/connectedapps"
    wait_for("the RoleBinding in force", lambda: developer.request("GET", path).status_code == 200, timeout=30)
    created = developer.request("POST", path, app_manifest("tenant-a", "mine"))
    assert created.status_code == 201, created.text
    status = {"status": {"clientID": "tools.grafana", "resource": "https://grafana.example.com"}}
    forged = developer.request("PATCH", f"{path}/mine/status", status, content_type="application/merge-patch+json")
    assert forged.status_code == 403, f"a tenant wrote the status: {forged.status_code} {forged.text}"
    assert developer.request("DELETE", f"{path}/mine").status_code == 200
    kube.delete("/api/v1/namespaces/tenant-a")
