"""NetconfEngine without a transport: message handling, hooks and session life cycle."""

from __future__ import annotations

import asyncio

import pytest
from lxml import etree

from changeline.devices.sim.netconf_engine import (
    BASE_1_0,
    BASE_1_1,
    HelloError,
    NetconfEngine,
    RpcContext,
    RpcFault,
)

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CL = "urn:changeline:params:xml:ns:yang:changeline-ne"
NS = {"nc": NC, "cl": CL}
CONFIG = f"""<config xmlns="{NC}"><ne xmlns="{CL}"><name>amf-1</name><type>AMF</type>
<timers><timer><name>t3512</name><value>3240</value></timer></timers>
<capacity><max-sessions>200000</max-sessions></capacity></ne></config>"""
STATE = f'<ne-state xmlns="{CL}"><name>amf-1</name><uptime-seconds>7</uptime-seconds></ne-state>'


def new_engine(**kwargs) -> NetconfEngine:
    return NetconfEngine(config=etree.fromstring(CONFIG),
                         state_provider=lambda: [etree.fromstring(STATE)], **kwargs)


class Client:
    """A session on an engine, recording whether the engine asked to close it; `base` is
    the version its hello offers (None: no hello exchanged)."""

    def __init__(self, engine: NetconfEngine, base: str | None = BASE_1_1) -> None:
        self.engine = engine
        self.closed = False
        self.id = engine.new_session(self._close)
        if base is not None:
            engine.accept_hello(self.id, client_hello(base))

    def _close(self) -> None:
        self.closed = True

    async def send(self, body: str, attributes: str = 'message-id="1"') -> etree._Element | None:
        reply = await self.engine.handle(self.id, f'<rpc xmlns="{NC}" {attributes}>{body}</rpc>'.encode())
        return None if reply is None else etree.fromstring(reply)

    async def raw(self, message: bytes) -> etree._Element:
        return etree.fromstring(await self.engine.handle(self.id, message))


def run(scenario):
    return asyncio.run(scenario())


def error_tags(reply: etree._Element) -> list[str]:
    return reply.xpath("nc:rpc-error/nc:error-tag/text()", namespaces=NS)


def data_children(reply: etree._Element) -> list[str]:
    return [etree.QName(child).localname for child in reply.find(f"{{{NC}}}data")]


def is_ok(reply: etree._Element) -> bool:
    return reply.find(f"{{{NC}}}ok") is not None


def timer(engine: NetconfEngine, datastore: str = "running") -> str:
    return engine.get_datastore(datastore).xpath("//cl:timer/cl:value/text()", namespaces=NS)[0]


SET_TIMER = (f'<edit-config><target><candidate/></target><config><ne xmlns="{CL}"><timers><timer>'
             "<name>t3512</name><value>{}</value></timer></timers></ne></config></edit-config>")


# --- hello ---------------------------------------------------------------------------------

def test_hello_carries_capabilities_escaped_and_the_session_id():
    engine = new_engine()
    hello = engine.hello(Client(engine, base=None).id)
    assert b"module=changeline-ne&amp;revision=2026-11-25" in hello
    root = etree.fromstring(hello)
    assert root.findtext(f"{{{NC}}}session-id") == "1"
    capabilities = root.xpath("//nc:capability/text()", namespaces=NS)
    assert BASE_1_1 in capabilities and not any(":xpath:" in c for c in capabilities)


def client_hello(*capabilities: str, extra: str = "") -> bytes:
    caps = "".join(f"<capability>{c}</capability>" for c in capabilities)
    return f'<hello xmlns="{NC}"><capabilities>{caps}</capabilities>{extra}</hello>'.encode()


def test_client_hello_decides_the_framing():
    engine = new_engine()
    assert engine.accept_hello(Client(engine, base=None).id, client_hello(BASE_1_0, BASE_1_1)) is True
    assert engine.accept_hello(Client(engine, base=None).id, client_hello(BASE_1_0)) is False


@pytest.mark.parametrize("hello", [
    client_hello(BASE_1_0, extra="<session-id>4</session-id>"),
    client_hello("urn:example:other"),
    f'<rpc xmlns="{NC}" message-id="1"><get/></rpc>'.encode(),
    b"<hello",
])
def test_unusable_client_hello_is_refused(hello):
    engine = new_engine()
    with pytest.raises(HelloError):
        engine.accept_hello(Client(engine, base=None).id, hello)


def test_session_ids_are_unique_and_start_at_one():
    engine = new_engine()
    assert [Client(engine).id for _ in range(3)] == [1, 2, 3]
    assert engine.sessions == [1, 2, 3]


# --- message handling ------------------------------------------------------------------------

def test_malformed_xml_is_malformed_message_without_message_id():
    async def scenario():
        reply = await Client(new_engine()).raw(b'<rpc xmlns="x" message-id="1"><get>')
        assert error_tags(reply) == ["malformed-message"]
        assert reply.get("message-id") is None
    run(scenario)


