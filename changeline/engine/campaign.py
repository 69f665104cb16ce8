"""The campaign scheduler: which NEs, in which wave, when each may work; no Prefect.

`prepare` reads a campaign's records and plans every NE (a resumed campaign goes on with
the NEs and waves its first run planned). `Campaign.run(launch)` goes through the waves:
per NE a start turn, then `launch(host, wave, admission)` - the caller runs the NE (in
process with `run_plan`, as a Prefect subflow, on a worker) and the NE enters its
`Admission` before it touches the device: its pool turn, its locks (the NE and its pool,
one request), a working slot in dispatch order, and the change window checked again. The
failure budget stops the next wave. Observers see milestones through processor hooks.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Sequence

from changeline.engine.outcomes import NEOutcome
from changeline.engine.run import Hooks, time_scale
from changeline.engine.turns import Settling, StartTurn, WorkSlots, lookahead
from changeline.errors import ChangelineError
from changeline.engine import policy

if TYPE_CHECKING:
    from changeline.state.api import StateStore

log = logging.getLogger("changeline.campaign")

# Statuses an NE keeps when its campaign runs again: it ended, or it can never start. A
# deferred or skipped NE never started and is planned again (the window and the failure
# budget decide anew, from the same records, so they come out the same).
FINISHED = (policy.DONE, policy.ROLLED_BACK, policy.ROLLBACK_FAILED, policy.FAILED, policy.INELIGIBLE)


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


def lock_names(host) -> list[str]:
    """The NE itself, and its pool: one member of a pool at a time leaves the others to carry
    its traffic (two drained together could leave a small pool with no capacity)."""
    return ([f"changeline-pool-{host.pool}"] if host.pool else []) + [f"changeline-ne-{host.name}"]


def untouched(host, status: str, reason: str, campaign_id: str = "") -> dict[str, Any]:
    return NEOutcome(ne=host.name, ne_type=host.ne_type, campaign_id=campaign_id, status=status, reason=reason,
                     from_version=host.software_version).to_dict()


@dataclass
class Prepared:
    """A campaign ready to run: its hosts, each eligible NE's model and plan, the waves, and
    the outcomes already known (finished earlier, ineligible, not compiling)."""

    hosts: list
    chosen: dict[str, Any]
    plans: dict[str, Any]
    waves: list
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)


def prepare(campaign_id: str, model_objs: list, inv, *, targets: str, inventory: str, params: dict[str, Any],
            on_anomaly: str | None, journal: "StateStore", earlier_outcome: Callable) -> Prepared:
    """Every NE planned before anything starts: a model that does not compile for an NE fails
    that NE now, with the reason, and the estimates order each wave's dispatch."""
    from changeline.models.compile import compile_for_host, plan_waves
    from changeline.models.waves import Wave

    stored = journal.plan_of(campaign_id)
    names = stored["targets"] if stored else [h.name for h in inv.select(targets)]
    if not names:
        raise ChangelineError(f"selector '{targets}' matches no NE in {inventory}")
    previous = journal.ne_statuses(campaign_id)
    out = Prepared(hosts=[], chosen={}, plans={}, waves=[])
    for name in names:
        if name in inv.hosts:
            out.hosts.append(inv.hosts[name])
        else:  # only a resumed campaign can name an NE the inventory no longer has
            out.outcomes[name] = NEOutcome(ne=name, ne_type="", campaign_id=campaign_id, status=policy.FAILED,
                                           reason=f"no longer in {inventory}; not touched by this run").to_dict()
    for host in out.hosts:
        earlier = previous.get(host.name)
        if earlier and earlier[0] in FINISHED:
            out.outcomes[host.name] = earlier_outcome(host, earlier)
            continue
        touched = bool(earlier) and earlier[0] in (policy.RUNNING, policy.PAUSED)
        model_obj, why_not = pick_model(model_objs, host, resuming=touched)
        if model_obj is None:
            out.outcomes[host.name] = untouched(host, policy.INELIGIBLE, why_not)
            journal.set_ne_status(campaign_id, host.name, policy.INELIGIBLE, why_not)
            continue
        try:
            out.plans[host.name] = compile_for_host(model_obj, host, params, on_anomaly=on_anomaly)
            out.chosen[host.name] = model_obj
        except ChangelineError as err:
            why = f"{model_obj.name} does not compile for {host.name}: {err.reason}"
            out.outcomes[host.name] = untouched(host, policy.FAILED, why)
            journal.set_ne_status(campaign_id, host.name, policy.FAILED, why)
    eligible = [h for h in out.hosts if h.name in out.plans]
    if stored is None:
        out.waves = plan_waves(model_objs[0], eligible)
        journal.record_plan(campaign_id, {"targets": names,
                                          "waves": [{"name": w.name, "nes": [h.name for h in w.hosts]}
                                                    for w in out.waves]})
    else:
        by_name = {h.name: h for h in out.hosts}
        out.waves = [Wave(w["name"], tuple(by_name[n] for n in w["nes"] if n in by_name)) for w in stored["waves"]]
    return out


