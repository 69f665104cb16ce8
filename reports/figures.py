"""The report's outcome figures, computed from a run's NE outcomes (pure functions, no I/O).

Each takes NE outcome dicts shaped like `NEOutcome.to_dict()` (missing keys are read as
their defaults, so the short dicts the campaign writes for NEs it never started work too)
and returns plain data that goes unchanged into the JSON and HTML reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from changeline.errors import InputError

# A step ran in this record of the NE when it finished either way; `skipped` steps were
# finished by an earlier, interrupted attempt whose timings are not in this record.
EXECUTED = ("done", "failed")
# Who answered a pause form without a person: the form timed out and the default applied.
UNATTENDED_DECIDERS = ("timeout",)


def executed_steps(outcome: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in outcome.get("steps") or [] if s.get("status") in EXECUTED]


def steps_answered_by_operator(outcome: Mapping[str, Any]) -> set[str]:
    """Names of the NE's steps for which a person answered a pause form."""
    return {d.get("step", "") for d in outcome.get("decisions") or []
            if d.get("by") not in UNATTENDED_DECIDERS}


# NEs that were never in the campaign's scope (no model targets them) count in no rate.
NOT_TARGETED = ("ineligible",)
AT_TARGET = "done"


@dataclass(frozen=True)
class Automation:
    executed_steps: int      # steps that ran (done or failed)
    unattended_steps: int    # done, and nobody answered a form for them
    failed_steps: int
    operator_steps: int      # executed steps an operator answered a form for
    rate: float | None       # per step: unattended / executed; None when no step ran
    targeted_nes: int = 0    # NEs a model targeted (ineligible ones are not)
    unattended_nes: int = 0  # reached their target with no person's answer on any form
    ne_rate: float | None = None  # per NE: unattended_nes / targeted_nes; None when none targeted

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def automation(outcomes: Iterable[Mapping[str, Any]]) -> Automation:
    """Share of executed steps the line completed by itself.

    A failed step counts as executed but not completed, whatever was decided after it;
    a step counts as needing a person when the NE's decisions hold an operator's answer
    for it (a form that timed out is not a person's answer).
    """
    executed = unattended = failed = by_operator = targeted = nes_alone = 0
    for outcome in outcomes:
        answered = steps_answered_by_operator(outcome)
        if outcome.get("status") not in NOT_TARGETED:
            targeted += 1
            nes_alone += outcome.get("status") == AT_TARGET and not answered
        for step in executed_steps(outcome):
            executed += 1
            needed_person = step.get("name") in answered
            by_operator += needed_person
            if step["status"] == "failed":
                failed += 1
            elif not needed_person:
                unattended += 1
    return Automation(executed, unattended, failed, by_operator, unattended / executed if executed else None,
                      targeted, nes_alone, nes_alone / targeted if targeted else None)


@dataclass(frozen=True)
class Effort:
    executed_steps: int      # steps of the NEs that reached their target
    manual_hours: float      # what those steps take a person by hand (model's manualMinutes)
    operator_hours: float    # time operators actually spent answering pause forms (every NE)
    saved_hours: float       # manual_hours - operator_hours
    counted_nes: int = 0     # NEs whose work is counted: those that reached their target

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def effort(outcomes: Iterable[Mapping[str, Any]]) -> Effort:
    """Hours a person would have spent on the NEs the line brought to their target, less the
    time operators spent on any NE. Work on an NE that was rolled back or failed saved nobody
    anything: it is not counted."""
    steps = counted = 0
    manual_minutes = operator_seconds = 0.0
    for outcome in outcomes:
        operator_seconds += float(outcome.get("operator_seconds") or 0.0)
        if outcome.get("status") != AT_TARGET:
            continue
        counted += 1
        executed = executed_steps(outcome)
        steps += len(executed)
        manual_minutes += sum(float(s.get("manual_minutes") or 0.0) for s in executed)
    manual_h, operator_h = manual_minutes / 60.0, operator_seconds / 3600.0
    return Effort(steps, round(manual_h, 3), round(operator_h, 3), round(manual_h - operator_h, 3), counted)


def measured_latency(result: Mapping[str, Any]) -> float | None:
    """A dial test's latency, only when a call got through to measure it."""
    successes = result.get("successes")
    if isinstance(successes, (int, float)) and successes <= 0:
        return None
    return result.get("latency_ms")


