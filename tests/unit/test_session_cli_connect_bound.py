"""A CLI (netmiko) connect never outlives its timeout when the NE leaves the shell channel's
open unanswered, and that end is transient, as for NETCONF (test_session_connect_bound.py).

netmiko opens its shell with paramiko's default channel timeout, an hour. The server here is a
real SSH server (paramiko's) that logs the client in and never answers the channel open.
"""

from __future__ import annotations

import socket
import threading

import paramiko
import pytest

from changeline.devices.session import DeviceSession, Endpoint
from changeline.errors import DeviceTimeout, TransientError
from tests.unit.test_session_connect_bound import _NeverOpensChannels


@pytest.fixture
def silent_shell(tmp_path):
    key = paramiko.ECDSAKey.generate()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    release, asked, transports = threading.Event(), threading.Event(), []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:  # closed at teardown, never connected
            return
        transport = paramiko.Transport(conn)
        transport.add_server_key(key)
        transports.append(transport)
        transport.start_server(server=_NeverOpensChannels(release, asked))

    threading.Thread(target=serve, daemon=True).start()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n")
    yield Endpoint(name="silent-1", hostname="127.0.0.1", ssh_port=port, password="x", known_hosts=str(known_hosts),
                   timeout=1.0, platform="changeline-mml"), asked, transports
    release.set()
    listener.close()
    for transport in transports:
        transport.close()


@pytest.mark.timeout(120)  # without the bound the connect waits for paramiko's hour
def test_a_shell_channel_open_left_unanswered_ends_at_the_connect_timeout_as_transient(silent_shell):
    endpoint, asked, _ = silent_shell
    session = DeviceSession(endpoint)
    with pytest.raises(DeviceTimeout, match=r"CLI channel open timed out") as err:
        session.cli("DSP NE:;")
    assert asked.is_set()  # it got as far as the open: logged in, host key verified
    assert isinstance(err.value, TransientError)  # callers (an NE's restart probes) try again
    assert err.value.host == "silent-1"
    # The client's transport is closed with the failed open, not left running.
    assert not [t for t in paramiko.transport._active_threads if not t.server_mode and t.is_active()]
    session.close()
