"""`changeline demo`: the whole production line on one machine, on embedded defaults.

A standalone Prefect server (started, or the one already answering), a dozen simulated
5GC/IMS NEs in pools, the six library upgrade models, one injected fault so the run shows
an automatic rollback, then the evidence report with the pools' service probes. Everything
it writes lives under CHANGELINE_HOME (default `.changeline`):

    demo/topology.yaml   the simulated network, written from the defaults below
    demo/sim/            the simulator's state dir (inventory, known_hosts, NE files)
    images/              the software images the models transfer
    runs/<campaign>/     journal records, evidence packs and the report
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer
import yaml

from changeline.errors import ChangelineError, InputError, Problem

# Round robin over these, so any dozen holds both domains (5GC first, then IMS).
DEMO_TYPES = ("AMF", "SMF", "UPF", "NRF", "P-CSCF", "S-CSCF")
# Types whose NEs share one traffic pool: draining one member moves its calls to the others.
POOLED_TYPES = ("AMF", "SMF")
FROM_VERSION, TO_VERSION = "1.2.0", "1.3.0"
MODEL_SERIES = "1.3"
MAX_NES = 100
# At this clock speed a dozen NEs in the library models' waves (canary, 25 %, rest; two at a
# time) took 51-53 s of campaign on 2 cores.
DEMO_SPEED = 0.01
DEMO_ADDRESS_BASE = "127.0.20.1"
FAULT = "dial-test-fail-after-upgrade"
PAUSE_TIMEOUT_S = 600


@dataclass(frozen=True)
class DemoSettings:
    nes: int = 12
    fault: bool = True
    keep: bool = True
    speed: float = DEMO_SPEED
    address_base: str = DEMO_ADDRESS_BASE
    control_port: int = 0          # 0: any free port
    campaign_id: str = ""          # "": demo-<UTC time>


@dataclass
class DemoResult:
    campaign_id: str
    ui_url: str
    flow_run_url: str
    report: Path
    state_dir: Path
    summary: dict[str, Any]
    faulty_ne: str | None
    probes: dict[str, Any]
    unexpected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unexpected


def demo_home() -> Path:
    from changeline.flows import stores

    return stores.home()


def demo_topology(count: int, *, speed: float, address_base: str, control: str) -> dict[str, Any]:
    """`count` NEs named like `amf-1`, round robin over DEMO_TYPES; AMFs and SMFs in pools."""
    nes, numbers = [], {}
    for i in range(count):
        ne_type = DEMO_TYPES[i % len(DEMO_TYPES)]
        prefix = ne_type.lower().replace("-", "")
        numbers[prefix] = numbers.get(prefix, 0) + 1
        nes.append({"name": f"{prefix}-{numbers[prefix]}", "type": ne_type, "version": FROM_VERSION,
                    "site": ("sh-1", "bj-1")[numbers[prefix] % 2], "region": ("east", "north")[numbers[prefix] % 2]})
    pools = []
    for ne_type in POOLED_TYPES:
        members = [ne for ne in nes if ne["type"] == ne_type]
        if len(members) < 2:  # a pool of one has nobody to carry its traffic
            continue
        name = f"{ne_type.lower()}-pool"
        pools.append({"name": name, "type": ne_type, "calls_per_second": 50})
        for ne in members:
            ne["pool"] = name
    # Ports below 1024 need root; anyone else gets the same layout on high ports.
    ports = {"netconf": 830, "ssh": 22} if os.geteuid() == 0 else {"netconf": 2830, "ssh": 2022}
    return {"speed": speed, "control": control, "address_base": address_base, "ports": ports,
            "pools": pools, "nes": nes}


def upgrade_models() -> list[str]:
    """The library's upgrade models of the series, in name order (the first one's campaign
    policy governs the campaign)."""
    import changeline.models

    library = Path(changeline.models.__file__).resolve().parent / "library"
    models = sorted(str(p) for p in library.glob(f"*/{MODEL_SERIES}/*-upgrade.yaml"))
    if not models:
        raise ChangelineError(f"no upgrade models in {library}/*/{MODEL_SERIES}/")
    return models


def pick_faulty_ne(models: list[str], inventory: Path) -> str:
    """An NE of the campaign's last wave, outside any pool: the library models tolerate no
    failure (maxFailures 0), so a rollback there leaves every other NE upgraded."""
    from changeline.devices.inventory import load_inventory
    from changeline.models.compile import load_model
    from changeline.models.waves import plan_waves

    hosts = list(load_inventory(inventory).hosts.values())
    last = plan_waves(load_model(models[0]), hosts)[-1].hosts
    unpooled = [h for h in last if not h.pool]
    return (unpooled or list(last))[-1].name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sim(*args: str) -> str:
    """`changeline sim ARGS` as an operator runs it; its output, or a ChangelineError."""
    done = subprocess.run([sys.executable, "-m", "changeline.cli", "sim", *args], capture_output=True, text=True,
                          check=False, timeout=180)
    if done.returncode != 0:
        raise ChangelineError(f"changeline sim {args[0]} failed:\n{(done.stdout + done.stderr).strip()}")
    return done.stdout.strip()


def probe_pools(control) -> dict[str, dict[str, int]]:
    return {pool["name"]: pool["probe"] for pool in control.pools()}


def probe_delta(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Probe calls attempted and failed in each pool between two readings."""
    return {"pools": {name: {k: after[name][k] - before.get(name, {}).get(k, 0) for k in ("attempted", "failed")}
                      for name in sorted(after)}}


