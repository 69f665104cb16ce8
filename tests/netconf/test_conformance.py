"""NETCONF conformance (RFC 6241/6242 and docs/platforms.md) through real ncclient sessions.

Every test runs in both framings. The server comes from the `netconf_target` fixture and
is a black box here: tests create their own uniquely named data and assert only what the
RFCs and the NE contract promise, so the suite can be pointed at any changeline NE.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator

import paramiko
import pytest
from lxml import etree
from ncclient.operations.rpc import RPCError
from ncclient.transport.errors import AuthenticationError
from ncclient.transport.session import NetconfBase

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CL = "urn:changeline:params:xml:ns:yang:changeline-ne"
TIMERS = ("subtree", f'<ne xmlns="{CL}"><timers/></ne>')
CONTRACT_CAPABILITIES = [
    "urn:ietf:params:netconf:base:1.0",
    "urn:ietf:params:netconf:base:1.1",
    "urn:ietf:params:netconf:capability:writable-running:1.0",
    "urn:ietf:params:netconf:capability:candidate:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
    "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
    "urn:ietf:params:netconf:capability:validate:1.0",
    "urn:ietf:params:netconf:capability:validate:1.1",
    "urn:ietf:params:netconf:capability:startup:1.0",
]


# --- helpers ---------------------------------------------------------------------------------

def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def config(body: str) -> str:
    """An edit-config `<config>` holding `<ne>` with `body`; `nc:` is declared for operations."""
    return f'<config xmlns="{NC}" xmlns:nc="{NC}"><ne xmlns="{CL}">{body}</ne></config>'


def timer(name: str, value: str | int, operation: str | None = None) -> str:
    attribute = f' nc:operation="{operation}"' if operation else ""
    return f"<timer{attribute}><name>{name}</name><value>{value}</value></timer>"


def timers_config(*entries: str) -> str:
    return config(f"<timers>{''.join(entries)}</timers>")


def identity(session) -> str:
    """The NE's own read-only `<name>` and `<type>`: a whole-config replace must keep them."""
    ne = session.get_config(source="running").data_ele.find(f"{{{CL}}}ne")
    return f"<name>{ne.findtext(f'{{{CL}}}name')}</name><type>{ne.findtext(f'{{{CL}}}type')}</type>"


def timers(session, source: str = "running") -> dict[str, str]:
    data = session.get_config(source=source, filter=TIMERS).data_ele
    return {t.findtext(f"{{{CL}}}name"): t.findtext(f"{{{CL}}}value")
            for t in data.iter(f"{{{CL}}}timer")}


def error_info(error: RPCError, name: str) -> str | None:
    # ncclient hands error-info over as a str with an XML declaration: parse it as bytes.
    return etree.fromstring(error.info.encode()).findtext(f"{{{NC}}}{name}") if error.info else None


def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait for something the server does on its own (a timer, a disconnect)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def can_lock(session, datastore: str) -> bool:
    try:
        session.lock(datastore)
    except RPCError:
        return False
    return True


def drop(session) -> None:
    """Cut the connection without close-session, as a crashed client would."""
    session._session.close()


# --- session establishment -------------------------------------------------------------------

def test_hello_advertises_the_contract_capabilities(nc):
    capabilities = list(nc.server_capabilities)
    for capability in CONTRACT_CAPABILITIES:
        assert capability in capabilities
    [module] = [c for c in capabilities if c.startswith(CL + "?")]
    assert "module=changeline-ne" in module and "revision=2026-11-25" in module
    assert not any(":xpath:" in c for c in capabilities)
    assert int(nc.session_id) > 0


def test_framing_follows_the_hello_exchange(nc, framing):
    # ncclient keeps the negotiated framing only in a private attribute.
    expected = NetconfBase.BASE_11 if framing == "base:1.1" else NetconfBase.BASE_10
    assert nc._session._base == expected


def test_sessions_get_distinct_ids(connect):
    assert connect().session_id != connect().session_id


def test_wrong_password_is_refused(connect):
    with pytest.raises(AuthenticationError):
        connect(password="wrong")


def test_large_messages_cross_many_ssh_packets(nc):
    names = [unique() for _ in range(1500)]
    nc.edit_config(target="running", config=timers_config(*(timer(n, i) for i, n in enumerate(names))))
    stored = timers(nc)
    assert all(stored[n] == str(i) for i, n in enumerate(names))


