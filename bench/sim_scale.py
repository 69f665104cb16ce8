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

`--device-sessions K` measures the line's own session layer (devices/session.py) instead:
K NEs, K threads, each opening a `DeviceSession` to its NE (NETCONF, then SFTP), holding it
for `--hold-seconds` with one <get> every `--every-seconds` (an NE waiting on its device
delays, as during a campaign), then closing it. It reports the client's CPU-s per session
for the opening, the holding and in all, so K=50, 100, 200 show whether the cost per NE
stays flat as more sessions are open at once:

    .venv/bin/python bench/sim_scale.py --device-sessions 100 [--hold-seconds 20] [--every-seconds 1]
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

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncssh  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402

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


def device_session_load(state: Path, *, hold_s: float, every_s: float) -> dict:
    """K threads, one DeviceSession each (see the module docstring); client CPU by phase."""
    import threading

    from changeline.devices.inventory import load_inventory
    from changeline.devices.session import DeviceSession, Endpoint

    name, value = (state / "secrets.env").read_text().strip().split("=", 1)
    os.environ[name] = value  # the inventory's password_env
    hosts = list(load_inventory(state / "inventory.yaml").hosts.values())
    opened, held = threading.Barrier(len(hosts) + 1), threading.Barrier(len(hosts) + 1)
    errors: list[str] = []
    gets = [0]

    def one(host) -> None:
        session = DeviceSession(Endpoint.from_host(host))
        try:
            try:
                session.get()
                session.sftp.listdir(".")
            finally:
                opened.wait()
            until = time.monotonic() + hold_s
            while time.monotonic() < until:
                time.sleep(every_s)
                session.get()
                gets[0] += 1
        except Exception as err:  # noqa: BLE001 - counted and shown: the bench goes on
            errors.append(f"{host.name}: {type(err).__name__}: {err}")
        finally:
            try:
                held.wait()
            finally:
                session.close()

    me = psutil.Process()
    threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in hosts]
    c0, t0 = me.cpu_times(), time.monotonic()
    for thread in threads:
        thread.start()
    opened.wait()
    c1, t1, peak_threads = me.cpu_times(), time.monotonic(), me.num_threads()
    held.wait()
    c2, t2 = me.cpu_times(), time.monotonic()
    for thread in threads:
        thread.join(60)
    c3 = me.cpu_times()

    def cpu(a, b) -> float:
        return b.user + b.system - a.user - a.system

    k = len(hosts)
    return {"sessions": k, "hold_seconds": hold_s, "every_seconds": every_s, "gets": gets[0],
            "errors": len(errors), "first_errors": errors[:3], "threads_while_held": peak_threads,
            "open_wall_s": round(t1 - t0, 2), "hold_wall_s": round(t2 - t1, 2),
            "cpu_s_per_session": {"open": round(cpu(c0, c1) / k, 4), "hold": round(cpu(c1, c2) / k, 4),
                                  "close": round(cpu(c2, c3) / k, 4), "total": round(cpu(c0, c3) / k, 4)},
            "hold_cpu_ms_per_session_second": round(cpu(c1, c2) / k / max(t2 - t1, 1e-9) * 1000, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--address-base", help="first NE's address (default: a free 127.X.Y.1 range)")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--load-seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--device-sessions", type=int, metavar="K",
                        help="measure devices/session.py with K NEs and K concurrent sessions instead")
    parser.add_argument("--hold-seconds", type=float, default=20.0)
    parser.add_argument("--every-seconds", type=float, default=1.0)
    args = parser.parse_args()
    if args.device_sessions:
        args.count = args.device_sessions

    if args.address_base is None:
        from bench.procs import free_loopback_base

        args.address_base = free_loopback_base(args.count)
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

        if args.device_sessions:
            before = process.cpu_times()
            load = device_session_load(state, hold_s=args.hold_seconds, every_s=args.every_seconds)
            after = process.cpu_times()
            load["simulator_cpu_s_per_session"] = round(
                (after.user + after.system - before.user - before.system) / args.device_sessions, 4)
            print(json.dumps({"nes": args.count, "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                              "device_sessions": load}, indent=2))
            return 0
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
