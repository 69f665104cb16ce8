"""One error hierarchy for all of changeline.

Only `TransientError` subclasses are ever retried (connection refused, timeouts, a
session dropped by an NE restart). Everything else stops the line with a readable
reason that reaches the operator unchanged.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


# --- exit codes: what a scheduler or pipeline calling `changeline` can rely on -------------

EXIT_OK = 0              # done: every targeted NE reached its target (or the command did its job)
EXIT_NOT_AT_TARGET = 1   # the work ran, and some NE did not reach its target (failed, rolled back, deferred)
EXIT_BAD_INPUT = 2       # bad arguments or input files; nothing was started
EXIT_FAILED = 3          # a valid request could not be carried out (server, simulator, device, library)
EXIT_INTERNAL = 70       # a bug: the traceback is printed (EX_SOFTWARE)
EXIT_INTERRUPTED = 130   # Ctrl-C


class ChangelineError(Exception):
    """Root of every error changeline raises on purpose."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, evidence: dict | None = None) -> None:
        super().__init__(message)
        self.reason = message
        self.evidence = evidence or {}


# --- values in messages --------------------------------------------------------------
#
# Messages end up in terminals, CI logs and reports. A value written in the wrong place may be
# a password or a token (`timeout: Bearer eyJ...`), so a message shows a string only when it is
# short, plain and does not look like a credential; otherwise it says what kind of value it was.

_CREDENTIAL = re.compile(
    r"(?i)(bearer\s|basic\s|token|passw|secret|api[_-]?key|private|-----BEGIN|"
    r"^(ghp|gho|ghs|github_pat|glpat|xox[abprs]|sk|pk|rk|AKIA|ASIA|AIza|ya29|hf)[_.-]|^eyJ)")
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:/@+-]{0,39}$")


def looks_like_secret(text: str) -> bool:
    """A credential by its shape: a known prefix or keyword, or a long random-looking word."""
    if _CREDENTIAL.search(text) or credential_kind(text):
        return True
    word = text.strip()
    if len(word) >= 20 and " " not in word:
        classes = sum(bool(re.search(p, word)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^A-Za-z0-9]"))
        return classes >= 3
    return False


def shown(value: object) -> str:
    """A value as a message may show it: never a string that could be a secret."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} (not a finite number)"
    if isinstance(value, (int, float)):
        return f"{value!r} (a number)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        if looks_like_secret(value):
            return "a string that looks like a credential (not shown; if it is one, rotate it)"
        return repr(value) if _PLAIN.match(value) else f"a string of {len(value)} characters (not shown)"
    return f"a {type(value).__name__}"


def quoted(value: str) -> str:
    """A name the operator typed (campaign id, selector, option value), quoted so a stray
    character is visible; still never one that looks like a credential."""
    if looks_like_secret(value):
        return shown(value)
    return repr(value) if len(value) <= 80 else repr(value[:77] + "...")


_SECRET_WORD = re.compile(r"(?i)(bearer|\bbasic)\s+[A-Za-z0-9._~+/=-]{8,}|"
                          r"\b(ghp|gho|ghs|github_pat|glpat|xox[abprs]|AKIA|ASIA|AIza|ya29)[_.-]?[A-Za-z0-9_-]{8,}|"
                          r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9._-]+|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END[^-]*-----|$)")


def redact(text: str) -> str:
    """Last line of defence before a message is printed: mask credential-shaped words."""
    return _SECRET_WORD.sub("<redacted>", text)


_SECRET_PATTERNS = (
    (re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@{}]+:[^/\s@{}]+@"), "a URL with a password"),
    (re.compile(r"(?i)<\s*(?:\w+:)?(?:password|passwd|secret|private-key|api-key|token|community)\s*>\s*[^<\s]"),
     "an XML credential element"),
    (re.compile(r"(?i)\b(?:password|passwd|pwd|secret|token|api[_-]?key)\s*=\s*['\"]?[^\s'\"{]{4,}"),
     "an assigned password"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), "a GitHub token"),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\."), "a JSON Web Token"),
    (re.compile(r"(?i)\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), "an HTTP authorization header"),
)


def credential_kind(text: str) -> str | None:
    """What kind of secret `text` looks like, or None."""
    for pattern, what in _SECRET_PATTERNS:
        if pattern.search(text):
            return what
    for token in re.findall(r"[A-Za-z0-9+/=_-]{32,}", text):
        if re.fullmatch(r"[0-9a-fA-F]+", token):
            continue  # checksums
        if not (re.search(r"[a-z]", token) and re.search(r"[A-Z]", token) and re.search(r"\d", token)):
            continue
        if _entropy(token) >= 4.2:
            return "a high-entropy token"
    return None


def _entropy(text: str) -> float:
    counts = {c: text.count(c) for c in set(text)}
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


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
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        text = f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        return redact(text)


class InputError(ChangelineError):
    """A malformed model, inventory, topology or argument; carries every problem at once."""

    exit_code = EXIT_BAD_INPUT

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


class StateStoreError(ChangelineError):
    """The state store (journal, backups) cannot be reached or refused a write: nothing may change."""


class BackupError(ChangelineError):
    """A backup could not be stored durably and read back; nothing may change."""


class RollbackFailed(ChangelineError):
    """A rollback ran but the NE is not verifiably back where it started."""


class OutcomeError(ChangelineError):
    """An NE outcome (written or read back) is not in the shape changeline.engine.outcomes defines."""
