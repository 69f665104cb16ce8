"""`ne_run="task"`: each NE a task run of the campaign's flow run, its steps nested in it, its
final state named for its outcome; an NE whose plan may pause still gets a flow run (the
pause form); Prefect's "Finished in state Completed()" line is gone, its failure lines stay.
A real Prefect server and simulators; the pure decisions first."""

from __future__ import annotations

import logging

import pytest

from changeline.errors import ChangelineError
from changeline.flows.campaign import campaign
from changeline.flows.ne_runs import ne_run_kind, ne_run_setting
from changeline.flows.progress import publish_period_s
from tests.flows.conftest import UPGRADE_MODELS
from tests.flows.test_campaign import PauseAnswerer, _state


class _Plan:
    def __init__(self, *policies: str) -> None:
        self.steps = [type("Step", (), {"on_failure": p})() for p in policies]


def test_an_ne_is_a_task_run_only_when_set_so_and_its_plan_cannot_pause(monkeypatch):
    monkeypatch.delenv("CHANGELINE_NE_RUN", raising=False)
    assert ne_run_setting() == "flow"
    monkeypatch.setenv("CHANGELINE_NE_RUN", "task")
    assert ne_run_setting() == "task" and ne_run_setting("flow") == "flow"
    with pytest.raises(ChangelineError, match="must be one of flow, task, not 'tasks'"):
        ne_run_setting("tasks")
    assert ne_run_kind("task", _Plan("rollback", "abort")) == "task"
    assert ne_run_kind("task", _Plan("rollback", "pause")) == "flow"
    assert ne_run_kind("flow", _Plan("rollback")) == "flow"


def test_the_board_period_grows_with_the_campaign_from_2_s():
    assert publish_period_s(1) == publish_period_s(50) == 2.0
    assert publish_period_s(200) == 8.0 and publish_period_s(1000) == 40.0


def _campaign_run(client, name: str):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    return client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))[0]


def _task_runs(client, flow_run_id) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200)


def _children(client, flow_run_id) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    return client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))


def _recorded(client, flow_run_id, names: set[str], timeout_s: float = 60) -> dict:
    """The campaign's task runs by name once those named are final (task runs reach the server
    as events, shortly after the flow run ends)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        runs = {r.name: r for r in _task_runs(client, flow_run_id)}
        if all(n in runs and runs[n].state and runs[n].state.is_final() for n in names) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


class _Kept(logging.Handler):
    """What a handler of Prefect's task-run logger receives (its filters have run)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def one_done_one_rolled_back(flow_sim, image_repo, done: str, faulty: str, campaign_id: str,
                             **options) -> tuple[dict, list[str]]:
    """A campaign over two NEs where `faulty` fails its dial test after the upgrade: its summary,
    checked (one done at 1.3.0, one rolled back to 1.2.0), and what Prefect's task-run logger
    said at INFO."""
    kept = _Kept()
    task_runs = logging.getLogger("prefect.task_runs")
    level = task_runs.level
    task_runs.addHandler(kept)
    task_runs.setLevel(logging.INFO)
    flow_sim.control.add_fault(faulty, "dial-test-fail-after-upgrade")
    try:
        summary = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path), targets=f"{done},{faulty}",
                           campaign_id=campaign_id, params={"image_repo": str(image_repo)}, on_anomaly="rollback",
                           **options)
    finally:
        task_runs.removeHandler(kept)
        task_runs.setLevel(level)
        flow_sim.control.clear_faults(faulty)
    assert summary["nes"][done]["status"] == "done", summary["nes"][done]
    assert summary["nes"][faulty]["status"] == "rolled-back", summary["nes"][faulty]
    assert _state(flow_sim, done)[0].running_version == "1.3.0"
    assert _state(flow_sim, faulty)[0].running_version == "1.2.0"
    return summary, kept.messages


