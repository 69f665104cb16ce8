"""Running simulators for the tests, driven only through real clients (ncclient, netmiko,
paramiko) and the control interface.

The simulator runs in its own event loop on a thread of the test process; each one gets
its own loopback /24 so simulators never share an address, and NEs listen on the
standard ports 830 and 22 as on a real network.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import ncclient.transport.session
import paramiko
import pytest
from lxml import etree
from ncclient import manager
from netmiko import ConnectHandler

from changeline.devices.sim.control import SimControl
from changeline.devices.sim.host import SimHost
from changeline.devices.sim.ne_xml import NS
from changeline.devices.sim.profiles import builtin_profiles
from changeline.devices.sim.topology import load_topology

# ncclient polls its send queue every TICK seconds; the default 0.1 s adds ~90 ms per RPC.
ncclient.transport.session.TICK = 0.002

PASSWORD = "sim-test-password"
_blocks = itertools.count()
# A second octet of its own per test process (below the 60-250 that tests/simfixture.py draws
# from), so two pytest runs on one machine do not bind the same loopback addresses.
_SECOND_OCTET = random.randint(1, 59)


def next_address_base() -> str:
    return f"127.{_SECOND_OCTET}.{1 + next(_blocks) % 250}.1"


def nodelay_socket(host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """paramiko never sets TCP_NODELAY; without it every handshake waits on delayed ACKs."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class RunningSim:
    """A SimHost serving in a background thread of the test process."""

    def __init__(self, topology_yaml: str, state_dir: Path) -> None:
        path = state_dir.parent / f"{state_dir.name}-topology.yaml"
        path.write_text(topology_yaml)
        self.topology = load_topology(path, builtin_profiles())
        self.state_dir = state_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.host = SimHost(self.topology, state_dir, PASSWORD)
        self.call(self.host.start())
        self.control = SimControl(self.host.control.url)

    def call(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.host.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def endpoint(self, name: str) -> tuple[str, int, int]:
        spec = self.host.specs[name]
        return self.topology.client_address(spec), spec.netconf_port, spec.ssh_port

    def netconf(self, name: str, timeout: float = 30.0) -> manager.Manager:
        address, port, _ = self.endpoint(name)
        session = manager.connect(host=address, port=port, username="admin", password=PASSWORD,
                                  hostkey_verify=False, allow_agent=False, look_for_keys=False,
                                  sock=nodelay_socket(address, port), timeout=timeout)
        session.timeout = timeout
        return session

    def cli(self, name: str) -> ConnectHandler:
        address, _, port = self.endpoint(name)
        return ConnectHandler(device_type="cisco_ios", host=address, port=port, username="admin",
                              password=PASSWORD, sock=nodelay_socket(address, port), conn_timeout=10)

    @contextlib.contextmanager
    def sftp(self, name: str) -> Iterator[paramiko.SFTPClient]:
        address, _, port = self.endpoint(name)
        transport = paramiko.Transport(nodelay_socket(address, port))
        try:
            transport.connect(username="admin", password=PASSWORD)
            client = paramiko.SFTPClient.from_transport(transport)
            yield client
        finally:
            transport.close()

    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.02):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def start_sim(tmp_path: Path):
    """start_sim(nes_yaml, speed=..., pools_yaml=...) -> RunningSim, stopped after the test."""
    running: list[RunningSim] = []

    def start(nes: str, *, speed: float = 0.005, pools: str = "", extra: str = "") -> RunningSim:
        text = (f"speed: {speed}\ncontrol: 127.0.0.1:0\naddress_base: {next_address_base()}\n{extra}"
                + (f"pools:\n{pools}" if pools else "") + f"nes:\n{nes}")
        sim = RunningSim(text, tmp_path / f"state{len(running)}")
        running.append(sim)
        return sim

    yield start
    for sim in running:
        sim.stop()


def rpc(name: str, **args: str) -> etree._Element:
    """A lifecycle RPC element for `manager.dispatch`."""
    element = etree.Element(f"{{{NS}}}{name}", nsmap={None: NS})
    for key, value in args.items():
        etree.SubElement(element, f"{{{NS}}}{key}").text = value
    return element


def find(reply, path: str) -> list[str]:
    """Texts at a `cl:`-prefixed path anywhere in a reply."""
    root = etree.fromstring(reply.xml.encode() if isinstance(reply.xml, str) else reply.xml)
    return [e.text for e in root.iterfind(f".//{path}", {"cl": NS})]


def state_of(session: manager.Manager, path: str) -> list[str]:
    reply = session.get(filter=("subtree", f'<ne-state xmlns="{NS}"/>'))
    return find(reply, path)
