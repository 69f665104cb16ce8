#!/usr/bin/env bash
# Install the Debian packages changeline's tests and demo need, only when missing.
#   docker.io, debootstrap  - the engine for containerised simulators, and an offline base image
#   netconfd, openssh-server - yuma123's NETCONF server: a third-party RFC 6241 peer for conformance
#   chromium                 - headless browser checks of the Prefect UI and the reports
#   libyang-tools, openssh-client - yanglint validates NE replies against the YANG modules;
#                              `ssh -s netconf` is a third-party NETCONF client in the suite
#   sshpass                  - the bench's Ansible peer feeds the NE password to OpenSSH sftp from the environment
#   postgresql               - the state store's shared backend (tests/state, tests/scaleout) and the bench's
#                              Prefect database
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v netconfd >/dev/null || need+=(netconfd)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v yanglint >/dev/null || need+=(libyang-tools)
command -v ssh >/dev/null || need+=(openssh-client)
command -v sshpass >/dev/null || need+=(sshpass)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
if [ "${CHANGELINE_BROWSER_TESTS:-1}" = 1 ]; then command -v chromium >/dev/null || need+=(chromium); fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "missing packages: ${need[*]} (run as root or install them)" >&2; exit 1; fi
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
