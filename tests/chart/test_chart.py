"""The Helm chart, rendered by real helm and validated by kubernetes-validate --strict."""

import json
import pathlib
import re

import pytest
import yaml

from conftest import (CHART, HELM, ROOT, env_of, find, kube_validate, render, run, template)
import gen_schema

VALUE_SETS = {
    "default": {},
    "postgres": {
        "issuer.store.type": "postgres",
        "issuer.store.postgres.existingSecret": "keyway-pg",
        "issuer.replicas": 3,
        "issuer.signingKeys.existingSecret": "keyway-signing-keys",
    },
    "managed-keys-replicas": {
        "issuer.store.type": "postgres",
        "issuer.store.postgres.existingSecret": "keyway-pg",
        "issuer.replicas": 3,
        "issuer.signingKeys.rotation": "168h",
        "issuer.signingAlg": "EdDSA",
    },
    "volume-keys": {"issuer.signingKeys.managed": False},
    "cert-manager": {"operator.webhook.certManager.enabled": True},
    "cert-manager-cluster-issuer": {
        "operator.webhook.certManager.enabled": True,
        "operator.webhook.certManager.issuerRef": {"name": "corp-ca", "kind": "ClusterIssuer"},
    },
    "replicas": {
        "operator.replicas": 3,
        "issuer.replicas": 2,
        "issuer.store.type": "postgres",
        "issuer.store.postgres.existingSecret": "pg",
        "issuer.store.postgres.urlKey": "dsn",
        "issuer.signingKeys.existingSecret": "keys",
    },
    "custom-image": {
        "operator.image.repository": "registry.internal:5000/platform/keyway-operator",
        "operator.image.tag": "1.2.3",
        "issuer.image.repository": "registry.internal:5000/platform/keyway-issuer",
        "issuer.image.tag": "sha256:" + "a" * 64,
        "sidecar.image.repository": "registry.internal:5000/platform/keyway-proxy",
        "sidecar.image.tag": "1.2.3-rc.1",
        "sidecar.image.pullPolicy": "Always",
        "imagePullSecrets": ["regcred"],
    },
    "single-namespace": {"operator.watchNamespace": "tools"},
    "everything-on": {
        "issuer.url": "https://login.corp.example",
        "networkPolicy.enabled": True,
        "networkPolicy.metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
        "serviceMonitor.enabled": True,
        "serviceMonitor.labels": {"release": "prom"},
        "issuer.staticUsers.existingSecret": "users",
        "issuer.dynamicClientRegistration.enabled": True,
        "operator.watchNamespace": "tools",
        "operator.webhook.excludeNamespaces": ["monitoring"],
        "sidecar.resources.limits.cpu": "500m",
        "issuer.extraEnv": [{"name": "RUST_LOG", "value": "debug"}],
        "commonLabels": {"team": "platform"},
        "issuer.upstream.issuer": "https://corp.okta.com",
        "issuer.upstream.clientID": "0oa1keyway",
        "issuer.upstream.clientSecret.existingSecret": "okta-client",
        "issuer.upstream.name": "Okta",
        "issuer.upstream.insecureTrustUnverifiedEmail": True,
        "issuer.corsAllowedOrigins": ["https://spa.example", "http://localhost:3000"],
        "issuer.tokenLifetimes.refresh": "720h",
        "operator.resourceHosts": {"*.team-a.example.com": ["team-a", "team-a-staging"],
                                   "grafana.example.com": ["monitoring"]},
    },
}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_strict(name, tmp_path):
    values = tmp_path / "values.yaml"
    from conftest import nest

    values.write_text(yaml.safe_dump(nest(VALUE_SETS[name])))
    proc = run([HELM, "lint", "--strict", str(CHART), "-f", str(values)])
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_manifests_are_valid(name, tmp_path):
    out = tmp_path / "rendered.yaml"
    out.write_text(template(VALUE_SETS[name]).stdout)
    report = kube_validate(out)
    # Only the cert-manager and Prometheus Operator kinds lack built-in schemas.
    for line in report.splitlines():
        if line.startswith("WARN"):
            assert re.search(r"kind (Certificate|Issuer|ServiceMonitor) with api version "
                             r"(cert-manager\.io|monitoring\.coreos\.com)/v1", line), line


def deployment(docs, suffix):
    return next(d for d in find(docs, "Deployment") if d["metadata"]["name"].endswith(suffix))


