"""Campaign time against the device-time limit and an engine-less baseline.

One invocation measures, on the same machine minutes apart, so the ratios are fair:

1. baseline: the engine itself with no Prefect (bench/engine.py drives `changeline.engine`'s
   `Campaign` and `run_plan`): the same waves, start turns, slots, pool turns, anomaly
   handling, device sessions, state store and backups as the campaign;
2. campaign: the changeline campaign flow on a fresh standalone Prefect server;
3. limit: the device time on the critical path, computed from the simulator profiles'
   delays x speed and the model's waves at concurrency C (formula: bench/limit.py);
4. peers (`--peers`, default: every one installed): the same steps as a Nornir script and as an
   Ansible playbook (bench/peers/), with the same waves and concurrency as far as each can express
   them; afterwards every NE's version is read back over NETCONF. Each peer's JSON says what it
   lacks next to changeline (resume, rollback, windows, UI).

Each of 1 and 2 gets a fresh simulator (`python -m changeline.devices.sim --count N`: the
six NE types round-robin, pools of two per type, on a loopback range and control port of
its own) and a fresh CHANGELINE_HOME; 2 also a fresh Prefect server (SQLite in its own
PREFECT_HOME unless PREFECT_API_DATABASE_CONNECTION_URL is set). The engine of each part
runs in its own process, whose CPU and memory are measured; RSS of the engine, the
server and the simulator (process trees) is sampled every 0.5 s. `cpu_s_per_ne` in the JSON
(and the printed table) gives CPU-s per NE of every process of every part: the engine or peer
tool, the Prefect server, the simulator, PostgreSQL.

    .venv/bin/python bench/campaign_bench.py --nes 200 --concurrency 50 [--speed 0.05] [--profile]

Prints the result JSON (also written to bench/results/), a table, and, last, a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import limit as limit_mod  # noqa: E402
from bench.peers import runner as peer_runner  # noqa: E402
from changeline.flows.server import engine_settings  # noqa: E402
from bench.procs import (  # noqa: E402
    local_postgres,
    REPO,
    Sampler,
    recorded_runs,
    start_prefect_server,
    start_simulator,
    stop_process,
)

ALL_TYPES = "AMF,SMF,UPF,NRF,P-CSCF,S-CSCF"
MODELS = sorted(str(p) for p in (REPO / "models" / "library").glob("*/1.3/*-upgrade.yaml"))
TO_VERSION = "1.3.0"
# The install RPC waits for the NE's install delay inside one NETCONF reply, bounded by the
# inventory's 30 s RPC timeout: UPF installs for 360 realistic seconds, so speed <= 30/360.
MAX_SPEED = 30 / 360
MIB = 2 ** 20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nes", type=int, default=50, help="number of simulated NEs (default 50)")
    parser.add_argument("--concurrency", type=int, default=50, help="NEs changed at once, C (default 50)")
    parser.add_argument("--speed", type=float, default=0.05,
                        help="simulator speed factor: device delays x SPEED real seconds (default 0.05)")
    parser.add_argument("--image-kb", type=int, default=1024, help="software image payload in KiB (default 1024)")
    parser.add_argument("--types", default=ALL_TYPES, help=f"NE types, round-robin (default {ALL_TYPES})")
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--profile", action="store_true",
                        help="sample the campaign engine with py-spy; top frames go into the JSON")
    parser.add_argument("--only", choices=("campaign", "baseline", "peers"),
                        help="run one part only (for iterating on one side; ratios are then missing)")
    parser.add_argument("--peers", default=None, metavar="LIST",
                        help="peers to run too, comma-separated from: " + ",".join(peer_runner.PEERS)
                             + " (default: every one installed; 'none' for none)")
    parser.add_argument("--record-timeout", type=float, default=900.0,
                        help="seconds to wait after the campaign for the server to record every task run")
    parser.add_argument("--keep", action="store_true", help="keep simulator state and CHANGELINE_HOME dirs")
    parser.add_argument("--postgres", action="store_true",
                        help="the Prefect server on a fresh database of this machine's PostgreSQL (started if "
                             "down; root) instead of SQLite; its memory (PSS) and CPU are measured too")
    parser.add_argument("--stock-server", action="store_true",
                        help="start the Prefect server with Prefect's defaults instead of changeline's "
                             "(changeline.flows.server.SERVER_SETTINGS)")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the Prefect server (repeatable)")
    parser.add_argument("--engine-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the campaign engine process (repeatable)")
    args = parser.parse_args(argv)
    args.py_spy = None
    if args.profile:
        beside = Path(sys.executable).with_name("py-spy")
        args.py_spy = str(beside) if beside.exists() else shutil.which("py-spy")
        if args.py_spy is None:
            parser.error("--profile needs py-spy (it is in the test extras: pip install -e '.[test]')")
    for option in ("server_env", "engine_env"):
        pairs = [item.partition("=") for item in getattr(args, option)]
        if any(not sep or not name for name, sep, _ in pairs):
            parser.error(f"--{option.replace('_', '-')} takes NAME=VALUE")
        setattr(args, option, {name: value for name, _, value in pairs})
    if not args.stock_server:  # the server as `changeline run` starts it; explicit --server-env wins
        from changeline.flows.server import SERVER_SETTINGS

        args.server_env = {**SERVER_SETTINGS, **args.server_env}
    if args.nes < 1 or args.concurrency < 1:
        parser.error("--nes and --concurrency must be at least 1")
    args.peers = choose_peers(parser, args.peers)
    if not 0 < args.speed <= MAX_SPEED:
        parser.error(f"--speed must be in (0, {MAX_SPEED:.3f}]: the slowest install must fit the 30 s RPC timeout")
    return args


def choose_peers(parser: argparse.ArgumentParser, option: str | None) -> list[str]:
    """--peers: the named ones (each must be runnable here), or by default every runnable one."""
    if option is None:
        return [p for p in peer_runner.PEERS if not peer_runner.missing_tools(p)]
    names = [n.strip() for n in option.split(",") if n.strip() and n.strip() != "none"]
    unknown = [n for n in names if n not in peer_runner.PEERS]
    if unknown:
        parser.error(f"--peers: unknown peer {', '.join(unknown)} (known: {', '.join(peer_runner.PEERS)})")
    for name in names:
        missing = peer_runner.missing_tools(name)
        if missing:
            parser.error(f"--peers: {name} needs {', '.join(missing)} (pip install -e '.[bench]'; sshpass from apt)")
    return names


# --- the limit ------------------------------------------------------------------------------

def simulated_inventory(folder: Path, *, nes: int, types: str, speed: float) -> Path:
    """The inventory `python -m changeline.devices.sim --count N` writes, without starting it:
    its generated topology is deterministic (names, types, pools, versions)."""
    import yaml

    from changeline.devices.sim.host import inventory
    from changeline.devices.sim.profiles import builtin_profiles
    from changeline.devices.sim.topology import generate_topology

    topology = generate_topology(nes, types.split(","), builtin_profiles(), speed=speed)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "planned-inventory.yaml"
    path.write_text(yaml.safe_dump(inventory(topology), sort_keys=False))
    return path


def plan_limit(inventory: Path, *, concurrency: int, speed: float, image_bytes: int) -> dict[str, Any]:
    """Device-time limit of the campaign for this inventory (see bench/limit.py)."""
    from changeline.devices.inventory import load_inventory
    from changeline.devices.sim.profiles import builtin_profiles, find_type
    from changeline.engine.policy import dispatch_order
    from changeline.models.compile import compile_for_host, eligibility, load_model, plan_waves

    profiles = builtin_profiles()
    models = [load_model(m) for m in MODELS]
    hosts = load_inventory(inventory).select("all")
    chosen = {}
    for host in hosts:
        model = next((m for m in models if eligibility(m, host) is None), None)
        if model is not None:
            chosen[host.name] = model
    eligible = [h for h in hosts if h.name in chosen]
    waves = plan_waves(models[0], eligible)
    jobs: list[list[limit_mod.Job]] = []
    chain_by_type: dict[str, float] = {}
    steps_by_type: dict[str, int] = {}
    for wave in waves:
        wave_jobs = []
        plans = {h.name: compile_for_host(chosen[h.name], h, {"image_repo": "/nonexistent"}) for h in wave.hosts}
        # NEs go to workers in the campaign's dispatch order (longest remaining work first)
        for host in dispatch_order(wave.hosts, {name: plan.total_estimate_s for name, plan in plans.items()}):
            plan = plans[host.name]
            delays = find_type(profiles, host.ne_type).delays
            seconds = limit_mod.chain_seconds([(s.atom, s.args) for s in plan.steps], delays,
                                              image_bytes=image_bytes, speed=speed)
            chain_by_type[host.ne_type] = round(seconds, 3)
            steps_by_type[host.ne_type] = len(plan.steps)
            wave_jobs.append(limit_mod.Job(host.name, host.pool, seconds, len(plan.steps)))
        jobs.append(wave_jobs)
    fifo = limit_mod.schedule(jobs, concurrency)
    ideal = limit_mod.schedule(jobs, concurrency, skip_busy_pools=True)
    total_steps = sum(j.steps for wave in jobs for j in wave)
    return {
        "seconds": round(fifo.seconds, 2),
        "ideal_dispatch_seconds": round(ideal.seconds, 2),
        "waves": [{"name": w.name, "nes": len(w.hosts), "seconds": round(s, 2)}
                  for w, s in zip(waves, fifo.wave_seconds)],
        "critical_path": {"nes": len(fifo.critical_path), "steps": fifo.critical_steps,
                          "path": fifo.critical_path},
        "chain_seconds_by_type": chain_by_type, "steps_by_type": steps_by_type,
        "nes_eligible": len(eligible), "steps_total": total_steps,
        "serial_device_seconds": round(sum(j.seconds for wave in jobs for j in wave), 1),
        "formula": ("chain(NE) = speed x sum over its steps of: dial_test n_scenarios*dial_test; "
                    "transfer image_bytes/(transfer_mb_per_s*MiB); install install; activate restart (+0.05 s "
                    "real grace); drain/kpi_check settle_s; billing sessions*dial_test+cdr_write; other 0. "
                    "Waves in order; in a wave NEs go in the campaign's dispatch order (longest remaining work first) to C workers, each waiting FIFO for its "
                    "pool (one pool member at a time); limit = sum of wave makespans (bench/limit.py)"),
    }


# --- the parts --------------------------------------------------------------------------------

def make_images(folder: Path, types: str, payload_kb: int) -> int:
    from changeline.devices.sim.images import generate_image
    from changeline.devices.sim.profiles import builtin_profiles, find_type

    sizes = []
    for name in types.split(","):
        profile = find_type(builtin_profiles(), name.strip())
        sizes.append(generate_image(folder, profile.ne_type, TO_VERSION, payload_size=payload_kb * 1024).stat().st_size)
    return max(sizes)


def run_engine(mode: str, work: Path, cfg: dict[str, Any], env: dict[str, str], sampler: Sampler, *,
               timeout_s: float, on_result=None, profile_to: Path | None = None,
               py_spy: str = "py-spy") -> dict[str, Any]:
    """Run bench/engine.py in MODE as its own process; `on_result` is called as soon as its
    result file appears (the campaign has ended), while the process may still be exiting."""
    out = work / f"{mode}-result.json"
    cfg = {**cfg, "mode": mode, "out": str(out)}
    (work / f"{mode}-config.json").write_text(json.dumps(cfg, indent=2))
    log = open(work / f"{mode}-engine.log", "wb")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "bench.engine", str(work / f"{mode}-config.json")],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    spy = None
    extra: dict[str, Any] = {}
    try:
        sampler.watch("engine", proc.pid)
        if profile_to is not None:
            spy = subprocess.Popen([py_spy, "record", "--pid", str(proc.pid),
                                    "--format", "raw", "--nolineno", "--rate", "50", "--nonblocking", "--gil",
                                    "--output", str(profile_to)],
                                   stdout=subprocess.DEVNULL, stderr=open(work / "py-spy.log", "wb"))
        deadline = started + timeout_s
        while not out.exists():
            if proc.poll() is not None:
                tail = (work / f"{mode}-engine.log").read_text(errors="replace")[-4000:]
                raise RuntimeError(f"{mode} engine exited ({proc.returncode}) without a result:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{mode} engine still running after {timeout_s:.0f} s")
            time.sleep(0.2)
        result = json.loads(out.read_text())
        if on_result is not None:
            extra = on_result(result) or {}
        exit_deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < exit_deadline:
            sampler.sample()
            time.sleep(0.5)
        result["returncode"] = proc.poll()
        result.update(extra)
        return result
    finally:
        stop_process(proc)
        if spy is not None:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                stop_process(spy)
        sampler.unwatch("engine")


def engine_env(home: Path, password: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") or k == "PREFECT_API_DATABASE_CONNECTION_URL"}
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)  # the engine talks to the API, not the database
    env.update({"CHANGELINE_HOME": str(home), "CHANGELINE_NE_PASSWORD": password,
                "PYTHONPATH": str(REPO), **(extra or {})})
    return env


def baseline_part(args, work: Path, password: str, cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    with Sampler() as sampler:
        sim = start_simulator(work / "sim-baseline", nes=args.nes, speed=args.speed, password=password,
                              types=args.types)
        try:
            sampler.watch("simulator", sim.proc.pid)
            result = run_engine("baseline", work, {**cfg, "inventory": str(sim.inventory), "campaign_id": "bench-baseline"},
                                engine_env(work / "home-baseline", password), sampler,
                                timeout_s=args.engine_timeout)
            sim_cpu = sampler.mark_cpu("simulator")
        finally:
            sim.stop()
    result["simulator_startup_s"] = round(sim.startup_s, 1)
    memory = {"engine_mb": _mb(sampler.stats["engine"].peak_rss),
              "simulator_mb": _mb(sampler.stats["simulator"].peak_rss), "total_mb": _mb(sampler.peak_total)}
    result["simulator_cpu_s"] = round(sim_cpu, 1)
    return result, memory


def campaign_part(args, work: Path, password: str, cfg: dict[str, Any], expected_tasks: int,
                  expected_flows: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    recording: dict[str, Any] = {}
    server_env = dict(args.server_env)
    database = None
    if args.postgres:
        database = local_postgres(f"changeline_bench_{os.getpid()}")
        server_env.setdefault("PREFECT_API_DATABASE_CONNECTION_URL", database.url)
    with Sampler() as sampler:
        if database is not None:
            sampler.watch("database", database.postmaster_pid, shared_memory=True)
        server = start_prefect_server(work / "prefect-server", extra_env=server_env)
        try:
            sampler.watch("server", server.proc.pid)
            sim = start_simulator(work / "sim-campaign", nes=args.nes, speed=args.speed, password=password,
                                  types=args.types)
            try:
                sampler.watch("simulator", sim.proc.pid)
                env = engine_env(work / "home-campaign", password, {
                    "PREFECT_API_URL": server.api_url, "PREFECT_HOME": str(work / "prefect-client"),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    **({} if args.stock_server else engine_settings(server.api_url)), **args.engine_env})
                server_cpu0 = sampler.mark_cpu("server")

                def at_end(result: dict[str, Any]) -> dict[str, Any]:
                    ended = time.monotonic()
                    at = recorded_runs(server.api_url)
                    # What the engine ran: every step it started, one task run per NE it called (the
                    # subflow's parent task run, or the NE's own task run with --ne-run task), one
                    # rollback task per NE rolled back, one per wave; flow runs: the campaign and the
                    # NEs that ran as flow runs. With step_runs stage, a task run per stage run, not per step.
                    steps = result["steps_run"] if result.get("stage_runs") is None else result["stage_runs"]
                    ran_tasks = steps + result["subflows"] + result["rollbacks"] + result["waves"]
                    ran_flows = result["ne_flow_runs"] + 1
                    recording.update(at_end=at, expected_task_runs=ran_tasks, expected_flow_runs=ran_flows,
                                     planned_task_runs=expected_tasks, planned_flow_runs=expected_flows)
                    seen = at
                    deadline = ended + args.record_timeout
                    while (seen["task_runs_final"] < ran_tasks or seen["flow_runs_final"] < ran_flows) \
                            and time.monotonic() < deadline:
                        time.sleep(1.0)
                        sampler.sample()
                        seen = recorded_runs(server.api_url)
                    complete = seen["task_runs_final"] >= ran_tasks and seen["flow_runs_final"] >= ran_flows
                    recording.update(final=seen, all_recorded=complete,
                                     seconds_until_all_recorded=round(time.monotonic() - ended, 1) if complete else None)
                    return {}

                profile_to = work / "engine-profile.txt" if args.profile else None
                result = run_engine("campaign", work, {**cfg, "inventory": str(sim.inventory),
                                                       "campaign_id": "bench-campaign"},
                                    env, sampler, timeout_s=args.engine_timeout, on_result=at_end,
                                    profile_to=profile_to, py_spy=args.py_spy or "py-spy")
                result["server_cpu_s"] = round(sampler.mark_cpu("server") - server_cpu0, 1)
                result["simulator_cpu_s"] = round(sampler.mark_cpu("simulator"), 1)
                if profile_to is not None and profile_to.exists():
                    result["profile"] = summarize_profile(profile_to)
            finally:
                sim.stop()
        finally:
            server.stop()
            if database is not None:
                result_db_cpu = round(sampler.mark_cpu("database"), 1)
                database.drop()
    if database is not None:
        result["database_cpu_s"] = result_db_cpu
    result["simulator_startup_s"] = round(sim.startup_s, 1)
    result["server_startup_s"] = round(server.startup_s, 1)
    recording["database"] = server.database
    memory = {"engine_mb": _mb(sampler.stats["engine"].peak_rss), "server_mb": _mb(sampler.stats["server"].peak_rss),
              "simulator_mb": _mb(sampler.stats["simulator"].peak_rss), "total_mb": _mb(sampler.peak_total)}
    if database is not None:
        memory["database_pss_mb"] = _mb(sampler.stats["database"].peak_rss)
    return result, memory, recording


def peer_part(args, work: Path, password: str, cfg: dict[str, Any], peer: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One peer on a fresh simulator of the same topology; afterwards every NE's version is read
    back over NETCONF, whatever the peer reported."""
    from bench.peers.plan import build_plan, write_peer_inventories

    with Sampler() as sampler:
        sim = start_simulator(work / f"sim-{peer}", nes=args.nes, speed=args.speed, password=password,
                              types=args.types)
        try:
            sampler.watch("simulator", sim.proc.pid)
            inventories = write_peer_inventories(build_plan(sim.inventory, cfg["models"], cfg["image_repo"]),
                                                 work / f"{peer}-inventory")
            cmd, extra_env = peer_runner.command(peer, inventories, concurrency=args.concurrency, work=work)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANSIBLE_"))}
            env.update({"CHANGELINE_NE_PASSWORD": password, **extra_env})
            ran = peer_runner.run(cmd, env, work / f"{peer}.log", sampler=sampler, role=peer,
                                  tag=f"{peer}-{os.getpid()}", timeout_s=args.engine_timeout)
            sim_cpu = sampler.mark_cpu("simulator")
            read_back = peer_runner.versions(sim.inventory, password)
        finally:
            sim.stop()
    stats = sampler.stats[peer]
    if peer == "nornir" and (work / "nornir-result.json").exists():
        reported = json.loads((work / "nornir-result.json").read_text())
        outcomes, own_wall = reported["nes"], reported["wall_s"]
    else:
        outcomes, own_wall = peer_runner.ansible_outcomes(ran.log.read_text(errors="replace")), None
    at_target = sorted(ne for ne, version in read_back.items() if version == TO_VERSION)
    result = {
        "wall_s": round(ran.wall_s, 3), "own_wall_s": own_wall, "returncode": ran.returncode,
        "counts": dict(Counter(o["status"] for o in outcomes.values())),
        "failures": {ne: o.get("reason", "") for ne, o in outcomes.items() if o["status"] != "done"},
        "nes_at_target_read_back": len(at_target),
        "versions_read_back": dict(Counter(read_back.values())),
        "cpu_s": round(ran.cpu_s_tree + stats.detached_cpu_s, 2),
        "cpu_s_detached": round(stats.detached_cpu_s, 2),
        "simulator_cpu_s": round(sim_cpu, 1), "simulator_startup_s": round(sim.startup_s, 1),
        "expresses": peer_runner.EXPRESSES[peer], "lacks": peer_runner.LACKS[peer],
        "log": str(ran.log),
    }
    memory = {"peer_mb": _mb(stats.peak_rss), "peer_detached_mb": _mb(stats.detached_rss),
              "simulator_mb": _mb(sampler.stats["simulator"].peak_rss), "total_mb": _mb(sampler.peak_total)}
    return result, memory