def demo_services(topology: dict[str, Any]) -> list[str]:
    """What the live probe calls: every pool, and every NE in no pool (a service of its own)."""
    return [p["name"] for p in topology["pools"]] + [ne["name"] for ne in topology["nes"] if not ne.get("pool")]


def call_failure(answer: dict[str, Any]) -> str | None:
    return None if answer.get("ok") else str(answer.get("reason") or "call failed")


def expected_outcome(summary: dict[str, Any], faulty_ne: str | None) -> list[str]:
    """What differs from the demo's script: every NE upgraded, the faulty one rolled back."""
    wrong = []
    for name, out in sorted(summary["nes"].items()):
        want = "rolled-back" if name == faulty_ne else "done"
        if out["status"] != want:
            wrong.append(f"{name}: {out['status']} (expected {want}): {out.get('reason', '')}")
    return wrong


def _validate(settings: DemoSettings) -> None:
    if not 1 <= settings.nes <= MAX_NES:
        raise InputError(Problem("<command line>", 0, 0, "--nes", f"must be 1-{MAX_NES}, got {settings.nes}"))


def run_demo(settings: DemoSettings, echo=typer.echo) -> DemoResult:
    """Run the demo; with `keep` off, stop the simulator, and the Prefect server if the demo
    started it, whatever happens."""
    _validate(settings)
    # Prefect reads its settings once, when first imported: the server's URL must be in the
    # environment before anything imports it (flows.server imports no Prefect).
    from changeline.flows.server import DEFAULT_PORT, ensure_server, healthy, ui_url

    # The terminal shows the progress bar and the summary; every log line is in the UI.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    home = demo_home()
    state_dir = home / "demo" / "sim"
    port = os.environ.get("CHANGELINE_PREFECT_PORT", DEFAULT_PORT)
    server_was_up = healthy(os.environ.get("PREFECT_API_URL") or f"http://127.0.0.1:{port}/api")
    echo("Prefect server: " + ("attaching" if server_was_up else "starting (about 20 s the first time)") + " ...")
    try:
        api = ensure_server()
        return _run(settings, home, state_dir, ui_url(api), echo)
    finally:
        if not settings.keep:
            stop_demo(home, stop_prefect=not server_was_up)


