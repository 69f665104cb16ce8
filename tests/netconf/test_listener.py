"""The listener's life cycle as an NE restart uses it: close, refuse, re-open."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from lxml import etree
from ncclient import manager

from changeline.devices.sim.netconf_engine import NetconfEngine
from changeline.devices.sim.netconf_server import start_netconf_listener

USERNAME, PASSWORD = "admin", "restart-secret"
CONFIG = ('<config><ne xmlns="urn:changeline:params:xml:ns:yang:changeline-ne">'
          "<name>amf-1</name><type>AMF</type></ne></config>")


def connect(port: int) -> manager.Manager:
    return manager.connect(host="127.0.0.1", port=port, username=USERNAME, password=PASSWORD,
                           hostkey_verify=False, look_for_keys=False, allow_agent=False,
                           manager_params={"timeout": 10})


def test_restart_drops_sessions_refuses_connections_then_serves_again(server_loop, host_key):
    engine = NetconfEngine(config=etree.fromstring(CONFIG))
    connections = []

    def on_loop(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, server_loop).result(10)

    async def listen(port: int):
        return await start_netconf_listener(
            engine, host="127.0.0.1", port=port, host_keys=[host_key],
            check_password=lambda user, password: (user, password) == (USERNAME, PASSWORD),
            on_connection=connections.append)

    async def stop(acceptor):
        acceptor.close()
        engine.drop_all_sessions()
        await acceptor.wait_closed()

    acceptor = on_loop(listen(0))
    port = acceptor.get_port()
    session = connect(port)
    assert len(connections) == 1
    on_loop(stop(acceptor))
    deadline = time.monotonic() + 3
    while session.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not session.connected
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    acceptor = on_loop(listen(port))
    try:
        again = connect(port)
        assert int(again.session_id) > int(session.session_id)
        again.close_session()
    finally:
        on_loop(stop(acceptor))
