"""SIGKILL of the engine, then resume or one-click rollback: every NE continues where it stood,
and every report lists every targeted NE with its status and reason."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from changeline.engine import policy
from changeline.flows import stores
from changeline.flows.rollback_flow import rollback
from tests.reliability.matrix import FULL, MODELS, build_report, check_ne, configs_before, kill_when, \
    model_variant, models_with, rollback_under_way, rolling_back, run_to_end, start_engine, summary_of

TYPES = {"amf": "AMF", "upf": "UPF", "pcscf": "P-CSCF"}


def _type(name: str) -> str:
    return TYPES[name.split("-")[0]]


def _summary(campaign_id: str) -> dict:
    return json.loads((stores.evidence_dir(campaign_id) / "summary.json").read_text())


def _outcome_file(campaign_id: str, ne: str) -> dict:
    return json.loads((stores.evidence_dir(campaign_id, ne) / "outcome.json").read_text())


def _run_args(sim, images, models, names, campaign_id, *extra):
    return ("run", *models, "-i", str(sim.inventory_path), "-t", ",".join(names), "--campaign-id", campaign_id,
            "-p", f"image_repo={images}", *extra)


@pytest.mark.timeout(900)  # a killed engine's locks free after their 60 s lease
def test_kill_mid_rollback_then_resume_finishes_that_rollback_with_its_reason(prefect_api, rel_home, rel_sim,
                                                                             rel_images, tmp_path):
    # Two NEs in the first wave, one in the next, no failure tolerated. The engine dies while
    # upf-midrb-1 rolls back from its failed dial test and upf-midrb-2 is mid-way (slowed).
    names = ["upf-midrb-1", "upf-midrb-2", "upf-midrb-3"]
    models = models_with(model_variant(tmp_path, "UPF", waves="      - {name: first, count: 2}\n      - {name: rest}\n",
                                       max_failures=0, concurrency=2))
    before = configs_before(rel_sim, names)
    rel_sim.control.add_fault(names[0], "dial-test-fail-after-upgrade")
    # A second per reply: upf-midrb-2 must still be at work when the kill comes, however long a
    # busy machine keeps upf-midrb-1 from its dial test (0.15 s once let it finish first in CI).
    rel_sim.control.add_fault(names[1], "slow-replies", delay_s=1.0)
    cid = "crash-midrb"
    engine = start_engine(*_run_args(rel_sim, rel_images, models, names, cid))
    at_kill = kill_when(engine, cid, rollback_under_way(cid, names[0], "dial-test"))
    assert at_kill[names[1]][0] == "running", at_kill
    rel_sim.control.clear_faults(names[1])
    resumed = run_to_end("resume", cid)
    assert "campaign stopped" in resumed.stdout, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = _summary(cid)
    first = summary["nes"][names[0]]
    assert first["status"] == policy.ROLLED_BACK, first
    assert first["reason"].startswith("rolled back after dial-test: "), first["reason"]
    assert [a["step"] for a in first["anomalies"]] == ["dial-test"], first["anomalies"]
    assert first["rollback"]["cause"].startswith("dial-test: ") and first["rollback"]["ok"]
    assert "validate" not in [s["name"] for s in first["steps"]], "the rolled-back NE went back into the plan"
    assert _outcome_file(cid, names[0])["reason"] == first["reason"]
    assert summary["nes"][names[1]]["status"] == policy.DONE, summary["nes"][names[1]]
    rest = summary["nes"][names[2]]
    assert rest["status"] == policy.SKIPPED, rest
    assert rest["reason"].startswith("not started: the campaign stopped before wave rest: 1 NE(s) failed"), rest
    report = run_to_end("report", cid, timeout_s=300)
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr[-2000:]
    data = build_report(cid)
    assert next(e for e in data["nes"] if e["ne"] == names[0])["reason"] == first["reason"]
    for name in names:
        check_ne(rel_sim, cid, name, _type(name), before[name], data)
    assert stores.journal().plan_of(cid)["waves"] == [{"name": "first", "nes": names[:2]},
                                                      {"name": "rest", "nes": names[2:]}]


@pytest.mark.timeout(900)  # a killed engine's locks free after their 60 s lease
def test_kill_then_one_click_rollback_lists_every_targeted_ne(prefect_api, rel_home, rel_sim, rel_images):
    # The library's policy: a canary wave of one, then the rest. Killed while the canary
    # activates; the one-click rollback restores it; the report lists the two never started.
    names = ["amf-oneclick-1", "upf-oneclick-1", "pcscf-oneclick-1"]
    models = models_with(str(MODELS["AMF"]))
    before = configs_before(rel_sim, names)
    cid = "crash-oneclick"
    engine = start_engine(*_run_args(rel_sim, rel_images, models, names, cid))
    at_kill = kill_when(engine, cid, lambda st: any(r in ("step activate", "step restore") for _, r in st.values()))
    canary = next(n for n, (_, r) in at_kill.items() if r in ("step activate", "step restore"))
    out = run_to_end("rollback", "-i", str(rel_sim.inventory_path), "--campaign", cid)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = run_to_end("report", cid, timeout_s=300)
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr[-2000:]
    data = build_report(cid)
    shown = {e["ne"]: e for e in data["nes"]}
    assert set(shown) == set(names), shown.keys()
    assert not data["campaign"]["finished"]
    assert shown[canary]["status"] == policy.ROLLED_BACK, shown[canary]
    for name in set(names) - {canary}:
        assert shown[name]["status"] == policy.SKIPPED and shown[name]["reason"].startswith("not started"), shown[name]
    for name in names:
        check_ne(rel_sim, cid, name, _type(name), before[name], data)


@pytest.mark.timeout(900)  # a killed engine's locks free after their 60 s lease
def test_report_renders_an_ne_whose_rollback_failed(prefect_api, rel_home, rel_sim, rel_images):
    # The dial test fails after the upgrade; undoing the activation then fails too (the NE drops
    # every rollback-software): the NE ends rollback-failed, and the report must still render.
    name = "pcscf-rbfail-1"
    before = configs_before(rel_sim, [name])
    rel_sim.control.add_fault(name, "dial-test-fail-after-upgrade")
    rel_sim.control.add_fault(name, "drop-mid-rpc", rpc="rollback-software", count=50)
    cid = "rollback-fails"
    summary = summary_of(models=models_with(str(MODELS["P-CSCF"])),
                       inventory=str(rel_sim.inventory_path), targets=name, campaign_id=cid,
                       params={"image_repo": str(rel_images)})
    out = summary["nes"][name]
    assert out["status"] == policy.ROLLBACK_FAILED, out
    assert out["rollback"]["ok"] is False and out["rollback"]["reason"], out["rollback"]
    report = run_to_end("report", cid, timeout_s=300)
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr[-2000:]
    html = (stores.evidence_dir(cid) / "report" / "report.html").read_text()
    assert "Rollback failed:" in html and name in html
    # Faults gone, the one-click rollback brings it back, and the cell's checks hold.
    rel_sim.control.clear_faults(name)
    result = rollback(inventory=str(rel_sim.inventory_path), campaign_id=cid)
    assert result[name]["status"] == policy.ROLLED_BACK
    check_ne(rel_sim, cid, name, "P-CSCF", before[name], build_report(cid))


AMF_STEPS = ["precheck", "backup", "baseline-dial-test", "transfer-image", "install-image", "drain", "activate",
             "restore", "dial-test", "kpi-check", "validate"]


def _at_or_after(ne: str, step: str):
    """The NE has started `step` or a later one (a busy machine may let a short step go by)."""
    def ready(statuses):
        status, reason = statuses.get(ne, ("", ""))
        if not reason.startswith("step "):
            return False
        current = reason[len("step "):]
        return current in AMF_STEPS and AMF_STEPS.index(current) >= AMF_STEPS.index(step)
    return ready


def _inside(ne: str, step: str, after_s: float):
    """`after_s` seconds into the NE's `step` (measured from when the journal first showed it)."""
    seen: dict[str, float] = {}

    def ready(statuses):
        if statuses.get(ne, ("", ""))[1] != f"step {step}":
            return bool(seen)  # the step is over: kill now rather than never
        seen.setdefault("at", time.monotonic())
        return time.monotonic() - seen["at"] >= after_s
    return ready


