"""The per-NE run: the engine's `run_plan` for one NE, with Prefect around it.

Prefect only wraps the engine (changeline.engine.run): `PrefectSteps` is the processor that
makes each step a named task run, the rollback a task run, an anomaly a Prefect event and a
paused anomaly a form in the UI. The run ends in a state named for the NE's outcome.

In the campaign's process an NE's run is, by the `ne_run` setting (CHANGELINE_NE_RUN):
- `flow` (the default): a subflow run named after the NE, its steps its task runs - the NE has
  a page of its own in the UI, with its steps, logs and pause form;
- `task`: a task run of the campaign's flow run named after the NE, its steps task runs nested
  in it (named "<NE> <step>").
Either way the NE's run carries the campaign, wave, type and pool tags; its steps carry none
(`PrefectSteps`: each tagged task run costs a request of its own).
Inside it, by the `step_runs` setting (CHANGELINE_STEP_RUNS): `step` (the default), a task run per
step; `stage`, a task run per model stage (prepare, stage-software, activate, verify), each step
one log line in it, a stage stopped by a failed step Failed with the step and its reason. The
rollback is its own task run either way.
  A subflow run costs ~0.25 CPU-s per NE, a task run ~0.014 (docs/performance.md). An NE whose
  plan may pause for an operator still gets a flow run: only a flow run can hold a pause form.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import StateType
from prefect.context import FlowRunContext, TagsContext, TaskRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Failed, State
from prefect.transactions import CommitMode, transaction
from prefect.utilities.annotations import quote

from changeline.devices.inventory import Host, load_inventory
from changeline.engine.campaign import Admission
from changeline.engine.outcomes import NEOutcome, StepOutcome
from changeline.engine.run import Decision, NeRun, Processor, run_plan
from changeline.errors import ChangelineError
from changeline.engine import policy
from changeline.flows import progress, quiet, stores
from changeline.flows.ne_runs import step_runs_setting


class AnomalyDecision(RunInput):
    """The operator's answer on the pause form in the Prefect UI."""

    action: Literal["rollback", "continue"] = "rollback"
    comment: str = ""


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="{label}")
def atom_step(atom: str, args: dict[str, Any], call, label: str = "") -> StepOutcome:
    """One atom against one NE (the engine's call: the model step's retries and timeout). A
    failed check is an anomaly the engine handles as designed: the task run ends Failed with
    the reason as its message, and logs one line, no traceback (a bug still raises, with it)."""
    result = call()
    _log_step(atom, result)
    return Failed(message=result.reason, data=result) if not result.ok else result


def _log_step(what: str, result: StepOutcome) -> None:
    logger = get_run_logger()
    if not result.ok:
        logger.warning("%s failed: %s", what, result.reason)
    else:
        logger.info("%s: %s", what, result.reason or ("changed" if result.changed else "nothing to change"))


@functools.lru_cache(maxsize=256)
def _step_task(atom: str):
    """The step's task, named after its atom; its run is named by its `label` (the step, or in
    a task-run NE "<NE> <step>"). Made once per atom and shared by every NE: Task.with_options
    builds a whole new Task (4% of a 200-NE campaign's engine time when it ran for every step)."""
    return atom_step.with_options(name=atom)


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="{label}")
def stage_steps(call, label: str = ""):
    """One model stage's steps (`step_runs: stage`), each logged as one line; stopped by a
    failed step, the run ends Failed with that step and its reason (the engine decides the
    anomaly after it, outside)."""
    failed = call()
    if failed is None:
        return None
    step, result = failed
    return Failed(message=f"{step.name}: {result.reason}", data=failed)


@functools.lru_cache(maxsize=64)
def _stage_task(stage: str):
    return stage_steps.with_options(name=stage)


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="rollback")
def rollback_step(call) -> dict[str, Any]:
    """The engine's undo-then-verify (changeline.engine.run.undo_and_verify) as one task run."""
    return call()


def _result_of(state):
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    return result


class PrefectSteps(Processor):
    """Each step (or stage, by `step_runs`) a task run, the rollback a task run, each anomaly
    an event, a paused anomaly a form in the UI (unanswered within the timeout: rolled back).
    `prefix` goes before the step's name in its task run's (an NE run as a task run shares its
    list with every NE)."""

    def __init__(self, prefix: str = "", step_runs: str | None = None) -> None:
        self.prefix, self.step_runs = prefix, step_runs_setting(step_runs)

    def run_stage(self, run: NeRun, stage: str, steps: list, call):
        if self.step_runs != "stage":
            return call()
        with _untagged():
            return _result_of(_stage_task(stage)(quote(call), label=self.prefix + stage, return_state=True))

    def run_step(self, run: NeRun, step, call) -> StepOutcome:
        if self.step_runs == "stage":  # inside the stage's task run
            result = call()
            _log_step(f"{step.name} ({step.atom})", result)
            return result
        with _untagged():
            return _result_of(_step_task(step.atom)(step.atom, step.args, quote(call), label=self.prefix + step.name,
                                                    return_state=True))

    def run_rollback(self, run: NeRun, call) -> dict[str, Any]:
        rollback = rollback_step.with_options(task_run_name=f"{self.prefix}rollback") if self.prefix else rollback_step
        with _untagged():
            return _result_of(rollback(quote(call), return_state=True))

    def anomaly(self, run: NeRun, outcome: NEOutcome, anomaly: dict[str, Any]) -> None:
        """So operators can hang automations on it (start the rollback deployment, page someone)
        from the UI without touching the line."""
        from prefect.events import emit_event

        emit_event(event="changeline.ne.anomaly",
                   resource={"prefect.resource.id": f"changeline.ne.{outcome.ne}", "prefect.resource.name": outcome.ne},
                   related=[{"prefect.resource.id": f"changeline.campaign.{outcome.campaign_id}",
                             "prefect.resource.role": "campaign"}],
                   payload={"ne_type": outcome.ne_type, **{k: v for k, v in anomaly.items() if k != "at"}})

    def decide(self, run: NeRun, outcome: NEOutcome, step, reason: str, evidence: dict[str, Any],
               timeout_s: int) -> Decision:
        form = AnomalyDecision.with_initial_data(description=_anomaly_form(outcome, step.name, reason, evidence),
                                                 action="rollback")
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=timeout_s, poll_interval=2, key=f"anomaly-{step.name}")
        except FlowPauseTimeout:
            return Decision("rollback", f"no answer within {timeout_s} s", "timeout")
        return Decision(answer.action, answer.comment, "operator")


