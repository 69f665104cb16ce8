"""The measured engine process of a campaign benchmark: `python -m bench.engine CONFIG.json`.

Mode `campaign` runs the changeline campaign flow (Prefect) the way `changeline run` does;
mode `baseline` runs the same compiled per-NE steps in a plain ThreadPoolExecutor with no
Prefect (same waves, same pool exclusivity, same device sessions, journal and backup stores).
Both write one JSON result to CONFIG's `out`; the parent samples this process's memory.

Both modes stamp, per NE, when a worker picked it, its lock waits, when its work (the step
sequence) started and ended and when the worker was done with it, so the result says where
wall time went. The campaign's stamps come from thin wrappers around names the campaign
module looks up at call time (`NeLocks.hold`, `ne_change_subflow`, `WorkSlots`, `contextvars` for the
moment a worker picks an NE, `plan_waves`); the flow code itself is unchanged.

The campaign's environment (PREFECT_API_URL, PREFECT_HOME, CHANGELINE_HOME) is set by the
parent before this process starts, because Prefect reads its settings at import.
"""

from __future__ import annotations

import contextvars
import json
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def spread_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {"n": len(values), "mean": round(statistics.fmean(values) * 1000, 2),
            "p50": round(ordered[len(ordered) // 2] * 1000, 2),
            "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 2),
            "max": round(ordered[-1] * 1000, 2)}


class Stamps:
    """Per-NE time stamps (time.time()) from any thread, and the atom time of every step."""

    def __init__(self) -> None:
        self.ne: dict[str, dict[str, float]] = defaultdict(dict)
        self.atom_s: dict[tuple[str, str], float] = {}
        self.waves: list[list[str]] = []
        self._current = threading.local()

    def mark(self, ne: str, what: str, at: float | None = None) -> None:
        self.ne[ne][what] = time.time() if at is None else at

    def picked(self, ne: str) -> None:
        self._current.ne = ne
        self.mark(ne, "pick")

    @property
    def current(self) -> str:
        return getattr(self._current, "ne", "?")

    def time_atoms(self) -> None:
        from changeline.engine import runner

        original = runner.execute

        def timed_execute(atom, ctx, args, **kwargs):
            start = time.perf_counter()
            try:
                return original(atom, ctx, args, **kwargs)
            finally:
                self.atom_s[(ctx.ne, ctx.step)] = time.perf_counter() - start

        runner.execute = timed_execute

    def analyse(self, outcomes: dict[str, dict[str, Any]], began: float, ended: float) -> dict[str, Any]:
        """Where wall time went: before the first NE, per NE (lock waits, start and end of its
        work, the work itself by NE type, per-step gap between flow and atom), between waves, after."""
        counts: dict[str, int] = {}
        failures = {}
        steps = 0
        step_gaps: list[float] = []
        for name, out in outcomes.items():
            counts[out["status"]] = counts.get(out["status"], 0) + 1
            if out["status"] != "done":
                failures[name] = out.get("reason", "")
            for step in out.get("steps", []):
                if step["status"] == "skipped":
                    continue
                steps += 1
                atom_s = self.atom_s.get((name, step["name"]))
                if atom_s is not None:
                    step_gaps.append(max(0.0, step["duration_s"] - atom_s))
        spans: dict[str, list[float]] = defaultdict(list)
        work_by_type: dict[str, list[float]] = defaultdict(list)
        for name, t in self.ne.items():
            if "work_start" not in t or "done" not in t:
                continue
            first_lock = min((t[k] for k in ("pool_turn", "turn_wait_start", "ne_lock_start") if k in t),
                             default=t["work_start"])
            if "pool_turn" in t:  # the baseline queues pool peers before anything else
                spans["in_process_pool_wait"].append(t["pool_turn"] - t["pick"])
            if "start_turn" in t:
                spans["start_turn_wait"].append(t["start_turn"] - t["turn_wait_start"])
            # Campaign NEs get their run ready (call -> admitted), then wait for their turn: the pool
            # peer (admitted -> ne_lock_start), the locks, a working slot (the concurrency cap).
            ready = "admitted" if "admitted" in t else "work_start"
            if "admitted" in t and "ne_lock_start" in t:
                spans["pool_peer_wait"].append(t["ne_lock_start"] - t["admitted"])
            if "slot" in t and "slot_free" in t:
                spans["in_slot_overhead"].append((t["slot_free"] - t["slot"]) - (t["work_end"] - t["work_start"]))
            for what, start, end in (("pool_lock", "pool_lock_start", "pool_lock_end"),
                                     ("ne_lock", "ne_lock_start", "ne_lock_end"),
                                     ("work_start", "call", ready), ("slot_wait", "slot_wait_start", "slot"),
                                     ("work_end", "work_end", "done")):
                if start in t and end in t:
                    spans[what].append(t[end] - t[start])
            waits = (t["slot"] - t["slot_wait_start"] if "slot" in t and "slot_wait_start" in t else 0.0) + \
                (t["ne_lock_start"] - t["admitted"] if "admitted" in t and "ne_lock_start" in t else 0.0)
            spans["ne_overhead"].append((t["done"] - first_lock) - (t["work_end"] - t["work_start"]) - waits)
            work_by_type[outcomes.get(name, {}).get("ne_type") or name.rsplit("-", 1)[0]].append(
                t["work_end"] - t["work_start"])
        wave_spans = []
        for wave in self.waves:
            picks = [self.ne[n]["pick"] for n in wave if "pick" in self.ne[n]]
            dones = [self.ne[n]["done"] for n in wave if "done" in self.ne[n]]
            if picks and dones:
                wave_spans.append((min(picks), max(dones)))
        gaps = [nxt[0] - prev[1] for prev, nxt in zip(wave_spans, wave_spans[1:])]
        return {
            "counts": counts, "steps_run": steps, "failures": dict(list(failures.items())[:10]),
            "rollbacks": sum(1 for out in outcomes.values() if out.get("rollback")),
            "step_overhead_ms": spread_ms(step_gaps),
            "before_first_ne_s": round(wave_spans[0][0] - began, 3) if wave_spans else None,
            "after_last_ne_s": round(ended - wave_spans[-1][1], 3) if wave_spans else None,
            "between_waves_s": [round(g, 3) for g in gaps],
            "wave_seconds": [round(end - start, 3) for start, end in wave_spans],
            **{f"{what}_ms": spread_ms(values) for what, values in spans.items()},
            "ne_work_s_by_type": {k: round(statistics.fmean(v), 3) for k, v in sorted(work_by_type.items())},
        }


# --- campaign (Prefect) -----------------------------------------------------------------

class ApiCalls:
    """Counts the engine's HTTP requests to the Prefect API by method and path (ids elided)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.status: dict[int, int] = defaultdict(int)

    def install(self) -> None:
        import re

        import httpx

        ids = re.compile(r"/[0-9a-f]{8}-[0-9a-f-]{27,}")

        def record(request, response) -> None:
            self.counts[f"{request.method} {ids.sub('/{id}', request.url.path)}"] += 1
            self.status[response.status_code] += 1

        sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

        def send(client, request, *args, **kwargs):
            response = sync_send(client, request, *args, **kwargs)
            record(request, response)
            return response

        async def asend(client, request, *args, **kwargs):
            response = await async_send(client, request, *args, **kwargs)
            record(request, response)
            return response

        httpx.Client.send, httpx.AsyncClient.send = send, asend

    def summary(self, nes: int) -> dict[str, Any]:
        total = sum(self.counts.values())
        return {"total": total, "per_ne": round(total / max(nes, 1), 1), "by_status": dict(self.status),
                "top": dict(sorted(self.counts.items(), key=lambda kv: -kv[1])[:15])}


def _thread_names() -> dict[str, int]:
    """Live threads by name with digits dropped (what is still running when the campaign ends)."""
    import re

    names: dict[str, int] = defaultdict(int)
    for thread in threading.enumerate():
        names[re.sub(r"\d+", "N", thread.name)] += 1
    return dict(sorted(names.items(), key=lambda kv: -kv[1]))


def run_campaign(cfg: dict[str, Any]) -> dict[str, Any]:
    t_import = time.perf_counter()
    from changeline.flows import campaign as campaign_module
    from changeline.flows import locks as locks_module
    from changeline.models import compile as compile_module
    import_s = time.perf_counter() - t_import

    stamps = Stamps()
    stamps.time_atoms()
    calls = ApiCalls()
    calls.install()
    subflow = campaign_module.ne_change_subflow
    plan_waves = compile_module.plan_waves

    class PickStampingContext:
        """Stands in for `contextvars` in the campaign module: the campaign runs each NE's work
        as copy_context().run(one, host) in a worker thread, so this marks when a worker picked it."""

        @staticmethod
        def copy_context():
            ctx = contextvars.copy_context()

            class Run:
                @staticmethod
                def run(fn, host, *args):
                    return ctx.run(_picked_then, fn, host, *args)
            return Run

    def _picked_then(fn, host, *args):
        stamps.picked(host.name)
        return fn(host, *args)

    def recorded_waves(*args, **kwargs):
        waves = plan_waves(*args, **kwargs)
        stamps.waves = [list(w.names) for w in waves]
        return waves

    hold = locks_module.NeLocks.hold

    @contextmanager
    def timed_hold(self, names, *, wait_s):
        ne = stamps.current  # one request takes the NE and its pool: stamped as "ne_lock"
        stamps.mark(ne, "ne_lock_start")
        with hold(self, names, wait_s=wait_s):
            stamps.mark(ne, "ne_lock_end")
            yield

    def timed_subflow(**kwargs):
        ne = kwargs["ne"]
        stamps.mark(ne, "call")
        try:
            result = subflow(**kwargs)
        finally:
            stamps.mark(ne, "done")
        stamps.mark(ne, "work_start", result.get("started_at"))
        stamps.mark(ne, "work_end", result.get("finished_at"))
        return result

    class StampedTurn(campaign_module.StartTurn):
        def __enter__(self):
            stamps.mark(stamps.current, "turn_wait_start")
            entered = super().__enter__()
            stamps.mark(stamps.current, "start_turn")
            return entered

    admitted_by = campaign_module.admitted_by

    def stamped_admitted_by(gate):
        @contextmanager
        def stamped_gate():
            stamps.mark(stamps.current, "admitted")  # the run is running; its turn (pool, locks, slot) next
            with gate() as ticket:
                yield ticket
        return admitted_by(stamped_gate)

    class StampedSlots(campaign_module.WorkSlots):
        @contextmanager
        def slot(self, rank, on_wait=None):
            ne = stamps.current
            stamps.mark(ne, "slot_wait_start")
            with super().slot(rank, on_wait):
                stamps.mark(ne, "slot")
                try:
                    yield
                finally:
                    stamps.mark(ne, "slot_free")

    campaign_module.WorkSlots = StampedSlots
    campaign_module.admitted_by = stamped_admitted_by
    campaign_module.ne_change_subflow = timed_subflow
    campaign_module.StartTurn = StampedTurn
    locks_module.NeLocks.hold = timed_hold
    campaign_module.contextvars = PickStampingContext
    compile_module.plan_waves = recorded_waves

    cpu0, t0, began = cpu_seconds(), time.monotonic(), time.time()
    summary = campaign_module.campaign(models=cfg["models"], inventory=cfg["inventory"], targets="all",
                                       campaign_id=cfg["campaign_id"], params={"image_repo": cfg["image_repo"]},
                                       concurrency_cap=cfg["concurrency"])
    wall, cpu, ended = time.monotonic() - t0, cpu_seconds() - cpu0, time.time()
    return {"mode": "campaign", "wall_s": wall, "cpu_s": cpu, "import_s": import_s,
            "threads_at_end": threading.active_count(),
            "threads_at_end_by_name": _thread_names(),
            "subflows": sum(1 for t in stamps.ne.values() if "call" in t),
            "waves": len(stamps.waves),  # the campaign records one task run per wave
            **stamps.analyse(summary["nes"], began, ended),
            "api_requests": calls.summary(len(summary["nes"])),
            "stamps": {ne: {k: round(v - began, 3) for k, v in t.items()} for ne, t in stamps.ne.items()}}


# --- baseline (no engine) ---------------------------------------------------------------

def run_baseline(cfg: dict[str, Any]) -> dict[str, Any]:
    from changeline.engine import runner
    from changeline.engine.atom import AtomContext
    from changeline.devices.inventory import load_inventory
    from changeline.devices.session import DeviceSession, Endpoint
    from changeline.flows import stores
    from changeline.flows.policy import dispatch_order
    from changeline.models.compile import compile_for_host, eligibility, load_model, plan_waves

    stamps = Stamps()
    stamps.time_atoms()
    cpu0, t0, began = cpu_seconds(), time.monotonic(), time.time()
    campaign_id = cfg["campaign_id"]
    params = {"image_repo": cfg["image_repo"]}
    models = [load_model(m) for m in cfg["models"]]
    hosts = load_inventory(cfg["inventory"]).select("all")
    chosen = {}  # the first model that targets each NE, as the campaign picks
    for host in hosts:
        model = next((m for m in models if eligibility(m, host) is None), None)
        if model is not None:
            chosen[host.name] = model
    eligible = [h for h in hosts if h.name in chosen]
    journal, backups = stores.journal(), stores.backups()
    pool_locks = {h.pool: threading.Lock() for h in eligible if h.pool}
    outcomes: dict[str, dict[str, Any]] = {}

    plans = {h.name: compile_for_host(chosen[h.name], h, params) for h in eligible}

    def one(host) -> dict[str, Any]:
        stamps.picked(host.name)
        plan = plans[host.name]
        with pool_locks[host.pool] if host.pool else nullcontext():
            stamps.mark(host.name, "pool_turn")
            ctx = AtomContext(host=host, session=DeviceSession(Endpoint.from_host(host)), journal=journal,
                              backups=backups, run_id=campaign_id, speed=float(host.data.get("time_scale", 1.0)),
                              baseline=journal.baseline(campaign_id, host.name), log=lambda _msg: None)
            out = {"ne": host.name, "ne_type": host.ne_type, "status": "running", "reason": "", "steps": [],
                   "started_at": time.time()}
            stamps.mark(host.name, "call", out["started_at"])
            stamps.mark(host.name, "work_start", out["started_at"])
            journal.set_ne_status(campaign_id, host.name, "running", "")
            try:
                for step in plan.steps:
                    ctx.step = step.name
                    journal.set_ne_status(campaign_id, host.name, "running", f"step {step.name}")
                    started = time.time()
                    result = runner.execute(step.atom, ctx, step.args, timeout_s=step.timeout_s,
                                            retry=runner.Retry(attempts=step.retries + 1)).to_dict()
                    out["steps"].append({"name": step.name, "status": "done", "duration_s": time.time() - started})
                    journal.record_step(campaign_id, host.name, step.name, "done", result)
                out["status"], out["reason"] = "done", "reached target"
            except Exception as err:  # noqa: BLE001 - recorded as the NE's outcome, like the flow does
                out["status"], out["reason"] = "failed", f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            finally:
                ctx.session.close()
                out["finished_at"] = time.time()
                journal.set_ne_status(campaign_id, host.name, out["status"], out["reason"])
                folder = stores.evidence_dir(campaign_id, host.name)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "outcome.json").write_text(json.dumps(out, indent=2, default=str))
                stamps.mark(host.name, "work_end", out["finished_at"])
                stamps.mark(host.name, "done")
            return out

    waves = plan_waves(models[0], eligible)
    stamps.waves = [list(w.names) for w in waves]
    for wave in waves:
        with ThreadPoolExecutor(max_workers=max(1, min(cfg["concurrency"], len(wave.hosts))),
                                thread_name_prefix="ne") as pool:
            # the campaign's dispatch order (flows.policy.dispatch_order): longest remaining work first
            order = dispatch_order(wave.hosts, {h.name: plans[h.name].total_estimate_s for h in wave.hosts})
            futures = {h.name: pool.submit(one, h) for h in order}
            for host in wave.hosts:
                outcomes[host.name] = futures[host.name].result()
    wall, cpu, ended = time.monotonic() - t0, cpu_seconds() - cpu0, time.time()
    return {"mode": "baseline", "wall_s": wall, "cpu_s": cpu, "prefect_imported": "prefect" in sys.modules,
            **stamps.analyse(outcomes, began, ended)}


def main(argv: list[str]) -> int:
    cfg = json.loads(Path(argv[0]).read_text())
    result = run_campaign(cfg) if cfg["mode"] == "campaign" else run_baseline(cfg)
    partial = Path(cfg["out"] + ".partial")
    partial.write_text(json.dumps(result, indent=2))
    partial.replace(cfg["out"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
