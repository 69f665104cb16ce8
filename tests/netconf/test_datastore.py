"""Datastore logic: canonical form, edit-config operations, subtree filtering (RFC 6241)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from changeline.devices.datastore import (
    apply_edit,
    check_structure,
    config_root,
    serialize,
    subtree_filter,
)

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
CL = "urn:changeline:params:xml:ns:yang:changeline-ne"

RUNNING = f"""
<config xmlns="{NC}">
  <ne xmlns="{CL}">
    <name>amf-1</name>
    <type>AMF</type>
    <timers>
      <timer><name>t3512</name><value>3240</value></timer>
      <timer><name>t3502</name><value>720</value></timer>
    </timers>
    <interfaces>
      <interface><name>N2</name><address>10.10.0.1</address></interface>
      <interface><name>N11</name><address>10.10.1.1</address></interface>
    </interfaces>
    <capacity><max-sessions>200000</max-sessions></capacity>
  </ne>
</config>"""


def datastore(xml: str = RUNNING) -> etree._Element:
    return config_root(etree.fromstring(xml))


def edit(body: str) -> etree._Element:
    """A `<config>` as it sits in an edit-config, the nc prefix declared for operations."""
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}">{body}</config>')


def ne(body: str) -> str:
    return f'<ne xmlns="{CL}">{body}</ne>'


def value(root: etree._Element, path: str) -> str | None:
    found = root.xpath(path, namespaces={"cl": CL})
    return found[0].text if found else None


def timer(root: etree._Element, name: str) -> str | None:
    return value(root, f"/*/cl:ne/cl:timers/cl:timer[cl:name='{name}']/cl:value")


# --- canonical form ---------------------------------------------------------------------

def test_equal_trees_serialize_identically_whatever_prefixes_and_whitespace():
    prefixed = etree.fromstring(
        f'<x:config xmlns:x="{NC}"><c:ne xmlns:c="{CL}"><c:name> amf-1 </c:name>'
        f'<c:timers>\n  <c:timer><c:name>t1</c:name><c:value>5</c:value></c:timer></c:timers>'
        f"</c:ne></x:config>")
    plain = etree.fromstring(
        f'<config xmlns="{NC}"><ne xmlns="{CL}"><name>amf-1</name><timers><timer>'
        f"<name>t1</name><value>5</value></timer></timers></ne></config>")
    assert serialize(config_root(prefixed)) == serialize(config_root(plain))
    assert b"<ne xmlns=" in serialize(config_root(plain))  # default namespace, no ns0:


def test_canonical_form_keeps_the_stored_order():
    first = serialize(datastore())
    assert first.index(b"t3512") < first.index(b"t3502")


# --- edit-config --------------------------------------------------------------------------

def test_merge_changes_a_leaf_and_adds_a_list_entry():
    root = datastore()
    errors = apply_edit(root, edit(ne(
        "<timers><timer><name>t3512</name><value>60</value></timer>"
        "<timer><name>t3</name><value>1</value></timer></timers>")))
    assert errors == []
    assert timer(root, "t3512") == "60"
    assert timer(root, "t3502") == "720"  # merge leaves siblings alone
    assert timer(root, "t3") == "1"


def test_empty_container_in_a_merge_changes_nothing():
    root = datastore()
    before = serialize(root)
    assert apply_edit(root, edit(ne("<timers/>"))) == []
    assert serialize(root) == before


def test_replace_on_a_list_entry_drops_children_not_given():
    root = datastore()
    apply_edit(root, edit(ne('<interfaces><interface nc:operation="replace"><name>N2</name>'
                             "</interface></interfaces>")))
    assert value(root, "//cl:interface[cl:name='N2']/cl:address") is None
    assert value(root, "//cl:interface[cl:name='N11']/cl:address") == "10.10.1.1"
    # and the entry keeps its place in the list
    names = root.xpath("//cl:interface/cl:name/text()", namespaces={"cl": CL})
    assert names == ["N2", "N11"]


def test_create_existing_entry_is_data_exists_with_its_path():
    root = datastore()
    [error] = apply_edit(root, edit(ne(
        '<timers><timer nc:operation="create"><name>t3512</name><value>1</value></timer></timers>')))
    assert error.tag == "data-exists"
    assert error.path == "/changeline-ne:ne/changeline-ne:timers/changeline-ne:timer[changeline-ne:name='t3512']"
    assert error.path_namespaces == {"changeline-ne": CL}
    assert timer(root, "t3512") == "3240"


def test_delete_missing_is_data_missing_but_remove_missing_is_fine():
    root = datastore()
    [error] = apply_edit(root, edit(ne('<timers><timer nc:operation="delete"><name>nope</name>'
                                       "</timer></timers>")))
    assert error.tag == "data-missing"
    assert apply_edit(root, edit(ne('<timers><timer nc:operation="remove"><name>nope</name>'
                                    "</timer></timers>"))) == []


def test_delete_removes_the_whole_entry():
    root = datastore()
    assert apply_edit(root, edit(ne('<timers><timer nc:operation="delete"><name>t3502</name>'
                                    "</timer></timers>"))) == []
    assert timer(root, "t3502") is None
    assert timer(root, "t3512") == "3240"


def test_default_operation_none_only_navigates():
    root = datastore()
    errors = apply_edit(root, edit(ne(
        '<timers><timer nc:operation="delete"><name>t3502</name></timer></timers>'
        "<type>SMF</type>")), default_operation="none")
    assert errors == []
    assert timer(root, "t3502") is None
    assert value(root, "//cl:type") == "AMF"  # untouched under "none"


def test_default_operation_none_with_a_missing_parent_is_data_missing():
    root = datastore()
    [error] = apply_edit(root, edit(ne(
        '<dnns><dnn nc:operation="delete"><name>internet</name></dnn></dnns>')),
        default_operation="none")
    assert error.tag == "data-missing"
    assert error.path == "/changeline-ne:ne/changeline-ne:dnns"


def test_default_operation_replace_replaces_the_whole_datastore():
    root = datastore()
    apply_edit(root, edit(ne("<name>amf-1</name><type>AMF</type>")), default_operation="replace")
    assert serialize(root) == serialize(datastore(
        f'<config xmlns="{NC}"><ne xmlns="{CL}"><name>amf-1</name><type>AMF</type></ne></config>'))


def test_operation_on_a_nested_leaf():
    root = datastore()
    assert apply_edit(root, edit(ne('<capacity><max-sessions nc:operation="delete"/></capacity>'))) == []
    assert value(root, "//cl:capacity/cl:max-sessions") is None
    assert root.xpath("//cl:capacity", namespaces={"cl": CL})  # the container stays


def test_unknown_operation_is_bad_attribute():
    [error] = apply_edit(datastore(), edit(ne('<type nc:operation="upsert">x</type>')))
    assert (error.tag, error.info["bad-attribute"]) == ("bad-attribute", "operation")


def test_value_for_a_container_and_children_for_a_leaf_are_bad_element():
    [error] = apply_edit(datastore(), edit(ne("<capacity>5</capacity>")))
    assert (error.tag, error.path) == ("bad-element", "/changeline-ne:ne/changeline-ne:capacity")
    [error] = apply_edit(datastore(), edit(ne("<type><x>1</x></type>")))
    assert error.tag == "bad-element"


def test_list_entry_without_its_key_is_missing_element():
    [error] = apply_edit(datastore(), edit(ne("<timers><timer><value>1</value></timer></timers>")))
    assert (error.tag, error.info["bad-element"]) == ("missing-element", "name")


def test_stop_on_error_stops_and_continue_on_error_applies_the_rest():
    body = ne('<timers><timer nc:operation="create"><name>t3512</name></timer>'
              "<timer><name>t9</name><value>9</value></timer></timers>")
    stopped = datastore()
    assert len(apply_edit(stopped, edit(body))) == 1
    assert timer(stopped, "t9") is None
    continued = datastore()
    assert len(apply_edit(continued, edit(body), stop_on_error=False)) == 1
    assert timer(continued, "t9") == "9"


def test_key_with_a_quote_gets_the_other_quote_in_the_path():
    [error] = apply_edit(datastore(), edit(ne(
        """<timers><timer nc:operation="delete"><name>it's</name></timer></timers>""")))
    assert error.path.endswith("""[changeline-ne:name="it's"]""")


