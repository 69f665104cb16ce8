"""A continuous real-time service probe for the whole campaign: one call a second to every
service (a traffic pool, or an NE in no pool), counted per service over the real seconds it
covered. It is an observer: whoever can place a probe call (the demo, through the simulator's
control interface; a real network, through its test-call system) starts it around a campaign
with `probing(...)`, and the campaign's board and summary show what it counted.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

log = logging.getLogger("changeline.probe")

_current: contextvars.ContextVar = contextvars.ContextVar("changeline_probe", default=None)


@dataclass
class Counts:
    attempted: int = 0
    failed: int = 0
    last_failure: str = ""


@dataclass
class ServiceProbe:
    """`call(service)` places one call and returns None when it went through, else why not."""

    services: list[str]
    call: Callable[[str], str | None]
    every_s: float = 1.0
    clock: Callable[[], float] = time.monotonic
    counts: dict[str, Counts] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None

    def __post_init__(self) -> None:
        self.counts = {s: Counts() for s in self.services}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def probe_once(self) -> None:
        for service in self.services:
            try:
                why = self.call(service)
            except Exception as err:  # the probe's own path failed: a call that did not go through
                why = f"probe error: {err}"
            with self._lock:
                counts = self.counts[service]
                counts.attempted += 1
                if why:
                    counts.failed += 1
                    counts.last_failure = str(why)

    def start(self) -> None:
        self.started = self.clock()
        self._thread = threading.Thread(target=self._loop, name="changeline-probe", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.probe_once()
            self._stop.wait(max(0.0, self.every_s - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        self.ended = self.clock()

    def covered_s(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended if self.ended is not None else self.clock()) - self.started

    def snapshot(self) -> dict:
        """The report's probe counts (`{"pools": {...}, "basis": ...}`), labelled with what they are."""
        with self._lock:
            pools = {s: {"attempted": c.attempted, "failed": c.failed} for s, c in self.counts.items()}
        return {"pools": pools, "basis": probe_basis(len(self.services), self.every_s, self.covered_s())}

    def markdown(self) -> str:
        with self._lock:
            cells = [f"{s} {c.failed}/{c.attempted}" + (f" (last: {c.last_failure})" if c.failed else "")
                     for s, c in self.counts.items()]
        return (f"**Live service probe** (failed/attempted, {probe_basis(len(self.services), self.every_s, self.covered_s())}): "
                + ", ".join(cells))


def probe_basis(services: int, every_s: float, covered_s: float) -> str:
    return (f"real-time probe calls, one every {every_s:g} s to each of {services} service(s), "
            f"over {covered_s:.0f} real seconds of the campaign")


@contextmanager
def probing(probe: ServiceProbe) -> Iterator[ServiceProbe]:
    """Probe for as long as the block runs; campaigns started in it show the counts."""
    token = _current.set(probe)
    probe.start()
    try:
        yield probe
    finally:
        probe.stop()
        _current.reset(token)


def current() -> ServiceProbe | None:
    return _current.get()
