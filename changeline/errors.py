"""One error hierarchy for all of changeline.

Only `TransientError` subclasses are ever retried (connection refused, timeouts, a
session dropped by an NE restart). Everything else stops the line with a readable
reason that reaches the operator unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ChangelineError(Exception):
    """Root of every error changeline raises on purpose."""

    def __init__(self, message: str, *, evidence: dict | None = None) -> None:
        super().__init__(message)
        self.reason = message
        self.evidence = evidence or {}


# --- input problems: found before anything touches a network element -------------

@dataclass(frozen=True)
class Problem:
    """One located problem in an input file: `FILE:LINE:COL: field: message`."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class InputError(ChangelineError):
    """A malformed model, inventory, topology or argument; carries every problem at once."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, Problem):
            problems = [problems]
        elif isinstance(problems, str):
            problems = [Problem("<input>", 0, 0, "", problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --- talking to devices ------------------------------------------------------------

class DeviceError(ChangelineError):
    """Something went wrong while talking to a network element."""

    def __init__(self, message: str, *, host: str = "", evidence: dict | None = None) -> None:
        super().__init__(f"{host}: {message}" if host else message, evidence=evidence)
        self.host = host


class TransientError(DeviceError):
    """Worth retrying with backoff: the NE may be restarting or the network blipped."""


class ConnectError(TransientError):
    """TCP connect or SSH handshake failed."""


class DeviceTimeout(TransientError):
    """The NE did not answer in time."""


class SessionDropped(TransientError):
    """The session closed under us (an NE restart, a dropped connection)."""


class StepTimeout(DeviceError):
    """A step used up its time budget (the model's per-step `timeout`). Not transient:
    retrying would only run further past the budget the change window was planned with."""


class AuthenticationError(DeviceError):
    """Credentials refused; retrying would only lock the account."""


class HostKeyError(DeviceError):
    """The NE's SSH host key is unknown or changed: never connect blindly."""


class RpcError(DeviceError):
    """The NE answered a NETCONF RPC with <rpc-error>."""

    def __init__(self, message: str, *, host: str = "", tag: str = "", evidence: dict | None = None):
        super().__init__(message, host=host, evidence=evidence)
        self.tag = tag


class CommandError(DeviceError):
    """A CLI command was rejected by the NE."""


# --- the production line -----------------------------------------------------------

class CheckFailed(ChangelineError):
    """A pre-check, gate or post-check found the NE not as required."""


class BackupError(ChangelineError):
    """A backup could not be stored durably and read back; nothing may change."""


class RollbackFailed(ChangelineError):
    """A rollback ran but the NE is not verifiably back where it started."""


class WindowClosed(ChangelineError):
    """The change window cannot fit this work; it is deferred, not attempted."""


class OutcomeError(ChangelineError):
    """An NE outcome (written or read back) is not in the shape changeline.outcomes defines."""


@dataclass
class Retry:
    """Backoff policy for transient errors (pure data so flows and atoms share it)."""

    attempts: int = 5
    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 10.0
    delays: list[float] = field(init=False)

    def __post_init__(self) -> None:
        d, out = self.first_delay, []
        for _ in range(max(self.attempts - 1, 0)):
            out.append(min(d, self.max_delay))
            d *= self.factor
        self.delays = out