def test_rpc_without_message_id_is_missing_attribute():
    async def scenario():
        reply = await Client(new_engine()).send("<get/>", attributes="")
        assert error_tags(reply) == ["missing-attribute"]
        assert reply.xpath("//nc:bad-attribute/text()", namespaces=NS) == ["message-id"]
    run(scenario)


def test_every_rpc_attribute_is_echoed():
    async def scenario():
        reply = await Client(new_engine()).send(
            "<get/>", attributes='message-id="101" xmlns:ex="urn:ex" ex:user-id="fred" lang="en"')
        assert reply.get("message-id") == "101"
        assert reply.get("{urn:ex}user-id") == "fred" and reply.get("lang") == "en"
    run(scenario)


def test_unknown_operation_and_unknown_parameter():
    async def scenario():
        client = Client(new_engine())
        assert error_tags(await client.send('<reboot xmlns="urn:ex"/>')) == ["operation-not-supported"]
        assert error_tags(await client.send("<get><with-defaults/></get>")) == ["unknown-element"]
        assert error_tags(await client.send("<get/><get/>")) == ["malformed-message"]
    run(scenario)


def test_xpath_filters_are_refused():
    async def scenario():
        reply = await Client(new_engine()).send('<get><filter type="xpath" select="/ne"/></get>')
        assert error_tags(reply) == ["bad-attribute"]
    run(scenario)


def test_get_adds_state_and_the_filter_applies_to_it():
    async def scenario():
        client = Client(new_engine())
        reply = await client.send("<get/>")
        # The NE's state, then the server's own: YANG library (RFC 8525) and monitoring (RFC 6022).
        assert data_children(reply) == ["ne", "ne-state", "yang-library", "modules-state",
                                        "netconf-state"]
        reply = await client.send(f'<get><filter><ne-state xmlns="{CL}"><uptime-seconds/>'
                                  "</ne-state></filter></get>")
        assert reply.xpath("nc:data/cl:ne-state/*/text()", namespaces=NS) == ["7"]
        reply = await client.send("<get-config><source><running/></source></get-config>")
        assert data_children(reply) == ["ne"]
    run(scenario)


# --- custom RPCs -------------------------------------------------------------------------------

def test_registered_rpcs_reply_with_their_element_ok_or_error():
    async def result(ctx: RpcContext, op: etree._Element) -> etree._Element:
        element = etree.Element(f"{{{CL}}}dial-test-result")
        etree.SubElement(element, f"{{{CL}}}scenario").text = op.findtext(f"{{{CL}}}scenario")
        etree.SubElement(element, f"{{{CL}}}session").text = str(ctx.session_id)
        return element

    async def ok(ctx, op):
        return None

    async def refuse(ctx, op):
        raise RpcFault("operation-failed", "disk is full", app_tag="disk-full",
                       path="/cl:ne", path_namespaces={"cl": CL}, info={"free-mb": 3})

    async def broken(ctx, op):
        raise KeyError("bug")

    async def scenario():
        engine = new_engine()
        for name, handler in [("dial-test", result), ("drain-traffic", ok),
                              ("install-software", refuse), ("list-images", broken)]:
            engine.register_rpc(CL, name, handler)
        client = Client(engine)
        reply = await client.send(f'<dial-test xmlns="{CL}"><scenario>volte</scenario></dial-test>')
        assert reply.xpath("cl:dial-test-result/*/text()", namespaces=NS) == ["volte", "1"]
        assert is_ok(await client.send(f'<drain-traffic xmlns="{CL}"/>'))
        reply = await client.send(f'<install-software xmlns="{CL}"/>')
        error = reply.find(f"{{{NC}}}rpc-error")
        assert [etree.QName(e).localname for e in error] == [
            "error-type", "error-tag", "error-severity", "error-app-tag", "error-path",
            "error-message", "error-info"]
        assert error.findtext(f"{{{NC}}}error-app-tag") == "disk-full"
        assert error.find(f"{{{NC}}}error-path").nsmap["cl"] == CL
        assert error.xpath("nc:error-info/nc:free-mb/text()", namespaces=NS) == ["3"]
        reply = await client.send(f'<list-images xmlns="{CL}"/>')
        assert error_tags(reply) == ["operation-failed"]
    run(scenario)


# --- fault-injection hook ----------------------------------------------------------------------

def test_drop_before_does_not_apply_and_drop_after_applies_without_reply():
    async def scenario():
        engine = new_engine()
        actions = iter(["drop-before", "drop-after"])

        async def hook(session_id: int, operation: str) -> str | None:
            assert operation == "edit-config"
            await asyncio.sleep(0.01)  # a slow reply
            return next(actions)

        engine.before_rpc = hook
        first = Client(engine)
        assert await first.send(SET_TIMER.format(1)) is None
        assert not engine.has_session(first.id)
        assert timer(engine, "candidate") == "3240"
        second = Client(engine)
        assert await second.send(SET_TIMER.format(2)) is None
        assert not engine.has_session(second.id)
        assert timer(engine, "candidate") == "2"
    run(scenario)


# --- sessions ----------------------------------------------------------------------------------

