"""drain_traffic: move a pooled NE's traffic to its pool peers before it restarts."""

from __future__ import annotations

import time

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, Journaled, scaled, timed
from changeline.errors import CheckFailed

SPEC = AtomSpec(
    name="drain_traffic",
    summary="Drain a pooled NE's traffic to its peers and wait for sessions to move",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {"settle_s": {"type": "number", "minimum": 0, "default": 30}},
    },
    mutating=True,
    estimate_s=30,
    manual_minutes=10,
)


@timed
def run(ctx: AtomContext, *, settle_s: float = 30) -> AtomResult:
    state = ctx.driver.read_state()
    if not state.pool:
        return AtomResult(atom=SPEC.name, ne=ctx.ne, reason="not in a pool: nothing to drain")
    if state.drained:
        return AtomResult(atom=SPEC.name, ne=ctx.ne, reason="already drained")
    with Journaled(ctx, SPEC.name, {"restore": True}) as j:
        ctx.driver.drain()
        time.sleep(scaled(ctx, settle_s))
        after = ctx.driver.read_state()
        if not after.drained:
            raise CheckFailed("NE still takes traffic after drain")
        j.result = AtomResult(atom=SPEC.name, ne=ctx.ne, changed=True, reason=f"drained from {state.pool}",
                              before={"active_sessions": state.active_sessions},
                              after={"active_sessions": after.active_sessions})
    return j.result


def undo(ctx: AtomContext, record: dict) -> AtomResult:
    from changeline.atoms.restore_traffic import run as restore

    result = restore(ctx)
    result.atom = f"undo:{SPEC.name}"
    return result
