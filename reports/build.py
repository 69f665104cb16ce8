"""A campaign's evidence report, rebuilt at any time from what the run stored.

    paths = build_campaign_report("c-20261128-0200")     # -> ReportPaths(html, json, evidence_dir)

reads `runs/<id>/summary.json`, each NE's `outcome.json`, the journal and the backup
store under CHANGELINE_HOME, and writes (default `runs/<id>/report/`):

- `report.html`: one self-contained page (inline CSS and SVG, no scripts, nothing fetched);
- `report.json`: the same data, figures included;
- `evidence/<ne>/`: the per-NE evidence pack (see `changeline.reports.evidence`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from jinja2 import Environment, PackageLoader, StrictUndefined

from changeline.engine import policy
from changeline.reports import figures
from changeline.reports.evidence import config_diff, safe_name, write_pack
from changeline.reports.records import RunRecords, epoch, load_run
from changeline.reports.redact import redact
from changeline.reports.timeline import Timeline, layout, timeline

REPORT_FORMAT = 1
NOT_CHANGED = (policy.DEFERRED, policy.SKIPPED, policy.INELIGIBLE)
# States in the order an operator reads them: what went wrong first.
STATE_ORDER = (policy.ROLLBACK_FAILED, policy.FAILED, policy.ROLLED_BACK, policy.DONE, policy.DEFERRED,
               policy.SKIPPED, policy.INELIGIBLE)
# Only these of a campaign's start arguments go into a report: model parameters may be anything.
SHOWN_ARGS = ("model", "inventory", "targets", "on_anomaly", "window_end", "concurrency_cap", "pause_timeout_s")


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    json: Path
    evidence_dir: Path


def build_campaign_report(campaign_id: str, *, out_dir: Path | None = None,
                          probes: dict | None = None) -> ReportPaths:
    """Write the HTML and JSON report and the evidence packs; InputError for an unknown campaign.

    `probes` is `{"pools": {name: {"attempted": n, "failed": n}}}` as the caller measured it
    over the run; it is kept as `runs/<id>/probes.json` so a later rebuild shows it too.
    """
    run = load_run(campaign_id, probes=probes)
    data = campaign_report(run)    # checks the probes before anything is written
    if probes is not None:
        _write_atomic(run.run_dir / "probes.json", json.dumps(probes, indent=2) + "\n")
    out = Path(out_dir) if out_dir is not None else run.run_dir / "report"
    evidence_dir = out / "evidence"
    pools = (data["figures"]["disruption"].get("pools") or {})
    for outcome, entry in zip(run.outcomes, data["nes"]):
        folder = evidence_dir / safe_name(outcome["ne"])
        pool = entry.get("pool")
        probe = {"pool": pool, **pools[pool]} if pool in pools else None
        files = write_pack(folder, outcome, entry, run.journals[outcome["ne"]], run.configs(outcome["ne"]), probe)
        entry["evidence"] = {"dir": f"evidence/{folder.name}", "files": [f["file"] for f in files]}
    data = redact(data)
    json_path, html_path = out / "report.json", out / "report.html"
    _write_atomic(json_path, json.dumps(data, indent=2, default=str) + "\n")
    _write_atomic(html_path, render_html(data))
    return ReportPaths(html_path, json_path, evidence_dir)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- the report's data ----------------------------------------------------------------

def campaign_report(run: RunRecords) -> dict[str, Any]:
    """Everything the report shows, as JSON-ready data (the HTML is rendered from it)."""
    outcomes = run.outcomes
    tl = timeline(outcomes, run.started_at, epoch(window_end(run)))
    origin = tl.origin or 0.0
    nes = [ne_entry(o, run, origin) for o in outcomes]
    disruption = figures.disruption(run.probes)
    return {
        "format": REPORT_FORMAT,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "campaign": campaign_facts(run, origin),
        "counts": figures.counts_by_state(outcomes, STATE_ORDER),
        "figures": {
            "automation": figures.automation(outcomes).to_dict(),
            "effort": figures.effort(outcomes).to_dict(),
            "disruption": {**disruption.to_dict(), "text": disruption.text},
            "service_checks": figures.service_checks(outcomes).to_dict(),
        },
        "timeline": tl.to_dict(),
        "anomalies": [anomaly_entry(ne, a) for ne in nes for a in ne["anomalies"]],
        "rollbacks": [rollback_entry(ne) for ne in nes
                      if ne["rollback"] or ne["status"] in (policy.ROLLED_BACK, policy.ROLLBACK_FAILED)],
        "not_changed": [{k: ne[k] for k in ("ne", "ne_type", "status", "reason")}
                        for ne in nes if ne["status"] in NOT_CHANGED],
        "nes": nes,
    }


def window_end(run: RunRecords) -> str | None:
    return (run.summary or {}).get("window_end") or (run.args or {}).get("window_end")


def campaign_facts(run: RunRecords, origin: float) -> dict[str, Any]:
    summary, args = run.summary or {}, run.args or {}
    model = summary.get("model") or Path(str(args.get("model") or "")).stem
    started = summary.get("started_at") or (_iso(origin) if origin else None)
    finished = summary.get("finished_at")
    ended = max((o.get("finished_at") or 0.0 for o in run.outcomes), default=0.0)
    duration = (epoch(finished) or ended or origin) - origin if origin else None
    window = window_end(run)
    return {
        "id": run.campaign_id,
        "model": model,
        "model_version": summary.get("model_version", ""),
        "models": summary.get("models") or ([{"name": model, "version": summary.get("model_version", "")}]
                                            if model else []),
        "started_at": started,
        "finished_at": finished,
        "finished": run.summary is not None,
        "duration_s": round(duration, 1) if duration is not None else None,
        "window_end": window,
        "window_s": round(epoch(window) - origin, 1) if origin and epoch(window) else None,
        "stop_reason": summary.get("stop_reason"),
        "all_reached_target": summary.get("all_reached_target"),
        "ne_count": len(run.outcomes),
        "args": {k: args[k] for k in SHOWN_ARGS if args.get(k) not in (None, "")},
        "journal": str(run.journal_path),
    }


def ne_entry(outcome: dict[str, Any], run: RunRecords, origin: float) -> dict[str, Any]:
    """One NE's outcome as stored, plus what the report derives from it: step offsets, dial
    tests and billing checks gathered, its pool, its configs' fingerprints and diff."""
    started, finished = outcome["started_at"], outcome["finished_at"]
    configs = run.configs(outcome["ne"])
    steps = [{**s, "start_s": round(s["started_at"] - origin, 3) if s["started_at"] and origin else None}
             for s in outcome["steps"]]
    return {
        **outcome,
        "steps": steps,
        "rollback": rollback_shown(outcome["rollback"]),
        "duration_s": round(finished - started, 3) if started and finished else None,
        "dial_tests": dial_tests(outcome),
        "billing": billing_checks(outcome),
        "pool": ne_pool(outcome),
        "config": {
            "backup_id": configs.backup.id if configs.backup else run.journals[outcome["ne"]].baseline.get("backup_id"),
            "before_sha256": configs.backup.running_sha256 if configs.backup else None,
            "after_sha256": configs.after_sha256,
            "before_after_diff": config_diff(configs),
            "problems": configs.problems,
        },
    }


