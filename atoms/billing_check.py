"""billing_check: a test session must produce exactly its CDRs, with charge fields, on the NE.

Runs the scenario, collects the charging ids the NE reports, then fetches the CDR
files over SFTP until every record is there or the wait runs out.
"""

from __future__ import annotations

import time

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, scaled, timed
from changeline.engine.decisions import cdr_problems
from changeline.errors import CheckFailed

SPEC = AtomSpec(
    name="billing_check",
    summary="Run a charged test session and verify its CDRs arrived complete over SFTP",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["scenario"],
        "properties": {
            "scenario": {"type": "string"},
            "sessions": {"type": "integer", "minimum": 1, "maximum": 20, "default": 1},
            "wait_s": {"type": "number", "minimum": 0, "default": 60},
        },
    },
    mutating=False,
    estimate_s=30,
    manual_minutes=30,
)


@timed
def run(ctx: AtomContext, *, scenario: str, sessions: int = 1, wait_s: float = 60) -> AtomResult:
    expected: list[str] = []
    for _ in range(sessions):
        result = ctx.driver.dial_test(scenario)
        if not result.passed:
            raise CheckFailed(f"billing test session {scenario} failed: {result.reason}")
        expected += list(result.charging_ids)
    if not expected:
        raise CheckFailed(f"scenario {scenario} reported no charging ids; is this NE type charged?")
    deadline = time.monotonic() + scaled(ctx, wait_s)
    while True:
        records = [r for r in ctx.driver.fetch_cdrs() if r.get("charging_id") in set(expected)]
        problems = cdr_problems(expected, records, ne=ctx.ne)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(min(0.2, scaled(ctx, wait_s) / 10))
    evidence = {"expected": expected, "records": records}
    if problems:
        raise CheckFailed("billing: " + "; ".join(problems), evidence=evidence)
    return AtomResult(atom=SPEC.name, ne=ctx.ne, reason=f"{len(expected)} CDR(s) complete", evidence=evidence)
