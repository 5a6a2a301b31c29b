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
        # Who added the finalizer is on record (the operator's User-Agent names its field manager).
        finalizer_managers = {m["manager"] for m in ready["metadata"].get("managedFields", [])
                              if "f:finalizers" in (m.get("fieldsV1") or {}).get("f:metadata", {})}
        assert finalizer_managers == {"keyway-operator"}, f"{ns}/{name}: finalizer written by {finalizer_managers}"
        log(f"{ns}/{name}: Ready, Secret {ready['status']['secretName']} ({', '.join(sorted(keys))})")

    # Exercise the rest of the controller's rules: a policy change rewrites the Secret; a second
    # one repeats the SecretUpdated event, which is counted as a series on the first (a PATCH of
    # it, not a second Event); a deletion runs the finalizer (deletes the Secret, removes the
    # finalizer).
    kube.apply(app_manifest("tools", "rbac-probe", access={"allowedGroups": ["a"]}), manager="kubectl")
    first = wait_ready(kube, "tools", "rbac-probe")

    def secret_updated() -> list[dict]:
        return [e for e in kube.get("/apis/events.k8s.io/v1/namespaces/tools/events")["items"]
                if e["reason"] == "SecretUpdated" and e["regarding"].get("uid") == first["metadata"]["uid"]]

    for times, group in ((1, "b"), (2, "c")):
        kube.apply(app_manifest("tools", "rbac-probe", access={"allowedGroups": [group]}), manager="kubectl")
        recorded = wait_for(f"SecretUpdated recorded {times} time(s) on tools/rbac-probe",
                            lambda times=times: (ev := secret_updated()) and (ev[0].get("series") or {}).get("count", 1) == times and ev)
        assert len(recorded) == 1, f"a repeated event became {len(recorded)} Events"
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



def test_2_tenants_manage_their_apps_but_cannot_write_status(cp, installed, kube):
    """Issue 15 §2.4: the operator settles client-ID and resource claims from status, so tenants
    must not write it. The chart's tenant roles, aggregated into the built-in `edit` and `view`,
    grant ConnectedApps and never their status."""
    scenario("2. a tenant bound to the built-in edit (view) role: ConnectedApps in its namespace yes, their status no")
    from cluster import ApiError, wait_for

    for ns in ("s2-tenant", "s2-other"):
        kube.namespace(ns)
    for sa, role in (("alice", "edit"), ("bob", "view")):
        kube.ensure({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": "s2-tenant"}})
        kube.ensure({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": {"name": f"{sa}-{role}", "namespace": "s2-tenant"},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                     "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "s2-tenant"}]})

    def aggregated(role: str) -> bool:
        rules = kube.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}")["rules"] or []
        return any("connectedapps" in r.get("resources", []) for r in rules)

    for role in ("admin", "edit", "view"):
        wait_for(f"the built-in {role} role to include ConnectedApps", lambda: aggregated(role), timeout=30)
    alice = Kube(cp.url, cp.service_account_token("s2-tenant", "alice"), cp.pki.ca)
    bob = Kube(cp.url, cp.service_account_token("s2-tenant", "bob"), cp.pki.ca)

    def status(client: Kube, op) -> int:
        try:
            op(client)
        except ApiError as e:
            return e.status
        return 200

    path = "/apis/keyway.dev/v1alpha1/namespaces/s2-tenant/connectedapps"
    forged = {"status": {"clientID": "someone-elses-client", "resource": "https://grafana.example.com"}}
    outcomes = {
        "alice creates an app": status(alice, lambda c: c.create(app_manifest("s2-tenant", "mine"))),
        "alice changes its spec": status(alice, lambda c: c.patch(f"{path}/mine", {"spec": {"displayName": "Mine"}})),
        "alice writes its status": status(alice, lambda c: c.patch(f"{path}/mine/status", forged)),
        "alice replaces its status": status(alice, lambda c: c.put(f"{path}/mine/status", {
            **c.get(f"{path}/mine"), **forged})),
        "alice creates an app in another namespace": status(alice, lambda c: c.create(app_manifest("s2-other", "theirs"))),
        "bob reads the app and its status": status(bob, lambda c: (c.get(f"{path}/mine"), c.get(f"{path}/mine/status"))),
        "bob changes its spec": status(bob, lambda c: c.patch(f"{path}/mine", {"spec": {"displayName": "Bob's"}})),
        "bob writes its status": status(bob, lambda c: c.patch(f"{path}/mine/status", forged)),
    }
    for what, code in outcomes.items():
        log(f"{what}: {code}")
    assert outcomes == {
        "alice creates an app": 200, "alice changes its spec": 200, "alice writes its status": 403,
        "alice replaces its status": 403, "alice creates an app in another namespace": 403,
        "bob reads the app and its status": 200, "bob changes its spec": 403, "bob writes its status": 403,
    }
    assert "status" not in kube.get(f"{path}/mine") or not (kube.get(f"{path}/mine").get("status") or {}).get("resource")
    kube.delete(f"{path}/mine")
