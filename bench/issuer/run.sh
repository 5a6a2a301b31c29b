#!/usr/bin/env bash
# Builds keyway-issuer in release mode and runs the client_credentials benchmark against it, npm
# oidc-provider and `openssl speed ecdsap256` in one run (see README.md). Extra arguments go to
# bench.mjs (e.g. --duration 20 --connections 64 --check). KEYWAY_BIN_DIR skips the build and
# uses the keyway-issuer found there.
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in wrk openssl taskset node; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed (bash tests/setup.sh installs wrk)"; exit 1; }
done
[[ -d tests/e2e/node_modules/oidc-provider ]] || (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
if [[ -z "${KEYWAY_BIN_DIR:-}" ]]; then
  cargo build --release -p issuer --bin keyway-issuer
  KEYWAY_BIN_DIR="${CARGO_TARGET_DIR:-target}/release"
fi
KEYWAY_BIN_DIR="$(cd "$KEYWAY_BIN_DIR" && pwd)" exec node bench/issuer/bench.mjs "$@"
