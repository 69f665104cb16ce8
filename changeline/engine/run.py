"""One NE's plan, step by step: `run_plan(plan, run, processors) -> NEOutcome`.

The per-NE loop of the line, plain Python: each step runs its atom; a failed step is an
anomaly its compiled policy answers (continue, abort, pause for an operator, roll back);
a rollback undoes the journaled steps and verifies the NE against its backup. Every step's
outcome is journaled as it happens, so a run of the same campaign goes on where an earlier
one stood: finished steps keep their recorded outcomes, a rollback already decided is
finished with its original cause.

What is not the loop - a Prefect task run per step, the pause form, events, stamps - are
processors: objects with some of the hooks of `Processor`, passed in (nornir's idea).
"""

from __future__ import annotations

import functools
import itertools
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from changeline.engine import runner
from changeline.engine.atom import AtomContext
from changeline.engine.outcomes import NEOutcome, RollbackOutcome, StepOutcome
from changeline.errors import ChangelineError
from changeline.engine import policy

if TYPE_CHECKING:
    from changeline.devices.inventory import Host
    from changeline.engine.campaign import Admission
    from changeline.state.api import Backups, StateStore

log = logging.getLogger("changeline.engine")


@dataclass
class Decision:
    """An operator's answer to an anomaly (`by`: operator, timeout, engine)."""

    action: str
    comment: str = ""
    by: str = "operator"


class Processor:
    """The hooks a processor may have; each default does nothing. `run_stage`, `run_step`
    and `run_rollback` wrap the work (call `call()` and return what it returns); `decide`
    answers a paused anomaly (None: not mine to answer); the rest observe. `run_stage` wraps
    consecutive steps of one model stage, up to and including the first that fails (the
    anomaly is decided outside it; a `continue` runs the stage's other steps as a new wrap)."""

    def ne_started(self, run: "NeRun", outcome: NEOutcome) -> None: ...
    def run_stage(self, run: "NeRun", stage: str, steps: list, call: Callable[[], Any]) -> Any: return call()
    def run_step(self, run: "NeRun", step, call: Callable[[], StepOutcome]) -> StepOutcome: return call()
    def step_finished(self, run: "NeRun", step, result: StepOutcome) -> None: ...
    def anomaly(self, run: "NeRun", outcome: NEOutcome, anomaly: dict[str, Any]) -> None: ...
    def decide(self, run: "NeRun", outcome: NEOutcome, step, reason: str, evidence: dict[str, Any],
               timeout_s: int) -> Decision | None: return None
    def run_rollback(self, run: "NeRun", call: Callable[[], dict[str, Any]]) -> dict[str, Any]: return call()
    def ne_finished(self, run: "NeRun", outcome: NEOutcome) -> None: ...


class Hooks:
    """The processors of one run, called in order (wrappers nest: the first is outermost)."""

    def __init__(self, processors: Sequence[Any]) -> None:
        self.processors = list(processors)

    def notify(self, hook: str, *args) -> None:
        for p in self.processors:
            fn = getattr(p, hook, None)
            if fn is not None:
                fn(*args)

    def wrap(self, hook: str, call: Callable[[], Any], *args) -> Any:
        for p in reversed(self.processors):
            fn = getattr(p, hook, None)
            if fn is not None:
                call = functools.partial(fn, *args, call)
        return call()

    def decide(self, *args) -> Decision | None:
        for p in self.processors:
            fn = getattr(p, "decide", None)
            answer = fn(*args) if fn is not None else None
            if answer is not None:
                return answer
        return None


def time_scale(host: "Host") -> float:
    """Simulated NEs run their clocks faster (inventory `data.time_scale`); real NEs are 1.0."""
    try:
        return float(host.data.get("time_scale", 1.0))
    except (TypeError, ValueError):
        return 1.0


