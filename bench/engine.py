"""The measured engine process of a campaign benchmark: `python -m bench.engine CONFIG.json`.

Mode `campaign` runs the changeline campaign flow (Prefect) the way `changeline run` does;
mode `baseline` runs the same compiled per-NE steps in a plain ThreadPoolExecutor with no
Prefect (same waves, same pool exclusivity, same device sessions, journal and backup stores).
Both write one JSON result to CONFIG's `out`; the parent samples this process's memory.

The campaign's environment (PREFECT_API_URL, PREFECT_HOME, CHANGELINE_HOME) is set by the
parent before this process starts, because Prefect reads its settings at import.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class StepClock:
    """Times `runner.execute` (the atom work itself) per (NE, step), from any thread."""

    def __init__(self) -> None:
        self.inside: dict[tuple[str, str], float] = {}

    def install(self) -> None:
        from changeline.atoms import runner

        original = runner.execute

        def timed_execute(atom, ctx, args, **kwargs):
            start = time.perf_counter()
            try:
                return original(atom, ctx, args, **kwargs)
            finally:
                self.inside[(ctx.ne, ctx.step)] = time.perf_counter() - start

        runner.execute = timed_execute


def spread_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {"n": len(values), "mean": round(statistics.fmean(values) * 1000, 2),
            "p50": round(ordered[len(ordered) // 2] * 1000, 2),
            "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 2),
            "max": round(ordered[-1] * 1000, 2)}


def ne_results(outcomes: dict[str, dict[str, Any]], inside: dict[tuple[str, str], float]) -> dict[str, Any]:
    """Counts, steps run, and how much longer each step took as seen by the flow than the atom itself."""
    counts: dict[str, int] = {}
    steps = 0
    step_gaps: list[float] = []
    failures = {}
    for name, out in outcomes.items():
        counts[out["status"]] = counts.get(out["status"], 0) + 1
        if out["status"] != "done":
            failures[name] = out.get("reason", "")
        for step in out.get("steps", []):
            if step["status"] == "skipped":
                continue
            steps += 1
            atom_s = inside.get((name, step["name"]))
            if atom_s is not None:
                step_gaps.append(max(0.0, step["duration_s"] - atom_s))
    return {"counts": counts, "steps_run": steps, "failures": dict(list(failures.items())[:10]),
            "step_overhead_ms": spread_ms(step_gaps)}


# --- campaign (Prefect) -----------------------------------------------------------------

def run_campaign(cfg: dict[str, Any]) -> dict[str, Any]:
    t_import = time.perf_counter()
    from changeline.flows import campaign as campaign_module
    import_s = time.perf_counter() - t_import

    clock = StepClock()
    clock.install()
    # (what, ne, start, end) in time.time(), for the breakdown of where wall time goes
    timeline: list[tuple[str, str, float, float]] = []
    subflow = campaign_module.ne_change_subflow
    original_concurrency = campaign_module.concurrency

    def timed_subflow(**kwargs):
        start = time.time()
        result = subflow(**kwargs)
        end = time.time()
        timeline.append(("subflow-start", kwargs["ne"], start, result.get("started_at") or start))
        timeline.append(("subflow-end", kwargs["ne"], result.get("finished_at") or end, end))
        timeline.append(("ne-work", kwargs["ne"], result.get("started_at") or start, result.get("finished_at") or end))
        return result

    @contextmanager
    def timed_concurrency(name, *args, **kwargs):
        start = time.time()
        with original_concurrency(name, *args, **kwargs):
            timeline.append(("pool-lock" if "-pool-" in name else "ne-lock", name, start, time.time()))
            yield

    campaign_module.ne_change_subflow = timed_subflow
    campaign_module.concurrency = timed_concurrency

    cpu0, t0, began = cpu_seconds(), time.monotonic(), time.time()
    summary = campaign_module.campaign(models=cfg["models"], inventory=cfg["inventory"], targets="all",
                                       campaign_id=cfg["campaign_id"], params={"image_repo": cfg["image_repo"]},
                                       concurrency_cap=cfg["concurrency"])
    wall, cpu, ended = time.monotonic() - t0, cpu_seconds() - cpu0, time.time()
    spans = {kind: [end - start for what, _, start, end in timeline if what == kind]
             for kind in ("subflow-start", "subflow-end", "ne-lock", "pool-lock")}
    return {"mode": "campaign", "wall_s": wall, "cpu_s": cpu, "import_s": import_s,
            "threads_at_end": threading.active_count(),
            **ne_results(summary["nes"], clock.inside),
            "subflow_start_ms": spread_ms(spans["subflow-start"]),
            "subflow_end_ms": spread_ms(spans["subflow-end"]),
            "ne_lock_acquire_ms": spread_ms(spans["ne-lock"]),
            "pool_lock_acquire_ms": spread_ms(spans["pool-lock"]),
            "flow_start_s": round(min((s for _, _, s, _ in timeline), default=ended) - began, 3),
            "flow_end_s": round(ended - max((e for w, _, _, e in timeline if w == "subflow-end"), default=began), 3),
            "timeline": [(w, n, round(s - began, 3), round(e - began, 3)) for w, n, s, e in timeline]}


# --- baseline (no engine) ---------------------------------------------------------------

def run_baseline(cfg: dict[str, Any]) -> dict[str, Any]:
    from changeline.atoms import runner
    from changeline.atoms.base import AtomContext
    from changeline.devices.inventory import load_inventory
    from changeline.devices.session import DeviceSession, Endpoint
    from changeline.flows import stores
    from changeline.models.compile import compile_for_host, eligibility, load_model, plan_waves

    clock = StepClock()
    clock.install()
    cpu0, t0 = cpu_seconds(), time.monotonic()
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

    def one(host) -> dict[str, Any]:
        plan = compile_for_host(chosen[host.name], host, params)
        lock = pool_locks.get(host.pool) if host.pool else None
        with lock if lock else _nothing():
            ctx = AtomContext(host=host, session=DeviceSession(Endpoint.from_host(host)), journal=journal,
                              backups=backups, run_id=campaign_id, speed=float(host.data.get("time_scale", 1.0)),
                              baseline=journal.baseline(campaign_id, host.name), log=lambda _msg: None)
            out = {"ne": host.name, "status": "running", "reason": "", "steps": [], "started_at": time.time()}
            journal.set_ne_status(campaign_id, host.name, "running", "")
            try:
                for step in plan.steps:
                    ctx.step = step.name
                    journal.set_ne_status(campaign_id, host.name, "running", f"step {step.name}")
                    started = time.time()
                    result = runner.execute(step.atom, ctx, step.args).to_dict()
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
            return out

    for wave in plan_waves(models[0], eligible):
        with ThreadPoolExecutor(max_workers=max(1, min(cfg["concurrency"], len(wave.hosts))),
                                thread_name_prefix="ne") as pool:
            for host, future in [(h, pool.submit(one, h)) for h in wave.hosts]:
                outcomes[host.name] = future.result()
    wall, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    return {"mode": "baseline", "wall_s": wall, "cpu_s": cpu,
            "prefect_imported": "prefect" in sys.modules, **ne_results(outcomes, clock.inside)}


@contextmanager
def _nothing():
    yield


def main(argv: list[str]) -> int:
    cfg = json.loads(Path(argv[0]).read_text())
    result = run_campaign(cfg) if cfg["mode"] == "campaign" else run_baseline(cfg)
    partial = Path(cfg["out"] + ".partial")
    partial.write_text(json.dumps(result, indent=2))
    partial.replace(cfg["out"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
