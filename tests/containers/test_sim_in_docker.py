"""The simulator in a Docker container (testcontainers), checked with the same suites.

The image is built offline by docker/build-sim-image.sh (`make services` does it).
The NETCONF conformance suite runs unchanged against the containerised NE, and the
session layer connects with strict host-key checking through the published port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

# testcontainers reads these at import: no Ryuk (its image cannot be pulled here) and
# ports reached on 127.0.0.1 rather than the bridge gateway (../shared/MACHINE.md).
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
os.environ.setdefault("TC_HOST", "127.0.0.1")

IMAGE = os.environ.get("CHANGELINE_SIM_IMAGE", "changeline-sim:dev")
PASSWORD = "container-secret"
REPO = Path(__file__).resolve().parents[2]


def _docker_ready() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0


pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not os.environ.get("CHANGELINE_CI") and not _docker_ready(),
                       reason=f"no Docker engine or image {IMAGE} (make services builds it)"),
]


@pytest.fixture(scope="module")
def container():
    from testcontainers.core.container import DockerContainer

    sim = (DockerContainer(IMAGE)
           .with_env("CHANGELINE_NE_PASSWORD", PASSWORD)
           .with_command("--count 2 --types AMF,SMF --bind 0.0.0.0 --speed 0.01")
           .with_exposed_ports(830, 22))
    sim.start()
    try:
        deadline = time.monotonic() + 60
        # A published port accepts before the server inside listens: wait for its own word.
        while b"changeline-sim ready" not in b"".join(sim.get_logs()):
            if time.monotonic() > deadline:
                raise RuntimeError("simulator container not ready:\n" + b"".join(sim.get_logs()).decode()[-2000:])
            time.sleep(0.2)
        yield sim
    finally:
        sim.stop()


def test_netconf_conformance_suite_passes_against_the_container(container):
    port = container.get_exposed_port(830)
    env = {**os.environ, "CHANGELINE_NETCONF_TARGET": f"127.0.0.1:{port}", "CHANGELINE_NETCONF_PASSWORD": PASSWORD}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(REPO / "tests" / "netconf" / "test_conformance.py")],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


def test_session_layer_verifies_the_container_host_key(container, tmp_path):
    from changeline.devices import ne_api
    from changeline.devices.session import DeviceSession, Endpoint
    from changeline.errors import HostKeyError

    code, output = container.exec("cat /var/lib/changeline/.changeline/sim/known_hosts")
    assert code == 0, output
    key = next(line.split()[1:3] for line in output.decode().splitlines() if line.startswith("[127.0.0.1]:830 "))
    port = int(container.get_exposed_port(830))
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {' '.join(key)}\n")
    session = DeviceSession(Endpoint("amf-1", "127.0.0.1", netconf_port=port, username="admin", password=PASSWORD,
                                     known_hosts=str(known)))
    state = ne_api.read_state(session)
    assert state.ne_type == "AMF" and state.running_version
    session.close()
    known.write_text(f"[127.0.0.1]:{port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    with pytest.raises(HostKeyError):
        DeviceSession(Endpoint("amf-1", "127.0.0.1", netconf_port=port, username="admin", password=PASSWORD,
                               known_hosts=str(known))).netconf
