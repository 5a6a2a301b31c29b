"""Scenario 2, continued: least privilege. Runs last, so that the requests of every scenario
count: each verb the chart grants the controller's and the webhook's ServiceAccounts should have
been used by keyway's binaries (not by the tests acting as them), and every request of theirs
names them in its User-Agent."""

from __future__ import annotations

import pytest

from cluster import TEST_USER_AGENT
from harness import RELEASE, log, sa_user, scenario

# Granted, and needed, but never the verb of a request the audit log could show.
NEEDED_WITHOUT_A_REQUEST = {
    ("keyway.dev", "connectedapps/finalizers", "update"):
        "OwnerReferencesPermissionEnforcement asks for it when the operator sets blockOwnerDeletion "
        "on an app's Secret",
}


def _granted(chart, service_account: str) -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every rule the chart binds to the ServiceAccount."""
    rules = []
    for binding in chart.objects:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == service_account for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        rules += next(o for o in chart.objects if o["kind"] == ref["kind"] and o["metadata"]["name"] == ref["name"]
                      and o["metadata"].get("namespace") == binding["metadata"].get("namespace"))["rules"]
    return {(group, resource, verb) for r in rules for group in r.get("apiGroups", []) for resource in r.get("resources", [])
            for verb in r.get("verbs", [])}


@pytest.mark.parametrize("component", ["controller", "webhook"])
def test_2_every_granted_permission_is_used(cp, installed, kube, component):
    scenario(f"2. least privilege: every verb the chart grants the {component} was used by scenarios 1-6")
    service_account = installed.service_account(component)
    used = set()
    for e in cp.audit_events():
        ref = e.get("objectRef") or {}
        if e["user"]["username"] == sa_user(service_account) and e.get("userAgent") != TEST_USER_AGENT \
                and ref.get("resource") and e.get("responseStatus", {}).get("code") != 403:
            resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            used.add((ref.get("apiGroup", ""), resource, e["verb"]))
    granted = _granted(installed, service_account)
    assert granted, f"the chart binds no role to {service_account}"
    unused = sorted(granted - used - set(NEEDED_WITHOUT_A_REQUEST))
    for group, resource, verb in unused:
        log(f"{component}: granted, never used: {verb} {group or 'core'}/{resource}")
    assert not unused


@pytest.mark.parametrize("component", ["controller", "webhook"])
def test_2_every_request_names_keyway_operator(cp, installed, component):
    scenario(f"2. every request of the {component} names keyway-operator and its part in its User-Agent")
    user = sa_user(installed.service_account(component))
    # The tests also act as the ServiceAccount (to show a 403): those requests name the tests.
    agents = {e.get("userAgent", "") for e in cp.audit_events() if e["user"]["username"] == user} - {TEST_USER_AGENT}
    assert agents, f"no request of {user} in the audit log"
    log(f"{component}: User-Agent {', '.join(sorted(agents))}")
    assert all(a.startswith("keyway-operator/") and a.endswith(f" {component}") for a in agents), agents
