"""One-click rollback: the rollback flow directly, and as the served deployment an operator
starts from the Prefect UI."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from changeline.flows import stores
from changeline.flows.campaign import campaign
from changeline.flows.rollback_flow import rollback
from tests.flows.conftest import UPGRADE_MODELS
from tests.flows.test_campaign import _state


def _upgrade(sim, image_repo, targets: str, campaign_id: str) -> None:
    summary = campaign(models=UPGRADE_MODELS, inventory=str(sim.inventory_path), targets=targets,
                       campaign_id=campaign_id, params={"image_repo": str(image_repo)})
    assert summary["all_reached_target"], summary["nes"]


def test_rollback_flow_restores_a_finished_campaign(prefect_api, line_home, flow_sim, image_repo):
    _, config_before = _state(flow_sim, "upf-14")
    _upgrade(flow_sim, image_repo, "upf-14", "rb-source")
    assert _state(flow_sim, "upf-14")[0].running_version == "1.3.0"
    result = rollback(inventory=str(flow_sim.inventory_path), campaign_id="rb-source", verify_scenarios=["pdu-session"])
    assert result["upf-14"]["status"] == "rolled-back"
    state, config_after = _state(flow_sim, "upf-14")
    assert state.running_version == "1.2.0" and config_after == config_before
    assert stores.journal().ne_statuses("rb-source")["upf-14"][0] == "rolled-back"
    undone = [e.status for e in stores.journal().entries("rb-source", "upf-14") if e.undo is not None]
    assert undone and set(undone) == {"undone"}


def test_rollback_deployment_started_like_the_ui_does(prefect_api, line_home, flow_sim, image_repo):
    from prefect.deployments import run_deployment

    _upgrade(flow_sim, image_repo, "amf-12", "rb-ui")
    served = subprocess.Popen([sys.executable, "-m", "changeline.cli", "serve", "--model", UPGRADE_MODELS[0],
                               "--inventory", str(flow_sim.inventory_path), "--cron", "0 2 * * 6",
                               "--timezone", "Asia/Shanghai", "--window", "240"], env=os.environ.copy(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                # By NE name only: the flow finds the NE's latest campaign in the journal.
                run = run_deployment("rollback/one-click", parameters={"nes": ["amf-12"]}, timeout=240)
                break
            except Exception as err:  # the deployment is not registered yet
                assert served.poll() is None, served.stdout.read().decode()[-3000:]
                assert time.monotonic() < deadline, f"deployment never appeared: {err}"
                time.sleep(1)
        assert run.state.is_completed(), run.state
        assert _state(flow_sim, "amf-12")[0].running_version == "1.2.0"
        # Its state says what it undid and verified (this NE was at target: every step is undone now).
        assert run.state.name == "Rolled back", run.state
        assert run.state.message.startswith("amf-12: undid activate, "), run.state.message
        assert "running version 1.2.0 (read from the NE)" in run.state.message
        assert "byte-identical to the backup" in run.state.message
        # The campaign deployment carries the change window: a Saturday 02:00 Shanghai cron, 240 minutes.
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("campaign/campaign")
        cron = deployment.schedules[0].schedule
        assert (cron.cron, cron.timezone) == ("0 2 * * 6", "Asia/Shanghai")
        assert deployment.parameters["window_minutes"] == 240
    finally:
        os.killpg(served.pid, 15)
        served.wait(30)


def test_nes_dispatched_to_a_served_worker_deployment(prefect_api, line_home, flow_sim, image_repo):
    """Scale-out: the campaign keeps waves, locks and windows; the NE work runs in another
    process that serves the ne-change deployment (as workers on other machines would)."""
    from prefect.client.orchestration import get_client

    served = subprocess.Popen([sys.executable, "-m", "changeline.cli", "serve"], env=os.environ.copy(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    client.read_deployment_by_name("ne-change/worker")
                    break
                except Exception:
                    assert served.poll() is None, served.stdout.read().decode()[-3000:]
                    assert time.monotonic() < deadline, "worker deployment never appeared"
                    time.sleep(1)
        summary = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path), targets="amf-21,amf-22",
                           campaign_id="on-workers", params={"image_repo": str(image_repo)},
                           ne_deployment="ne-change/worker")
        assert summary["all_reached_target"], summary["nes"]
        for name in ("amf-21", "amf-22"):
            assert _state(flow_sim, name)[0].running_version == "1.3.0"
        with get_client(sync_client=True) as client:
            runs = [r for r in client.read_flow_runs() if r.name in ("amf-21", "amf-22") and r.deployment_id]
        assert len(runs) == 2 and all(r.state.is_completed() for r in runs)
    finally:
        os.killpg(served.pid, 15)
        served.wait(30)


def test_rollback_waits_for_a_run_still_changing_the_ne_then_refuses(prefect_api, line_home, flow_sim, image_repo):
    # A campaign paused on its anomaly form still holds the NE: a one-click rollback started
    # beside it must not touch the NE, and says what to do instead.
    import pytest

    from changeline.errors import ChangelineError
    from tests.flows.test_campaign import paused_holder

    with paused_holder(flow_sim, image_repo, "amf-19", "rb-holder", "rollback through the form") as first:
        undo_before = [(e.step, e.status) for e in stores.journal().entries("rb-holder", "amf-19")]
        with pytest.raises(ChangelineError, match="another run holds amf-19.*answer that run's pause form"):
            rollback(inventory=str(flow_sim.inventory_path), nes=["amf-19"], lock_wait_s=2)
        assert [(e.step, e.status) for e in stores.journal().entries("rb-holder", "amf-19")] == undo_before
        assert _state(flow_sim, "amf-19")[0].running_version == "1.3.0"  # untouched by the refused rollback
    assert first["nes"]["amf-19"]["status"] == "rolled-back"
