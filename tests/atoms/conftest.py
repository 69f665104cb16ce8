import pytest

from changeline.engine.atom import AtomContext
from changeline.state.backups import BackupStore
from changeline.state.journal import Journal
from changeline.devices.session import DeviceSession, Endpoint
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
    made: list[AtomContext] = []

    def make(name: str, *, run_id: str = "run-1") -> AtomContext:
        host = sim.inventory.hosts[name]
        ctx = AtomContext(host=host, session=DeviceSession(Endpoint.from_host(host), rpc_timeout=10),
                          journal=Journal(tmp_path / "journal.sqlite"), backups=BackupStore(tmp_path / "backups"),
                          run_id=run_id, speed=0.01, log=lambda m: None)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        sim.control.clear_faults(ctx.ne)
        ctx.session.close()
