"""rollback: put back the software version and the config of a backup, then prove it.

Generic for the config part (any :candidate server); the software part needs the
changeline NE contract. Verification is not optional: running config must be
canonically byte-identical to the backup and the version must match, otherwise
RollbackFailed says exactly what differs.
"""

from __future__ import annotations

from changeline.atoms.activate_software import switch_version
from changeline.atoms.backup import read_running, restore_config
from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, timed
from changeline.errors import BackupError, RollbackFailed

SPEC = AtomSpec(
    name="rollback",
    summary="Restore software version and config byte-identical to a backup, then verify",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "backup_id": {"type": "string", "description": "default: this run's backup of the NE, else its latest"},
            "restart_timeout_s": {"type": "number", "minimum": 1, "default": 900},
            "verify_scenarios": {"type": "array", "items": {"type": "string"}},
        },
    },
    mutating=True,
    undo_note="it restores a stored backup; the backup itself is the safety net",
    estimate_s=240,
    manual_minutes=45,
)


def pick_backup(ctx: AtomContext, backup_id: str | None):
    if backup_id:
        return ctx.backups.load(backup_id)
    from_run = ctx.journal.baseline(ctx.run_id, ctx.ne).get("backup_id")
    if from_run:
        return ctx.backups.load(from_run)
    latest = ctx.backups.latest(ctx.ne)
    if latest is None:
        raise BackupError(f"no backup of {ctx.ne} to roll back to")
    return latest


@timed
def run(ctx: AtomContext, *, backup_id: str | None = None, restart_timeout_s: float = 900,
        verify_scenarios: list[str] | None = None) -> AtomResult:
    if verify_scenarios:
        ctx.driver.require("dial_test")  # the model names them: refuse before touching the NE
    backup = pick_backup(ctx, backup_id)
    evidence: dict = {"backup_id": backup.id}
    changed = False
    contract = ctx.driver.reports_state()
    if contract and backup.software_version:
        state = ctx.driver.read_state()
        if state.running_version != backup.software_version:
            evidence["software"] = switch_version(ctx, backup.software_version, restart_timeout_s=restart_timeout_s,
                                                  via_rollback=state.previous_version == backup.software_version)
            changed = True
    target = ctx.backups.get_object(backup.running_sha256)
    applied = restore_config(ctx, target)
    changed = changed or bool(applied)
    if backup.startup_sha256:
        ctx.driver.config_save()
    problems = []
    if read_running(ctx) != target:
        problems.append("running config is not byte-identical to the backup")
    else:
        evidence["config_identical"] = True
    if contract and backup.software_version:
        now = ctx.driver.read_state().running_version
        evidence["running_version"] = now
        if now != backup.software_version:
            problems.append(f"running {now}, backup was taken on {backup.software_version}")
    for scenario in verify_scenarios or []:
        res = ctx.driver.dial_test(scenario)
        evidence.setdefault("dial_tests", {})[scenario] = res.to_dict()
        if not res.passed:
            problems.append(f"dial test {scenario} fails after rollback: {res.reason}")
    if problems:
        raise RollbackFailed("rollback: " + "; ".join(problems), evidence=evidence)
    return AtomResult(atom=SPEC.name, ne=ctx.ne, changed=changed, diff=applied,
                      reason=f"restored to backup {backup.id} and verified", evidence=evidence)