def _untagged() -> TagsContext:
    """A step's task run without the NE's tags (the NE's run has them; the UI filters NEs by
    them). Prefect's task engine asks the server for a slot of every tag's concurrency limit
    (`tag:NAME`) before each tagged task run, whether or not such a limit exists; it remembers
    "none exist" for a set of tags for 5 s only, and keeps a service thread per set. An NE's
    tags (its pool, its wave) are its own, so that was a request every 5 s of each NE's work: at
    N=50, 210 of a campaign's 278 lock requests, 3 times the NEs' own (docs/performance.md)."""
    return TagsContext(current_tags=set())


def _anomaly_form(outcome: NEOutcome, step_name: str, reason: str, evidence: dict[str, Any]) -> str:
    shown = json.dumps(evidence, indent=2, default=str)
    if len(shown) > 3000:
        shown = shown[:3000] + "\n..."
    return (f"## Anomaly on {outcome.ne} ({outcome.ne_type}) at step `{step_name}`\n\n"
            f"**Reason:** {reason}\n\n"
            f"Choose **rollback** to restore the NE's software and configuration from its backup, "
            f"or **continue** to accept the anomaly and go on (say why in the comment).\n\n"
            f"Evidence:\n```json\n{shown}\n```")


def ne_run(host: Host, campaign_id: str, *, pause_timeout_s: int = 3600, admission: Admission | None = None) -> NeRun:
    """The engine's view of one NE in this process: the line's stores, logging to the current run."""
    logger = get_run_logger()
    return NeRun(host=host, campaign_id=campaign_id, journal=stores.journal(), backups=stores.backups(),
                 evidence_dir=stores.evidence_dir(campaign_id, host.name), log=logger.info, warn=logger.warning,
                 pause_timeout_s=pause_timeout_s, admission=admission)


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

    quiet.quiet_expected_errors()
    host = load_inventory(inventory).hosts.get(ne)
    if host is None:
        raise ChangelineError(f"NE {ne} is not in {inventory}")
    plan = compile_for_host(load_model(model), host, params or {}, on_anomaly=on_anomaly)
    return _final_state(run_plan(plan, ne_run(host, campaign_id, pause_timeout_s=pause_timeout_s), [PrefectSteps()]))


@flow(name="ne-change", flow_run_name="{ne}", persist_result=False, validate_parameters=False)
def _ne_change_in_process(*, ne: str = "", plan, host: Host, campaign_id: str, pause_timeout_s: int,
                          admission: Admission, started: Callable[[str, str], None]):
    started("flow-run", str(FlowRunContext.get().flow_run.id))
    run = ne_run(host, campaign_id, pause_timeout_s=pause_timeout_s, admission=admission)
    return _final_state(run_plan(plan, run, [PrefectSteps()]))


@task(name="ne-change", task_run_name="{ne}", cache_policy=NO_CACHE, persist_result=False)
def _ne_change_task(*, ne: str = "", plan, host: Host, campaign_id: str, pause_timeout_s: int,
                    admission: Admission, started: Callable[[str, str], None]):
    started("task-run", str(TaskRunContext.get().task_run.id))
    run = ne_run(host, campaign_id, pause_timeout_s=pause_timeout_s, admission=admission)
    # Each step commits as it ends: nested in the NE's task run, a step joins the NE's Prefect
    # transaction, and a failed step would roll it back - relabelling every step before it
    # "RolledBack" (Prefect's undo of cached results, not the NE's rollback).
    with transaction(commit_mode=CommitMode.EAGER):
        return _final_state(run_plan(plan, run, [PrefectSteps(prefix=f"{ne} ")]))


def ne_change_in_process(kind: str, *, ne: str, plan, host: Host, campaign_id: str, pause_timeout_s: int,
                         admission: Admission, started: Callable[[str, str], None]) -> dict[str, Any]:
    """The NE's run as the campaign calls it in-process (`kind`: flow or task, ne_run_kind), with
    the plan already compiled and the NE's admission (its run is made and running before the NE
    waits for its turn, so the Prefect bookkeeping that starts a run holds no lock, pool turn or
    slot); `started(kind, id)` is told the run's id once it runs. Returns the NE's outcome
    whatever the run's final state."""
    if kind == "flow":
        state = _ne_change_in_process(ne=ne, plan=plan, host=host, campaign_id=campaign_id,
                                      pause_timeout_s=pause_timeout_s, admission=admission, started=started,
                                      return_state=True)
    else:  # quoted: a task's inputs are otherwise walked for upstream futures
        state = _ne_change_task(ne=ne, plan=quote(plan), host=quote(host), campaign_id=campaign_id,
                                pause_timeout_s=pause_timeout_s, admission=quote(admission), started=quote(started),
                                return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, dict):
        return result
    raise ChangelineError(f"{ne}: the NE's run crashed: {result}")
