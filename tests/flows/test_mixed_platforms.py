"""One upgrade model end to end on a campaign that mixes NETCONF-contract NEs and MML NEs:
a real Prefect server, the simulator's two personalities, the library's SMF upgrade."""

from __future__ import annotations

import pytest

from changeline.devices.platforms import driver_for
from changeline.devices.session import DeviceSession, Endpoint
from changeline.flows.campaign import campaign
from tests.flows.conftest import LIBRARY, POOLS
from tests.simfixture import running_sim

MML = "changeline-mml"
NES = [{"name": f"smf-{i}", "type": "SMF", "version": "1.2.0", "pool": "smf-pool",
        **({"platform": MML} if i % 2 == 0 else {})} for i in range(31, 35)]


@pytest.fixture(scope="module")
def mixed_sim(tmp_path_factory):
    with running_sim(tmp_path_factory.mktemp("mixed-sim"), NES, pools=POOLS) as sim:
        yield sim


def test_one_upgrade_model_runs_on_netconf_and_mml_nes(prefect_api, line_home, mixed_sim, image_repo):
    hosts = mixed_sim.inventory.hosts
    assert sorted(h.platform for h in hosts.values()) == ["changeline-mml"] * 2 + ["changeline-ne"] * 2
    summary = campaign(models=[str(LIBRARY / "smf" / "1.3" / "smf-upgrade.yaml")],
                       inventory=str(mixed_sim.inventory_path), targets="smf-3[1-4]", campaign_id="mixed-platforms",
                       params={"image_repo": str(image_repo)}, concurrency_cap=4)
    assert summary["counts"] == {"done": 4}, summary
    assert summary["all_reached_target"]
    for name, host in hosts.items():
        with DeviceSession(Endpoint.from_host(host)) as session:
            state = driver_for(host, session).read_state()
        assert (state.running_version, state.drained) == ("1.3.0", False), name
