"""kpi_check: post-change KPIs within the model's thresholds of the pre-change baseline."""

from __future__ import annotations

import time

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, scaled, timed
from changeline.engine.decisions import kpi_delta_problems, kpi_floor_problems
from changeline.errors import CheckFailed

SPEC = AtomSpec(
    name="kpi_check",
    summary="Compare KPIs with the precheck baseline against allowed drops and floors",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "max_drop_pct": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
            "minimums": {"type": "object", "additionalProperties": {"type": "number"}},
            "settle_s": {"type": "number", "minimum": 0, "default": 0},
        },
    },
    mutating=False,
    estimate_s=10,
    manual_minutes=15,
)


@timed
def run(ctx: AtomContext, *, max_drop_pct: dict[str, float] | None = None, minimums: dict[str, float] | None = None,
        settle_s: float = 0) -> AtomResult:
    if settle_s:
        time.sleep(scaled(ctx, settle_s))
    kpis = ctx.driver.read_kpis()
    baseline = ctx.journal.baseline(ctx.run_id, ctx.ne).get("kpis", {})
    problems = kpi_delta_problems(baseline, kpis, max_drop_pct or {}) + kpi_floor_problems(kpis, minimums or {})
    evidence = {"baseline": baseline, "current": kpis}
    if problems:
        raise CheckFailed("KPI: " + "; ".join(problems), evidence=evidence)
    return AtomResult(atom=SPEC.name, ne=ctx.ne, reason="KPIs within thresholds", before=baseline,
                      after=kpis, evidence=evidence)