def container(dep, name):
    return next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def test_default_install():
    docs = render({})
    op = deployment(docs, "-operator")
    webhook = deployment(docs, "-webhook")
    issuer = deployment(docs, "-issuer")
    # Separate Deployments and ServiceAccounts.
    assert [c["name"] for c in op["spec"]["template"]["spec"]["containers"]] == ["controller"]
    assert [c["name"] for c in webhook["spec"]["template"]["spec"]["containers"]] == ["webhook"]
    assert op["spec"]["template"]["spec"]["serviceAccountName"] == "kw-keyway-operator"
    assert webhook["spec"]["template"]["spec"]["serviceAccountName"] == "kw-keyway-webhook"
    assert issuer["spec"]["template"]["spec"]["serviceAccountName"] == "kw-keyway-issuer"
    # SQLite on a PVC, one replica, Recreate.
    pvc = find(docs, "PersistentVolumeClaim")[0]
    assert issuer["spec"]["replicas"] == 1
    assert issuer["spec"]["strategy"]["type"] == "Recreate"
    vols = {v["name"]: v for v in issuer["spec"]["template"]["spec"]["volumes"]}
    assert vols["data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    env = env_of(container(issuer, "issuer"))
    assert env["KEYWAY_STORE"] == "sqlite:///var/lib/keyway/issuer.db"
    assert env["KEYWAY_ISSUER_URL"] == "https://login.example.com"
    assert env["KEYWAY_WATCH_CONNECTEDAPPS"] == "true"
    # Webhook wiring: the names the webhook is told are the names the chart creates.
    # The controller's leader keeps the certificate; the webhook mounts its Secret.
    keeper = env_of(container(op, "controller"))
    wh = env_of(container(webhook, "webhook"))
    mwc = find(docs, "MutatingWebhookConfiguration")[0]
    assert keeper["KEYWAY_WEBHOOK_CONFIGURATION"] == mwc["metadata"]["name"]
    assert keeper["KEYWAY_WEBHOOK_CERT_SECRET"] == "keyway-system/kw-keyway-webhook-tls"
    assert wh["KEYWAY_WEBHOOK_CERT_MODE"] == "files"
    mount = container(webhook, "webhook")["volumeMounts"][0]
    assert mount["mountPath"] == wh["KEYWAY_WEBHOOK_CERT_DIR"] and mount["readOnly"] is True
    (volume,) = webhook["spec"]["template"]["spec"]["volumes"]
    assert volume["name"] == mount["name"] and volume["secret"]["secretName"] == "kw-keyway-webhook-tls"
    hook = mwc["webhooks"][0]
    svc = find(docs, "Service", hook["clientConfig"]["service"]["name"])[0]
    assert keeper["KEYWAY_WEBHOOK_SERVICE"] == svc["metadata"]["name"]
    assert svc["spec"]["ports"][0]["targetPort"] == "webhook"
    assert svc["spec"]["selector"] == webhook["spec"]["selector"]["matchLabels"]
    assert hook["objectSelector"] == {"matchLabels": {"keyway.dev/inject": "enabled"}}
    assert hook["rules"][0]["operations"] == ["CREATE"]
    assert "caBundle" not in hook["clientConfig"]  # the operator patches it in
    assert "keyway-system" in hook["namespaceSelector"]["matchExpressions"][0]["values"]
    # The controller's issuer URL is the issuer's.
    assert env_of(container(op, "controller"))["KEYWAY_ISSUER_URL"] == env["KEYWAY_ISSUER_URL"]
    # Hardened pods.
    for dep in (op, webhook, issuer):
        spec = dep["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["requests"] and c["livenessProbe"] and c["readinessProbe"]
    assert {p["metadata"]["name"] for p in find(docs, "PodDisruptionBudget")} == {
        "kw-keyway-operator", "kw-keyway-webhook", "kw-keyway-issuer"}
    kinds = {d["kind"] for d in docs}
    assert "NetworkPolicy" not in kinds and "ServiceMonitor" not in kinds


def rules_of(docs, kind, name):
    return find(docs, kind, name)[0]["rules"]


def test_issuer_rbac_is_least_privilege():
    docs = render(VALUE_SETS["postgres"])
    issuer_rules = rules_of(docs, "ClusterRole", "kw-keyway-issuer")
    assert issuer_rules == [{"apiGroups": ["keyway.dev"], "resources": ["connectedapps"],
                             "verbs": ["get", "list", "watch"]}]
    # The signing-key Secret reaches the issuer as a volume: its ServiceAccount reads no Secret.
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding")
                and d["metadata"]["name"].startswith("kw-keyway-issuer")]
    # Nothing bound to the issuer's ServiceAccount can write anything.
    sa = "kw-keyway-issuer"
    for binding in [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]:
        if any(s["name"] == sa for s in binding["subjects"]):
            rules = rules_of(docs, binding["roleRef"]["kind"], binding["roleRef"]["name"])
            for rule in rules:
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    # The operator may patch only its own webhook configuration.
    op_rules = rules_of(docs, "ClusterRole", "kw-keyway-operator")
    mwc_rule = next(r for r in op_rules if "mutatingwebhookconfigurations" in r["resources"])
    assert mwc_rule["resourceNames"] == [find(docs, "MutatingWebhookConfiguration")[0]["metadata"]["name"]]
    assert "delete" not in mwc_rule["verbs"]


def granted_to(docs, service_account):
    """Every rule bound to the ServiceAccount, with the namespace it holds in (None: cluster)."""
    out = []
    for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        if any(s["kind"] == "ServiceAccount" and s["name"] == service_account for s in binding["subjects"]):
            ref = binding["roleRef"]
            namespace = binding["metadata"].get("namespace")
            role = next(d for d in docs if d["kind"] == ref["kind"] and d["metadata"]["name"] == ref["name"]
                        and d["metadata"].get("namespace") == namespace)
            out += [(namespace, rule) for rule in role["rules"]]
    return out


@pytest.mark.parametrize("values", ["default", "single-namespace", "cert-manager"])
def test_the_webhook_may_only_read_connectedapps(values):
    """The network-facing webhook has its own ServiceAccount with no Secret access at all: it
    reads the ConnectedApp a pod names, nothing else."""
    docs = render(VALUE_SETS.get(values, {}))
    spec = deployment(docs, "-webhook")["spec"]["template"]["spec"]
    granted = granted_to(docs, spec["serviceAccountName"])
    assert granted, "the webhook's ServiceAccount is bound to its role"
    for _, rule in granted:
        assert rule == {"apiGroups": ["keyway.dev"], "resources": ["connectedapps"], "verbs": ["get"]}, rule
    watch = VALUE_SETS.get(values, {}).get("operator.watchNamespace")
    assert {namespace for namespace, _ in granted} == {watch}
    # Its certificate arrives as a volume, and nothing else of the controller's is shared.
    assert spec["serviceAccountName"] != deployment(docs, "-operator")["spec"]["template"]["spec"]["serviceAccountName"]
    assert [v["secret"]["secretName"] for v in spec["volumes"]] == ["kw-keyway-webhook-tls"]


def test_managed_signing_keys_are_written_by_the_operator_alone():
    docs = render(VALUE_SETS["managed-keys-replicas"])
    name = "kw-keyway-issuer-signing-keys"
    (secret,) = find(docs, "Secret", name)
    # Created empty and kept: helm never owns the data the operator writes.
    assert "data" not in secret and "stringData" not in secret
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert secret["metadata"]["labels"]["keyway.dev/signing-keys"] == "keyway-operator"
    # The operator may get and update that Secret only (no create, list or watch), and record events.
    role = find(docs, "Role", "kw-keyway-operator-signing-keys")[0]
    assert role["metadata"]["namespace"] == "keyway-system"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [name], "verbs": ["get", "update"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    binding = find(docs, "RoleBinding", "kw-keyway-operator-signing-keys")[0]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kw-keyway-operator",
                                    "namespace": "keyway-system"}]
    # Nothing lets the issuer write it.
    for b in [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]:
        if any(s["name"] == "kw-keyway-issuer" for s in b["subjects"]):
            for rule in rules_of(docs, b["roleRef"]["kind"], b["roleRef"]["name"]):
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule
    op = env_of(container(deployment(docs, "-operator"), "controller"))
    assert op["KEYWAY_ISSUER_SIGNING_KEYS_SECRET"] == f"keyway-system/{name}"
    assert op["KEYWAY_ISSUER_SIGNING_ALG"] == "EdDSA"
    assert op["KEYWAY_ISSUER_KEY_ROTATION"] == "168h"
    assert op["KEYWAY_ISSUER_KEY_PUBLISH_LEAD"] == "1h"
    assert op["KEYWAY_ISSUER_KEY_RETENTION"] == "24h"
    issuer = deployment(docs, "-issuer")
    assert issuer["spec"]["replicas"] == 3
    env = env_of(container(issuer, "issuer"))
    assert env["KEYWAY_KEYS_DIR"] == "/etc/keyway/keys" and env["KEYWAY_KEYS_READ_ONLY"] == "true"
    mount = next(m for m in container(issuer, "issuer")["volumeMounts"] if m["name"] == "signing-keys")
    assert mount["readOnly"] is True and mount["mountPath"] == "/etc/keyway/keys"
    vol = next(v for v in issuer["spec"]["template"]["spec"]["volumes"] if v["name"] == "signing-keys")
    assert vol["secret"]["secretName"] == name


