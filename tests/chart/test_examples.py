"""Every example manifest is valid: ConnectedApps against the CRD's own openAPIV3Schema
(jsonschema; kubernetes-validate only warns on custom resources), built-in kinds with
kubernetes-validate --strict."""

import pathlib

import jsonschema
import pytest
import yaml

from conftest import ROOT, kube_validate

EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))
BUILTIN = {"Deployment", "Service", "Secret", "ConfigMap", "Namespace", "Pod"}


def python_patterns(node):
    """Go's RE2 (and the API server) know `\\p{Cc}` (control characters); Python's `re` does not.
    Every use in the CRD is inside a character class, where the range `\\x00-\\x1f\\x7f-\\x9f` is
    the same set of characters."""
    if isinstance(node, dict):
        return {k: (v.replace("\\p{Cc}", "\\x00-\\x1f\\x7f-\\x9f") if k == "pattern" else python_patterns(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [python_patterns(v) for v in node]
    return node


def crd_schema():
    crds = list((ROOT / "crds").glob("*.yaml"))
    assert crds, "crds/ is empty"
    crd = yaml.safe_load(crds[0].read_text())
    assert crd["spec"]["names"]["kind"] == "ConnectedApp"
    (version,) = [v for v in crd["spec"]["versions"] if v["served"]]
    schema = python_patterns(version["schema"]["openAPIV3Schema"])
    return crd["spec"]["group"] + "/" + version["name"], schema


def docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_examples_exist():
    kinds = [d["kind"] for p in EXAMPLES for d in docs(p)]
    assert kinds.count("ConnectedApp") >= 3
    assert "Deployment" in kinds and "Service" in kinds


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid(path, tmp_path):
    api_version, schema = crd_schema()
    validator = jsonschema.Draft7Validator(schema)
    for doc in docs(path):
        if doc["kind"] == "ConnectedApp":
            assert doc["apiVersion"] == api_version
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
            assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
        else:
            assert doc["kind"] in BUILTIN, f"{path}: unexpected kind {doc['kind']}"
            out = tmp_path / "doc.yaml"
            out.write_text(yaml.safe_dump(doc))
            kube_validate(out)


def test_schema_rejects_a_broken_example():
    """The check above can fail: a misspelt field and a bad enum value are caught."""
    _, schema = crd_schema()
    doc = docs(ROOT / "examples" / "browser-tool.yaml")[0]
    doc["spec"]["clientType"] = "secret"
    doc["spec"]["redirectUris"] = ["https://x.example.com/cb"]
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
    assert errors


def test_injected_deployment_names_an_example_app():
    apps = {(d["metadata"]["namespace"], d["metadata"]["name"])
            for p in EXAMPLES for d in docs(p) if d["kind"] == "ConnectedApp"}
    for p in EXAMPLES:
        for d in docs(p):
            if d["kind"] != "Deployment":
                continue
            tmpl = d["spec"]["template"]["metadata"]
            assert tmpl["labels"]["keyway.dev/inject"] == "enabled"
            app = tmpl["annotations"]["keyway.dev/connected-app"]
            assert (d["metadata"]["namespace"], app) in apps
