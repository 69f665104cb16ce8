"""devices/session.py sets up NETCONF's and SFTP's SSH transports itself (`_Transport`): against
the real simulator, what they negotiate, how often their threads wake, and that a host key
other than the one known_hosts holds is still refused, not retried."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from changeline.devices.session import TRANSPORT_WAKE_S, DeviceSession, Endpoint
from changeline.errors import HostKeyError, TransientError
from tests.simfixture import running_sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    with running_sim(tmp_path_factory.mktemp("transport"), [{"name": "amf-1", "type": "AMF"}]) as running:
        yield running


def test_both_transports_use_aes_gcm_and_wake_once_a_second(sim):
    with DeviceSession(Endpoint.from_host(sim.inventory.hosts["amf-1"])) as session:
        session.get()
        session.list_dir(".")
        for transport in (session._nc._session._transport, session._ssh):
            assert transport.local_cipher == transport.remote_cipher == "aes128-gcm@openssh.com"
            assert transport.sock.gettimeout() == TRANSPORT_WAKE_S  # paramiko's own: 0.1 s


def test_closing_ends_both_transports(sim):
    session = DeviceSession(Endpoint.from_host(sim.inventory.hosts["amf-1"]))
    session.get()
    session.list_dir(".")
    transports = [session._nc._session._transport, session._ssh]
    session.close()
    for transport in transports:
        transport.join(30)  # a state, not a margin: the thread ends once it sees the shutdown
        assert not transport.is_alive() and not transport.is_active()


def test_a_key_of_the_known_type_but_not_the_known_key_is_refused_not_retried(sim, tmp_path):
    host = sim.inventory.hosts["amf-1"]
    known = {line.split()[1] for line in open(host.known_hosts) if line.strip()}
    assert known == {"ssh-ed25519"}  # the type the simulator offers: the negotiation succeeds
    fake = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).split()[1]
    other = tmp_path / "known_hosts"
    names = {host.hostname if p == 22 else f"[{host.hostname}]:{p}" for p in (host.port, host.ssh_port)}
    other.write_text("".join(f"{n} ssh-ed25519 {fake.decode()}\n" for n in sorted(names)))
    endpoint = dataclasses.replace(Endpoint.from_host(host), known_hosts=str(other))
    for channel, what in (("netconf", "NETCONF"), ("sftp", "SFTP")):
        session = DeviceSession(endpoint)
        with pytest.raises(HostKeyError, match=rf"{what}: host key not trusted \(the NE's ssh-ed25519 key") as caught:
            getattr(session, channel)
        session.close()
        assert not isinstance(caught.value, TransientError), channel
