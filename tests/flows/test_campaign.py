"""End-to-end campaigns: a real Prefect server, real simulators, the real model library."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from changeline.devices import ne_api
from changeline.flows.campaign import campaign
from tests.flows.conftest import UPGRADE_MODELS


def test_mixed_campaign_upgrades_every_ne_in_waves(prefect_api, line_home, flow_sim, image_repo):
    summary = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path),
                       targets="amf-[1-4],smf-[1-4],upf-[1-3],nrf-[1-2],pcscf-[1-4],scscf-[1-3]",
                       campaign_id="mixed-20", params={"image_repo": str(image_repo)}, concurrency_cap=8)
    assert summary["counts"] == {"done": 20}, summary["counts"]
    assert summary["all_reached_target"]


def _state(sim, name):
    from changeline.devices.session import DeviceSession, Endpoint

    with DeviceSession(Endpoint.from_host(sim.inventory.hosts[name])) as session:
        return ne_api.read_state(session), read_running_of(session)


def read_running_of(session):
    from changeline.devices.configxml import canonical, config_from_data

    return canonical(config_from_data(session.get_config("running")))


def test_failed_dial_test_after_upgrade_rolls_back_automatically(prefect_api, line_home, flow_sim, image_repo):
    _, config_before = _state(flow_sim, "smf-11")
    flow_sim.control.add_fault("smf-11", "dial-test-fail-after-upgrade")
    try:
        summary = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path), targets="smf-11,smf-12",
                           campaign_id="dial-fail", params={"image_repo": str(image_repo)}, on_anomaly="rollback")
    finally:
        flow_sim.control.clear_faults("smf-11")
    bad, good = summary["nes"]["smf-11"], summary["nes"]["smf-12"]
    assert bad["status"] == "rolled-back", bad
    assert "dial" in bad["reason"] and "failed" in bad["reason"]
    assert bad["anomalies"][0]["gate"] and bad["anomalies"][0]["policy"] == "rollback"
    assert bad["rollback"]["ok"]
    state, config_after = _state(flow_sim, "smf-11")
    assert state.running_version == "1.2.0"
    assert config_after == config_before
    # The canary failed and the model tolerates no failure: the next wave is left untouched.
    assert good["status"] == "skipped" and "not started" in good["reason"], good
    assert summary["stop_reason"] and not summary["all_reached_target"]
    assert _state(flow_sim, "smf-12")[0].running_version == "1.2.0"
    assert _anomaly_event_for("smf-11"), "no changeline.ne.anomaly event reached the server"


def _anomaly_event_for(ne: str, wait_s: float = 20) -> dict | None:
    """The anomaly event an automation would trigger on, as the Prefect server recorded it."""
    import time as _time

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    flt = EventFilter(event=EventNameFilter(name=["changeline.ne.anomaly"]),
                      resource=EventResourceFilter(id=[f"changeline.ne.{ne}"]))
    deadline = _time.monotonic() + wait_s
    with get_client(sync_client=True) as client:
        while _time.monotonic() < deadline:
            page = client.read_events(filter=flt, limit=50)
            if page.events:
                return page.events[0].payload
            _time.sleep(0.5)
    return None


class PauseAnswerer:
    """Plays the operator: answers every paused flow run's form, as the UI's Resume button does."""

    def __init__(self, action: str, comment: str) -> None:
        import threading

        self.action, self.comment = action, comment
        self.answered: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _loop(self):
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
        from prefect.client.schemas.objects import StateType
        from prefect.flow_runs import resume_flow_run

        paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
        with get_client(sync_client=True) as client:
            while not self._stop.wait(0.5):
                for run in client.read_flow_runs(flow_run_filter=paused):
                    # One answer per pause: a run may pause again at a later gate.
                    if str(run.state.id) in self.answered:
                        continue
                    resume_flow_run(run.id, run_input={"action": self.action, "comment": self.comment})
                    self.answered.append(str(run.state.id))


def test_pause_policy_operator_chooses_rollback(prefect_api, line_home, flow_sim, image_repo):
    flow_sim.control.add_fault("pcscf-11", "dial-test-fail-after-upgrade")
    try:
        with PauseAnswerer("rollback", "calls fail, back out") as operator:
            summary = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path), targets="pcscf-11",
                               campaign_id="pause-rollback", params={"image_repo": str(image_repo)},
                               on_anomaly="pause", pause_timeout_s=120)
    finally:
        flow_sim.control.clear_faults("pcscf-11")
    out = summary["nes"]["pcscf-11"]
    assert len(operator.answered) == 1  # rolled back at the first anomaly
    assert out["status"] == "rolled-back", out
    assert out["decisions"][0]["action"] == "rollback" and out["decisions"][0]["by"] == "operator"
    assert out["decisions"][0]["comment"] == "calls fail, back out"
    assert _state(flow_sim, "pcscf-11")[0].running_version == "1.2.0"


def test_pause_policy_operator_chooses_continue(prefect_api, line_home, flow_sim, image_repo):
    flow_sim.control.add_fault("pcscf-12", "dial-test-fail-after-upgrade")
    try:
        with PauseAnswerer("continue", "known issue, ticket 4711") as operator:
            summary = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path),
                               targets="pcscf-12,pcscf-13", campaign_id="pause-continue",
                               params={"image_repo": str(image_repo)}, on_anomaly="pause", pause_timeout_s=120)
    finally:
        flow_sim.control.clear_faults("pcscf-12")
    assert operator.answered
    first, second = summary["nes"]["pcscf-12"], summary["nes"]["pcscf-13"]
    assert first["status"] == "done" and "accepted anomaly" in first["reason"], first
    # Accepted at the dial-test gate and again at the billing gate (same fault).
    assert [d["action"] for d in first["decisions"]] == ["continue"] * len(first["anomalies"])
    assert second["status"] == "done"  # the campaign went on to the next wave
    assert _state(flow_sim, "pcscf-13")[0].running_version == "1.3.0"


def test_window_too_short_defers_the_remaining_nes(prefect_api, line_home, flow_sim, image_repo):
    from datetime import datetime, timedelta, timezone

    from changeline.flows import stores
    from changeline.flows.campaign import window_clock
    from changeline.models.compile import compile_for_host, load_model

    model = load_model(next(m for m in UPGRADE_MODELS if m.endswith("upf-upgrade.yaml")))
    host = flow_sim.inventory.hosts["upf-11"]
    plan = compile_for_host(model, host, {"image_repo": str(image_repo)})
    needed = (plan.total_estimate_s + plan.rollback_estimate_s) * 0.01  # the simulator's clock
    # The campaign's clock stands still until the canary is done, then has moved on by the
    # canary's worth of time: the window holds the canary, and no longer the rest, however
    # long the machine takes for anything.
    start = datetime.now(timezone.utc)
    end = start + timedelta(seconds=needed + 1.0)

    asked = []

    def now():
        canary_done = stores.journal().ne_statuses("short-window").get("upf-11", ("",))[0] == "done"
        asked.append(canary_done)
        return start + timedelta(seconds=needed if canary_done else 0.0)

    with window_clock("short-window", now):
        summary = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path),
                           targets="upf-11,upf-12,upf-13", campaign_id="short-window",
                           params={"image_repo": str(image_repo)}, window_end=end)
    states = {n: o["status"] for n, o in summary["nes"].items()}
    assert states == {"upf-11": "done", "upf-12": "deferred", "upf-13": "deferred"}, summary["nes"]
    assert False in asked and True in asked, asked  # the decisions took the injected clock
    assert "worst-case rollback" in summary["nes"]["upf-12"]["reason"]
    assert _state(flow_sim, "upf-12")[0].running_version == "1.2.0"


@contextmanager
def paused_holder(flow_sim, image_repo, ne: str, campaign_id: str, comment: str):
    """A campaign paused on `ne`'s anomaly form (so it holds the NE's locks) for the block; then
    the form is answered with rollback. Yields the dict the campaign's summary lands in."""
    import threading
    import time

    from changeline.flows import stores

    flow_sim.control.add_fault(ne, "dial-test-fail-after-upgrade")
    summary: dict = {}
    runner = threading.Thread(target=lambda: summary.update(campaign(
        models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path), targets=ne, campaign_id=campaign_id,
        params={"image_repo": str(image_repo)}, on_anomaly="pause", pause_timeout_s=120)))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while stores.journal().ne_statuses(campaign_id).get(ne, ("",))[0] != "paused":
            assert time.monotonic() < deadline, "campaign never paused"
            time.sleep(0.3)
        yield summary
    finally:
        flow_sim.control.clear_faults(ne)
        with PauseAnswerer("rollback", comment):
            runner.join(120)


