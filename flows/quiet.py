"""Expected failures without tracebacks in the run logs.

A refused host key, a wrong password or a failed check is a `ChangelineError` with a reason
the operator must read; Prefect logs every exception a task or flow raises with its traceback,
which buries that reason under frames of engine code in the terminal and the UI. A traceback
still appears for anything else: that is a bug.
"""

from __future__ import annotations

import logging

from changeline.errors import ChangelineError

# The loggers Prefect's engines report task and flow run exceptions on.
_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.engine")


class _DropExpectedTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ChangelineError):
            record.exc_info, record.exc_text = None, None
        return True


_FILTER = _DropExpectedTracebacks()


def quiet_expected_errors() -> None:
    """Install once per process (idempotent): after Prefect's logging is configured."""
    for name in _RUN_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
