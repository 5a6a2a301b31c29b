"""Scenario 1: the chart's manifests are accepted by the real server; upgrade and uninstall leave
nothing behind."""

from __future__ import annotations

import copy
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from cluster import wait_for
from harness import (ADAPTATIONS, CRD_NAME, NAMESPACE, RELEASE, Chart, Keyway, app_manifest, describe, documented_crd_upgrade,
                     documented_unblock_command, log, scenario, wait_ready)

INSTANCE = f"app.kubernetes.io/instance={RELEASE}"


def test_1_chart_is_accepted_and_upgrades_prune(cp, chart: Chart, kube):
    scenario("1. helm template (floor 1.29) applied to kube-apiserver 1.20.2; upgrade; upgrade back")
    notes = chart.apply()
    for note in notes:
        log(f"adapted by name: {note}")
    adapted = {(o["kind"], o["metadata"]["name"]) for o in chart.objects} & set(ADAPTATIONS)
    assert len(notes) == len(adapted) == len(ADAPTATIONS), "every named adaptation applies to an object the chart renders"
    for obj in chart.objects:
        assert kube.read(obj) is not None, f"{describe(obj)} is not on the server"

    # An upgrade to single-namespace mode with NetworkPolicies: the RBAC moves to Roles in the
    # watched namespace; the upgrade back removes what only the first render had.
    kube.namespace("tools")
    chart.apply({"operator": {"watchNamespace": "tools"}, "networkPolicy": {"enabled": True}})
    role = kube.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/tools/roles/{RELEASE}-operator")
    assert any("secrets" in r["resources"] for r in role["rules"])
    cluster_role = kube.get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{RELEASE}-operator")
    assert not any("secrets" in r.get("resources", []) for r in cluster_role["rules"]), \
        "single-namespace mode grants no cluster-wide Secret access"
    policies = kube.get(f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies")["items"]
    assert policies, "networkPolicy.enabled renders NetworkPolicies the server accepts"

    chart.apply()
    assert kube.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/tools/roles/{RELEASE}-operator", missing_ok=True) is None
    assert not kube.get(f"/apis/networking.k8s.io/v1/namespaces/{NAMESPACE}/networkpolicies")["items"]


def test_1_crd_upgrade_with_the_documented_command(cp, chart: Chart, kube):
    scenario("1. Helm never upgrades crds/: the command of docs/install.md brings an older CRD up to the chart's")
    if not chart.installed:
        chart.apply()
    current = chart.find("CustomResourceDefinition", CRD_NAME)  # as adapted for 1.20 (CEL removed)
    older = copy.deepcopy(current)
    for version in older["spec"]["versions"]:
        version.pop("additionalPrinterColumns", None)
    kube.apply(older, manager="helm")  # what an earlier chart's helm install left
    assert not kube.read(current)["spec"]["versions"][0].get("additionalPrinterColumns")
    argv = documented_crd_upgrade()
    with tempfile.TemporaryDirectory() as crds:
        # The chart's crds/ with the named 1.20 adaptation, in place of the path the doc names.
        (Path(crds) / "crd.yaml").write_text(yaml.safe_dump(current))
        argv[argv.index("-f") + 1] = crds
        proc = subprocess.run([*argv, "--kubeconfig", str(cp.admin_kubeconfig)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stdout}{proc.stderr}"
    log(f"{' '.join(argv)}: {proc.stdout.strip()}")
    served = kube.read(current)["spec"]["versions"]
    assert [v.get("additionalPrinterColumns") for v in served] == \
        [v.get("additionalPrinterColumns") for v in current["spec"]["versions"]], "the upgrade restored what the older CRD lacked"


def _labelled_leftovers(kube) -> list[str]:
    """Every object on the server that carries the release's instance label."""
    found = []
    for group_path in ["/api/v1"] + [f"/apis/{g['preferredVersion']['groupVersion']}" for g in kube.get("/apis")["groups"]]:
        for res in kube.get(group_path)["resources"]:
            if "/" in res["name"] or "list" not in res["verbs"]:
                continue
            items = kube.get(f"{group_path}/{res['name']}", params={"labelSelector": INSTANCE})["items"]
            found += [f"{res['kind']} {i['metadata'].get('namespace', '-')}/{i['metadata']['name']}" for i in items]
    return sorted(set(found))


def test_1_uninstall_leaves_only_what_the_chart_keeps(cp, chart: Chart, kube, state, net):
    scenario("1. uninstall after the operator and webhook ran: nothing left but what the chart keeps")
    if not chart.installed or chart.values:
        chart.apply()
    keyway = Keyway(state, cp, chart, net)
    try:
        pod = chart.operator_pods()[0]
        keyway.controller(pod)
        webhook = keyway.webhook()
        keyway.wait_webhook_ready(webhook)
        kube.namespace("s1")
        kube.create(app_manifest("s1", "before-uninstall"))
        wait_ready(kube, "s1", "before-uninstall")
    finally:
        keyway.stop_all()  # the chart's pods go with their Deployment
    kept = chart.uninstall()
    kept_names = {describe(o) for o in kept}
    log(f"kept by the chart: {sorted(kept_names)}")
    assert kept_names == {f"CustomResourceDefinition {CRD_NAME}", f"Secret {NAMESPACE}/{RELEASE}-issuer-signing-keys",
                          f"PersistentVolumeClaim {NAMESPACE}/{RELEASE}-issuer-data"}, "what the chart documents it keeps"
    leftovers = set(_labelled_leftovers(kube))
    assert leftovers <= kept_names, f"left behind after uninstall: {sorted(leftovers - kept_names)}"
    # What the processes created at run time, in the release namespace that helm keeps.
    for path, what in [(f"/api/v1/namespaces/{NAMESPACE}/secrets/{RELEASE}-webhook-tls", "the webhook's managed certificate"),
                       (f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{RELEASE}-operator", "the leader Lease")]:
        if kube.get(path, missing_ok=True) is not None:
            log(f"left in {NAMESPACE} (made at run time, not by the chart): {what} ({path})")


def test_1_namespace_deletion_after_uninstall(cp, chart: Chart, kube):
    scenario("1. after uninstall (its post-delete hook ran), a namespace with ConnectedApps is deleted: no finalizer traps it")
    assert not chart.installed, "runs after the uninstall scenario"
    app = kube.app("s1", "before-uninstall")
    assert app is not None, "the app outlived the uninstall (the CRD is kept)"
    assert "keyway.dev/cleanup" not in app["metadata"].get("finalizers", []), \
        "the uninstall hook removed the finalizer the operator had added"
    kube.delete("/api/v1/namespaces/s1")
    kube.wait_gone("/api/v1/namespaces/s1", timeout=60)
    leftovers = [o for o in chart.hooks if kube.read(o) is not None and o["kind"] != "Job"]
    assert not leftovers, f"hook objects left: {[describe(o) for o in leftovers]}"


def test_1_an_app_deleted_while_the_operator_is_down_is_unblocked_by_the_documented_command(cp, chart: Chart, kube, state, net):
    scenario("1. operator down, app deleted: it hangs on its finalizer; the one command of docs/operator.md unblocks it")
    if not chart.installed or chart.values:
        chart.apply()
    keyway = Keyway(state, cp, chart, net)
    try:
        keyway.controller(chart.operator_pods()[0])
        kube.namespace("s1b")
        kube.create(app_manifest("s1b", "orphaned"))
        ready = wait_ready(kube, "s1b", "orphaned")
    finally:
        keyway.stop_all()
    kube.delete("/apis/keyway.dev/v1alpha1/namespaces/s1b/connectedapps/orphaned")
    time.sleep(2)
    assert kube.app("s1b", "orphaned") is not None, "without the operator the finalizer holds the app"
    command = documented_unblock_command("orphaned", "s1b")
    proc = subprocess.run([*command, "--kubeconfig", str(cp.admin_kubeconfig)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(command)}: {proc.stdout}{proc.stderr}"
    kube.wait_gone("/apis/keyway.dev/v1alpha1/namespaces/s1b/connectedapps/orphaned", timeout=30)
    # Its Secret follows through the owner reference (the controller-manager's garbage collector).
    wait_for("the app's Secret collected", lambda: kube.secret("s1b", ready["status"]["secretName"]) is None, timeout=60)
    kube.delete("/api/v1/namespaces/s1b")
