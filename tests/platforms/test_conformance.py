"""One conformance suite per platform, each against a server that speaks it: the simulator's
NETCONF personality (changeline-ne) and its MML personality (changeline-mml). The same
operations through `Driver` must give the same answers on both."""

from __future__ import annotations

import time
from pathlib import Path

import paramiko
import pytest

from changeline.engine import runner
from changeline.atoms.backup import read_running
from changeline.state.backups import BackupStore
from changeline.engine.atom import AtomContext
from changeline.state.journal import Journal
from changeline.devices import ne_api
from changeline.devices.session import DeviceSession, Endpoint
from changeline.devices.sim.images import generate_image
from changeline.errors import CommandError, RpcError
from tests.atoms.helpers import prepare_steps, run_steps, sim_contexts, upgrade_steps
from tests.simfixture import running_sim

MML = "changeline-mml"
NES = [
    {"name": "smf-1", "type": "SMF", "version": "1.2.0", "pool": "smf-pool"},
    {"name": "smf-2", "type": "SMF", "version": "1.2.0", "pool": "smf-pool", "platform": MML},
    {"name": "smf-3", "type": "SMF", "version": "1.2.0", "pool": "smf-pool"},
    {"name": "smf-4", "type": "SMF", "version": "1.2.0", "pool": "smf-pool", "platform": MML},
]
POOLS = [{"name": "smf-pool", "type": "SMF", "calls_per_second": 50}]
BY_PLATFORM = {"changeline-ne": ("smf-1", "smf-3"), MML: ("smf-2", "smf-4")}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running_sim(tmp_path_factory.mktemp("platforms-sim"), NES, pools=POOLS) as running:
        yield running


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return generate_image(tmp_path_factory.mktemp("images"), "SMF", "1.3.0")


@pytest.fixture
def ctx_for(sim, tmp_path):
    logs: list[str] = []
    with sim_contexts(sim, tmp_path, log=logs.append) as make:
        def made(name: str) -> AtomContext:
            ctx = make(name, run_id=f"run-{time.monotonic_ns()}")  # one run each: they share the journal
            ctx.logs = logs
            return ctx
        yield made


PLATFORMS = pytest.mark.parametrize("platform", list(BY_PLATFORM))


def test_the_inventory_names_each_nes_platform(sim):
    hosts = sim.inventory.hosts
    assert {n: hosts[n].platform for n in ("smf-1", "smf-2")} == {"smf-1": "changeline-ne", "smf-2": MML}


@PLATFORMS
def test_state_images_kpis_and_dial_test(ctx_for, platform):
    ctx = ctx_for(BY_PLATFORM[platform][0])
    state = ctx.driver.read_state()
    assert (state.name, state.ne_type, state.running_version) == (ctx.ne, "SMF", "1.2.0")
    assert state.available_versions == ["1.1.0", "1.2.0", "1.3.0"]
    assert state.pool == "smf-pool" and state.drained is False and state.disk_total_mb > state.disk_free_mb > 0
    assert {"pdu-session-success-rate", "sessions", "cpu"} <= set(state.kpis)
    assert set(ctx.driver.read_kpis()) == set(state.kpis)
    assert ctx.driver.list_images() == []
    result = ctx.driver.dial_test("pdu-session")
    assert result.passed and result.attempts == result.successes == 5 and len(result.charging_ids) == 5


@PLATFORMS
def test_refusals_are_errors_with_the_nes_words(ctx_for, platform):
    ctx = ctx_for(BY_PLATFORM[platform][0])
    with pytest.raises((RpcError, CommandError), match="image nope.img not found"):
        ctx.driver.install("nope.img")
    with pytest.raises((RpcError, CommandError), match="unknown scenario 'volte-call'"):
        ctx.driver.dial_test("volte-call")
    assert ctx.driver.read_state().running_version == "1.2.0"  # the session survives a refusal


@PLATFORMS
def test_upgrade_chain_then_undo(ctx_for, platform, image: Path):
    ctx = ctx_for(BY_PLATFORM[platform][1])
    config_before = read_running(ctx)
    run_steps(ctx, prepare_steps(image, ["pdu-session"]) + upgrade_steps("pdu-session"))
    assert ctx.driver.read_state().running_version == "1.3.0"
    if platform == MML:  # the long-running install reported its progress
        assert any("INS SOFTWARE" in line and "progress 100%" in line for line in ctx.logs), ctx.logs
    undone = runner.undo_run(ctx)
    assert [r.atom for r in undone] == ["undo:activate_software", "undo:drain_traffic", "undo:transfer_software"]
    state = ctx.driver.read_state()
    assert state.running_version == "1.2.0" and not state.drained and image.name not in {i.name for i in state.images}
    assert read_running(ctx) == config_before


