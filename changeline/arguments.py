"""Command-line values, checked before anything starts (server, simulator, NE).

One check per kind of value; a command collects the problems of all its arguments and
raises them together as one InputError, each naming its option (`<command line>: --window:
...`). Files named on the command line are read by their own loaders (model, inventory,
topology), which report FILE:LINE:COL.
"""

from __future__ import annotations

import ipaddress
import math
import re
from datetime import datetime, timezone
from pathlib import Path

from changeline.errors import InputError, Problem, quoted

COMMAND_LINE = "<command line>"
_PATH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def path_name_problem(name: str) -> str | None:
    """Why `name` (a campaign id, an NE name) cannot be one path component under
    CHANGELINE_HOME - `../../x` would write outside it - or None."""
    if isinstance(name, str) and _PATH_NAME.match(name) and name not in (".", ".."):
        return None
    return "must be letters, digits, '.', '_' or '-' (at most 128, not starting with '.' or '-')"


class Arguments:
    """Collects the problems of one command's arguments; `done()` raises them all at once."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, option: str, message: str) -> None:
        self.problems.append(Problem(COMMAND_LINE, 0, 0, option, message))

    def done(self) -> None:
        if self.problems:
            raise InputError(self.problems)

    # --- kinds of value ------------------------------------------------------------------

    def file(self, option: str, path: str | Path | None) -> None:
        if path is None:
            return
        p = Path(path)
        if not p.exists():
            self.problems.append(Problem(str(path), 0, 0, option, "file not found"))
        elif not p.is_file():
            self.problems.append(Problem(str(path), 0, 0, option, "not a regular file"))

    def directory(self, option: str, path: str | Path | None, *, may_create: bool = False) -> None:
        """An existing directory, or (may_create) one whose nearest existing parent is a directory."""
        if path is None:
            return
        p = Path(path)
        if p.exists():
            if not p.is_dir():
                self.problem(option, f"{path}: exists and is not a directory")
            return
        if not may_create:
            self.problem(option, f"{path}: directory does not exist")
            return
        parent = p.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            self.problem(option, f"{path}: cannot be created, {parent} is not a directory")

    def name(self, option: str, value: str | None) -> None:
        if value:
            wrong = path_name_problem(value)
            if wrong:
                self.problem(option, f"{quoted(value)} {wrong}")

    def number(self, option: str, value: float | None, *, minimum: float | None = None,
               above: float | None = None, maximum: float | None = None) -> None:
        """A finite number within bounds (`above` is exclusive); None means "not given"."""
        if value is None:
            return
        if not math.isfinite(value):
            self.problem(option, f"must be a finite number, got {value!r}")
        elif minimum is not None and value < minimum:
            self.problem(option, f"must be at least {minimum:g}, got {value:g}")
        elif above is not None and value <= above:
            self.problem(option, f"must be more than {above:g}, got {value:g}")
        elif maximum is not None and value > maximum:
            self.problem(option, f"must be at most {maximum:g}, got {value:g}")

    def port(self, option: str, value: int | None) -> None:
        if value is not None and not 0 < value < 65536:
            self.problem(option, f"must be a port number (1-65535), got {value}")

    def ipv4(self, option: str, value: str | None) -> None:
        if value is None:
            return
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            self.problem(option, f"must be an IPv4 address, got {quoted(value)}")

    def choice(self, option: str, value: str | None, choices: tuple[str, ...] | list[str]) -> None:
        if value is not None and value not in choices:
            self.problem(option, f"{quoted(value)} is not one of {', '.join(choices)}")

    def deployment(self, option: str, value: str | None) -> None:
        if value is not None and not _DEPLOYMENT.match(value):
            self.problem(option, f"{quoted(value)} is not FLOW/DEPLOYMENT (e.g. ne-change/worker)")

    def params(self, option: str, pairs: list[str] | None) -> dict[str, str]:
        out: dict[str, str] = {}
        for pair in pairs or []:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                self.problem(option, "expected KEY=VALUE, got a value without '=' or without a key")
                continue
            out[key.strip()] = value
        return out

    def window_end(self, option: str, value: str | None, *, now: datetime) -> datetime | None:
        if not value:
            return None
        try:
            end = datetime.fromisoformat(value)
        except ValueError:
            self.problem(option, f"not an ISO 8601 time: {quoted(value)} (e.g. 2026-11-28T04:00+08:00)")
            return None
        end = end if end.tzinfo else end.replace(tzinfo=timezone.utc)
        if end <= now:
            self.problem(option, f"{end.isoformat()} is not in the future (now {now:%Y-%m-%dT%H:%M:%S%z})")
        return end
