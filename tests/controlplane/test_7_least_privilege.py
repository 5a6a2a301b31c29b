"""Scenario 2, continued: least privilege. Runs last, so that the requests of every scenario
count: each verb the chart grants the operator's ServiceAccount should have been used."""

from __future__ import annotations

import pytest

from harness import RELEASE, log, sa_user, scenario

# Granted, and needed, but never the verb of a request the audit log could show.
NEEDED_WITHOUT_A_REQUEST = {
    ("keyway.dev", "connectedapps/finalizers", "update"):
        "OwnerReferencesPermissionEnforcement asks for it when the operator sets blockOwnerDeletion "
        "on an app's Secret",
}


def _granted(chart) -> set[tuple[str, str, str]]:
    rules = []
    for obj in chart.objects:
        if obj["kind"] in ("ClusterRole", "Role") and obj["metadata"]["name"].startswith(f"{RELEASE}-operator"):
            rules += obj["rules"]
    return {(group, resource, verb) for r in rules for group in r.get("apiGroups", []) for resource in r.get("resources", [])
            for verb in r.get("verbs", [])}


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="issue 15 §2.2: the chart grants the operator verbs it never uses "
                                       "(RBAC as narrow as it allows)")
def test_2_xfail_every_granted_permission_is_used(cp, installed, kube):
    scenario("2. least privilege: every verb the chart grants the operator was used by scenarios 1-6")
    used = set()
    for e in cp.audit_events():
        ref = e.get("objectRef") or {}
        if e["user"]["username"] == sa_user() and ref.get("resource") and e.get("responseStatus", {}).get("code") != 403:
            resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            used.add((ref.get("apiGroup", ""), resource, e["verb"]))
    unused = sorted(_granted(installed) - used - set(NEEDED_WITHOUT_A_REQUEST))
    for group, resource, verb in unused:
        log(f"granted, never used: {verb} {group or 'core'}/{resource}")
    assert not unused
