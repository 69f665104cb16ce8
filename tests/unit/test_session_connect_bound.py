"""A NETCONF connect never outlives its timeout, whatever the NE leaves unanswered.

Seen under load: an NE restarting for a rollback logged the engine in, then never answered
its channel open; paramiko's own channel timeout (an hour) held the rollback that long. Now the
open is bounded by the connect timeout and its end is transient (DeviceTimeout), so restart
probes try again. The server (tests/unit/silent_ssh.py) is a real SSH server that does exactly that.
"""

from __future__ import annotations

import ctypes
import threading

import paramiko
import pytest

from changeline.devices.session import DeviceSession
from changeline.errors import DeviceTimeout, TransientError
from tests.unit.silent_ssh import silent_server


@pytest.fixture
def silent_ne(tmp_path):
    with silent_server(tmp_path, "netconf_port") as server:
        yield server


@pytest.mark.timeout(120)  # without the bound the connect waits for paramiko's hour
def test_a_channel_open_left_unanswered_ends_at_the_connect_timeout_as_transient(silent_ne):
    session = DeviceSession(silent_ne[0])
    with pytest.raises(DeviceTimeout, match=r"NETCONF channel open timed out") as err:
        session.netconf
    assert isinstance(err.value, TransientError)  # callers (an NE's restart probes) try again
    assert err.value.host == "silent-1"
    session.close()


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the reader we end
def test_the_bound_holds_when_the_transport_s_reader_thread_is_gone(silent_ne):
    # The state the hung rollback was in: paramiko's transport still marked active, its reader
    # thread gone (here: ended by an exception its handlers do not catch), the open unanswered.
    endpoint, asked = silent_ne
    ended = []

    def end_the_reader() -> None:
        asked.wait(60)
        for transport in list(paramiko.transport._active_threads):
            if not transport.server_mode and transport.is_alive():
                ended.append(transport)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(transport.ident), ctypes.py_object(SystemExit))

    killer = threading.Thread(target=end_the_reader, daemon=True)
    killer.start()
    session = DeviceSession(endpoint)
    with pytest.raises(DeviceTimeout, match=r"NETCONF channel open timed out"):
        session.netconf
    killer.join(10)
    session.close()
    for transport in ended:  # its exception lands in this test (filtered above), not in a later one
        transport.join(30)