# --- structure checks -----------------------------------------------------------------------

def test_structure_problems_are_found():
    tree = etree.fromstring(
        f'<config xmlns="{NC}"><ne xmlns="{CL}"><type>AMF<x/></type><timers>'
        "<timer><name>a</name></timer><timer><name>a</name></timer><timer><name/></timer>"
        "</timers></ne></config>")
    tags = sorted(e.tag for e in check_structure(tree))
    assert tags == ["bad-element", "invalid-value", "operation-failed"]
    two_nes = etree.fromstring(f'<config xmlns="{NC}"><ne xmlns="{CL}"/><ne xmlns="{CL}"/></config>')
    assert [e.app_tag for e in check_structure(two_nes)] == ["data-not-unique"]
    assert check_structure(datastore()) == []


# --- subtree filtering (RFC 6241 section 6.4 patterns) ---------------------------------------

def select(xml_filter: str | None, root: etree._Element | None = None) -> etree._Element:
    root = datastore() if root is None else root
    selector = None if xml_filter is None else etree.fromstring(
        f'<filter xmlns="{NC}" type="subtree">{xml_filter}</filter>')
    return subtree_filter(root, selector)


def names(root: etree._Element, xpath: str) -> list[str]:
    return root.xpath(xpath, namespaces={"cl": CL})


