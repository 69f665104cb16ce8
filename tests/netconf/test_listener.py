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


def test_an_ne_going_down_mid_login_is_transient_a_refused_login_is_not(server_loop, host_key, tmp_path):
    # ncclient reports a connection that dies during password auth as an AuthenticationError,
    # like a refusal. The session layer tells them apart: a refusal is an authentication error
    # (never retried); a login cut off by an NE that is going down is transient.
    from changeline.devices.session import DeviceSession, Endpoint, known_hosts_name
    from changeline.errors import AuthenticationError, SessionDropped

    engine = NetconfEngine(config=etree.fromstring(CONFIG))
    connections = []
    listening = {}

    async def go_down_during_login(user, password):
        listening["acceptor"].close()
        engine.drop_all_sessions()
        for conn in connections:
            conn.abort()
        await asyncio.sleep(5)  # never answers: the connection is gone
        return False

    def on_loop(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, server_loop).result(10)

    async def listen(check):
        return await start_netconf_listener(engine, host="127.0.0.1", port=0, host_keys=[host_key],
                                            check_password=check, on_connection=connections.append)

    def endpoint(port: int, password: str) -> Endpoint:
        known = tmp_path / f"known_hosts-{port}"
        known.write_text(f"{known_hosts_name('127.0.0.1', port)} "
                         f"{host_key.export_public_key('openssh').decode().split()[0]} "
                         f"{host_key.export_public_key('openssh').decode().split()[1]}\n")
        return Endpoint(name="amf-1", hostname="127.0.0.1", netconf_port=port, username=USERNAME,
                        password=password, known_hosts=str(known), timeout=10)

    refusing = on_loop(listen(lambda user, password: (user, password) == (USERNAME, PASSWORD)))
    try:
        with pytest.raises(AuthenticationError):
            DeviceSession(endpoint(refusing.get_port(), "wrong")).netconf
    finally:
        refusing.close()

    listening["acceptor"] = on_loop(listen(go_down_during_login))
    with pytest.raises(SessionDropped, match="dropped during login"):
        DeviceSession(endpoint(listening["acceptor"].get_port(), PASSWORD)).netconf
