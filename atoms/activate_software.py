"""activate_software: switch the NE to an installed version, ride through its restart, verify.

The NE drops every session while it restarts. The atom waits until it has seen the
NE go away and come back, so "came back on the old version" is told apart from
"has not restarted yet".
"""

from __future__ import annotations

import time

from changeline.atoms.base import AtomContext, AtomResult, AtomSpec, Journaled, scaled, timed
from changeline.devices import ne_api
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


def switch_version(ctx: AtomContext, version: str, *, restart_timeout_s: float, via_rollback: bool = False) -> dict:
    """Activate `version` and return evidence once the NE answers on it. Raises on old version or timeout."""
    before = ne_api.read_state(ctx.session)
    started = time.monotonic()
    try:
        if via_rollback:
            ne_api.rollback_software(ctx.session)
        else:
            ne_api.activate_software(ctx.session, version)
    except (SessionDropped, DeviceTimeout):
        pass  # the NE may drop us before its reply reaches us; the wait below decides
    # The NE is about to drop this session: never send on it again (an RPC sent as the NE drops
    # it can wait unanswered for its whole timeout), probe on fresh ones.
    ctx.session.reconnect(polite=False)
    limit_s = scaled(ctx, restart_timeout_s)
    deadline = started + limit_s
    saw_restart = False
    last_seen = f"on {before.running_version} before activation"
    delay = 0.05
    probe_s = FIRST_PROBE_S
    while True:
        try:
            # A probe that gets no answer is abandoned soon and the next one waits longer (up to
            # PROBE_S; a slow NE still gets its time); none outlives the whole wait.
            state = ne_api.read_state(ctx.session, timeout=min(probe_s, max(deadline - time.monotonic(), 0.5)))
            restarted = saw_restart or state.uptime_s < before.uptime_s or state.uptime_s < time.monotonic() - started
            last_seen = f"answering on {state.running_version}" + ("" if restarted else ", not yet restarted")
            if state.running_version == version and (restarted or before.running_version == version):
                return {"from_version": before.running_version, "version": state.running_version,
                        "restart_s": round(time.monotonic() - started, 3)}
            if restarted and state.running_version != version:
                raise CheckFailed(f"NE restarted but runs {state.running_version}, not {version}",
                                  evidence={"running_version": state.running_version})
        except TransientError as err:
            saw_restart = True
            last_seen = f"unreachable ({err.reason})"
            if isinstance(err, DeviceTimeout):
                probe_s = min(probe_s * 2, PROBE_S)
            ctx.session.reconnect(polite=False)
        if time.monotonic() + delay > deadline:
            # Not transient: re-activating an NE that did not come back only digs deeper;
            # the anomaly policy (rollback or an operator) decides what happens next.
            raise CheckFailed(f"NE not back on {version} within {limit_s:.0f} s (last seen: {last_seen})",
                              evidence={"last_seen": last_seen})
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


@timed
def run(ctx: AtomContext, *, version: str, restart_timeout_s: float = 900) -> AtomResult:
    state = ne_api.read_state(ctx.session)
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
    state = ne_api.read_state(ctx.session)
    if state.running_version == target:
        return AtomResult(atom=f"undo:{SPEC.name}", ne=ctx.ne, reason=f"already running {target}")
    evidence = switch_version(ctx, target, restart_timeout_s=record.get("restart_timeout_s", 900),
                              via_rollback=state.previous_version == target)
    return AtomResult(atom=f"undo:{SPEC.name}", ne=ctx.ne, changed=True, reason=f"back on {target}", evidence=evidence)
