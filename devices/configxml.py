"""Canonical forms and diffs of NETCONF configuration (pure functions, no I/O).

"Byte-identical to the backup" is judged on a canonical form: the same XML tree
serialised the same way, whatever whitespace or namespace prefixes a server chose.
"""

from __future__ import annotations

import difflib

from lxml import etree

# The one spelling of the NETCONF base namespace (RFC 6241): session.py and the edit-config
# logic (datastore.py, which the simulator serves its datastores with) take it from here.
NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
_PARSER = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)


def config_from_data(data: etree._Element) -> etree._Element:
    """Turn a get-config `<data>` reply into a `<config>` element holding the same children."""
    config = etree.Element(f"{{{NC_NS}}}config", nsmap={None: NC_NS})
    for child in data:
        if isinstance(child.tag, str):
            config.append(_strip(child))
    return config


def _strip(el: etree._Element) -> etree._Element:
    copy = etree.fromstring(etree.tostring(el), parser=_PARSER)
    for node in copy.iter():
        if node.text is not None and not node.text.strip() and len(node):
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    etree.cleanup_namespaces(copy)
    return copy


def _unprefixed(el: etree._Element) -> etree._Element:
    """Rebuild the tree with every namespace as the default one, so prefixes a server
    happened to choose (`nc:`, `x:`) do not make equal configurations look different."""
    qname = etree.QName(el)
    out = etree.Element(el.tag, nsmap={None: qname.namespace} if qname.namespace else None)
    for key, value in sorted(el.attrib.items()):
        out.set(key, value)
    out.text = el.text
    for child in el:
        if isinstance(child.tag, str):
            out.append(_unprefixed(child))
    return out


def canonical(config: etree._Element | bytes | str) -> bytes:
    """Exclusive C14N of the tree without insignificant whitespace or namespace prefixes."""
    if isinstance(config, (bytes, str)):
        config = etree.fromstring(config.encode() if isinstance(config, str) else config, parser=_PARSER)
    return etree.tostring(_unprefixed(_strip(config)), method="c14n", exclusive=True)


def pretty(config: etree._Element | bytes) -> str:
    """Stable, readable text for diffs and reports."""
    if isinstance(config, bytes):
        config = etree.fromstring(config, parser=_PARSER)
    return etree.tostring(_strip(config), pretty_print=True, encoding="unicode")


def diff(before: etree._Element | bytes, after: etree._Element | bytes, *,
         before_name: str = "before", after_name: str = "after") -> str:
    """Unified diff of two configurations ('' when they are canonically equal)."""
    if canonical(before) == canonical(after):
        return ""
    a = pretty(before).splitlines(keepends=True)
    b = pretty(after).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, fromfile=before_name, tofile=after_name))
