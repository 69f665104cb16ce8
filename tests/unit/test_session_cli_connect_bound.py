"""A CLI (netmiko) connect never outlives its timeout when the NE leaves the shell channel's
open unanswered, and that end is transient, as for NETCONF (test_session_connect_bound.py).

netmiko opens its shell with paramiko's default channel timeout, an hour. The server here is a
real SSH server (paramiko's) that logs the client in and never answers the channel open.
"""

from __future__ import annotations

import paramiko
import pytest

from changeline.devices.session import DeviceSession
from changeline.errors import DeviceTimeout, TransientError
from tests.unit.silent_ssh import silent_server


@pytest.fixture
def silent_shell(tmp_path):
    with silent_server(tmp_path, "ssh_port", platform="changeline-mml") as server:
        yield server


@pytest.mark.timeout(120)  # without the bound the connect waits for paramiko's hour
def test_a_shell_channel_open_left_unanswered_ends_at_the_connect_timeout_as_transient(silent_shell):
    endpoint, asked = silent_shell
    # Client transports other tests of this process left running are not this test's business.
    earlier = set(paramiko.transport._active_threads)
    session = DeviceSession(endpoint)
    with pytest.raises(DeviceTimeout, match=r"CLI channel open timed out") as err:
        session.cli("DSP NE:;")
    assert asked.is_set()  # it got as far as the open: logged in, host key verified
    assert isinstance(err.value, TransientError)  # callers (an NE's restart probes) try again
    assert err.value.host == "silent-1"
    # The client's transport is closed with the failed open, not left running.
    assert not [t for t in paramiko.transport._active_threads
                if t not in earlier and not t.server_mode and t.is_active()]
    session.close()
