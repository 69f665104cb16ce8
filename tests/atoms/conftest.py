import pytest

from tests.atoms.helpers import sim_contexts
from tests.simfixture import running_sim

# Two NEs of every type plus spares; each test takes its own NE so tests stay independent.
NES = [
    {"name": "amf-1", "type": "AMF", "version": "1.2.0", "pool": "amf-pool"},
    {"name": "amf-2", "type": "AMF", "version": "1.2.0", "pool": "amf-pool"},
    {"name": "amf-3", "type": "AMF", "version": "1.2.0"},
    {"name": "smf-1", "type": "SMF", "version": "1.2.0", "pool": "smf-pool"},
    {"name": "smf-2", "type": "SMF", "version": "1.2.0", "pool": "smf-pool"},
    {"name": "smf-3", "type": "SMF", "version": "1.2.0"},
    {"name": "upf-1", "type": "UPF", "version": "1.2.0"},
    {"name": "upf-2", "type": "UPF", "version": "1.2.0"},
    {"name": "nrf-1", "type": "NRF", "version": "1.2.0"},
    {"name": "nrf-2", "type": "NRF", "version": "1.2.0"},
    {"name": "nrf-3", "type": "NRF", "version": "1.2.0"},
    {"name": "pcscf-1", "type": "P-CSCF", "version": "1.2.0"},
    {"name": "pcscf-2", "type": "P-CSCF", "version": "1.2.0"},
    {"name": "scscf-1", "type": "S-CSCF", "version": "1.2.0"},
    {"name": "scscf-2", "type": "S-CSCF", "version": "1.2.0"},
]
POOLS = [{"name": "amf-pool", "type": "AMF", "calls_per_second": 50},
         {"name": "smf-pool", "type": "SMF", "calls_per_second": 50}]


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    with running_sim(tmp_path_factory.mktemp("atoms-sim"), NES, pools=POOLS) as running:
        yield running


@pytest.fixture
def ctx_for(sim, tmp_path):
    with sim_contexts(sim, tmp_path) as make:
        yield make
