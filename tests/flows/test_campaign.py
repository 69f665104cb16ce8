"""End-to-end campaigns: a real Prefect server, real simulators, the real model library."""

from __future__ import annotations

from changeline.atoms.backup import read_running
from changeline.devices import ne_api
from changeline.flows.campaign import campaign
from tests.flows.conftest import UPGRADE_MODELS


def test_mixed_campaign_upgrades_every_ne_in_waves(prefect_api, line_home, flow_sim, image_repo):
    summary = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path),
                       targets="amf-[1-4],smf-[1-4],upf-[1-3],nrf-[1-2],pcscf-[1-4],scscf-[1-3]",
                       campaign_id="mixed-20", params={"image_repo": str(image_repo)}, concurrency_cap=8)
    assert summary["counts"] == {"done": 20}, summary["counts"]
    assert summary["all_reached_target"]
