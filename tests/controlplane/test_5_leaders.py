"""Scenario 5: two operator replicas (the chart's Deployment at replicas=2, one token bound to
each of its pods, so the audit log tells the replicas apart); failover; SIGTERM in every state."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from cluster import is_ready, wait_for
from harness import app_manifest, audit_since, leader, lease_renewals, leading, log, pod_of, sa_user, scenario, writes_by

# The chart's defaults: the controller's lease (KEYWAY_LEASE_DURATION / RETRY_PERIOD unset, so
# the binary's 15 s / 2 s), and the pod's terminationGracePeriodSeconds (unset: 30 s).
LEASE_DURATION = 15
RETRY_PERIOD = 2
SHUTDOWN_GRACE = 30


@pytest.fixture
def two_replicas(keyway, kube):
    keyway.chart.apply({"operator": {"replicas": 2}})
    pods = keyway.chart.operator_pods(2)[:2]
    started = {p["metadata"]["name"]: keyway.controller(p) for p in pods}
    procs = {name: proc for name, (proc, _) in started.items()}

    def one_leads() -> str | None:
        # The replica that says so, and the Lease naming it (the Lease alone may still name a
        # replica of an earlier test: the same Pod names).
        holders = [name for name, (_, port) in started.items() if leading(port)]
        return holders[0] if len(holders) == 1 and leader(kube) == holders[0] else None

    holder = wait_for("a leader", one_leads, timeout=LEASE_DURATION + 10)
    follower = next(name for name in procs if name != holder)
    return procs, holder, follower, pods


class AppWriter:
    """Creates a ConnectedApp every 0.3 s in a thread, so that every leader has work."""

    def __init__(self, kube, namespace: str):
        self.kube, self.namespace, self.names = kube, namespace, []
        self.stop_flag = threading.Event()
        kube.namespace(namespace)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        i = 0
        while not self.stop_flag.is_set():
            name = f"w-{i}"
            try:
                self.kube.create(app_manifest(self.namespace, name))
                self.names.append(name)
            except Exception:  # noqa: BLE001 - the API server may be briefly away; the next one counts
                pass
            i += 1
            self.stop_flag.wait(0.3)

    def stop(self) -> list[str]:
        self.stop_flag.set()
        self.thread.join()
        return self.names


def writers_in_order(events: list[dict]) -> list[tuple[float, str]]:
    from cluster import parse_time

    writes = [e for e in writes_by(events, sa_user()) if e["objectRef"].get("resource") != "leases"]
    return sorted((parse_time(e["stageTimestamp"]), pod_of(e) or "?") for e in writes)


def test_5_the_follower_takes_over_within_the_lease_and_never_writes_alongside(cp, keyway, kube, two_replicas):
    procs, holder, follower, _ = two_replicas
    scenario(f"5. two replicas: SIGKILL the leader {holder}; {follower} takes over within the lease; one writer at a time")
    since = time.time()
    writer = AppWriter(kube, "s5-failover")
    time.sleep(3)
    killed_at = time.time()
    procs[holder].kill()
    wait_for(f"{follower} to hold the lease", lambda: leader(kube) == follower, timeout=LEASE_DURATION + RETRY_PERIOD + 10, every=0.1)
    took = time.time() - killed_at
    time.sleep(3)
    names = writer.stop()
    for name in names:
        wait_for(f"s5-failover/{name} Ready", lambda: is_ready(kube.app("s5-failover", name)), timeout=60)
    log(f"leader killed; {follower} took over after {took:.1f} s (lease {LEASE_DURATION} s, retry {RETRY_PERIOD} s); {len(names)} apps Ready")
    assert took <= LEASE_DURATION + RETRY_PERIOD + 1

    order = writers_in_order(audit_since(cp, since))
    sequence = [w for i, (_, w) in enumerate(order) if i == 0 or order[i - 1][1] != w]
    log(f"writers in the audit log, in order: {' -> '.join(sequence)} ({len(order)} writes)")
    assert sequence in ([holder, follower], [follower]), "one writer at a time: the old leader, then the new one"
    assert all(t <= killed_at + 0.5 for t, w in order if w == holder)


def test_5_a_frozen_leader_does_not_write_after_its_lease_passed(cp, keyway, kube, two_replicas):
    procs, holder, follower, _ = two_replicas
    scenario(f"5. the leader {holder} frozen (SIGSTOP) past its lease, resumed (SIGCONT): it writes nothing once {follower} leads")
    writer = AppWriter(kube, "s5-frozen")
    time.sleep(2)
    procs[holder].signal(signal.SIGSTOP)
    wait_for(f"{follower} to hold the lease", lambda: leader(kube) == follower, timeout=LEASE_DURATION + RETRY_PERIOD + 10, every=0.1)
    taken_at = time.time()
    time.sleep(2)
    procs[holder].signal(signal.SIGCONT)
    time.sleep(5)
    names = writer.stop()
    for name in names:
        wait_for(f"s5-frozen/{name} Ready", lambda: is_ready(kube.app("s5-frozen", name)), timeout=60)
    late = [t for t, w in writers_in_order(audit_since(cp, taken_at)) if w == holder]
    log(f"writes by the resumed old leader after {follower} took the lease: {len(late)}")
    assert not late, "the old leader wrote after its lease had passed to another replica"


def test_5_sigterm_stops_the_operator_and_the_webhook_in_every_state(cp, keyway, kube, two_replicas):
    procs, holder, follower, pods = two_replicas
    scenario("5. SIGTERM stops controller and webhook within the shutdown grace: follower, leader, API server down, restarted")
    took = {}

    def sigterm(state: str, proc) -> None:
        assert proc.alive(), f"{state}: exited before SIGTERM:\n{proc.tail()}"
        took[state] = proc.stop(grace=SHUTDOWN_GRACE)

    sigterm("follower", procs[follower])
    sigterm("leader", procs[holder])
    assert leader(kube) is None, "the leader released its lease on SIGTERM"

    pod = pods[0]
    # SIGTERM as soon as it leads: its first lists of ConnectedApps and Secrets are in flight.
    for i in range(5):
        proc, port = keyway.controller(pod, name="controller-starting")
        wait_for("the controller to lead", lambda: leading(port), timeout=LEASE_DURATION + 10, every=0.01)
        sigterm(f"leader while it starts ({i + 1})", proc)
    proc, port = keyway.controller(pod, name="controller-apiserver-down")
    wait_for("the controller to lead", lambda: leading(port), timeout=LEASE_DURATION + 10)
    webhook = keyway.webhook()
    keyway.wait_webhook_ready(webhook)
    sigterm("webhook", webhook)
    webhook = keyway.webhook()
    keyway.wait_webhook_ready(webhook)
    cp.stop_apiserver()
    time.sleep(1)
    sigterm("leader, API server unreachable", proc)
    sigterm("webhook, API server unreachable", webhook)
    cp.start_apiserver()

    proc, port = keyway.controller(pod, name="controller-apiserver-restarts")
    wait_for("the controller to lead", lambda: leading(port), timeout=LEASE_DURATION + 10)
    webhook = keyway.webhook()
    keyway.wait_webhook_ready(webhook)
    # Each restart takes the API server away for longer than a renewal period; between restarts
    # the leader renews (a leader that cannot renew for its renew deadline stops leading and
    # exits, as it must, which is not the state under test here).
    for i in range(3):
        before = lease_renewals(kube)
        cp.restart_apiserver(down_for=1)
        wait_for(f"the leader to renew after restart {i + 1}", lambda: lease_renewals(kube) != before,
                 timeout=RETRY_PERIOD * 3)
    sigterm("leader, API server restarted 3 times", proc)
    sigterm("webhook, API server restarted 3 times", webhook)

    for state, seconds in took.items():
        log(f"SIGTERM, {state}: {'did not stop' if seconds is None else f'stopped in {seconds:.2f} s'}")
    slow = [state for state, seconds in took.items() if seconds is None]
    assert not slow, f"still running {SHUTDOWN_GRACE} s after SIGTERM: {slow}"
