"""The simulator's second personality: an NE whose software lifecycle and state are MML
commands on its SSH shell, in the style of telecom man-machine language.

    MML:amf-1>LST SOFTWARE:;
    +++    AMF-1        2026-12-01 22:50:00
    O&M    #12
    %%LST SOFTWARE:;%%
    RETCODE = 0  Operation succeeded.
    ...
    ---    END

A command is `VERB OBJECT: NAME=VALUE, ...;`. Every reply carries a RETCODE (0 is
success, anything else the NE's refusal); long replies page behind a `---- More ----`
prompt until `SET SCREEN: PAGING=OFF;`; `INS SOFTWARE` runs for minutes and prints
PROGRESS lines while it works. Parsing, rendering and paging are pure; the I/O loop is the
CLI's (cli_shell.serve_shell). The configuration stays on NETCONF (docs/platforms.md).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import asyncssh

from .cli_shell import crlf, serve_shell
from .ne_xml import format_number
from .netconf_engine import RpcFault
from .status import NeStatus
from .traffic import DialOutcome

logger = logging.getLogger(__name__)
MML_PLATFORM = "changeline-mml"
PAGE_LINES = 20
MORE = "---- More ( Press 'Q' to break ) ----"
KEY_WIDTH = 18
OK, INTERNAL_ERROR, REFUSED, UNKNOWN_COMMAND, BAD_PARAMETER = 0, 1, 1001, 2001, 2002

_COMMAND = re.compile(r"^\s*([A-Za-z]{2,4})\s+([A-Za-z]+)\s*:\s*(.*?)\s*;\s*$")
_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*("([^"]*)"|[^,"]*)\s*(?:,|$)')
# command -> the parameters it requires
COMMANDS: dict[str, tuple[str, ...]] = {
    "DSP NE": (), "LST SOFTWARE": (), "LST ALMAF": (), "DSP KPI": (),
    "INS SOFTWARE": ("IMAGE",), "ACT SOFTWARE": ("VERSION",), "RBK SOFTWARE": (),
    "STR DIALTEST": ("SCENARIO",), "BLK TRAFFIC": (), "UBL TRAFFIC": (), "SET SCREEN": ("PAGING",),
}


def parse_command(line: str) -> tuple[str, dict[str, str]] | tuple[int, str]:
    """`(command, params)` for a typed line, or `(retcode, why)` when it is not a command."""
    match = _COMMAND.match(line)
    if not match:
        return BAD_PARAMETER, f"Syntax error: expected VERB OBJECT: PARAM=VALUE;, got {line.strip()!r}"
    command = f"{match.group(1).upper()} {match.group(2).upper()}"
    if command not in COMMANDS:
        return UNKNOWN_COMMAND, f"Unknown command: {command}"
    params: dict[str, str] = {}
    rest = match.group(3)
    while rest.strip():
        param = _PARAM.match(rest)
        if not param:
            return BAD_PARAMETER, f"Syntax error in parameters: {rest.strip()!r}"
        value = param.group(3) if param.group(3) is not None else param.group(2).strip()
        params[param.group(1).upper()] = value
        rest = rest[param.end():]
    missing = [p for p in COMMANDS[command] if not params.get(p)]
    if missing:
        return BAD_PARAMETER, f"Missing parameter: {', '.join(missing)}"
    return command, params


def reply(ne_name: str, seq: int, command: str, code: int, text: str, body: list[str] | None = None,
          results: int | None = None, now: datetime | None = None) -> list[str]:
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"+++    {ne_name.upper():<12} {stamp}", f"O&M    #{seq}", f"%%{command}%%", f"RETCODE = {code}  {text}"]
    if body:
        lines += ["", *body, "", f"(Number of results = {results if results is not None else 1})"]
    return [*lines, "", "---    END"]


def key_values(rows: list[tuple[str, Any]]) -> list[str]:
    return [f"  {key:>{KEY_WIDTH}}  =  {value}" for key, value in rows]


def table(headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    cells = [tuple(str(c) for c in row) for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [headers, *cells]]


def render_ne(status: NeStatus) -> list[str]:
    return ["NE information", "--------------", *key_values([
        ("NE name", status.name), ("NE type", status.ne_type), ("Running version", status.running_version),
        ("Previous version", status.previous_version or "-"),
        ("Available versions", ", ".join(status.available_versions)), ("Uptime s", status.uptime_seconds),
        ("CPU percent", format_number(status.cpu_percent)), ("Disk total MB", status.disk_total_mb),
        ("Disk free MB", status.disk_free_mb), ("Pool", status.pool or "-"),
        ("Drained", "YES" if status.drained else "NO"), ("Active sessions", status.active_sessions)])]


def render_software(status: NeStatus) -> tuple[list[str], int]:
    rows = [(i.name, i.version or "-", i.ne_type or "-", i.size, i.state.upper(), i.sha256 or "-") for i in status.images]
    return ["Software images", "---------------",
            *table(("Image name", "Version", "NE type", "Size", "State", "SHA256"), rows)], len(rows)


def render_alarms(status: NeStatus) -> tuple[list[str], int]:
    rows = [(a.id, a.severity.capitalize(), a.raised_at, a.text) for a in status.alarms]
    return ["Active alarms", "-------------", *table(("Alarm ID", "Severity", "Raised at", "Text"), rows)], len(rows)


def render_kpis(status: NeStatus) -> tuple[list[str], int]:
    rows = [(k.name, format_number(k.value), k.unit) for k in status.kpis]
    return ["KPIs", "----", *table(("KPI name", "Value", "Unit"), rows)], len(rows)


def render_dial(outcome: DialOutcome, charging_ids: list[str] | None) -> list[str]:
    return ["Dial test result", "----------------", *key_values([
        ("Scenario", outcome.scenario), ("Result", "PASS" if outcome.passed else "FAIL"),
        ("Attempts", outcome.attempts), ("Successes", outcome.successes), ("Latency ms", outcome.latency_ms),
        ("Reason", outcome.reason or "-"), ("Charging IDs", ", ".join(charging_ids or []) or "-")])]


def pages(lines: list[str], size: int = PAGE_LINES) -> list[list[str]]:
    return [lines[i:i + size] for i in range(0, len(lines), size)] or [[]]


@dataclass
class MmlSession:
    ne: Any  # SimulatedNE
    paging: bool = True
    seq: int = 0
    pending: list[list[str]] = field(default_factory=list)  # pages still to show
    progress: Callable[[str], None] | None = None  # where PROGRESS lines go while a command runs

    @property
    def prompt(self) -> str:
        return f"MML:{self.ne.name}>"

    async def execute(self, line: str, progress=None) -> tuple[list[str], bool]:
        """Reply lines for one typed line and whether the session ends."""
        if not line.strip():
            return [], False
        if line.strip().upper().rstrip(":;") in ("EXIT", "QUIT", "LGO"):
            return [], True
        self.seq += 1
        parsed = parse_command(line)
        if isinstance(parsed[0], int):
            return reply(self.ne.name, self.seq, line.strip(), parsed[0], parsed[1]), False
        command, params = parsed
        try:
            text, body, results = await self._run(command, params, progress or self.progress)
        except RpcFault as fault:
            return reply(self.ne.name, self.seq, line.strip(), REFUSED, fault.message), False
        except Exception:  # a bug in the simulator must not look like a hung NE to the client
            logger.exception("%s: MML command %r failed", self.ne.name, line)
            return reply(self.ne.name, self.seq, line.strip(), INTERNAL_ERROR, "Internal error"), False
        return reply(self.ne.name, self.seq, line.strip(), OK, text, body, results), False

    async def _run(self, command: str, params: dict[str, str], progress) -> tuple[str, list[str], int | None]:
        ne, done = self.ne, "Operation succeeded."
        if command == "SET SCREEN":
            if params["PAGING"].upper() not in ("ON", "OFF"):
                raise RpcFault("invalid-value", "PAGING must be ON or OFF")
            self.paging = params["PAGING"].upper() == "ON"
            return done, [], None
        if command == "DSP NE":
            return done, render_ne(ne.status()), 1
        if command in ("LST SOFTWARE", "LST ALMAF", "DSP KPI"):
            if command == "LST SOFTWARE":
                await ne.images.warm()
            render = {"LST SOFTWARE": render_software, "LST ALMAF": render_alarms, "DSP KPI": render_kpis}[command]
            body, count = render(ne.status())
            return done, body, count
        if command == "INS SOFTWARE":
            await self._long_running(ne.install(params["IMAGE"]), ne.profile.delays.install, progress,
                                     f"installing {params['IMAGE']}")
            return done, [], None
        if command == "ACT SOFTWARE":
            await ne.activate(params["VERSION"])
            return f"{done} The NE restarts on {params['VERSION']} if it was not running it.", [], None
        if command == "RBK SOFTWARE":
            await ne.rollback()
            return f"{done} The NE restarts on its previous version.", [], None
        if command == "STR DIALTEST":
            scenario = ne.profile.dial_tests.get(params["SCENARIO"])
            if scenario is None:
                raise RpcFault("invalid-value", f"unknown scenario {params['SCENARIO']!r}; {ne.profile.ne_type} "
                                                f"supports {', '.join(ne.profile.dial_tests)}")
            return done, render_dial(*await ne.dial_test(scenario)), 1
        ne.set_drained(command == "BLK TRAFFIC")
        return done, [], None

    async def _long_running(self, work, sim_seconds: float, progress, what: str) -> None:
        """Run `work`, printing PROGRESS lines at each quarter of its expected duration."""
        task = asyncio.ensure_future(work)
        for pct in (25, 50, 75):
            done, _ = await asyncio.wait({task}, timeout=self.ne.clock.real_seconds(sim_seconds / 4))
            if done:
                break
            if progress:
                progress(f"PROGRESS = {pct}%  {what}")
        await task
        if progress:
            progress(f"PROGRESS = 100%  {what}")

    def show(self, lines: list[str]) -> str:
        return self.page_out(lines) if lines else self.prompt

    def held(self, data: str) -> str | None:
        return self.next_page(data) if self.pending else None

    def page_out(self, lines: list[str]) -> str:
        """What to write for a reply: all of it, or its first page and the More prompt."""
        chunks = pages(lines) if self.paging else [lines]
        self.pending = chunks[1:]
        return crlf(chunks[0]) + (MORE if self.pending else self.prompt)

    def next_page(self, key: str) -> str:
        """After a More prompt: Q breaks off, anything else shows the next page."""
        if key.strip().upper().startswith("Q"):
            self.pending = []
            return "\r\n" + self.prompt
        chunk = self.pending.pop(0)
        return "\r\n" + crlf(chunk) + (MORE if self.pending else self.prompt)


async def run_mml(process: asyncssh.SSHServerProcess, ne: Any) -> None:
    session = MmlSession(ne, paging=not process.command, progress=lambda text: process.stdout.write(f"{text}\r\n"))
    await serve_shell(process, session, f"changeline simulated {ne.profile.ne_type} {ne.name} (MML)")