def test_two_campaigns_never_interleave_on_one_ne(prefect_api, line_home, flow_sim, image_repo):
    from changeline.flows import stores

    with paused_holder(flow_sim, image_repo, "amf-11", "holder", "second campaign check done") as first:
        second = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path), targets="amf-11",
                          campaign_id="intruder", params={"image_repo": str(image_repo)}, lock_wait_s=2)
        out = second["nes"]["amf-11"]
        assert out["status"] == "skipped" and "another run holds amf-11" in out["reason"], out
        assert stores.journal().entries("intruder", "amf-11") == []
    assert first["nes"]["amf-11"]["status"] == "rolled-back"


def test_sigkill_mid_campaign_then_resume_finishes_every_ne_once(prefect_api, line_home, flow_sim, image_repo):
    import os
    import signal
    import subprocess
    import sys
    import time

    from changeline.flows import stores

    names = [f"amf-{i}" for i in range(13, 19)]
    model = next(m for m in UPGRADE_MODELS if m.endswith("amf-upgrade.yaml"))
    cmd = [sys.executable, "-m", "changeline.cli"]
    engine = subprocess.Popen(cmd + ["run", model, "-i", str(flow_sim.inventory_path), "-t", ",".join(names),
                                     "--campaign-id", "crash", "-p", f"image_repo={image_repo}", "-c", "3"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    journal = stores.journal()
    deadline = time.monotonic() + 240
    # Kill once the canary is done and the next wave is mid-way through its steps.
    while True:
        statuses = journal.ne_statuses("crash")
        done = [n for n, (s, _) in statuses.items() if s == "done"]
        busy = [n for n, (s, r) in statuses.items() if s == "running" and "activate" in r]
        if done and busy:
            break
        assert engine.poll() is None, engine.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, statuses
        time.sleep(0.05)
    os.killpg(engine.pid, signal.SIGKILL)
    engine.wait(10)
    caught = [n for n, (s, _) in journal.ne_statuses("crash").items() if s == "running"]
    assert caught, "nothing was caught mid-way"
    resumed = subprocess.run(cmd + ["resume", "crash"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    for name in names:
        assert _state(flow_sim, name)[0].running_version == "1.3.0", name
        # Done once: each NE restarted exactly once (a kill between the journal entry and the
        # RPC leaves an intent the resumed run completes; a kill after it finds it done).
        assert flow_sim.control.ne(name)["restarts"] == 1, name
        assert journal.ne_statuses("crash")[name][0] == "done"


def test_a_step_over_its_model_timeout_is_an_anomaly_and_rolls_back(prefect_api, line_home, flow_sim, image_repo,
                                                                    tmp_path):
    # The model gives activate 3 s (an estimate to match, so lint accepts it); the NE never
    # answers the activation. The step ends at its budget, not after the atom's own restart wait.
    text = Path(UPGRADE_MODELS[-1]).read_text()  # upf-upgrade
    assert "atom: activate_software\n          estimate: 180\n" in text
    model = tmp_path / "upf-upgrade-timeout.yaml"
    model.write_text(text.replace("atom: activate_software\n          estimate: 180\n",
                                  "atom: activate_software\n          estimate: 2\n          timeout: 3\n"))
    flow_sim.control.add_fault("upf-15", "activate-hang")
    try:
        summary = campaign(models=[str(model)], inventory=str(flow_sim.inventory_path), targets="upf-15",
                           campaign_id="step-timeout", params={"image_repo": str(image_repo)}, on_anomaly="rollback")
    finally:
        flow_sim.control.clear_faults("upf-15")
    out = summary["nes"]["upf-15"]
    assert out["status"] == "rolled-back", out
    activate = next(s for s in out["steps"] if s["name"] == "activate")
    assert activate["status"] == "failed" and "timeout 3 s) ran out of time" in activate["reason"], activate
    assert activate["duration_s"] < 15, activate  # the budget, not the 900 s restart wait (9 s here) or the RPC timeout (30 s)
    assert out["rollback"]["ok"]
    assert _state(flow_sim, "upf-15")[0].running_version == "1.2.0"


def test_an_ne_waiting_for_a_slot_is_deferred_when_the_wait_used_up_the_window(prefect_api, line_home, flow_sim,
                                                                              image_repo, tmp_path):
    # One wave, one NE at work at a time: the second NE's run is made while the first works (the
    # campaign gets the next NE ready ahead of its slot); by the time the slot frees, the window no
    # longer covers it, so it ends without touching its device, its run Cancelled with the reason.
    from datetime import datetime, timedelta, timezone

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, FlowRunFilterParentFlowRunId

    from changeline.flows import stores
    from changeline.models.compile import compile_for_host, load_model

    source = next(m for m in UPGRADE_MODELS if m.endswith("smf-upgrade.yaml"))
    text = Path(source).read_text()
    waves = "    waves:\n      - {name: canary, count: 1}\n      - {name: early, percent: 25}\n      - {name: rest}\n"
    assert waves in text
    model = tmp_path / "smf-upgrade-one-wave.yaml"
    model.write_text(text.replace(waves, "    waves:\n      - {name: all}\n"))
    names = ["smf-13", "smf-14"]
    plan = compile_for_host(load_model(str(model)), flow_sim.inventory.hosts[names[0]], {"image_repo": str(image_repo)})
    needed = (plan.total_estimate_s + plan.rollback_estimate_s) * 0.01  # the simulator's clock
    # Room for either NE when the runs are made (within 6 s of now, however slow the machine),
    # none once the first is done: replies are slowed so one NE's work alone takes longer than that.
    end = datetime.now(timezone.utc) + timedelta(seconds=needed + 6)
    for name in names:
        flow_sim.control.add_fault(name, "slow-replies", delay_s=0.6)
    try:
        summary = campaign(models=[str(model)], inventory=str(flow_sim.inventory_path), targets=",".join(names),
                           campaign_id="slot-window", params={"image_repo": str(image_repo)}, window_end=end,
                           concurrency_cap=1)
    finally:
        for name in names:
            flow_sim.control.clear_faults(name)
    outcomes = summary["nes"]
    assert sorted(o["status"] for o in outcomes.values()) == ["deferred", "done"], outcomes
    waited = next(name for name in names if outcomes[name]["status"] == "deferred")
    assert "worst-case rollback" in outcomes[waited]["reason"], outcomes[waited]
    assert _state(flow_sim, waited)[0].running_version == "1.2.0"
    assert stores.journal().entries("slot-window", waited) == []
    assert stores.journal().ne_statuses("slot-window")[waited][0] == "deferred"
    with get_client(sync_client=True) as client:
        parent = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["slot-window"])))
        assert len(parent) == 1
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent[0].id]), name=FlowRunFilterName(any_=[waited])))
    assert [r.state.type.value for r in runs] == ["CANCELLED"], runs
    assert "deferred to the next window" in runs[0].state.message
