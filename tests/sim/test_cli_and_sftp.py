"""The SSH side of an NE: the CLI through netmiko `cisco_ios`, SFTP through paramiko."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import paramiko
import pytest

from changeline.devices.sim.images import generate_image
from changeline.devices.sim.traffic import CDR_HEADER

from .conftest import PASSWORD, find, nodelay_socket, rpc, state_of

NES = """\
  - {name: pcscf-1, type: P-CSCF, pool: pcscf-pool-1, site: sh-1}
  - {name: nrf-1, type: NRF, disk_total_mb: 1034}
"""
POOLS = "  - {name: pcscf-pool-1, type: P-CSCF, calls_per_second: 20}\n"


@pytest.fixture
def sim(start_sim):
    return start_sim(NES, pools=POOLS)


def test_netmiko_cisco_ios_drives_every_command(sim):
    cli = sim.cli("pcscf-1")
    try:
        assert cli.find_prompt() == "pcscf-1>"
        cli.enable()
        assert cli.find_prompt() == "pcscf-1#"
        version = cli.send_command("show version")
        assert "Version      : 1.2.0" in version.splitlines()
        assert "Type         : P-CSCF" in version
        software = cli.send_command("show software")
        assert "Available    : 1.1.0, 1.2.0, 1.3.0" in software and "No images in /images/" in software
        assert cli.send_command("show alarms") == "No active alarms"
        kpis = cli.send_command("show kpi")
        assert kpis.splitlines()[0].split() == ["KPI", "VALUE", "UNIT"]
        assert any(line.split()[:2] == ["call-success-rate", "99.3"] for line in kpis.splitlines())
        traffic = cli.send_command("show traffic")
        assert "Pool         : pcscf-pool-1" in traffic and "Drained      : no" in traffic
        call = cli.send_command("dial-test volte-call")
        assert "Result       : pass" in call and "Charging IDs : pcscf-1-000001" in call
        assert cli.send_command("dial-test ping") == \
            "% Unknown scenario: ping (this P-CSCF supports: sip-register, volte-call)"
        assert cli.send_command("reload") == "% Unknown command: reload"
        assert cli.send_command("sh ver").splitlines()[:6] == version.splitlines()[:6]  # IOS abbreviations
        cli.exit_enable_mode()
        assert cli.find_prompt() == "pcscf-1>"
    finally:
        cli.disconnect()


def test_a_single_command_over_exec(sim):
    address, _, port = sim.endpoint("nrf-1")
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(address, port=port, username="admin", password=PASSWORD, sock=nodelay_socket(address, port),
                   allow_agent=False, look_for_keys=False)
    try:
        _, stdout, _ = client.exec_command("show version")
        assert "Version      : 1.2.0" in stdout.read().decode()
    finally:
        client.close()


def test_wrong_password_is_refused(sim):
    address, _, port = sim.endpoint("nrf-1")
    transport = paramiko.Transport(nodelay_socket(address, port))
    try:
        with pytest.raises(paramiko.AuthenticationException):
            transport.connect(username="admin", password="guess")
    finally:
        transport.close()


def test_sftp_layout_and_permissions(sim, tmp_path: Path):
    image = generate_image(tmp_path, "NRF", "1.3.0", payload_size=50_000)
    with sim.sftp("nrf-1") as sftp:
        assert sorted(sftp.listdir("/")) == ["cdr", "images"]
        sftp.put(str(image), "/images/NRF-1.3.0.img")
        assert sftp.stat("/images/NRF-1.3.0.img").st_size == image.stat().st_size
        for path in ("/cdr/x.csv", "/x.img", "/images/sub/x.img"):
            with pytest.raises(PermissionError):
                sftp.open(path, "w")
        with pytest.raises(PermissionError):
            sftp.mkdir("/images/old")
        with pytest.raises(IOError):
            sftp.open("/../../etc/passwd")  # the root is the NE's own
        sftp.rename("/images/NRF-1.3.0.img", "/images/nrf.img")
        sftp.remove("/images/nrf.img")
        assert sftp.listdir("/images") == []


def test_uploads_beyond_free_disk_fail(sim, tmp_path: Path):
    # nrf-1 has 1034 MB of disk of which the system uses 1024: 10 MB free.
    image = generate_image(tmp_path, "NRF", "1.3.0", payload_size=12 * 1024 * 1024)
    with sim.sftp("nrf-1") as sftp:
        with pytest.raises(IOError):  # paramiko's pipelined put only notices a short file
            sftp.put(str(image), "/images/NRF-1.3.0.img")
        assert sftp.stat("/images/NRF-1.3.0.img").st_size == 10 * 1024 * 1024
        with sim.netconf("nrf-1") as nc:
            assert state_of(nc, "cl:disk-free-mb") == ["0"]
            assert state_of(nc, "cl:image/cl:state") == ["invalid"]
        sftp.remove("/images/NRF-1.3.0.img")
        with sftp.open("/images/NRF-1.3.0.img", "wb") as f:  # unpipelined writes see the error itself
            with pytest.raises(IOError, match="No space left on device"):
                f.write(b"x" * 11 * 1024 * 1024)


def test_dial_tests_leave_cdr_records_readable_over_sftp(sim):
    with sim.netconf("pcscf-1") as nc:
        result = nc.dispatch(rpc("dial-test", scenario="volte-call"))
    charging_ids = find(result, "cl:charging-id")
    assert len(charging_ids) == 5
    started = time.monotonic()

    def records():
        with sim.sftp("pcscf-1") as sftp:
            names = sftp.listdir("/cdr")
            if not names:
                return None
            assert names == ["cdr-pcscf-1-0001.csv"]
            with sftp.open("/cdr/" + names[0]) as f:
                return list(csv.DictReader(io.StringIO(f.read().decode())))

    rows = sim.wait_for(records, timeout=5)
    assert time.monotonic() - started >= 45 * 0.005 * 0.5  # written within the CDR delay, not at once
    assert [r["charging_id"] for r in rows] == charging_ids
    assert list(rows[0]) == list(CDR_HEADER)
    assert rows[0]["scenario"] == "volte-call" and rows[0]["charge_units"] == "2"
    assert rows[0]["subscriber"].startswith("sip:+86")
    with sim.sftp("pcscf-1") as sftp:
        with pytest.raises(PermissionError):
            sftp.remove("/cdr/cdr-pcscf-1-0001.csv")
