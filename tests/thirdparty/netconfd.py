"""yuma123 netconfd behind a private OpenSSH server: a third-party RFC 6241 peer.

Our atoms must not only work against our own simulator. netconfd (Debian package
`netconfd`) is an independent NETCONF server implementation; it loads the
changeline-ne YANG module so the same configuration tree can be backed up,
changed, confirmed and rolled back on it. sshd runs on a loopback port with a
throwaway host key and key-only login; nothing system-wide is changed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

NETCONFD = shutil.which("netconfd") or "/usr/sbin/netconfd"
SSHD = "/usr/sbin/sshd"
SUBSYSTEM = "/usr/sbin/netconf-subsystem"


@dataclass(frozen=True)
class ThirdPartyServer:
    hostname: str
    port: int
    username: str
    key_file: str
    known_hosts: str
    workdir: Path


def available() -> bool:
    return os.path.exists(NETCONFD) and os.path.exists(SSHD) and os.path.exists(SUBSYSTEM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


@contextmanager
def netconfd_server(workdir: Path, *, modules: list[Path], startup_xml: str) -> Iterator[ThirdPartyServer]:
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("hostkey", "clientkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)], check=True)
    shutil.copy(workdir / "clientkey.pub", workdir / "authorized_keys")
    os.chmod(workdir / "authorized_keys", 0o600)
    port = _free_port()
    sock = workdir / "ncxserver.sock"
    (workdir / "startup.xml").write_text(startup_xml)
    (workdir / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {workdir}/hostkey
PidFile {workdir}/sshd.pid
AuthorizedKeysFile {workdir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
Subsystem netconf "{SUBSYSTEM} --ncxserver-sockname={port}@{sock}"
""")
    hostkey = (workdir / "hostkey.pub").read_text().split()
    (workdir / "known_hosts").write_text(f"[127.0.0.1]:{port} {hostkey[0]} {hostkey[1]}\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    netconfd = subprocess.Popen(
        [NETCONFD, *[f"--module={m}" for m in modules], "--superuser=root", "--target=candidate",
         "--with-startup=true", f"--startup={workdir}/startup.xml", f"--port={port}",
         f"--ncxserver-sockname={sock}", f"--log={workdir}/netconfd.log", "--log-level=info"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    sshd = None
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            if netconfd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("netconfd did not start:\n" + (workdir / "netconfd.log").read_text()[-2000:])
            time.sleep(0.05)
        sshd = subprocess.Popen([SSHD, "-D", "-f", str(workdir / "sshd_config"), "-E", str(workdir / "sshd.log")],
                                start_new_session=True)
        _wait_port(port, 10)
        yield ThirdPartyServer("127.0.0.1", port, "root", str(workdir / "clientkey"),
                               str(workdir / "known_hosts"), workdir)
    finally:
        for proc in (sshd, netconfd):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
