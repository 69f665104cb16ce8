"""The synthetic traffic model: pools, KPIs, dial tests and the CDRs they leave.

Nothing here runs on a timer. A pool's call counters are integrals of piecewise-constant
rates, settled whenever a member changes state or someone reads them, so a thousand idle
NEs cost no CPU. The decisions (who gets which calls, what a KPI reads, how a dial test
ends, what a CDR row holds) are pure functions.
"""

from __future__ import annotations

import csv
import math
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from .clock import SimClock
from .profiles import CdrSpec, DialScenario, Kpi


@dataclass(frozen=True)
class Member:
    up: bool = True
    drained: bool = False


def route_calls(members: Mapping[str, Member]) -> tuple[dict[str, float], float]:
    """Each member's fraction of the pool's calls that it serves, and the fraction that fail.

    The pool's load balancer knows only about draining: it spreads calls evenly over the
    members that are not drained. A call sent to a member that is down (restarting) fails,
    which is why an NE is drained before it restarts. With every member drained there is
    nowhere to send a call and all of them fail.
    """
    targets = [name for name, m in members.items() if not m.drained]
    if not targets:
        return {name: 0.0 for name in members}, 1.0
    share = 1.0 / len(targets)
    served = {name: share if (not m.drained and m.up) else 0.0 for name, m in members.items()}
    failed = share * sum(1 for name in targets if not members[name].up)
    return served, failed


def probe_target(members: Mapping[str, Member], turn: int) -> str | None:
    """Which member the pool's balancer hands its `turn`-th probe call (round robin over the
    members not drained); None when every member is drained and the call has nowhere to go."""
    targets = sorted(name for name, m in members.items() if not m.drained)
    return targets[turn % len(targets)] if targets else None


def load_factor(members: Mapping[str, Member], name: str) -> float:
    """A member's load relative to a fair share: 1.0 when all members serve evenly,
    2.0 when it also carries a drained peer's half of a two-member pool, 0 when drained."""
    served, _ = route_calls(members)
    return served[name] * len(members)


class Pool:
    """NEs of one type sharing `calls_per_second`; counts attempted and failed calls."""

    def __init__(self, name: str, ne_type: str, calls_per_second: float, clock: SimClock) -> None:
        self.name, self.ne_type, self.calls_per_second = name, ne_type, calls_per_second
        self.members: dict[str, Member] = {}
        self._clock = clock
        self._attempted = 0.0
        self._failed = 0.0
        self._settled_at = clock.now()
        self._probe_turn = -1

    def _settle(self) -> None:
        now = self._clock.now()
        calls = self.calls_per_second * (now - self._settled_at)
        self._settled_at = now
        if self.members:
            _, failed_fraction = route_calls(self.members)
            self._attempted += calls
            self._failed += calls * failed_fraction

    def join(self, name: str) -> None:
        self._settle()
        self.members[name] = Member()

    def update(self, name: str, *, up: bool | None = None, drained: bool | None = None) -> None:
        self._settle()
        member = self.members[name]
        self.members[name] = replace(member, up=member.up if up is None else up,
                                     drained=member.drained if drained is None else drained)

    def load_factor(self, name: str) -> float:
        return load_factor(self.members, name)

    def probe(self) -> dict[str, int]:
        self._settle()
        return {"attempted": int(self._attempted), "failed": int(self._failed)}

    def next_probe_target(self) -> str | None:
        self._probe_turn += 1
        return probe_target(self.members, self._probe_turn)


def kpi_values(kpis: Iterable[Kpi], load: float, factors: Mapping[str, float]) -> list[tuple[Kpi, float]]:
    """Each KPI's current value: its load curve times any degradation factor."""
    out = []
    for kpi in kpis:
        value = (kpi.idle + (kpi.nominal - kpi.idle) * load) * factors.get(kpi.name, 1.0)
        if kpi.unit == "%":
            value = min(value, 100.0)
        out.append((kpi, round(value, kpi.decimals) if kpi.decimals else float(round(value))))
    return out


@dataclass(frozen=True)
class DialOutcome:
    scenario: str
    attempts: int
    successes: int
    latency_ms: int
    reason: str | None

    @property
    def passed(self) -> bool:
        return self.successes == self.attempts


def dial_outcome(scenario: DialScenario, success_rate: float, forced_failure: str | None) -> DialOutcome:
    """A dial test's attempts succeed at the scenario's success-rate KPI; a forced failure
    (a fault) fails them all."""
    if forced_failure:
        return DialOutcome(scenario.name, scenario.attempts, 0, scenario.latency_ms, forced_failure)
    successes = min(scenario.attempts, round(scenario.attempts * success_rate / 100.0))
    reason = None
    if successes < scenario.attempts:
        reason = (f"{scenario.attempts - successes} of {scenario.attempts} attempts failed "
                  f"({scenario.kpi} {success_rate}%)")
    return DialOutcome(scenario.name, scenario.attempts, successes, scenario.latency_ms, reason)


CDR_HEADER = ("record_id", "charging_id", "ne", "ne_type", "scenario", "subscriber", "start_time",
              "duration_s", "volume_uplink", "volume_downlink", "rating_group", "charge_units")
RECORDS_PER_FILE = 1000
_MIB = 1024 * 1024


def charge_units(spec: CdrSpec) -> int:
    """Data sessions are charged per started MiB, calls per started minute."""
    volume = spec.volume_uplink + spec.volume_downlink
    if volume:
        return math.ceil(volume / _MIB)
    return math.ceil(spec.duration_s / 60)


def subscriber_id(domain: str, seq: int) -> str:
    if domain == "ims":
        return f"sip:+8613800{seq % 1000000:06d}@ims.mnc001.mcc460.3gppnetwork.org"
    return f"imsi-46001{seq % 10**10:010d}"


def charging_id(ne: str, seq: int) -> str:
    return f"{ne}-{seq:06d}"


def cdr_rows(*, ne: str, ne_type: str, domain: str, scenario: DialScenario, sequences: Iterable[int],
             start: datetime) -> list[tuple]:
    """One CDR row (without record_id) per charged test session."""
    spec = scenario.cdr
    assert spec is not None, "only CDR-writing scenarios are charged"
    return [(charging_id(ne, seq), ne, ne_type, scenario.name, subscriber_id(domain, seq),
             start.isoformat(timespec="seconds"), spec.duration_s, spec.volume_uplink,
             spec.volume_downlink, spec.rating_group, charge_units(spec)) for seq in sequences]


class CdrWriter:
    """Appends records to `cdr-NAME-SEQ.csv`, starting a new file every RECORDS_PER_FILE."""

    def __init__(self, directory: Path, ne: str) -> None:
        self.directory, self.ne = directory, ne
        self._file_seq = 1
        self._in_file = 0
        self._next_record = 1

    def reset(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)

    def current_file(self) -> Path:
        return self.directory / f"cdr-{self.ne}-{self._file_seq:04d}.csv"

    def append(self, rows: list[tuple]) -> None:
        for row in rows:
            if self._in_file >= RECORDS_PER_FILE:
                self._file_seq += 1
                self._in_file = 0
            path = self.current_file()
            new = not path.exists()
            with path.open("a", newline="") as f:
                writer = csv.writer(f)
                if new:
                    writer.writerow(CDR_HEADER)
                writer.writerow((self._next_record, *row))
            self._next_record += 1
            self._in_file += 1
