"""devices/session.py writes NETCONF messages from the caller's thread and reads in its own
loop (no send queue polled on a tick): framing, a failed write and the reopen after it,
against the real simulator."""

from __future__ import annotations

import threading

import pytest
from ncclient.transport.session import NetconfBase

from changeline.devices.session import DeviceSession, Endpoint
from changeline.errors import SessionDropped
from tests.simfixture import running_sim


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    with running_sim(tmp_path_factory.mktemp("session-io"), [{"name": "amf-1", "type": "AMF"}]) as sim:
        yield Endpoint.from_host(sim.inventory.hosts["amf-1"])


def test_rpcs_after_the_hello_use_chunked_framing_and_are_answered(endpoint):
    with DeviceSession(endpoint) as session:
        running = session.get_config("running")
        assert session._nc._session._base == NetconfBase.BASE_11  # both sides said base:1.1
        assert len(running)  # a whole reply came back through the reader loop
        for _ in range(3):  # one after another on the same session: no message left queued
            assert session.get_config("running") is not None


def test_a_cut_write_drops_the_session_and_the_next_call_opens_a_new_one(endpoint):
    with DeviceSession(endpoint) as session:
        session.get()
        first = session._nc
        first._session._channel.shutdown_write()  # the next write cannot go out
        with pytest.raises(SessionDropped):
            session.get()
        assert not first.connected
        session.get()  # a fresh session, host key verified again
        assert session._nc is not first and session._nc.connected


def test_close_ends_the_reader_thread(endpoint):
    session = DeviceSession(endpoint)
    session.get()
    reader = session._nc._session
    assert reader.is_alive()
    session.close()
    reader.join(10)
    assert not reader.is_alive()
    assert reader not in threading.enumerate()
