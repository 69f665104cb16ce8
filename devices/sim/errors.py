"""The simulator's own error root.

The simulator is a separate program (it stands for NEs someone else built and runs as its
own process or container), so its errors share no class with changeline's: code that
catches `ChangelineError` around a device never mistakes the simulator's own failure for
an NE's answer. What it does share is the exit-code convention of every changeline
command (changeline/errors.py), so `changeline sim ...` and `python -m
changeline.devices.sim` exit like the rest. Bad topology or profile files still raise the
located `InputError` of changeline.errors: the simulator reads them with the same loader.
"""

from __future__ import annotations

from changeline.errors import EXIT_FAILED


class SimError(Exception):
    """Root of every error the simulator raises on purpose; `reason` is what a person reads."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.reason = message
