"""The measured engine process of a campaign benchmark: `python -m bench.engine CONFIG.json`.

Mode `campaign` runs the changeline campaign flow (Prefect) the way `changeline run` does;
mode `baseline` runs the engine alone, with no Prefect: the same `Campaign` scheduler and
`run_plan` (changeline.engine) the flow wraps - same waves, pool turns, slots, window and
failure budget, anomaly policy and rollback, device sessions, journal and backup stores -
minus the Prefect processors, the server's locks and the artifacts.
Both write one JSON result to CONFIG's `out`; the parent samples this process's memory.

Both modes stamp, per NE, when a worker picked it, its waits (start turn, locks, pool peer,
slot), when its work (the step sequence) started and ended and when the worker was done with
it, so the result says where wall time went. The stamps are a processor (`Stamps`) the
Campaign calls at each milestone; each step's outcome carries the time inside its atom.

The campaign's environment (PREFECT_API_URL, PREFECT_HOME, CHANGELINE_HOME) is set by the
parent before this process starts, because Prefect reads its settings at import.
"""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from changeline.flows.ne_runs import step_runs_setting


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
    """Per-NE time stamps (time.time()) from any thread, and the waves as they start."""

    def __init__(self) -> None:
        self.ne: dict[str, dict[str, float]] = defaultdict(dict)
        self.waves: list[list[str]] = []

    def mark(self, ne: str, what: str, at: float | None = None) -> None:
        self.ne[ne][what] = time.time() if at is None else at

    # The Campaign scheduler's processor hooks (changeline.engine.campaign).
    def ne_milestone(self, ne: str, what: str) -> None:
        self.mark(ne, what)

    def wave_started(self, wave) -> None:
        self.waves.append(list(wave.names))

    def worked(self, outcomes: dict[str, dict[str, Any]]) -> None:
        """When each NE's step sequence started and ended, from its outcome."""
        for name, out in outcomes.items():
            if name in self.ne and out.get("started_at") and out.get("finished_at"):
                self.mark(name, "work_start", out["started_at"])
                self.mark(name, "work_end", out["finished_at"])

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
                if step.get("atom_s"):
                    step_gaps.append(max(0.0, step["duration_s"] - step["atom_s"]))
        spans: dict[str, list[float]] = defaultdict(list)
        work_by_type: dict[str, list[float]] = defaultdict(list)
        for name, t in self.ne.items():
            if "work_start" not in t or "done" not in t:
                continue
            first_lock = min((t[k] for k in ("turn_wait_start", "ne_lock_start") if k in t), default=t["work_start"])
            # After its pool peer, an NE takes its locks (the campaign) or its slot (the baseline has no server locks).
            after_peer = next((t[k] for k in ("ne_lock_start", "slot_wait_start") if k in t), None)
            if "start_turn" in t:
                spans["start_turn_wait"].append(t["start_turn"] - t["turn_wait_start"])
            # Campaign NEs get their run ready (call -> admitted), then wait for their turn: the pool
            # peer (admitted -> ne_lock_start), the locks, a working slot (the concurrency cap).
            ready = "admitted" if "admitted" in t else "work_start"
            if "admitted" in t and after_peer is not None:
                spans["pool_peer_wait"].append(after_peer - t["admitted"])
            if "slot" in t and "slot_free" in t:
                spans["in_slot_overhead"].append((t["slot_free"] - t["slot"]) - (t["work_end"] - t["work_start"]))
            for what, start, end in (("pool_lock", "pool_lock_start", "pool_lock_end"),
                                     ("ne_lock", "ne_lock_start", "ne_lock_end"),
                                     ("work_start", "call", ready), ("slot_wait", "slot_wait_start", "slot"),
                                     ("work_end", "work_end", "done")):
                if start in t and end in t:
                    spans[what].append(t[end] - t[start])
            waits = (t["slot"] - t["slot_wait_start"] if "slot" in t and "slot_wait_start" in t else 0.0) + \
                (after_peer - t["admitted"] if "admitted" in t and after_peer is not None else 0.0)
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

class ApiCalls(logging.Handler):
    """Counts the engine's HTTP requests to the Prefect API by method and path (ids elided).

    httpx logs every request it sent, with its response status, at INFO on its `httpx` logger
    (its documented logging); this handler counts those records. No Prefect or httpx code is
    replaced, and the count is of the requests on the wire: a retry Prefect's client makes
    after a 429 or 503 is a request of its own, a request that got no response is none."""

    IDS = re.compile(r"/[0-9a-f]{8}-[0-9a-f-]{27,}")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: dict[str, int] = defaultdict(int)
        self.status: dict[int, int] = defaultdict(int)
        self.by_path_status: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def install(self) -> None:
        httpx_log = logging.getLogger("httpx")
        self._level = httpx_log.level
        httpx_log.setLevel(logging.INFO)
        httpx_log.addHandler(self)
        httpx_log.propagate = False  # counted, not printed: a line per request would drown the engine's log

    def uninstall(self) -> None:
        httpx_log = logging.getLogger("httpx")
        httpx_log.removeHandler(self)
        httpx_log.setLevel(self._level)
        httpx_log.propagate = True

    def emit(self, record: logging.LogRecord) -> None:
        # 'HTTP Request: %s %s "%s %d %s"' - method, URL, HTTP version, status, reason (httpx 0.24+)
        if not record.msg.startswith("HTTP Request:") or len(record.args) != 5:
            return
        method, url, _version, status, _reason = record.args
        what = f"{method} {self.IDS.sub('/{id}', urlsplit(str(url)).path)}"
        self.counts[what] += 1
        self.status[int(status)] += 1
        self.by_path_status[what][int(status)] += 1

    def summary(self, nes: int) -> dict[str, Any]:
        total = sum(self.counts.values())
        # A path's answers other than 2xx (503: the server's database busy, retried by Prefect's
        # client; 423: a limit held) say where requests beyond one per call come from.
        refused = {what: {str(code): n for code, n in sorted(codes.items()) if code >= 300}
                   for what, codes in self.by_path_status.items()}
        return {"total": total, "per_ne": round(total / max(nes, 1), 1), "by_status": dict(self.status),
                "top": dict(sorted(self.counts.items(), key=lambda kv: -kv[1])[:15]),
                "not_2xx_by_path": {what: codes for what, codes in sorted(refused.items()) if codes}}