class Admission:
    """One NE's say from its campaign: entered by whoever runs the NE, right before the
    device is touched; `refusal` (status, reason) if it may not work after all, `outcome` set
    by the run once it is done with the device. Slotted on purpose: Prefect records it as a
    flow parameter placeholder instead of encoding the campaign behind it."""

    __slots__ = ("campaign", "host", "plan", "rank", "turn", "refusal", "outcome")

    def __init__(self, campaign: "Campaign", host, plan, rank: int, turn: StartTurn) -> None:
        self.campaign, self.host, self.plan, self.rank, self.turn = campaign, host, plan, rank, turn
        self.refusal: tuple[str, str] | None = None
        self.outcome: dict[str, Any] | None = None

    @contextmanager
    def enter(self, say: Callable[[str], None] = log.info):
        """Held while the NE works on its device; left (everything given back) once it is done."""
        c = self.campaign
        self.turn.next_may_start()
        c.milestone(self.host.name, "admitted")
        try:
            with ExitStack() as held:
                self.refusal = c.take_turn(held, self.host, self.plan, self.rank, say)
                if self.refusal is None:
                    c.hooks.notify("ne_working", self.host.name)
                yield self
        finally:
            if self.outcome is not None:
                c.settling.known(self.host.name, self.outcome)


class Campaign:
    """Waves, start turns, pool turns, locks, working slots, the window and the failure budget."""

    def __init__(self, campaign_id: str, prepared: Prepared, *, cap: int, breached: Callable[[int, int], str | None],
                 journal: "StateStore", window_end: datetime | None = None, now: Callable[[], datetime] | None = None,
                 starts_at_once: int = 5, locks=None, lock_wait_s: float = 30.0, processors: Sequence[Any] = (),
                 log=log) -> None:
        self.id, self.prepared, self.cap, self.breached = campaign_id, prepared, cap, breached
        self.journal, self.window_end, self.locks, self.lock_wait_s = journal, window_end, locks, lock_wait_s
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.hooks, self.log = Hooks(processors), log
        self.turns = starts_at_once
        self.starting = threading.Semaphore(starts_at_once)
        self.pool_turns = {h.pool: threading.Lock() for h in prepared.hosts if h.pool}
        self.slots = WorkSlots(cap)
        self.settling = Settling()
        self.stop_reason: str | None = None

    def milestone(self, ne: str, what: str) -> None:
        self.hooks.notify("ne_milestone", ne, what)

    def window_refusal(self, host, plan) -> str | None:
        fit = policy.window_fit(now=self.now(), window_end=self.window_end, estimate_s=plan.total_estimate_s,
                                rollback_s=plan.rollback_estimate_s, scale=time_scale(host))
        if fit.fits:
            return None
        self.journal.set_ne_status(self.id, host.name, policy.DEFERRED, fit.reason)
        return f"deferred to the next window: {fit.reason}"

    def take_turn(self, held: ExitStack, host, plan, rank: int, say) -> tuple[str, str] | None:
        """The NE's turn to work, or (status, reason) why not. This campaign's members of a
        pool queue in-process, so the next takes over the moment its peer is done with its
        device. Then the NE and its pool are taken from the locks in one request with a bounded
        wait, so another campaign working on the NE or a member of its pool makes this NE wait,
        then skip with a reason - never run beside it (one request: no lock order, no deadlock).
        Then a working slot, in dispatch order; then the window again (the waits used it up)."""
        if host.pool:
            turn = self.pool_turns[host.pool]
            if not turn.acquire(blocking=False):
                say(f"{host.name} waits for its pool peer to finish")
                turn.acquire()
            held.callback(turn.release)
        if self.locks is not None:
            self.milestone(host.name, "ne_lock_start")
            try:
                held.enter_context(self.locks.hold(lock_names(host), wait_s=self.lock_wait_s))
            except TimeoutError:
                what = f"{host.name} or its pool {host.pool}" if host.pool else host.name
                return policy.SKIPPED, f"another run holds {what} (waited {self.lock_wait_s:.0f} s); not touched"
            self.milestone(host.name, "ne_lock_end")
        self.milestone(host.name, "slot_wait_start")
        held.enter_context(self.slots.slot(rank, lambda: say(
            f"{host.name} waits for one of the campaign's {self.cap} working slots")))
        self.milestone(host.name, "slot")
        held.callback(self.milestone, host.name, "slot_free")
        refused = self.window_refusal(host, plan)
        return (policy.DEFERRED, refused) if refused else None

    def _one(self, launch, host, wave, rank: int) -> dict[str, Any]:
        self.milestone(host.name, "pick")
        plan = self.prepared.plans[host.name]
        # An NE the window cannot take now gets no run; the window is checked again at its turn.
        refused = self.window_refusal(host, plan)
        if refused:
            return untouched(host, policy.DEFERRED, refused)
        self.milestone(host.name, "turn_wait_start")
        with StartTurn(self.starting) as turn:
            self.milestone(host.name, "start_turn")
            self.milestone(host.name, "call")
            try:
                return launch(host, wave, Admission(self, host, plan, rank, turn))
            finally:
                self.milestone(host.name, "done")

    def run(self, launch: Callable[[Any, Any, Admission], dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Every wave in turn; the NEs' outcomes (in the waves' order) and `stop_reason` set if
        the failure budget stopped the campaign."""
        outcomes = dict(self.prepared.outcomes)
        plans, waves = self.prepared.plans, self.prepared.waves
        by_name = {h.name: h for h in self.prepared.hosts}
        eligible = [h for h in self.prepared.hosts if h.name in plans]
        attempted = failures = 0
        all_futures: dict[str, Any] = {}
        workers = max(1, min(self.cap + lookahead(self.cap, self.turns), len(eligible)))
        # One pool for the whole campaign: the next wave starts once every NE of this one is done
        # with its device, while the last runs are still ending (recording their final state).
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ne") as pool:
            for wave in waves:
                # NEs an earlier run of this campaign finished stay as they ended; they count below.
                to_run = [h for h in wave.hosts if h.name in plans]
                if self.stop_reason:
                    why = f"not started: the campaign stopped before wave {wave.name}: {self.stop_reason}"
                    for host in to_run:
                        outcomes[host.name] = untouched(host, policy.SKIPPED, why)
                        self.journal.set_ne_status(self.id, host.name, policy.SKIPPED, why)
                    self.hooks.notify("ne_settled", outcomes)
                    continue
                self.log.info("wave %s: %d NE(s) to run of %d, concurrency %d", wave.name, len(to_run),
                              len(wave.hosts), self.cap)
                self.hooks.notify("wave_started", wave)
                order = policy.dispatch_order(to_run, {h.name: plans[h.name].total_estimate_s for h in to_run})
                # Each NE runs in a worker thread with a copy of this thread's context (a Prefect
                # flow run's context, so its subflow is recorded as this run's child).
                futures = {h.name: pool.submit(contextvars.copy_context().run, self._one, launch, h, wave, rank)
                           for rank, h in enumerate(order)}
                all_futures.update(futures)
                for name, outcome in self.settling.as_settled(futures):
                    outcomes[name] = _as_outcome(by_name[name], outcome)
                    self.hooks.notify("ne_settled", outcomes)
                for host in wave.hosts:  # the wave's (report) order
                    outcomes[host.name] = outcomes.pop(host.name)
                self.hooks.notify("wave_finished", wave, [outcomes[h.name] for h in wave.hosts])
                # The budget counts every NE of the wave, whichever run of the campaign ended it.
                attempted += sum(1 for h in wave.hosts
                                 if outcomes[h.name]["status"] not in (policy.DEFERRED, policy.SKIPPED))
                failures += sum(1 for h in wave.hosts if outcomes[h.name]["status"] in policy.FAILURE_STATES)
                # Past the last wave there is nothing left to stop: the failures show in the counts.
                if wave is not waves[-1]:
                    self.stop_reason = self.breached(failures, attempted)
                if self.stop_reason:
                    self.log.error("campaign stopped after wave %s: %s", wave.name, self.stop_reason)
        # Every run has ended; what a worker returned is the record (the same outcome, unless its
        # run's end failed after the NE was done: then the outcome seen at the slot stands).
        for name, future in all_futures.items():
            outcomes[name] = _as_outcome(by_name[name], self.settling.outcome_of(name, future))
        return outcomes


def _as_outcome(host, outcome: dict[str, Any] | BaseException) -> dict[str, Any]:
    """An NE's outcome, or the exception its worker ended with (a bug or infrastructure
    failure): the NE stays visible, failed with the error."""
    if isinstance(outcome, dict):
        return outcome
    return untouched(host, policy.FAILED, f"engine error: {outcome}")