# --- retrieval ---------------------------------------------------------------------------------

def test_get_config_returns_the_ne_and_get_adds_its_state(nc):
    config_data = nc.get_config(source="running").data_ele
    ne = config_data.find(f"{{{CL}}}ne")
    assert ne is not None and ne.findtext(f"{{{CL}}}name") and ne.findtext(f"{{{CL}}}type")
    assert config_data.find(f"{{{CL}}}ne-state") is None
    data = nc.get().data_ele
    assert data.find(f"{{{CL}}}ne") is not None
    assert data.find(f"{{{CL}}}ne-state") is not None


def test_subtree_filters(nc):
    a, b = unique("if"), unique("if")
    nc.edit_config(target="running", config=config(
        f"<interfaces><interface><name>{a}</name><address>10.0.0.1</address></interface>"
        f"<interface><name>{b}</name><address>10.0.0.2</address></interface></interfaces>"))

    def select(body: str, operation=None):
        return (operation or nc.get_config)(
            **({"source": "running"} if operation is None else {}),
            filter=("subtree", body)).data_ele

    ne = select(f'<ne xmlns="{CL}"><name/><type/></ne>')[0]  # selection nodes
    assert [etree.QName(c).localname for c in ne] == ["name", "type"]
    matched = select(f'<ne xmlns="{CL}"><interfaces><interface><name>{a}</name></interface>'
                     "</interfaces></ne>")  # content match: the whole entry
    assert [i.findtext(f"{{{CL}}}address") for i in matched.iter(f"{{{CL}}}interface")] == ["10.0.0.1"]
    keyed = select(f'<ne xmlns="{CL}"><interfaces><interface><name>{b}</name><address/>'
                   "</interface></interfaces></ne>")  # content match + selection
    assert [i.findtext(f"{{{CL}}}address") for i in keyed.iter(f"{{{CL}}}interface")] == ["10.0.0.2"]
    assert len(select(f'<ne xmlns="{CL}"><interfaces><interface><name>{unique()}</name>'
                      "</interface></interfaces></ne>")) == 0
    assert len(select('<ne xmlns="urn:example:other"/>')) == 0  # namespace selection
    state = select(f'<ne-state xmlns="{CL}"><name/></ne-state>', nc.get)
    assert [etree.QName(c).localname for c in state] == ["ne-state"]


# --- edit-config ---------------------------------------------------------------------------------

def test_edit_running_create_merge_delete_remove(nc):
    name = unique()
    nc.edit_config(target="running", config=timers_config(timer(name, 1, "create")))
    assert timers(nc)[name] == "1"
    nc.edit_config(target="running", config=timers_config(timer(name, 2)))
    assert timers(nc)[name] == "2"
    nc.edit_config(target="running",
                   config=timers_config(f'<timer nc:operation="delete"><name>{name}</name></timer>'))
    assert name not in timers(nc)
    nc.edit_config(target="running",
                   config=timers_config(f'<timer nc:operation="remove"><name>{name}</name></timer>'))


def test_create_existing_is_data_exists_with_an_error_path(nc):
    name = unique()
    nc.edit_config(target="running", config=timers_config(timer(name, 1)))
    with pytest.raises(RPCError) as raised:
        nc.edit_config(target="running", config=timers_config(timer(name, 5, "create")))
    error = raised.value
    assert (error.tag, error.type, error.severity) == ("data-exists", "application", "error")
    assert error.message and name in error.path and "timer" in error.path


def test_delete_missing_is_data_missing(nc):
    with pytest.raises(RPCError) as raised:
        nc.edit_config(target="running", config=timers_config(
            f'<timer nc:operation="delete"><name>{unique()}</name></timer>'))
    assert raised.value.tag == "data-missing"


def test_unknown_operation_attribute_is_bad_attribute(nc):
    with pytest.raises(RPCError) as raised:
        nc.edit_config(target="running", config=timers_config(timer(unique(), 1, "upsert")))
    assert raised.value.tag == "bad-attribute"


def test_value_for_a_container_is_bad_element_with_its_path(nc):
    with pytest.raises(RPCError) as raised:
        nc.edit_config(target="running", config=config("<capacity>5</capacity>"))
    assert raised.value.tag == "bad-element"
    assert raised.value.path.endswith("capacity")


