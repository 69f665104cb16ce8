"""Careless or hostile device settings against real simulated NEs: a host key of another type,
a wrong password. They must be refused with the reason, never retried as if transient, and a
campaign meeting them must say so in its exit code and without a traceback."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import paramiko
import pytest
import yaml

from changeline.devices.session import DeviceSession, Endpoint
from changeline.errors import AuthenticationError, HostKeyError, TransientError
from changeline.flows import stores
from tests.flows.conftest import image_repo, line_home, prefect_api  # noqa: F401 - shared fixtures
from tests.hostile.inputs import GOOD_MODEL
from tests.simfixture import running_sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    nes = [{"name": f"amf-{i}", "type": "AMF", "version": "1.2.0"} for i in (1, 2, 3)]
    with running_sim(tmp_path_factory.mktemp("refusals"), nes) as running:
        yield running


def _other_type_known_hosts(sim, path, ne: str) -> None:
    """The NE's known_hosts lines with an RSA key instead of its ed25519 one."""
    host = sim.inventory.hosts[ne]
    rsa = paramiko.RSAKey.generate(2048)
    names = {host.hostname if p == 22 else f"[{host.hostname}]:{p}" for p in (host.port, host.ssh_port)}
    path.write_text("".join(f"{n} ssh-rsa {rsa.get_base64()}\n" for n in sorted(names)))


def test_a_host_key_of_another_type_is_refused_not_retried(sim, tmp_path):
    known = tmp_path / "known_hosts"
    _other_type_known_hosts(sim, known, "amf-1")
    host = sim.inventory.hosts["amf-1"]
    endpoint = dataclasses.replace(Endpoint.from_host(host), known_hosts=str(known))
    for channel in ("netconf", "sftp"):
        session = DeviceSession(endpoint)
        with pytest.raises(HostKeyError) as caught:
            getattr(session, channel)
        session.close()
        assert not isinstance(caught.value, TransientError), channel
        # ncclient asks only for the key types known_hosts holds; paramiko's SSHClient takes the
        # NE's key and then finds it does not match: both are refusals naming the host key.
        words = "offers no host key of the type known_hosts holds for it (ssh-rsa)" if channel == "netconf" \
            else "host key not trusted"
        assert words in caught.value.reason


def test_a_wrong_password_is_an_authentication_error(sim, monkeypatch):
    monkeypatch.setenv("CHANGELINE_NE_PASSWORD", "not-the-password")
    session = DeviceSession(Endpoint.from_host(sim.inventory.hosts["amf-1"]))
    with pytest.raises(AuthenticationError):
        session.netconf
    session.close()


@pytest.mark.prefect
@pytest.mark.slow
def test_run_and_rollback_exit_codes_with_refusing_nes(sim, tmp_path, prefect_api, line_home, image_repo):  # noqa: F811
    """amf-1 upgrades, amf-2's host key is of another type, amf-3's password is wrong: `run` exits 1
    with both reasons and no traceback; `rollback` of that campaign exits 0 once amf-1 is back;
    `--on-workers` naming no deployment exits 2; a run of amf-1 alone exits 0."""
    inventory = yaml.safe_load(sim.inventory_path.read_text())
    inventory["known_hosts"] = str(sim.state_dir / "known_hosts")
    _other_type_known_hosts(sim, tmp_path / "amf-2.known_hosts", "amf-2")
    inventory["hosts"]["amf-2"]["known_hosts"] = str(tmp_path / "amf-2.known_hosts")
    inventory["hosts"]["amf-3"]["password_env"] = "HOSTILE_WRONG_PASSWORD"
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(inventory))
    # The library model stops a campaign at its first failed NE; this one tolerates two, so
    # both refusing NEs are attempted.
    model = tmp_path / "amf-upgrade.yaml"
    model.write_text(GOOD_MODEL.read_text().replace("maxFailures: 0", "maxFailures: 2"))
    env = {**os.environ, "HOSTILE_WRONG_PASSWORD": "not-the-password", "PREFECT_LOGGING_LEVEL": "INFO"}
    cmd = [sys.executable, "-m", "changeline.cli"]

    def changeline(*args):
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=600, env=env)

    run = changeline("run", str(model), "-i", str(path), "--campaign-id", "refusals",
                     "-p", f"image_repo={image_repo}", "--on-anomaly", "rollback")
    output = run.stdout + run.stderr
    assert run.returncode == 1, output[-4000:]
    assert "Traceback" not in output, output[-6000:]
    assert "offers no host key of the type known_hosts holds for it" in output
    assert "authentication failed" in output
    assert "not-the-password" not in output
    statuses = stores.journal().ne_statuses("refusals")
    assert statuses["amf-1"][0] == "done" and statuses["amf-2"][0] == "failed" and statuses["amf-3"][0] == "failed"

    back = changeline("rollback", "-i", str(path), "--campaign", "refusals")
    assert back.returncode == 0, (back.stdout + back.stderr)[-4000:]
    assert "Traceback" not in back.stdout + back.stderr

    # A deployment the server does not know is bad input, found before any NE starts.
    nowhere = changeline("run", str(model), "-i", str(path), "--on-workers", "no/such", "--campaign-id", "nowhere",
                         "-p", f"image_repo={image_repo}")
    assert nowhere.returncode == 2, (nowhere.stdout + nowhere.stderr)[-4000:]
    assert "--on-workers: no deployment 'no/such' on the Prefect server" in nowhere.stderr
    assert stores.journal().campaign_args("nowhere") is None

    again = changeline("run", str(model), "-i", str(path), "-t", "amf-1", "--campaign-id", "refusals-2",
                       "-p", f"image_repo={image_repo}")
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
