"""precheck: is this NE fit to change? Records the pre-change baseline for later gates."""

from __future__ import annotations

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, timed
from changeline.engine.decisions import precheck_problems
from changeline.errors import CheckFailed

SPEC = AtomSpec(
    name="precheck",
    summary="No critical alarms, KPIs above floors, expected type and from-version, disk, config lock free",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "expected_versions": {"type": "array", "items": {"type": "string"}},
            "ne_types": {"type": "array", "items": {"type": "string"}},
            "kpi_minimums": {"type": "object", "additionalProperties": {"type": "number"}},
            "min_disk_free_mb": {"type": "number", "minimum": 0, "default": 0},
        },
    },
    mutating=False,
    estimate_s=5,
    manual_minutes=15,
)


@timed
def run(ctx: AtomContext, *, expected_versions: list[str] | None = None, ne_types: list[str] | None = None,
        kpi_minimums: dict[str, float] | None = None, min_disk_free_mb: float = 0) -> AtomResult:
    state = ctx.driver.read_state()
    lock_holder = ctx.driver.config_lock_holder()
    problems = precheck_problems(
        ne_type=state.ne_type, version=state.running_version, expected_types=ne_types,
        expected_versions=expected_versions, alarms=[a.__dict__ for a in state.alarms], kpis=state.kpis,
        kpi_minimums=kpi_minimums or {}, disk_free_mb=state.disk_free_mb, min_disk_free_mb=min_disk_free_mb,
        lock_holder=lock_holder,
    )
    evidence = state.to_dict()
    if problems:
        raise CheckFailed("precheck: " + "; ".join(problems), evidence=evidence)
    for key, value in (("kpis", state.kpis), ("alarms", [a.__dict__ for a in state.alarms]),
                       ("from_version", state.running_version)):
        ctx.journal.put_baseline(ctx.run_id, ctx.ne, key, value)
        ctx.baseline[key] = value
    return AtomResult(atom=SPEC.name, ne=ctx.ne, reason="fit for change", before=evidence, evidence=evidence)
