#!/usr/bin/env bash
# Builds keyway's three images from the repository root with podman (or docker).
#   deploy/build-images.sh [TAG]          # default tag: dev
# Environment: ENGINE=podman|docker (default: whichever is installed), PREFIX (image name prefix,
# default: keyway-dev/).
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-dev}"
engine="${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}"
prefix="${PREFIX:-keyway-dev/}"
for pair in operator:keyway-operator issuer:keyway-issuer proxy:keyway-proxy; do
  package="${pair%%:*}"
  binary="${pair##*:}"
  echo "building ${prefix}${binary}:${tag}"
  "$engine" build -f deploy/Containerfile \
    --build-arg PACKAGE="$package" --build-arg BINARY="$binary" \
    -t "${prefix}${binary}:${tag}" .
done
