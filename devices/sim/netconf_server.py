"""SSH transport for a simulated NE's NETCONF engine (RFC 6242): the `netconf` subsystem.

Everything is callback driven on the caller's event loop, because a thousand NEs share
one loop: no threads, no polling, and no task while a session is idle (a task exists
only while RPCs are queued for that session).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable

import asyncssh

from changeline.devices.sim.framing import FramingError, MessageDecoder, encode
from changeline.devices.sim.netconf_engine import HelloError, NetconfEngine

logger = logging.getLogger(__name__)

SUBSYSTEM = "netconf"


async def start_netconf_listener(
    engine: NetconfEngine, *, host: str, port: int, host_keys: list,
    check_password: Callable[[str, str], bool],
    on_connection: Callable[[asyncssh.SSHServerConnection], None] | None = None,
) -> asyncssh.SSHAcceptor:
    """Listen for NETCONF over SSH on (host, port); port 0 picks a free one
    (`acceptor.get_port()`). Closing the acceptor stops new connections only: an NE
    restart also calls `engine.drop_all_sessions()`. `on_connection` sees every accepted
    SSH connection, before authentication."""
    return await asyncssh.create_server(
        lambda: _NetconfSSHServer(engine, check_password, on_connection),
        host, port,
        server_host_keys=host_keys,
        encoding=None,  # NETCONF framing works on bytes
        # OpenSSH run with -tt (scrapli's system transport) requests a PTY and gives up
        # when refused. It is granted and ignored: no line editing, no echo, the bytes
        # stay NETCONF.
        allow_pty=True,
        line_editor=False,
        x11_forwarding=False,
        agent_forwarding=False,
        allow_scp=False,
    )


class _NetconfSSHServer(asyncssh.SSHServer):
    """One per SSH connection: password authentication, then NETCONF session channels."""

    def __init__(self, engine: NetconfEngine, check_password: Callable[[str, str], bool],
                 on_connection: Callable[[asyncssh.SSHServerConnection], None] | None) -> None:
        self._engine = engine
        self._check_password = check_password
        self._on_connection = on_connection
        self._connection: asyncssh.SSHServerConnection | None = None
        self._open_channels = 0

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connection = conn
        sock = conn.get_extra_info("socket")
        if sock is not None:
            # Small request/reply messages must not wait for the peer's delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._on_connection is not None:
            self._on_connection(conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return self._check_password(username, password)

    def session_requested(self) -> asyncssh.SSHServerSession:
        self._open_channels += 1
        return _NetconfChannel(self._engine, self._channel_closed)

    def _channel_closed(self) -> None:
        # A NETCONF connection exists for its sessions: when the last one ends (closed,
        # killed, dropped), end the SSH connection too instead of leaving it idle.
        self._open_channels -= 1
        if self._open_channels == 0 and self._connection is not None:
            self._connection.close()


class _NetconfChannel(asyncssh.SSHServerSession):
    """One SSH session channel carrying one NETCONF session."""

    def __init__(self, engine: NetconfEngine, on_closed: Callable[[], None]) -> None:
        self._engine = engine
        self._on_closed = on_closed
        self._channel: asyncssh.SSHServerChannel | None = None
        self._session_id: int | None = None
        self._decoder = MessageDecoder()
        self._hello_received = False
        self._eof_received = False
        self._pending: deque[bytes] = deque()
        self._worker: asyncio.Task | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:
        self._channel = chan

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == SUBSYSTEM

    def session_started(self) -> None:
        if not self._engine.accepting:  # the NE went down while this client was logging in
            self._close()
            return
        # RFC 6241 8.1: both peers send their hello at once, without waiting for the other.
        self._session_id = self._engine.new_session(self._close)
        self._channel.write(encode(self._engine.hello(self._session_id), chunked=False))

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if self._session_id is None:  # refused at session start; the channel is closing
            return
        try:
            for message in self._decoder.feed(data):
                if self._hello_received:
                    self._pending.append(message)
                else:
                    self._accept_hello(message)
        except (FramingError, HelloError) as err:
            logger.info("NETCONF session %s closed: %s", self._session_id, err)
            self._close()
            return
        if self._pending and self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._serve_pending())

    def eof_received(self) -> bool:
        # A client may half-close right after its last rpc: answer what is queued first.
        self._eof_received = True
        if self._worker is None:
            self._close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._session_id is not None:
            self._engine.end_session(self._session_id)
        self._on_closed()

    def _accept_hello(self, message: bytes) -> None:
        chunked = self._engine.accept_hello(self._session_id, message)
        # Bytes after the hello in this same read are decoded with the new framing.
        self._decoder.chunked = chunked
        self._hello_received = True

    async def _serve_pending(self) -> None:
        """Answer queued RPCs strictly in order, then end (a new task starts on new data)."""
        try:
            while self._pending:
                reply = await self._engine.handle(self._session_id, self._pending.popleft())
                if self._channel.is_closing():
                    return
                if reply is not None:
                    self._channel.write(encode(reply, chunked=self._decoder.chunked))
                if not self._engine.has_session(self._session_id):
                    self._close()  # close-session or an injected drop: reply first, then close
                    return
        except Exception:
            logger.exception("NETCONF session %s failed", self._session_id)
            self._close()
            return
        finally:
            self._worker = None
        if self._eof_received:
            self._close()

    def _close(self) -> None:
        # A clean channel close flushes what was written before it (the last reply). The
        # exit status tells `ssh -s netconf` the subsystem ended (else it exits 255, as
        # for a failure); the NETCONF outcome itself was in the replies.
        self._channel.exit(0)
