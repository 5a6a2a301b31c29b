"""Helpers for the chart and manifest tests: real helm, real kubernetes-validate."""

import os
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "keyway"
VENV_BIN = pathlib.Path(sys.executable).parent
HELM = os.environ.get("HELM", str(VENV_BIN / "helm"))
KUBE_VALIDATE = str(VENV_BIN / "kubernetes-validate")
KUBE_VERSION = "1.34.0"


def run(args, check=True):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def nest(values: dict) -> dict:
    """{"a.b": 1} -> {"a": {"b": 1}}."""
    out: dict = {}
    for dotted, value in values.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out


def template(values: dict, namespace="keyway-system", release="kw", check=True, tmp_dir=None):
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=tmp_dir) as f:
        yaml.safe_dump(nest(values), f)
        f.flush()
        return run([HELM, "template", release, str(CHART), "--namespace", namespace, "-f", f.name], check=check)


def render(values: dict, **kw) -> list:
    proc = template(values, **kw)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def kube_validate(path: pathlib.Path):
    """kubernetes-validate --strict; returns its output. Fails the test on any error."""
    proc = run([KUBE_VALIDATE, "-k", KUBE_VERSION, "--strict", str(path)], check=False)
    if proc.returncode != 0 or "ERROR" in proc.stdout + proc.stderr:
        pytest.fail(f"kubernetes-validate rejected {path}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def find(docs, kind, name=None):
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert hits, f"no {kind} {name or ''} rendered"
    return hits


def env_of(container) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