def test_task_run_nes_nest_their_steps_and_end_in_named_states(prefect_api, line_home, flow_sim, image_repo):
    from prefect.client.orchestration import get_client

    from changeline.flows.progress import artifact_key

    summary, kept = one_done_one_rolled_back(flow_sim, image_repo, "amf-41", "amf-42", "ne-as-task", ne_run="task")

    with get_client(sync_client=True) as client:
        parent = _campaign_run(client, "ne-as-task")
        assert _children(client, parent.id) == []  # no flow run per NE
        steps = {ne: [s["name"] for s in summary["nes"][ne]["steps"] if s["status"] != "skipped"]
                 for ne in ("amf-41", "amf-42")}
        wanted = {"amf-41", "amf-42", "amf-42 rollback"} | {f"{ne} {s}" for ne, names in steps.items() for s in names}
        runs = _recorded(client, parent.id, wanted)
        assert wanted <= set(runs), sorted(wanted - set(runs))
        done, rolled = runs["amf-41"], runs["amf-42"]
        assert (done.state.type.value, done.state.name) == ("COMPLETED", "Completed"), done.state
        assert "now 1.3.0" in done.state.message
        assert (rolled.state.type.value, rolled.state.name) == ("FAILED", "Rolled back"), rolled.state
        assert "dial-test" in rolled.state.message and "rolled back after" in rolled.state.message
        assert {"campaign:ne-as-task", "ne-type:AMF"} <= set(rolled.tags)
        assert any(t.startswith("wave:ne-as-task/") for t in rolled.tags)
        # Each step is nested in its NE's task run (the UI draws it inside the NE's node).
        for ne, names in steps.items():
            for step in names:
                run = runs[f"{ne} {step}"]
                parents = {str(p.id) for p in run.task_inputs.get("__parents__", [])}
                assert parents == {str(runs[ne].id)}, (ne, step, parents)
        assert runs["amf-42 dial-test"].state.type.value == "FAILED"
        # The steps before it stay Completed (not Prefect's "RolledBack" of a failed transaction).
        assert {runs[f"amf-42 {s}"].state.name for s in steps["amf-42"] if s != "dial-test"} == {"Completed"}
        assert runs["amf-42 rollback"].state.name == "Completed"
        # The board links each NE to its task run's page.
        board = client.read_latest_artifacts(artifact_filter=_key(artifact_key("ne-as-task", "board")), limit=1)[0]
        assert f"/runs/task-run/{done.id}" in board.data and f"/runs/task-run/{rolled.id}" in board.data

    finished = [m for m in kept if m.startswith("Finished in state")]
    assert finished and all(not m.startswith("Finished in state Completed") for m in finished), finished
    # What Prefect still says: the failed dial test and the rolled-back NE.
    assert any("Rolled back" in m for m in finished) and any("Failed" in m for m in finished), finished
    assert not [m for m in kept if m.startswith("Task run failed with state")]  # said once, above
    atom_lines = [m for m in kept if m.startswith("precheck: ")]
    assert len(atom_lines) == 2, atom_lines  # the atom's own line per step stays


def _key(key: str):
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    return ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))


def test_an_ne_that_may_pause_keeps_its_flow_run_and_form_under_task_runs(prefect_api, line_home, flow_sim,
                                                                          image_repo):
    from prefect.client.orchestration import get_client

    flow_sim.control.add_fault("amf-43", "dial-test-fail-after-upgrade")
    try:
        with PauseAnswerer("rollback", "back out") as operator:
            summary = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path), targets="amf-43",
                               campaign_id="ne-as-task-pause", params={"image_repo": str(image_repo)},
                               on_anomaly="pause", pause_timeout_s=120, ne_run="task")
    finally:
        flow_sim.control.clear_faults("amf-43")
    out = summary["nes"]["amf-43"]
    assert len(operator.answered) == 1 and out["status"] == "rolled-back", out
    assert out["decisions"][0]["by"] == "operator"
    with get_client(sync_client=True) as client:
        children = _children(client, _campaign_run(client, "ne-as-task-pause").id)
        assert [(r.name, r.state.name) for r in children] == [("amf-43", "Rolled back")]