def test_candidate_edit_commit_and_discard(nc):
    committed, discarded = unique(), unique()
    nc.edit_config(target="candidate", config=timers_config(timer(committed, 1)))
    assert committed in timers(nc, "candidate") and committed not in timers(nc)
    nc.commit()
    assert timers(nc)[committed] == "1"
    nc.edit_config(target="candidate", config=timers_config(timer(discarded, 1)))
    nc.discard_changes()
    assert discarded not in timers(nc, "candidate")
    assert timers(nc, "candidate") == timers(nc)


def test_default_operation_replace_and_none(nc):
    kept = unique()
    before = timers(nc)
    nc.edit_config(target="candidate", default_operation="replace", config=config(
        f"{identity(nc)}<timers>{timer(kept, 9)}</timers>"))
    assert timers(nc, "candidate") == {kept: "9"}
    nc.discard_changes()
    victim = next(iter(before))
    nc.edit_config(target="candidate", default_operation="none", config=config(
        f'<type>ignored</type><timers><timer nc:operation="delete"><name>{victim}</name></timer></timers>'))
    candidate = nc.get_config(source="candidate").data_ele
    assert victim not in timers(nc, "candidate")
    assert candidate.findtext(f".//{{{CL}}}type") != "ignored"
    nc.discard_changes()


def test_test_only_validates_without_changing(nc):
    name = unique()
    nc.edit_config(target="running", test_option="test-only", config=timers_config(timer(name, 1)))
    assert name not in timers(nc)


def test_rollback_on_error_leaves_the_target_untouched(nc):
    existing, new = unique(), unique()
    nc.edit_config(target="running", config=timers_config(timer(existing, 1)))
    with pytest.raises(RPCError) as raised:
        nc.edit_config(target="running", error_option="rollback-on-error",
                       config=timers_config(timer(new, 1), timer(existing, 2, "create")))
    assert raised.value.tag == "data-exists"
    assert new not in timers(nc)


def test_continue_on_error_applies_what_it_can(nc):
    existing, new = unique(), unique()
    nc.edit_config(target="running", config=timers_config(timer(existing, 1)))
    with pytest.raises(RPCError) as raised:
        nc.edit_config(target="running", error_option="continue-on-error",
                       config=timers_config(timer(existing, 2, "create"), timer(new, 3)))
    assert raised.value.tag == "data-exists"
    assert timers(nc)[new] == "3"


def test_stop_on_error_reports_the_error(nc):
    existing = unique()
    nc.edit_config(target="running", config=timers_config(timer(existing, 1)))
    with pytest.raises(RPCError) as raised:
        nc.edit_config(target="running", error_option="stop-on-error",
                       config=timers_config(timer(existing, 2, "create")))
    assert raised.value.tag == "data-exists"


# --- copy-config, delete-config, validate ------------------------------------------------------

def test_copy_config_between_datastores_and_from_inline_config(nc):
    saved, later = unique(), unique()
    nc.edit_config(target="running", config=timers_config(timer(saved, 1)))
    nc.copy_config(source="running", target="startup")
    assert timers(nc, "startup") == timers(nc)
    nc.edit_config(target="running", config=timers_config(timer(later, 1)))
    nc.copy_config(source="startup", target="candidate")
    assert saved in timers(nc, "candidate") and later not in timers(nc, "candidate")
    inline = config(f"<name>ne-x</name><type>AMF</type><timers>{timer(later, 7)}</timers>")
    nc.copy_config(source=f'<source xmlns="{NC}">{inline}</source>', target="candidate")
    assert timers(nc, "candidate") == {later: "7"}
    nc.discard_changes()
    with pytest.raises(RPCError) as raised:
        nc.copy_config(source="running", target="running")
    assert raised.value.tag == "invalid-value"


def test_delete_config_deletes_startup_but_never_running(nc):
    nc.copy_config(source="running", target="startup")
    nc.delete_config(target="startup")
    with pytest.raises(RPCError):
        nc.delete_config(target="running")
    assert nc.get_config(source="running").data_ele.find(f"{{{CL}}}ne") is not None


def test_validate_datastores_and_inline_config(nc):
    nc.validate(source="running")
    nc.validate(source="candidate")
    nc.validate(source=etree.fromstring(config(f"{identity(nc)}<timers>{timer(unique(), 1)}</timers>")))
    with pytest.raises(RPCError):
        nc.validate(source=etree.fromstring(config(f"{identity(nc)}<capacity>5<max-sessions>1</max-sessions></capacity>")))


