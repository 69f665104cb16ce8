"""validate_upgrade: the NE runs the target version, its config is intact, no new alarms.

"Intact" means canonically equal to the backup, or to what this run's own
config_change steps committed (intended changes are not drift).
"""

from __future__ import annotations

import hashlib

from changeline.atoms.backup import read_running
from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, timed
from changeline.engine.decisions import new_alarms
from changeline.devices.configxml import diff
from changeline.errors import CheckFailed

SPEC = AtomSpec(
    name="validate_upgrade",
    summary="Running version is the target, config intact against the backup, no new alarms",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "version": {"type": "string"},
            "block_alarm_severity": {"enum": ["warning", "minor", "major", "critical"], "default": "major"},
        },
    },
    mutating=False,
    estimate_s=5,
    manual_minutes=20,
)


@timed
def run(ctx: AtomContext, *, version: str | None = None, block_alarm_severity: str = "major") -> AtomResult:
    baseline = ctx.journal.baseline(ctx.run_id, ctx.ne)
    problems: list[str] = []
    evidence: dict = {}
    running = read_running(ctx)
    running_sha = hashlib.sha256(running).hexdigest()
    expected_sha = baseline.get("expected_running_sha256")
    if expected_sha is None and baseline.get("backup_id"):
        expected_sha = ctx.backups.load(baseline["backup_id"]).running_sha256
    if expected_sha is None:
        problems.append("no backup for this run to validate the config against")
    elif running_sha != expected_sha:
        problems.append("running config drifted from the backup:\n"
                        + diff(ctx.backups.get_object(expected_sha), running, before_name="expected", after_name="running"))
    evidence["running_sha256"] = running_sha
    if ctx.driver.reports_state():
        state = ctx.driver.read_state()
        evidence["version"] = state.running_version
        if version and state.running_version != version:
            problems.append(f"running {state.running_version}, expected {version}")
        problems += new_alarms(baseline.get("alarms", []), [a.__dict__ for a in state.alarms],
                               block_at=block_alarm_severity)
    if problems:
        raise CheckFailed("validation: " + "; ".join(problems), evidence=evidence)
    return AtomResult(atom=SPEC.name, ne=ctx.ne, reason="version, config and alarms as expected", evidence=evidence)