@dataclass(frozen=True)
class PoolProbe:
    attempted: int
    failed: int
    failure_pct: float | None


@dataclass(frozen=True)
class Disruption:
    measured: bool
    attempted: int = 0
    failed: int = 0
    failure_pct: float | None = None
    pools: dict[str, PoolProbe] | None = None
    basis: str = ""          # what the counts are, as the caller labelled them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def text(self) -> str:
        if not self.measured:
            return "not measured"
        if not self.attempted:
            return "no probe calls made"
        text = f"{self.failed} of {self.attempted} probe calls failed ({self.failure_pct:.3f}%)"
        return f"{text}; {self.basis}" if self.basis else text


def _count(pool: str, probe: Mapping[str, Any], key: str) -> int:
    value = probe.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        raise InputError(f"probes: pool {pool}: '{key}' must be a whole number >= 0, got {value!r}")
    return int(value)


def disruption(probes: Mapping[str, Any] | None) -> Disruption:
    """Failed probe calls in the pools during the run, as the caller measured them.

    `probes` is `{"pools": {name: {"attempted": n, "failed": n}}}`; None means nobody measured.
    """
    if probes is None:
        return Disruption(measured=False)
    pools_in = probes.get("pools")
    if not isinstance(pools_in, Mapping):
        raise InputError("probes: expected {'pools': {NAME: {'attempted': n, 'failed': n}}}")
    pools: dict[str, PoolProbe] = {}
    for name, probe in sorted(pools_in.items()):
        if not isinstance(probe, Mapping):
            raise InputError(f"probes: pool {name}: expected {{'attempted': n, 'failed': n}}")
        attempted, failed = _count(name, probe, "attempted"), _count(name, probe, "failed")
        if failed > attempted:
            raise InputError(f"probes: pool {name}: {failed} failed of only {attempted} attempted")
        pools[name] = PoolProbe(attempted, failed, _pct(failed, attempted))
    attempted = sum(p.attempted for p in pools.values())
    failed = sum(p.failed for p in pools.values())
    basis = probes.get("basis") or ""
    if not isinstance(basis, str):
        raise InputError("probes: 'basis' must be text saying what the counts are")
    return Disruption(True, attempted, failed, _pct(failed, attempted), pools, basis)


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 4) if whole else None


@dataclass(frozen=True)
class ServiceChecks:
    dial_scenarios_run: int      # scenario results of dial_test steps (pre- and post-change)
    dial_scenarios_passed: int
    billing_checks_run: int      # billing_check steps that ran
    billing_checks_passed: int
    cdr_records: int             # CDR records the billing checks found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def service_checks(outcomes: Iterable[Mapping[str, Any]]) -> ServiceChecks:
    scenarios = passed = billing = billing_ok = cdrs = 0
    for outcome in outcomes:
        for step in executed_steps(outcome):
            evidence = step.get("evidence") or {}
            if step.get("atom") == "dial_test":
                results = evidence.get("results") or {}
                scenarios += len(results)
                passed += sum(1 for r in results.values() if isinstance(r, Mapping) and r.get("passed"))
            elif step.get("atom") == "billing_check":
                billing += 1
                billing_ok += step["status"] == "done"
                cdrs += len(evidence.get("records") or [])
    return ServiceChecks(scenarios, passed, billing, billing_ok, cdrs)


def counts_by_state(outcomes: Iterable[Mapping[str, Any]], order: Iterable[str] = ()) -> dict[str, int]:
    """NEs per final state, in `order` first, then any other state alphabetically."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        state = str(outcome.get("status") or "unknown")
        counts[state] = counts.get(state, 0) + 1
    ordered = [s for s in order if s in counts] + sorted(s for s in counts if s not in order)
    return {s: counts[s] for s in ordered}


def gate_to_rollback_s(outcome: Mapping[str, Any]) -> float | None:
    """Seconds from the failed gate (the NE's last anomaly) to the start of its rollback: the
    line's reaction time, plus any time the NE waited for an operator's answer."""
    started = (outcome.get("rollback") or {}).get("started_at")
    if not isinstance(started, (int, float)):
        return None
    gates = [a["at"] for a in outcome.get("anomalies") or []
             if isinstance(a.get("at"), (int, float)) and a["at"] <= started]
    return round(started - max(gates), 3) if gates else None
