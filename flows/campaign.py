"""The campaign flow: the engine's Campaign scheduler (changeline.engine.campaign) inside a
Prefect flow run.

Prefect wraps the engine here: each NE runs as a subflow or, with `ne_run="task"`, as a task
run (flows.ne_flow; tagged with its campaign, wave, NE type and pool) that enters its
admission before touching the device; the locks are the
Prefect server's global concurrency limits (flows.locks; strict, so a missing limit is an
error rather than a silent no-lock); one task run per wave; the board and summary are
artifacts (flows.progress); the run ends in a state named for the outcome.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Sequence

from prefect import flow, get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import StateType
from prefect.states import State
from prefect.utilities.annotations import quote

from changeline.devices.inventory import load_inventory
from changeline.engine.campaign import Admission, Campaign, lock_names, prepare, untouched
from changeline.engine.outcomes import NEOutcome
from changeline.errors import ChangelineError
from changeline.engine import policy
from changeline.flows import progress, stores
from changeline.flows import probe as service_probe
from changeline.flows.locks import NeLocks
from changeline.flows import quiet
from changeline.flows.ne_flow import ne_change_in_process
from changeline.flows.ne_runs import ne_run_kind, ne_run_setting
from changeline.flows.workers import run_on_worker


# A wave's NEs would otherwise all start at once: a Prefect server on SQLite answers such a
# burst of lock acquisitions and run creations with 503 "database is locked", its client
# backs off 2, 4, 8 s and then gives up (and the NE fails). A few at a time start quickly.
# CHANGELINE_STARTS_AT_ONCE overrides it; 10 was slower than 5 even on PostgreSQL (200 NEs, 2 cores:
# each start then waited longer for the server than it saved in queueing).
STARTING_AT_ONCE = 5


def starts_at_once() -> int:
    raw = os.environ.get("CHANGELINE_STARTS_AT_ONCE", "").strip()
    if not raw:
        return STARTING_AT_ONCE
    if not raw.isdigit() or int(raw) < 1:
        raise ChangelineError(f"CHANGELINE_STARTS_AT_ONCE must be a whole number >= 1, not {raw!r}")
    return int(raw)


# What the window decisions take as "now": the wall clock, unless a caller (a test, a dry run)
# runs the campaign under a clock of its own (`window_clock`). Keyed by campaign id, not a
# context variable: Prefect runs a flow's body in a context of its own.
_window_clocks: dict[str, Any] = {}


@contextmanager
def window_clock(campaign_id: str, now):
    """The campaign `campaign_id` started in this block decides window fits by `now()` (an aware datetime)."""
    _window_clocks[campaign_id] = now
    try:
        yield
    finally:
        _window_clocks.pop(campaign_id, None)


def window_now(campaign_id: str) -> datetime:
    now = _window_clocks.get(campaign_id)
    return now() if now is not None else datetime.now(timezone.utc)


@flow(name="campaign", flow_run_name="{campaign_id}", persist_result=False)
def campaign(models: list[str], inventory: str, targets: str = "all", campaign_id: str = "",
             params: dict[str, Any] | None = None, on_anomaly: str | None = None,
             window_minutes: float | None = None, window_end: datetime | None = None,
             concurrency_cap: int | None = None, pause_timeout_s: int = 3600,
             lock_wait_s: float = 30.0, ne_deployment: str | None = None, ne_run: str | None = None):
    """Run models over the selected NEs; each NE gets the first model that targets it.

    The first model's campaign policy (waves, concurrency, failure budget) governs the
    campaign. Re-running with the same campaign_id resumes it. With `ne_deployment`
    (e.g. `ne-change/worker`) each NE runs as a run of that deployment on whatever
    workers serve it, instead of in this process; locks, waves and windows stay here.
    `ne_run` (flow or task; default CHANGELINE_NE_RUN, else flow) is what an NE's run is in
    this process (flows.ne_flow).
    """
    return run_campaign(models, inventory, targets=targets, campaign_id=campaign_id, params=params,
                        on_anomaly=on_anomaly, window_minutes=window_minutes, window_end=window_end,
                        concurrency_cap=concurrency_cap, pause_timeout_s=pause_timeout_s, lock_wait_s=lock_wait_s,
                        ne_deployment=ne_deployment, ne_run=ne_run)


def run_campaign(models: list[str], inventory: str, *, targets: str = "all", campaign_id: str = "",
                 params: dict[str, Any] | None = None, on_anomaly: str | None = None,
                 window_minutes: float | None = None, window_end: datetime | None = None,
                 concurrency_cap: int | None = None, pause_timeout_s: int = 3600, lock_wait_s: float = 30.0,
                 ne_deployment: str | None = None, ne_run: str | None = None,
                 processors: Sequence[Any] = ()) -> State:
    """The campaign flow's body, run inside a flow run; `processors` observe the Campaign
    (the benchmark's stamps) beside the board and the wave task runs."""
    from changeline.models.compile import load_model

    quiet.quiet_expected_errors()
    logger = get_run_logger()
    turns = starts_at_once()  # bad settings fail here, before anything is touched
    ne_runs = ne_run_setting(ne_run)
    started = datetime.now(timezone.utc)
    campaign_id = campaign_id or f"c-{started:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    if window_end is None:
        window_end = policy.window_end_from(started, window_minutes)
    model_objs = [load_model(m) for m in models]
    inv = load_inventory(inventory)
    journal = stores.journal()
    journal.record_campaign(campaign_id, {
        "models": models, "inventory": inventory, "targets": targets, "params": params or {},
        "on_anomaly": on_anomaly, "window_end": window_end.isoformat() if window_end else None,
        "concurrency_cap": concurrency_cap, "pause_timeout_s": pause_timeout_s})
    prepared = prepare(campaign_id, model_objs, inv, targets=targets, inventory=inventory, params=params or {},
                       on_anomaly=on_anomaly, journal=journal,
                       earlier_outcome=lambda host, earlier: _earlier_outcome(campaign_id, host, earlier))
    cap = concurrency_cap or model_objs[0].campaign.concurrency or 1
    live_probe = service_probe.current()  # a continuous probe the caller runs around this campaign, if any
    board = progress.Board(campaign_id, _names_by_wave(prepared.waves, prepared.hosts), prepared.outcomes,
                           inventory=inventory, probe=live_probe)
    board.publish()
    wave_runs = WaveRuns()
    chosen = prepared.chosen

    def launch(host, wave, admission: Admission) -> dict[str, Any]:
        def started(kind: str, run_id: str) -> None:
            board.ne_run(host.name, kind, run_id)
            scheduler.milestone(host.name, kind)  # flow-run or task-run: what the NE ran as, for the processors

        # The NE's run carries the campaign, wave, NE type and pool, so the runs list filters by them.
        with tags(*run_tags(campaign_id, wave.name, host)):
            if not ne_deployment:
                return ne_change_in_process(ne_run_kind(ne_runs, admission.plan), ne=host.name, plan=admission.plan,
                                            host=host, campaign_id=campaign_id, pause_timeout_s=pause_timeout_s,
                                            admission=admission, started=started)
            with admission.enter(get_run_logger().info) as ticket:
                if ticket.refusal is not None:
                    return untouched(host, *ticket.refusal)
                return run_on_worker(ne_deployment, chosen[host.name].file, inventory, host, campaign_id,
                                     params or {}, on_anomaly, pause_timeout_s)

    try:
        with NeLocks(lease_s=policy.LOCK_LEASE_S) as locks:
            if prepared.plans:
                locks.ensure(sorted({name for h in prepared.hosts if h.name in prepared.plans
                                     for name in lock_names(h)}))
            scheduler = Campaign(campaign_id, prepared, cap=cap, breached=model_objs[0].campaign.breached,
                                 journal=journal, window_end=window_end, now=lambda: window_now(campaign_id),
                                 starts_at_once=turns, locks=locks, lock_wait_s=lock_wait_s,
                                 processors=[board, wave_runs, *processors], log=logger)
            outcomes = scheduler.run(launch)
    finally:
        wave_runs.release()  # a wave cut short by an error must not hold the flow's end
        board.stop()  # whatever ends the campaign, its publisher thread ends with it
    stop_reason = scheduler.stop_reason
    summary = progress.summarize(campaign_id, model_objs, outcomes, started, stop_reason, window_end,
                                 inventory=inventory, probes=live_probe.snapshot() if live_probe else None)
    message = summary["message"] + (f"; stopped: {stop_reason}" if stop_reason else "")
    board.finish(summary, message)
    kind, name = progress.campaign_state_name(outcomes.values())
    logger.info("campaign %s: %s", name, message)
    # Last in the run's log (the run page's first tab, which makes addresses links): each
    # anomaly with its prefilled one-click rollback.
    for line in progress.anomaly_log_lines(outcomes.values(), board.links):
        logger.warning("%s", line)
    return State(type=StateType[kind], name=name, message=message, data=summary)


def run_tags(campaign_id: str, wave_name: str, host) -> list[str]:
    """The wave tag names its campaign too: the UI's tag filter matches any of its tags, so one
    tag must pick out this campaign's wave."""
    found = [f"campaign:{campaign_id}", f"wave:{campaign_id}/{wave_name}", f"ne-type:{host.ne_type}"]
    return found + ([f"pool:{host.pool}"] if host.pool else [])


def _names_by_wave(waves, hosts) -> dict[str, list[str]]:
    """The board's groups: each wave's NEs, then those no wave holds (ineligible, not compiled)."""
    grouped = {w.name: [h.name for h in w.hosts] for w in waves}
    placed = {n for names in grouped.values() for n in names}
    rest = [h.name for h in hosts if h.name not in placed]
    return {**grouped, **({"not started": rest} if rest else {})}


class WaveRuns:
    """The processor that gives each wave its task run."""

    def __init__(self) -> None:
        self.markers: list[WaveMarker] = []

    def wave_started(self, wave) -> None:
        self.markers.append(WaveMarker(wave.name, len(wave.hosts)))

    def wave_finished(self, wave, outcomes) -> None:
        self.markers[-1].done(outcomes)

    def release(self) -> None:
        for marker in self.markers:
            marker.release()


class WaveMarker:
    """A task run spanning one wave, so the campaign run's graph and timeline show the waves
    (one task run per wave; it waits on the flow's task-runner thread). It ends when the wave's
    NEs are done with their devices, returning the wave's counts."""

    def __init__(self, name: str, size: int) -> None:
        self._ended = threading.Event()
        self.message = "ended early"
        self._future = _wave.submit(name, size, quote(self))

    def wait(self) -> str:
        self._ended.wait()
        return self.message

    def done(self, outcomes) -> None:
        self.message = progress.outcome_message(list(outcomes))
        self.release()
        self._future.wait()

    def release(self) -> None:
        self._ended.set()


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="wave {name} ({size} NEs)")
def _wave(name: str, size: int, marker: WaveMarker) -> str:
    return marker.wait()


def _earlier_outcome(campaign_id: str, host, earlier: tuple[str, str]) -> dict[str, Any]:
    """An NE an earlier run of this campaign finished, as that run wrote it (marked resumed);
    the journal's status and reason when its outcome file is gone or unreadable."""
    path = stores.evidence_dir(campaign_id, host.name) / "outcome.json"
    try:
        outcome = NEOutcome.from_dict(json.loads(path.read_text()), str(path))
        if outcome.status != earlier[0]:  # e.g. a one-click rollback after that run
            outcome.status, outcome.reason = earlier
    except (OSError, ValueError, ChangelineError):
        outcome = NEOutcome(ne=host.name, ne_type=host.ne_type, campaign_id=campaign_id, status=earlier[0],
                            reason=earlier[1], from_version=host.software_version)
    outcome.resumed = True
    return outcome.to_dict()