@dataclass
class NeRun:
    """One NE in one campaign: the stores it writes, where its outcome file goes, how it
    logs, and the campaign's admission (None: it may start at once)."""

    host: "Host"
    campaign_id: str
    journal: "StateStore"
    backups: "Backups"
    evidence_dir: Path | None = None       # outcome.json goes here
    log: Callable[[str], None] = log.info
    warn: Callable[[str], None] = logging.getLogger("changeline.engine").warning  # an anomaly: what an operator scanning the log must see
    pause_timeout_s: int = 3600
    admission: "Admission | None" = None

    def context(self) -> AtomContext:
        from changeline.devices.session import DeviceSession, Endpoint

        return AtomContext(host=self.host, session=DeviceSession(Endpoint.from_host(self.host)), journal=self.journal,
                           backups=self.backups, run_id=self.campaign_id, speed=time_scale(self.host),
                           baseline=self.journal.baseline(self.campaign_id, self.host.name), log=self.log)


def run_plan(plan, run: NeRun, processors: Sequence[Any] = ()) -> NEOutcome:
    """Run an NEPlan (models.compile) on its NE, or go on with it from the journal; the NE's
    outcome whatever happened (an exception escapes only for a bug or a lost store)."""
    hooks = Hooks(processors)
    host = run.host
    with run.admission.enter(run.log) if run.admission else nullcontext() as ticket:
        if ticket is not None and ticket.refusal is not None:
            status, reason = ticket.refusal
            run.log(f"{host.name}: {reason}")
            now = time.time()
            outcome = NEOutcome(ne=host.name, ne_type=host.ne_type, campaign_id=run.campaign_id, status=status,
                                reason=reason, from_version=host.software_version, started_at=now, finished_at=now)
        else:
            outcome = _run_admitted(plan, run, hooks)
        if ticket is not None:
            ticket.outcome = outcome.to_dict()
    return outcome


def finished_steps(plan_steps, records: dict[str, tuple[str, dict[str, Any] | None]]) -> dict[str, StepOutcome]:
    """The steps an earlier run of this NE finished (done, or failed with the anomaly accepted),
    with their outcomes as that run recorded them; every other step is (re-)entered."""
    finished = {}
    for step in plan_steps:
        status, result = records.get(step.name, (None, None))
        if status not in ("done", "accepted"):
            continue
        try:
            finished[step.name] = StepOutcome.from_dict(result, f"journal step {step.name}")
        except ChangelineError:  # a record from before outcomes were journaled: its status is enough
            finished[step.name] = StepOutcome(step.name, step.atom, "done", reason="finished before a restart",
                                              gate=step.gate, manual_minutes=step.manual_minutes,
                                              estimate_s=step.estimate_s)
    return finished


def _run_admitted(plan, run: NeRun, hooks: Hooks) -> NEOutcome:
    host, journal, campaign_id = run.host, run.journal, run.campaign_id
    ctx = run.context()
    outcome = NEOutcome(ne=host.name, ne_type=host.ne_type, campaign_id=campaign_id,
                        from_version=plan.from_version or host.software_version, to_version=plan.to_version or "",
                        started_at=time.time())
    earlier = journal.change_of(campaign_id, host.name)
    finished = finished_steps(plan.steps, journal.step_records(campaign_id, host.name))
    # Anomalies of steps still to enter are met again there (a pause form left unanswered asks again).
    outcome.anomalies = [a for a in earlier.anomalies if earlier.rollback_cause or a.get("step") in finished]
    outcome.decisions = [d for d in earlier.decisions if earlier.rollback_cause or d.get("step") in finished]
    journal.set_ne_status(campaign_id, host.name, policy.RUNNING, "")
    hooks.notify("ne_started", run, outcome)
    try:
        if earlier.rollback_cause:
            run.log(f"{host.name}: caught rolling back after {earlier.rollback_cause}; finishing the rollback")
            outcome.steps = [finished[s.name] for s in plan.steps if s.name in finished]
            outcome.status = _roll_back(run, ctx, hooks, outcome, plan, cause=earlier.rollback_cause)
        else:
            _run_steps(run, ctx, hooks, outcome, plan, finished)
    finally:
        ctx.session.close()
        outcome.finished_at = time.time()
        if outcome.status == policy.RUNNING:
            # An exception escaped: the NE is where the journal says; resume goes on from there.
            journal.set_ne_status(campaign_id, host.name, policy.RUNNING, "interrupted; resume the campaign")
            outcome.status, outcome.reason = policy.FAILED, "interrupted"
        else:
            journal.set_ne_status(campaign_id, host.name, outcome.status, outcome.reason)
        write_outcome(outcome, run.evidence_dir)
        hooks.notify("ne_finished", run, outcome)
    return outcome