def _redact(value: str) -> str:
    """A database URL's password never reaches the report."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", value)


def _mb(n: int) -> float:
    return round(n / MIB, 1)


# --- profile --------------------------------------------------------------------------------

ACTIVITIES = (  # a sample is charged to the first activity with a frame on its stack
    ("device work: atoms, session, ncclient, paramiko", "atoms/"),
    ("device I/O threads: ncclient, paramiko", "ncclient/"),
    ("device I/O threads: ncclient, paramiko", "paramiko/"),
    ("prefect: task engine", "prefect/task_engine"),
    ("prefect: flow engine", "prefect/flow_engine"),
    ("prefect: events", "prefect/events/"),
    ("prefect: logs to the API", "prefect/logging/"),
    ("prefect: concurrency limits", "prefect/concurrency/"),
    ("prefect: sync/async bridge", "prefect/_internal/"),
    ("prefect: other", "prefect/"),
    ("changeline campaign", "flows/"),
    ("changeline other", "changeline/"),
)


def summarize_profile(path: Path, top: int = 20) -> dict[str, Any]:
    """py-spy raw (collapsed) stacks of GIL-holding threads -> share by activity (device
    work or which part of the engine), and the top self frames."""
    activities: Counter = Counter()
    leaves: Counter = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaves[frames[-1]] += count
        activities[next((name for name, marker in ACTIVITIES if any(marker in f for f in frames)), "other")] += count
    share = (lambda n: round(100.0 * n / total, 1)) if total else (lambda n: 0.0)
    device = sum(n for name, n in activities.items() if name.startswith("device"))
    return {"samples": total, "rate_hz": 50, "file": str(path),
            "device_pct": share(device), "engine_pct": share(total - device),
            "by_activity_pct": {k: share(v) for k, v in activities.most_common()},
            "top_self": [{"frame": f, "pct": share(n)} for f, n in leaves.most_common(top)]}


# --- report -----------------------------------------------------------------------------------

def report(args, limit: dict, baseline: dict | None, campaign: dict | None, memory: dict,
           recording: dict, started: datetime, peers: dict[str, dict] | None = None) -> dict[str, Any]:
    def ratio(a, b):
        return round(a / b, 3) if a and b else None

    camp_wall = campaign["wall_s"] if campaign else None
    base_wall = baseline["wall_s"] if baseline else None
    overhead: dict[str, Any] = {}
    if campaign and baseline:
        overhead = {
            "per_step_ms_critical_path": round((camp_wall - base_wall) / limit["critical_path"]["steps"] * 1000, 1),
            "per_step_ms_amortised": round((camp_wall - base_wall) / limit["steps_total"] * 1000, 2),
            "engine_cpu_ms_per_step_over_baseline": round((campaign["cpu_s"] - baseline["cpu_s"])
                                                          / limit["steps_total"] * 1000, 2),
        }
    if campaign:
        overhead["prefect_task_ms"] = campaign["step_overhead_ms"]
        overhead["prefect_per_ne_ms"] = {
            "start_turn_wait": campaign.get("start_turn_wait_ms"),
            "ne_and_pool_lock_acquire": campaign.get("ne_lock_ms"),
            "subflow_start": campaign.get("work_start_ms"), "subflow_end": campaign.get("work_end_ms"),
            "pool_peer_wait": campaign.get("pool_peer_wait_ms"), "slot_wait": campaign.get("slot_wait_ms"),
            "total_outside_steps": campaign.get("ne_overhead_ms"),
            # what of it holds a slot (the concurrency cap), so lengthens the campaign
            "inside_slot_outside_steps": campaign.get("in_slot_overhead_ms")}
    for name, part in (("campaign", campaign), ("baseline", baseline)):
        if part:
            overhead[f"{name}_flow_s"] = {"before_first_ne": part["before_first_ne_s"],
                                          "between_waves": part["between_waves_s"],
                                          "after_last_ne": part["after_last_ne_s"]}
    total_rss = memory.get("campaign", {}).get("total_mb")
    result = {
        "bench": "campaign", "started_at": started.isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/campaign_bench.py", *sys.argv[1:]]),
        "params": {"nes": args.nes, "concurrency": args.concurrency, "speed": args.speed,
                   "image_kb": args.image_kb, "types": args.types,
                   "models": [str(Path(m).relative_to(REPO)) for m in MODELS],
                   "topology": "python -m changeline.devices.sim --count N: types round-robin, pools of 2 per type",
                   "database": recording.get("database"), "server_env": {k: _redact(v) for k, v in args.server_env.items()},
                   "engine_env": args.engine_env, "python": platform.python_version(),
                   "prefect": _prefect_version(), "cpus": os.cpu_count(),
                   "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]},
        "limit": limit,
        "baseline": _part(baseline, args.nes),
        "campaign": _part(campaign, args.nes),
        "ratios": {"campaign_over_limit": ratio(camp_wall, limit["seconds"]),
                   "campaign_over_baseline": ratio(camp_wall, base_wall),
                   "baseline_over_limit": ratio(base_wall, limit["seconds"]),
                   "campaign_over_ideal_dispatch_limit": ratio(camp_wall, limit["ideal_dispatch_seconds"]),
                   **{f"{name}_over_limit": ratio(part["wall_s"], limit["seconds"]) for name, part in (peers or {}).items()},
                   **{f"campaign_over_{name}": ratio(camp_wall, part["wall_s"]) for name, part in (peers or {}).items()},
                   **{f"baseline_over_{name}": ratio(base_wall, part["wall_s"]) for name, part in (peers or {}).items()}},
        "peers": {name: _part(part, args.nes) for name, part in (peers or {}).items()},
        "cpu_s_per_ne": cpu_per_ne(baseline, campaign, peers or {}, args.nes),
        "overhead": overhead,
        "memory_peak_rss_mb": memory,
        "server_recording": recording,
        "targets": {
            "campaign_over_limit_le_1_15": (camp_wall / limit["seconds"] <= 1.15) if camp_wall else None,
            "campaign_over_baseline_le_1_2": (camp_wall / base_wall <= 1.2) if camp_wall and base_wall else None,
            "rss_total_lt_2_gib": (total_rss < 2048) if total_rss else None,
            "every_task_run_recorded": recording.get("all_recorded"),
        },
    }
    return result


def cpu_per_ne(baseline: dict | None, campaign: dict | None, peers: dict[str, dict], nes: int) -> dict[str, dict]:
    """CPU-s per NE of every process of every part, so a slow CPU can be told from a slow engine:
    the part's own process (engine or peer tool), the Prefect server, the simulator, PostgreSQL."""
    def per(value):
        return round(value / nes, 3) if value is not None else None

    out: dict[str, dict] = {}
    if baseline:
        out["baseline"] = {"engine": per(baseline["cpu_s"]), "simulator": per(baseline.get("simulator_cpu_s"))}
    if campaign:
        out["campaign"] = {"engine": per(campaign["cpu_s"]), "server": per(campaign.get("server_cpu_s")),
                           "simulator": per(campaign.get("simulator_cpu_s")),
                           "database": per(campaign.get("database_cpu_s"))}
    for name, part in peers.items():
        out[name] = {"engine": per(part["cpu_s"]), "simulator": per(part.get("simulator_cpu_s"))}
    for row in out.values():
        row["total"] = round(sum(v for v in row.values() if v is not None), 3)
    return out


