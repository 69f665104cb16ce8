"""Run logs that say each thing once, and expected failures without tracebacks.

A refused host key, a wrong password or a failed check is a `ChangelineError` with a reason
the operator must read; Prefect logs every exception a task or flow raises with its traceback,
which buries that reason under frames of engine code in the terminal and the UI. A traceback
still appears for anything else: that is a bug.

Prefect also logs "Finished in state Completed()" for every task run that completes: the task
run's state already says so, and at one line per step that line cost ~2 ms of CPU per step,
client and server (docs/performance.md). The completed line is dropped; a task run that ends
any other way (Failed, Crashed, a named failure such as "Rolled back") keeps its ERROR line
"Finished in state Failed('<reason>')", and the atom's own line for the step is untouched.
Dropped too: "Task run failed with state: <repr>", which Prefect logs just before that line
for a task that returned a failed state - the same news with the state's whole result (a
step's evidence, an NE's outcome) and an empty traceback. A task that raised keeps its
"Task run failed with exception" line and traceback.
"""

from __future__ import annotations

import logging

from changeline.errors import ChangelineError

# The loggers Prefect's engines report task and flow run exceptions on.
_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.engine")
# Prefect's task engine (TaskRunEngine.log_finished_message) logs on this one: INFO when the
# run completed, ERROR otherwise. get_run_logger() inside a task logs on it too (the atom's line).
_TASK_RUN_LOGGER = "prefect.task_runs"
_FINISHED = "Finished in state "
_FAILED_WITH_STATE = "Task run failed with state: "


class _DropExpectedTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ChangelineError):
            record.exc_info, record.exc_text = None, None
        return True


class _DropRepeatedTaskLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            return True
        if record.msg.startswith(_FINISHED):
            return record.levelno >= logging.WARNING
        if record.msg.startswith(_FAILED_WITH_STATE):
            return bool(record.exc_info and record.exc_info[1] is not None)
        return True


_FILTER = _DropExpectedTracebacks()
_REPEATED = _DropRepeatedTaskLines()


def quiet_expected_errors() -> None:
    """Install once per process (idempotent; the campaign and NE flows call it too, so a
    process that runs them without the CLI - a worker, the benchmark - gets the same logs)."""
    for name in _RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    task_runs = logging.getLogger(_TASK_RUN_LOGGER)
    if _REPEATED not in task_runs.filters:
        task_runs.addFilter(_REPEATED)