def run_step(run: NeRun, ctx: AtomContext, hooks: Hooks, step) -> StepOutcome:
    """One step: its atom under the step's retries and timeout, wrapped by the processors;
    any failure comes back as a failed StepOutcome with its reason and evidence."""
    def call() -> StepOutcome:
        began = time.perf_counter()
        try:
            result = runner.execute(step.atom, ctx, step.args, timeout_s=step.timeout_s,
                                    retry=runner.Retry(attempts=step.retries + 1))
        except ChangelineError as err:
            result = StepOutcome(atom=step.atom, status="failed", reason=err.reason, evidence=err.evidence or {})
        result.atom_s = time.perf_counter() - began
        return result

    ctx.step, ctx.source = step.name, step.source
    started, began = time.time(), time.perf_counter()
    try:
        result = hooks.wrap("run_step", call, run, step)
    except Exception as err:  # a bug in an atom fails this NE's step, not every NE's campaign
        result = StepOutcome(atom=step.atom, status="failed", reason=getattr(err, "reason", None) or str(err)
                             or type(err).__name__, evidence=getattr(err, "evidence", None) or {})
    result.name, result.atom, result.ne, result.gate = step.name, step.atom, run.host.name, step.gate
    result.started_at, result.duration_s = started, time.perf_counter() - began
    result.manual_minutes, result.estimate_s = step.manual_minutes, step.estimate_s
    if not result.ok:
        result.changed, result.diff = False, ""
    hooks.notify("step_finished", run, step, result)
    return result


def _run_steps(run: NeRun, ctx: AtomContext, hooks: Hooks, outcome: NEOutcome, plan,
               finished: dict[str, StepOutcome]) -> None:
    journal, campaign_id, ne = run.journal, outcome.campaign_id, outcome.ne
    pending = list(plan.steps)
    while pending:
        stage = list(itertools.takewhile(lambda s: s.stage == pending[0].stage, pending))
        if all(step.name in finished for step in stage):
            outcome.steps.extend(finished[step.name] for step in stage)
            del pending[:len(stage)]
            continue
        failed = hooks.wrap("run_stage", lambda: _run_stage(run, ctx, hooks, outcome, stage, finished),
                            run, stage[0].stage, stage)
        if failed is None:
            del pending[:len(stage)]
            continue
        step, result = failed
        del pending[:pending.index(step) + 1]
        changed = bool(journal.to_undo(campaign_id, ne))
        action = policy.anomaly_action(step.on_failure, changed_anything=changed)
        anomaly = {"step": step.name, "atom": step.atom, "gate": step.gate, "reason": result.reason,
                   "policy": action, "at": time.time()}
        outcome.anomalies.append(anomaly)
        journal.record_change(campaign_id, ne, outcome.anomalies, outcome.decisions)
        hooks.notify("anomaly", run, outcome, anomaly)
        run.warn(f"{ne}: anomaly at {step.name}: {result.reason} (policy {action})")
        if action == "pause":
            action = _ask_operator(run, hooks, outcome, step, result)
            journal.record_change(campaign_id, ne, outcome.anomalies, outcome.decisions)
        if action == "continue":
            journal.record_step(campaign_id, ne, step.name, "accepted", result.to_dict())
            continue
        if action == "abort":
            outcome.status, outcome.reason = policy.FAILED, f"{step.name}: {result.reason}"
            return
        outcome.status = _roll_back(run, ctx, hooks, outcome, plan, cause=f"{step.name}: {result.reason}")
        return
    outcome.status = policy.DONE
    outcome.reason = "reached target" if not outcome.anomalies else \
        f"reached target with {len(outcome.anomalies)} accepted anomaly(ies)"


