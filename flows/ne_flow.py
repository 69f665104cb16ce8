"""The per-NE flow: a model compiled for one NE, each step a named task run in the UI.

It composes atoms and decisions; device I/O lives in the atoms. Every step's outcome
goes to the durable journal as it happens, so a resumed run skips what finished and
re-enters the step it was caught in (atoms are idempotent).
"""

from __future__ import annotations

import contextvars
import functools
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import StateType
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Failed, State
from prefect.utilities.annotations import quote

from changeline.engine import runner
from changeline.engine.atom import AtomContext
from changeline.devices.inventory import Host, load_inventory
from changeline.devices.session import DeviceSession, Endpoint
from changeline.errors import ChangelineError
from changeline.flows import policy, progress, stores
from changeline.outcomes import NEOutcome, RollbackOutcome, StepOutcome  # noqa: F401 (NEOutcome, StepOutcome re-exported)


class AnomalyDecision(RunInput):
    """The operator's answer on the pause form in the Prefect UI."""

    action: Literal["rollback", "continue"] = "rollback"
    comment: str = ""


@task(cache_policy=NO_CACHE, persist_result=False)
def atom_step(atom: str, args: dict[str, Any], ctx: AtomContext, retries: int | None = None,
              timeout_s: float | None = None) -> dict[str, Any]:
    """One atom against one NE; `retries` (transient errors only) and `timeout_s` are the
    model step's. A failed check is an anomaly the flow handles as designed: the task run
    ends Failed with the reason as its message and its evidence as data, and logs one line,
    no traceback (a bug still raises, with its traceback)."""
    logger = get_run_logger()
    try:
        result = runner.execute(atom, ctx, args, timeout_s=timeout_s,
                                retry=None if retries is None else runner.Retry(attempts=retries + 1)).to_dict()
    except ChangelineError as err:
        logger.warning("%s failed: %s", atom, err.reason)
        return Failed(message=err.reason, data={"reason": err.reason, "evidence": err.evidence or {}})
    logger.info("%s: %s", atom, result.get("reason") or ("changed" if result.get("changed") else "nothing to change"))
    return result


def step_failure(state) -> tuple[str, dict[str, Any]]:
    """(reason, evidence) of a failed step's task run: a handled anomaly's data, or the
    exception of one that raised."""
    err = state.result(raise_on_failure=False)
    if isinstance(err, dict):
        return str(err.get("reason") or state.message or "failed"), err.get("evidence") or {}
    return getattr(err, "reason", None) or str(err) or type(err).__name__, getattr(err, "evidence", {}) or {}


@functools.lru_cache(maxsize=1024)
def _step_task(atom: str, step_name: str):
    """The step's task, named after its atom with the run named after the step. Made once per
    (atom, step) and shared by every NE: Task.with_options builds a whole new Task (4% of a
    200-NE campaign's engine time when it ran for every step)."""
    return atom_step.with_options(name=atom, task_run_name=step_name)


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="rollback")
def rollback_step(ctx: AtomContext, strategy: str, verify_args: dict[str, Any]) -> dict[str, Any]:
    """Undo the journaled steps newest first (strategy `journal`), then restore-and-verify
    against the backup with the `rollback` atom."""
    undone = [r.to_dict() for r in runner.undo_run(ctx)] if strategy == "journal" else []
    verified = runner.execute("rollback", ctx, verify_args)
    return {"undone": undone, "verified": verified.to_dict()}


def time_scale(host: Host) -> float:
    """Simulated NEs run their clocks faster (inventory `data.time_scale`); real NEs are 1.0."""
    try:
        return float(host.data.get("time_scale", 1.0))
    except (TypeError, ValueError):
        return 1.0


def make_context(host: Host, campaign_id: str, log) -> AtomContext:
    journal = stores.journal()
    return AtomContext(host=host, session=DeviceSession(Endpoint.from_host(host)), journal=journal,
                       backups=stores.backups(), run_id=campaign_id, speed=time_scale(host),
                       baseline=journal.baseline(campaign_id, host.name), log=log)


def _anomaly_form(outcome: NEOutcome, step_name: str, reason: str, evidence: dict[str, Any]) -> str:
    shown = json.dumps(evidence, indent=2, default=str)
    if len(shown) > 3000:
        shown = shown[:3000] + "\n..."
    return (f"## Anomaly on {outcome.ne} ({outcome.ne_type}) at step `{step_name}`\n\n"
            f"**Reason:** {reason}\n\n"
            f"Choose **rollback** to restore the NE's software and configuration from its backup, "
            f"or **continue** to accept the anomaly and go on (say why in the comment).\n\n"
            f"Evidence:\n```json\n{shown}\n```")