def test_own_or_volume_signing_keys_leave_the_operator_out():
    for values in (VALUE_SETS["replicas"], VALUE_SETS["volume-keys"]):
        docs = render(values)
        assert not [d for d in docs if d["kind"] == "Secret"]
        assert not [d for d in docs if d["metadata"]["name"] == "kw-keyway-operator-signing-keys"]
        op = env_of(container(deployment(docs, "-operator"), "controller"))
        assert "KEYWAY_ISSUER_SIGNING_KEYS_SECRET" not in op
    env = env_of(container(deployment(render(VALUE_SETS["volume-keys"]), "-issuer"), "issuer"))
    assert env["KEYWAY_KEYS_DIR"] == "/var/lib/keyway/keys" and "KEYWAY_KEYS_READ_ONLY" not in env
    env = env_of(container(deployment(render(VALUE_SETS["replicas"]), "-issuer"), "issuer"))
    assert env["KEYWAY_KEYS_READ_ONLY"] == "true"


def test_single_namespace_mode_grants_nothing_cluster_wide():
    docs = render(VALUE_SETS["single-namespace"])
    cluster_roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"
                     and d["metadata"]["name"] not in TENANT_ROLES}
    # Only the operator's webhook-configuration rule stays cluster-wide (the tenant roles are
    # granted to no one by the chart).
    assert list(cluster_roles) == ["kw-keyway-operator"]
    (rule,) = cluster_roles["kw-keyway-operator"]["rules"]
    assert rule["resources"] == ["mutatingwebhookconfigurations"] and rule["resourceNames"]
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d["kind"] == "Role"}
    assert ("tools", "kw-keyway-operator") in roles and ("tools", "kw-keyway-issuer") in roles
    assert roles[("tools", "kw-keyway-webhook")]["rules"] == [
        {"apiGroups": ["keyway.dev"], "resources": ["connectedapps"], "verbs": ["get"]}]
    # The controller may create Secrets in its own namespace (the webhook's certificate), and
    # read or update only that one there.
    own = roles[("keyway-system", "kw-keyway-operator-leader-election")]["rules"]
    named = [r for r in own if r.get("resourceNames")]
    assert named == [{"apiGroups": [""], "resources": ["secrets"],
                      "resourceNames": ["kw-keyway-webhook-tls"], "verbs": ["get", "update"]}]
    for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        ref = binding["roleRef"]
        target = [d for d in docs if d["kind"] == ref["kind"] and d["metadata"]["name"] == ref["name"]
                  and d["metadata"].get("namespace") == binding["metadata"].get("namespace")]
        assert target, f"{binding['metadata']['name']} refers to a missing {ref['kind']}"
    selector = find(docs, "MutatingWebhookConfiguration")[0]["webhooks"][0]["namespaceSelector"]
    assert selector["matchLabels"] == {"kubernetes.io/metadata.name": "tools"}
    env = env_of(container(deployment(docs, "-operator"), "controller"))
    assert env["KEYWAY_WATCH_NAMESPACE"] == "tools"
    assert env_of(container(deployment(docs, "-issuer"), "issuer"))["KEYWAY_WATCH_NAMESPACE"] == "tools"


