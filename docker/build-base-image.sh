#!/usr/bin/env bash
# Build a minimal Debian base image with Python 3 offline, from the machine's own apt mirror.
# Used where no container registry is reachable (public images such as python:3.12-slim
# cannot be pulled). Elsewhere, skip this and let the Dockerfile use its default base.
set -euo pipefail
IMAGE="${1:-changeline-base:bookworm}"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE already present"; exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
# The mirror comes from this machine's apt configuration: never hard-code a registry host.
MIRROR="$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')"
if [ -z "$MIRROR" ]; then
  MIRROR="$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')"
fi
[ -n "$MIRROR" ] || { echo "no apt mirror found in /etc/apt" >&2; exit 1; }
ROOTFS="$(mktemp -d /tmp/changeline-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$ROOTFS" "$MIRROR" >/tmp/changeline-debootstrap.log 2>&1 \
  || { tail -20 /tmp/changeline-debootstrap.log >&2; exit 1; }
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import - "$IMAGE" >/dev/null
echo "built base image $IMAGE"
