"""`step_runs: stage` (CHANGELINE_STEP_RUNS=stage): an NE's run holds a task run per model
stage instead of per step, each step one log line in it; a stage stopped by a failed gate ends
Failed naming the step, and the rollback is still a task run of its own. A real Prefect server,
real simulators, the real model library."""

from __future__ import annotations

from changeline.models.compile import load_model
from tests.flows.conftest import UPGRADE_MODELS
from tests.flows.test_ne_as_task import _campaign_run, _children, _recorded, one_done_one_rolled_back


def test_stage_runs_hold_their_steps_as_lines_and_a_failed_gate_fails_its_stage(prefect_api, line_home, flow_sim,
                                                                              image_repo, monkeypatch):
    from prefect.client.orchestration import get_client

    monkeypatch.setenv("CHANGELINE_STEP_RUNS", "stage")
    summary, kept = one_done_one_rolled_back(flow_sim, image_repo, "amf-44", "amf-45", "stage-runs")

    amf = next(load_model(m) for m in UPGRADE_MODELS if "/amf/" in m)
    stages = [s.name for s in amf.stages]
    with get_client(sync_client=True) as client:
        nes = {run.name: run for run in _children(client, _campaign_run(client, "stage-runs").id)}
        done = _recorded(client, nes["amf-44"].id, set(stages))
        assert sorted(done) == sorted(stages), sorted(done)  # a task run per stage, none per step
        assert {r.state.name for r in done.values()} == {"Completed"}
        rolled = _recorded(client, nes["amf-45"].id, set(stages) | {"rollback"})
        assert sorted(rolled) == sorted([*stages, "rollback"]), sorted(rolled)
        verify = rolled["verify"]
        assert verify.state.type.value == "FAILED" and verify.state.message.startswith("dial-test: "), verify.state
        assert {rolled[s].state.name for s in stages if s != "verify"} == {"Completed"}
        assert rolled["rollback"].state.name == "Completed"

    # Each step that ran is one line in its stage's run, named for the step and its atom.
    for ne in ("amf-44", "amf-45"):
        for step in summary["nes"][ne]["steps"]:
            if step["status"] == "skipped":
                continue
            line = f"{step['name']} ({step['atom']})"
            assert sum(m.startswith(line) for m in kept) >= 1, (ne, line)
    assert any(m.startswith("dial-test (dial_test) failed: ") for m in kept), kept
