"""Run changeline on hostile input the way an operator or a pipeline would, and judge the outcome.

Every case is counted by what it showed (`COUNTS`, printed at the end of the session by
conftest.py): a traceback, a hang, a file written outside CHANGELINE_HOME, a secret echoed,
a wrong exit code, a message that names no file or field, a case over its CPU or memory budget.
The suite passes only with all of them at 0.

Time is judged by CPU seconds relative to a baseline command (a noisy machine stretches wall
time, not the CPU a process uses); a hang is a case still running after HANG_S of wall time.
The session's baseline is measured once; a case over budget against it is measured again in
pairs with the baseline run just before it, because a shared machine's speed drifts over a
37-minute suite (the same 10,000-host case took 1.4 CPU-s against a 0.5 baseline on a quiet
machine, and 5.5 against 1.7 measured half an hour apart in CI). Memory is capped with RLIMIT_AS (512 MiB of address space,
shared libraries and thread stacks included) in the child, so a case that needs more fails with
MemoryError - which shows up as a traceback and a wrong exit code (70).
"""

from __future__ import annotations

import os
import resource
import secrets
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

COUNTS: Counter = Counter()

HANG_S = 30.0                 # wall time after which a case is a hang
CPU_BUDGET_S = 2.0            # CPU a case may use beyond the baseline command's,
CPU_BUDGET_FACTOR = 4.0       # or up to this many times the baseline's, whichever is more: a
# case that imports Prefect (serve) or refuses 10,000 hosts does 2-3x the baseline's work
# (quiet machine: 1.39 against 0.50 CPU-s), so an absolute margin alone failed them on a slower
# machine (4.1 CPU-s against 1.9 + 2); the quadratic loader this budget caught took 90 s.
REPAIRS = 2                   # pairs (baseline, case) measured again before a case is over budget
MEMORY_LIMIT = 512 * 1024 * 1024


def secret_token() -> str:
    """A credential-shaped value no message may repeat (its random part is what is searched)."""
    return f"Bearer {secrets.token_urlsafe(24)}"


def secret_part(token: str) -> str:
    return token.split()[-1]


@dataclass
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    cpu_s: float
    wall_s: float
    hung: bool
    args: tuple[str, ...] = ()
    env: dict | None = None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _limit_memory() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


