"""A real SSH server (paramiko's) that logs the client in and never answers its channel open:
what an NE restarting under load did to a rollback; or (`opens=True`) opens the channel and
never answers the subsystem, pty or shell request on it. Shared by the NETCONF and CLI
connect-bound tests."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import paramiko

from changeline.devices.session import Endpoint


class _NeverOpensChannels(paramiko.ServerInterface):
    def __init__(self, release: threading.Event, asked: threading.Event) -> None:
        self.release, self.asked = release, asked

    def _silent(self) -> bool:
        self.asked.set()
        self.release.wait()  # never answered while the test runs
        return False

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        self._silent()  # the login succeeded; the channel open is never answered
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _NeverAnswersRequests(_NeverOpensChannels):
    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_subsystem_request(self, channel, name) -> bool:
        return self._silent()

    def check_channel_pty_request(self, channel, term, width, height, pixelwidth, pixelheight, modes) -> bool:
        return self._silent()

    def check_channel_shell_request(self, channel) -> bool:
        return self._silent()


@contextlib.contextmanager
def silent_server(tmp_path: Path, port_field: str, *, opens: bool = False,
                  **endpoint: str) -> Iterator[tuple[Endpoint, threading.Event]]:
    """(an Endpoint whose `port_field` is the server's port, an event set once the open - with
    `opens`, the first request on the opened channel - is asked)."""
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
        transport.start_server(server=(_NeverAnswersRequests if opens else _NeverOpensChannels)(release, asked))

    threading.Thread(target=serve, daemon=True).start()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {key.get_name()} {key.get_base64()}\n")
    try:
        yield Endpoint(name="silent-1", hostname="127.0.0.1", password="x", known_hosts=str(known_hosts),
                       timeout=1.0, **{port_field: port}, **endpoint), asked
    finally:
        release.set()
        listener.close()
        for transport in transports:
            transport.close()
