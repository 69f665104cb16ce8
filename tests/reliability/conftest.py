"""The fault and crash matrix's NEs: a pool of AMFs, UPFs and P-CSCFs on one simulator, a real
Prefect server (shared with other test packages of the session when one is up already)."""

from __future__ import annotations

import os

import pytest

from changeline.devices.sim.images import generate_image
from tests.prefectfixture import start_prefect_server, stop
from tests.reliability.matrix import CELL_NES, CRASH_NES, POOLS, SPEED
from tests.simfixture import running_sim


def _healthy(api: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def prefect_api():
    api = os.environ["PREFECT_API_URL"]
    if _healthy(api):  # another package's fixture started the session's server on its one port
        yield api
        return
    proc, api, _home = start_prefect_server()
    yield api
    stop(proc)


@pytest.fixture(scope="session")
def rel_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("reliability-home")
    os.environ["CHANGELINE_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def rel_sim(tmp_path_factory):
    with running_sim(tmp_path_factory.mktemp("reliability-sim"), CELL_NES + CRASH_NES, pools=POOLS,
                     speed=SPEED) as sim:
        yield sim


@pytest.fixture(scope="session")
def rel_images(tmp_path_factory):
    repo = tmp_path_factory.mktemp("reliability-images")
    for kind in ("AMF", "UPF", "P-CSCF"):
        generate_image(repo, kind, "1.3.0")
    return repo
