"""The report's figures as pure functions, on outcomes built from the flow's own dataclasses."""

from __future__ import annotations

import pytest

from changeline.errors import InputError
from changeline.engine.outcomes import NEOutcome, StepOutcome
from changeline.reports import figures


def step(name: str, status: str = "done", *, manual: float = 10.0, atom: str = "", evidence: dict | None = None):
    return StepOutcome(name, atom or name, status, started_at=100.0, duration_s=5.0, manual_minutes=manual,
                       evidence=evidence or {})


def outcome(ne: str, steps: list[StepOutcome], *, decisions: list[dict] | None = None, operator_s: float = 0.0,
            status: str = "done") -> dict:
    return NEOutcome(ne=ne, ne_type="AMF", campaign_id="c", status=status, steps=steps,
                     decisions=decisions or [], operator_seconds=operator_s).to_dict()


def test_automation_counts_completed_steps_without_an_operator_answer():
    clean = outcome("amf-1", [step("precheck"), step("backup"), step("activate")])
    paused = outcome("smf-1", [step("precheck"), step("activate"), step("dial_after", "failed")],
                     decisions=[{"step": "dial_after", "action": "rollback", "comment": "", "by": "operator",
                                 "waited_s": 60.0}], status="rolled-back")
    auto = figures.automation([clean, paused])
    assert auto == figures.Automation(executed_steps=6, unattended_steps=5, failed_steps=1, operator_steps=1,
                                      rate=5 / 6, targeted_nes=2, unattended_nes=1, ne_rate=0.5)


def test_a_step_an_operator_answered_for_is_not_unattended_even_when_done():
    accepted = outcome("amf-1", [step("kpis"), step("validate")],
                       decisions=[{"step": "kpis", "action": "continue", "comment": "known drift", "by": "operator"}])
    assert figures.automation([accepted]).unattended_steps == 1
    assert figures.automation([accepted]).rate == 0.5


def test_a_pause_form_that_timed_out_is_not_human_input():
    timed_out = outcome("amf-1", [step("precheck"), step("dial_after", "failed")],
                        decisions=[{"step": "dial_after", "action": "rollback", "by": "timeout"}])
    auto = figures.automation([timed_out])
    assert (auto.operator_steps, auto.unattended_steps, auto.failed_steps) == (0, 1, 1)


def test_steps_finished_by_an_earlier_attempt_are_not_executed_here():
    resumed = outcome("amf-1", [step("precheck", "skipped"), step("activate")])
    assert figures.automation([resumed]).executed_steps == 1
    assert figures.effort([resumed]).manual_hours == pytest.approx(10 / 60, abs=1e-3)


def test_no_steps_no_rate():
    untouched = {"ne": "nrf-1", "ne_type": "NRF", "status": "ineligible", "reason": "type"}
    assert figures.automation([untouched]).rate is None
    assert figures.effort([untouched]) == figures.Effort(0, 0.0, 0.0, 0.0)


def test_effort_is_manual_minutes_of_executed_steps_against_operator_time():
    one = outcome("amf-1", [step("a", manual=30), step("b", manual=45), step("c", "skipped", manual=500)])
    two = outcome("smf-1", [step("a", "failed", manual=15)], operator_s=1800.0)
    effort = figures.effort([one, two])
    assert effort == figures.Effort(executed_steps=3, manual_hours=1.5, operator_hours=0.5, saved_hours=1.0,
                                    counted_nes=2)


def test_disruption_not_measured_without_probes():
    d = figures.disruption(None)
    assert not d.measured and d.text == "not measured"


def test_disruption_sums_the_pools():
    d = figures.disruption({"pools": {"smf-pool": {"attempted": 9000, "failed": 27},
                                      "amf-pool": {"attempted": 1000, "failed": 0}}})
    assert (d.measured, d.attempted, d.failed) == (True, 10000, 27)
    assert d.failure_pct == pytest.approx(0.27)
    assert list(d.pools) == ["amf-pool", "smf-pool"]
    assert d.pools["smf-pool"] == figures.PoolProbe(9000, 27, 0.3)
    assert d.text == "27 of 10000 probe calls failed (0.270%)"
    assert figures.disruption({"pools": {}}).text == "no probe calls made"


@pytest.mark.parametrize("probes, message", [
    ({"pool": {}}, "expected"),
    ({"pools": {"p": {"attempted": 5, "failed": 6}}}, "6 failed of only 5"),
    ({"pools": {"p": {"attempted": -1, "failed": 0}}}, "whole number"),
    ({"pools": {"p": {"attempted": "many", "failed": 0}}}, "whole number"),
    ({"pools": {"p": 7}}, "expected"),
])
def test_disruption_rejects_malformed_probes_by_name(probes, message):
    with pytest.raises(InputError, match=message):
        figures.disruption(probes)


