"""The flags the chart (and the webhook, for the sidecar) pass exist in the real binaries: every
`KEYWAY_*` variable set on a container must be one that binary's `--help` lists as `[env: …]`.
Binaries come from $KEYWAY_BIN_DIR (default: target/debug; tests/run.sh builds them first)."""

import os
import pathlib
import re
import subprocess

import pytest

from conftest import ROOT, render
from test_chart import VALUE_SETS

BIN_DIR = pathlib.Path(os.environ.get("KEYWAY_BIN_DIR", ROOT / "target" / "debug"))

# container name -> the command it runs
COMMANDS = {
    "controller": ["keyway-operator", "controller"],
    "webhook": ["keyway-operator", "webhook"],
    "issuer": ["keyway-issuer"],
}


def env_names_in_help(command):
    binary = BIN_DIR / command[0]
    if not binary.exists():
        pytest.fail(f"{binary} is missing: build the binaries first (cargo build --workspace --bins) "
                    f"or point KEYWAY_BIN_DIR at them")
    proc = subprocess.run([str(binary), *command[1:], "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    names = set(re.findall(r"\[env: (KEYWAY_[A-Z0-9_]+)[=\]]", proc.stdout))
    assert names, f"{command} --help lists no KEYWAY_* variables"
    return names


def unknown_flags(docs, known):
    out = []
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        for container in dep["spec"]["template"]["spec"]["containers"]:
            expected = COMMANDS[container["name"]]
            assert container.get("args", []) == expected[1:], container["name"]
            for env in container.get("env", []):
                if env["name"].startswith("KEYWAY_") and env["name"] not in known[container["name"]]:
                    out.append(f"{dep['metadata']['name']}/{container['name']}: {env['name']}")
    return out


@pytest.fixture(scope="module")
def known():
    return {name: env_names_in_help(cmd) for name, cmd in COMMANDS.items()}


@pytest.mark.parametrize("values", VALUE_SETS)
def test_chart_sets_only_real_flags(values, known):
    assert unknown_flags(render(VALUE_SETS[values]), known) == []


def test_an_unknown_flag_is_caught(known):
    docs = render({"issuer.extraEnv": [{"name": "KEYWAY_NOT_A_FLAG", "value": "1"}]})
    assert unknown_flags(docs, known) == ["kw-keyway-issuer/issuer: KEYWAY_NOT_A_FLAG"]


def test_sidecar_env_set_by_the_webhook_exists_in_keyway_proxy():
    source = (ROOT / "operator" / "src" / "webhook" / "inject.rs").read_text()
    env_block = source[source.index("mod env {"):]
    env_block = env_block[:env_block.index("\n}\n")]
    set_by_webhook = set(re.findall(r'"(KEYWAY_[A-Z0-9_]+)"', env_block))
    assert {"KEYWAY_LISTEN", "KEYWAY_UPSTREAM", "KEYWAY_CONFIG_DIR"} <= set_by_webhook
    proxy = env_names_in_help(["keyway-proxy"])
    assert set_by_webhook <= proxy, f"not keyway-proxy flags: {set_by_webhook - proxy}"
    # The example in the annotation's documentation is a real flag too.
    assert "KEYWAY_PASS_ACCESS_TOKEN" in proxy


def run_usage_error(command, env_value, *args):
    """Runs `command` with KEYWAY_RESOURCE_HOSTS=env_value and a bad --listen-like flag, so that
    it stops at flag parsing (exit 64); returns its standard error."""
    binary = BIN_DIR / command[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWAY_")}
    env["KEYWAY_RESOURCE_HOSTS"] = env_value
    proc = subprocess.run([str(binary), *command[1:], *args], capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 64, proc.stderr
    return proc.stderr


def test_the_charts_resource_hosts_parse_alike_in_the_operator_and_the_issuer():
    values = {"operator.resourceHosts": {"*.bücher.example": ["books"], "[fd00::7]": ["ip"], "*": ["platform"],
                                         "Grafana.Example.com.": ["monitoring", "tools"]}}
    docs = render(values)
    value = next(e["value"] for d in docs if d["kind"] == "Deployment"
                 for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "issuer"
                 for e in c["env"] if e["name"] == "KEYWAY_RESOURCE_HOSTS")
    operator = ["keyway-operator", "controller"], ("--issuer-url", "https://login.example.com", "--http-addr", "x")
    issuer = ["keyway-issuer"], ("--issuer-url", "https://login.example.com", "--watch-connectedapps",
                                 "--listen", "x")
    for command, args in (operator, issuer):
        stderr = run_usage_error(command, value, *args)
        assert "--resource-hosts" not in stderr, stderr
        # The same binary refuses a bad binding: the check above can fail.
        stderr = run_usage_error(command, value + " grafana.example.com", *args)
        assert '--resource-hosts: "grafana.example.com": not a binding' in stderr, stderr


def documented_crd_upgrade():
    """The one CRD upgrade command of docs/install.md ("Upgrades and removal"), as argv."""
    text = (ROOT / "docs" / "install.md").read_text()
    section = text.split("## Upgrades and removal", 1)[1].split("\n## ", 1)[0]
    commands = [line.split() for line in re.findall(r"```sh\n(.*?)\n```", section, re.S)
                if line.startswith("kubectl apply")]
    assert len(commands) == 1, f"one kubectl apply command in the upgrade section: {commands}"
    return commands[0]


def test_the_documented_crd_upgrade_applies_what_crdgen_prints():
    """Helm never upgrades crds/: docs/install.md names the command that does; it applies the
    chart's crds/ server-side with the conflicts Helm's field manager holds taken over, and what
    it applies is what `keyway-operator crdgen` prints for this version."""
    argv = documented_crd_upgrade()
    assert argv[:2] == ["kubectl", "apply"] and "--server-side" in argv and "--force-conflicts" in argv, argv
    path = ROOT / argv[argv.index("-f") + 1]
    assert path.resolve() == (ROOT / "charts" / "keyway" / "crds").resolve(), path
    files = sorted(path.glob("*.yaml"))
    assert files, f"{path} holds no CRD"
    binary = BIN_DIR / "keyway-operator"
    if not binary.exists():
        pytest.fail(f"{binary} is missing: build the binaries first (cargo build --workspace --bins)")
    proc = subprocess.run([str(binary), "crdgen", "--output", "-"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "".join(f.read_text() for f in files) == proc.stdout, \
        f"{path} differs from `keyway-operator crdgen --output -`: regenerate and copy it"


def test_the_uninstall_hook_sets_only_flags_of_remove_finalizers():
    known = env_names_in_help(["keyway-operator", "remove-finalizers"])
    for values in (VALUE_SETS["single-namespace"], {}):
        (job,) = [d for d in render(values) if d["kind"] == "Job"]
        (c,) = job["spec"]["template"]["spec"]["containers"]
        assert c["args"] == ["remove-finalizers"]
        unknown = {e["name"] for e in c["env"]} - known
        assert not unknown, f"not in keyway-operator remove-finalizers --help: {unknown}"
