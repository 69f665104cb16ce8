import os
from pathlib import Path

import pytest

from changeline.devices.sim.images import generate_image
from tests.prefectfixture import start_prefect_server, stop
from tests.simfixture import running_sim

LIBRARY = Path(__file__).resolve().parents[2] / "models" / "library"
UPGRADE_MODELS = sorted(str(p) for p in LIBRARY.glob("*/1.3/*-upgrade.yaml"))
TYPES = {"amf": "AMF", "smf": "SMF", "upf": "UPF", "nrf": "NRF", "pcscf": "P-CSCF", "scscf": "S-CSCF"}


def ne(name: str, **extra) -> dict:
    kind = TYPES[name.split("-")[0]]
    return {"name": name, "type": kind, "version": "1.2.0", **extra}


# 20 NEs of every type for the main campaign (two pools), plus NEs each other test owns.
CAMPAIGN_NES = ([ne(f"amf-{i}", pool="amf-pool") for i in range(1, 5)] + [ne(f"smf-{i}", pool="smf-pool") for i in range(1, 5)]
                + [ne(f"upf-{i}") for i in range(1, 4)] + [ne(f"nrf-{i}") for i in range(1, 3)]
                + [ne(f"pcscf-{i}") for i in range(1, 5)] + [ne(f"scscf-{i}") for i in range(1, 4)])
OTHER_NES = ([ne(f"smf-{i}") for i in range(11, 15)] + [ne(f"amf-{i}") for i in range(11, 23)]
             + [ne(f"pcscf-{i}") for i in range(11, 15)] + [ne(f"upf-{i}") for i in range(11, 16)]
             + [ne(f"amf-{i}") for i in range(41, 44)]  # test_ne_as_task.py
             + [ne(f"amf-{i}") for i in range(44, 46)]  # test_stage_runs.py
             + [ne(f"amf-{i}", pool="amf-pool-5") for i in range(51, 55)] + [ne("smf-51")])  # test_lock_requests.py
POOLS = [{"name": "amf-pool", "type": "AMF", "calls_per_second": 50},
         {"name": "smf-pool", "type": "SMF", "calls_per_second": 50},
         {"name": "amf-pool-5", "type": "AMF", "calls_per_second": 50}]


@pytest.fixture(scope="session")
def prefect_api():
    proc, api, _home = start_prefect_server()
    yield api
    stop(proc)


@pytest.fixture(scope="session")
def line_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("changeline-home")
    os.environ["CHANGELINE_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def flow_sim(tmp_path_factory):
    with running_sim(tmp_path_factory.mktemp("flow-sim"), CAMPAIGN_NES + OTHER_NES, pools=POOLS) as sim:
        yield sim


@pytest.fixture(scope="session")
def image_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("images")
    for kind in TYPES.values():
        generate_image(repo, kind, "1.3.0")
    return repo
