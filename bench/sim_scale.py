"""How the simulator scales: N NEs (default 1,000) in one process.

Starts `python -m changeline.devices.sim --count N` (each NE on its own loopback address,
ports 830 and 22), then measures
  - start-up time until the readiness line,
  - resident memory (RSS) of the simulator process,
  - its CPU use while idle (target ~0: no per-NE timers),
  - new NETCONF sessions per second: connect, verify the host key against the
    simulator's known_hosts, authenticate, hello, <get>, <close-session>, from several
    concurrent asyncssh clients spread over all NEs,
and prints the numbers as JSON. Run as root (ports below 1024):

    .venv/bin/python bench/sim_scale.py [--count 1000] [--idle-seconds 10] [--load-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh
import psutil
import yaml

EOM = b"]]>]]>"
CLIENT_HELLO = (b'<?xml version="1.0" encoding="UTF-8"?><hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
                b"<capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>"
                + EOM)
GET = b'<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>' + EOM
CLOSE = b'<rpc message-id="2" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><close-session/></rpc>' + EOM


async def netconf_session(host: str, port: int, password: str, known_hosts: asyncssh.SSHKnownHosts) -> None:
    """One complete session; base:1.0 only, so framing stays end-of-message."""
    async with asyncssh.connect(host, port, username="admin", password=password, known_hosts=known_hosts,
                                client_keys=None, agent_path=None) as conn:
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        await reader.readuntil(EOM)  # server hello
        writer.write(CLIENT_HELLO + GET)
        reply = await reader.readuntil(EOM)
        if b"<ne-state" not in reply:
            raise RuntimeError(f"unexpected <get> reply from {host}: {reply[:200]!r}")
        writer.write(CLOSE)
        await reader.readuntil(EOM)


async def session_load(hosts: list[tuple[str, int]], password: str, known_hosts: asyncssh.SSHKnownHosts, *,
                       clients: int, seconds: float) -> dict:
    targets = itertools.cycle(hosts)
    done, failed = 0, 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, failed
        while time.monotonic() < deadline:
            host, port = next(targets)
            try:
                await netconf_session(host, port, password, known_hosts)
                done += 1
            except (OSError, asyncssh.Error, RuntimeError, asyncio.IncompleteReadError):
                failed += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.monotonic() - started
    return {"sessions": done, "failed": failed, "seconds": round(elapsed, 2),
            "sessions_per_second": round(done / elapsed, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--address-base", default="127.0.200.1")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    state = Path(tempfile.mkdtemp(prefix="sim-scale-"))
    started = time.monotonic()
    sim = subprocess.Popen(
        [sys.executable, "-m", "changeline.devices.sim", "--count", str(args.count), "--state-dir", str(state),
         "--address-base", args.address_base, "--control", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready = sim.stdout.readline()
        if not ready.startswith("changeline-sim ready"):
            raise SystemExit(f"simulator did not start: {ready!r}")
        startup_s = time.monotonic() - started
        process = psutil.Process(sim.pid)
        time.sleep(1.0)  # let start-up work (key loading, logging) settle
        rss_mb = process.memory_info().rss / 2**20
        before = process.cpu_times()
        time.sleep(args.idle_seconds)
        after = process.cpu_times()
        idle_cpu = (after.user + after.system - before.user - before.system) / args.idle_seconds * 100

        inventory = yaml.safe_load((state / "inventory.yaml").read_text())
        hosts = [(h["hostname"], h["port"]) for h in inventory["hosts"].values()]
        password = (state / "secrets.env").read_text().strip().split("=", 1)[1]
        known_hosts = asyncssh.read_known_hosts(str(state / "known_hosts"))  # parsed once, not per session
        before, client_before = process.cpu_times(), psutil.Process().cpu_times()
        load = asyncio.run(session_load(hosts, password, known_hosts, clients=args.clients,
                                        seconds=args.load_seconds))
        after, client_after = process.cpu_times(), psutil.Process().cpu_times()
        load["client_cpu_percent"] = round(
            (client_after.user + client_after.system - client_before.user - client_before.system)
            / load["seconds"] * 100, 1)
        load["simulator_cpu_percent"] = round(
            (after.user + after.system - before.user - before.system) / load["seconds"] * 100, 1)
        rss_after_mb = process.memory_info().rss / 2**20
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(60)
        sim.stdout.close()
        shutil.rmtree(state, ignore_errors=True)
    print(json.dumps({
        "nes": args.count, "listeners": 2 * args.count, "cpus": os.cpu_count(),
        "startup_seconds": round(startup_s, 1),
        "rss_mb_idle": round(rss_mb, 1), "rss_mb_after_load": round(rss_after_mb, 1),
        "idle_cpu_percent": round(max(idle_cpu, 0.0), 2), "idle_seconds": args.idle_seconds,
        "netconf_load": {"clients": args.clients, **load},
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
