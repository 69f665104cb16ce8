"""`changeline sim ...`: start, inspect and stop the simulator; generate software images.

`up` validates its input in the calling process (so a bad topology file is reported as
FILE:LINE:COL: field: message with exit code 1 before anything starts), then either runs
the simulator in the foreground or starts it as a background process and waits until its
`sim.json` says it is ready.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import typer

from changeline.arguments import Arguments
from changeline.catalogue import VERSION_RE
from changeline.errors import InputError, Problem

from .control import SimControl
from .errors import SimError
from .host import PASSWORD_ENV, SimHost, resolve_password
from .images import generate_image
from .profiles import builtin_profiles, find_type
from .topology import DEFAULT_ADDRESS_BASE, DEFAULT_CONTROL, SIM_PLATFORMS, Topology, generate_topology, load_topology

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

DEFAULT_STATE_DIR = Path(".changeline/sim")
ALL_TYPES = "AMF,SMF,UPF,NRF,P-CSCF,S-CSCF"
READY_TIMEOUT_S = 120.0


def _topology(topology: Path | None, count: int | None, types: str, *, speed: float | None, bind: str | None,
              control: str | None, address_base: str, netconf_port: int, ssh_port: int,
              platforms: str | None) -> Topology:
    profiles = builtin_profiles()
    if topology is not None and count is not None:
        raise InputError(Problem("<command line>", 0, 0, "--count", "use --topology or --count, not both"))
    if topology is not None and platforms is not None:
        raise InputError(Problem("<command line>", 0, 0, "--platform",
                                 "goes with --count; a topology file names each NE's platform"))
    if topology is not None:
        return load_topology(topology, profiles, speed=speed, bind=bind, control=control)
    if count is None:
        raise InputError(Problem("<command line>", 0, 0, "--topology", "give --topology FILE or --count N"))
    return generate_topology(count, [t.strip() for t in types.split(",") if t.strip()], profiles,
                             speed=speed if speed is not None else 1.0, control=control or DEFAULT_CONTROL,
                             address_base=address_base, bind=bind,
                             ports={"netconf": netconf_port, "ssh": ssh_port},
                             platforms=platforms or SIM_PLATFORMS[0])


def read_sim_json(state_dir: Path) -> dict | None:
    """The running simulator's record, or None when none runs (a stale file is ignored)."""
    try:
        info = json.loads((state_dir / "sim.json").read_text())
    except (OSError, ValueError):
        return None
    return info if _is_simulator(info.get("pid")) else None


def _is_simulator(pid: object) -> bool:
    # The pid must still be a changeline simulator: after a crash it may belong to anything.
    if not isinstance(pid, int):
        return False
    try:
        return "changeline" in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # it logs every connection at INFO


def run_foreground(topology: Topology, state_dir: Path, password: str) -> None:
    _configure_logging()

    async def serve() -> None:
        host = SimHost(topology, state_dir, password)
        await host.start()
        print(f"changeline-sim ready: {len(host.nes)} NEs, control {host.control.url}, "
              f"state dir {state_dir}", flush=True)
        await host.run_until_signalled()

    asyncio.run(serve())


def start_background(argv: list[str], state_dir: Path, password: str) -> dict:
    """Start `python -m changeline.devices.sim ARGV` detached and wait until it is ready."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "sim.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "changeline.devices.sim", *argv],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                   env={**os.environ, PASSWORD_ENV: password})
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise SimError("the simulator exited while starting:\n" + "\n".join(tail))
        info = read_sim_json(state_dir)
        if info and info.get("pid") == process.pid:
            return info
        time.sleep(0.1)
    process.terminate()
    raise SimError(f"the simulator was not ready after {READY_TIMEOUT_S:.0f} s; see {log_path}")


MAX_COUNT = 10_000  # 127.0.1.x onwards; a simulator of more NEs is a typo, not a test


def check_up_arguments(*, topology: Path | None, count: int | None, state_dir: Path, speed: float | None,
                       bind: str | None, address_base: str, netconf_port: int, ssh_port: int) -> None:
    """`sim up`'s options, checked before any port is opened or file written; the topology
    file's own contents are checked by its loader."""
    args = Arguments()
    args.file("--topology", topology)
    args.number("--count", count, minimum=1, maximum=MAX_COUNT)
    args.directory("--state-dir", state_dir, may_create=True)
    args.number("--speed", speed, above=0, maximum=1000)
    args.ipv4("--bind", bind)
    args.ipv4("--address-base", address_base)
    args.port("--netconf-port", netconf_port)
    args.port("--ssh-port", ssh_port)
    if netconf_port == ssh_port:
        args.problem("--ssh-port", "must differ from --netconf-port")
    args.done()


