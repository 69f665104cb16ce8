"""The campaign flow: many NEs, in waves, under a concurrency cap, inside a change window.

Composition only: which NEs, in which wave, whether the window still fits one, whether
the failure budget is spent - all pure decisions (flows.policy, models.compile); the
NE work is the per-NE flow. Two campaigns never touch one NE (or two members of one
pool) at once: each NE run holds the Prefect global concurrency limits of the NE and its
pool (flows.locks; strict, so a missing limit is an error rather than a silent no-lock).
"""

from __future__ import annotations

import contextvars
import json
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from typing import Any

from prefect import flow, get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import StateType
from prefect.states import State
from prefect.utilities.annotations import quote

from changeline.devices.inventory import load_inventory
from changeline.errors import ChangelineError
from changeline.flows import policy, progress, stores
from changeline.flows import probe as service_probe
from changeline.flows.locks import NeLocks, lock_names
from changeline.flows.ne_flow import Admission, NEOutcome, admitted_by, ne_change_subflow, time_scale
from changeline.flows.turns import Settling, StartTurn, WorkSlots, lookahead
from changeline.flows.workers import run_on_worker
from changeline.models.waves import Wave


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


def pick_model(models: list, host, *, resuming: bool):
    """The first model that targets this NE, or (None, why none does).

    An NE this campaign already touched is matched on type only: after a crash mid-
    activation it may already run the target version and still need finishing.
    """
    from changeline.models.compile import eligibility

    reasons = []
    for model_obj in models:
        if resuming and host.ne_type in model_obj.ne_types:
            return model_obj, None
        why = eligibility(model_obj, host)
        if why is None:
            return model_obj, None
        reasons.append(why if len(models) == 1 else f"{model_obj.name}: {why}")
    return None, "; ".join(reasons)


