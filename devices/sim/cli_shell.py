"""The NE's SSH CLI: an IOS-like shell that netmiko's `cisco_ios` driver drives reliably.

What netmiko needs (docs/platforms.md, MACHINE.md): the shell echoes input, re-prints
the prompt on a bare Enter, ends prompts in `>` or `#`, accepts `terminal length 0` and
`terminal width 511`, and has `enable`. The terminal line discipline (`LineReader`), the
command resolution and the renderers are pure; `serve_shell` is the thin I/O loop both
shell personalities (this one and the MML one, mml_shell.py) run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import asyncssh

from .ne_xml import format_number
from .profiles import DialScenario, Profile
from .status import NeStatus
from .traffic import DialOutcome

KEY_WIDTH = 12  # `Version      : 1.2.0` is the contract's line


class CliBackend(Protocol):
    name: str
    profile: Profile

    def status(self) -> NeStatus: ...

    def dial_test(self, scenario: DialScenario) -> Awaitable[tuple[DialOutcome, list[str] | None]]: ...


class LineReader:
    """Turns raw terminal input into ordered events: text to echo and completed lines.

    Order matters: when a client types ahead, the echo of the next line must come after
    the output of the current one, as on a real terminal.
    """

    def __init__(self) -> None:
        self._buffer: list[str] = []
        self._after_cr = False

    def feed(self, data: str) -> list[tuple[str, str]]:
        events: list[tuple[str, str]] = []
        echo: list[str] = []

        def flush_echo() -> None:
            if echo:
                events.append(("echo", "".join(echo)))
                echo.clear()

        for ch in data:
            if ch == "\n" and self._after_cr:  # CR LF is one Enter
                self._after_cr = False
                continue
            self._after_cr = ch == "\r"
            if ch in "\r\n":
                echo.append("\r\n")
                flush_echo()
                events.append(("line", "".join(self._buffer)))
                self._buffer.clear()
            elif ch in "\x7f\x08":
                if self._buffer:
                    self._buffer.pop()
                    echo.append("\b \b")
            elif ch == "\x03":  # Ctrl-C abandons the line
                self._buffer.clear()
                echo.append("^C\r\n")
                flush_echo()
                events.append(("line", ""))
            elif ch == "\t" or ch >= " ":
                self._buffer.append(" " if ch == "\t" else ch)
                echo.append(" " if ch == "\t" else ch)
        flush_echo()
        return events


# Command words; a typed word may be any unambiguous prefix (`sh ver`), as on IOS.
COMMANDS: dict[tuple[str, ...], str] = {
    ("show", "version"): "show-version",
    ("show", "software"): "show-software",
    ("show", "alarms"): "show-alarms",
    ("show", "kpi"): "show-kpi",
    ("show", "traffic"): "show-traffic",
    ("dial-test",): "dial-test",
    ("enable",): "enable",
    ("disable",): "disable",
    ("exit",): "exit",
    ("logout",): "logout",
    ("terminal", "length"): "terminal",
    ("terminal", "width"): "terminal",
}
ARGUMENT_COUNT = {"dial-test": 1, "terminal": 1}


def resolve(line: str) -> tuple[str, list[str]] | str:
    """`(command, arguments)` for a typed line, or the error text to print."""
    words = line.split()
    candidates = list(COMMANDS)
    for depth, word in enumerate(words):
        narrowed = [c for c in candidates if len(c) > depth and c[depth].startswith(word)]
        exact = [c for c in narrowed if c[depth] == word]
        narrowed = exact or narrowed
        if not narrowed:
            complete = [c for c in candidates if len(c) == depth]
            if len(complete) == 1:
                return _with_arguments(COMMANDS[complete[0]], words[depth:], line)
            return f"% Unknown command: {line.strip()}"
        if len({c[depth] for c in narrowed}) > 1:
            return f"% Ambiguous command: {line.strip()}"
        candidates = narrowed
    complete = [c for c in candidates if len(c) == len(words)]
    if len(complete) == 1:
        return _with_arguments(COMMANDS[complete[0]], [], line)
    return f"% Incomplete command: {line.strip()}"


def _with_arguments(command: str, arguments: list[str], line: str) -> tuple[str, list[str]] | str:
    expected = ARGUMENT_COUNT.get(command, 0)
    if len(arguments) != expected:
        if not expected:
            return f"% Unknown command: {line.strip()}"
        return f"% Incomplete command: {line.strip()}"
    return command, arguments


def key_values(rows: list[tuple[str, object]]) -> list[str]:
    return [f"{key:<{KEY_WIDTH}} : {value}" for key, value in rows]


def table(headers: tuple[str, ...], rows: list[tuple[object, ...]]) -> list[str]:
    cells = [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()

    return [line(headers), line(tuple("-" * w for w in widths)), *(line(r) for r in cells)]


def render_version(status: NeStatus, description: str) -> list[str]:
    return key_values([
        ("Name", status.name), ("Type", status.ne_type), ("Description", description),
        ("Domain", status.domain), ("Version", status.running_version),
        ("Previous", status.previous_version or "-"), ("Uptime", f"{status.uptime_seconds} s"),
    ])


def render_software(status: NeStatus) -> list[str]:
    lines = key_values([
        ("Running", status.running_version), ("Previous", status.previous_version or "-"),
        ("Installed", ", ".join(status.installed_versions)),
        ("Available", ", ".join(status.available_versions)),
        ("Disk free", f"{status.disk_free_mb} MB of {status.disk_total_mb} MB"),
    ])
    if not status.images:
        return [*lines, "", "No images in /images/"]
    rows = [(i.name, i.version or "-", i.ne_type or "-", i.size, i.state, i.sha256[:16]) for i in status.images]
    return [*lines, "", *table(("IMAGE", "VERSION", "TYPE", "SIZE", "STATE", "SHA256"), rows)]


def render_alarms(status: NeStatus) -> list[str]:
    if not status.alarms:
        return ["No active alarms"]
    rows = [(a.id, a.severity, a.raised_at, a.text) for a in status.alarms]
    return table(("ID", "SEVERITY", "RAISED-AT", "TEXT"), rows)


def render_kpis(status: NeStatus) -> list[str]:
    return table(("KPI", "VALUE", "UNIT"), [(k.name, format_number(k.value), k.unit) for k in status.kpis])


def render_traffic(status: NeStatus) -> list[str]:
    return key_values([("Pool", status.pool or "-"), ("Drained", "yes" if status.drained else "no"),
                       ("Sessions", status.active_sessions)])


def render_dial_test(outcome: DialOutcome, charging_ids: list[str] | None) -> list[str]:
    rows: list[tuple[str, object]] = [
        ("Scenario", outcome.scenario), ("Result", "pass" if outcome.passed else "fail"),
        ("Attempts", outcome.attempts), ("Successes", outcome.successes), ("Latency ms", outcome.latency_ms)]
    if outcome.reason:
        rows.append(("Reason", outcome.reason))
    if charging_ids is not None:
        rows.append(("Charging IDs", ", ".join(charging_ids) or "-"))
    return key_values(rows)


@dataclass
class CliSession:
    """One CLI session's mode and command execution."""

    ne: CliBackend
    privileged: bool = False

    @property
    def prompt(self) -> str:
        return f"{self.ne.name}{'#' if self.privileged else '>'}"

    async def execute(self, line: str) -> tuple[list[str], bool]:
        """Output lines for one typed line, and whether the session ends."""
        if not line.strip():
            return [], False
        resolved = resolve(line)
        if isinstance(resolved, str):
            return [resolved], False
        command, arguments = resolved
        if command in ("exit", "logout", "disable"):
            leaving = command == "logout" or (command == "exit" and not self.privileged)
            self.privileged = False
            return [], leaving
        if command == "enable":
            self.privileged = True
            return [], False
        if command == "terminal":
            return ([], False) if arguments[0].isdigit() else ([f"% Invalid input: {arguments[0]}"], False)
        if command == "dial-test":
            return await self._dial_test(arguments[0]), False
        return self._show(command), False

    def _show(self, command: str) -> list[str]:
        status = self.ne.status()
        renderers: dict[str, Callable[[], list[str]]] = {
            "show-version": lambda: render_version(status, self.ne.profile.description),
            "show-software": lambda: render_software(status),
            "show-alarms": lambda: render_alarms(status),
            "show-kpi": lambda: render_kpis(status),
            "show-traffic": lambda: render_traffic(status),
        }
        return renderers[command]()

    async def _dial_test(self, name: str) -> list[str]:
        scenario = self.ne.profile.dial_tests.get(name)
        if scenario is None:
            known = ", ".join(self.ne.profile.dial_tests)
            return [f"% Unknown scenario: {name} (this {self.ne.profile.ne_type} supports: {known})"]
        return render_dial_test(*await self.ne.dial_test(scenario))

    def show(self, lines: list[str]) -> str:
        return crlf(lines) + self.prompt

    def held(self, data: str) -> str | None:
        return None  # every key is typed into the command line