def table(res: dict[str, Any]) -> str:
    """The printed table: one row per part, wall time, ratios, NEs done, CPU-s per NE by process,
    and what a peer lacks next to changeline."""
    limit_s = res["limit"]["seconds"]
    camp = res["campaign"] or {}
    rows = [("limit", limit_s, None, None, None, {}, "")]
    for name in ("baseline", "campaign"):
        part = res[name]
        if part:
            done = part["counts"].get("done", 0)
            rows.append((name, part["wall_s"], part["wall_s"] / limit_s, None, done, res["cpu_s_per_ne"][name], ""))
    for name, part in res["peers"].items():
        lacks = ", ".join(k for k in part["lacks"])
        rows.append((name, part["wall_s"], part["wall_s"] / limit_s,
                     camp["wall_s"] / part["wall_s"] if camp else None, part["nes_at_target_read_back"],
                     res["cpu_s_per_ne"][name], lacks))

    def num(value, fmt):
        return format(value, fmt) if value is not None else "-"

    head = (f"{'part':<9} {'wall s':>8} {'/limit':>7} {'changeline/':>11} {'NEs at':>6}  CPU-s per NE: {'engine':>7} "
            f"{'server':>7} {'sim':>6} {'db':>6} {'total':>6}  lacks")
    lines = [head, f"{'':<9} {'':>8} {'':>7} {'this':>11} {'target':>6}"]
    for name, wall, over_limit, camp_over, done, cpu, lacks in rows:
        lines.append(f"{name:<9} {wall:>8.1f} {num(over_limit, '.3f'):>7} {num(camp_over, '.3f'):>11} "
                     f"{num(done, 'd'):>6}  {'':>13} {num(cpu.get('engine'), '.3f'):>7} {num(cpu.get('server'), '.3f'):>7} "
                     f"{num(cpu.get('simulator'), '.3f'):>6} {num(cpu.get('database'), '.3f'):>6} "
                     f"{num(cpu.get('total'), '.3f'):>6}  {lacks}")
    lines.append(f"(N={res['params']['nes']} C={res['params']['concurrency']}; 'engine' is the part's own "
                 "process: changeline's engine, the Nornir script, or ansible-playbook with its workers and "
                 "ansible-connection daemons; 'NEs at target' for peers is read back over NETCONF)")
    return "\n".join(lines)


