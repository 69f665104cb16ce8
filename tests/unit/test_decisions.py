"""Pure decisions of the line: no devices."""

from datetime import datetime, timedelta, timezone

import pytest

from changeline.engine import decisions as d
from changeline.engine import policy


def test_alarm_blocking_by_severity():
    alarms = [{"id": "A1", "severity": "major", "text": "link down"}, {"id": "A2", "severity": "critical", "text": "disk"}]
    assert d.alarm_problems(alarms) == ["critical alarm A2: disk"]
    assert len(d.alarm_problems(alarms, block_at="major")) == 2
    assert d.alarm_problems([{"id": "x", "severity": "warning", "text": ""}]) == []


def test_new_alarms_ignore_those_present_before():
    before = [{"id": "A1", "severity": "major", "text": "old"}]
    after = before + [{"id": "A9", "severity": "major", "text": "new"}, {"id": "A8", "severity": "minor", "text": "m"}]
    assert d.new_alarms(before, after) == ["major alarm A9: new"]


def test_kpi_delta_breach_and_tolerance():
    base = {"rsr": 99.5, "cpu": 40}
    assert d.kpi_delta_problems(base, {"rsr": 99.0}, {"rsr": 1.0}) == []
    problems = d.kpi_delta_problems(base, {"rsr": 97.0}, {"rsr": 1.0})
    assert problems and "fell 2.51%" in problems[0]
    assert d.kpi_delta_problems(base, {}, {"rsr": 1.0}) == ["KPI rsr not reported after the change"]
    assert d.kpi_delta_problems({}, {"rsr": 1}, {"rsr": 1.0}) == ["KPI rsr has no pre-change baseline"]


def test_precheck_collects_every_problem():
    problems = d.precheck_problems(
        ne_type="SMF", version="1.1.0", expected_types=["AMF"], expected_versions=["1.2.0"],
        alarms=[{"id": "C", "severity": "critical", "text": "x"}], kpis={"rsr": 90}, kpi_minimums={"rsr": 99},
        disk_free_mb=10, min_disk_free_mb=100, lock_holder=7)
    assert len(problems) == 6
    assert any("session 7" in p for p in problems)
    assert d.precheck_problems(ne_type="AMF", version="1.2.0", expected_types=["AMF"], expected_versions=["1.2.0"],
                               alarms=[], kpis={}, kpi_minimums={}, disk_free_mb=10, min_disk_free_mb=1,
                               lock_holder=None) == []


def _cdr(cid, **kw):
    rec = {"record_id": "1", "charging_id": cid, "ne": "smf-1", "start_time": "t", "duration_s": "3",
           "volume_uplink": "1", "volume_downlink": "2", "rating_group": "10", "charge_units": "1"}
    rec.update(kw)
    return rec


def test_cdr_problems_name_missing_and_duplicate_records():
    assert d.cdr_problems(["a", "b"], [_cdr("a"), _cdr("b")], ne="smf-1") == []
    missing = d.cdr_problems(["a", "b", "c"], [_cdr("a")], ne="smf-1")
    assert missing == ["2 of 3 CDR(s) missing: b, c"]
    dup = d.cdr_problems(["a"], [_cdr("a"), _cdr("a")], ne="smf-1")
    assert "double billing" in dup[0]
    bad = d.cdr_problems(["a"], [_cdr("a", charge_units="", ne="smf-2")], ne="smf-1")
    assert any("lacks charge_units" in p for p in bad) and any("names NE smf-2" in p for p in bad)


def test_dial_test_compares_with_baseline():
    base = {"volte-call": {"passed": True, "attempts": 5, "successes": 5}}
    assert d.dial_test_problems(base, {"volte-call": {"passed": True, "attempts": 5, "successes": 5}}) == []
    failed = d.dial_test_problems(base, {"volte-call": {"passed": False, "attempts": 5, "successes": 2, "reason": "503"}})
    assert failed == ["dial test volte-call failed: 503"]
    worse = d.dial_test_problems(base, {"volte-call": {"passed": True, "attempts": 5, "successes": 4}}, min_success_pct=50)
    assert worse == ["dial test volte-call: 80.0% succeeded, 100.0% before the change"]


