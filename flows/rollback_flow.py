"""One-click rollback: restore NEs of a campaign (or named NEs) from journal and backups.

An operator starts the `rollback` deployment from the Prefect UI with a campaign id
and/or NE names; a Prefect automation may start it on an anomaly event. Each NE's
journaled steps are undone newest first, then the NE is restored to its backup and
verified (version, config byte-identical, dial tests): the engine's one undo-and-verify
(changeline.engine.run.undo_and_verify), as the campaign's automatic rollback runs it.
"""

from __future__ import annotations

import contextvars
import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, Failed

from changeline.devices.inventory import load_inventory
from changeline.engine.campaign import lock_names
from changeline.engine.run import undo_and_verify
from changeline.errors import ChangelineError
from changeline.engine import policy
from changeline.flows import progress, stores
from changeline.flows.locks import NeLocks
from changeline.flows.ne_flow import ne_run


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="rollback-{ne}")
def rollback_ne(ne: str, inventory: str, campaign_id: str, verify_scenarios: list[str]) -> dict[str, Any]:
    host = load_inventory(inventory).hosts.get(ne)
    if host is None:
        raise ChangelineError(f"NE {ne} is not in {inventory}")
    journal = stores.journal()
    # What an earlier rollback (e.g. the campaign's automatic one) already undid, for the record.
    before = {e.id: e.step for e in reversed(journal.entries(campaign_id, ne)) if e.status == "undone"}
    ctx = ne_run(host, campaign_id).context()
    try:
        done = undo_and_verify(ctx, {"verify_scenarios": verify_scenarios})
    finally:
        ctx.session.close()
    undone = [{"step": e.step, "atom": e.atom, "reason": (e.undo_result or {}).get("reason", "")}
              for e in reversed(journal.entries(campaign_id, ne)) if e.status == "undone" and e.id not in before]
    status = journal.ne_statuses(campaign_id).get(ne)
    was = f" (was {status[0]}: {status[1]})" if status and status[1] else (f" (was {status[0]})" if status else "")
    journal.set_ne_status(campaign_id, ne, policy.ROLLED_BACK, f"rolled back by operator request{was}")
    return {"ne": ne, "campaign_id": campaign_id, "undone": undone, "undone_before": list(before.values()),
            "verified": done["verified"]}


def untouched_nes(campaign_id: str, touched: set[str]) -> dict[str, dict[str, Any]]:
    """The campaign's targeted NEs it never changed (nothing to roll back), each with its status
    and why: the journal's word for it, or that the campaign never reached its wave."""
    journal = stores.journal()
    statuses = journal.ne_statuses(campaign_id)
    plan = journal.plan_of(campaign_id) or {}
    wave_of = {ne: w["name"] for w in plan.get("waves") or [] for ne in w["nes"]}
    out = {}
    for ne in [*(plan.get("targets") or []), *statuses]:
        if ne in touched or ne in out:
            continue
        status, reason = statuses.get(ne) or (policy.SKIPPED, f"not started: the campaign's run ended before "
                                                              f"wave {wave_of.get(ne, '?')}")
        out[ne] = {"status": status, "reason": f"{reason}; not changed by the campaign, nothing to roll back"}
    return out


def latest_campaign_of(ne: str) -> str | None:
    runs = stores.journal().runs_for(ne)
    return runs[-1] if runs else None


