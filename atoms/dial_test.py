"""dial_test: run the NE type's service scenarios (registration, PDU session, VoLTE call).

Before the change (`record_baseline: true`) it records the results; after, it fails
when a scenario fails or succeeds less often than in the baseline.
"""

from __future__ import annotations

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, timed
from changeline.engine.decisions import dial_test_problems
from changeline.errors import CheckFailed

SPEC = AtomSpec(
    name="dial_test",
    summary="Run service dial tests and compare with the pre-change baseline",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["scenarios"],
        "properties": {
            "scenarios": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "record_baseline": {"type": "boolean", "default": False},
            "min_success_pct": {"type": "number", "minimum": 0, "maximum": 100, "default": 100},
        },
    },
    mutating=False,
    estimate_s=20,
    manual_minutes=20,
)


@timed
def run(ctx: AtomContext, *, scenarios: list[str], record_baseline: bool = False,
        min_success_pct: float = 100) -> AtomResult:
    results = {s: ctx.driver.dial_test(s).to_dict() for s in scenarios}
    if record_baseline:
        ctx.journal.put_baseline(ctx.run_id, ctx.ne, "dial_test", results)
        ctx.baseline["dial_test"] = results
    baseline = {} if record_baseline else ctx.journal.baseline(ctx.run_id, ctx.ne).get("dial_test", {})
    problems = dial_test_problems(baseline, results, min_success_pct=min_success_pct)
    if problems:
        raise CheckFailed("dial test: " + "; ".join(problems), evidence={"results": results})
    return AtomResult(atom=SPEC.name, ne=ctx.ne, reason=f"{len(results)} scenario(s) passed",
                      evidence={"results": results, "baseline": bool(record_baseline)})