@app.command()
def up(
    topology: Path = typer.Option(None, "--topology", "-t", help="Topology YAML file."),
    count: int = typer.Option(None, "--count", help="Generate N NEs instead of reading a topology."),
    types: str = typer.Option(ALL_TYPES, "--types", help="NE types for --count, comma separated."),
    platform: str = typer.Option(None, "--platform",
                                 help="For --count: changeline-ne (default) or changeline-mml for every NE, "
                                      "or per type: SMF=changeline-mml,AMF=changeline-mml."),
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, "--state-dir", help="Where state files and NE data go."),
    speed: float = typer.Option(None, "--speed", help="Delay factor: 1.0 real time, 0.01 a hundred times faster."),
    foreground: bool = typer.Option(False, "--foreground/--background", help="Run in this process."),
    bind: str = typer.Option(None, "--bind", help="One listen address for all NEs, with per-NE ports."),
    control: str = typer.Option(None, "--control", help=f"Control interface IPV4:PORT (default {DEFAULT_CONTROL})."),
    address_base: str = typer.Option(DEFAULT_ADDRESS_BASE, "--address-base", help="First NE address (--count)."),
    netconf_port: int = typer.Option(830, "--netconf-port", help="NETCONF port (first port with --bind)."),
    ssh_port: int = typer.Option(22, "--ssh-port", help="SSH port (first port with --bind)."),
) -> None:
    """Start simulated NEs from a topology file or --count N --types ...; in the background unless --foreground."""
    check_up_arguments(topology=topology, count=count, state_dir=state_dir, speed=speed, bind=bind,
                       address_base=address_base, netconf_port=netconf_port, ssh_port=ssh_port)
    topo = _topology(topology, count, types, speed=speed, bind=bind, control=control, address_base=address_base,
                     netconf_port=netconf_port, ssh_port=ssh_port, platforms=platform)
    state_dir = state_dir.resolve()
    running = read_sim_json(state_dir)
    if running:
        raise SimError(f"a simulator already runs in {state_dir} (pid {running['pid']}); "
                       "stop it with `changeline sim down`")
    password = resolve_password(state_dir, dict(os.environ))
    if foreground:
        run_foreground(topo, state_dir, password)
        return
    argv = ["--topology", str(topology.resolve())] if topology else ["--count", str(count), "--types", types]
    argv += ["--state-dir", str(state_dir), "--address-base", address_base,
             "--netconf-port", str(netconf_port), "--ssh-port", str(ssh_port)]
    for flag, value in (("--speed", speed), ("--bind", bind), ("--control", control), ("--platform", platform)):
        if value is not None:
            argv += [flag, str(value)]
    info = start_background(argv, state_dir, password)
    typer.echo(f"simulator running (pid {info['pid']}): {info['nes']} NEs, control {info['control_url']}, "
               f"inventory {info['inventory']}")


@app.command()
def status(state_dir: Path = typer.Option(DEFAULT_STATE_DIR, "--state-dir")) -> None:
    """Show the running simulator's NEs."""
    args = Arguments()
    args.directory("--state-dir", state_dir, may_create=True)
    args.done()
    state_dir = state_dir.resolve()
    info = read_sim_json(state_dir)
    if info is None:
        raise SimError(f"no simulator runs in {state_dir}")
    nes = SimControl(info["control_url"]).nes()
    counts: dict[str, int] = {}
    for ne in nes:
        counts[ne["status"]] = counts.get(ne["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    typer.echo(f"simulator pid {info['pid']}, control {info['control_url']}: {len(nes)} NEs ({summary})")
    rows = [(n["name"], n["type"], n["version"], n["status"], n["address"], n["netconf_port"], n["ssh_port"],
             n["pool"] or "-", "yes" if n["drained"] else "no", ",".join(n["faults"]) or "-") for n in nes]
    headers = ("NAME", "TYPE", "VERSION", "STATUS", "ADDRESS", "NETCONF", "SSH", "POOL", "DRAINED", "FAULTS")
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    for row in (headers, *rows):
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


@app.command()
def down(state_dir: Path = typer.Option(DEFAULT_STATE_DIR, "--state-dir"),
         timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait before killing it.")) -> None:
    """Stop the simulator running in the state dir."""
    args = Arguments()
    args.directory("--state-dir", state_dir, may_create=True)
    args.number("--timeout", timeout, minimum=0, maximum=3600)
    args.done()
    state_dir = state_dir.resolve()
    info = read_sim_json(state_dir)
    if info is None:
        typer.echo(f"no simulator runs in {state_dir}")
        return
    try:
        process = psutil.Process(info["pid"])
        process.send_signal(signal.SIGTERM)
        process.wait(timeout)
    except psutil.NoSuchProcess:
        pass  # it ended on its own meanwhile
    except psutil.TimeoutExpired:
        process.kill()
        process.wait(10)
    (state_dir / "sim.json").unlink(missing_ok=True)
    typer.echo(f"simulator (pid {info['pid']}) stopped")


MAX_IMAGE_KB = 1024 * 1024  # 1 GiB: images are test payloads


@app.command()
def image(
    ne_type: str = typer.Option(..., "--type", help="NE type, e.g. AMF."),
    version: str = typer.Option(..., "--version", help="Software version, e.g. 1.3.0."),
    out: Path = typer.Option(Path("."), "--out", help="Directory to write TYPE-VERSION.img into."),
    size_kb: int = typer.Option(1024, "--size-kb", help="Payload size in KiB."),
    build: str = typer.Option("", "--build", help="Build label for the manifest."),
) -> None:
    """Generate a software image (any version, so refusals can be tested too)."""
    profile = find_type(builtin_profiles(), ne_type)
    problems = []
    if profile is None:
        problems.append(Problem("<command line>", 0, 0, "--type",
                                f"unknown NE type {ne_type!r} (known: {', '.join(builtin_profiles())})"))
    if not VERSION_RE.match(version):
        problems.append(Problem("<command line>", 0, 0, "--version", f"must look like 1.2.0, got {version!r}"))
    if not 1 <= size_kb <= MAX_IMAGE_KB:
        problems.append(Problem("<command line>", 0, 0, "--size-kb", f"must be 1 to {MAX_IMAGE_KB}"))
    args = Arguments()
    args.directory("--out", out, may_create=True)
    if problems or args.problems:
        raise InputError(problems + args.problems)
    path = generate_image(out, profile.ne_type, version, payload_size=size_kb * 1024, build=build)
    typer.echo(str(path))