def _restarting(sim, ne: str):
    """Inside the activate step once the NE has begun its restart. The restart's down time is
    short, so "down now" alone can be missed by a poller; its restart count cannot: an NE that
    restarted and is up again while activate still checks it is caught there, and one already
    past activate is killed at once (late rather than never)."""
    restarts_before = sim.control.ne(ne)["restarts"]

    def ready(statuses):
        reason = statuses.get(ne, ("", ""))[1]
        if reason != "step activate":
            return reason.startswith("step ") and sim.control.ne(ne)["restarts"] > restarts_before
        state = sim.control.ne(ne)
        return state["status"] != "up" or state["restarts"] > restarts_before
    return ready


def _chain(sim, images, models, names, cid, kill_points, before):
    """Run, then SIGKILL at each point in turn and resume; the last resume runs to the end."""
    engine = start_engine(*_run_args(sim, images, models, names, cid))
    where = []
    try:
        for label, ready in kill_points:
            statuses = kill_when(engine, cid, ready)
            where.append((label, {n: s for n, s in statuses.items()}))
            engine = start_engine("resume", cid)
        engine.wait(900)
    finally:
        if engine.poll() is None:  # a failed wait: never leave an engine behind
            os.killpg(engine.pid, signal.SIGKILL)
            engine.wait(30)
    summary = _summary(cid)
    data = build_report(cid)
    for name in names:
        check_ne(sim, cid, name, _type(name), before[name], data)
    return summary, where


