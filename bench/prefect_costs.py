"""What each Prefect primitive the line uses costs, on a real standalone Prefect server.

The primitives (what flows/ne_flow.py, flows/campaign.py, flows/progress.py and
flows/locks.py call per NE or per campaign):

  task_run        one sequential task run of a no-op task (created locally, its three
                  state changes sent as events the server's task-run recorder stores)
  subflow_run     one in-process subflow run (what the campaign calls per NE)
  flow_state      one flow-run state change (`set_flow_run_state`, forced)
  log_line        one `get_run_logger().info` line (batched to POST /logs by a worker thread)
  event           one `emit_event` (websocket to the server's event persister)
  artifact_create one keyed Markdown artifact created
  artifact_update one in-place artifact update (PATCH), `--artifact-kb` of Markdown
  lock_acquire / lock_renew / lock_release
                  one global-concurrency-limit lease taken, renewed, released
                  (`increment_concurrency_slots_with_lease` and friends, as flows/locks.py)

For each, R repetitions (`--reps`) of a batch of M operations (`--ops`) run in a client
process started for this purpose, inside one flow run. Per batch the client's CPU (the
whole process: its worker threads included) and the server's (the `prefect server` process
tree, and PostgreSQL's with --postgres) are read before the batch and again once the work
has landed: the client's log and event queues are empty, task runs are stored, and the
server's CPU has fallen back to its idle rate, which was measured first and is subtracted.
Wall time is per operation (as the caller waits for it). Results: median and p95 per
operation (CPU: over the R batches; wall: over all R x M calls).

    .venv/bin/python bench/prefect_costs.py [--ops 100] [--reps 5] [--postgres]

Prints a table and writes the JSON to bench/results/ (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from bench.procs import REPO, api_post, local_postgres, start_prefect_server  # noqa: E402

PRIMITIVES = ("task_run", "subflow_run", "flow_state", "log_line", "event", "artifact_create",
              "artifact_update", "lock_acquire", "lock_renew", "lock_release")
# What one NE makes today on the happy path (flows/ne_flow.py, campaign.py, progress.py,
# locks.py as of this writing; N=200 C=50, speed 0.05): a subflow run; a task run per step
# (11.7 steps per NE); two log lines per step (the atom's, Prefect's "Finished in state") and
# about two of its run's own; one lease taken and released, renewed every 20 s (lease 60 s)
# over a ~40 s hold; the board's two in-place updates every ~4 s of the campaign, over N NEs
# (~0.55 per NE at N=200). `--per-ne` replaces these.
LINE_PER_NE = {"subflow_run": 1, "task_run": 11.7, "log_line": 26, "event": 0, "artifact_update": 0.55,
               "lock_acquire": 1, "lock_renew": 2, "lock_release": 1}
QUIET_POLL_S = 0.5
QUIET_POLLS = 2          # consecutive quiet polls before the server counts as done
QUIET_MAX_S = 60.0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


def spread(values: list[float], scale: float = 1.0, digits: int = 3) -> dict[str, float]:
    """median and p95 of `values` x scale (one place for how the table rounds)."""
    return {"median": round(statistics.median(values) * scale, digits) if values else 0.0,
            "p95": round(percentile(values, 0.95) * scale, digits), "n": len(values)}


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes and all their children, now."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
    return total


def own_cpu() -> float:
    return time.process_time()  # every thread of this process, finer than os.times' 10 ms ticks


# --- the client (its own process, PREFECT_API_URL set) ------------------------------------

class Meter:
    """Client and server CPU of one batch, the server's idle rate subtracted."""

    def __init__(self, server_pids: list[int]) -> None:
        self.server_pids = server_pids
        self.idle_rate = 0.0

    def measure_idle(self, seconds: float) -> None:
        c0, t0 = tree_cpu(self.server_pids), time.monotonic()
        time.sleep(seconds)
        self.idle_rate = (tree_cpu(self.server_pids) - c0) / (time.monotonic() - t0)

    def wait_quiet(self) -> None:
        """Until the server's CPU over a poll is back near its idle rate, QUIET_POLLS in a row."""
        quiet, deadline = 0, time.monotonic() + QUIET_MAX_S
        last = tree_cpu(self.server_pids)
        while quiet < QUIET_POLLS and time.monotonic() < deadline:
            time.sleep(QUIET_POLL_S)
            now = tree_cpu(self.server_pids)
            quiet = quiet + 1 if now - last <= self.idle_rate * QUIET_POLL_S + 0.01 else 0
            last = now

    def batch(self, ops: int, op: Callable[[int], None], landed: Callable[[], None]) -> dict[str, Any]:
        """Run op(0..ops-1), then `landed()` (the work reached the server), then wait for quiet."""
        walls: list[float] = []
        c0, s0, t0 = own_cpu(), tree_cpu(self.server_pids), time.monotonic()
        for i in range(ops):
            start = time.perf_counter()
            op(i)
            walls.append(time.perf_counter() - start)
        landed()
        # Client CPU after the quiet wait too: sends still in flight count. The wait's own
        # polling (psutil over the server's processes, a few ms a poll) is left in.
        self.wait_quiet()
        client = own_cpu() - c0
        elapsed = time.monotonic() - t0
        server = tree_cpu(self.server_pids) - s0 - self.idle_rate * elapsed
        return {"client_cpu_s": client / ops, "server_cpu_s": max(server, 0.0) / ops, "walls": walls}