@flow(name="campaign", flow_run_name="{campaign_id}", persist_result=False)
def campaign(models: list[str], inventory: str, targets: str = "all", campaign_id: str = "",
             params: dict[str, Any] | None = None, on_anomaly: str | None = None,
             window_minutes: float | None = None, window_end: datetime | None = None,
             concurrency_cap: int | None = None, pause_timeout_s: int = 3600,
             lock_wait_s: float = 30.0, ne_deployment: str | None = None):
    """Run models over the selected NEs; each NE gets the first model that targets it.

    The first model's campaign policy (waves, concurrency, failure budget) governs the
    campaign. Re-running with the same campaign_id resumes it. With `ne_deployment`
    (e.g. `ne-change/worker`) each NE runs as a run of that deployment on whatever
    workers serve it, instead of in this process; locks, waves and windows stay here.
    """
    from changeline.models.compile import compile_for_host, load_model, plan_waves

    logger = get_run_logger()
    turns = starts_at_once()  # a bad setting fails here, before anything is touched
    started = datetime.now(timezone.utc)
    campaign_id = campaign_id or f"c-{started:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    if window_end is None:
        window_end = policy.window_end_from(started, window_minutes)
    model_objs = [load_model(m) for m in models]
    primary = model_objs[0].campaign
    inv = load_inventory(inventory)
    journal = stores.journal()
    journal.record_campaign(campaign_id, {
        "models": models, "inventory": inventory, "targets": targets, "params": params or {},
        "on_anomaly": on_anomaly, "window_end": window_end.isoformat() if window_end else None,
        "concurrency_cap": concurrency_cap, "pause_timeout_s": pause_timeout_s})
    stored = journal.plan_of(campaign_id)
    # A campaign run again (resume) goes on with the NEs and waves its first run planned.
    names = stored["targets"] if stored else [h.name for h in inv.select(targets)]
    if not names:
        raise ChangelineError(f"selector '{targets}' matches no NE in {inventory}")
    previous = journal.ne_statuses(campaign_id)
    outcomes: dict[str, dict[str, Any]] = {}
    hosts = []
    for name in names:
        if name in inv.hosts:
            hosts.append(inv.hosts[name])
        else:  # only a resumed campaign can name an NE the inventory no longer has
            outcomes[name] = NEOutcome(ne=name, ne_type="", campaign_id=campaign_id, status=policy.FAILED,
                                       reason=f"no longer in {inventory}; not touched by this run").to_dict()
    hosts_by_name = {h.name: h for h in hosts}
    chosen: dict[str, Any] = {}
    for host in hosts:
        earlier = previous.get(host.name)
        if earlier and earlier[0] in FINISHED:
            outcomes[host.name] = _earlier_outcome(campaign_id, host, earlier)
            continue
        touched = bool(earlier) and earlier[0] in (policy.RUNNING, policy.PAUSED)
        model_obj, why_not = pick_model(model_objs, host, resuming=touched)
        if model_obj is None:
            outcomes[host.name] = _untouched(host, policy.INELIGIBLE, why_not)
            journal.set_ne_status(campaign_id, host.name, policy.INELIGIBLE, why_not)
        else:
            chosen[host.name] = model_obj
    # Every plan before anything starts: a model that does not compile for an NE fails that NE
    # now, with the reason, and the estimates order each wave's dispatch.
    plans: dict[str, Any] = {}
    for host in hosts:
        if host.name not in chosen:
            continue
        try:
            plans[host.name] = compile_for_host(chosen[host.name], host, params or {}, on_anomaly=on_anomaly)
        except ChangelineError as err:
            why = f"{chosen[host.name].name} does not compile for {host.name}: {err.reason}"
            outcomes[host.name] = _untouched(host, policy.FAILED, why)
            journal.set_ne_status(campaign_id, host.name, policy.FAILED, why)
    eligible = [h for h in hosts if h.name in plans]
    if stored is None:
        waves = plan_waves(model_objs[0], eligible)
        journal.record_plan(campaign_id, {"targets": names,
                                          "waves": [{"name": w.name, "nes": [h.name for h in w.hosts]} for w in waves]})
    else:
        waves = stored_waves(stored, hosts_by_name)
    cap = concurrency_cap or primary.concurrency or 1
    live_probe = service_probe.current()  # a continuous probe the caller runs around this campaign, if any
    board = progress.Board(campaign_id, _names_by_wave(waves, hosts), outcomes, inventory=inventory, probe=live_probe)
    board.publish()
    markers: list[WaveMarker] = []
    try:
        with NeLocks(lease_s=policy.LOCK_LEASE_S) as locks:
            if eligible:
                locks.ensure(sorted({name for h in eligible for name in lock_names(h)}))
            pool_turns = {h.pool: threading.Lock() for h in eligible if h.pool}
            starting = threading.Semaphore(turns)
            slots = WorkSlots(cap)
            settling = Settling()

            def window_refusal(host, plan) -> str | None:
                fit = policy.window_fit(now=window_now(campaign_id), window_end=window_end,
                                        estimate_s=plan.total_estimate_s, rollback_s=plan.rollback_estimate_s,
                                        scale=time_scale(host))
                if fit.fits:
                    return None
                journal.set_ne_status(campaign_id, host.name, policy.DEFERRED, fit.reason)
                return f"deferred to the next window: {fit.reason}"

            def waits(host):
                return lambda: get_run_logger().info("%s waits for one of the campaign's %d working slots",
                                                     host.name, cap)

            def take_turn(held: ExitStack, host, plan, rank) -> tuple[str, str] | None:
                """The NE's turn to work, or (status, reason) why not. This campaign's members of a
                pool queue in-process, so the next takes over the moment its peer is done with its
                device (the server answers a held limit with 423 and a Retry-After of up to 30 s).
                Then the NE and its pool are taken on the server in one atomic request with a
                bounded wait, so another campaign working on the NE or a member of its pool makes
                this NE wait, then skip with a reason - never run beside it (one request: no lock
                order, no deadlock). Then a working slot, in dispatch order; then the window."""
                if host.pool:
                    turn = pool_turns[host.pool]
                    if not turn.acquire(blocking=False):
                        get_run_logger().info("%s waits for its pool peer to finish", host.name)
                        turn.acquire()
                    held.callback(turn.release)
                try:
                    held.enter_context(locks.hold(lock_names(host), wait_s=lock_wait_s))
                except TimeoutError:
                    what = f"{host.name} or its pool {host.pool}" if host.pool else host.name
                    return policy.SKIPPED, f"another run holds {what} (waited {lock_wait_s:.0f} s); not touched"
                held.enter_context(slots.slot(rank, waits(host)))
                # Checked again now the NE may work: waiting for its pool peer or a slot used it up.
                refused = window_refusal(host, plan)
                return (policy.DEFERRED, refused) if refused else None

            @contextmanager
            def admission(host, plan, turn, rank):
                """Entered by the NE's running flow before it touches the device; left when it is
                done with it, its outcome known (the run's own end follows, holding nothing)."""
                turn.next_may_start()
                ticket = Admission()
                try:
                    with ExitStack() as held:
                        ticket.refusal = take_turn(held, host, plan, rank)
                        if ticket.refusal is None:
                            board.running(host.name)
                        yield ticket
                finally:
                    if ticket.outcome is not None:
                        settling.known(host.name, ticket.outcome)

            def one(host, rank):
                plan = plans[host.name]
                # An NE the window cannot take now gets no run; the window is checked again at its turn.
                refused = window_refusal(host, plan)
                if refused:
                    return _untouched(host, policy.DEFERRED, refused)
                if ne_deployment:
                    with ExitStack() as held:
                        refusal = take_turn(held, host, plan, rank)
                        if refusal is not None:
                            return _untouched(host, *refusal)
                        board.running(host.name)
                        return run_on_worker(ne_deployment, chosen[host.name].file, inventory, host,
                                             campaign_id, params or {}, on_anomaly, pause_timeout_s)
                # Its run is made and running before the NE waits for its turn (admission), so the
                # ~1 s of Prefect bookkeeping that starts a run holds no lock, pool turn or slot.
                with StartTurn(starting) as turn, admitted_by(lambda: admission(host, plan, turn, rank)):
                    return ne_change_subflow(ne=host.name, plan=plan, host=host, campaign_id=campaign_id,
                                             pause_timeout_s=pause_timeout_s)

            def tagged(host, wave_name, rank):
                # The NE's run carries the campaign, wave, NE type and pool, so the runs list filters by them.
                with tags(*run_tags(campaign_id, wave_name, host)):
                    return one(host, rank)

            stop_reason: str | None = None
            attempted = failures = 0
            all_futures: dict[str, Any] = {}
            workers = max(1, min(cap + lookahead(cap, turns), len(eligible)))
            # One pool for the whole campaign: the next wave starts once every NE of this one is done
            # with its device, while the last runs are still ending (recording their final state).
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ne") as pool:
                for wave in waves:
                    # NEs an earlier run of this campaign finished stay as they ended; they count below.
                    to_run = [h for h in wave.hosts if h.name in plans]
                    if stop_reason:
                        why = f"not started: the campaign stopped before wave {wave.name}: {stop_reason}"
                        for host in to_run:
                            outcomes[host.name] = _untouched(host, policy.SKIPPED, why)
                            journal.set_ne_status(campaign_id, host.name, policy.SKIPPED, why)
                        board.update(outcomes)
                        continue
                    logger.info("wave %s: %d NE(s) to run of %d, concurrency %d", wave.name, len(to_run),
                                len(wave.hosts), cap)
                    marker = WaveMarker(wave.name, len(wave.hosts))
                    markers.append(marker)
                    # Each NE's subflow runs in a worker thread with a copy of this flow's context,
                    # so Prefect records it as a child of the campaign run.
                    estimates = {h.name: plans[h.name].total_estimate_s for h in to_run}
                    order = policy.dispatch_order(to_run, estimates)
                    futures = {h.name: pool.submit(contextvars.copy_context().run, tagged, h, wave.name, rank)
                               for rank, h in enumerate(order)}
                    all_futures.update(futures)
                    for name, outcome in settling.as_settled(futures):
                        outcomes[name] = _as_outcome(hosts_by_name[name], outcome)
                        board.update(outcomes)
                    marker.done(outcomes[h.name] for h in wave.hosts)
                    for host in wave.hosts:  # the wave's (report) order
                        outcomes[host.name] = outcomes.pop(host.name)
                    # The budget counts every NE of the wave, whichever run of the campaign ended it.
                    attempted += sum(1 for h in wave.hosts
                                     if outcomes[h.name]["status"] not in (policy.DEFERRED, policy.SKIPPED))
                    failures += sum(1 for h in wave.hosts if outcomes[h.name]["status"] in policy.FAILURE_STATES)
                    # Past the last wave there is nothing left to stop: the failures show in the counts.
                    if wave is not waves[-1]:
                        stop_reason = primary.breached(failures, attempted)
                    if stop_reason:
                        logger.error("campaign stopped after wave %s: %s", wave.name, stop_reason)
            # Every run has ended; what a worker returned is the record (the same outcome, unless its
            # run's end failed after the NE was done: then the outcome seen at the slot stands).
            for name, future in all_futures.items():
                outcome = settling.outcome_of(name, future)
                outcomes[name] = _as_outcome(hosts_by_name[name], outcome)
    finally:
        for marker in markers:  # a wave cut short by an error must not hold the flow's end
            marker.release()
        board.stop()  # whatever ends the campaign, its publisher thread ends with it
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


