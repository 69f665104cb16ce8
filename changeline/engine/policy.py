"""Campaign decisions as pure functions: anomaly handling, change-window fit, failure budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

ANOMALY_POLICIES = ("rollback", "pause", "continue", "abort")

# A crashed engine's NE and pool slots are freed when their lease runs out; a resume
# waits longer than this for an NE, so it picks up the NEs its dead predecessor held.
LOCK_LEASE_S = 60.0  # the Prefect server refuses shorter leases

# Final states of one NE in a campaign, as the operator sees them.
DONE, ROLLED_BACK, ROLLBACK_FAILED, FAILED, DEFERRED, SKIPPED, INELIGIBLE = (
    "done", "rolled-back", "rollback-failed", "failed", "deferred", "skipped", "ineligible")
FINAL_STATES = (DONE, ROLLED_BACK, ROLLBACK_FAILED, FAILED, DEFERRED, SKIPPED, INELIGIBLE)
# An NE on its way: at work (the journal's reason says which step, or that it is rolling
# back), or paused on its anomaly form. An NE the engine left in one of these is continued
# by `changeline resume`.
RUNNING, PAUSED = "running", "paused"
# States where the NE did not reach its target (count against the campaign's failure budget).
FAILURE_STATES = (ROLLED_BACK, ROLLBACK_FAILED, FAILED)


def anomaly_action(step_policy: str | None, *, changed_anything: bool) -> str:
    """What to do when a step or gate fails (its policy is compiled from the model and any
    `--on-anomaly` override). A failure before anything on the NE changed needs no
    rollback, so it becomes a plain abort of this NE."""
    policy = step_policy or "rollback"
    if policy not in ANOMALY_POLICIES:
        raise ValueError(f"unknown anomaly policy {policy!r}")
    if policy == "rollback" and not changed_anything:
        return "abort"
    return policy


@dataclass(frozen=True)
class WindowFit:
    fits: bool
    needed_s: float
    left_s: float | None
    reason: str


def window_fit(*, now: datetime, window_end: datetime | None, estimate_s: float, rollback_s: float,
               scale: float = 1.0) -> WindowFit:
    """An NE may start only if the window still holds its work plus its worst-case rollback."""
    needed = (estimate_s + rollback_s) * scale
    if window_end is None:
        return WindowFit(True, needed, None, "no change window")
    left = (window_end - now).total_seconds()
    if left >= needed:
        return WindowFit(True, needed, left, f"{left:.0f} s left >= {needed:.0f} s needed")
    return WindowFit(False, needed, left,
                     f"window ends in {max(left, 0):.0f} s; this NE needs {needed:.0f} s "
                     f"({estimate_s * scale:.0f} s change + {rollback_s * scale:.0f} s worst-case rollback)")


def window_end_from(start: datetime, minutes: float | None) -> datetime | None:
    return start + timedelta(minutes=minutes) if minutes else None


def dispatch_order(hosts: Sequence, estimate_s: Mapping[str, float]) -> list:
    """The order a wave hands its NEs to workers: the longest remaining work first.

    A wave lasts as long as its last NE, and its NEs start a little apart (each start talks
    to the Prefect server), so the NEs that take longest go first and the short ones fill in
    behind them (critical-path list scheduling). Members of one pool run one after another:
    a member's weight is its own estimate plus its pool peers' after it, so the pool's first
    member goes first and the others are placed by what is left. Ties keep the wave's order.
    """
    remaining: dict[str, float] = {}
    left_in_pool: dict[str, float] = {}
    for host in hosts:
        if host.pool:
            left_in_pool[host.pool] = left_in_pool.get(host.pool, 0.0) + estimate_s[host.name]
    for host in hosts:
        if host.pool:
            remaining[host.name] = left_in_pool[host.pool]
            left_in_pool[host.pool] -= estimate_s[host.name]
        else:
            remaining[host.name] = estimate_s[host.name]
    return [host for _, host in sorted(enumerate(hosts), key=lambda item: (-remaining[item[1].name], item[0]))]


# --- NEs on workers (flows.workers) -------------------------------------------------------

WORKER_LEASE_SETTING = "CHANGELINE_WORKER_LEASE_S"
# A worker silent this long is taken for dead: long against its heartbeat (a sixth of it) and
# a busy machine's stalls, short against a change window.
WORKER_LEASE_S = 60.0
BEATS_PER_LEASE = 6


def worker_lease_s(raw: str | None) -> float:
    """The lease from CHANGELINE_WORKER_LEASE_S (unset: the default)."""
    from changeline.errors import InputError, Problem

    if not (raw or "").strip():
        return WORKER_LEASE_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 1.0 <= value <= 3600.0:
        raise InputError(Problem(WORKER_LEASE_SETTING, 0, 0, "", f"must be a number of seconds from 1 to 3600, "
                                 f"not {raw.strip()[:40]!r}"))
    return value


# A run a worker took (Pending) has its process to start before its flow runs and heartbeats:
# on a busy machine that took longer than a short lease, so it gets this many leases.
STARTING_LEASES = 5


@dataclass
class Liveness:
    """Is a worker's run alive? Fed what the campaign sees at each look, on its own monotonic
    clock (no two machines' clocks are compared)."""

    lease_s: float
    _seen: object = None
    _since: float | None = None

    def lost(self, now: float, *, phase: str, beat: object) -> bool:
        """`phase`: "waiting" (no worker took the run yet: the worker pool's business, not a
        death), "starting" (a worker took it: Pending) or "running" (its flow runs: Running,
        Paused); `beat`: what the store holds for the attempt (worker and heartbeat count)."""
        if phase == "waiting":
            self._since = None
            return False
        if self._since is None or (phase, beat) != self._seen:
            self._seen, self._since = (phase, beat), now
            return False
        allowed = self.lease_s * (STARTING_LEASES if phase == "starting" else 1)
        return now - self._since > allowed
