"""The line's decisions as pure functions: no I/O, unit-tested without devices.

Each returns the list of reasons something is not right (empty = fine), so the
reasons flow unchanged into the UI, the journal and the report.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

SEVERITY_RANK = {"warning": 1, "minor": 2, "major": 3, "critical": 4}


def alarm_problems(alarms: Iterable[Mapping[str, Any]], *, block_at: str = "critical") -> list[str]:
    """Alarms at or above `block_at` severity."""
    floor = SEVERITY_RANK.get(block_at, 4)
    return [f"{a.get('severity')} alarm {a.get('id')}: {a.get('text')}" for a in alarms
            if SEVERITY_RANK.get(str(a.get("severity")), 0) >= floor]


def new_alarms(before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]], *,
               block_at: str = "major") -> list[str]:
    """Alarms present after the change that were not there before, at or above `block_at`."""
    seen = {(a.get("id"), a.get("text")) for a in before}
    fresh = [a for a in after if (a.get("id"), a.get("text")) not in seen]
    return alarm_problems(fresh, block_at=block_at)


def kpi_floor_problems(kpis: Mapping[str, float], minimums: Mapping[str, float]) -> list[str]:
    out = []
    for name, floor in sorted(minimums.items()):
        if name not in kpis:
            out.append(f"KPI {name} not reported")
        elif kpis[name] < floor:
            out.append(f"KPI {name} = {kpis[name]:g} below the minimum {floor:g}")
    return out


def kpi_delta_problems(baseline: Mapping[str, float], current: Mapping[str, float],
                       max_drop_pct: Mapping[str, float]) -> list[str]:
    """A KPI breaches when it fell by more than its allowed percentage of the baseline."""
    out = []
    for name, allowed in sorted(max_drop_pct.items()):
        if name not in baseline:
            out.append(f"KPI {name} has no pre-change baseline")
            continue
        if name not in current:
            out.append(f"KPI {name} not reported after the change")
            continue
        base, now = baseline[name], current[name]
        if base == 0:
            continue
        drop = (base - now) / abs(base) * 100.0
        if drop > allowed:
            out.append(f"KPI {name} fell {drop:.2f}% ({base:g} -> {now:g}), allowed {allowed:g}%")
    return out


def precheck_problems(*, ne_type: str, version: str, expected_types: Iterable[str] | None,
                      expected_versions: Iterable[str] | None, alarms: Iterable[Mapping[str, Any]],
                      kpis: Mapping[str, float], kpi_minimums: Mapping[str, float],
                      disk_free_mb: float, min_disk_free_mb: float, lock_holder: int | None) -> list[str]:
    out: list[str] = []
    types = list(expected_types or [])
    if types and ne_type not in types:
        out.append(f"NE type {ne_type} is not one of {', '.join(types)}")
    versions = list(expected_versions or [])
    if versions and version not in versions:
        out.append(f"running version {version} is not the expected from-version {' or '.join(versions)}")
    out += alarm_problems(alarms)
    out += kpi_floor_problems(kpis, kpi_minimums)
    if disk_free_mb < min_disk_free_mb:
        out.append(f"only {disk_free_mb:g} MB disk free, {min_disk_free_mb:g} MB needed")
    if lock_holder is not None:
        out.append(f"configuration is locked by NETCONF session {lock_holder}")
    return out


CDR_REQUIRED_FIELDS = ("record_id", "charging_id", "ne", "start_time", "duration_s",
                       "volume_uplink", "volume_downlink", "rating_group", "charge_units")


def cdr_problems(expected_charging_ids: Iterable[str], records: Iterable[Mapping[str, str]], *,
                 ne: str) -> list[str]:
    """Every expected test session has exactly one well-formed CDR from this NE."""
    expected = list(expected_charging_ids)
    by_id: dict[str, list[Mapping[str, str]]] = {}
    for rec in records:
        by_id.setdefault(rec.get("charging_id", ""), []).append(rec)
    out: list[str] = []
    missing = [cid for cid in expected if cid not in by_id]
    if missing:
        out.append(f"{len(missing)} of {len(expected)} CDR(s) missing: {', '.join(missing)}")
    for cid in expected:
        for rec in by_id.get(cid, []):
            empty = [f for f in CDR_REQUIRED_FIELDS if not str(rec.get(f, "")).strip()]
            if empty:
                out.append(f"CDR {cid} lacks {', '.join(empty)}")
            if rec.get("ne") and rec.get("ne") != ne:
                out.append(f"CDR {cid} names NE {rec.get('ne')}, expected {ne}")
            try:
                if float(rec.get("duration_s") or 0) < 0 or float(rec.get("charge_units") or 0) < 0:
                    out.append(f"CDR {cid} has a negative duration or charge")
            except ValueError:
                out.append(f"CDR {cid} has a non-numeric duration or charge")
        if len(by_id.get(cid, [])) > 1:
            out.append(f"CDR {cid} recorded {len(by_id[cid])} times (double billing)")
    return out


def dial_test_problems(baseline: Mapping[str, Mapping[str, Any]], results: Mapping[str, Mapping[str, Any]], *,
                       min_success_pct: float = 100.0) -> list[str]:
    """Each scenario must pass and not succeed less often than before the change."""
    out = []
    for scenario, res in sorted(results.items()):
        attempts = int(res.get("attempts") or 0)
        ok = int(res.get("successes") or 0)
        pct = 100.0 * ok / attempts if attempts else 0.0
        if not res.get("passed"):
            out.append(f"dial test {scenario} failed: {res.get('reason') or f'{ok}/{attempts} succeeded'}")
        elif pct < min_success_pct:
            out.append(f"dial test {scenario}: {pct:.1f}% succeeded, {min_success_pct:g}% required")
        before = baseline.get(scenario)
        if before and res.get("passed") and before.get("attempts"):
            before_pct = 100.0 * int(before.get("successes") or 0) / int(before["attempts"])
            if pct < before_pct:
                out.append(f"dial test {scenario}: {pct:.1f}% succeeded, {before_pct:.1f}% before the change")
    return out
