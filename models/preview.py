"""What a plan shows before anything changes: config diffs and the NEs' real state.

The diff a `config_change` step would make is computed locally: the NE's running
configuration with the step's edit applied by the simulator's pure edit-config logic
(merge semantics, `devices/datastore.py`, which the simulator serves too), diffed with `devices/configxml.diff`.
Several config_change steps apply one after the other. Reading the NE (`read_device`)
is the only I/O here and is read-only: `<get-config>` of running and `<get>` of state.
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lxml import etree

from changeline.devices.configxml import NC_NS, config_from_data, diff
from changeline.devices.inventory import Host
from changeline.devices import datastore
from changeline.errors import ChangelineError, InputError
from changeline.models.compile import NEPlan

_PARSER = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)


@dataclass(frozen=True)
class ConfigPreview:
    step: str
    diff: str                  # unified diff, running before -> after this step ('' = no change)
    problem: str | None = None  # why the NE would refuse this edit


def as_config(running: etree._Element | bytes | str) -> etree._Element:
    """A `<get-config>` reply's `<data>`, a `<config>`, or bare top-level elements, as a
    canonical datastore root `<config>`."""
    if isinstance(running, (bytes, str)):
        text = running.encode() if isinstance(running, str) else running
        try:
            running = etree.fromstring(text, parser=_PARSER)
        except etree.XMLSyntaxError:
            running = etree.fromstring(b"<config xmlns='%s'>" % NC_NS.encode() + text + b"</config>", parser=_PARSER)
    if running.tag == f"{{{NC_NS}}}data":
        running = config_from_data(running)
    if running.tag != f"{{{NC_NS}}}config":
        return datastore.config_root([running])
    return datastore.config_root(datastore.elements(running))


class EditRefused(ChangelineError):
    """The NE would refuse this edit-config (malformed XML, data missing or existing, ...)."""


def apply_change(running: etree._Element, change_xml: str, default_operation: str = "merge") -> etree._Element:
    """`running` (a datastore root) with the edit applied; EditRefused if the NE would refuse it."""
    from changeline.atoms.config_change import parse_change

    try:
        edit = parse_change(change_xml)
    except InputError as err:
        raise EditRefused("; ".join(p.message for p in err.problems)) from None
    after = copy.deepcopy(running)
    errors = datastore.apply_edit(after, edit, default_operation=default_operation)
    if errors:
        raise EditRefused("; ".join(f"{e.tag}: {e.reason}" for e in errors))
    return after


def preview_config_change(running: etree._Element | bytes | str, change_xml: str,
                          default_operation: str = "merge") -> str:
    """The unified diff running -> running + change ('' when the change is already there)."""
    before = as_config(running)
    return diff(before, apply_change(before, change_xml, default_operation), before_name="running",
                after_name="after change")


def preview_plan(plan: NEPlan, running: etree._Element | bytes | str) -> list[ConfigPreview]:
    """The diff of each config_change step of an NE plan, applied in order."""
    current = as_config(running)
    out = []
    for step in plan.steps:
        if step.atom != "config_change":
            continue
        try:
            after = apply_change(current, step.args["config"], step.args.get("default_operation", "merge"))
        except EditRefused as err:
            out.append(ConfigPreview(step.name, "", err.reason))
            continue
        out.append(ConfigPreview(step.name, diff(current, after, before_name="running",
                                                 after_name=f"after {step.name}")))
        current = after
    return out


# --- reading NEs (read-only) ------------------------------------------------------------

@dataclass(frozen=True)
class DeviceFacts:
    ne: str
    running: etree._Element | None = None
    version: str | None = None
    error: str | None = None


def read_device(host: Host) -> DeviceFacts:
    """The NE's running configuration and software version; a failure is reported, not raised."""
    from changeline.devices.platforms import driver_for
    from changeline.devices.session import DeviceSession, Endpoint

    try:
        with DeviceSession(Endpoint.from_host(host)) as session:
            running = config_from_data(session.get_config("running"))
            state = driver_for(host, session).read_state_optional()
    except ChangelineError as err:
        return DeviceFacts(host.name, error=err.reason)
    except OSError as err:
        return DeviceFacts(host.name, error=str(err))
    return DeviceFacts(host.name, running=running, version=state.running_version if state else None)


def read_devices(hosts: list[Host], *, workers: int = 8) -> dict[str, DeviceFacts]:
    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(hosts)))) as pool:
        return {facts.ne: facts for facts in pool.map(read_device, hosts)}
