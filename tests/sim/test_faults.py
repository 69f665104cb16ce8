"""Every fault kind, set through the control interface (or the topology file) and seen
through real clients."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import paramiko
import pytest
from ncclient.operations.errors import TimeoutExpiredError
from ncclient.operations.rpc import RPCError
from ncclient.transport.errors import TransportError

from changeline.devices.sim.control import SimControlError
from changeline.devices.sim.images import generate_image
from changeline.devices.sim.ne_xml import NS

from .conftest import find, rpc, state_of

NES = """\
  - {name: amf-1, type: AMF, pool: amf-pool-1}
  - {name: amf-2, type: AMF, pool: amf-pool-1, faults: [{kind: alarm, id: AMF-1002}]}
  - {name: smf-1, type: SMF}
"""
POOLS = "  - {name: amf-pool-1, type: AMF, calls_per_second: 100}\n"


@pytest.fixture
def sim(start_sim):
    return start_sim(NES, pools=POOLS)


@pytest.fixture
def amf_image(tmp_path: Path) -> Path:
    return generate_image(tmp_path, "AMF", "1.3.0", payload_size=200_000)


def upload(sim, ne: str, image: Path) -> None:
    with sim.sftp(ne) as sftp:
        sftp.put(str(image), f"/images/{image.name}")


def wait_until_back(sim, ne: str) -> None:
    sim.wait_for(lambda: sim.control.ne(ne)["status"] == "restarting", timeout=5)
    sim.wait_for(lambda: sim.control.ne(ne)["status"] == "up", timeout=10)


def test_transfer_fail_breaks_the_upload_once(sim, amf_image: Path):
    sim.control.add_fault("amf-1", "transfer-fail", count=1)
    with pytest.raises((EOFError, OSError, paramiko.SSHException)):
        upload(sim, "amf-1", amf_image)
    assert sim.control.ne("amf-1")["faults"] == []  # count used up
    upload(sim, "amf-1", amf_image)  # a retry succeeds
    with sim.netconf("amf-1") as nc:
        assert state_of(nc, "cl:image/cl:sha256") == [hashlib.sha256(amf_image.read_bytes()).hexdigest()]


def test_transfer_corrupt_is_caught_by_checksum_and_install(sim, amf_image: Path):
    sim.control.add_fault("amf-1", "transfer-corrupt")
    upload(sim, "amf-1", amf_image)
    with sim.netconf("amf-1") as nc:
        assert state_of(nc, "cl:image/cl:sha256") != [hashlib.sha256(amf_image.read_bytes()).hexdigest()]
        with pytest.raises(RPCError) as err:
            nc.dispatch(rpc("install-software", image=amf_image.name))
        assert err.value.app_tag == "image-corrupt"


def test_disk_full_refuses_uploads_and_installs(sim, amf_image: Path):
    upload(sim, "amf-1", amf_image)
    sim.control.add_fault("amf-1", "disk-full")
    with sim.netconf("amf-1") as nc:
        assert state_of(nc, "cl:disk-free-mb") == ["0"]
        with pytest.raises(RPCError) as err:
            nc.dispatch(rpc("install-software", image=amf_image.name))
        assert err.value.app_tag == "disk-full" and "0 MB free" in err.value.message
    with sim.sftp("amf-1") as sftp, sftp.open("/images/other.img", "wb") as f:
        with pytest.raises(IOError, match="No space left on device"):
            f.write(b"x" * 100_000)


def test_install_fail_then_retry(sim, amf_image: Path):
    upload(sim, "amf-1", amf_image)
    sim.control.add_fault("amf-1", "install-fail", count=1)
    with sim.netconf("amf-1") as nc:
        with pytest.raises(RPCError) as err:
            nc.dispatch(rpc("install-software", image=amf_image.name))
        assert err.value.app_tag == "install-failed"
        nc.dispatch(rpc("install-software", image=amf_image.name))
        assert state_of(nc, "cl:image/cl:state") == ["installed"]


def _install(sim, ne: str, image: Path) -> None:
    upload(sim, ne, image)
    with sim.netconf(ne) as nc:
        nc.dispatch(rpc("install-software", image=image.name))


def test_activate_hang_never_answers(sim, amf_image: Path):
    _install(sim, "amf-1", amf_image)
    sim.control.add_fault("amf-1", "activate-hang")
    nc = sim.netconf("amf-1", timeout=1.0)
    with pytest.raises(TimeoutExpiredError):
        nc.dispatch(rpc("activate-software", version="1.3.0"))
    with sim.netconf("amf-1") as again:  # still up, still on the old version
        assert state_of(again, "cl:running-version") == ["1.2.0"]
        # The hung session answers nothing more (RPCs run in order): kill it from outside.
        again.kill_session(nc.session_id)
        sim.wait_for(lambda: not nc.connected, timeout=5)


def test_activate_old_version_comes_back_unchanged(sim, amf_image: Path):
    _install(sim, "amf-1", amf_image)
    sim.control.add_fault("amf-1", "activate-old-version")
    with sim.netconf("amf-1") as nc:
        assert nc.dispatch(rpc("activate-software", version="1.3.0")).ok
    wait_until_back(sim, "amf-1")
    with sim.netconf("amf-1") as nc:
        assert state_of(nc, "cl:running-version") == ["1.2.0"]
        assert state_of(nc, "cl:previous-version") == []


def test_dial_tests_fail_after_the_upgrade(sim, amf_image: Path):
    sim.control.add_fault("amf-1", "dial-test-fail-after-upgrade")
    _install(sim, "amf-1", amf_image)
    with sim.netconf("amf-1") as nc:
        assert find(nc.dispatch(rpc("dial-test", scenario="ue-registration")), "cl:result") == ["pass"]
        nc.dispatch(rpc("activate-software", version="1.3.0"))
    wait_until_back(sim, "amf-1")
    with sim.netconf("amf-1") as nc:
        result = nc.dispatch(rpc("dial-test", scenario="ue-registration"))
        assert find(result, "cl:result") == ["fail"]
        assert find(result, "cl:successes") == ["0"]
        assert "after the upgrade to 1.3.0" in find(result, "cl:reason")[0]


def test_cdr_missing_returns_charging_ids_but_writes_nothing(sim):
    sim.control.add_fault("smf-1", "cdr-missing")
    with sim.netconf("smf-1") as nc:
        result = nc.dispatch(rpc("dial-test", scenario="pdu-session"))
    assert find(result, "cl:result") == ["pass"] and len(find(result, "cl:charging-id")) == 5
    time.sleep(60 * 0.005 * 3)  # three CDR delays
    with sim.sftp("smf-1") as sftp:
        assert sftp.listdir("/cdr") == []


def test_kpi_degrade_shows_in_state_and_dial_tests(sim):
    sim.control.add_fault("amf-1", "kpi-degrade", kpi="registration-success-rate", factor=0.5)
    with sim.netconf("amf-1") as nc:
        reply = nc.get(filter=("subtree", f'<ne-state xmlns="{NS}"><kpis/></ne-state>'))
        assert find(reply, "cl:kpi[cl:name='registration-success-rate']/cl:value") == ["49.85"]
        result = nc.dispatch(rpc("dial-test", scenario="ue-registration"))
        assert find(result, "cl:result") == ["fail"] and find(result, "cl:successes") == ["2"]
    with pytest.raises(SimControlError) as err:
        sim.control.add_fault("amf-1", "kpi-degrade", kpi="nope", factor=0.5)
    assert err.value.status == 400 and "unknown KPI 'nope'" in str(err.value)


def test_alarms_from_topology_faults_and_control(sim):
    with sim.netconf("amf-2") as nc:
        assert state_of(nc, "cl:alarm/cl:id") == ["AMF-1002"]
        assert state_of(nc, "cl:alarm/cl:severity") == ["major"]
    sim.control.add_fault("amf-1", "alarm", severity="critical", text="N2 down on gNB 17")
    raised = sim.control.raise_alarm("amf-1", "minor", "fan tray 2 degraded")
    cli = sim.cli("amf-1")
    try:
        table = cli.send_command("show alarms").splitlines()
        assert table[0].split() == ["ID", "SEVERITY", "RAISED-AT", "TEXT"]
        assert any("critical" in line and line.endswith("N2 down on gNB 17") for line in table)
        assert any(line.startswith(raised["id"]) and "minor" in line for line in table)
    finally:
        cli.disconnect()
    assert sim.control.clear_faults("amf-1", "alarm") == 1
    assert sim.control.clear_alarms("amf-1") == 1
    with sim.netconf("amf-1") as nc:
        assert state_of(nc, "cl:alarm/cl:id") == []


def test_slow_replies_delay_every_rpc(sim):
    sim.control.add_fault("amf-1", "slow-replies", delay_s=0.4)
    with sim.netconf("amf-1") as nc:
        started = time.monotonic()
        nc.get_config(source="running")
        assert time.monotonic() - started >= 0.4
        sim.control.clear_faults("amf-1", "slow-replies")
        # While the fault holds, no reply comes sooner than 0.4 s; one reply that does proves it
        # gone. A few tries, so a busy machine's slow reply is not taken for the fault.
        assert any(_took(nc) < 0.4 for _ in range(20))


def _took(nc) -> float:
    started = time.monotonic()
    nc.get_config(source="running")
    return time.monotonic() - started


@pytest.mark.parametrize("after,applied", [(False, "3240"), (True, "1800")])
def test_drop_mid_rpc_drops_the_connection_before_or_after_applying(sim, after: bool, applied: str):
    sim.control.add_fault("amf-1", "drop-mid-rpc", rpc="edit-config", after=after)
    nc = sim.netconf("amf-1", timeout=5)
    with pytest.raises((TransportError, TimeoutExpiredError)):
        nc.edit_config(target="running", config=f"""<config><ne xmlns="{NS}"><timers><timer>
            <name>t3512</name><value>1800</value></timer></timers></ne></config>""")
    sim.wait_for(lambda: not nc.connected, timeout=5)
    with sim.netconf("amf-1") as again:
        assert find(again.get_config(source="running"), "cl:timer[cl:name='t3512']/cl:value") == [applied]
        again.edit_config(target="running", config=f"""<config><ne xmlns="{NS}"><timers><timer>
            <name>t3502</name><value>600</value></timer></timers></ne></config>""")  # count 1: used up