def test_an_mml_ne_has_no_lifecycle_over_netconf(ctx_for):
    ctx = ctx_for("smf-2")
    with pytest.raises(RpcError):
        ne_api.install_software(ctx.session, "x.img")
    assert ne_api.read_state_optional(ctx.session) is None
    assert read_running(ctx)  # its configuration is on NETCONF


def _shell(sim, name: str) -> paramiko.Channel:
    host = sim.inventory.hosts[name]
    client = paramiko.SSHClient()
    client.load_host_keys(host.known_hosts)
    client.connect(host.hostname, port=host.ssh_port, username=host.username, password=host.password(),
                   allow_agent=False, look_for_keys=False, timeout=10)
    channel = client.invoke_shell()
    channel.settimeout(10)
    channel.client = client
    _read_until(channel, ">")
    return channel


def _read_until(channel: paramiko.Channel, marker: str) -> str:
    out = ""
    while marker not in out:
        out += channel.recv(65536).decode()
    return out


def test_mml_shell_pages_and_replies_with_retcodes(sim, ctx_for):
    channel = _shell(sim, "smf-4")
    try:
        channel.send(b"LST ALMAF:;\r")
        assert "RETCODE = 0" in _read_until(channel, "MML:smf-4>")
        channel.send(b"FOO BAR:;\r")
        assert "RETCODE = 2001  Unknown command: FOO BAR" in _read_until(channel, "MML:smf-4>")
        channel.send(b'INS SOFTWARE:;\r')
        assert "RETCODE = 2002  Missing parameter: IMAGE" in _read_until(channel, "MML:smf-4>")
        channel.send(b"DSP NE:;\r")  # a reply longer than a page stops at a More prompt
        first = _read_until(channel, "---- More")
        assert "NE information" in first and "---    END" not in first
        channel.send(b" ")
        rest = _read_until(channel, "MML:smf-4>")
        assert "Active sessions" in first + rest and "---    END" in rest
        channel.send(b"DSP NE:;\r")
        _read_until(channel, "---- More")
        channel.send(b"q")
        assert "---    END" not in _read_until(channel, "MML:smf-4>")  # Q breaks off
        channel.send(b"SET SCREEN: PAGING=OFF;\r")
        _read_until(channel, "MML:smf-4>")
        channel.send(b"DSP NE:;\r")
        assert "---- More" not in _read_until(channel, "---    END")
    finally:
        channel.client.close()


CHANGE = ('<ne xmlns="urn:changeline:params:xml:ns:yang:changeline-ne"><timers><timer><name>n4-heartbeat</name>'
          '<value>20</value></timer></timers></ne>')


def test_the_generic_netconf_platform_runs_the_config_atoms_on_the_simulator(sim, tmp_path):
    """`platform: netconf` uses only RFC 6241: no contract state, even on an NE that has it."""
    import dataclasses

    host = dataclasses.replace(sim.inventory.hosts["smf-3"], platform="netconf")
    ctx = AtomContext(host=host, session=DeviceSession(Endpoint.from_host(host), rpc_timeout=10),
                      journal=Journal(tmp_path / "journal.sqlite"), backups=BackupStore(tmp_path / "backups"),
                      run_id="generic-1", speed=0.01, log=lambda m: None)
    try:
        assert ctx.driver.read_state_optional() is None
        before = read_running(ctx)
        backup = runner.execute("backup", ctx, {})
        assert backup.evidence["software_version"] == ""  # the generic platform reads no state
        ctx.step = "timer"
        change = runner.execute("config_change", ctx, {"config": CHANGE, "confirm": "later", "confirm_timeout_s": 60})
        assert change.changed and "<value>20</value>" in read_running(ctx).decode()
        ctx.step = "check"
        runner.execute("validate_upgrade", ctx, {})
        ctx.step = "confirm"
        assert runner.execute("confirm_commit", ctx, {"change_step": "timer"}).changed
        ctx.step = "rb"
        runner.execute("rollback", ctx, {"backup_id": backup.evidence["backup_id"]})
        assert read_running(ctx) == before
    finally:
        ctx.session.close()