# Statuses an NE keeps when its campaign runs again: it ended, or it can never start. A
# deferred or skipped NE never started and is planned again (the window and the failure
# budget decide anew, from the same records, so they come out the same).
FINISHED = (policy.DONE, policy.ROLLED_BACK, policy.ROLLBACK_FAILED, policy.FAILED, policy.INELIGIBLE)


def stored_waves(plan: dict[str, Any], hosts_by_name: dict[str, Any]) -> list[Wave]:
    """The waves the campaign's first run planned, with the NEs the inventory still has."""
    return [Wave(w["name"], tuple(hosts_by_name[n] for n in w["nes"] if n in hosts_by_name)) for w in plan["waves"]]


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


def _as_outcome(host, outcome: dict[str, Any] | BaseException) -> dict[str, Any]:
    """An NE's outcome, or the exception its worker ended with (a bug or infrastructure
    failure): the NE stays visible, failed with the error."""
    if isinstance(outcome, dict):
        return outcome
    return _untouched(host, policy.FAILED, f"engine error: {outcome}")


def _untouched(host, status: str, reason: str) -> dict[str, Any]:
    return NEOutcome(ne=host.name, ne_type=host.ne_type, campaign_id="", status=status, reason=reason,
                     from_version=host.software_version).to_dict()
