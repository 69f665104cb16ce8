"""Who may work when, inside one campaign: turns to start a run, working slots (the
concurrency cap, handed out in dispatch order) and NE outcomes as they settle. Pure
threading; the Campaign scheduler (changeline.engine.campaign) composes them with the
locks it is given (flows.locks on a Prefect server)."""

from __future__ import annotations

import heapq
import threading
from contextlib import contextmanager
from typing import Any


class StartTurn:
    """One of starts_at_once() turns to create and start an NE's run, given back as soon as the
    run is running (before the NE waits for its locks and a slot), or on any other way out."""

    def __init__(self, turns: threading.Semaphore) -> None:
        self._turns, self._held = turns, False

    def __enter__(self) -> "StartTurn":
        self._turns.acquire()
        self._held = True
        return self

    def __exit__(self, *exc) -> None:
        self.next_may_start()

    def next_may_start(self) -> None:
        if self._held:
            self._held = False
            self._turns.release()


def lookahead(cap: int, turns: int) -> int:
    """How many NEs beyond the concurrency cap may be getting ready (flow run created and
    running, waiting for its turn, no device touched) so the next starts work the moment a slot
    frees: enough to keep every start turn busy twice over, never more than the cap itself."""
    return max(1, min(cap, 2 * turns))


class WorkSlots:
    """The campaign's concurrency cap, counted on NEs at work on their device.

    An NE takes a slot once its run is running and gives it back when it is done with the
    device, so neither the start of its run (~1 s of API calls) nor its end sits inside the
    cap. A freed slot goes to the waiting NE first in the wave's dispatch order (longest work
    first), not to whichever run happened to get ready first.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._free = cap
        self._waiting: list[int] = []  # dispatch ranks, a heap
        self._cond = threading.Condition()

    @contextmanager
    def slot(self, rank: int, on_wait=None):
        with self._cond:
            if self._free == 0 or self._waiting:
                if on_wait is not None:
                    on_wait()
                heapq.heappush(self._waiting, rank)
                while self._free == 0 or self._waiting[0] != rank:
                    self._cond.wait()
                heapq.heappop(self._waiting)
            self._free -= 1
            self._cond.notify_all()  # the next in rank may now find a free slot
        try:
            yield
        finally:
            with self._cond:
                self._free += 1
                self._cond.notify_all()


class Settling:
    """NE outcomes as they become known: when the NE is done with its device (its admission
    ends), or when its worker ends, whichever comes first."""

    def __init__(self) -> None:
        self._known: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()

    def known(self, name: str, outcome: dict[str, Any]) -> None:
        with self._cond:
            self._known[name] = outcome
            self._cond.notify_all()

    def _poke(self, _future=None) -> None:
        with self._cond:
            self._cond.notify_all()

    def outcome_of(self, name: str, future) -> dict[str, Any] | BaseException:
        if future.done():
            err = future.exception()
            if err is None:
                return future.result()
            return self._known.get(name, err)
        return self._known[name]

    def as_settled(self, futures: dict[str, Any]):
        """(name, outcome or the worker's exception) for each NE, as each settles."""
        for future in futures.values():
            future.add_done_callback(self._poke)
        remaining = set(futures)

        def settled() -> list[str]:
            return [n for n in remaining if n in self._known or futures[n].done()]

        while remaining:
            with self._cond:
                self._cond.wait_for(settled)
                ready = settled()
            for name in ready:
                remaining.discard(name)
                yield name, self.outcome_of(name, futures[name])