def start_rollback_service(home: Path, inventory: Path) -> int:
    """`rollback/one-click` served by a process of its own that outlives the demo (stopped by
    `changeline demo --stop`); returns its pid once the deployment exists."""
    from changeline.flows.server import wait_for_deployment

    stop_pid_file(home / "demo" / "serve.pid")  # a previous demo's, serving another inventory
    log = open(home / "demo" / "serve.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "changeline.flows.server", "serve-rollback", str(inventory)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    (home / "demo" / "serve.pid").write_text(str(proc.pid))
    try:
        wait_for_deployment("rollback/one-click", wait_s=120, alive=lambda: proc.poll() is None)
    except ChangelineError as err:
        raise ChangelineError(f"{err.reason}; see {home / 'demo' / 'serve.log'}") from None
    return proc.pid


def stop_demo(home: Path, *, stop_prefect: bool = True) -> list[str]:
    """Stop what the demo left running: the simulator, the rollback service and (if the demo
    started it) the Prefect server. Returns what it stopped."""
    stopped = []
    state_dir = home / "demo" / "sim"
    if state_dir.is_dir():
        _sim("down", "--state-dir", str(state_dir))
        stopped.append("simulator")
    if stop_pid_file(home / "demo" / "serve.pid"):
        stopped.append("rollback service")
    if stop_prefect and server_pid(home):
        stop_server(home)
        stopped.append("Prefect server")
    return stopped


def stop_pid_file(pid_file: Path) -> bool:
    """Stop the process a pid file names if it is still ours (a changeline process); remove the file."""
    import psutil

    try:
        process = psutil.Process(int(pid_file.read_text()))
        ours = "changeline" in " ".join(process.cmdline())
    except (OSError, ValueError, psutil.Error):
        pid_file.unlink(missing_ok=True)
        return False
    if ours:
        try:
            process.terminate()
            process.wait(30)
        except psutil.Error:
            pass
    pid_file.unlink(missing_ok=True)
    return ours


def _run(settings: DemoSettings, home: Path, state_dir: Path, ui: str, echo) -> DemoResult:
    from changeline.devices.sim.control import SimControl
    from changeline.devices.sim.host import PASSWORD_ENV, resolve_password
    from changeline.devices.sim.images import generate_image
    from changeline.flows.cli import print_summary, run_campaign
    from changeline.flows.probe import ServiceProbe, probing
    from changeline.reports.build import build_campaign_report

    _sim("down", "--state-dir", str(state_dir))  # a previous demo's simulator, if it still runs
    topology = demo_topology(settings.nes, speed=settings.speed, address_base=settings.address_base,
                             control=f"127.0.0.1:{settings.control_port or _free_port()}")
    topology_path = home / "demo" / "topology.yaml"
    topology_path.parent.mkdir(parents=True, exist_ok=True)
    topology_path.write_text("# Written by `changeline demo` from its defaults.\n"
                             + yaml.safe_dump(topology, sort_keys=False))
    # The NE password goes to the simulator and the campaign through the environment.
    os.environ[PASSWORD_ENV] = resolve_password(state_dir, dict(os.environ))
    try:
        echo(_sim("up", "--topology", str(topology_path), "--state-dir", str(state_dir)))
    except ChangelineError as err:
        if "already in use" not in err.reason:
            raise
        raise ChangelineError(f"{err.reason}\nAnother simulator holds the demo's addresses "
                              f"({settings.address_base} and up), perhaps a demo under another CHANGELINE_HOME: "
                              "stop it with `changeline sim down --state-dir ITS_STATE_DIR`") from None
    inventory = state_dir / "inventory.yaml"
    control = SimControl.from_state_dir(state_dir)
    # Served before the campaign starts, so the board's and summary's rollback links point at it.
    start_rollback_service(home, inventory)
    echo("Rollback deployment rollback/one-click: served in the background")
    images = home / "images"
    for ne_type in sorted({ne["type"] for ne in topology["nes"]}):
        generate_image(images, ne_type, TO_VERSION)
    models = upgrade_models()
    faulty = None
    if settings.fault:
        faulty = pick_faulty_ne(models, inventory)
        control.add_fault(faulty, FAULT)
        echo(f"Injected fault: {FAULT} on {faulty} (its dial test will fail after the upgrade and "
             "it will be rolled back automatically)")
    campaign_id = settings.campaign_id or f"demo-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    before = probe_pools(control)
    started = time.monotonic()
    live = ServiceProbe(demo_services(topology), call=lambda service: call_failure(control.call_service(service)))
    with probing(live):
        summary = run_campaign(models=models, inventory=str(inventory), targets="all", campaign_id=campaign_id,
                               params={"image_repo": str(images)}, on_anomaly=None, window_minutes=None,
                               window_end=None, concurrency=None, pause_timeout_s=PAUSE_TIMEOUT_S)
    counters = probe_delta(before, probe_pools(control))
    echo(f"Campaign finished in {time.monotonic() - started:.0f} s")
    print_summary(summary)
    probes = live.snapshot()
    echo("Live probe: " + ", ".join(f"{name} {p['failed']}/{p['attempted']} failed" for name, p in probes["pools"].items())
         + f" ({probes['basis']})")
    echo("Pool counters (simulated time, x{:.0f}): ".format(1 / settings.speed)
         + ", ".join(f"{name} {p['failed']}/{p['attempted']} failed" for name, p in counters["pools"].items()))
    report = build_campaign_report(campaign_id, probes=probes).html
    return DemoResult(campaign_id, ui, summary["flow_run_url"], report, state_dir, summary, faulty, probes,
                      expected_outcome(summary, faulty))


def server_pid(home: Path) -> int | None:
    """The Prefect server `ensure_server` started under CHANGELINE_HOME, if it still runs."""
    import psutil

    try:
        pid = int((home / "prefect" / "server.pid").read_text())
        # After a reboot the pid may belong to anything.
        return pid if "prefect" in " ".join(psutil.Process(pid).cmdline()) else None
    except (OSError, ValueError, psutil.Error):
        return None


def stop_server(home: Path) -> None:
    import psutil

    pid = server_pid(home)
    if pid is None:
        return
    try:
        process = psutil.Process(pid)
        process.terminate()
        process.wait(30)
    except psutil.Error:
        pass


def demo(
    nes: int = typer.Option(12, "--nes", help=f"how many simulated NEs (1-{MAX_NES}), round robin over "
                                               f"{', '.join(DEMO_TYPES)}"),
    fault: bool = typer.Option(True, "--fault/--no-fault", help=f"inject {FAULT} on one NE of the last wave"),
    keep: bool = typer.Option(True, "--keep/--no-keep", help="leave the simulator, the rollback service and the "
                                                          "Prefect server running"),
    stop: bool = typer.Option(False, "--stop", help="stop what an earlier demo left running, and exit"),
) -> None:
    """A demo campaign: simulated NEs, the six upgrade models, the Prefect UI and the report."""
    if stop:
        stopped = stop_demo(demo_home())
        typer.echo("Stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return
    result = run_demo(DemoSettings(nes=nes, fault=fault, keep=keep))
    typer.echo("")
    typer.echo(f"Prefect UI:    {result.ui_url}")
    typer.echo(f"Campaign run:  {result.flow_run_url}")
    typer.echo(f"Report:        {result.report}")
    if result.faulty_ne and result.ok:
        typer.echo(f"Fault:         {result.faulty_ne} was rolled back automatically, as the demo intends")
    if not keep:
        typer.echo("The simulator and the Prefect server the demo started are stopped (--no-keep).")
    if keep:
        changeline = Path(sys.executable).with_name("changeline")
        typer.echo("Left running so you can look around: the simulator, the one-click rollback deployment"
                   + (" and the Prefect server" if server_pid(demo_home()) else "") + ".")
        typer.echo(f"Load the NE password before other commands:  set -a; . {result.state_dir / 'secrets.env'}; set +a")
        typer.echo(f"Inventory:     {result.state_dir / 'inventory.yaml'}")
        typer.echo(f"Stop them all: {changeline} demo --stop")
    if not result.ok:
        typer.echo("error: the demo did not go as scripted:", err=True)
        for line in result.unexpected:
            typer.echo(f"  {line}", err=True)
        raise typer.Exit(1)
