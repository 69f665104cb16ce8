"""restore_traffic: put a drained NE back into service in its pool."""

from __future__ import annotations

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, timed
from changeline.errors import CheckFailed

SPEC = AtomSpec(
    name="restore_traffic",
    summary="Return a drained NE to its pool",
    args_schema={"type": "object", "additionalProperties": False, "properties": {}},
    mutating=True,
    undo_note="it is itself the undo of drain_traffic: it returns the NE to service",
    estimate_s=5,
    manual_minutes=5,
)


@timed
def run(ctx: AtomContext) -> AtomResult:
    state = ctx.driver.read_state()
    if not state.pool or not state.drained:
        return AtomResult(atom=SPEC.name, ne=ctx.ne, reason="taking traffic already")
    ctx.driver.restore()
    if ctx.driver.read_state().drained:
        raise CheckFailed("NE still drained after restore")
    return AtomResult(atom=SPEC.name, ne=ctx.ne, changed=True, reason=f"back in {state.pool}")