# The campaign's say on whether the NE whose run is starting in this context may begin work
# (flows.campaign sets it around the subflow call). The run is created, named and running
# before it asks, so that part of Prefect's cost is off the campaign's concurrency slots.
_admission: contextvars.ContextVar = contextvars.ContextVar("changeline_admission", default=None)


@dataclass
class Admission:
    """What a campaign's gate answers an NE's run, and what the run tells it back."""

    refusal: tuple[str, str] | None = None  # (status, reason): end the run, NE untouched
    outcome: dict[str, Any] | None = None   # set by the run once it is done with the device


@contextmanager
def admitted_by(gate):
    """Runs started in this context enter `gate()` (a context manager yielding an Admission)
    before touching their NE, and leave it once done with the device, their outcome set."""
    token = _admission.set(gate)
    try:
        yield
    finally:
        _admission.reset(token)


def execute_plan(plan, host: Host, campaign_id: str, *, pause_timeout_s: int = 3600) -> NEOutcome:
    """Run an NEPlan step by step; a failed step follows its compiled `on_failure` policy."""
    gate = _admission.get()
    if gate is None:
        return _execute_admitted(plan, host, campaign_id, pause_timeout_s=pause_timeout_s)
    with gate() as admission:
        if admission.refusal is not None:
            status, reason = admission.refusal
            get_run_logger().info("%s: %s", host.name, reason)
            now = time.time()
            outcome = NEOutcome(ne=host.name, ne_type=host.ne_type, campaign_id=campaign_id, status=status,
                                reason=reason, from_version=host.software_version, started_at=now, finished_at=now)
        else:
            outcome = _execute_admitted(plan, host, campaign_id, pause_timeout_s=pause_timeout_s)
        admission.outcome = outcome.to_dict()
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


def _execute_admitted(plan, host: Host, campaign_id: str, *, pause_timeout_s: int) -> NEOutcome:
    """Run the NE's plan, or go on with it from where the journal says an earlier run stood:
    a rollback already decided is finished (with its original cause); otherwise finished steps
    keep their recorded outcomes and every other step is entered, in plan order."""
    logger = get_run_logger()
    journal = stores.journal()
    ctx = make_context(host, campaign_id, logger.info)
    outcome = NEOutcome(ne=host.name, ne_type=host.ne_type, campaign_id=campaign_id,
                        from_version=plan.from_version or host.software_version, to_version=plan.to_version or "",
                        started_at=time.time())
    earlier = journal.change_of(campaign_id, host.name)
    finished = finished_steps(plan.steps, journal.step_records(campaign_id, host.name))
    # Anomalies of steps still to enter are met again there (a pause form left unanswered asks again).
    outcome.anomalies = [a for a in earlier.anomalies if earlier.rollback_cause or a.get("step") in finished]
    outcome.decisions = [d for d in earlier.decisions if earlier.rollback_cause or d.get("step") in finished]
    journal.set_ne_status(campaign_id, host.name, policy.RUNNING, "")
    try:
        if earlier.rollback_cause:
            logger.warning("%s: caught rolling back after %s; finishing the rollback", host.name,
                           earlier.rollback_cause)
            outcome.steps = [finished[s.name] for s in plan.steps if s.name in finished]
            outcome.status = _roll_back(ctx, outcome, plan, cause=earlier.rollback_cause)
        else:
            _run_steps(ctx, outcome, plan, finished, pause_timeout_s=pause_timeout_s)
    finally:
        ctx.session.close()
        outcome.finished_at = time.time()
        if outcome.status == policy.RUNNING:
            # An exception escaped: the NE is where the journal says; resume goes on from there.
            journal.set_ne_status(campaign_id, host.name, policy.RUNNING, "interrupted; resume the campaign")
            outcome.status, outcome.reason = policy.FAILED, "interrupted"
        else:
            journal.set_ne_status(campaign_id, host.name, outcome.status, outcome.reason)
        _write_evidence(outcome)
    return outcome


