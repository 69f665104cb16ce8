"""Pools under restarts (drained vs not), and the control interface."""

from __future__ import annotations

import time

import pytest

from changeline.devices.sim.control import SimControl, SimControlError
from changeline.devices.sim.images import generate_image

from .conftest import find, rpc, state_of

SPEED = 0.002
CPS = 100
NES = """\
  - {name: amf-1, type: AMF, pool: amf-pool-1, site: sh-1, region: east, tags: [canary]}
  - {name: amf-2, type: AMF, pool: amf-pool-1, site: bj-1, region: north}
"""
POOLS = f"  - {{name: amf-pool-1, type: AMF, calls_per_second: {CPS}}}\n"


@pytest.fixture
def sim(start_sim):
    return start_sim(NES, pools=POOLS, speed=SPEED)


def install(sim, tmp_path, ne: str) -> None:
    image = generate_image(tmp_path, "AMF", "1.3.0", payload_size=4096)
    with sim.sftp(ne) as sftp:
        sftp.put(str(image), f"/images/{image.name}")
    with sim.netconf(ne) as nc:
        nc.dispatch(rpc("install-software", image=image.name))


def upgrade(sim, ne: str) -> None:
    with sim.netconf(ne) as nc:
        nc.dispatch(rpc("activate-software", version="1.3.0"))
    sim.wait_for(lambda: sim.control.ne(ne)["status"] == "restarting", timeout=5)
    sim.wait_for(lambda: sim.control.ne(ne)["status"] == "up", timeout=10)


def test_a_drained_restart_fails_no_calls_an_undrained_one_does(sim, tmp_path):
    install(sim, tmp_path, "amf-1")
    install(sim, tmp_path, "amf-2")
    before = sim.control.probe("amf-pool-1")
    with sim.netconf("amf-1") as nc:
        nc.dispatch(rpc("drain-traffic"))
    with sim.netconf("amf-2") as nc:  # the peer carries the whole pool meanwhile
        assert state_of(nc, "cl:active-sessions") == ["360000"]
    upgrade(sim, "amf-1")
    with sim.netconf("amf-1") as nc:
        nc.dispatch(rpc("restore-traffic"))
    drained = sim.control.probe("amf-pool-1")
    assert drained["attempted"] > before["attempted"]
    assert drained["failed"] == before["failed"] == 0

    upgrade(sim, "amf-2")  # not drained: half the pool's calls land on a dead NE
    undrained = sim.control.probe("amf-pool-1")
    restart_calls = CPS / 2 * 90  # half of 100 calls/s over the 90 s AMF restart (simulated time)
    assert restart_calls * 0.9 <= undrained["failed"] <= restart_calls * 1.6
    assert undrained["attempted"] > drained["attempted"]


def test_control_reads_nes_and_pools(sim, tmp_path):
    install(sim, tmp_path, "amf-1")
    summary = {ne["name"]: ne for ne in sim.control.nes()}
    assert set(summary) == {"amf-1", "amf-2"}
    address, netconf_port, ssh_port = sim.endpoint("amf-1")
    assert summary["amf-1"] | {"faults": []} == {
        "name": "amf-1", "type": "AMF", "domain": "5gc", "status": "up", "version": "1.2.0",
        "previous_version": None, "address": address, "netconf_port": netconf_port, "ssh_port": ssh_port,
        "pool": "amf-pool-1", "drained": False, "faults": [], "restarts": 0}
    with sim.netconf("amf-1"):
        detail = sim.control.ne("amf-1")
        assert detail["sessions"]["netconf"] == 1
    assert detail["state"]["installed_versions"] == ["1.2.0", "1.3.0"]
    assert detail["state"]["images"][0]["state"] == "installed"
    pools = sim.control.pools()
    assert [(p["name"], [m["name"] for m in p["members"]]) for p in pools] == [("amf-pool-1", ["amf-1", "amf-2"])]


def test_control_errors_are_clear(sim):
    with pytest.raises(SimControlError) as err:
        sim.control.ne("amf-9")
    assert err.value.status == 404 and "no NE 'amf-9'" in str(err.value)
    with pytest.raises(SimControlError) as err:
        sim.control.add_fault("amf-1", "meteor")
    assert err.value.status == 400 and err.value.problems[0]["field"] == "kind"
    with pytest.raises(SimControlError) as err:
        sim.control.probe("nope")
    assert err.value.status == 404
    with pytest.raises(SimControlError) as err:
        sim.control.set_speed(0)
    assert err.value.status == 400
    with pytest.raises(SimControlError, match="not reachable"):
        SimControl("http://127.0.0.1:9", timeout=1).nes()


def test_speed_changes_at_run_time(sim):
    assert sim.control.set_speed(0.1) == 0.1
    with sim.netconf("amf-1") as nc:  # the AMF's 6 s dial test now takes 0.6 s
        started = time.monotonic()
        assert find(nc.dispatch(rpc("dial-test", scenario="ue-registration")), "cl:result") == ["pass"]
        assert time.monotonic() - started >= 0.55


def test_a_probe_call_goes_round_the_pool_and_fails_where_nobody_answers(sim):
    """One real-time call per request: round robin over the pool's undrained members; an
    NE in no pool is a service of its own; a call with nowhere to go fails with the reason."""
    calls = [sim.control.call_service("amf-pool-1") for _ in range(4)]
    assert [c["via"] for c in calls] == ["amf-1", "amf-2", "amf-1", "amf-2"]
    assert all(c["ok"] and c["reason"] is None for c in calls)
    for ne in ("amf-1", "amf-2"):
        with sim.netconf(ne) as nc:
            nc.dispatch(rpc("drain-traffic"))
    drained = sim.control.call_service("amf-pool-1")
    assert drained == {"service": "amf-pool-1", "ok": False, "via": None, "reason": "every member drained"}
    with pytest.raises(SimControlError, match="no pool and no NE outside a pool named 'amf-1'"):
        sim.control.call_service("amf-1")  # a pool member is probed through its pool


def test_probe_targets_skip_drained_members():
    from changeline.devices.sim.traffic import Member, probe_target

    members = {"b": Member(), "a": Member(drained=True), "c": Member(up=False)}
    assert [probe_target(members, turn) for turn in range(3)] == ["b", "c", "b"]
    assert probe_target({"a": Member(drained=True)}, 0) is None
