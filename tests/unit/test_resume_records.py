"""What a resumed run reads back from the journal: the campaign's first plan, the NE's decisions,
the steps an earlier run finished."""

from __future__ import annotations

from types import SimpleNamespace

from changeline.state.journal import Journal
from changeline.engine.outcomes import StepOutcome
from changeline.engine.run import finished_steps


def _step(name: str, atom: str = "dial_test", gate: bool = False):
    return SimpleNamespace(name=name, atom=atom, gate=gate, manual_minutes=1.0, estimate_s=2.0)


def test_the_first_plan_of_a_campaign_is_the_one_every_later_run_gets(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    first = {"targets": ["upf-1", "upf-2"], "waves": [{"name": "canary", "nes": ["upf-1"]}, {"name": "rest", "nes": ["upf-2"]}]}
    assert journal.record_plan("c1", first) == first
    assert journal.record_plan("c1", {"targets": ["upf-2"], "waves": [{"name": "canary", "nes": ["upf-2"]}]}) == first
    assert journal.plan_of("c1") == first and journal.plan_of("other") is None


def test_a_decided_rollback_is_read_back_with_its_cause_and_anomalies(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    assert journal.change_of("c1", "upf-1").rollback_cause is None
    anomaly = {"step": "dial-test", "reason": "no answer", "policy": "rollback"}
    journal.record_change("c1", "upf-1", [anomaly], [])
    assert journal.change_of("c1", "upf-1").rollback_cause is None
    journal.record_change("c1", "upf-1", [anomaly], [], rollback_cause="dial-test: no answer")
    change = Journal(tmp_path / "j.sqlite").change_of("c1", "upf-1")  # another process reads the same
    assert change.rollback_cause == "dial-test: no answer" and change.anomalies == [anomaly]


def test_finished_steps_keep_their_recorded_outcomes_and_the_rest_are_entered_again():
    done = StepOutcome("precheck", "precheck", "done", reason="ok", duration_s=1.5).to_dict()
    accepted = StepOutcome("dial-test", "dial_test", "failed", reason="2 of 10 dropped", gate=True).to_dict()
    records = {"precheck": ("done", done), "dial-test": ("accepted", accepted),
               "kpi-check": ("failed", {"reason": "drop"}), "backup": ("done", {"atom": "backup", "changed": True})}
    plan = [_step("precheck", "precheck"), _step("backup", "backup"), _step("dial-test", gate=True),
            _step("kpi-check", "kpi_check", gate=True), _step("validate", "validate_upgrade", gate=True)]
    finished = finished_steps(plan, records)
    assert list(finished) == ["precheck", "backup", "dial-test"]  # kpi-check failed, validate never ran
    assert finished["precheck"].to_dict() == done
    assert finished["dial-test"].status == "failed" and finished["dial-test"].reason == "2 of 10 dropped"
    # A record in the older shape (the atom's own result): the status is enough to skip it.
    assert finished["backup"].status == "done" and finished["backup"].reason == "finished before a restart"