# --- locks ---------------------------------------------------------------------------------------

def test_lock_contention_names_the_holder(connect):
    holder, other = connect(), connect()
    holder.lock("running")
    with pytest.raises(RPCError) as raised:
        other.lock("running")
    assert raised.value.tag == "lock-denied"
    assert error_info(raised.value, "session-id") == holder.session_id
    with pytest.raises(RPCError) as raised:
        other.edit_config(target="running", config=timers_config(timer(unique(), 1)))
    assert raised.value.tag in ("in-use", "lock-denied")
    holder.unlock("running")
    other.lock("running")
    other.unlock("running")


@pytest.mark.parametrize("leave", [lambda s: s.close_session(), drop], ids=["close", "drop"])
def test_lock_is_released_when_the_holder_leaves(connect, leave):
    holder, other = connect(), connect()
    holder.lock("running")
    leave(holder)
    eventually(lambda: can_lock(other, "running"))


def test_candidate_lock_refused_while_the_candidate_has_changes(connect):
    editor, other = connect(), connect()
    editor.edit_config(target="candidate", config=timers_config(timer(unique(), 1)))
    with pytest.raises(RPCError) as raised:
        other.lock("candidate")
    assert raised.value.tag == "lock-denied"
    editor.discard_changes()
    other.lock("candidate")


def test_candidate_changes_are_discarded_when_the_lock_holder_drops(connect):
    holder, other = connect(), connect()
    name = unique()
    holder.lock("candidate")
    holder.edit_config(target="candidate", config=timers_config(timer(name, 1)))
    drop(holder)
    eventually(lambda: can_lock(other, "candidate"))
    assert name not in timers(other, "candidate")


# --- confirmed commit ----------------------------------------------------------------------------

def test_confirmed_commit_reverts_when_not_confirmed_in_time(nc):
    name = unique()
    nc.edit_config(target="candidate", config=timers_config(timer(name, 1)))
    nc.commit(confirmed=True, timeout="1")
    assert name in timers(nc)
    eventually(lambda: name not in timers(nc), timeout=3)
    assert name not in timers(nc, "candidate")


def test_confirming_commit_keeps_the_change(nc):
    name = unique()
    nc.edit_config(target="candidate", config=timers_config(timer(name, 1)))
    nc.commit(confirmed=True, timeout="1")
    nc.commit()
    with pytest.raises(RPCError):
        nc.cancel_commit()  # nothing is pending any more
    time.sleep(1.3)
    assert name in timers(nc)


def test_cancel_commit_reverts_at_once(nc):
    name = unique()
    nc.edit_config(target="candidate", config=timers_config(timer(name, 1)))
    nc.commit(confirmed=True, timeout="60")
    nc.cancel_commit()
    assert name not in timers(nc)
    with pytest.raises(RPCError):
        nc.cancel_commit()


def test_confirmed_commit_reverts_when_its_session_drops(connect):
    committer, observer = connect(), connect()
    name = unique()
    committer.edit_config(target="candidate", config=timers_config(timer(name, 1)))
    committer.commit(confirmed=True, timeout="60")
    drop(committer)
    eventually(lambda: name not in timers(observer))


def test_persisted_confirmed_commit_outlives_its_session(connect):
    committer, other = connect(), connect()
    name, token = unique(), unique("persist")
    committer.edit_config(target="candidate", config=timers_config(timer(name, 1)))
    committer.commit(confirmed=True, timeout="60", persist=token)
    committer.lock("startup")  # released when the server has ended the session
    drop(committer)
    eventually(lambda: can_lock(other, "startup"))
    other.unlock("startup")
    assert name in timers(other)
    with pytest.raises(RPCError):
        other.commit()  # a persisted commit is confirmed only with its persist-id
    with pytest.raises(RPCError) as raised:
        other.commit(persist_id="not-" + token)
    assert raised.value.tag == "invalid-value"
    other.commit(persist_id=token)
    with pytest.raises(RPCError):
        other.cancel_commit(persist_id=token)  # confirmed: nothing left to cancel
    assert name in timers(other)