def rollback_shown(rollback: Mapping[str, Any]) -> dict[str, Any]:
    """The NE's rollback with every key the page reads: an undo record or a verification may
    carry only a reason (an undo with nothing to undo, a rollback that failed before verifying)."""
    if not rollback:
        return {}
    verified = rollback.get("verified") or {}
    return {**rollback,
            "undone": [{"atom": "", "changed": False, "reason": "", "diff": "", **u} for u in rollback.get("undone") or []],
            "verified": {"reason": "", "diff": "", "evidence": {}, **verified} if verified else {}}


def anomaly_entry(ne: Mapping[str, Any], anomaly: Mapping[str, Any]) -> dict[str, Any]:
    """An anomaly with the decision taken on it (an operator's, a timed-out form's, or none: the policy acted)."""
    decision = next((d for d in ne["decisions"] if d.get("step") == anomaly.get("step")), None)
    return {"ne": ne["ne"], "ne_status": ne["status"], **anomaly, "decision": decision}


def dial_tests(outcome: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each dial-test run of the NE: scenarios with pass/fail, before or after the change,
    and the verification after a rollback."""
    runs = []
    for step in outcome["steps"]:
        results = (step.get("evidence") or {}).get("results")
        if step.get("atom") != "dial_test" or not isinstance(results, Mapping):
            continue
        phase = "baseline (before the change)" if step["evidence"].get("baseline") else "check"
        runs.append({"step": step["name"], "phase": phase, "status": step["status"], "reason": step["reason"],
                     "scenarios": [_scenario(name, r) for name, r in results.items()]})
    verified = (outcome.get("rollback") or {}).get("verified") or {}
    after_rollback = (verified.get("evidence") or {}).get("dial_tests") or {}
    if after_rollback:
        runs.append({"step": "rollback", "phase": "after rollback", "status": "done", "reason": verified.get("reason", ""),
                     "scenarios": [_scenario(name, r) for name, r in after_rollback.items()]})
    return runs


def _scenario(name: str, result: Any) -> dict[str, Any]:
    result = result if isinstance(result, Mapping) else {}
    return {"scenario": result.get("scenario") or name, "passed": bool(result.get("passed")),
            "attempts": result.get("attempts"), "successes": result.get("successes"),
            "latency_ms": figures.measured_latency(result), "reason": result.get("reason", ""),
            "charging_ids": list(result.get("charging_ids") or [])}


def billing_checks(outcome: Mapping[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for step in outcome["steps"]:
        if step.get("atom") != "billing_check" or step["status"] not in figures.EXECUTED:
            continue
        evidence = step.get("evidence") or {}
        expected = list(evidence.get("expected") or [])
        records = list(evidence.get("records") or [])
        found = {r.get("charging_id") for r in records if isinstance(r, Mapping)}
        checks.append({"step": step["name"], "status": step["status"], "reason": step["reason"],
                       "expected": expected, "missing": [c for c in expected if c not in found], "records": records})
    return checks


def ne_pool(outcome: Mapping[str, Any]) -> str | None:
    """The traffic pool the NE reported (precheck records the NE's state)."""
    for step in outcome["steps"]:
        pool = (step.get("evidence") or {}).get("pool")
        if isinstance(pool, str) and pool:
            return pool
    return None


def rollback_entry(ne: Mapping[str, Any]) -> dict[str, Any]:
    rollback = ne["rollback"] or {}
    verified = rollback.get("verified") or {}
    later = ne.get("status_at_run_end")
    return {
        "ne": ne["ne"], "status": ne["status"],
        "during_run": bool(rollback),
        "ok": rollback.get("ok") if rollback else ne["status"] == policy.ROLLED_BACK,
        "reason": (verified.get("reason") if rollback.get("ok") else rollback.get("reason")) if rollback else ne["reason"],
        "undone": [{"atom": u.get("atom", ""), "changed": u.get("changed", False), "reason": u.get("reason", "")}
                   for u in rollback.get("undone") or []],
        "backup_id": (verified.get("evidence") or {}).get("backup_id"),
        "after_run": later is not None,
        "gate_to_rollback_s": figures.gate_to_rollback_s(ne),
    }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


# --- HTML -------------------------------------------------------------------------------

def _seconds(value: Any) -> str:
    if value is None or value == "":
        return "-"
    s = float(value)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def _percent(value: Any) -> str:
    """One decimal, more when rounding would show a share short of all as 100%."""
    if value is None:
        return "-"
    pct = 100.0 * float(value)
    for digits in (1, 2, 3):
        text = f"{pct:.{digits}f}"
        if pct >= 100.0 or float(text) < 100.0:
            return f"{text}%"
    return f"{math.floor(pct * 1e4) / 1e4:.4f}%"


def _diff_lines(text: str) -> list[tuple[str, str]]:
    """(css class, line) for a unified diff."""
    out = []
    for line in (text or "").splitlines():
        if line.startswith(("+++", "---")):
            css = "dh"
        elif line.startswith("@@"):
            css = "dk"
        elif line.startswith("+"):
            css = "da"
        elif line.startswith("-"):
            css = "dd"
        else:
            css = "dc"
        out.append((css, line))
    return out


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("changeline.reports", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(seconds=_seconds, percent=_percent, diff_lines=_diff_lines, safe_id=safe_name,
                       tojson_pretty=lambda v: json.dumps(v, indent=2, default=str))
    return env


def render_html(data: dict[str, Any]) -> str:
    """The report page from the report's data (as written to report.json)."""
    gantt = layout(Timeline.from_dict(data["timeline"]))
    return _environment().get_template("campaign.html.j2").render(r=data, gantt=gantt)