def queues_empty() -> None:
    """The client's background senders have sent what was queued: the log worker is drained
    (it batches for up to 2 s; the next line starts a new one), the events worker's queue is
    taken (what is in flight lands before the server falls quiet, Meter.wait_quiet)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=QUIET_MAX_S, at_exit=False)
    deadline = time.monotonic() + QUIET_MAX_S
    with EventsWorker._instance_cache_lock:
        instances = list(EventsWorker._instances.values())
    for instance in instances:
        while instance._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.05)


def run_client(cfg: dict[str, Any]) -> dict[str, Any]:
    from prefect import flow, get_run_logger, task
    from prefect.artifacts import create_markdown_artifact
    from prefect.cache_policies import NO_CACHE
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactUpdate, GlobalConcurrencyLimitCreate
    from prefect.context import FlowRunContext
    from prefect.events import emit_event
    from prefect.states import Pending, Running

    ops, reps = cfg["ops"], cfg["reps"]

    def ops_of(kind: str) -> int:  # a sync subflow takes ~1 s (its heartbeat thread is joined)
        return cfg["subflow_ops"] if kind == "subflow_run" else ops

    meter = Meter(cfg["server_pids"])
    markdown = ("| NE | state | step | reason |\n|---|---|---|---|\n"
                + "| amf-1 | done | validate | reached target |\n" * (cfg["artifact_kb"] * 1024 // 40))[
                : cfg["artifact_kb"] * 1024]

    @task(cache_policy=NO_CACHE, persist_result=False)
    def noop(i: int) -> int:
        return i

    @flow(persist_result=False)
    def child_flow(i: int) -> int:
        return i

    out: dict[str, Any] = {}

    @flow(name="prefect-costs", persist_result=False)
    def costs() -> None:
        run_id = FlowRunContext.get().flow_run.id
        logger = get_run_logger()
        with get_client(sync_client=True) as client:
            def stored(path: str, body: dict[str, Any], expected: int) -> Callable[[], None]:
                def landed() -> None:
                    queues_empty()
                    deadline = time.monotonic() + QUIET_MAX_S
                    while api_post(cfg["api"], path, body) < expected and time.monotonic() < deadline:
                        time.sleep(0.2)
                return landed

            def stored_task_runs(expected: int) -> Callable[[], None]:
                return stored("/task_runs/count", {"task_runs": {"flow_run_id": {"any_": [str(run_id)]},
                                                                 "state": {"type": {"any_": ["COMPLETED"]}}}}, expected)

            def child_runs(expected: int) -> Callable[[], None]:
                return stored("/flow_runs/count", {"flow_runs": {"parent_flow_run_id": {"any_": [str(run_id)]}}},
                              expected)

            other = client.create_flow_run(child_flow, name="state-changes")  # a run whose state we move
            states = (Pending, Running)
            names = [f"prefect-costs-{n}" for n in range(ops)]
            for name in names:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            leases: list[Any] = []
            art = {"id": None}

            def acquire(i: int) -> None:
                granted = client.increment_concurrency_slots_with_lease(
                    names=[names[i]], slots=1, mode="concurrency", lease_duration=300).json()
                leases.append(granted["lease_id"])

            done: dict[str, int] = dict.fromkeys(cfg["primitives"], 0)  # batches finished, by primitive

            def artifact_create(i: int) -> None:
                art["id"] = create_markdown_artifact(markdown=markdown, key=f"costs-{done['artifact_create']}-{i}",
                                                     description="prefect_costs")

            plans: dict[str, tuple[Callable[[int], None], Callable[[], Callable[[], None]]]] = {
                "task_run": (lambda i: noop(i), lambda: stored_task_runs((done["task_run"] + 1) * ops)),
                "subflow_run": (lambda i: child_flow(i),
                                lambda: child_runs((done["subflow_run"] + 1) * ops_of("subflow_run"))),
                "flow_state": (lambda i: client.set_flow_run_state(other.id, states[i % 2](), force=True),
                               lambda: queues_empty),
                "log_line": (lambda i: logger.info("step %d of a bench: nothing to change", i), lambda: queues_empty),
                "event": (lambda i: emit_event(event="changeline.bench.cost", resource={
                    "prefect.resource.id": f"changeline.ne.bench-{i}"}, payload={"i": i}), lambda: queues_empty),
                "artifact_create": (artifact_create, lambda: queues_empty),
                "artifact_update": (lambda i: client.update_artifact(art["id"], ArtifactUpdate(
                    data=markdown, description=f"update {i}")), lambda: queues_empty),
                "lock_acquire": (acquire, lambda: queues_empty),
                "lock_renew": (lambda i: client.renew_concurrency_lease(leases[i], lease_duration=300),
                               lambda: queues_empty),
                "lock_release": (lambda i: client.release_concurrency_slots_with_lease(leases[i]),
                                 lambda: queues_empty),
            }

            meter.measure_idle(cfg["idle_s"])
            out["server_idle_cpu_per_s"] = round(meter.idle_rate, 4)
            batches: dict[str, list[dict[str, Any]]] = {k: [] for k in cfg["primitives"]}
            # Rounds of every primitive rather than all reps of one: drift on a loaded machine
            # then spreads over all of them. Locks go in order: acquire, renew, release.
            for _ in range(reps):
                for kind in cfg["primitives"]:
                    if kind == "lock_acquire":
                        leases.clear()
                    op, landed = plans[kind]
                    batches[kind].append(meter.batch(ops_of(kind), op, landed()))
                    done[kind] += 1
            out["primitives"] = {kind: summarise(b) for kind, b in batches.items()}

    costs()
    return out


def summarise(batches: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [w for b in batches for w in b["walls"]]
    client = [b["client_cpu_s"] for b in batches]
    server = [b["server_cpu_s"] for b in batches]
    return {"client_cpu_ms": spread(client, 1000), "server_cpu_ms": spread(server, 1000),
            "total_cpu_ms": spread([c + s for c, s in zip(client, server)], 1000), "wall_ms": spread(walls, 1000)}


# --- per-NE budget --------------------------------------------------------------------------

def per_ne_cpu_s(costs: dict[str, Any], counts: dict[str, float]) -> dict[str, Any]:
    """Prefect's CPU per NE (client + server) for the primitive counts one NE makes (median costs)."""
    rows = {}
    for kind, n in counts.items():
        cost = costs[kind]["total_cpu_ms"]["median"] / 1000
        rows[kind] = {"per_ne": n, "cpu_s": round(n * cost, 4)}
    return {"by_primitive": rows, "total_cpu_s": round(sum(r["cpu_s"] for r in rows.values()), 3)}


