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