def _thread_names() -> dict[str, int]:
    """Live threads by name with digits dropped (what is still running when the campaign ends)."""
    names: dict[str, int] = defaultdict(int)
    for thread in threading.enumerate():
        names[re.sub(r"\d+", "N", thread.name)] += 1
    return dict(sorted(names.items(), key=lambda kv: -kv[1]))


def run_campaign(cfg: dict[str, Any]) -> dict[str, Any]:
    t_import = time.perf_counter()
    from prefect import flow

    from changeline.flows.campaign import run_campaign as campaign_body
    import_s = time.perf_counter() - t_import

    stamps = Stamps()
    calls = ApiCalls()
    calls.install()

    # The campaign flow's own body, with the stamps as one more processor of its Campaign.
    @flow(name="campaign", flow_run_name="{campaign_id}", persist_result=False)
    def stamped_campaign(models: list[str], inventory: str, campaign_id: str, params: dict, concurrency_cap: int):
        return campaign_body(models, inventory, campaign_id=campaign_id, params=params,
                             concurrency_cap=concurrency_cap, processors=[stamps])

    cpu0, t0, began = cpu_seconds(), time.monotonic(), time.time()
    summary = stamped_campaign(models=cfg["models"], inventory=cfg["inventory"], campaign_id=cfg["campaign_id"],
                               params={"image_repo": cfg["image_repo"]}, concurrency_cap=cfg["concurrency"])
    wall, cpu, ended = time.monotonic() - t0, cpu_seconds() - cpu0, time.time()
    stamps.worked(summary["nes"])
    return {"mode": "campaign", "wall_s": wall, "cpu_s": cpu, "import_s": import_s,
            "threads_at_end": threading.active_count(),
            "threads_at_end_by_name": _thread_names(),
            "subflows": sum(1 for t in stamps.ne.values() if "call" in t),  # NE runs called, flow or task
            "ne_flow_runs": sum(1 for t in stamps.ne.values() if "flow-run" in t),
            "waves": len(stamps.waves),  # the campaign records one task run per wave
            "step_runs": step_runs_setting(),
            "stage_runs": _stage_runs(cfg["models"], summary["nes"]) if step_runs_setting() == "stage" else None,
            **stamps.analyse(summary["nes"], began, ended),
            "api_requests": calls.summary(len(summary["nes"])),
            "stamps": {ne: {k: round(v - began, 3) for k, v in t.items()} for ne, t in stamps.ne.items()}}


def _stage_runs(models: list[str], outcomes: dict[str, dict[str, Any]]) -> int:
    """Task runs the steps made with `step_runs: stage`: one per run of consecutive steps of one
    stage (the engine wraps them so), a new one after each accepted anomaly."""
    from changeline.models.compile import load_model

    stage_of: dict[tuple[str, str], str] = {}
    for path in models:
        model = load_model(path)
        for kind in model.ne_types:
            for stage in model.stages:
                for step in stage.steps:
                    stage_of[(kind, step.name)] = step.stage
    runs = 0
    for out in outcomes.values():
        previous, accepted = None, {a["step"] for a in out.get("anomalies", []) if a.get("policy") == "continue"}
        for step in out.get("steps", []):
            if step["status"] == "skipped":
                continue
            stage = stage_of[(out["ne_type"], step["name"])]
            runs += stage != previous
            previous = None if step["name"] in accepted else stage
    return runs


# --- baseline (the engine without Prefect) ------------------------------------------------

def run_baseline(cfg: dict[str, Any]) -> dict[str, Any]:
    from changeline.devices.inventory import load_inventory
    from changeline.engine.campaign import Campaign, prepare, untouched
    from changeline.engine.run import NeRun, run_plan
    from changeline.flows import stores
    from changeline.models.compile import load_model

    stamps = Stamps()
    cpu0, t0, began = cpu_seconds(), time.monotonic(), time.time()
    campaign_id = cfg["campaign_id"]
    models = [load_model(m) for m in cfg["models"]]
    journal, backups = stores.journal(), stores.backups()
    prepared = prepare(campaign_id, models, load_inventory(cfg["inventory"]), targets="all", inventory=cfg["inventory"],
                       params={"image_repo": cfg["image_repo"]}, on_anomaly=None, journal=journal,
                       earlier_outcome=lambda host, earlier: untouched(host, *earlier))

    def launch(host, wave, admission) -> dict[str, Any]:
        run = NeRun(host=host, campaign_id=campaign_id, journal=journal, backups=backups,
                    evidence_dir=stores.evidence_dir(campaign_id, host.name), log=lambda _msg: None,
                    admission=admission)
        return run_plan(admission.plan, run).to_dict()

    # No server to protect from a burst of starts: every slot may start at once.
    scheduler = Campaign(campaign_id, prepared, cap=cfg["concurrency"], breached=models[0].campaign.breached,
                         journal=journal, starts_at_once=cfg["concurrency"], processors=[stamps])
    outcomes = scheduler.run(launch)
    wall, cpu, ended = time.monotonic() - t0, cpu_seconds() - cpu0, time.time()
    stamps.worked(outcomes)
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
