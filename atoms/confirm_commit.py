"""confirm_commit: make a `config_change(confirm: later)` permanent once the gates are green."""

from __future__ import annotations

import hashlib

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, timed
from changeline.errors import CheckFailed, RpcError

SPEC = AtomSpec(
    name="confirm_commit",
    summary="Confirm a pending confirmed commit left open by config_change(confirm: later)",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["change_step"],
        "properties": {"change_step": {"type": "string", "description": "the config_change step's name"}},
    },
    mutating=True,
    undo_note="confirming only makes the change permanent; config_change's undo restores the backup",
    estimate_s=2,
    manual_minutes=2,
)


@timed
def run(ctx: AtomContext, *, change_step: str) -> AtomResult:
    pid = f"changeline-{ctx.run_id}-{ctx.ne}-{change_step}"
    try:
        ctx.driver.config_commit(persist_id=pid)
    except RpcError as err:
        # Nothing pending: it either was confirmed already (fine) or timed out and reverted (not fine).
        from changeline.atoms.backup import read_running

        expected = ctx.journal.baseline(ctx.run_id, ctx.ne).get("expected_running_sha256")
        if expected and hashlib.sha256(read_running(ctx)).hexdigest() == expected:
            return AtomResult(atom=SPEC.name, ne=ctx.ne, changed=False, reason="already confirmed")
        raise CheckFailed(f"the change of step {change_step} is no longer pending (reverted?): {err.reason}") from err
    return AtomResult(atom=SPEC.name, ne=ctx.ne, changed=True, reason=f"confirmed {pid}")
