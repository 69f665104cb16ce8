"""The campaign flow: many NEs, in waves, under a concurrency cap, inside a change window.

Composition only: which NEs, in which wave, whether the window still fits one, whether
the failure budget is spent - all pure decisions (flows.policy, models.compile); the
NE work is the per-NE flow. Two campaigns never touch one NE at once: each NE run
holds a Prefect global concurrency slot named after the NE (strict, so a missing
limit is an error rather than a silent no-lock).
"""

from __future__ import annotations

import contextvars
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from prefect import flow, get_run_logger
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext

from changeline.devices.inventory import load_inventory
from changeline.errors import ChangelineError
from changeline.flows import policy, progress, stores
from changeline.flows.ne_flow import NEOutcome, execute_plan, rollback_settings, time_scale


def ne_lock_name(ne: str) -> str:
    return f"changeline-ne-{ne}"


def ensure_ne_limits(names: list[str]) -> None:
    """One global concurrency limit of 1 per NE (created once, kept)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        existing = {lim.name for lim in client.read_global_concurrency_limits(limit=10_000)}
        for name in names:
            if ne_lock_name(name) in existing:
                continue
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=ne_lock_name(name), limit=1))
            except ObjectAlreadyExists:
                pass


@flow(name="campaign", flow_run_name="{campaign_id}", persist_result=False)
def campaign(model: str, inventory: str, targets: str = "all", campaign_id: str = "",
             params: dict[str, Any] | None = None, on_anomaly: str | None = None,
             window_minutes: float | None = None, window_end: datetime | None = None,
             concurrency_cap: int | None = None, pause_timeout_s: int = 3600,
             lock_wait_s: float = 30.0) -> dict[str, Any]:
    """Run a model over the selected NEs. Re-running with the same campaign_id resumes it."""
    from changeline.models.compile import compile_for_host, eligibility, load_model, plan_waves

    logger = get_run_logger()
    started = datetime.now(timezone.utc)
    campaign_id = campaign_id or f"c-{started:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    if window_end is None:
        window_end = policy.window_end_from(started, window_minutes)
    model_obj = load_model(model)
    inv = load_inventory(inventory)
    hosts = inv.select(targets)
    if not hosts:
        raise ChangelineError(f"selector '{targets}' matches no NE in {inventory}")
    journal = stores.journal()
    journal.record_campaign(campaign_id, {
        "model": model, "inventory": inventory, "targets": targets, "params": params or {},
        "on_anomaly": on_anomaly, "window_end": window_end.isoformat() if window_end else None,
        "concurrency_cap": concurrency_cap, "pause_timeout_s": pause_timeout_s})
    previous = journal.ne_statuses(campaign_id)
    outcomes: dict[str, dict[str, Any]] = {}
    eligible = []
    for host in hosts:
        earlier = previous.get(host.name)
        if earlier and earlier[0] in (policy.DONE, policy.ROLLED_BACK):
            outcomes[host.name] = {"ne": host.name, "ne_type": host.ne_type, "status": earlier[0],
                                   "reason": f"{earlier[1]} (earlier run of this campaign)", "resumed": True}
            continue
        # An NE this campaign already touched is resumed even if it no longer looks eligible
        # (e.g. it is already on the target version after a crash mid-activation).
        why_not = None if earlier else eligibility(model_obj, host)
        if why_not:
            outcomes[host.name] = {"ne": host.name, "ne_type": host.ne_type, "status": policy.INELIGIBLE,
                                   "reason": why_not}
            journal.set_ne_status(campaign_id, host.name, policy.INELIGIBLE, why_not)
        else:
            eligible.append(host)
    waves = plan_waves(model_obj, eligible)
    cap = concurrency_cap or getattr(model_obj.campaign, "concurrency", None) or 10
    board = progress.Board(campaign_id, [h.name for h in hosts], outcomes)
    board.publish()
    if eligible:
        ensure_ne_limits([h.name for h in eligible])
    verify, restart_timeout = rollback_settings(model_obj)
    stop_reason: str | None = None
    attempted = failures = 0
    for wave in waves:
        if stop_reason:
            for host in wave.hosts:
                outcomes[host.name] = _untouched(host, policy.SKIPPED, f"not started: {stop_reason}")
                journal.set_ne_status(campaign_id, host.name, policy.SKIPPED, stop_reason)
            board.update(outcomes)
            continue
        logger.info("wave %s: %d NE(s), concurrency %d", wave.name, len(wave.hosts), cap)

        def one(host):
            plan = compile_for_host(model_obj, host, params or {})
            fit = policy.window_fit(now=datetime.now(timezone.utc), window_end=window_end,
                                    estimate_s=plan.total_estimate_s, rollback_s=plan.rollback_estimate_s,
                                    scale=time_scale(host))
            if not fit.fits:
                journal.set_ne_status(campaign_id, host.name, policy.DEFERRED, fit.reason)
                return _untouched(host, policy.DEFERRED, f"deferred to the next window: {fit.reason}")
            try:
                with concurrency(ne_lock_name(host.name), occupy=1, strict=True, timeout_seconds=lock_wait_s,
                                 lease_duration=60):
                    board.running(host.name)
                    return _run_ne(plan, host, campaign_id, on_anomaly, pause_timeout_s, verify, restart_timeout)
            except TimeoutError:
                return _untouched(host, policy.SKIPPED,
                                  f"another run holds {host.name} (waited {lock_wait_s:.0f} s); not touched")

        with ThreadPoolExecutor(max_workers=min(cap, len(wave.hosts)), thread_name_prefix="ne") as pool:
            # Each NE's subflow runs in a worker thread with a copy of this flow's context,
            # so Prefect records it as a child of the campaign run.
            futures = {pool.submit(contextvars.copy_context().run, one, h): h for h in wave.hosts}
            for future, host in futures.items():
                try:
                    outcomes[host.name] = future.result()
                except Exception as err:  # a bug or infrastructure failure: keep the NE visible
                    outcomes[host.name] = _untouched(host, policy.FAILED, f"engine error: {err}")
                board.update(outcomes)
        attempted += sum(1 for h in wave.hosts if outcomes[h.name]["status"] not in (policy.DEFERRED, policy.SKIPPED))
        failures += sum(1 for h in wave.hosts if outcomes[h.name]["status"] in policy.FAILURE_STATES)
        stop_reason = policy.failure_budget_exceeded(
            failures, attempted, max_failures=getattr(model_obj.campaign, "max_failures", None),
            max_failure_percent=getattr(model_obj.campaign, "max_failure_percent", None))
        if stop_reason:
            logger.error("campaign stopped after wave %s: %s", wave.name, stop_reason)
    summary = progress.summarize(campaign_id, model_obj, outcomes, started, stop_reason, window_end)
    board.finish(summary)
    return summary


def _run_ne(plan, host, campaign_id, on_anomaly, pause_timeout_s, verify, restart_timeout) -> dict[str, Any]:
    from changeline.flows.ne_flow import ne_change_subflow

    return ne_change_subflow(ne=host.name, plan=plan, host=host, campaign_id=campaign_id, on_anomaly=on_anomaly,
                             pause_timeout_s=pause_timeout_s, verify=verify, restart_timeout=restart_timeout)


def _untouched(host, status: str, reason: str) -> dict[str, Any]:
    return NEOutcome(ne=host.name, ne_type=host.ne_type, campaign_id="", status=status, reason=reason,
                     from_version=host.software_version).to_dict()


def current_flow_run_id() -> str | None:
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None
