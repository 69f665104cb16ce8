"""One NE's state as plain data: rendered as XML for <get>, as text by the CLI and as JSON
by the control interface, so the three views cannot disagree."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ImageRow:
    name: str
    version: str
    ne_type: str
    size: int
    sha256: str
    state: str  # uploaded | installed | active | invalid
    problem: str  # why it is invalid, empty otherwise


@dataclass(frozen=True)
class Alarm:
    id: str
    severity: str
    text: str
    raised_at: str  # ISO 8601, wall clock
    origin: str  # "fault" (from a fault) or "control" (raised through the control interface)


@dataclass(frozen=True)
class KpiRow:
    name: str
    value: float
    unit: str


@dataclass(frozen=True)
class NeStatus:
    name: str
    ne_type: str
    domain: str
    status: str  # up | restarting | stopped
    running_version: str
    previous_version: str | None
    available_versions: tuple[str, ...]
    installed_versions: tuple[str, ...]
    images: tuple[ImageRow, ...]
    alarms: tuple[Alarm, ...]
    kpis: tuple[KpiRow, ...]
    cpu_percent: float
    disk_total_mb: int
    disk_free_mb: int
    pool: str | None
    drained: bool
    active_sessions: int
    uptime_seconds: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