def test_kill_session_closes_the_victim_and_releases_its_locks():
    async def scenario():
        engine = new_engine()
        killer, victim = Client(engine), Client(engine)
        assert is_ok(await victim.send("<lock><target><running/></target></lock>"))
        reply = await killer.send(f"<kill-session><session-id>{killer.id}</session-id></kill-session>")
        assert error_tags(reply) == ["invalid-value"]
        reply = await killer.send("<kill-session><session-id>99</session-id></kill-session>")
        assert error_tags(reply) == ["invalid-value"]
        reply = await killer.send(f"<kill-session><session-id>{victim.id}</session-id></kill-session>")
        assert is_ok(reply) and victim.closed and not killer.closed
        assert engine.sessions == [killer.id] and engine.locked_by("running") is None
    run(scenario)


def test_close_session_ends_the_session_after_replying_ok():
    async def scenario():
        engine = new_engine()
        client = Client(engine)
        assert is_ok(await client.send("<close-session/>"))
        assert engine.sessions == [] and not client.closed  # the transport closes itself
        assert await client.send("<get/>") is None
    run(scenario)


def test_drop_all_sessions_closes_everything_and_reverts_a_confirmed_commit():
    async def scenario():
        engine = new_engine()
        first, second = Client(engine), Client(engine)
        await first.send(SET_TIMER.format(5))
        await second.send("<lock><target><candidate/></target></lock>")
        assert error_tags(await second.send("<lock><target><candidate/></target></lock>")) == ["lock-denied"]
        await first.send("<commit><confirmed/><persist>p1</persist></commit>")
        assert timer(engine) == "5" and engine.confirmed_commit_pending
        engine.drop_all_sessions()
        assert first.closed and second.closed and engine.sessions == []
        assert engine.locked_by("candidate") is None
        assert timer(engine) == "3240" and not engine.confirmed_commit_pending
    run(scenario)


def test_session_end_reverts_only_a_non_persisted_confirmed_commit():
    async def scenario():
        engine = new_engine()
        client = Client(engine)
        await client.send(SET_TIMER.format(5))
        await client.send("<commit><confirmed/></commit>")
        engine.end_session(client.id)
        assert timer(engine) == "3240"
        client = Client(engine)
        await client.send(SET_TIMER.format(6))
        await client.send("<commit><confirmed/><persist>keep</persist></commit>")
        engine.end_session(client.id)
        assert timer(engine) == "6" and engine.confirmed_commit_pending
        assert is_ok(await Client(engine).send("<commit><persist-id>keep</persist-id></commit>"))
        assert not engine.confirmed_commit_pending
    run(scenario)


# --- datastore access for the NE behaviour ---------------------------------------------------

def test_set_running_is_followed_by_an_untouched_candidate_only():
    engine = new_engine()
    tree = engine.get_datastore("running")
    tree.xpath("//cl:timer/cl:value", namespaces=NS)[0].text = "1"
    engine.set_datastore("running", tree)
    assert timer(engine, "candidate") == "1"

    async def scenario():
        await Client(engine).send(SET_TIMER.format(2))
    run(scenario)
    tree.xpath("//cl:timer/cl:value", namespaces=NS)[0].text = "3"
    engine.set_datastore("running", tree)
    assert timer(engine, "candidate") == "2"


def test_startup_exists_only_after_copy_config():
    async def scenario():
        engine = new_engine()
        client = Client(engine)
        assert not engine.has_datastore("startup")
        with pytest.raises(KeyError):
            engine.get_datastore("startup")
        reply = await client.send("<get-config><source><startup/></source></get-config>")
        assert error_tags(reply) == ["invalid-value"]
        await client.send("<copy-config><target><startup/></target><source><running/></source></copy-config>")
        assert timer(engine, "startup") == "3240"
        reply = await client.send("<delete-config><target><running/></target></delete-config>")
        assert error_tags(reply) == ["invalid-value"]
        assert is_ok(await client.send("<delete-config><target><startup/></target></delete-config>"))
        assert not engine.has_datastore("startup")
    run(scenario)


def test_validator_refuses_commit_validate_and_test_then_set():
    def validator(tree: etree._Element) -> None:
        for value in tree.xpath("//cl:timer/cl:value/text()", namespaces=NS):
            if not value.isdigit():
                raise RpcFault("invalid-value", f"timer value {value} is not a number")

    async def scenario():
        engine = new_engine(validator=validator)
        client = Client(engine)
        reply = await client.send(SET_TIMER.format("soon").replace("<candidate/>", "<running/>"))
        assert error_tags(reply) == ["invalid-value"] and timer(engine) == "3240"
        reply = await client.send(SET_TIMER.format("soon").replace(
            "<config>", "<test-option>set</test-option><config>"))
        assert is_ok(reply) and timer(engine, "candidate") == "soon"
        assert error_tags(await client.send("<validate><source><candidate/></source></validate>")) == ["invalid-value"]
        assert error_tags(await client.send("<commit/>")) == ["invalid-value"]
        assert timer(engine) == "3240"
    run(scenario)
