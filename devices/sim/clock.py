"""Simulated time: the simulator's world runs `1/speed` times faster than the wall clock.

Every delay in a profile is in realistic seconds; `sleep(s)` waits `s * speed` real
seconds, and `now()` advances `1/speed` simulated seconds per real second, so traffic
counted during a 90 s restart is the same whether the test ran it at speed 1 or 0.01.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class SimClock:
    def __init__(self, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._monotonic = monotonic
        self._speed = speed
        self._real_base = monotonic()
        self._sim_base = 0.0

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        # Rebase so simulated time stays continuous across the change.
        self._sim_base = self.now()
        self._real_base = self._monotonic()
        self._speed = speed

    def now(self) -> float:
        """Simulated seconds since the clock started."""
        return self._sim_base + (self._monotonic() - self._real_base) / self._speed

    def real_seconds(self, sim_seconds: float) -> float:
        return sim_seconds * self._speed

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(sim_seconds))