def _run_steps(ctx: AtomContext, outcome: NEOutcome, plan, finished: dict[str, StepOutcome], *,
               pause_timeout_s: int) -> None:
    logger = get_run_logger()
    journal = stores.journal()
    campaign_id, ne = outcome.campaign_id, outcome.ne
    for step in plan.steps:
        if step.name in finished:
            outcome.steps.append(finished[step.name])
            continue
        ctx.step = step.name
        journal.set_ne_status(campaign_id, ne, policy.RUNNING, f"step {step.name}")
        started = time.time()
        state = _step_task(step.atom, step.name)(
            step.atom, step.args, quote(ctx), step.retries, step.timeout_s, return_state=True)
        if state.is_completed():
            res = state.result()
            done = StepOutcome(step.name, step.atom, "done", res.get("changed", False), res.get("reason", ""),
                               started, time.time() - started, step.gate, res.get("evidence", {}),
                               res.get("diff", ""), step.manual_minutes, step.estimate_s)
            outcome.steps.append(done)
            journal.record_step(campaign_id, ne, step.name, "done", done.to_dict())
            continue
        reason, evidence = step_failure(state)
        failed = StepOutcome(step.name, step.atom, "failed", False, reason, started, time.time() - started,
                             step.gate, evidence, "", step.manual_minutes, step.estimate_s)
        outcome.steps.append(failed)
        journal.record_step(campaign_id, ne, step.name, "failed", failed.to_dict())
        changed = bool(journal.to_undo(campaign_id, ne))
        action = policy.anomaly_action(step.on_failure, changed_anything=changed)
        anomaly = {"step": step.name, "atom": step.atom, "gate": step.gate, "reason": reason,
                   "policy": action, "at": time.time()}
        outcome.anomalies.append(anomaly)
        journal.record_change(campaign_id, ne, outcome.anomalies, outcome.decisions)
        _announce(outcome, anomaly)
        logger.warning("%s: anomaly at %s: %s (policy %s)", ne, step.name, reason, action)
        if action == "pause":
            action = _ask_operator(outcome, step.name, reason, evidence, pause_timeout_s)
            journal.record_change(campaign_id, ne, outcome.anomalies, outcome.decisions)
        if action == "continue":
            journal.record_step(campaign_id, ne, step.name, "accepted", failed.to_dict())
            continue
        if action == "abort":
            outcome.status, outcome.reason = policy.FAILED, f"{step.name}: {reason}"
            return
        outcome.status = _roll_back(ctx, outcome, plan, cause=f"{step.name}: {reason}")
        return
    outcome.status = policy.DONE
    outcome.reason = "reached target" if not outcome.anomalies else \
        f"reached target with {len(outcome.anomalies)} accepted anomaly(ies)"


def _announce(outcome: NEOutcome, anomaly: dict[str, Any]) -> None:
    """A Prefect event per anomaly, so operators can hang automations on it (e.g. start the
    rollback deployment, page someone) from the UI without touching the line."""
    from prefect.events import emit_event

    emit_event(event="changeline.ne.anomaly",
               resource={"prefect.resource.id": f"changeline.ne.{outcome.ne}", "prefect.resource.name": outcome.ne},
               related=[{"prefect.resource.id": f"changeline.campaign.{outcome.campaign_id}",
                         "prefect.resource.role": "campaign"}],
               payload={"ne_type": outcome.ne_type, **{k: v for k, v in anomaly.items() if k != "at"}})


def _ask_operator(outcome: NEOutcome, step_name: str, reason: str, evidence: dict, timeout_s: int) -> str:
    logger = get_run_logger()
    stores.journal().set_ne_status(outcome.campaign_id, outcome.ne, "paused", f"{step_name}: {reason}")
    asked = time.time()
    form = AnomalyDecision.with_initial_data(description=_anomaly_form(outcome, step_name, reason, evidence),
                                             action="rollback")
    try:
        decision = pause_flow_run(wait_for_input=form, timeout=timeout_s, poll_interval=2,
                                  key=f"anomaly-{step_name}")
        action, comment, by = decision.action, decision.comment, "operator"
    except FlowPauseTimeout:
        action, comment, by = "rollback", f"no answer within {timeout_s} s", "timeout"
    outcome.operator_seconds += time.time() - asked
    outcome.decisions.append({"step": step_name, "action": action, "comment": comment, "by": by,
                              "waited_s": round(time.time() - asked, 1)})
    logger.info("%s: decision at %s: %s (%s) %s", outcome.ne, step_name, action, by, comment)
    return action


