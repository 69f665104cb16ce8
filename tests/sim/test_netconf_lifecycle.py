"""The software lifecycle over NETCONF with ncclient, images uploaded with paramiko SFTP."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path

import pytest
from ncclient.operations.rpc import RPCError
from ncclient.transport.errors import TransportError

from changeline.devices.sim.images import generate_image
from changeline.devices.sim.ne_xml import NS

from .conftest import find, rpc, state_of

NES = """\
  - {name: amf-1, type: AMF, version: 1.2.0, pool: amf-pool-1}
  - {name: amf-2, type: AMF, version: 1.2.0, pool: amf-pool-1}
  - {name: smf-1, type: SMF, version: 1.2.0}
"""
POOLS = "  - {name: amf-pool-1, type: AMF, calls_per_second: 50}\n"


@pytest.fixture
def sim(start_sim):
    return start_sim(NES, pools=POOLS)


def upload(sim, ne: str, image: Path) -> None:
    with sim.sftp(ne) as sftp:
        sftp.put(str(image), f"/images/{image.name}")


def refused(sim, ne: str) -> bool:
    address, port, ssh_port = sim.endpoint(ne)
    for p in (port, ssh_port):
        try:
            socket.create_connection((address, p), timeout=1).close()
        except ConnectionRefusedError:
            continue
        return False
    return True


def test_hello_and_get_carry_the_contract(sim):
    with sim.netconf("amf-1") as nc:
        capabilities = set(nc.server_capabilities)
        assert f"{NS}?module=changeline-ne&revision=2026-11-25" in capabilities
        assert "urn:ietf:params:netconf:capability:candidate:1.0" in capabilities
        assert nc.session_id
        reply = nc.get()
        assert find(reply, "cl:ne/cl:name") == ["amf-1"]
        assert find(reply, "cl:ne-state/cl:software/cl:running-version") == ["1.2.0"]
        assert find(reply, "cl:ne-state/cl:software/cl:available-versions/cl:version") == ["1.1.0", "1.2.0", "1.3.0"]
        assert find(reply, "cl:ne-state/cl:traffic/cl:pool") == ["amf-pool-1"]
        assert "registration-success-rate" in find(reply, "cl:kpi/cl:name")


def test_uploaded_image_lists_with_the_files_checksum_and_installs(sim, tmp_path: Path):
    image = generate_image(tmp_path, "AMF", "1.3.0", payload_size=300_000)
    upload(sim, "amf-1", image)
    with sim.netconf("amf-1") as nc:
        listed = nc.dispatch(rpc("list-images"))
        assert find(listed, "cl:image/cl:name") == ["AMF-1.3.0.img"]
        assert find(listed, "cl:image/cl:sha256") == [hashlib.sha256(image.read_bytes()).hexdigest()]
        assert find(listed, "cl:image/cl:state") == ["uploaded"]
        started = time.monotonic()
        nc.dispatch(rpc("install-software", image="AMF-1.3.0.img"))
        assert time.monotonic() - started >= 240 * 0.005 * 0.9  # the install delay, scaled
        assert state_of(nc, "cl:image/cl:state") == ["installed"]
        nc.dispatch(rpc("install-software", image="AMF-1.3.0.img"))  # already installed: fine


@pytest.mark.parametrize("make,app_tag,tag,words", [
    (lambda d: generate_image(d, "SMF", "1.3.0", payload_size=2048), "wrong-ne-type", "operation-failed",
     "image is for SMF, this NE is AMF"),
    (lambda d: generate_image(d, "AMF", "2.0.0", payload_size=2048), "unknown-version", "operation-failed",
     "version 2.0.0 is not one of 1.1.0, 1.2.0, 1.3.0"),
    (lambda d: _corrupted(generate_image(d, "AMF", "1.3.0", payload_size=8192)), "image-corrupt",
     "operation-failed", "payload checksum"),
])
def test_bad_images_are_refused_with_clear_errors(sim, tmp_path: Path, make, app_tag, tag, words):
    image = make(tmp_path)
    upload(sim, "amf-1", image)
    with sim.netconf("amf-1") as nc:
        with pytest.raises(RPCError) as err:
            nc.dispatch(rpc("install-software", image=image.name))
        assert (err.value.tag, err.value.app_tag) == (tag, app_tag)
        assert words in err.value.message
        assert state_of(nc, "cl:image/cl:state") == ["invalid"]


def _corrupted(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    data[4000] ^= 0x55
    path.write_bytes(bytes(data))
    return path


def test_missing_image_and_arguments(sim):
    with sim.netconf("amf-1") as nc:
        with pytest.raises(RPCError) as err:
            nc.dispatch(rpc("install-software", image="AMF-9.9.9.img"))
        assert (err.value.tag, err.value.app_tag) == ("invalid-value", "image-not-found")
        with pytest.raises(RPCError) as err:
            nc.dispatch(rpc("install-software"))
        assert err.value.tag == "missing-element"
        with pytest.raises(RPCError) as err:
            nc.dispatch(rpc("activate-software", version="1.3.0"))
        assert (err.value.app_tag, err.value.message) == (
            "not-installed", "version 1.3.0 is not installed (installed: 1.2.0)")
        with pytest.raises(RPCError) as err:
            nc.dispatch(rpc("rollback-software"))
        assert err.value.app_tag == "no-previous-version"
        nc.dispatch(rpc("activate-software", version="1.2.0"))  # already active: ok, no restart
        assert state_of(nc, "cl:running-version") == ["1.2.0"]


# The test must see the ports refuse while the NE is down: at the suite's 0.005 that window is
# 0.45 s, which a poller on a loaded machine can sleep through; at 0.04 it is 3.6 s.
RESTART_SPEED = 0.04


def test_activate_restarts_onto_the_new_version_with_its_config_then_rollback(sim, tmp_path: Path):
    upload(sim, "amf-1", generate_image(tmp_path, "AMF", "1.3.0", payload_size=4096))
    sim.control.set_speed(RESTART_SPEED)
    other = sim.netconf("amf-1")
    with sim.netconf("amf-1") as nc:
        nc.dispatch(rpc("install-software", image="AMF-1.3.0.img"))
        # A saved config change must survive the restart.
        nc.edit_config(target="running", config=f"""<config><ne xmlns="{NS}"><timers><timer>
            <name>t3512</name><value>1800</value></timer></timers></ne></config>""")
        nc.copy_config(source="running", target="startup")
        reply = nc.dispatch(rpc("activate-software", version="1.3.0"))
        assert reply.ok
        activated = time.monotonic()
    sim.wait_for(lambda: refused(sim, "amf-1"), timeout=5)
    sim.wait_for(lambda: not other.connected, timeout=5)  # every session dropped
    with pytest.raises(TransportError):
        other.get()
    sim.wait_for(lambda: not refused(sim, "amf-1"), timeout=10)
    down_for = time.monotonic() - activated
    assert down_for >= 90 * RESTART_SPEED * 0.8  # AMF restart delay, scaled
    with sim.netconf("amf-1") as nc:
        assert state_of(nc, "cl:running-version") == ["1.3.0"]
        assert state_of(nc, "cl:previous-version") == ["1.2.0"]
        assert state_of(nc, "cl:image/cl:state") == ["active"]
        assert find(nc.get_config(source="running"), "cl:timer[cl:name='t3512']/cl:value") == ["1800"]
        nc.dispatch(rpc("rollback-software"))
    sim.wait_for(lambda: refused(sim, "amf-1"), timeout=5)
    sim.wait_for(lambda: not refused(sim, "amf-1"), timeout=10)
    with sim.netconf("amf-1") as nc:
        assert state_of(nc, "cl:running-version") == ["1.2.0"]
        assert state_of(nc, "cl:previous-version") == ["1.3.0"]
        assert int(state_of(nc, "cl:uptime-seconds")[0]) < 300


def test_dial_tests_and_traffic_rpcs(sim):
    with sim.netconf("amf-1") as nc:
        result = nc.dispatch(rpc("dial-test", scenario="ue-registration"))
        assert find(result, "cl:dial-test-result/cl:result") == ["pass"]
        assert find(result, "cl:successes") == ["5"]
        assert find(result, "cl:charging-id") == []  # an AMF writes no CDRs
        with pytest.raises(RPCError) as err:
            nc.dispatch(rpc("dial-test", scenario="volte-call"))
        assert (err.value.tag, err.value.app_tag) == ("invalid-value", "unknown-scenario")
        nc.dispatch(rpc("drain-traffic"))
        nc.dispatch(rpc("drain-traffic"))  # idempotent
        assert state_of(nc, "cl:traffic/cl:drained") == ["true"]
        assert state_of(nc, "cl:traffic/cl:active-sessions") == ["0"]
        nc.dispatch(rpc("restore-traffic"))
        assert state_of(nc, "cl:traffic/cl:drained") == ["false"]
    with sim.netconf("smf-1") as nc:
        result = nc.dispatch(rpc("dial-test", scenario="pdu-session"))
        assert find(result, "cl:charging-id") == [f"smf-1-00000{i}" for i in range(1, 6)]
        with pytest.raises(RPCError) as err:
            nc.dispatch(rpc("drain-traffic"))
        assert err.value.app_tag == "not-pooled"


def test_config_edits_outside_the_model_are_refused(sim):
    with sim.netconf("amf-1") as nc:
        with pytest.raises(RPCError) as err:
            nc.edit_config(target="running", config=f'<config><ne xmlns="{NS}"><name>amf-7</name></ne></config>')
        assert err.value.tag == "invalid-value" and "name is read-only" in err.value.message
        with pytest.raises(RPCError) as err:
            nc.edit_config(target="running", config=f"""<config><ne xmlns="{NS}"><capacity>
                <max-sessions>-1</max-sessions></capacity></ne></config>""")
        assert "max-sessions must be an unsigned 32-bit integer" in err.value.message
        nc.edit_config(target="candidate", config=f"""<config><ne xmlns="{NS}"><capacity>
            <max-sessions>2500000</max-sessions></capacity></ne></config>""")
        nc.commit()
        assert find(nc.get_config(source="running"), "cl:max-sessions") == ["2500000"]


def test_a_client_logged_in_as_the_ne_goes_down_gets_no_session(sim, tmp_path: Path):
    # A NETCONF client that has connected and logged in but not yet opened its session when the
    # NE restarts must not get a session on the NE that is down (it used to, and read a state
    # with uptime 0 on the old version: an activation "came back on the old version").
    import paramiko

    from .conftest import PASSWORD, nodelay_socket

    upload(sim, "amf-2", generate_image(tmp_path, "AMF", "1.3.0", payload_size=4096))
    address, port, _ = sim.endpoint("amf-2")
    transport = paramiko.Transport(nodelay_socket(address, port))
    transport.set_keepalive(0)
    transport.connect(username="admin", password=PASSWORD)  # logged in, no channel yet
    try:
        with sim.netconf("amf-2") as nc:
            nc.dispatch(rpc("install-software", image="AMF-1.3.0.img"))
            nc.dispatch(rpc("activate-software", version="1.3.0"))
        sim.wait_for(lambda: refused(sim, "amf-2"), timeout=5)
        sim.wait_for(lambda: not transport.is_active(), timeout=5)  # aborted with the others
        with pytest.raises((paramiko.SSHException, EOFError, OSError)):
            transport.open_session().invoke_subsystem("netconf")
    finally:
        transport.close()
    sim.wait_for(lambda: not refused(sim, "amf-2"), timeout=10)
    with sim.netconf("amf-2") as nc:
        assert state_of(nc, "cl:running-version") == ["1.3.0"]
