"""What third-party clients rely on, at the engine (no transport): RFC 6241 appendix A
error-tags per base version, whitespace before the XML declaration, and discovery: the
YANG library (RFC 8525), the monitoring state (RFC 6022) and `<get-schema>`."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from lxml import etree

from changeline.devices.sim.ne_xml import problem_info
from changeline.devices.sim.netconf_engine import BASE_1_0, BASE_1_1, error_tag_for
from changeline.devices.sim.yang_library import (
    YANG_DIR,
    SchemaLookupError,
    YangModuleError,
    load_module_set,
    select_schema,
)
from tests.netconf.test_engine import NC, Client, client_hello, error_tags, new_engine, run

YANGLIB = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
NCM = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
NS = {"nc": NC, "yl": YANGLIB, "ncm": NCM}


def get_schema(*params: str) -> str:
    return f'<get-schema xmlns="{NCM}">{"".join(params)}</get-schema>'


# --- error-tags a base:1.0 peer may receive ----------------------------------------------------

@pytest.mark.parametrize("tag, base_1_1, sent", [
    ("malformed-message", True, "malformed-message"),
    ("malformed-message", False, "operation-failed"),
    ("unknown-element", False, "unknown-element"),
])
def test_error_tag_for_the_peer_version(tag, base_1_1, sent):
    assert error_tag_for(tag, base_1_1=base_1_1) == sent


@pytest.mark.parametrize("message", [
    b'<rpc xmlns="x" message-id="1"><get>',                       # not well-formed
    f'<rpc xmlns="{NC}" message-id="1"><get/><get/></rpc>'.encode(),  # two operations
    f'<hello xmlns="{NC}"/>'.encode(),                             # not an rpc
])
def test_base_1_0_peer_never_gets_malformed_message(message):
    async def scenario():
        old, new = Client(new_engine(), base=BASE_1_0), Client(new_engine(), base=BASE_1_1)
        assert error_tags(await old.raw(message)) == ["operation-failed"]
        assert error_tags(await new.raw(message)) == ["malformed-message"]
    run(scenario)


# --- whitespace before <?xml ----------------------------------------------------------------

@pytest.mark.parametrize("lead", [b"\n", b"\r\n", b"  \t\n"])
def test_whitespace_before_the_xml_declaration_is_accepted(lead):
    async def scenario():
        engine = new_engine()
        client = Client(engine, base=None)
        declaration = b'<?xml version="1.0" encoding="UTF-8"?>\n'
        assert engine.accept_hello(client.id, lead + declaration + client_hello(BASE_1_0)) is False
        reply = await client.raw(lead + declaration + f'<rpc xmlns="{NC}" message-id="7"><get/></rpc>'.encode())
        assert reply.get("message-id") == "7" and not error_tags(reply)
    run(scenario)


# --- YANG library and monitoring ------------------------------------------------------------

def test_hello_advertises_the_library_with_its_content_id():
    engine = new_engine()
    content_id = engine.modules.content_id
    assert (f"urn:ietf:params:netconf:capability:yang-library:1.1?revision=2019-01-04&content-id={content_id}"
            in engine.capabilities)
    assert (f"urn:ietf:params:netconf:capability:yang-library:1.0?revision=2019-01-04&module-set-id={content_id}"
            in engine.capabilities)
    assert f"{NCM}?module=ietf-netconf-monitoring&revision=2010-10-04" in engine.capabilities
    assert content_id == new_engine().modules.content_id  # equal module sets, equal ids


def test_library_lists_implemented_and_import_only_modules():
    async def scenario():
        reply = await Client(new_engine()).send(f'<get><filter><yang-library xmlns="{YANGLIB}"/></filter></get>')
        module_set = reply.find("nc:data/yl:yang-library/yl:module-set", NS)
        implemented = module_set.xpath("yl:module/yl:name/text()", namespaces=NS)
        imported = module_set.xpath("yl:import-only-module/yl:name/text()", namespaces=NS)
        assert set(implemented) == {"changeline-ne", "ietf-netconf", "ietf-yang-library",
                                    "ietf-netconf-monitoring", "ietf-datastores"}
        assert set(imported) == {"ietf-yang-types", "ietf-inet-types", "ietf-netconf-acm"}
        features = module_set.xpath("yl:module[yl:name='ietf-netconf']/yl:feature/text()", namespaces=NS)
        assert "candidate" in features and "xpath" not in features  # as the hello says
        # The datastore names are identityrefs: their prefix stays bound through the filter.
        [name] = reply.xpath("nc:data/yl:yang-library/yl:datastore[1]/yl:name", namespaces=NS)
        assert (name.text, name.nsmap["ds"]) == ("ds:running", DS)
    run(scenario)


def test_monitoring_shows_who_holds_a_lock_and_since_when():
    async def scenario():
        moment = datetime(2026, 12, 1, 22, 10, 5, tzinfo=timezone.utc)
        engine = new_engine(now=lambda: moment)
        holder, reader = Client(engine), Client(engine)
        assert not error_tags(await holder.send("<lock><target><candidate/></target></lock>"))
        reply = await reader.send(f'<get><filter><netconf-state xmlns="{NCM}"><datastores/></netconf-state>'
                                  "</filter></get>")
        lock = reply.find("nc:data/ncm:netconf-state/ncm:datastores/ncm:datastore[ncm:name='candidate']"
                          "/ncm:locks/ncm:global-lock", NS)
        assert lock.findtext("ncm:locked-by-session", namespaces=NS) == str(holder.id)
        assert lock.findtext("ncm:locked-time", namespaces=NS) == "2026-12-01T22:10:05Z"
        assert reply.find("nc:data/ncm:netconf-state/ncm:datastores/ncm:datastore[ncm:name='running']"
                          "/ncm:locks", NS) is None
    run(scenario)


def test_a_filter_on_the_ne_builds_no_server_state():
    async def scenario():
        reply = await Client(new_engine()).send(
            '<get><filter><ne-state xmlns="urn:changeline:params:xml:ns:yang:changeline-ne"/></filter></get>')
        assert [etree.QName(c).localname for c in reply.find("nc:data", NS)] == ["ne-state"]
    run(scenario)


# --- get-schema -----------------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    ("<identifier>changeline-ne</identifier>",),
    ("<identifier>changeline-ne</identifier>", "<version>2026-11-25</version>", "<format>yang</format>"),
    ("<identifier>changeline-ne</identifier>", '<format xmlns:m="urn:ietf:params:xml:ns:yang:'
                                               'ietf-netconf-monitoring">m:yang</format>'),
])
def test_get_schema_serves_the_module_text(params):
    async def scenario():
        reply = await Client(new_engine()).send(get_schema(*params))
        assert reply.findtext(f"{{{NCM}}}data") == (YANG_DIR / "changeline-ne.yang").read_text()
    run(scenario)


@pytest.mark.parametrize("params, tag, bad_element", [
    (("<identifier>no-such-module</identifier>",), "invalid-value", None),
    (("<identifier>changeline-ne</identifier>", "<version>1999-01-01</version>"), "invalid-value", None),
    (("<identifier>changeline-ne</identifier>", "<format>yin</format>"), "invalid-value", "format"),
    (("<identifier>changeline-ne</identifier>", '<format xmlns:x="urn:x">x:yang</format>'), "invalid-value", "format"),
    (("<version>2026-11-25</version>",), "missing-element", "identifier"),
    (("<identifier>changeline-ne</identifier>", "<module>x</module>"), "unknown-element", "module"),
])
def test_get_schema_errors(params, tag, bad_element):
    async def scenario():
        reply = await Client(new_engine()).send(get_schema(*params))
        assert error_tags(reply) == [tag]
        assert reply.xpath("//nc:bad-element/text()", namespaces=NS) == ([bad_element] if bad_element else [])
    run(scenario)


def test_a_module_in_two_revisions_needs_a_version(tmp_path):
    for revision in ("2026-11-25", "2026-12-01"):
        (tmp_path / f"changeline-ne@{revision}.yang").write_text(
            (YANG_DIR / "changeline-ne.yang").read_text().replace("revision 2026-11-25", f"revision {revision}", 1))
    for other in YANG_DIR.glob("ietf-*.yang"):
        (tmp_path / other.name).write_text(other.read_text())
    modules = load_module_set(tmp_path, [])
    with pytest.raises(SchemaLookupError) as ambiguous:
        select_schema(modules, "changeline-ne", None)
    assert (ambiguous.value.tag, ambiguous.value.app_tag) == ("operation-failed", "data-not-unique")
    assert select_schema(modules, "changeline-ne", "2026-12-01").revision == "2026-12-01"


def test_a_file_that_is_no_module_is_named_in_the_error(tmp_path):
    (tmp_path / "broken.yang").write_text("submodule x { belongs-to y { prefix y; } }\n")
    with pytest.raises(YangModuleError, match=r"broken\.yang: no module statement"):
        load_module_set(tmp_path, [])


# --- the NE's own data checks ----------------------------------------------------------------

@pytest.mark.parametrize("tag, info", [
    ("unknown-element", {"bad-element": "routes"}),
    ("invalid-value", {}),  # appendix A: no error-info for invalid-value
    ("data-missing", {}),
])
def test_data_check_errors_name_the_bad_element_where_appendix_a_says(tag, info):
    node = etree.Element("{urn:changeline:params:xml:ns:yang:changeline-ne}routes")
    assert problem_info(node, tag) == info
