"""`changeline sim up/status/down/image` and `python -m changeline.devices.sim` as an
operator (or a container) runs them: separate processes, files in the state dir."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import paramiko
import pytest
import yaml
from ncclient import manager

from .conftest import next_address_base

TOPOLOGY = """\
speed: 0.01
control: 127.0.0.1:0
address_base: {base}
pools:
  - {{name: smf-pool-1, type: SMF, calls_per_second: 10}}
nes:
  - {{name: smf-1, type: SMF, pool: smf-pool-1, site: sh-1, region: east, tags: [canary]}}
  - {{name: scscf-1, type: S-CSCF, version: 1.1.0}}
"""


def changeline(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "changeline.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def state_dir(tmp_path: Path):
    state = tmp_path / "state"
    yield state
    changeline("sim", "down", "--state-dir", str(state))  # never leave a simulator behind


def _password(state: Path) -> str:
    return (state / "secrets.env").read_text().strip().split("=", 1)[1]


def test_up_status_down_in_the_background(tmp_path: Path, state_dir: Path):
    topology = tmp_path / "topology.yaml"
    topology.write_text(TOPOLOGY.format(base=next_address_base()))
    up = changeline("sim", "up", "--topology", str(topology), "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith("simulator running (pid ") and "2 NEs" in up.stdout

    assert stat.S_IMODE((state_dir / "secrets.env").stat().st_mode) == 0o600
    inventory = yaml.safe_load((state_dir / "inventory.yaml").read_text())
    assert inventory["defaults"]["password_env"] == "CHANGELINE_NE_PASSWORD"
    assert inventory["known_hosts"] == "known_hosts"
    smf = inventory["hosts"]["smf-1"]
    assert smf["groups"] == ["5gc"] and inventory["hosts"]["scscf-1"]["groups"] == ["ims"]
    assert smf["data"] | {"ssh_port": 22} == {"ne_type": "SMF", "software_version": "1.2.0", "pool": "smf-pool-1",
                                              "site": "sh-1", "region": "east", "tags": ["canary"], "ssh_port": 22}
    known_hosts = (state_dir / "known_hosts").read_text().splitlines()
    assert len(known_hosts) == 4

    # The known_hosts file verifies both ports of an NE, as a strict client would.
    client = paramiko.SSHClient()
    client.load_host_keys(str(state_dir / "known_hosts"))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    for port in (22, 830):
        client.connect(smf["hostname"], port=port, username="admin", password=_password(state_dir),
                       allow_agent=False, look_for_keys=False)
        client.close()

    status = changeline("sim", "status", "--state-dir", str(state_dir))
    assert status.returncode == 0, status.stderr
    assert "2 NEs (2 up)" in status.stdout
    lines = status.stdout.splitlines()
    assert lines[1].split()[:4] == ["NAME", "TYPE", "VERSION", "STATUS"]
    assert lines[3].split()[:4] == ["scscf-1", "S-CSCF", "1.1.0", "up"]

    again = changeline("sim", "up", "--topology", str(topology), "--state-dir", str(state_dir))
    assert again.returncode == 3 and "a simulator already runs" in again.stderr

    down = changeline("sim", "down", "--state-dir", str(state_dir))
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not (state_dir / "sim.json").exists()
    gone = changeline("sim", "status", "--state-dir", str(state_dir))
    assert gone.returncode == 3 and "no simulator runs" in gone.stderr

    # Host keys and the password are the NE's own: a restart keeps them.
    assert changeline("sim", "up", "--topology", str(topology), "--state-dir", str(state_dir)).returncode == 0
    assert (state_dir / "known_hosts").read_text().splitlines() == known_hosts
    assert changeline("sim", "down", "--state-dir", str(state_dir)).returncode == 0


@pytest.mark.parametrize("edit,at,message", [
    (("type: S-CSCF", "type: I-CSCF"), "I-CSCF", "nes[1].type: unknown NE type 'I-CSCF'"),
    (("version: 1.1.0", "version: 1.0.0"), "1.0.0", "nes[1].version: '1.0.0' is not a S-CSCF version"),
    (("name: scscf-1", "name: smf-1"), "smf-1, type: S-CSCF", "nes[1].name: duplicate NE name 'smf-1'"),
    (("address_base: 127.0.1.1", "address_base: 127.0.1"), "127.0.1", "address_base: '127.0.1' is not an IPv4"),
    (("- {name: smf-pool-1", "- {nam: smf-pool-1"), "nam:", "pools[0].nam: unknown field"),
])
def test_bad_topology_files_are_reported_with_file_line_and_field(tmp_path: Path, state_dir: Path, edit, at, message):
    text = TOPOLOGY.format(base="127.0.1.1").replace(*edit)
    topology = tmp_path / "topology.yaml"
    topology.write_text(text)
    result = changeline("sim", "up", "--topology", str(topology), "--state-dir", str(state_dir))
    assert result.returncode == 2
    line_no, line = next((i, line) for i, line in enumerate(text.splitlines(), 1) if at in line)
    assert f"{topology}:{line_no}:{line.index(at) + 1}: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not state_dir.exists()  # nothing started


def test_missing_topology_file_and_bad_arguments(tmp_path: Path, state_dir: Path):
    missing = changeline("sim", "up", "--topology", str(tmp_path / "nope.yaml"), "--state-dir", str(state_dir))
    assert missing.returncode == 2 and "nope.yaml: --topology: file not found" in missing.stderr
    bad = changeline("sim", "up", "--count", "2", "--types", "AMF,XYZ", "--state-dir", str(state_dir))
    assert bad.returncode == 2 and "--types: unknown NE type 'XYZ'" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


def test_image_command_writes_an_image(tmp_path: Path):
    made = changeline("sim", "image", "--type", "p-cscf", "--version", "1.3.0", "--out", str(tmp_path),
                      "--size-kb", "16")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(tmp_path / "P-CSCF-1.3.0.img")
    bad = changeline("sim", "image", "--type", "HSS", "--version", "1.3", "--out", str(tmp_path))
    assert bad.returncode == 2
    assert "--type: unknown NE type 'HSS'" in bad.stderr and "--version: must look like 1.2.0" in bad.stderr


def test_module_runs_in_the_foreground_on_one_address_with_per_ne_ports(tmp_path: Path):
    # Container mode: every NE on 0.0.0.0, ports counting up from the given ones.
    base_port = 21000 + (os.getpid() % 500) * 4
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "changeline.devices.sim", "--count", "2", "--types", "NRF", "--bind", "0.0.0.0",
         "--netconf-port", str(base_port), "--ssh-port", str(base_port + 2), "--control", "127.0.0.1:0",
         "--state-dir", str(state), "--speed", "0.01"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = process.stdout.readline()
        assert ready.startswith("changeline-sim ready: 2 NEs"), process.stderr.read()
        inventory = yaml.safe_load((state / "inventory.yaml").read_text())
        assert [(h["hostname"], h["port"], h["data"]["ssh_port"]) for h in inventory["hosts"].values()] == [
            ("127.0.0.1", base_port, base_port + 2), ("127.0.0.1", base_port + 1, base_port + 3)]
        with manager.connect(host="127.0.0.1", port=base_port + 1, username="admin", password=_password(state),
                             hostkey_verify=False, allow_agent=False, look_for_keys=False) as nc:
            assert "<name>nrf-2</name>" in nc.get_config(source="running").data_xml
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert not (state / "sim.json").exists()
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
        process.stderr.close()


def test_up_count_makes_mml_nes_per_type_and_the_inventory_names_their_platform(state_dir: Path, monkeypatch):
    from changeline.devices.inventory import load_inventory
    from changeline.devices.platforms import driver_for
    from changeline.devices.session import DeviceSession, Endpoint

    up = changeline("sim", "up", "--count", "3", "--types", "SMF,AMF", "--platform", "SMF=changeline-mml",
                    "--address-base", next_address_base(), "--control", "127.0.0.1:0", "--speed", "0.01",
                    "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    inventory = load_inventory(state_dir / "inventory.yaml")
    assert {name: h.platform for name, h in inventory.hosts.items()} == {
        "smf-1": "changeline-mml", "amf-1": "changeline-ne", "smf-2": "changeline-mml"}
    monkeypatch.setenv("CHANGELINE_NE_PASSWORD", _password(state_dir))
    for name in ("smf-1", "amf-1"):  # each answers as its platform's driver expects
        host = inventory.hosts[name]
        with DeviceSession(Endpoint.from_host(host)) as session:
            assert driver_for(host, session).read_state().name == name
    mml = inventory.hosts["smf-1"]
    with DeviceSession(Endpoint.from_host(mml)) as session:
        assert "RETCODE = 0" in session.cli("DSP NE:;")  # the MML personality on its shell


def test_up_platform_arguments_are_checked(tmp_path: Path, state_dir: Path):
    bad = changeline("sim", "up", "--count", "2", "--platform", "SMF=vendor-x,HSS=changeline-mml",
                     "--state-dir", str(state_dir))
    assert bad.returncode == 2, bad.stderr
    assert "--platform: the simulator plays changeline-ne or changeline-mml, not 'vendor-x'" in bad.stderr
    assert "--platform: unknown NE type 'HSS'" in bad.stderr
    topology = tmp_path / "topology.yaml"
    topology.write_text(TOPOLOGY.format(base=next_address_base()))
    both = changeline("sim", "up", "--topology", str(topology), "--platform", "changeline-mml",
                      "--state-dir", str(state_dir))
    assert both.returncode == 2 and "--platform: goes with --count" in both.stderr
    assert "Traceback" not in bad.stderr + both.stderr and not state_dir.exists()
