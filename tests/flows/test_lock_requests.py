"""What a campaign asks the Prefect server for its locks: one grant per NE when nothing else
holds them (pool peers queue in the engine first), and a wait then a skip when another
campaign holds the NE's pool. A real Prefect server, real simulators, the real model library."""

from __future__ import annotations

from bench.engine import ApiCalls
from changeline.flows.campaign import campaign
from tests.flows.conftest import UPGRADE_MODELS
from tests.flows.test_campaign import paused_holder
from tests.flows.test_ne_as_task import _campaign_run, _children, _task_runs

INCREMENT = "POST /api/v2/concurrency_limits/increment-with-lease"


def test_a_campaign_asks_once_per_ne_for_its_locks_and_its_steps_for_none(prefect_api, line_home, flow_sim,
                                                                        image_repo):
    from prefect.client.orchestration import get_client

    calls = ApiCalls()  # every request this process sends, with its answer (httpx's log)
    calls.install()
    try:
        # amf-51 and amf-52 share a pool: the second waits for the first in the engine, not by
        # asking the server again and again.
        summary = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path),
                           targets="amf-51,amf-52,smf-51", campaign_id="lock-requests",
                           params={"image_repo": str(image_repo)}, concurrency_cap=3)
    finally:
        calls.uninstall()
    assert summary["counts"] == {"done": 3}, summary["counts"]
    answers = dict(calls.by_path_status[INCREMENT])
    # 503 (the server's database busy) is retried by Prefect's client: a loaded machine's, not ours.
    granted = answers.pop(200, 0)
    answers.pop(503, None)
    assert (granted, answers) == (3, {}), dict(calls.by_path_status[INCREMENT])
    assert sum(calls.by_path_status["POST /api/v2/concurrency_limits/decrement-with-lease"].values()) >= 3

    with get_client(sync_client=True) as client:
        parent = _campaign_run(client, "lock-requests")
        nes = {run.name: run for run in _children(client, parent.id)}
        assert sorted(nes) == ["amf-51", "amf-52", "smf-51"], sorted(nes)
        for name, run in nes.items():
            assert {"campaign:lock-requests", "ne-type:" + ("AMF" if name.startswith("amf") else "SMF")} \
                <= set(run.tags), run.tags
            steps = _task_runs(client, run.id)
            assert steps, name
            # The NE's run carries the tags; a tagged step would have cost a request of its own.
            assert [(s.name, s.tags) for s in steps if s.tags] == [], name


def test_a_campaign_holding_an_nes_pool_makes_it_wait_then_skip(prefect_api, line_home, flow_sim, image_repo):
    from changeline.flows import stores

    with paused_holder(flow_sim, image_repo, "amf-53", "pool-holder", "pool check done") as first:
        second = campaign(models=UPGRADE_MODELS, inventory=str(flow_sim.inventory_path), targets="amf-54",
                          campaign_id="pool-intruder", params={"image_repo": str(image_repo)}, lock_wait_s=2)
        out = second["nes"]["amf-54"]
        assert out["status"] == "skipped", out
        assert "another run holds amf-54 or its pool amf-pool-5 (waited 2 s)" in out["reason"], out
        assert stores.journal().entries("pool-intruder", "amf-54") == []
    assert first["nes"]["amf-53"]["status"] == "rolled-back"