def _part(part: dict | None, nes: int) -> dict | None:
    if part is None:
        return None
    out = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in part.items() if k != "stamps"}
    out["cpu_s_per_ne"] = round(part["cpu_s"] / nes, 3)
    return out


def _prefect_version() -> str:
    from importlib.metadata import version

    return version("prefect")


def summary_line(res: dict[str, Any]) -> str:
    p, r, c, b = res["params"], res["ratios"], res["campaign"] or {}, res["baseline"] or {}
    rec = res["server_recording"]
    mem = res["memory_peak_rss_mb"].get("campaign", {})
    parts = [f"N={p['nes']} C={p['concurrency']} speed={p['speed']}:",
             f"campaign {c.get('wall_s', float('nan')):.1f} s,", f"baseline {b.get('wall_s', float('nan')):.1f} s,",
             f"limit {res['limit']['seconds']:.1f} s;",
             f"campaign/limit {r['campaign_over_limit']}, campaign/baseline {r['campaign_over_baseline']};"]
    if c:
        parts += [f"engine {c['cpu_s_per_ne']:.3f} CPU-s/NE;",
                  f"+{res['overhead'].get('per_step_ms_critical_path', float('nan'))} ms/step (critical path),",
                  f"Prefect task {c['step_overhead_ms']['mean']} ms;",
                  f"peak RSS engine {mem.get('engine_mb')} + server {mem.get('server_mb')} + sim "
                  f"{mem.get('simulator_mb')}"
                  + (f" + PostgreSQL (PSS) {mem['database_pss_mb']}" if "database_pss_mb" in mem else "")
                  + f" = {mem.get('total_mb')} MiB;",
                  f"task runs recorded at end {rec['at_end']['task_runs_final']}/{rec['expected_task_runs']}, "
                  f"all after {rec.get('seconds_until_all_recorded')} s;"]
    for name, peer in res["peers"].items():
        parts.append(f"{name} {peer['wall_s']:.1f} s ({peer['nes_at_target_read_back']}/{p['nes']} at target, "
                     f"{peer['cpu_s_per_ne']:.3f} CPU-s/NE), campaign/{name} {r.get(f'campaign_over_{name}')};")
    return " ".join(parts)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # unwinds the finally blocks that stop every process


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = datetime.now(timezone.utc)
    work = args.out_dir / f"run-{started:%Y%m%d-%H%M%S}-n{args.nes}-c{args.concurrency}"
    work.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    image_bytes = make_images(work / "images", args.types, args.image_kb)
    cfg = {"models": MODELS, "image_repo": str(work / "images"), "concurrency": args.concurrency}
    baseline = campaign = None
    peers: dict[str, dict[str, Any]] = {}
    memory: dict[str, Any] = {}
    recording: dict[str, Any] = {}
    limit: dict[str, Any] | None = None
    try:
        planned = simulated_inventory(work, nes=args.nes, types=args.types, speed=args.speed)
        limit = plan_limit(planned, concurrency=args.concurrency, speed=args.speed, image_bytes=image_bytes)
        args.engine_timeout = max(600.0, 20 * limit["seconds"])
        if args.only in (None, "baseline"):
            baseline, memory["baseline"] = baseline_part(args, work, password, cfg)
        if args.only in (None, "peers"):
            for peer in args.peers:
                peers[peer], memory[peer] = peer_part(args, work, password, cfg, peer)
        if args.only in (None, "campaign"):
            campaign, memory["campaign"], recording = campaign_part(
                args, work, password, cfg,
                # one task run per step, plus the one Prefect records in the parent for each subflow
                # call, plus one per wave
                expected_tasks=limit["steps_total"] + limit["nes_eligible"] + len(limit["waves"]),
                expected_flows=limit["nes_eligible"] + 1)
    finally:
        if not args.keep:
            for name in ("sim-baseline", "sim-campaign", "home-baseline", "home-campaign",
                         *(f"sim-{p}" for p in args.peers)):
                shutil.rmtree(work / name, ignore_errors=True)
    result = report(args, limit, baseline, campaign, memory, recording, started, peers)
    result["work_dir"] = str(work)
    line = summary_line(result)
    result["summary"] = line
    text = json.dumps(result, indent=2)
    (work / "result.json").write_text(text)
    (args.out_dir / f"campaign-n{args.nes}-c{args.concurrency}.json").write_text(text)
    print(text)
    print(table(result))
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
