#!/usr/bin/env bash
# Start a Docker engine if none answers (CI machines start with none running).
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then echo "no Docker engine running and not root to start one" >&2; exit 1; fi
nohup dockerd >/tmp/changeline-dockerd.log 2>&1 &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { echo "docker engine up"; exit 0; }
  sleep 1
done
echo "docker engine did not start; see /tmp/changeline-dockerd.log" >&2
tail -20 /tmp/changeline-dockerd.log >&2
exit 1