def _roll_back(ctx: AtomContext, outcome: NEOutcome, plan, *, cause: str) -> str:
    """Undo the NE's journaled steps and restore its backup. The decision is journaled first, so
    an engine killed on the way resumes this rollback with the same cause, never the forward plan."""
    journal = stores.journal()
    journal.record_change(outcome.campaign_id, outcome.ne, outcome.anomalies, outcome.decisions, rollback_cause=cause)
    journal.set_ne_status(outcome.campaign_id, outcome.ne, policy.RUNNING, f"rolling back after {cause}")
    ctx.step = "rollback"
    ctx.session.reconnect()
    strategy = plan.rollback.strategy if plan.rollback else "journal"
    verify_args = dict(plan.rollback.verify.args) if plan.rollback else {}
    started = time.time()  # the report's time from the failed gate to the rollback's start
    state = rollback_step(quote(ctx), strategy, verify_args, return_state=True)
    if state.is_completed():
        done = state.result()
        outcome.rollback = RollbackOutcome(ok=True, started_at=started, reason=done["verified"].get("reason", ""), cause=cause,
                                           undone=done["undone"], verified=done["verified"])
        outcome.reason = f"rolled back after {cause}"
        return policy.ROLLED_BACK
    err = state.result(raise_on_failure=False)
    why = getattr(err, "reason", None) or str(err) or type(err).__name__
    outcome.rollback = RollbackOutcome(ok=False, started_at=started, reason=why, cause=cause,
                                       undone=[e.undo_result for e in journal.entries(outcome.campaign_id, outcome.ne)
                                               if e.status == "undone" and e.undo_result])
    outcome.reason = f"ROLLBACK FAILED after {cause}: {why}"
    return policy.ROLLBACK_FAILED


def _write_evidence(outcome: NEOutcome) -> None:
    folder = stores.evidence_dir(outcome.campaign_id, outcome.ne)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "outcome.json").write_text(json.dumps(outcome.to_dict(), indent=2, default=str))


def _final_state(outcome: NEOutcome) -> State:
    """The NE's run ends in a state named for its outcome - Completed, "Rolled back",
    "Rollback failed", Failed (red), "Deferred", "Skipped" (grey, untouched) - with the reason
    as its message; the outcome travels back to the campaign as the state's data."""
    kind, name = progress.ne_state_name(outcome.status)
    message = outcome.reason if outcome.status != policy.DONE else (outcome.reason or "reached target")
    if outcome.to_version and outcome.status == policy.DONE:
        message = f"{message}: now {outcome.to_version}"
    return State(type=StateType[kind], name=name, message=message, data=outcome.to_dict())


@flow(name="ne-change", flow_run_name="{ne}", persist_result=False, validate_parameters=True)
def ne_change(model: str, inventory: str, ne: str, campaign_id: str, params: dict[str, Any] | None = None,
              on_anomaly: str | None = None, pause_timeout_s: int = 3600):
    """Change one NE with a model. Self-contained parameters, so it also runs as a deployment on a worker."""
    from changeline.models.compile import compile_for_host, load_model

    host = load_inventory(inventory).hosts.get(ne)
    if host is None:
        raise ChangelineError(f"NE {ne} is not in {inventory}")
    plan = compile_for_host(load_model(model), host, params or {}, on_anomaly=on_anomaly)
    return _final_state(execute_plan(plan, host, campaign_id, pause_timeout_s=pause_timeout_s))


@flow(name="ne-change", flow_run_name="{ne}", persist_result=False, validate_parameters=False)
def _ne_change_in_process(*, ne: str = "", plan, host: Host, campaign_id: str, pause_timeout_s: int):
    return _final_state(execute_plan(plan, host, campaign_id, pause_timeout_s=pause_timeout_s))


def ne_change_subflow(*, ne: str = "", plan, host: Host, campaign_id: str, pause_timeout_s: int) -> dict[str, Any]:
    """The per-NE flow as the campaign calls it in-process, with the plan already compiled;
    returns the NE's outcome whatever the run's final state."""
    state = _ne_change_in_process(ne=ne, plan=plan, host=host, campaign_id=campaign_id,
                                  pause_timeout_s=pause_timeout_s, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, dict):
        return result
    raise ChangelineError(f"{ne}: the NE's run crashed: {result}")