class Sandbox:
    """A directory tree for one case: inputs/, work/ (the current directory) and
    work/deep/home (CHANGELINE_HOME, deep so `../..` from it still lands inside the sandbox)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inputs = root / "inputs"
        self.work = root / "work"
        self.home = self.work / "deep" / "er" / "home"
        for d in (self.inputs, self.home):
            d.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.inputs / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def snapshot(self) -> set[str]:
        """Every path in the sandbox outside CHANGELINE_HOME."""
        out = set()
        for dirpath, dirnames, filenames in os.walk(self.root):
            here = Path(dirpath)
            if here == self.home or self.home in here.parents:
                dirnames[:] = []
                continue
            out.update(str(here / n) for n in dirnames + filenames)
        return out

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CHANGELINE_", "PREFECT_API"))}
        # Nothing may start: no Prefect server answers here, and with no password variable set a
        # run that passed every other check would still stop at the preflight.
        env.update({"CHANGELINE_HOME": str(self.home), "PREFECT_API_URL": "http://127.0.0.1:9/api",
                    "PYTHONDONTWRITEBYTECODE": "1"})
        env.update(extra)
        return env

    def run(self, *args: str, env: dict | None = None) -> Outcome:
        cmd = [str(Path(sys.executable).with_name("changeline")), *args]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=self.work, env=env or self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, errors="replace", preexec_fn=_limit_memory)
        try:
            out, err = proc.communicate(timeout=HANG_S)
            hung = False
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            hung = True
        wall = time.monotonic() - start
        # RUSAGE_CHILDREN grows by exactly this child's CPU (one child at a time here).
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return Outcome(proc.returncode, out, err, cpu, wall, hung, args, env)


class Baseline:
    """CPU seconds of a plain, valid command: the start-up cost every case pays too."""

    def __init__(self, sandbox: Sandbox, args: tuple[str, ...]) -> None:
        self.sandbox, self.args = sandbox, args
        self.cpu_s = max(self.measure() for _ in range(2))

    def measure(self) -> float:
        outcome = self.sandbox.run(*self.args)
        assert outcome.code == 0, outcome.stderr
        return outcome.cpu_s


def cpu_allowed(baseline_cpu_s: float) -> float:
    return max(baseline_cpu_s + CPU_BUDGET_S, CPU_BUDGET_FACTOR * baseline_cpu_s)


@dataclass
class Verdict:
    """What one case must show; `judge` counts and asserts it."""

    code: int = 2
    names: tuple[str, ...] = ()     # each must appear in the output (a file, a field)
    secret: str | None = None       # must not appear


def judge(case: str, outcome: Outcome, sandbox: Sandbox, before: set[str], verdict: Verdict,
          baseline: Baseline) -> None:
    COUNTS["cases"] += 1
    problems = []
    if outcome.hung:
        COUNTS["hangs"] += 1
        problems.append(f"still running after {HANG_S:.0f} s")
    if "Traceback" in outcome.output:
        COUNTS["tracebacks"] += 1
        problems.append("printed a traceback")
    if outcome.code != verdict.code:
        COUNTS["wrong exit codes"] += 1
        problems.append(f"exit code {outcome.code}, expected {verdict.code}")
    missing = [n for n in verdict.names if n not in outcome.output]
    if missing:
        COUNTS["unnamed file or field"] += 1
        problems.append(f"output names none of {missing}")
    if verdict.secret and secret_part(verdict.secret) in outcome.output:
        COUNTS["echoed secrets"] += 1
        problems.append("echoed the secret")
    escaped = sandbox.snapshot() - before
    if escaped:
        COUNTS["escapes"] += 1
        problems.append(f"wrote outside CHANGELINE_HOME: {sorted(escaped)[:3]}")
    if not outcome.hung and outcome.cpu_s > cpu_allowed(baseline.cpu_s):
        pairs = [(baseline.measure(), sandbox.run(*outcome.args, env=outcome.env).cpu_s) for _ in range(REPAIRS)]
        if all(case_s > cpu_allowed(base_s) for base_s, case_s in pairs):
            COUNTS["over CPU budget"] += 1
            problems.append(f"used {outcome.cpu_s:.2f} CPU-s against the session's baseline {baseline.cpu_s:.2f}, "
                            f"then {', '.join(f'{c:.2f} against {b:.2f}' for b, c in pairs)} measured in pairs "
                            f"(allowed: baseline + {CPU_BUDGET_S:g} or x {CPU_BUDGET_FACTOR:g})")
    assert not problems, f"{case}: " + "; ".join(problems) + f"\n--- stdout\n{outcome.stdout[-2000:]}" \
                         f"\n--- stderr\n{outcome.stderr[-3000:]}"


def judge_in_process(case: str, seconds: float, messages: str, *, secret: str | None = None,
                     named: tuple[str, ...] = ()) -> None:
    """The in-process counterpart: CPU seconds of one call, its messages."""
    COUNTS["in-process cases"] += 1
    problems = []
    if "Traceback" in messages:
        COUNTS["tracebacks"] += 1
        problems.append("traceback in a message")
    if secret and secret_part(secret) in messages:
        COUNTS["echoed secrets"] += 1
        problems.append("echoed the secret")
    missing = [n for n in named if n not in messages]
    if missing:
        COUNTS["unnamed file or field"] += 1
        problems.append(f"messages name none of {missing}")
    if seconds > CPU_BUDGET_S:
        COUNTS["over CPU budget"] += 1
        problems.append(f"{seconds:.2f} CPU-s")
    assert not problems, f"{case}: " + "; ".join(problems) + f"\n{messages[:3000]}"