@pytest.mark.parametrize("step,changed,expected", [
    ("pause", True, "pause"),
    (None, True, "rollback"),
    ("rollback", False, "abort"),
    ("pause", False, "pause"),
    ("continue", True, "continue"),
])
def test_anomaly_action(step, changed, expected):
    assert policy.anomaly_action(step, changed_anything=changed) == expected


def test_window_fit_counts_worst_case_rollback():
    now = datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc)
    end = now + timedelta(minutes=10)
    assert policy.window_fit(now=now, window_end=end, estimate_s=300, rollback_s=200).fits
    tight = policy.window_fit(now=now, window_end=end, estimate_s=400, rollback_s=300)
    assert not tight.fits and "700 s" in tight.reason
    assert policy.window_fit(now=now, window_end=end, estimate_s=400, rollback_s=300, scale=0.01).fits
    assert policy.window_fit(now=now, window_end=None, estimate_s=1e9, rollback_s=0).fits


def test_step_budget_scales_for_simulators_but_keeps_a_real_floor():
    from types import SimpleNamespace

    from changeline.engine.atom import TIMEOUT_FLOOR_S, scaled_timeout

    network, fast_sim = SimpleNamespace(speed=1.0), SimpleNamespace(speed=0.01)
    assert scaled_timeout(network, 900) == 900                  # real NEs: the model's seconds
    assert scaled_timeout(fast_sim, 9000) == 90                 # scaled like the NE's own delays
    assert scaled_timeout(fast_sim, 900) == TIMEOUT_FLOOR_S     # engine latencies do not scale
    assert scaled_timeout(fast_sim, 3) == 3                     # a budget below the floor stays as written


def test_dispatch_order_starts_the_longest_work_first_and_pools_by_what_is_left():
    from types import SimpleNamespace as H

    hosts = [H(name="nrf-1", pool=None), H(name="upf-1", pool=None), H(name="amf-1", pool="amf-pool"),
             H(name="amf-2", pool="amf-pool"), H(name="smf-1", pool=None), H(name="nrf-2", pool=None)]
    est = {"nrf-1": 10, "upf-1": 35, "amf-1": 20, "amf-2": 20, "smf-1": 30, "nrf-2": 10}
    order = [h.name for h in policy.dispatch_order(hosts, est)]
    # amf-1 carries its pool (20 + 20 = 40), amf-2 only itself (20); equal estimates keep wave order
    assert order == ["amf-1", "upf-1", "smf-1", "amf-2", "nrf-1", "nrf-2"]
    assert policy.dispatch_order([], {}) == []


def test_a_restart_is_told_by_uptime_in_the_ne_s_own_seconds_not_by_a_missed_probe():
    import time
    from types import SimpleNamespace

    from changeline.atoms.activate_software import restarted_since

    sim_ctx, real_ctx = SimpleNamespace(speed=0.05), SimpleNamespace(speed=1.0)
    before = SimpleNamespace(uptime_s=1200)  # 60 real seconds up, at 20 NE seconds per real second
    started = time.monotonic() - 2.0  # activated 2 real s ago = 40 NE seconds
    assert not restarted_since(sim_ctx, before, SimpleNamespace(uptime_s=1240), started)  # still up
    assert restarted_since(sim_ctx, before, SimpleNamespace(uptime_s=30), started)  # booted 1.5 s ago
    # Booted since: up for less than before the activation.
    assert restarted_since(sim_ctx, SimpleNamespace(uptime_s=35), SimpleNamespace(uptime_s=30), started)
    assert not restarted_since(real_ctx, SimpleNamespace(uptime_s=86400), SimpleNamespace(uptime_s=86402), started)
    assert restarted_since(real_ctx, SimpleNamespace(uptime_s=86400), SimpleNamespace(uptime_s=1), started)