def test_service_checks_count_scenarios_billing_and_cdrs():
    dial = {"results": {"registration": {"passed": True}, "volte_call": {"passed": False}}}
    billing = {"expected": ["C1", "C2"], "records": [{"charging_id": "C1"}, {"charging_id": "C2"}]}
    out = outcome("amf-1", [step("dial", atom="dial_test", evidence=dial),
                            step("bill", atom="billing_check", evidence=billing),
                            step("bill2", "failed", atom="billing_check", evidence={"expected": ["C3"], "records": []})])
    assert figures.service_checks([out]) == figures.ServiceChecks(2, 1, 2, 1, 2)


def test_counts_by_state_in_the_given_order_then_alphabetical():
    outs = [{"status": s} for s in ("done", "deferred", "done", "zombie", "failed", "alien")]
    assert list(figures.counts_by_state(outs, ("failed", "done", "deferred")).items()) == [
        ("failed", 1), ("done", 2), ("deferred", 1), ("alien", 1), ("zombie", 1)]


def twelve_nes_one_rolled_back() -> list[dict]:
    """The demo's shape: 11 NEs at target, 1 rolled back after its dial test, 1 not targeted."""
    done = [outcome(f"amf-{i}", [step("precheck"), step("backup"), step("activate")]) for i in range(1, 12)]
    rolled = outcome("upf-2", [step("precheck"), step("backup"), step("activate"), step("dial-test", "failed")],
                     status="rolled-back")
    ineligible = {"ne": "nrf-9", "ne_type": "NRF", "status": "ineligible", "reason": "no model targets NRF 1.0"}
    return done + [rolled, ineligible]


def test_automation_per_ne_counts_nes_at_target_with_no_person():
    auto = figures.automation(twelve_nes_one_rolled_back())
    assert (auto.targeted_nes, auto.unattended_nes) == (12, 11)
    assert auto.ne_rate == pytest.approx(11 / 12)
    # Per step the same campaign reads far higher: the two rates are different figures.
    assert auto.rate == pytest.approx(36 / 37)


def test_an_ne_an_operator_answered_for_is_not_automated_per_ne():
    answered = outcome("amf-1", [step("kpis"), step("validate")],
                       decisions=[{"step": "kpis", "action": "continue", "comment": "drift", "by": "operator"}])
    timed_out = outcome("amf-2", [step("kpis"), step("validate")],
                        decisions=[{"step": "kpis", "action": "continue", "by": "timeout"}])
    assert figures.automation([answered, timed_out]).unattended_nes == 1


def test_a_rolled_back_nes_hours_are_not_counted_as_saved():
    outcomes = twelve_nes_one_rolled_back()
    outcomes[0]["operator_seconds"] = 1800.0  # half an hour on a form, on an NE that then reached target
    outcomes[11]["operator_seconds"] = 900.0   # a quarter on the one rolled back: a person's time all the same
    e = figures.effort(outcomes)
    assert e.counted_nes == 11 and e.executed_steps == 33
    assert e.manual_hours == pytest.approx(33 * 10 / 60, abs=1e-3)
    assert e.operator_hours == pytest.approx(0.75, abs=1e-3)
    assert e.saved_hours == pytest.approx(33 * 10 / 60 - 0.75, abs=1e-3)


def test_a_dial_test_with_no_call_through_has_no_latency():
    assert figures.measured_latency({"attempts": 5, "successes": 0, "latency_ms": 35.0}) is None
    assert figures.measured_latency({"attempts": 5, "successes": 4, "latency_ms": 35.0}) == 35.0
    assert figures.measured_latency({"latency_ms": 12.0}) == 12.0  # no counts given: as reported


def test_probe_counts_carry_their_label():
    d = figures.disruption({"pools": {"amf-pool": {"attempted": 100, "failed": 1}}, "basis": "simulated time"})
    assert d.text == "1 of 100 probe calls failed (1.000%); simulated time"
    with pytest.raises(InputError, match="basis"):
        figures.disruption({"pools": {}, "basis": 3})


def test_time_from_the_failed_gate_to_the_rollback_start():
    rolled = outcome("upf-2", [step("dial-test", "failed")], status="rolled-back")
    rolled["anomalies"] = [{"step": "kpis", "at": 1000.0}, {"step": "dial-test", "at": 1010.0}]
    rolled["rollback"] = {"ok": True, "started_at": 1010.25}
    assert figures.gate_to_rollback_s(rolled) == 0.25
    rolled["rollback"] = {"ok": True}  # recorded before this was measured
    assert figures.gate_to_rollback_s(rolled) is None
    assert figures.gate_to_rollback_s(outcome("amf-1", [step("a")])) is None