@pytest.mark.skipif(not FULL, reason="full matrix only (CHANGELINE_FULL_MATRIX=1)")
@pytest.mark.timeout(2400)  # each kill costs a lock lease (60 s) before the resume goes on
def test_sigkill_at_every_step_boundary_in_a_row_then_resume(prefect_api, rel_home, rel_sim, rel_images, tmp_path):
    names = ["amf-chain-1", "upf-chain-1", "pcscf-chain-1"]
    models = models_with(model_variant(tmp_path, "AMF", waves="      - {name: all}\n", max_failures=100, concurrency=3))
    before = configs_before(rel_sim, names)
    rel_sim.control.add_fault(names[0], "slow-replies", delay_s=0.3)  # every step long enough to be caught
    try:
        summary, where = _chain(rel_sim, rel_images, models, names, "crash-chain",
                                [(step, _at_or_after(names[0], step)) for step in AMF_STEPS], before)
    finally:
        rel_sim.control.clear_faults(names[0])
    print("kill points:", json.dumps(where, indent=1))
    assert {n: o["status"] for n, o in summary["nes"].items()} == {n: policy.DONE for n in names}, summary["nes"]


def _status_written_at(campaign_id: str, ne: str) -> float | None:
    """When the NE's status row was last written (by whichever engine wrote it)."""
    rows = stores.journal().db.run("SELECT updated_at FROM ne_status WHERE run_id=? AND ne=?", (campaign_id, ne))
    return rows[0][0] if rows else None


def _rolling_back_anew(campaign_id: str, ne: str):
    """The NE rolling back in a run started after the last kill: its status row says rolling back
    and was written after the first look (taken as that run starts, when the row is still the
    killed run's). Not "its status left that state first": the resumed run's other status lasts
    milliseconds, and a poller on a busy machine missed it."""
    first: dict[str, float | None] = {}

    def ready(statuses):
        written = _status_written_at(campaign_id, ne)
        first.setdefault("at", written)
        return rolling_back(ne)(statuses) and written != first["at"]
    return ready


@pytest.mark.skipif(not FULL, reason="full matrix only (CHANGELINE_FULL_MATRIX=1)")
@pytest.mark.timeout(2400)  # each kill costs a lock lease (60 s) before the resume goes on
def test_sigkill_inside_the_long_steps_in_a_row_then_resume(prefect_api, rel_home, rel_sim, rel_images, tmp_path):
    names = ["amf-inside-1"]
    before = configs_before(rel_sim, names)
    amf = names[0]
    points = [("inside transfer", _inside(amf, "transfer-image", 0.05)),
              ("inside install", _inside(amf, "install-image", 1.0)),
              ("inside the activate restart", _restarting(rel_sim, amf)),
              ("inside dial-test", _inside(amf, "dial-test", 0.05)),
              ("inside kpi-check", _inside(amf, "kpi-check", 0.2))]
    summary, where = _chain(rel_sim, rel_images, models_with(str(MODELS["AMF"])), names, "crash-inside", points, before)
    print("kill points:", json.dumps(where, indent=1))
    assert summary["nes"][amf]["status"] == policy.DONE, summary["nes"][amf]


@pytest.mark.skipif(not FULL, reason="full matrix only (CHANGELINE_FULL_MATRIX=1)")
@pytest.mark.timeout(2400)  # each kill costs a lock lease (60 s) before the resume goes on
def test_sigkill_mid_rollback_twice_in_a_row_keeps_the_original_reason(prefect_api, rel_home, rel_sim, rel_images):
    names = ["pcscf-inside-1"]
    before = configs_before(rel_sim, names)
    rel_sim.control.add_fault(names[0], "dial-test-fail-after-upgrade")
    points = [("mid-rollback", rolling_back(names[0])),
              ("mid-rollback again", _rolling_back_anew("crash-rb-twice", names[0]))]
    summary, where = _chain(rel_sim, rel_images, models_with(str(MODELS["P-CSCF"])), names, "crash-rb-twice",
                            points, before)
    print("kill points:", json.dumps(where, indent=1))
    out = summary["nes"][names[0]]
    assert out["status"] == policy.ROLLED_BACK, out
    assert out["reason"].startswith("rolled back after dial-test: "), out["reason"]
    assert [a["step"] for a in out["anomalies"]] == ["dial-test"]
