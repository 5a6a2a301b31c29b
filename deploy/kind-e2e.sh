#!/usr/bin/env bash
# End-to-end check of keyway on a real (kind) cluster, for people who have one.
#
# NOTE: this cannot run on the project's CI machines (no container engine, kind or
# kube-apiserver can be installed there), so it is not part of tests/run.sh and does not count as
# a test of the repository; the webhook and the chart are tested there against the in-repo API
# test server and with helm + kubernetes-validate instead.
#
# Needs: kind, kubectl, helm, and podman or docker. Usage, from anywhere:
#   deploy/kind-e2e.sh            # creates cluster "keyway-e2e", deletes it at the end
#   KEEP_CLUSTER=1 deploy/kind-e2e.sh
#
# What it checks:
#   1. the three images build (static, non-root) and the chart installs; its Deployments roll out;
#   2. the controller writes the webhook's certificate and patches its CA into the webhook
#      configuration;
#   3. a ConnectedApp becomes Ready and its Secret appears with the contract's keys;
#   4. a labelled Deployment's pods get the keyway-proxy sidecar (hardened, port "keyway"),
#      unlabelled pods are untouched, and a pod naming a missing ConnectedApp is refused with a
#      message that says what to fix.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="${CLUSTER:-keyway-e2e}"
ns=keyway-system
tag=e2e
engine="${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}"
for tool in kind kubectl helm "$engine"; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 2; }
done

step() { printf '\n== %s\n' "$*"; }
fail() { echo "kind-e2e: FAILED: $*" >&2; exit 1; }

cleanup() {
  if [[ -z "${KEEP_CLUSTER:-}" ]]; then
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

step "images"
ENGINE="$engine" PREFIX=keyway-dev/ deploy/build-images.sh "$tag"

step "cluster $cluster"
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
for image in keyway-operator keyway-issuer keyway-proxy; do
  if [[ "$engine" == podman ]]; then
    archive="$(mktemp)"
    podman save -o "$archive" "keyway-dev/$image:$tag"
    kind load image-archive "$archive" --name "$cluster"
    rm -f "$archive"
  else
    kind load docker-image "keyway-dev/$image:$tag" --name "$cluster"
  fi
done

step "helm install"
# The issuer is reached by browsers at issuer.url; for this check nobody signs in, so an example
# URL is enough (sidecars stay unready until they can fetch its metadata, which is expected here).
helm upgrade --install keyway charts/keyway --namespace "$ns" --create-namespace --wait --timeout 5m \
  --set issuer.url=https://login.keyway-e2e.example \
  --set operator.image.repository=keyway-dev/keyway-operator --set operator.image.tag="$tag" \
  --set operator.image.pullPolicy=Never \
  --set issuer.image.repository=keyway-dev/keyway-issuer --set issuer.image.tag="$tag" \
  --set issuer.image.pullPolicy=Never \
  --set sidecar.image.repository=keyway-dev/keyway-proxy --set sidecar.image.tag="$tag" \
  --set sidecar.image.pullPolicy=Never
kubectl -n "$ns" rollout status deployment/keyway-operator --timeout=3m
kubectl -n "$ns" rollout status deployment/keyway-webhook --timeout=3m
kubectl -n "$ns" rollout status deployment/keyway-issuer --timeout=3m

step "caBundle"
for _ in $(seq 60); do
  bundle="$(kubectl get mutatingwebhookconfiguration keyway -o jsonpath='{.webhooks[0].clientConfig.caBundle}')"
  [[ -n "$bundle" ]] && break
  sleep 2
done
[[ -n "$bundle" ]] || fail "the controller did not patch caBundle"
kubectl -n "$ns" get secret keyway-webhook-tls >/dev/null || fail "no webhook certificate Secret"

step "ConnectedApp"
kubectl create namespace tools --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f examples/browser-tool.yaml
kubectl -n tools wait connectedapp/grafana --for=condition=Ready --timeout=2m
keys="$(kubectl -n tools get secret grafana-keyway -o go-template='{{range $k, $v := .data}}{{$k}} {{end}}')"
for key in client-id client-secret issuer-url cookie-secret policy.json; do
  [[ " $keys " == *" $key "* ]] || fail "Secret grafana-keyway lacks $key (has: $keys)"
done

step "injection"
kubectl apply -f examples/tool-deployment.yaml
for _ in $(seq 60); do
  pod="$(kubectl -n tools get pods -l app.kubernetes.io/name=grafana -o name | head -n1)"
  [[ -n "$pod" ]] && break
  sleep 2
done
[[ -n "$pod" ]] || fail "no grafana pod was created"
containers="$(kubectl -n tools get "$pod" -o jsonpath='{.spec.containers[*].name}')"
[[ "$containers" == "grafana keyway-proxy" ]] || fail "containers are '$containers'"
port="$(kubectl -n tools get "$pod" -o jsonpath='{.spec.containers[1].ports[0].name}')"
[[ "$port" == keyway ]] || fail "sidecar port is named '$port'"
ro="$(kubectl -n tools get "$pod" -o jsonpath='{.spec.containers[1].securityContext.readOnlyRootFilesystem}')"
[[ "$ro" == true ]] || fail "sidecar root filesystem is writable"

step "untouched without the label"
kubectl -n tools run plain --image=keyway-dev/keyway-proxy:"$tag" --image-pull-policy=Never \
  --restart=Never --command -- /usr/local/bin/keyway --help >/dev/null
containers="$(kubectl -n tools get pod plain -o jsonpath='{.spec.containers[*].name}')"
[[ "$containers" == plain ]] || fail "an unlabelled pod was changed: '$containers'"
kubectl -n tools delete pod plain --wait=false >/dev/null

step "refused: missing ConnectedApp"
if out="$(kubectl -n tools run broken --image=keyway-dev/keyway-proxy:"$tag" --restart=Never \
    --labels=keyway.dev/inject=enabled \
    --annotations=keyway.dev/connected-app=nope --annotations=keyway.dev/upstream-port=8080 2>&1)"; then
  fail "a pod naming a missing ConnectedApp was admitted"
fi
[[ "$out" == *'ConnectedApp "nope" does not exist in namespace "tools"'* ]] || fail "unexpected refusal: $out"

step "all checks passed"