@flow(name="rollback", flow_run_name="rollback-{campaign_id}", persist_result=False)
def rollback(inventory: str, campaign_id: str = "", nes: list[str] | None = None,
             verify_scenarios: list[str] | None = None, concurrency_cap: int = 10,
             lock_wait_s: float = 120.0):
    """Roll back every NE a campaign touched, or only `nes` (each from its latest campaign if none given)."""
    journal = stores.journal()
    if not campaign_id and not nes:
        raise ChangelineError("rollback needs a campaign_id or NE names")
    targets: list[tuple[str, str]] = []
    if nes:
        for ne in nes:
            cid = campaign_id or latest_campaign_of(ne)
            if not cid:
                raise ChangelineError(f"no campaign in the journal touched {ne}")
            targets.append((ne, cid))
    else:
        touched = {e.ne for e in journal.entries(campaign_id)}
        if not touched:
            raise ChangelineError(f"campaign {campaign_id} changed no NE (nothing in the journal)")
        targets = [(ne, campaign_id) for ne in sorted(touched)]
    results: dict[str, Any] = {}
    hosts = load_inventory(inventory).hosts
    unknown = [ne for ne, _ in targets if ne not in hosts]
    if unknown:
        raise ChangelineError(f"not in {inventory}: {', '.join(unknown)}")

    def one(ne: str, cid: str) -> dict[str, Any]:
        # The same locks a campaign takes: a rollback never runs beside a run still changing the
        # NE (e.g. one paused on its anomaly form) or a member of its pool.
        try:
            with locks.hold(lock_names(hosts[ne]), wait_s=lock_wait_s):
                state = rollback_ne(ne, inventory, cid, verify_scenarios or [], return_state=True)
        except TimeoutError:
            pool = f" or its pool {hosts[ne].pool}" if hosts[ne].pool else ""
            return {"status": policy.ROLLBACK_FAILED,
                    "reason": f"{ne}: another run holds {ne}{pool} (waited {lock_wait_s:.0f} s); not touched - "
                              "answer that run's pause form or cancel it, then roll back"}
        if state.is_completed():
            return {"status": policy.ROLLED_BACK, **state.result()}
        err = state.result(raise_on_failure=False)
        return {"status": policy.ROLLBACK_FAILED, "reason": getattr(err, "reason", str(err))}

    with NeLocks(lease_s=policy.LOCK_LEASE_S) as locks, \
            ThreadPoolExecutor(max_workers=max(1, min(concurrency_cap, len(targets)))) as pool:
        locks.ensure(sorted({name for ne, _ in targets for name in lock_names(hosts[ne])}))
        futures = {ne: pool.submit(contextvars.copy_context().run, one, ne, cid) for ne, cid in targets}
        for ne, fut in futures.items():
            results[ne] = fut.result()
    message = rollback_message(results)
    # Every NE the campaign targeted is listed: the ones it never changed with why.
    untouched = untouched_nes(campaign_id, set(results)) if not nes else {}
    if untouched:
        message += f" | not changed, nothing to roll back: {', '.join(untouched)}"
    run_name = _run_name()
    markdown = rollback_markdown(results, message)
    if untouched:
        markdown += "\n".join(["", "## Not changed by the campaign", "", "| NE | status | reason |", "|---|---|---|",
                               *(f"| {ne} | {u['status']} | {u['reason'].replace('|', '/')} |"
                                 for ne, u in untouched.items())]) + "\n"
    create_markdown_artifact(markdown=markdown, key=artifact_key(run_name), description=message)
    for cid in sorted({cid for _, cid in targets}):
        _update_campaign(cid, {ne: results[ne] for ne, c in targets if c == cid}, run_name, message)
    failed = [ne for ne, r in results.items() if r["status"] != policy.ROLLED_BACK]
    get_run_logger().info("%s", message)
    if failed:  # a direct call raises this; a run ends "Rollback failed" with the message
        return Failed(name="Rollback failed", message=message, data=ChangelineError(message))
    return Completed(name="Rolled back", message=message, data={**untouched, **results})


def verification(result: dict[str, Any]) -> list[str]:
    """What the rollback atom proved on the NE, one line each."""
    evidence = (result.get("verified") or {}).get("evidence") or {}
    lines = []
    if evidence.get("running_version"):
        lines.append(f"running version {evidence['running_version']} (read from the NE), as in backup "
                     f"{evidence.get('backup_id', '?')}")
    if evidence.get("config_identical"):
        lines.append("running config byte-identical to the backup")
    for scenario, res in (evidence.get("dial_tests") or {}).items():
        lines.append(f"dial test {scenario}: {'passed' if res.get('passed') else 'FAILED'} {res.get('reason', '')}".strip())
    return lines


