"""One-click rollback: restore NEs of a campaign (or named NEs) from journal and backups.

An operator starts the `rollback` deployment from the Prefect UI with a campaign id
and/or NE names; a Prefect automation may start it on an anomaly event. Each NE's
journaled steps are undone newest first, then the NE is restored to its backup and
verified (version, config byte-identical, dial tests).
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from changeline.atoms import runner
from changeline.devices.inventory import load_inventory
from changeline.errors import ChangelineError
from changeline.flows import policy, stores
from changeline.flows.locks import NeLocks, lock_names
from changeline.flows.ne_flow import make_context


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="rollback-{ne}")
def rollback_ne(ne: str, inventory: str, campaign_id: str, verify_scenarios: list[str]) -> dict[str, Any]:
    host = load_inventory(inventory).hosts.get(ne)
    if host is None:
        raise ChangelineError(f"NE {ne} is not in {inventory}")
    ctx = make_context(host, campaign_id, get_run_logger().info)
    try:
        undone = [r.to_dict() for r in runner.undo_run(ctx)]
        verified = runner.execute("rollback", ctx, {"verify_scenarios": verify_scenarios})
    finally:
        ctx.session.close()
    journal = stores.journal()
    before = journal.ne_statuses(campaign_id).get(ne)
    was = f" (was {before[0]}: {before[1]})" if before and before[1] else (f" (was {before[0]})" if before else "")
    journal.set_ne_status(campaign_id, ne, policy.ROLLED_BACK, f"rolled back by operator request{was}")
    return {"ne": ne, "undone": undone, "verified": verified.to_dict()}


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
             lock_wait_s: float = 120.0) -> dict[str, Any]:
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
    if not nes:
        # Every NE the campaign targeted is listed, the ones it never changed with why.
        results.update(untouched_nes(campaign_id, {ne for ne, _ in targets}))
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
    failed = [ne for ne, r in results.items() if r["status"] == policy.ROLLBACK_FAILED]
    if failed:
        raise ChangelineError(f"rollback failed on {', '.join(failed)}: "
                              + "; ".join(str(results[ne].get("reason")) for ne in failed))
    return results
