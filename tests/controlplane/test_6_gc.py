"""Scenario 6: owner-reference garbage collection and namespace deletion through the real
controller-manager."""

from __future__ import annotations

from cluster import wait_for
from harness import app_manifest, log, scenario, secret_matches, wait_ready

APPS = "/apis/keyway.dev/v1alpha1/namespaces/{ns}/connectedapps"


def ready_app(kube, ns: str, name: str) -> dict:
    kube.create(app_manifest(ns, name))
    app = wait_ready(kube, ns, name)
    assert secret_matches(kube, app)[0]
    return app


def test_6_the_garbage_collector_deletes_the_secret_of_a_deleted_app(cp, keyway, kube):
    scenario("6. operator stopped, finalizer removed by hand, app deleted: the controller-manager's GC deletes its Secret")
    ns = "s6-gc"
    kube.namespace(ns)
    proc, _ = keyway.controller(keyway.chart.operator_pods()[0])
    app = ready_app(kube, ns, "orphaned")
    proc.stop()
    path = APPS.format(ns=ns) + "/orphaned"
    kube.patch(path, [{"op": "remove", "path": "/metadata/finalizers"}], kind="json")
    kube.delete(path)
    kube.wait_gone(path)
    secret = f"/api/v1/namespaces/{ns}/secrets/{app['status']['secretName']}"
    kube.wait_gone(secret, timeout=60)
    log("the Secret of the deleted app was removed by the garbage collector")


def test_6_foreground_deletion_with_the_operator_running(cp, keyway, kube):
    scenario("6. DELETE with propagationPolicy=Foreground: GC and the operator's finalizer both finish; nothing left")
    ns = "s6-foreground"
    kube.namespace(ns)
    keyway.controller(keyway.chart.operator_pods()[0])
    app = ready_app(kube, ns, "foreground")
    path = APPS.format(ns=ns) + "/foreground"
    kube.delete(path, body={"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"})
    kube.wait_gone(path, timeout=60)
    kube.wait_gone(f"/api/v1/namespaces/{ns}/secrets/{app['status']['secretName']}", timeout=60)


def test_6_namespace_deletion_with_the_operator_running(cp, keyway, kube):
    scenario("6. a namespace with ConnectedApps deleted: the namespace controller and the operator's finalizer empty it")
    ns = "s6-namespace"
    kube.namespace(ns)
    keyway.controller(keyway.chart.operator_pods()[0])
    for i in range(3):
        ready_app(kube, ns, f"app-{i}")
    kube.delete(f"/api/v1/namespaces/{ns}")
    terminating = kube.get(f"/api/v1/namespaces/{ns}", missing_ok=True)
    assert terminating is None or terminating["status"]["phase"] == "Terminating"
    wait_for(f"namespace {ns} gone", lambda: kube.get(f"/api/v1/namespaces/{ns}", missing_ok=True) is None, timeout=90, every=0.5)
    log(f"namespace {ns} with 3 ConnectedApps deleted")
