"""What an NE's run is in the campaign's process (the `ne_run` setting), and what a task run
inside it is (the `step_runs` setting): pure decisions, no Prefect import, so the command line
can check the options before Prefect is imported.

`ne_run`: `flow` (the default): a subflow run per NE; `task`: a task run of the campaign's flow
run, a flow run still for an NE whose plan may pause (flows/ne_flow.py says what each shows).
`step_runs`: `step` (the default): a task run per step; `stage`: a task run per model stage
(prepare, stage-software, activate, verify), each step one log line in it.
"""

from __future__ import annotations

import os

from changeline.errors import ChangelineError

NE_RUN_SETTING = "CHANGELINE_NE_RUN"
NE_RUN_KINDS = ("flow", "task")


def _choice(name: str, variable: str, choices: tuple[str, ...], value: str | None) -> str:
    """The value given, else the environment variable, else the first choice."""
    raw = (value if value is not None else os.environ.get(variable, "")).strip() or choices[0]
    if raw not in choices:
        raise ChangelineError(f"{name} ({variable}) must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def ne_run_setting(value: str | None = None) -> str:
    """The `ne_run` setting: the value given, else CHANGELINE_NE_RUN, else `flow`."""
    return _choice("ne_run", NE_RUN_SETTING, NE_RUN_KINDS, value)


STEP_RUNS_SETTING = "CHANGELINE_STEP_RUNS"
STEP_RUNS = ("step", "stage")


def step_runs_setting(value: str | None = None) -> str:
    """The `step_runs` setting: the value given, else CHANGELINE_STEP_RUNS, else `step`."""
    return _choice("step_runs", STEP_RUNS_SETTING, STEP_RUNS, value)


def may_pause(plan) -> bool:
    """Whether an anomaly of this plan may wait for an operator's answer on a pause form."""
    return any(step.on_failure == "pause" for step in plan.steps)


def ne_run_kind(setting: str, plan) -> str:
    """What an NE's run is: a flow run if the setting says so or its plan may pause (the pause
    form belongs to a flow run), else a task run."""
    return "flow" if setting == "flow" or may_pause(plan) else "task"