TENANT_ROLES = ("kw-keyway-edit", "kw-keyway-view")


def test_tenant_roles_never_grant_connectedapp_status_writes():
    docs = render({})
    edit, view = (find(docs, "ClusterRole", name)[0] for name in TENANT_ROLES)
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    for role in (edit, view):
        for rule in role["rules"]:
            status = [r for r in rule["resources"] if "/" in r]
            assert not (status and writes & set(rule["verbs"])), f"{role['metadata']['name']} writes {status}"
            assert rule["apiGroups"] == ["keyway.dev"]
    assert {"create", "update", "patch", "delete"} <= set(edit["rules"][0]["verbs"])
    assert edit["rules"][0]["resources"] == ["connectedapps"]
    assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in view["rules"])
    # Aggregated into the built-in roles by default; nothing in the chart binds them.
    labels = edit["metadata"]["labels"]
    assert labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert binding["roleRef"]["name"] not in TENANT_ROLES
    plain = render({"tenantRoles.aggregate": False})
    assert not [k for d in plain if d["metadata"]["name"] in TENANT_ROLES
                for k in d["metadata"]["labels"] if k.startswith("rbac.authorization.k8s.io/")]
    assert not [d for d in render({"tenantRoles.create": False}) if d["metadata"]["name"] in TENANT_ROLES]


def test_postgres_store():
    docs = render(VALUE_SETS["postgres"])
    issuer = deployment(docs, "-issuer")
    assert issuer["spec"]["replicas"] == 3
    assert "strategy" not in issuer["spec"]
    env = env_of(container(issuer, "issuer"))
    assert env["KEYWAY_STORE"] == {"secretKeyRef": {"name": "keyway-pg", "key": "url"}}
    assert env["KEYWAY_KEYS_DIR"] == "/etc/keyway/keys"
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    mounts = {m["name"]: m for m in container(issuer, "issuer")["volumeMounts"]}
    assert mounts["signing-keys"]["readOnly"] is True


