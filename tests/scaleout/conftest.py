"""Scale-out: `changeline serve` workers with separate CHANGELINE_HOMEs and one PostgreSQL."""

from __future__ import annotations

import os

import pytest

from changeline.flows.server import healthy
from tests import pgfixture
from tests.prefectfixture import start_prefect_server, stop


@pytest.fixture(scope="session")
def prefect_api():
    api = os.environ["PREFECT_API_URL"]
    if healthy(api):  # another package's fixture started the session's server on its one port
        yield api
        return
    proc, api, _home = start_prefect_server()
    yield api
    stop(proc)


@pytest.fixture(scope="module")
def state_url():
    why_not = pgfixture.available()
    if why_not:
        pytest.skip(why_not)
    with pgfixture.fresh_database() as url:
        yield url