def table(result: dict[str, Any]) -> str:
    lines = [f"{'primitive':<16} {'client CPU ms':>15} {'server CPU ms':>15} {'total CPU ms':>14} {'wall ms':>15}",
             f"{'':<16} {'median / p95':>15} {'median / p95':>15} {'median':>14} {'median / p95':>15}"]
    for kind, c in result["primitives"].items():
        lines.append(f"{kind:<16} {c['client_cpu_ms']['median']:>7.2f} / {c['client_cpu_ms']['p95']:<6.2f}"
                     f"{c['server_cpu_ms']['median']:>7.2f} / {c['server_cpu_ms']['p95']:<6.2f}"
                     f"{c['total_cpu_ms']['median']:>10.2f}    "
                     f"{c['wall_ms']['median']:>7.2f} / {c['wall_ms']['p95']:<6.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=100, help="operations per batch (default 100)")
    parser.add_argument("--reps", type=int, default=5, help="batches per primitive (default 5)")
    parser.add_argument("--subflow-ops", type=int, default=10, help="subflow runs per batch (default 10)")
    parser.add_argument("--only", default=",".join(PRIMITIVES), help="primitives, comma-separated (default all)")
    parser.add_argument("--artifact-kb", type=int, default=16,
                        help="Markdown size of an artifact write in KiB (default 16: a 200-NE board)")
    parser.add_argument("--idle-s", type=float, default=5.0, help="seconds to measure the idle server")
    parser.add_argument("--postgres", action="store_true",
                        help="the server on a fresh database of this machine's PostgreSQL (root)")
    parser.add_argument("--out", help="JSON file (default bench/results/prefect-costs-<time>.json)")
    parser.add_argument("--per-ne", default="", metavar="KIND=N,...",
                        help="primitive counts one NE makes, for the per-NE budget (default: the line's today)")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: the measuring process
    args = parser.parse_args(argv)
    if args.client:
        cfg = json.loads(Path(args.client).read_text())
        Path(cfg["out"]).write_text(json.dumps(run_client(cfg), indent=2))
        return 0

    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PRIMITIVES))
    if unknown or min(args.ops, args.reps, args.subflow_ops) < 1:
        parser.error(f"unknown primitive(s) {', '.join(unknown)} (known: {', '.join(PRIMITIVES)})" if unknown
                     else "--ops, --reps and --subflow-ops must be at least 1")
    if any(k in chosen for k in ("lock_renew", "lock_release")) and "lock_acquire" not in chosen:
        parser.error("lock_renew and lock_release need lock_acquire (they use its leases)")
    if "artifact_update" in chosen and "artifact_create" not in chosen:
        parser.error("artifact_update needs artifact_create (it updates what that created)")
    chosen = [p for p in PRIMITIVES if p in chosen]  # the order the client relies on
    per_ne = dict(LINE_PER_NE)
    for item in filter(None, (i.strip() for i in args.per_ne.split(","))):
        kind, _, count = item.partition("=")
        try:
            per_ne[kind.strip()] = float(count)
        except ValueError:
            parser.error(f"--per-ne {item!r}: expected KIND=NUMBER")
        if kind.strip() not in PRIMITIVES:
            parser.error(f"--per-ne: unknown primitive {kind.strip()!r} (known: {', '.join(PRIMITIVES)})")

    work = Path(tempfile.mkdtemp(prefix="prefect-costs-"))
    database = None
    server = None
    try:
        from changeline.flows.server import SERVER_SETTINGS, engine_settings

        server_env = dict(SERVER_SETTINGS)
        if args.postgres:
            database = local_postgres(f"changeline_costs_{os.getpid()}")
            server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = database.url
        server = start_prefect_server(work / "server", extra_env=server_env)
        pids = [server.proc.pid] + ([database.postmaster_pid] if database else [])
        cfg = {"ops": args.ops, "reps": args.reps, "subflow_ops": args.subflow_ops, "primitives": chosen, "artifact_kb": args.artifact_kb,
               "idle_s": args.idle_s, "server_pids": pids, "api": server.api_url, "out": str(work / "client.json")}
        (work / "cfg.json").write_text(json.dumps(cfg))
        env = {**os.environ, "PREFECT_API_URL": server.api_url, "PREFECT_HOME": str(work / "client"),
               **engine_settings(server.api_url)}
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--client", str(work / "cfg.json")],
                              env=env, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"the measuring client failed (exit {done.returncode})")
        measured = json.loads((work / "client.json").read_text())
    finally:
        if server is not None:
            server.stop()
        if database is not None:
            database.drop()
        shutil.rmtree(work, ignore_errors=True)
    result = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "load_avg_1m": round(os.getloadavg()[0], 2), "database": "postgresql" if args.postgres else "sqlite",
              "ops": args.ops, "subflow_ops": args.subflow_ops, "reps": args.reps, "artifact_kb": args.artifact_kb, **measured}
    measured_kinds = {k: n for k, n in per_ne.items() if k in result["primitives"]}
    result["per_ne"] = {"counts": measured_kinds, **per_ne_cpu_s(result["primitives"], measured_kinds)}
    out = Path(args.out) if args.out else REPO / "bench" / "results" / \
        f"prefect-costs-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(table(result))
    print("Prefect CPU per NE (client + server, median costs): " + ", ".join(
        f"{k} {r['per_ne']:g} x = {r['cpu_s']:.3f} s" for k, r in result["per_ne"]["by_primitive"].items())
        + f"; total {result['per_ne']['total_cpu_s']:.3f} CPU-s")
    print(f"database {result['database']}, {args.reps} x {args.ops} ops, server idle "
          f"{result['server_idle_cpu_per_s']:.3f} CPU-s/s, load {result['load_avg_1m']}; JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