def rollback_message(results: dict[str, dict[str, Any]]) -> str:
    """The rollback run's state message: per NE what was undone and verified (or why not)."""
    parts = []
    for ne, r in results.items():
        if r["status"] != policy.ROLLED_BACK:
            parts.append(f"{ne}: ROLLBACK FAILED: {r.get('reason', '')}")
            continue
        now = [u["step"] for u in r.get("undone") or []]
        undone = f"undid {', '.join(now)}" if now else "nothing left to undo"
        if r.get("undone_before"):
            undone += f" ({', '.join(r['undone_before'])} undone earlier)"
        proved = "; ".join(verification(r)) or "restored from backup"
        parts.append(f"{ne}: {undone}; verified: {proved}")
    return " | ".join(parts)


def rollback_markdown(results: dict[str, dict[str, Any]], message: str) -> str:
    lines = ["# Rollback", "", f"**{message}**", ""]
    for ne, r in results.items():
        lines += [f"## {ne}: {r['status']}", ""]
        if r["status"] != policy.ROLLED_BACK:
            lines += [f"Reason: {r.get('reason', '')}", ""]
            continue
        lines += ["| undone step | atom | result |", "|---|---|---|"]
        for u in r.get("undone") or []:
            lines.append(f"| {u['step']} | {u.get('atom', '')} | {str(u.get('reason', '')).replace('|', '/')} |")
        for step in r.get("undone_before") or []:
            lines.append(f"| {step} | | undone earlier (the campaign's automatic rollback) |")
        lines += ["", "### Verification", ""] + [f"- {line}" for line in verification(r)] + [""]
    return "\n".join(lines)


def _run_name() -> str:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return ctx.flow_run.name if ctx else "rollback"


def artifact_key(run_name: str) -> str:
    """`rollback-<campaign>` for a run named after its campaign: a key's versions are then that
    campaign's rollbacks, newest first (artifact keys: lowercase letters, digits and '-')."""
    slug = re.sub(r"[^a-z0-9-]+", "-", run_name.lower()).strip("-").removeprefix("rollback-")
    return f"rollback-{slug}"[:120]


def _update_campaign(campaign_id: str, results: dict[str, dict[str, Any]], run_name: str, message: str) -> None:
    """The campaign's summary (file and artifact, in place) and its report say what this run did."""
    path = stores.evidence_dir(campaign_id) / "summary.json"
    if not path.is_file():
        return
    summary = json.loads(path.read_text())
    for ne, r in results.items():
        if ne in summary["nes"] and r["status"] == policy.ROLLED_BACK:
            out = summary["nes"][ne]
            before = out.get("reason", "")
            out["reason"] = (f"{before}; verified again by {run_name}" if out["status"] == policy.ROLLED_BACK
                             else f"rolled back by {run_name} (was {out['status']}: {before})")
            out["status"] = policy.ROLLED_BACK
    counts: dict[str, int] = {}
    for out in summary["nes"].values():
        counts[out["status"]] = counts.get(out["status"], 0) + 1
    summary["counts"] = counts
    summary["all_reached_target"] = False
    summary["message"] = progress.outcome_message(summary["nes"].values())
    summary.setdefault("rollbacks", []).append(
        {"run": run_name, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "message": message})
    progress.write_summary(summary)
    key = progress.artifact_key(campaign_id, "summary")
    links = progress.Links(campaign_id, summary.get("inventory") or "")
    progress.update_latest_markdown(key, progress.summary_markdown(summary, links),
                                    f"Campaign {campaign_id}: {summary['message']} (after {run_name})")
    if (path.parent / "report").is_dir():
        from changeline.reports.build import build_campaign_report

        build_campaign_report(campaign_id)
