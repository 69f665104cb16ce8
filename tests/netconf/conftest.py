"""The NETCONF server under test, and ncclient sessions to it.

`netconf_target` is the only thing the conformance suite knows about the server, so the
same tests can later run against the full simulator or a container: re-point the fixture.
For now it serves a sample NE with this package's listener on a loop in a background
thread (the ncclient client side is synchronous and runs its own thread per session).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import asyncssh
import ncclient
import ncclient.transport.session
import pytest
from lxml import etree
from ncclient import manager
from ncclient.devices.default import DefaultDeviceHandler

from changeline.devices.sim.netconf_engine import NetconfEngine
from changeline.devices.sim.netconf_server import start_netconf_listener

# ncclient polls its send queue every TICK (0.1 s): an RPC would wait ~90 ms for nothing.
ncclient.transport.session.TICK = 0.002

CL = "urn:changeline:params:xml:ns:yang:changeline-ne"
SAMPLE_CONFIG = f"""
<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
  <ne xmlns="{CL}">
    <name>amf-1</name>
    <type>AMF</type>
    <timers>
      <timer><name>t3512</name><value>3240</value></timer>
      <timer><name>t3502</name><value>720</value></timer>
    </timers>
    <interfaces>
      <interface><name>N2</name><address>10.10.0.1</address></interface>
      <interface><name>N11</name><address>10.10.1.1</address></interface>
    </interfaces>
    <capacity><max-sessions>200000</max-sessions></capacity>
  </ne>
</config>"""
SAMPLE_STATE = f"""
<ne-state xmlns="{CL}">
  <name>amf-1</name><type>AMF</type>
  <software><running-version>1.2.0</running-version></software>
  <uptime-seconds>42</uptime-seconds>
</ne-state>"""
USERNAME, PASSWORD = "admin", "sim-secret"


@dataclass(frozen=True)
class NetconfTarget:
    host: str
    port: int
    username: str
    password: str


class Base10OnlyHandler(DefaultDeviceHandler):
    """An ncclient client that does not offer base:1.1, so `]]>]]>` framing is used."""

    _BASE_CAPABILITIES = [c for c in DefaultDeviceHandler._BASE_CAPABILITIES
                          if c != "urn:ietf:params:netconf:base:1.1"]


@pytest.fixture(scope="session")
def server_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="netconf-sim", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


@pytest.fixture(scope="session")
def host_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def netconf_target(request, server_loop, host_key) -> Iterator[NetconfTarget]:
    """A fresh NE per test, so no test sees another's locks or confirmed commits.

    `CHANGELINE_NETCONF_TARGET=HOST:PORT` (with `CHANGELINE_NETCONF_PASSWORD`) points the
    suite at an already running NE instead, e.g. the simulator in a container.
    """
    external = os.environ.get("CHANGELINE_NETCONF_TARGET")
    if external:
        host, _, port = external.rpartition(":")
        yield NetconfTarget(host, int(port), os.environ.get("CHANGELINE_NETCONF_USER", "admin"),
                            os.environ["CHANGELINE_NETCONF_PASSWORD"])
        return

    async def start():
        engine = NetconfEngine(config=etree.fromstring(SAMPLE_CONFIG),
                               state_provider=lambda: [etree.fromstring(SAMPLE_STATE)])
        acceptor = await start_netconf_listener(
            engine, host="127.0.0.1", port=0, host_keys=[host_key],
            check_password=lambda user, password: (user, password) == (USERNAME, PASSWORD))
        return engine, acceptor

    async def stop(engine, acceptor):
        acceptor.close()
        engine.drop_all_sessions()
        await acceptor.wait_closed()

    engine, acceptor = asyncio.run_coroutine_threadsafe(start(), server_loop).result(10)
    yield NetconfTarget("127.0.0.1", acceptor.get_port(), USERNAME, PASSWORD)
    asyncio.run_coroutine_threadsafe(stop(engine, acceptor), server_loop).result(10)


@pytest.fixture(params=["base:1.1", "base:1.0"])
def framing(request) -> str:
    return request.param


Connect = Callable[..., manager.Manager]


@pytest.fixture
def connect(netconf_target, framing) -> Iterator[Connect]:
    """Open ncclient sessions in the test's framing; all are closed at the end."""
    opened: list[manager.Manager] = []

    def open_session(*, password: str | None = None) -> manager.Manager:
        # paramiko never sets TCP_NODELAY; a socket with it saves ~80 ms per handshake.
        sock = socket.create_connection((netconf_target.host, netconf_target.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        device_params = {"handler": Base10OnlyHandler} if framing == "base:1.0" else None
        session = manager.connect(
            host=netconf_target.host, port=netconf_target.port,
            username=netconf_target.username, password=password or netconf_target.password,
            hostkey_verify=False, look_for_keys=False, allow_agent=False, sock=sock,
            device_params=device_params, manager_params={"timeout": 10})
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        try:
            session.close_session()
        except ncclient.NCClientError:
            pass  # killed or dropped by the test itself


@pytest.fixture
def nc(connect) -> manager.Manager:
    return connect()
