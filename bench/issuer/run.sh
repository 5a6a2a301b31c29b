#!/usr/bin/env bash
# Builds keyway-issuer in release mode and runs the client_credentials benchmark against it, npm
# oidc-provider and `openssl speed ecdsap256` in one run. Extra arguments go to bench.mjs
# (e.g. --duration 20 --connections 64 --check).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk is not installed (bash tests/setup.sh installs it)"; exit 1; }
[[ -d tests/e2e/node_modules/oidc-provider ]] || (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p issuer --bin keyway-issuer
KEYWAY_BIN_DIR="${KEYWAY_BIN_DIR:-$target/release}" exec node bench/issuer/bench.mjs "$@"
