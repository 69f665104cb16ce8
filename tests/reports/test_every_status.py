"""The report renders whatever state each NE ended in, whatever sequence of run, crash, resume
and rollback left it there, and lists every NE the campaign targeted."""

from __future__ import annotations

import json

import pytest

from changeline.errors import OutcomeError
from changeline.engine import policy
from changeline.flows import stores
from changeline.engine.outcomes import NEOutcome, RollbackOutcome, StepOutcome
from changeline.engine.run import write_outcome
from changeline.engine.outcomes import NE_STATUSES
from changeline.reports.build import build_campaign_report

CAMPAIGN = "c-every-status"


def _outcome(ne: str, status: str) -> NEOutcome:
    steps = [StepOutcome("precheck", "precheck", "done", reason="ok", started_at=100.0, duration_s=1.0)]
    out = NEOutcome(ne=ne, ne_type="UPF", campaign_id=CAMPAIGN, status=status, reason=f"why {status}",
                    from_version="1.2.0", to_version="1.3.0", steps=steps, started_at=100.0, finished_at=130.0)
    if status in (policy.ROLLED_BACK, policy.ROLLBACK_FAILED):
        out.steps.append(StepOutcome("dial-test", "dial_test", "failed", reason="3 of 10 calls dropped", gate=True,
                                     started_at=110.0, duration_s=2.0))
        out.anomalies.append({"step": "dial-test", "atom": "dial_test", "gate": True, "reason": "3 of 10 calls dropped",
                              "policy": "rollback", "at": 112.0})
    if status == policy.ROLLED_BACK:
        out.rollback = RollbackOutcome(ok=True, reason="verified", cause="dial-test: 3 of 10 calls dropped",
                                       undone=[{"atom": "activate_software", "changed": True, "reason": "back on 1.2.0"},
                                               {"reason": "nothing to undo"}],
                                       verified={"reason": "running config identical to backup"})
    if status == policy.ROLLBACK_FAILED:
        # The shape the per-NE flow wrote before outcomes were typed (the report's crash).
        out.rollback = {"ok": False, "reason": "verification dial test still fails"}
    return out


def test_the_report_renders_every_status_an_ne_can_end_in(home):
    journal = stores.journal()
    names = []
    for i, status in enumerate(NE_STATUSES):
        ne = f"upf-{i + 1}"
        names.append(ne)
        journal.set_ne_status(CAMPAIGN, ne, status, f"why {status}")
        if status not in (policy.RUNNING, policy.PAUSED):  # an NE caught at work has no outcome file yet
            outcome = _outcome(ne, status)
            write_outcome(outcome, stores.evidence_dir(outcome.campaign_id, outcome.ne))
    never_started = "upf-99"
    journal.record_plan(CAMPAIGN, {"targets": [*names, never_started],
                                   "waves": [{"name": "first", "nes": names}, {"name": "rest", "nes": [never_started]}]})
    paths = build_campaign_report(CAMPAIGN)
    data = json.loads(paths.json.read_text())
    shown = {ne["ne"]: ne for ne in data["nes"]}
    assert set(shown) == {*names, never_started}
    for ne, status in zip(names, NE_STATUSES):
        assert shown[ne]["status"] == status and shown[ne]["reason"], shown[ne]
    assert shown[never_started]["status"] == policy.SKIPPED
    assert "not started" in shown[never_started]["reason"] and "wave rest" in shown[never_started]["reason"]
    html = paths.html.read_text()
    assert "Rollback failed:</b> verification dial test still fails" in html
    assert "Started by the anomaly at dial-test: 3 of 10 calls dropped" in html
    for ne in shown:
        assert f'id="ne-{ne}"' in html


def test_an_outcome_of_the_wrong_shape_is_refused_on_write_and_on_read(home):
    bad = _outcome("upf-1", "done")
    bad.status = "finished"
    with pytest.raises(OutcomeError, match="status: 'finished' is not one of"):
        bad.to_dict()
    with pytest.raises(OutcomeError, match=r"steps\[0\].duration_s: expected float"):
        NEOutcome.from_dict({"ne": "upf-1", "steps": [{"name": "precheck", "status": "done", "duration_s": "slow"}]})
    with pytest.raises(OutcomeError, match="rollback.ok: missing"):
        NEOutcome.from_dict({"ne": "upf-1", "rollback": {"reason": "?"}})
    # A rollback in the old short form reads back in full shape.
    full = NEOutcome.from_dict({"ne": "upf-1", "rollback": {"ok": False, "reason": "dial test"}}).to_dict()
    assert full["rollback"] == {"ok": False, "reason": "dial test", "cause": "", "undone": [], "verified": {},
                                "started_at": 0.0}
