"""The NE's XML vocabulary (docs/platforms.md): namespace, capabilities, the config tree
built from a profile, and the state and RPC replies built from plain data."""

from __future__ import annotations

from typing import Any

from lxml import etree

from changeline.catalogue import CONFIG_SCHEMA

from .netconf_engine import NE_NAMESPACE as NS
from .status import ImageRow, NeStatus
from .traffic import DialOutcome

BASE_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"

LIFECYCLE_RPCS = ("list-images", "install-software", "activate-software", "rollback-software",
                  "dial-test", "drain-traffic", "restore-traffic")
NETCONF_OPERATIONS = ("get", "get-config", "edit-config", "copy-config", "delete-config", "lock", "unlock",
                      "close-session", "kill-session", "commit", "cancel-commit", "discard-changes",
                      "validate", "get-schema")
KNOWN_RPCS = NETCONF_OPERATIONS + LIFECYCLE_RPCS


def cl(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _leaf(parent: etree._Element, tag: str, value: Any) -> etree._Element:
    child = etree.SubElement(parent, cl(tag))
    child.text = str(value).lower() if isinstance(value, bool) else str(value)
    return child


def config_root(name: str, ne_type: str, config: dict[str, Any]) -> etree._Element:
    """`<config><ne>...</ne></config>`: name, type, then the profile's containers in YANG order."""
    root = etree.Element(f"{{{BASE_NS}}}config", nsmap={None: BASE_NS})
    ne = etree.SubElement(root, cl("ne"), nsmap={None: NS})
    _leaf(ne, "name", name)
    _leaf(ne, "type", ne_type)
    for container, (list_name, leaves) in CONFIG_SCHEMA.items():
        if container not in config:
            continue
        node = etree.SubElement(ne, cl(container))
        entries = config[container][list_name] if list_name else [config[container]]
        for entry in entries:
            parent = etree.SubElement(node, cl(list_name)) if list_name else node
            for leaf in leaves:
                if leaf in entry:
                    _leaf(parent, leaf, entry[leaf])
    return root


def images_element(images: tuple[ImageRow, ...] | list[ImageRow]) -> etree._Element:
    node = etree.Element(cl("images"), nsmap={None: NS})
    for image in images:
        entry = etree.SubElement(node, cl("image"))
        for tag, value in (("name", image.name), ("version", image.version), ("ne-type", image.ne_type),
                           ("size", image.size), ("sha256", image.sha256), ("state", image.state)):
            _leaf(entry, tag, value)
    return node


def list_images_reply(images: list[ImageRow]) -> etree._Element:
    data = etree.Element(cl("data"), nsmap={None: NS})
    data.append(images_element(images))
    return data


def state_element(status: NeStatus) -> etree._Element:
    root = etree.Element(cl("ne-state"), nsmap={None: NS})
    _leaf(root, "name", status.name)
    _leaf(root, "type", status.ne_type)
    software = etree.SubElement(root, cl("software"))
    _leaf(software, "running-version", status.running_version)
    if status.previous_version:
        _leaf(software, "previous-version", status.previous_version)
    available = etree.SubElement(software, cl("available-versions"))
    for version in status.available_versions:
        _leaf(available, "version", version)
    root.append(images_element(status.images))
    alarms = etree.SubElement(root, cl("alarms"))
    for alarm in status.alarms:
        entry = etree.SubElement(alarms, cl("alarm"))
        for tag, value in (("id", alarm.id), ("severity", alarm.severity), ("text", alarm.text),
                           ("raised-at", alarm.raised_at)):
            _leaf(entry, tag, value)
    kpis = etree.SubElement(root, cl("kpis"))
    for kpi in status.kpis:
        entry = etree.SubElement(kpis, cl("kpi"))
        _leaf(entry, "name", kpi.name)
        _leaf(entry, "value", format_number(kpi.value))
        _leaf(entry, "unit", kpi.unit)
    resources = etree.SubElement(root, cl("resources"))
    _leaf(resources, "cpu-percent", format_number(status.cpu_percent))
    _leaf(resources, "disk-total-mb", status.disk_total_mb)
    _leaf(resources, "disk-free-mb", status.disk_free_mb)
    traffic = etree.SubElement(root, cl("traffic"))
    if status.pool:
        _leaf(traffic, "pool", status.pool)
    _leaf(traffic, "drained", status.drained)
    _leaf(traffic, "active-sessions", status.active_sessions)
    _leaf(root, "uptime-seconds", status.uptime_seconds)
    return root


def format_number(value: float) -> str:
    """`180000` rather than `180000.0`, `99.7` as is."""
    return str(int(value)) if float(value).is_integer() else str(value)


def dial_result_element(outcome: DialOutcome, charging_ids: list[str] | None) -> etree._Element:
    root = etree.Element(cl("dial-test-result"), nsmap={None: NS})
    _leaf(root, "scenario", outcome.scenario)
    _leaf(root, "result", "pass" if outcome.passed else "fail")
    _leaf(root, "attempts", outcome.attempts)
    _leaf(root, "successes", outcome.successes)
    _leaf(root, "latency-ms", outcome.latency_ms)
    if outcome.reason:
        _leaf(root, "reason", outcome.reason)
    if charging_ids is not None:
        ids = etree.SubElement(root, cl("charging-ids"))
        for charging_id in charging_ids:
            _leaf(ids, "charging-id", charging_id)
    return root


def rpc_arg(op: etree._Element, name: str) -> str | None:
    """The text of an RPC's input leaf; the namespace is optional, as clients differ."""
    for child in op:
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return (child.text or "").strip()
    return None


# Leaves that hold unsigned integers (uint32 in the YANG module).
NUMERIC_LEAVES = frozenset({"value", "max-sessions"})


def config_problem(root: etree._Element, *, name: str, ne_type: str) -> tuple[etree._Element, str, str] | None:
    """The first way a datastore `<config>` breaks the NE's data model, as
    (node, error-tag, message), or None. Keeps edits from renaming or retyping the NE
    and from adding what the YANG module does not define."""
    ne = root.find(cl("ne"))
    if ne is None:
        return root, "data-missing", "the <ne> container cannot be removed"
    for child in root:
        if isinstance(child.tag, str) and child.tag != cl("ne"):
            return child, "unknown-element", f"unknown top-level element <{etree.QName(child).localname}>"
    for leaf, expected in (("name", name), ("type", ne_type)):
        node = ne.find(cl(leaf))
        if node is None or (node.text or "").strip() != expected:
            return node if node is not None else ne, "invalid-value", f"{leaf} is read-only ({expected})"
    for container in ne:
        if not isinstance(container.tag, str):
            continue
        local = etree.QName(container).localname
        if container.tag == cl("name") or container.tag == cl("type"):
            continue
        if container.tag != cl(local) or local not in CONFIG_SCHEMA:
            return container, "unknown-element", f"unknown element <{local}> in <ne>"
        list_name, leaves = CONFIG_SCHEMA[local]
        entries = [container] if list_name is None else list(container)
        for entry in entries:
            if list_name is not None and entry.tag != cl(list_name):
                return entry, "unknown-element", f"<{local}> holds only <{list_name}> entries"
            for leaf in entry:
                leaf_name = etree.QName(leaf).localname
                if leaf.tag != cl(leaf_name) or leaf_name not in leaves:
                    return leaf, "unknown-element", f"unknown leaf <{leaf_name}> in <{entry.tag.split('}')[1]}>"
                text = (leaf.text or "").strip()
                if leaf_name in NUMERIC_LEAVES and not (text.isdigit() and int(text) < 2**32):
                    return leaf, "invalid-value", f"{leaf_name} must be an unsigned 32-bit integer, got {text!r}"
    return None


# RFC 6241 appendix A: these error-tags name the offending element in <error-info>.
_BAD_ELEMENT_TAGS = frozenset({"unknown-element", "missing-element", "bad-element"})


def problem_info(node: etree._Element, tag: str) -> dict[str, str]:
    """The `<error-info>` of a `config_problem`: `<bad-element>` where appendix A wants it."""
    return {"bad-element": etree.QName(node).localname} if tag in _BAD_ELEMENT_TAGS else {}
