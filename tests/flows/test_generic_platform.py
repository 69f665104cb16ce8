"""The generic config model (models/library/common/any/ne-capacity.yaml) end to end on the
generic `netconf` platform: a campaign on a real Prefect server backs up, changes with a
confirmed commit, validates and confirms; the rollback flow then restores the backup
canonically identical. Once on yuma123 netconfd (a NETCONF server changeline did not write),
once on the simulator driven as a plain RFC 6241 server."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from changeline.devices.configxml import canonical, config_from_data
from changeline.devices.inventory import load_inventory
from changeline.devices.session import DeviceSession, Endpoint
from changeline.flows import stores
from changeline.flows.campaign import campaign
from changeline.flows.rollback_flow import rollback
from tests.flows.conftest import LIBRARY
from tests.thirdparty import netconfd

MODEL = str(LIBRARY / "common" / "any" / "ne-capacity.yaml")
YANG = Path(__file__).resolve().parents[2] / "catalogue" / "yang" / "changeline-ne.yang"
NS = "urn:changeline:params:xml:ns:yang:changeline-ne"
STARTUP = f"""<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><ne xmlns="{NS}"><name>tp-2</name>
<type>AMF</type><timers><timer><name>t3512</name><value>3240</value></timer></timers>
<capacity><max-sessions>1000</max-sessions></capacity></ne></config>"""


SIM_NE = "amf-18"  # one of flow_sim's NEs no other test takes


@pytest.fixture(params=["netconfd", "simulator"])
def generic_ne(request, tmp_path) -> tuple[str, Path]:
    """(NE name, an inventory that names it with `platform: netconf`)."""
    inventory = tmp_path / "inventory.yaml"
    if request.param == "netconfd":
        if not netconfd.available():
            pytest.skip("netconfd not installed (scripts/system-deps.sh)")
        with netconfd.netconfd_server(tmp_path / "netconfd", modules=[YANG], startup_xml=STARTUP) as srv:
            inventory.write_text(yaml.safe_dump({"hosts": {"tp-2": {
                "hostname": srv.hostname, "port": srv.port, "username": srv.username, "key_file": srv.key_file,
                "known_hosts": srv.known_hosts, "platform": "netconf", "timeout": 20,
                "data": {"ne_type": "AMF"}}}}))
            yield "tp-2", inventory
        return
    sim = request.getfixturevalue("flow_sim")
    raw = yaml.safe_load(sim.inventory_path.read_text())
    raw["known_hosts"] = str(sim.inventory_path.parent / raw["known_hosts"])
    raw["hosts"] = {SIM_NE: {**raw["hosts"][SIM_NE], "platform": "netconf"}}  # a contract NE, driven with RFC 6241 only
    inventory.write_text(yaml.safe_dump(raw))
    yield SIM_NE, inventory


def _running(inventory: Path, name: str) -> bytes:
    with DeviceSession(Endpoint.from_host(load_inventory(inventory).hosts[name])) as session:
        return canonical(config_from_data(session.get_config("running")))


def test_generic_config_model_runs_and_rolls_back_on_the_netconf_platform(prefect_api, line_home, generic_ne):
    name, inventory = generic_ne
    before = _running(inventory, name)
    cid = f"generic-{name}"
    summary = campaign(models=[MODEL], inventory=str(inventory), targets=name, campaign_id=cid,
                       params={"max_sessions": 4242, "confirm_timeout_s": 120})
    assert summary["counts"] == {"done": 1}, summary
    changed = _running(inventory, name)
    assert b"<max-sessions>4242</max-sessions>" in changed and changed != before
    steps = stores.journal().step_records(cid, name)
    assert list(steps) == ["backup", "set-capacity", "config-check", "confirm-capacity"]
    assert {status for status, _ in steps.values()} == {"done"}, steps
    assert steps["set-capacity"][1]["evidence"]["confirm"] == "later"  # a confirmed commit, confirmed by its step
    assert steps["confirm-capacity"][1]["changed"] is True
    backup_id = stores.journal().baseline(cid, name)["backup_id"]
    backup = stores.backups().load(backup_id)
    assert stores.backups().get_object(backup.running_sha256) == before
    assert backup.software_version == ""  # the generic platform reads no NE state

    result = rollback(inventory=str(inventory), campaign_id=cid)
    assert result[name]["status"] == "rolled-back", result
    assert result[name]["verified"]["evidence"]["config_identical"] is True
    assert _running(inventory, name) == stores.backups().get_object(backup.running_sha256)