class ShellSession(Protocol):
    """What `serve_shell` needs of a personality's session."""

    @property
    def prompt(self) -> str: ...

    async def execute(self, line: str) -> tuple[list[str], bool]:
        """Reply lines for one typed line, and whether the session ends."""

    def show(self, lines: list[str]) -> str:
        """What to write for a reply in the shell: the lines, then the prompt (or a More prompt)."""

    def held(self, data: str) -> str | None:
        """The answer to input that is not typed into the command line (a key at a More
        prompt), or None."""


def crlf(lines: list[str]) -> str:
    return "".join(f"{line}\r\n" for line in lines)


_TERMINAL_EVENTS = (asyncssh.BreakReceived, asyncssh.SignalReceived, asyncssh.TerminalSizeChanged)


async def serve_shell(process: asyncssh.SSHServerProcess, session: ShellSession, banner: str) -> None:
    """Serve one SSH session: a single command (`ssh ne 'show version'`) or an interactive shell."""
    if process.command:
        lines, _ = await session.execute(process.command)
        process.stdout.write(crlf(lines))
        process.exit(0)
        return
    reader = LineReader()
    process.stdout.write(f"\r\n{banner}\r\n\r\n{session.prompt}")
    while True:
        try:
            data = await process.stdin.read(4096)
        except _TERMINAL_EVENTS:
            continue
        if not data:
            break
        answer = session.held(data)
        if answer is not None:
            process.stdout.write(answer)
            continue
        for kind, text in reader.feed(data):
            if kind == "echo":
                process.stdout.write(text)
                continue
            lines, leaving = await session.execute(text)
            if leaving:
                process.exit(0)
                return
            process.stdout.write(session.show(lines))
    process.exit(0)


async def run_cli(process: asyncssh.SSHServerProcess, ne: CliBackend) -> None:
    session = CliSession(ne, privileged=True) if process.command else CliSession(ne)
    await serve_shell(process, session, f"changeline simulated {ne.profile.ne_type} {ne.name}")