def _run_stage(run: NeRun, ctx: AtomContext, hooks: Hooks, outcome: NEOutcome, steps: list,
               finished: dict[str, StepOutcome]) -> tuple[Any, StepOutcome] | None:
    """Steps of one stage in order, each journaled as it ends; the first that fails and its
    result (None: all passed)."""
    journal, campaign_id, ne = run.journal, outcome.campaign_id, outcome.ne
    for step in steps:
        if step.name in finished:
            outcome.steps.append(finished[step.name])
            continue
        journal.set_ne_status(campaign_id, ne, policy.RUNNING, f"step {step.name}")
        result = run_step(run, ctx, hooks, step)
        outcome.steps.append(result)
        journal.record_step(campaign_id, ne, step.name, result.status, result.to_dict())
        if not result.ok:
            return step, result
    return None


def _ask_operator(run: NeRun, hooks: Hooks, outcome: NEOutcome, step, result: StepOutcome) -> str:
    run.journal.set_ne_status(outcome.campaign_id, outcome.ne, policy.PAUSED, f"{step.name}: {result.reason}")
    asked = time.time()
    decision = hooks.decide(run, outcome, step, result.reason, result.evidence, run.pause_timeout_s) or \
        Decision("rollback", "no operator to ask in this run", "engine")
    waited = time.time() - asked
    outcome.operator_seconds += waited
    outcome.decisions.append({"step": step.name, "action": decision.action, "comment": decision.comment,
                              "by": decision.by, "waited_s": round(waited, 1)})
    run.log(f"{outcome.ne}: decision at {step.name}: {decision.action} ({decision.by}) {decision.comment}")
    return decision.action


def undo_and_verify(ctx: AtomContext, verify_args: dict[str, Any], *, undo: bool = True) -> dict[str, Any]:
    """The line's one rollback: undo the journaled steps newest first (unless the plan restores
    from the backup only), then restore-and-verify the NE against its backup (the `rollback`
    atom). Raises RollbackFailed (or the verifying atom's error) when the NE is not proven back."""
    undone = [r.to_dict() for r in runner.undo_run(ctx)] if undo else []
    verified = runner.execute("rollback", ctx, verify_args)
    return {"undone": undone, "verified": verified.to_dict()}


def _roll_back(run: NeRun, ctx: AtomContext, hooks: Hooks, outcome: NEOutcome, plan, *, cause: str) -> str:
    """Roll the NE back. The decision is journaled first, so an engine killed on the way
    resumes this rollback with the same cause, never the forward plan."""
    journal = run.journal
    journal.record_change(outcome.campaign_id, outcome.ne, outcome.anomalies, outcome.decisions, rollback_cause=cause)
    journal.set_ne_status(outcome.campaign_id, outcome.ne, policy.RUNNING, f"rolling back after {cause}")
    ctx.step, ctx.source = "rollback", plan.rollback.verify.source if plan.rollback else None
    ctx.session.reconnect()
    undo = (plan.rollback.strategy if plan.rollback else "journal") == "journal"
    verify_args = dict(plan.rollback.verify.args) if plan.rollback else {}
    started = time.time()  # the report's time from the failed gate to the rollback's start
    try:
        done = hooks.wrap("run_rollback", lambda: undo_and_verify(ctx, verify_args, undo=undo), run)
    except Exception as err:  # noqa: BLE001 - a rollback that did not prove the NE back is this NE's outcome
        why = getattr(err, "reason", None) or str(err) or type(err).__name__
        outcome.rollback = RollbackOutcome(ok=False, started_at=started, reason=why, cause=cause,
                                           undone=[e.undo_result for e in journal.entries(outcome.campaign_id, outcome.ne)
                                                   if e.status == "undone" and e.undo_result])
        outcome.reason = f"ROLLBACK FAILED after {cause}: {why}"
        return policy.ROLLBACK_FAILED
    outcome.rollback = RollbackOutcome(ok=True, started_at=started, reason=done["verified"].get("reason", ""),
                                       cause=cause, undone=done["undone"], verified=done["verified"])
    outcome.reason = f"rolled back after {cause}"
    return policy.ROLLED_BACK


def write_outcome(outcome: NEOutcome, folder: Path | None) -> None:
    """The NE's outcome.json: what the campaign summary and the report read back."""
    import json

    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "outcome.json").write_text(json.dumps(outcome.to_dict(), indent=2, default=str))