def child_names(node: etree._Element) -> list[str]:
    return [etree.QName(child).localname for child in node]


def test_no_filter_selects_everything_and_an_empty_filter_nothing():
    assert serialize(select(None)) == serialize(datastore())
    assert len(select("")) == 0


def test_namespace_selection():
    assert serialize(select(f'<ne xmlns="{CL}"/>')) == serialize(datastore())
    assert len(select('<ne xmlns="urn:other"/>')) == 0


def test_unqualified_filter_matches_any_namespace():
    assert serialize(select('<ne xmlns=""/>')) == serialize(datastore())


def test_containment_and_selection_nodes():
    result = select(ne("<timers/><type/>"))
    assert child_names(result[0]) == ["type", "timers"]  # data order, not filter order
    assert names(result, "//cl:timer/cl:name/text()") == ["t3512", "t3502"]


def test_content_match_alone_selects_the_whole_entry():
    result = select(ne("<interfaces><interface><name>N2</name></interface></interfaces>"))
    assert names(result, "//cl:interface/cl:name/text()") == ["N2"]
    assert names(result, "//cl:interface/cl:address/text()") == ["10.10.0.1"]


def test_content_match_with_selection_returns_only_the_selected_leaves():
    result = select(ne("<timers><timer><name>t3502</name><value/></timer></timers>"))
    assert names(result, "//cl:timer/*/text()") == ["t3502", "720"]
    result = select(ne("<interfaces><interface><name>N2</name><mtu/></interface></interfaces>"))
    [interface] = names(result, "//cl:interface")
    assert child_names(interface) == ["name"]  # the matched key, nothing for <mtu/>


def test_content_match_without_a_match_selects_nothing():
    assert len(select(ne("<type>SMF</type>"))) == 0
    assert len(select(ne("<interfaces><interface><name>N9</name></interface></interfaces>"))) == 0


def test_several_filter_nodes_selecting_one_entry_are_unioned():
    result = select(ne("<interfaces><interface><name>N2</name><address/></interface>"
                       "<interface><name>N2</name></interface>"
                       "<interface><name>N11</name><address/></interface></interfaces>"))
    assert names(result, "//cl:interface/cl:name/text()") == ["N2", "N11"]
    assert len(names(result, "//cl:interface[cl:name='N2']/cl:address")) == 1


def test_attribute_match_expression_must_match():
    assert len(select(f'<ne xmlns="{CL}" kind="x"/>')) == 0


# --- properties -------------------------------------------------------------------------------

_values = st.text(alphabet="abxyz019-.", min_size=1, max_size=5)
_leaf = st.builds(lambda n, v: ("leaf", n, v), st.sampled_from(["l1", "l2", "value"]), _values)
_node = st.recursive(
    _leaf,
    lambda children: st.one_of(
        st.builds(lambda n, c: ("container", n, c), st.sampled_from(["c1", "c2"]),
                  st.lists(children, max_size=3)),
        st.builds(lambda n, k, c: ("entry", n, k, c), st.sampled_from(["e1", "e2"]), _values,
                  st.lists(children, max_size=3)),
    ),
    max_leaves=12,
)
_top = st.lists(st.builds(lambda n, c: ("container", n, c), st.sampled_from(["ne", "ne2"]),
                          st.lists(_node, max_size=4)), min_size=1, max_size=2)


def _build(parent: etree._Element, spec: tuple) -> None:
    kind, name = spec[0], spec[1]
    node = etree.SubElement(parent, f"{{{CL}}}{name}")
    if kind == "leaf":
        node.text = spec[2]
        return
    if kind == "entry":
        etree.SubElement(node, f"{{{CL}}}name").text = spec[2]
    for child in spec[-1]:
        _build(node, child)


def _config(specs: list[tuple]) -> etree._Element:
    root = etree.Element(f"{{{NC}}}config")
    for spec in specs:
        _build(root, spec)
    return root


@given(existing=_top, change=_top)
def test_merge_is_idempotent(existing, change):
    root = datastore(etree.tostring(_config(existing)).decode())
    first = apply_edit(root, _config(change), stop_on_error=False)
    once = serialize(root)
    second = apply_edit(root, _config(change), stop_on_error=False)
    assert serialize(root) == once
    assert [e.tag for e in second] == [e.tag for e in first]


@given(specs=_top)
def test_merge_into_an_empty_datastore_then_filtering_everything_round_trips(specs):
    root = config_root()
    apply_edit(root, _config(specs))
    again = config_root()
    apply_edit(again, etree.fromstring(serialize(root)))
    assert serialize(again) == serialize(root)
    everything = "".join(f'<{n} xmlns="{CL}"/>' for n in ("ne", "ne2"))
    assert serialize(select(everything, root)) == serialize(root)
