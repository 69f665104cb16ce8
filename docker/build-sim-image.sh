#!/usr/bin/env bash
# Build the simulator image `changeline-sim:dev` from this checkout, offline.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
IMAGE="${1:-changeline-sim:dev}"
PY="${PYTHON:-$REPO/.venv/bin/python}"
BASE_IMAGE="${BASE_IMAGE:-}"
if [ -z "$BASE_IMAGE" ]; then
  if docker image inspect python:3.12-slim >/dev/null 2>&1; then
    BASE_IMAGE=python:3.12-slim
  else
    BASE_IMAGE=changeline-base:bookworm
    "$HERE/build-base-image.sh" "$BASE_IMAGE"
  fi
fi
CTX="$(mktemp -d /tmp/changeline-sim-ctx.XXXXXX)"
trap 'rm -rf "$CTX"' EXIT
mkdir -p "$CTX/wheels"
"$PY" -m pip wheel -q --no-deps -w "$CTX/wheels" "$REPO" 2>&1 | grep -v -i warning || true
"$PY" -m pip wheel -q -w "$CTX/wheels" asyncssh lxml pyyaml typer click psutil 2>&1 | grep -v -i warning || true
cp "$HERE/sim/Dockerfile" "$CTX/Dockerfile"
docker build -q --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$IMAGE" "$CTX" >/dev/null
echo "built $IMAGE (base $BASE_IMAGE)"