def test_cert_manager_mode():
    docs = render(VALUE_SETS["cert-manager"])
    # A chain: self-signed root -> CA Issuer -> serving certificate, so that renewing the
    # serving certificate keeps the CA the injected caBundle holds.
    (cert,) = find(docs, "Certificate", "kw-keyway-webhook-tls")
    (ca_cert,) = find(docs, "Certificate", "kw-keyway-webhook-ca")
    issuers = {i["metadata"]["name"]: i for i in find(docs, "Issuer")}
    assert issuers["kw-keyway-webhook-selfsigned"]["spec"] == {"selfSigned": {}}
    assert ca_cert["spec"]["isCA"] is True
    assert ca_cert["spec"]["issuerRef"]["name"] == "kw-keyway-webhook-selfsigned"
    ca_issuer = issuers[cert["spec"]["issuerRef"]["name"]]
    assert ca_issuer["spec"] == {"ca": {"secretName": ca_cert["spec"]["secretName"]}}
    assert "isCA" not in cert["spec"]
    assert "kw-keyway-webhook.keyway-system.svc" in cert["spec"]["dnsNames"]
    mwc = find(docs, "MutatingWebhookConfiguration")[0]
    assert mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
        f"keyway-system/{cert['metadata']['name']}"
    webhook = deployment(docs, "-webhook")
    wh = container(webhook, "webhook")
    env = env_of(wh)
    assert env["KEYWAY_WEBHOOK_CERT_MODE"] == "files"
    vol = webhook["spec"]["template"]["spec"]["volumes"][0]
    assert vol["secret"]["secretName"] == cert["spec"]["secretName"]
    assert wh["volumeMounts"][0]["mountPath"] == env["KEYWAY_WEBHOOK_CERT_DIR"]
    # cert-manager writes the Secret and the caBundle: the controller is not given either.
    controller = env_of(container(deployment(docs, "-operator"), "controller"))
    assert "KEYWAY_WEBHOOK_CERT_SECRET" not in controller
    rules = [r for d in docs if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]
    assert not [r for r in rules if "mutatingwebhookconfigurations" in r["resources"]]

    docs = render(VALUE_SETS["cert-manager-cluster-issuer"])
    assert not [d for d in docs if d["kind"] == "Issuer"]
    assert find(docs, "Certificate")[0]["spec"]["issuerRef"] == {
        "name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


def test_custom_image():
    docs = render(VALUE_SETS["custom-image"])
    op = deployment(docs, "-operator")
    assert container(op, "controller")["image"] == "registry.internal:5000/platform/keyway-operator:1.2.3"
    wh = container(deployment(docs, "-webhook"), "webhook")
    assert wh["image"] == "registry.internal:5000/platform/keyway-operator:1.2.3"
    assert env_of(wh)["KEYWAY_SIDECAR_IMAGE"] == "registry.internal:5000/platform/keyway-proxy:1.2.3-rc.1"
    assert env_of(wh)["KEYWAY_SIDECAR_IMAGE_PULL_POLICY"] == "Always"
    assert container(deployment(docs, "-issuer"), "issuer")["image"] == \
        "registry.internal:5000/platform/keyway-issuer@sha256:" + "a" * 64
    assert op["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


def test_images_by_digest_are_repo_at_digest():
    """A `sha256:` tag is a digest: `repo@sha256:…` (`repo:sha256:…` is no valid reference)."""
    digest = "sha256:" + "0123456789abcdef" * 4
    docs = render({
        "operator.image.repository": "registry.internal:5000/keyway-operator",
        "operator.image.tag": digest,
        "sidecar.image.repository": "registry.internal:5000/keyway-proxy",
        "sidecar.image.tag": digest,
    })
    op = deployment(docs, "-operator")
    for c in op["spec"]["template"]["spec"]["containers"]:
        assert c["image"] == "registry.internal:5000/keyway-operator@" + digest, c["name"]
    sidecar = [env_of(c).get("KEYWAY_SIDECAR_IMAGE") for d in docs if d["kind"] == "Deployment"
               for c in d["spec"]["template"]["spec"]["containers"]]
    assert "registry.internal:5000/keyway-proxy@" + digest in sidecar, sidecar


def test_multiple_replicas():
    docs = render(VALUE_SETS["replicas"])
    op = deployment(docs, "-operator")
    assert op["spec"]["replicas"] == 3
    assert env_of(container(op, "controller"))["KEYWAY_LEADER_ELECT"] == "true"
    assert env_of(container(deployment(docs, "-issuer"), "issuer"))["KEYWAY_STORE"]["secretKeyRef"]["key"] == "dsn"


def test_optional_network_policy_and_service_monitor():
    docs = render(VALUE_SETS["everything-on"])
    assert len(find(docs, "NetworkPolicy")) == 3
    sms = find(docs, "ServiceMonitor")
    assert all(s["metadata"]["labels"]["release"] == "prom" for s in sms)
    op_env = env_of(container(deployment(docs, "-webhook"), "webhook"))
    assert op_env["KEYWAY_SIDECAR_CPU_LIMIT"] == "500m"
    assert all(d["metadata"]["labels"]["team"] == "platform" for d in docs)
    issuer_env = env_of(container(deployment(docs, "-issuer"), "issuer"))
    assert issuer_env["KEYWAY_UPSTREAM_CLIENT_SECRET"] == {
        "secretKeyRef": {"name": "okta-client", "key": "client-secret"}}
    assert issuer_env["KEYWAY_UPSTREAM_NAME"] == "Okta"
    assert issuer_env["KEYWAY_UPSTREAM_INSECURE_TRUST_UNVERIFIED_EMAIL"] == "true"
    assert issuer_env["KEYWAY_CORS_ALLOWED_ORIGINS"] == "https://spa.example,http://localhost:3000"
    assert issuer_env["KEYWAY_REFRESH_TOKEN_TTL"] == "720h"
    assert "KEYWAY_CORS_ALLOWED_ORIGINS" not in env_of(container(deployment(render({}), "-issuer"), "issuer"))


def test_trusted_proxies_reach_the_issuer():
    env = env_of(container(deployment(render({"issuer.trustedProxies": ["10.0.0.0/8", "fd00::/8"]}), "-issuer"),
                           "issuer"))
    assert env["KEYWAY_TRUSTED_PROXIES"] == "10.0.0.0/8,fd00::/8"
    assert "KEYWAY_TRUSTED_PROXIES" not in env_of(container(deployment(render({}), "-issuer"), "issuer"))


def test_resource_hosts_reach_the_operator_and_the_issuer_alike():
    docs = render({"operator.resourceHosts": {"grafana.example.com": ["monitoring"], "*": ["platform"],
                                              "*.team-a.example.com": ["team-a", "team-a-staging"]}})
    controller = env_of(container(deployment(docs, "-operator"), "controller"))
    issuer = env_of(container(deployment(docs, "-issuer"), "issuer"))
    expected = "*=platform *.team-a.example.com=team-a,team-a-staging grafana.example.com=monitoring"
    assert controller["KEYWAY_RESOURCE_HOSTS"] == expected
    assert issuer["KEYWAY_RESOURCE_HOSTS"] == expected
    # Unset by default: any namespace may claim any host.
    docs = render({})
    for dep, name in ((deployment(docs, "-operator"), "controller"), (deployment(docs, "-issuer"), "issuer")):
        assert "KEYWAY_RESOURCE_HOSTS" not in env_of(container(dep, name))


def test_the_webhook_is_no_single_point_of_failure():
    """Its own Deployment of two replicas spread over nodes and zones, a PodDisruptionBudget,
    readiness that drops on SIGTERM while it keeps serving for its drain delay, only labelled
    pods sent to it, and never the pods of its own namespace."""
    docs = render({})
    webhook = deployment(docs, "-webhook")
    spec = webhook["spec"]["template"]["spec"]
    selector = webhook["spec"]["selector"]["matchLabels"]
    assert webhook["spec"]["replicas"] >= 2
    assert webhook["metadata"]["name"] != deployment(docs, "-operator")["metadata"]["name"]
    (pdb,) = find(docs, "PodDisruptionBudget", "kw-keyway-webhook")
    assert pdb["spec"]["selector"]["matchLabels"] == selector and pdb["spec"]["maxUnavailable"] == 1
    spread = spec["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    assert all(c["labelSelector"]["matchLabels"] == selector and c["maxSkew"] == 1 for c in spread)
    c = container(webhook, "webhook")
    delay = env_of(c)["KEYWAY_WEBHOOK_SHUTDOWN_DELAY"]
    assert delay == "10s"
    probe = c["readinessProbe"]
    assert probe["httpGet"]["path"] == "/readyz" and probe["periodSeconds"] * probe["failureThreshold"] <= 2
    # The delay and 10 s for in-flight requests fit in the grace period.
    assert spec["terminationGracePeriodSeconds"] >= 10 + 10 + probe["periodSeconds"]
    hook = find(docs, "MutatingWebhookConfiguration")[0]["webhooks"][0]
    assert hook["objectSelector"] == {"matchLabels": {"keyway.dev/inject": "enabled"}}
    excluded = hook["namespaceSelector"]["matchExpressions"][0]
    assert excluded["key"] == "kubernetes.io/metadata.name" and excluded["operator"] == "NotIn"
    assert "keyway-system" in excluded["values"]

    docs = render({"operator.webhook.replicas": 3, "operator.webhook.topologySpreadKeys": [],
                   "operator.webhook.pdb.enabled": False})
    webhook = deployment(docs, "-webhook")
    assert webhook["spec"]["replicas"] == 3
    assert "topologySpreadConstraints" not in webhook["spec"]["template"]["spec"]
    assert not [d for d in docs if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "kw-keyway-webhook"]


def test_the_sidecar_user_and_group_reach_the_webhook():
    env = env_of(container(deployment(render({"sidecar.runAsUser": 10001, "sidecar.runAsGroup": 10002}),
                                      "-webhook"), "webhook"))
    assert (env["KEYWAY_SIDECAR_UID"], env["KEYWAY_SIDECAR_GID"]) == ("10001", "10002")
    env = env_of(container(deployment(render({}), "-webhook"), "webhook"))
    assert (env["KEYWAY_SIDECAR_UID"], env["KEYWAY_SIDECAR_GID"]) == ("65532", "65532")


def test_helm_uninstall_removes_the_finalizers_after_the_controller_stopped():
    """A post-delete hook Job runs keyway-operator remove-finalizers, as its own ServiceAccount,
    which may only list and patch ConnectedApps and read the controller's Lease."""
    for values, watch in (({}, None), (VALUE_SETS["single-namespace"], "tools")):
        docs = render(values)
        hooks = [d for d in docs if (d["metadata"].get("annotations") or {}).get("helm.sh/hook")]
        assert {d["metadata"]["annotations"]["helm.sh/hook"] for d in hooks} == {"post-delete"}
        for d in hooks:
            assert "hook-succeeded" in d["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
        (job,) = [d for d in hooks if d["kind"] == "Job"]
        # The Job comes after its ServiceAccount and RBAC.
        weight = lambda d: int(d["metadata"]["annotations"]["helm.sh/hook-weight"])
        assert all(weight(d) < weight(job) for d in hooks if d is not job)
        pod = job["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["args"] == ["remove-finalizers"] and pod["restartPolicy"] == "Never"
        env = env_of(c)
        controller = env_of(container(deployment(docs, "-operator"), "controller"))
        assert (env["KEYWAY_LEASE_NAMESPACE"], env["KEYWAY_LEASE_NAME"]) == \
            (controller["KEYWAY_LEASE_NAMESPACE"], controller["KEYWAY_LEASE_NAME"])
        assert env.get("KEYWAY_WATCH_NAMESPACE") == watch
        granted = granted_to(docs, pod["serviceAccountName"])
        assert sorted((ns or "", r["resources"][0], tuple(r["verbs"])) for ns, r in granted) == sorted([
            (watch or "", "connectedapps", ("list", "patch")), ("keyway-system", "leases", ("get",))])
        lease_rule = next(r for _, r in granted if r["resources"] == ["leases"])
        assert lease_rule["resourceNames"] == [controller["KEYWAY_LEASE_NAME"]]
    docs = render({"operator.removeFinalizersOnUninstall": False})
    assert not [d for d in docs if (d["metadata"].get("annotations") or {}).get("helm.sh/hook")]


BAD_VALUES = [
    ({"sidecar.runAsUser": 0}, "sidecar.runAsUser: Must be greater than or equal to 1"),
    ({"operator.webhook.shutdownDelay": "25s"}, "operator.webhook.shutdownDelay is 25s: at most 20s"),
    ({"operator.webhook.topologySpreadWhenUnsatisfiable": "Never"},
     "operator.webhook.topologySpreadWhenUnsatisfiable must be one of"),
    ({"issuer.replicas": 2}, "SQLite on a volume allows one replica"),
    ({"issuer.store.type": "postgres"}, "issuer.store.postgres.existingSecret is empty"),
    ({"issuer.store.type": "postgres", "issuer.store.postgres.existingSecret": "pg", "issuer.replicas": 2,
      "issuer.signingKeys.managed": False},
     "needs issuer.signingKeys.managed=true (the default) or issuer.signingKeys.existingSecret"),
    ({"issuer.signingKeys.rotation": "30d"}, "issuer.signingKeys.rotation: Does not match pattern"),
    ({"issuer.signingKeys.managed": "yes"}, "issuer.signingKeys.managed: Invalid type"),
    ({"issuer.store.type": "mysql"}, 'issuer.store.type must be one of the following: "sqlite", "postgres"'),
    ({"issuer.url": "http://login.example.com"}, "issuer.url: Does not match pattern"),
    ({"issuer.url": ""}, "issuer.url is required"),
    ({"operator.replicas": 0}, "operator.replicas: Must be greater than or equal to 1"),
    ({"operator.webhook.failurePolicy": "Sometimes"}, "operator.webhook.failurePolicy must be one of"),
    ({"operator.webhook.timeoutSeconds": 60}, "operator.webhook.timeoutSeconds: Must be less than or equal to 30"),
    ({"operator.image.pullPolicy": "Maybe"}, "operator.image.pullPolicy must be one of"),
    ({"sidecar.resources.limits.memory": "lots"}, "sidecar.resources.limits.memory: Does not match pattern"),
    ({"issuer.signingAlg": "HS256"}, "issuer.signingAlg must be one of"),
    ({"issuer.stor": {"type": "sqlite"}}, "Additional property stor is not allowed"),
    ({"operator.webhook.certificate.validity": "1y"}, "operator.webhook.certificate.validity: Does not match pattern"),
    ({"sidecar.adminPort": 70000}, "sidecar.adminPort: Must be less than or equal to 65535"),
    ({"issuer.upstream.issuer": "https://corp.okta.com"}, "also set issuer.upstream.clientID"),
    ({"operator.watchNamespace": "keyway-system"}, "operator.watchNamespace is the release namespace keyway-system"),
    ({"issuer.upstream.issuer": "http://corp.okta.com"}, "issuer.upstream.issuer: Does not match pattern"),
    ({"issuer.corsAllowedOrigins": ["https://spa.example/"]}, "issuer.corsAllowedOrigins.0: Does not match pattern"),
    ({"issuer.tokenLifetimes.access": "10 minutes"}, "issuer.tokenLifetimes.access: Does not match pattern"),
    ({"issuer.trustedProxies": ["10.0.0.0/8 "]}, "issuer.trustedProxies.0: Does not match pattern"),
    ({"issuer.signingKeys.publishLead": "800h"},
     "issuer.signingKeys.publishLead (800h) must be shorter than issuer.signingKeys.rotation (720h)"),
    ({"issuer.signingKeys.rotation": "1h30m", "issuer.signingKeys.publishLead": "90m"},
     "issuer.signingKeys.publishLead (90m) must be shorter than issuer.signingKeys.rotation (1h30m)"),
    ({"issuer.signingKeys.retention": "0h0m"}, "issuer.signingKeys.retention is 0h0m: it must be more than 0s"),
    ({"operator.resourceHosts": {"https://grafana.example.com": ["tools"]}},
     'operator.resourceHosts: Property name of "https://grafana.example.com" does not match'),
    ({"operator.resourceHosts": {"grafana.example.com": []}},
     "operator.resourceHosts.grafana.example.com: Array must have at least 1 items"),
    ({"operator.resourceHosts": {"grafana.example.com": ["Tools"]}},
     "operator.resourceHosts.grafana.example.com.0: Does not match pattern"),
    ({"operator.resourceHosts": {"grafana.example.com": "tools"}},
     "operator.resourceHosts.grafana.example.com: Invalid type"),
]


@pytest.mark.parametrize("values,message", BAD_VALUES, ids=[m for _, m in BAD_VALUES])
def test_bad_values_are_rejected_with_a_clear_message(values, message):
    proc = template(values, check=False)
    assert proc.returncode != 0, proc.stdout[:500]
    assert message in proc.stderr, proc.stderr


def test_signing_key_durations_compare_in_seconds_and_only_for_managed_keys():
    # Mixed units are compared by value, as the operator parses them.
    template({"issuer.signingKeys.rotation": "2h", "issuer.signingKeys.publishLead": "1h59m59s"})
    # The operator does not rotate a Secret of your own or keys on the issuer's volume, so the
    # rotation value is not used there and not checked.
    for mode in ({"issuer.signingKeys.existingSecret": "keys"}, {"issuer.signingKeys.managed": False}):
        template({**mode, "issuer.signingKeys.publishLead": "800h"})


def test_schema_file_is_generated():
    committed = (CHART / "values.schema.json").read_text()
    assert committed == gen_schema.render(), "run: .venv/bin/python tests/chart/gen_schema.py"


def test_schema_accepts_the_default_values():
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(values, schema)


def leaf_paths(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_readme_lists_every_value():
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [p for p in leaf_paths(values) if f"`{p}`" not in readme]
    assert not missing, f"values missing from charts/keyway/README.md: {missing}"


def test_chart_crds_are_identical_to_crds_dir():
    repo = sorted((ROOT / "crds").glob("*.yaml"))
    chart = sorted((CHART / "crds").glob("*.yaml"))
    assert repo, "crds/ is empty"
    assert [p.name for p in repo] == [p.name for p in chart]
    for a, b in zip(repo, chart):
        assert a.read_bytes() == b.read_bytes(), f"{b} differs from {a}: copy crds/ into the chart"
