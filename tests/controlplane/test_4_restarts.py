"""Scenario 4: the API server restarted under a running operator (410 Gone, relist), and the
operator killed at random points of its reconciles."""

from __future__ import annotations

import os
import random
import time
from collections import Counter

from cluster import is_ready, wait_for
from harness import app_manifest, audit_since, log, sa_user, scenario, secret_matches, writes_by

APPS = "/apis/keyway.dev/v1alpha1/namespaces/{ns}/connectedapps"
# Once the API server answers again, the controller sees the changes made meanwhile within this
# many seconds (its watches back off at most 2 s per error; kube-runtime's default, up to 30 s
# per error for all four watches together, took minutes).
CONVERGE_AFTER_RESTART = 20
# Down long enough for the watches to fail a few times, shorter than the lease's renew deadline.
DOWN_FOR = 4


def converged(kube, namespace: str, live: set[str]) -> bool:
    """Every live app Ready with a consistent Secret; no other app; one keyway Secret per app,
    each owned by a live app (no orphan)."""
    apps = {a["metadata"]["name"]: a for a in kube.apps(namespace)}
    if set(apps) != live:
        return False
    for app in apps.values():
        ok, _ = secret_matches(kube, app)
        if not ok or not is_ready(app):
            return False
    secrets = kube.get(f"/api/v1/namespaces/{namespace}/secrets",
                       params={"labelSelector": "app.kubernetes.io/managed-by=keyway-operator"})["items"]
    uids = {a["metadata"]["uid"] for a in apps.values()}
    owners = [o["uid"] for s in secrets for o in s["metadata"].get("ownerReferences", [])]
    return len(secrets) == len(apps) and set(owners) == uids


def operator_writes(events: list[dict]) -> list[dict]:
    return [e for e in writes_by(events, sa_user()) if e["objectRef"].get("resource") != "leases"]


def test_4_apiserver_restart_under_a_running_operator(cp, keyway, kube):
    scenario("4. kube-apiserver restarted under a running operator: relist after 410 Gone, converges, no lost or duplicated write")
    ns = "s4-restart"
    kube.namespace(ns)
    # A leader that cannot renew its lease while the API server is away exits; kubelet would
    # start it again, and so does the harness.
    controller, _ = keyway.controller(keyway.chart.operator_pods()[0], restart=True)
    live = {f"app-{i}" for i in range(10)}
    for name in sorted(live):
        kube.create(app_manifest(ns, name))
    wait_for("10 apps converged", lambda: converged(kube, ns, live), timeout=90)

    since = time.time()
    cp.restart_apiserver(down_for=DOWN_FOR)
    log("kube-apiserver restarted")
    for i in range(10, 15):
        kube.create(app_manifest(ns, f"app-{i}"))
        live.add(f"app-{i}")
    for i in range(3):
        kube.patch(APPS.format(ns=ns) + f"/app-{i}", {"spec": {"displayName": f"renamed {i}"}})
    for i in (3, 4):
        kube.delete(APPS.format(ns=ns) + f"/app-{i}")
        live.discard(f"app-{i}")
    back = time.monotonic()
    wait_for("apps converged after the restart", lambda: converged(kube, ns, live), timeout=120)
    took = time.monotonic() - back
    log(f"converged {took:.1f} s after the restart; the controller was started again {controller.restarts} time(s)")
    assert took <= CONVERGE_AFTER_RESTART, f"the watches took {took:.1f} s to resume (goal {CONVERGE_AFTER_RESTART} s)"
    settled_from = time.time()
    time.sleep(6)

    events = audit_since(cp, since)
    mine = [e for e in events if e["user"]["username"] == sa_user()]
    relists = [e for e in mine if e["verb"] == "list" and e["objectRef"].get("resource") == "connectedapps"]
    log(f"after the restart the operator listed ConnectedApps {len(relists)} time(s)")
    assert relists, "the operator relisted ConnectedApps after the restart (its watch resumed from an expired resourceVersion)"
    writes = operator_writes(events)
    secret_creates = [e for e in writes if e["objectRef"]["resource"] == "secrets" and e["verb"] == "create"]
    refused_creates = [e for e in mine if e["objectRef"].get("resource") == "secrets" and e["verb"] == "create"
                       and e.get("responseStatus", {}).get("code") == 409]
    assert len(secret_creates) == 5, f"one Secret per new app: {len(secret_creates)} creates"
    assert not refused_creates, "no Secret was created twice"
    late = [f"{e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('name')}" for e in operator_writes(audit_since(cp, settled_from))]
    assert not late, f"writes once settled: {late}"
    log(f"writes after the restart: {dict(Counter((e['verb'], e['objectRef']['resource']) for e in writes))}")


def test_4_killed_at_random_points_20_times(cp, keyway, kube):
    seed = int(os.environ.get("KEYWAY_CP_SEED", time.time()))
    rng = random.Random(seed)
    scenario(f"4. SIGKILL at a random point of a reconcile, 20 times (seed {seed}): converges every time, no orphaned Secret")
    ns = "s4-kill"
    kube.namespace(ns)
    pod = keyway.chart.operator_pods()[0]
    proc, _ = keyway.controller(pod, name="controller-kill")
    live: set[str] = set()
    created = 0
    for round_ in range(20):
        op = rng.choice(["create", "create", "update", "delete"]) if live else "create"
        if op == "create":
            name = f"k-{created}"
            created += 1
            kube.create(app_manifest(ns, name))
            live.add(name)
        elif op == "update":
            name = rng.choice(sorted(live))
            kube.patch(APPS.format(ns=ns) + f"/{name}", {"spec": {"access": {"allowedGroups": [f"g{round_}"]}}})
        else:
            name = rng.choice(sorted(live))
            kube.delete(APPS.format(ns=ns) + f"/{name}")
            live.discard(name)
        delay = rng.uniform(0.0, 0.15)
        time.sleep(delay)
        proc.kill()
        proc, _ = keyway.controller(pod, name="controller-kill")
        started = time.monotonic()
        wait_for(f"round {round_ + 1} ({op} {name}, killed after {delay * 1000:.0f} ms) converged",
                 lambda: converged(kube, ns, live), timeout=60, every=0.25)
        log(f"round {round_ + 1:2}: {op} {name}, SIGKILL after {delay * 1000:3.0f} ms, converged {time.monotonic() - started:.1f} s after the restart")
