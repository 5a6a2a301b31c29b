"""Fixtures of the real-control-plane scenarios (docs/testing.md): one control plane for the
session, the chart applied as helm would, and keyway's binaries as local processes."""

from __future__ import annotations

import shutil

import pytest
import urllib3

from cluster import ControlPlane, State, TestNet, cleanup
from harness import Chart, Keyway

urllib3.disable_warnings()


@pytest.fixture(scope="session")
def state():
    """$KEYWAY_CP_STATE (run.sh's, which it cleans up), or a directory of this session's."""
    session = State()
    yield session
    if session.owned:
        cleanup(session.path)
        shutil.rmtree(session.path, ignore_errors=True)


@pytest.fixture(scope="session")
def net(state):
    network = TestNet(state)
    yield network
    network.close()


@pytest.fixture(scope="session")
def cp(state, net):
    control_plane = ControlPlane(state, webhook_host_ip=TestNet.HOST_IP)
    try:
        control_plane.start()
        yield control_plane
    finally:
        control_plane.stop()


@pytest.fixture(scope="session")
def chart(cp) -> Chart:
    return Chart(cp)


@pytest.fixture
def installed(chart) -> Chart:
    """The chart with its default values (installed again if a scenario uninstalled it)."""
    if not chart.installed or chart.values:
        chart.apply()
    return chart


@pytest.fixture
def keyway(state, cp, installed, net):
    k = Keyway(state, cp, installed, net)
    yield k
    k.stop_all()


@pytest.fixture
def kube(cp):
    return cp.kube