def test_persisted_confirmed_commit_cancelled_from_another_session(connect):
    committer, other = connect(), connect()
    name, token = unique(), unique("persist")
    committer.edit_config(target="candidate", config=timers_config(timer(name, 1)))
    committer.commit(confirmed=True, timeout="60", persist=token)
    other.cancel_commit(persist_id=token)
    assert name not in timers(other)


# --- sessions ------------------------------------------------------------------------------------

def test_kill_session_ends_the_other_session_and_frees_its_locks(connect):
    victim, killer = connect(), connect()
    victim.lock("running")
    with pytest.raises(RPCError) as raised:
        killer.kill_session(killer.session_id)
    assert raised.value.tag == "invalid-value"
    killer.kill_session(victim.session_id)
    eventually(lambda: not victim.connected)
    killer.lock("running")


def test_close_session_replies_ok_then_disconnects(nc):
    reply = nc.close_session()
    assert reply.ok
    eventually(lambda: not nc.connected)


def test_unknown_operation_is_operation_not_supported(nc):
    with pytest.raises(RPCError) as raised:
        nc.dispatch(etree.Element("{urn:example:unknown}reboot-everything"))
    assert raised.value.tag == "operation-not-supported"


# --- the wire, below what ncclient shows (RFC 6242) ---------------------------------------------

CLIENT_HELLO = (f'<hello xmlns="{NC}"><capabilities>'
                "<capability>urn:ietf:params:netconf:base:1.0</capability>"
                "<capability>urn:ietf:params:netconf:base:1.1</capability>"
                "</capabilities></hello>]]>]]>").encode()


class RawSession:
    """An SSH channel to the server driven byte by byte."""

    def __init__(self, target) -> None:
        sock = socket.create_connection((target.host, target.port), timeout=5)
        self.transport = paramiko.Transport(sock)
        self.transport.connect(username=target.username, password=target.password)
        self.channel = self.transport.open_session(timeout=5)
        self.channel.settimeout(5)

    def read_until(self, end: bytes) -> bytes:
        data = b""
        while not data.endswith(end):
            chunk = self.channel.recv(65536)
            if not chunk:
                raise EOFError(data)
            data += chunk
        return data

    def closed_by_server(self) -> bool:
        """Drain until the server closes the channel (a recv timeout fails the test)."""
        while self.channel.recv(65536):
            pass
        return True


@pytest.fixture
def raw(netconf_target) -> Iterator[RawSession]:
    session = RawSession(netconf_target)
    yield session
    session.transport.close()


def test_server_hello_first_then_chunked_rpc_sent_with_the_hello(raw):
    raw.channel.invoke_subsystem("netconf")
    hello = raw.read_until(b"]]>]]>")  # sent without waiting for ours
    assert b"<session-id>" in hello
    rpc = f'<rpc xmlns="{NC}" message-id="7"><get-config><source><running/></source></get-config></rpc>'.encode()
    raw.channel.sendall(CLIENT_HELLO + b"\n#%d\n" % len(rpc) + rpc + b"\n##\n")
    reply = raw.read_until(b"\n##\n")
    assert reply.startswith(b"\n#") and b'message-id="7"' in reply and b"<data" in reply


def test_rpcs_sent_before_a_half_close_are_still_answered(raw):
    raw.channel.invoke_subsystem("netconf")
    raw.read_until(b"]]>]]>")
    rpc = f'<rpc xmlns="{NC}" message-id="8"><get/></rpc>'.encode()
    raw.channel.sendall(CLIENT_HELLO + b"\n#%d\n" % len(rpc) + rpc + b"\n##\n")
    raw.channel.shutdown_write()
    assert b'message-id="8"' in raw.read_until(b"\n##\n")
    assert raw.closed_by_server()


def test_malformed_chunk_framing_ends_the_session(raw):
    raw.channel.invoke_subsystem("netconf")
    raw.read_until(b"]]>]]>")
    raw.channel.sendall(CLIENT_HELLO + b"\n#x1\n<")
    assert raw.closed_by_server()


def test_client_hello_with_a_session_id_ends_the_session(raw):
    raw.channel.invoke_subsystem("netconf")
    raw.read_until(b"]]>]]>")
    raw.channel.sendall(CLIENT_HELLO.replace(b"</hello>", b"<session-id>3</session-id></hello>"))
    assert raw.closed_by_server()


def test_only_the_netconf_subsystem_is_served(raw):
    with pytest.raises(paramiko.SSHException):
        raw.channel.invoke_subsystem("sftp")
