"""activate_software: switch the NE to an installed version, ride through its restart, verify.

The NE drops every session while it restarts. The atom waits until it has seen the
NE go away and come back, so "came back on the old version" is told apart from
"has not restarted yet".
"""

from __future__ import annotations

import time

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, Journaled, scaled, timed
from changeline.errors import CheckFailed, DeviceTimeout, SessionDropped, TransientError

SPEC = AtomSpec(
    name="activate_software",
    summary="Activate an installed version; wait through the restart; verify the running version",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["version"],
        "properties": {
            "version": {"type": "string", "minLength": 1},
            "restart_timeout_s": {"type": "number", "minimum": 1, "default": 900},
        },
    },
    mutating=True,
    estimate_s=180,
    manual_minutes=30,
)


FIRST_PROBE_S = 2.0  # a restarting NE's first probes: abandoned soon if nobody answers
PROBE_S = 10.0  # a healthy NE answers a state read well within this


def restarted_since(ctx: AtomContext, before, state, started: float) -> bool:
    """Whether the NE booted after `started` (time.monotonic()): its uptime, in the NE's own
    seconds, is shorter than the time since then or than it was before. Not being able to
    reach the NE is no proof: a busy NE can miss a probe without restarting."""
    since_s = (time.monotonic() - started) / (ctx.speed or 1.0)
    return state.uptime_s < before.uptime_s or state.uptime_s < since_s


def switch_version(ctx: AtomContext, version: str, *, restart_timeout_s: float, via_rollback: bool = False) -> dict:
    """Activate `version` and return evidence once the NE answers on it. Raises on old version or timeout."""
    before = ctx.driver.read_state()
    started = time.monotonic()
    try:
        if via_rollback:
            ctx.driver.rollback_software()
        else:
            ctx.driver.activate(version)
    except (SessionDropped, DeviceTimeout):
        pass  # the NE may drop us before its reply reaches us; the wait below decides
    # The NE is about to drop this session: never send on it again (an RPC sent as the NE drops
    # it can wait unanswered for its whole timeout), probe on fresh ones.
    ctx.session.reconnect(polite=False)
    limit_s = scaled(ctx, restart_timeout_s)
    last_seen = f"on {before.running_version} before activation"
    for state, seen in _probes(ctx, started + limit_s):
        if state is None:
            last_seen = seen
            continue
        restarted = restarted_since(ctx, before, state, started)
        last_seen = f"answering on {state.running_version}" + ("" if restarted else ", not yet restarted")
        if state.running_version == version and (restarted or before.running_version == version):
            return {"from_version": before.running_version, "version": state.running_version,
                    "restart_s": round(time.monotonic() - started, 3)}
        if restarted and state.running_version != version:
            raise CheckFailed(f"NE restarted but runs {state.running_version}, not {version}",
                              evidence={"running_version": state.running_version})
    # Not transient: re-activating an NE that did not come back only digs deeper;
    # the anomaly policy (rollback or an operator) decides what happens next.
    raise CheckFailed(f"NE not back on {version} within {limit_s:.0f} s (last seen: {last_seen})",
                      evidence={"last_seen": last_seen})


def _probes(ctx: AtomContext, deadline: float):
    """Read the NE's state until `deadline`: yields (state, "") when it answers up, (None, what
    was seen) when it does not. A probe that gets no answer is abandoned soon and the next waits
    longer (up to PROBE_S; a slow NE still gets its time); none outlives the deadline."""
    delay, probe_s = 0.05, FIRST_PROBE_S
    while True:
        try:
            state = ctx.driver.read_state(timeout=min(probe_s, max(deadline - time.monotonic(), 0.5)))
            if state.uptime_s > 0:
                yield state, ""
            else:  # answering, but on its way down or not up yet: nothing to judge by
                yield None, f"answering on {state.running_version}, not up"
        except TransientError as err:
            if isinstance(err, DeviceTimeout):
                probe_s = min(probe_s * 2, PROBE_S)
            ctx.session.reconnect(polite=False)
            yield None, f"unreachable ({err.reason})"
        if time.monotonic() + delay > deadline:
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def state_once_back(ctx: AtomContext, limit_s: float):
    """The NE's state as soon as it answers up: an undo may find it still restarting (the
    activation it undoes timed out while the NE was on its way back)."""
    last_seen = "nothing yet"
    for state, seen in _probes(ctx, time.monotonic() + limit_s):
        if state is not None:
            return state
        last_seen = seen
    raise CheckFailed(f"NE not reachable within {limit_s:.0f} s (last seen: {last_seen})",
                      evidence={"last_seen": last_seen})


@timed
def run(ctx: AtomContext, *, version: str, restart_timeout_s: float = 900) -> AtomResult:
    state = ctx.driver.read_state()
    if state.running_version == version:
        return AtomResult(atom=SPEC.name, ne=ctx.ne, changed=False, reason=f"already running {version}")
    installed = {i.version for i in state.images if i.state in ("installed", "active")}
    if version not in installed:
        raise CheckFailed(f"version {version} is not installed (installed: {', '.join(sorted(installed)) or 'none'})")
    with Journaled(ctx, SPEC.name, {"version": state.running_version, "restart_timeout_s": restart_timeout_s}) as j:
        evidence = switch_version(ctx, version, restart_timeout_s=restart_timeout_s)
        j.result = AtomResult(atom=SPEC.name, ne=ctx.ne, changed=True, reason=f"running {version}",
                              before={"version": state.running_version}, after={"version": version}, evidence=evidence)
    return j.result


def undo(ctx: AtomContext, record: dict) -> AtomResult:
    target = record["version"]
    state = state_once_back(ctx, scaled(ctx, record.get("restart_timeout_s", 900)))
    if state.running_version == target:
        return AtomResult(atom=f"undo:{SPEC.name}", ne=ctx.ne, reason=f"already running {target}")
    evidence = switch_version(ctx, target, restart_timeout_s=record.get("restart_timeout_s", 900),
                              via_rollback=state.previous_version == target)
    return AtomResult(atom=f"undo:{SPEC.name}", ne=ctx.ne, changed=True, reason=f"back on {target}", evidence=evidence)
