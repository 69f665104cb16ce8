"""An NE that resets the TCP connection before its SSH banner is one going down for its restart:
the session ends transient (SessionDropped), so an activation's restart probes try again.

Seen in the N=1,000 bench: an activation's probe connected to amf-111 just as it went down, the
simulator reset the connection, and paramiko's "Error reading SSH protocol banner" reached the
atom as a plain DeviceError, which rolled the NE back and stopped the campaign. The server here
is a real TCP listener that accepts each connection, reads the client's banner and resets it
(SO_LINGER 0) before sending its own.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

import paramiko
import pytest

from changeline.devices.session import DeviceSession, Endpoint, _map_nc_error
from changeline.errors import SessionDropped, TransientError


@contextlib.contextmanager
def _resetting_listener(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed at teardown
                return
            accepted.append(conn)
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(256)  # the client's banner: it is now reading ours, which never comes
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST

    threading.Thread(target=serve, daemon=True).start()
    key = paramiko.ECDSAKey.generate()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n")
    try:
        yield Endpoint(name="resetting-1", hostname="127.0.0.1", password="x", known_hosts=str(known_hosts),
                       timeout=5.0, netconf_port=port, ssh_port=port), accepted
    finally:
        listener.close()


@pytest.mark.timeout(60)
def test_a_netconf_connection_reset_before_the_banner_is_transient(tmp_path):
    with _resetting_listener(tmp_path) as (endpoint, accepted):
        session = DeviceSession(endpoint)
        with pytest.raises(SessionDropped, match=r"NETCONF connection lost: SSHException .*banner") as err:
            session.netconf
        assert isinstance(err.value, TransientError)
        assert err.value.host == "resetting-1"
        assert accepted  # it reached the listener: the reset, not a refused connect, ended it
        session.close()


@pytest.mark.timeout(60)
def test_an_sftp_connection_reset_before_the_banner_is_transient(tmp_path):
    with _resetting_listener(tmp_path) as (endpoint, accepted):
        session = DeviceSession(endpoint)
        with pytest.raises(SessionDropped) as err:
            session.sftp
        assert isinstance(err.value, TransientError)
        assert accepted
        session.close()


def test_paramiko_handshake_errors_map_to_a_dropped_session():
    endpoint = Endpoint(name="amf-1", hostname="127.0.0.1")
    for cause in (paramiko.SSHException("Error reading SSH protocol banner[Errno 104] Connection reset by peer"),
                  paramiko.SSHException("Error reading SSH protocol banner"),
                  paramiko.SSHException("No existing session")):
        mapped = _map_nc_error(cause, endpoint)
        assert isinstance(mapped, SessionDropped) and isinstance(mapped, TransientError), cause
