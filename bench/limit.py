"""The device-time limit of a campaign: how long it would take if the engine cost nothing.

Pure functions (no I/O, no clock), so the formula is unit-tested and documented in one place.

Per NE, the chain time is the sum, over the steps of its compiled plan, of what the NE
itself (or the model, in the NE's time) makes the line wait for, in realistic seconds
from the simulator profile, times the simulator's speed factor:

    dial_test          len(scenarios) x delays.dial_test
    transfer_software  image bytes / (delays.transfer_mb_per_s x 2**20)
    install_software   delays.install
    drain_traffic      settle_s                        (the model's wait after draining)
    activate_software  delays.restart + RESTART_GRACE_S / speed   (the NE flushes its reply first)
    billing_check      sessions x delays.dial_test + delays.cdr_write   (CDRs land cdr_write later)
    kpi_check          settle_s                        (the model's traffic settle time)
    anything else      0                               (a few RPCs: protocol cost, not device time)

    chain(NE) = speed x sum(step device seconds)

The campaign runs waves one after another; inside a wave it hands NEs, in wave order, to
C workers, and a worker holds an NE's pool before it starts (one member of a pool at a
time). `schedule` replays exactly that with zero engine cost:

    for each NE in wave order:  t = earliest free worker
                                start = max(t, pool free at)     # FIFO on the pool
                                end = start + chain(NE)
    wave time = max(end) - wave start;   limit = sum of wave times

`schedule(..., skip_busy_pools=True)` is the ideal dispatcher for comparison: a free
worker takes the first NE in wave order whose pool is free instead of waiting on it.
The critical path is followed back from the last NE to end through whichever
predecessor (same worker or same pool) its start waited for.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Iterable

MIB = 2 ** 20
# devices/sim/element.py: the NE lets its <ok/> reach the client before going down (real seconds).
RESTART_GRACE_S = 0.05


def step_device_seconds(atom: str, args: dict[str, Any], delays, *, image_bytes: int,
                        speed: float) -> float:
    """Realistic (unscaled) device seconds one step waits for; see the module docstring.
    `delays` is a simulator profile's `Delays` (changeline.devices.sim.profiles)."""
    if atom == "dial_test":
        return len(args.get("scenarios", [])) * delays.dial_test
    if atom == "transfer_software":
        return image_bytes / (delays.transfer_mb_per_s * MIB)
    if atom == "install_software":
        return delays.install
    if atom in ("drain_traffic", "kpi_check"):
        return float(args.get("settle_s", 0) or 0)
    if atom == "activate_software":
        return delays.restart + RESTART_GRACE_S / speed
    if atom == "billing_check":
        return int(args.get("sessions", 1)) * delays.dial_test + delays.cdr_write
    return 0.0


def chain_seconds(steps: Iterable[tuple[str, dict[str, Any]]], delays, *, image_bytes: int,
                  speed: float) -> float:
    """Real seconds of device time for one NE's plan: speed x the sum of its steps' device seconds."""
    return speed * sum(step_device_seconds(atom, args, delays, image_bytes=image_bytes, speed=speed)
                       for atom, args in steps)


@dataclass(frozen=True)
class Job:
    """One NE in a wave: its name, pool (or None), chain seconds and step count."""

    ne: str
    pool: str | None
    seconds: float
    steps: int


@dataclass
class Schedule:
    seconds: float
    wave_seconds: list[float]
    critical_path: list[str]              # NE names, first to last
    critical_steps: int
    starts: dict[str, float] = field(default_factory=dict)


def schedule(waves: list[list[Job]], concurrency: int, *, skip_busy_pools: bool = False) -> Schedule:
    """Zero-cost replay of the campaign's dispatch (see the module docstring)."""
    now = 0.0
    wave_seconds: list[float] = []
    path: list[str] = []
    steps = 0
    starts: dict[str, float] = {}
    for jobs in waves:
        if not jobs:
            continue
        ends, preds = _one_wave(jobs, concurrency, now, skip_busy_pools, starts)
        last = max(jobs, key=lambda j: ends[j.ne])
        chain: list[Job] = []
        cursor: Job | None = last
        while cursor is not None:
            chain.append(cursor)
            cursor = preds.get(cursor.ne)
        path += [j.ne for j in reversed(chain)]
        steps += sum(j.steps for j in chain)
        wave_end = ends[last.ne]
        wave_seconds.append(wave_end - now)
        now = wave_end
    return Schedule(now, wave_seconds, path, steps, starts)


def _one_wave(jobs: list[Job], concurrency: int, t0: float, skip_busy_pools: bool,
              starts: dict[str, float]) -> tuple[dict[str, float], dict[str, Job | None]]:
    workers = max(1, min(concurrency, len(jobs)))
    free: list[tuple[float, int, Job | None]] = [(t0, i, None) for i in range(workers)]  # (free at, id, last job)
    heapq.heapify(free)
    pool_free: dict[str, tuple[float, Job]] = {}
    ends: dict[str, float] = {}
    preds: dict[str, Job | None] = {}
    waiting = list(jobs)
    while waiting:
        at, worker, previous = heapq.heappop(free)
        job = waiting[0]
        if skip_busy_pools:
            job = next((j for j in waiting if not j.pool or pool_free.get(j.pool, (t0, None))[0] <= at), None)
            if job is None:  # every pool left is busy: this worker idles until the first one frees
                at = min(pool_free[j.pool][0] for j in waiting)
                heapq.heappush(free, (at, worker, previous))
                continue
        waiting.remove(job)
        start, pred = at, previous
        if job.pool and job.pool in pool_free and pool_free[job.pool][0] > at:
            start, pred = pool_free[job.pool]
        end = start + job.seconds
        starts[job.ne] = start
        ends[job.ne] = end
        preds[job.ne] = pred if pred is not None and start > t0 else None
        if job.pool:
            pool_free[job.pool] = (end, job)
        heapq.heappush(free, (end, worker, job))
    return ends, preds
