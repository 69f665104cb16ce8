"""Runs a peer (the Nornir script or the Ansible playbook) as its own process for the campaign
bench, measures it, and reads every NE's version back over NETCONF afterwards.

CPU of a peer: its process and every descendant that was waited for (os.wait4's rusage: Ansible's
per-task workers and module processes, sftp, sshpass), plus processes that detached from its tree
(Ansible's persistent `ansible-connection` daemons, which hold the NETCONF sessions), sampled live
by an environment tag (bench.procs.Sampler.watch_detached).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

# What each peer does not give an operator that changeline does (the same for both scripts as
# written here; each could be built on top, which is the point of the comparison).
LACKS = {
    "nornir": {
        "resume": "no journal: a rerun starts every NE over (steps skip what the NE already has)",
        "rollback": "none: a failed NE stays where it stopped",
        "windows": "none: runs when started",
        "ui": "none: a JSON file and the exit code",
    },
    "ansible": {
        "resume": "no journal: a rerun starts every NE over (steps skip what the NE already has)",
        "rollback": "none written (block/rescue could call rollback-software; not here)",
        "windows": "none: runs when started",
        "ui": "none in ansible-core (AWX/AAP are separate products)",
    },
}
# How each peer expresses the campaign's waves, concurrency and pool exclusivity.
EXPRESSES = {
    "nornir": "waves run in turn; threaded runner num_workers = C; a lock per pool held for the NE's run",
    "ansible": "serial batches = waves split so a batch holds one member per pool; forks = C; strategy free",
}
PEERS = tuple(LACKS)


def missing_tools(peer: str) -> list[str]:
    """What this machine lacks to run `peer` (empty = runnable)."""
    import importlib.util

    if peer == "nornir":
        return [m for m in ("nornir", "ncclient", "paramiko") if importlib.util.find_spec(m) is None]
    missing = [] if (BIN / "ansible-playbook").exists() else ["ansible-playbook (pip install ansible)"]
    if importlib.util.find_spec("jxmlease") is None:
        missing.append("jxmlease")
    missing += [tool for tool in ("sftp", "sshpass") if shutil.which(tool) is None]
    return missing


def command(peer: str, inventories: dict[str, Path], *, concurrency: int, work: Path) -> tuple[list[str], dict[str, str]]:
    """The peer's command line and the extra environment it needs."""
    backups = work / f"{peer}-backups"
    if peer == "nornir":
        return ([sys.executable, str(HERE / "nornir_upgrade.py"), str(inventories["nornir"]),
                 "--workers", str(concurrency), "--out", str(work / "nornir-result.json"),
                 "--backup-dir", str(backups)], {})
    return ([str(BIN / "ansible-playbook"), "-i", str(inventories["ansible_inventory"]),
             "-e", f"@{inventories['ansible_batches']}", "-e", f"backup_dir={backups}",
             "-f", str(concurrency), str(HERE / "ansible" / "upgrade.yml")],
            {"ANSIBLE_CONFIG": str(HERE / "ansible" / "ansible.cfg"),
             "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"), "ANSIBLE_HOME": str(work / "ansible-home"),
             "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})


RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)"
                   r"\s+rescued=(\d+)\s+ignored=(\d+)", re.M)
FATAL = re.compile(r"^fatal: \[([^\]\s]+)[^\]]*\]: (?:FAILED|UNREACHABLE)! => (.*)$", re.M)


def ansible_outcomes(log: str) -> dict[str, dict[str, Any]]:
    """Per host, from ansible-playbook's default output: done when the PLAY RECAP shows no failure
    and no unreachable; the reason is its last unignored fatal line (pure)."""
    ignored = {m.start() for m in re.finditer(r"^fatal: .*\n\.\.\.ignoring$", log, re.M)}
    reasons = {m.group(1): m.group(2)[:300] for m in FATAL.finditer(log) if m.start() not in ignored}
    out = {}
    for m in RECAP.finditer(log):
        host, failed, unreachable = m.group(1), int(m.group(5)), int(m.group(4))
        done = failed == 0 and unreachable == 0
        out[host] = {"status": "done" if done else "failed", "reason": "reached target" if done else reasons.get(host, "")}
    return out


@dataclass
class PeerRun:
    wall_s: float
    returncode: int
    cpu_s_tree: float      # the peer process and its waited-for descendants
    log: Path


def run(cmd: list[str], env: dict[str, str], log: Path, *, sampler, role: str, tag: str,
        timeout_s: float) -> PeerRun:
    from bench.procs import REPO, TAG_ENV, stop_process

    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env={**env, TAG_ENV: tag}, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    sampler.watch(role, proc.pid)
    sampler.watch_detached(role, tag)
    try:
        deadline = started + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{role} still running after {timeout_s:.0f} s")
            time.sleep(0.2)
        wall = time.monotonic() - started
        sampler.sample()  # the detached daemons' last CPU before they go
        return PeerRun(wall, proc.returncode, usage.ru_utime + usage.ru_stime, log)
    finally:
        stop_process(proc)
        sampler.unwatch(role)


def versions(inventory: Path, password: str, *, workers: int = 8) -> dict[str, str]:
    """Every NE's running version, read back over NETCONF by changeline's session layer
    (host keys checked), independently of what the peer says it did."""
    from changeline.devices import ne_api
    from changeline.devices.inventory import load_inventory
    from changeline.devices.session import DeviceSession, Endpoint

    def one(host) -> tuple[str, str]:
        session = DeviceSession(Endpoint(name=host.name, hostname=host.hostname, netconf_port=host.port,
                                         ssh_port=host.ssh_port, username=host.username, password=password,
                                         known_hosts=host.known_hosts, timeout=host.timeout))
        try:
            return host.name, ne_api.read_state(session).running_version
        except Exception as err:  # noqa: BLE001 - reported as this NE's reading
            return host.name, f"unreadable: {type(err).__name__}"
        finally:
            session.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, load_inventory(inventory).select("all")))
