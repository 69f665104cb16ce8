"""A connect never outlives its timeout when the NE opens the channel and then leaves the
request on it unanswered - the NETCONF subsystem, the CLI's pty and shell - and that end is
transient, as for an unanswered open (test_session_connect_bound.py, test_session_cli_connect_bound.py).

paramiko waits for such an answer without end. The server (tests/unit/silent_ssh.py, `opens`)
is a real SSH server that logs the client in, opens the channel and never answers the request.
"""

from __future__ import annotations

import paramiko
import pytest

from changeline.devices.session import DeviceSession
from changeline.errors import DeviceTimeout, TransientError
from tests.unit.silent_ssh import silent_server


def _new_client_transports(earlier: set) -> list:
    return [t for t in paramiko.transport._active_threads if t not in earlier and not t.server_mode and t.is_active()]


@pytest.mark.timeout(120)  # without the bound the connect waits until the TCP connection dies
def test_a_netconf_subsystem_request_left_unanswered_ends_at_the_connect_timeout_as_transient(tmp_path):
    with silent_server(tmp_path, "netconf_port", opens=True) as (endpoint, asked):
        session = DeviceSession(endpoint)
        with pytest.raises(DeviceTimeout, match=r"never answered the NETCONF netconf subsystem request within 1 s") \
                as err:
            session.netconf
        assert asked.is_set()  # it got as far as the request: logged in, host key verified, channel open
        assert isinstance(err.value, TransientError)  # callers (an NE's restart probes) try again
        assert err.value.host == "silent-1"
        session.close()


@pytest.mark.timeout(120)
def test_a_cli_pty_request_left_unanswered_ends_at_the_connect_timeout_as_transient(tmp_path):
    with silent_server(tmp_path, "ssh_port", opens=True, platform="changeline-mml") as (endpoint, asked):
        # Client transports other tests of this process left running are not this test's business.
        earlier = set(paramiko.transport._active_threads)
        session = DeviceSession(endpoint)
        with pytest.raises(DeviceTimeout, match=r"never answered the CLI pty and shell requests within 1 s") as err:
            session.cli("DSP NE:;")
        assert asked.is_set()
        assert isinstance(err.value, TransientError)
        assert err.value.host == "silent-1"
        assert not _new_client_transports(earlier)  # closed with the failed request, not left running
        session.close()
