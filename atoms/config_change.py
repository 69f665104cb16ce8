"""config_change: the NAPALM lifecycle, through the NE's platform driver (RFC 6241 datastores).

Lock the candidate, load the change, diff against running, validate, commit with a
confirm timer (persisted, so it survives a dropped session), verify, then confirm now
or leave the confirmation to a later step (`confirm: later`) so the NE reverts by
itself if the engine dies or a gate fails before `confirm_commit` runs.
Generic: any server with :candidate and :confirmed-commit.
"""

from __future__ import annotations

from lxml import etree

from changeline.atoms.backup import read_running, restore_config
from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, Journaled, timed
from changeline.devices.configxml import NC_NS, diff
from changeline.errors import CheckFailed, DeviceError, InputError

SPEC = AtomSpec(
    name="config_change",
    summary="Edit candidate, diff, validate, confirmed commit, verify, confirm (now or later)",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["config"],
        "properties": {
            "config": {"type": "string", "minLength": 1,
                       "description": "XML: a <config> element or the top-level elements to merge"},
            "default_operation": {"enum": ["merge", "replace", "none"], "default": "merge"},
            "confirm_timeout_s": {"type": "integer", "minimum": 1, "maximum": 86400, "default": 120},
            "confirm": {"enum": ["now", "later"], "default": "now"},
        },
    },
    mutating=True,
    estimate_s=10,
    manual_minutes=20,
)


def persist_id(ctx: AtomContext) -> str:
    return f"changeline-{ctx.run_id}-{ctx.ne}-{ctx.step or SPEC.name}"


def parse_change(config: str) -> etree._Element:
    try:
        root = etree.fromstring(config.strip().encode(),
                                parser=etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        # Several top-level elements: wrap them.
        try:
            root = etree.fromstring(f'<config xmlns="{NC_NS}">{config}</config>'.encode(),
                                    parser=etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError as err:
            raise InputError(f"config_change.config is not well-formed XML: {err}") from None
    if root.tag != f"{{{NC_NS}}}config":
        wrapper = etree.Element(f"{{{NC_NS}}}config", nsmap={None: NC_NS})
        wrapper.append(root)
        root = wrapper
    return root


@timed
def run(ctx: AtomContext, *, config: str, default_operation: str = "merge", confirm_timeout_s: int = 120,
        confirm: str = "now") -> AtomResult:
    change = parse_change(config)
    driver = ctx.driver
    for cap in (":candidate", ":confirmed-commit"):
        if not driver.has(cap):
            raise CheckFailed(f"config_change needs {cap}; the NE does not advertise it")
    before = read_running(ctx)
    with driver.config_locked():
        driver.config_discard()
        driver.config_edit(change, default_operation=default_operation)
        candidate = driver.config_get("candidate")
        change_diff = diff(before, candidate, before_name="running", after_name="candidate")
        if not change_diff:
            driver.config_discard()
            return AtomResult(atom=SPEC.name, ne=ctx.ne, changed=False, reason="already applied: no difference")
        driver.config_validate(candidate)
        if ctx.dry_run:
            driver.config_discard()
            return AtomResult(atom=SPEC.name, ne=ctx.ne, changed=False, diff=change_diff, reason="dry run")
        undo = {"restore_running_sha256": ctx.backups.put_object(before), "persist_id": persist_id(ctx)}
        with Journaled(ctx, SPEC.name, undo) as j:
            driver.config_confirmed_commit(confirm_timeout_s, persist=persist_id(ctx))
            after = read_running(ctx)
            if after != candidate:
                driver.config_cancel(persist_id=persist_id(ctx))
                raise CheckFailed("running config after commit differs from the candidate; commit cancelled:\n"
                                  + diff(candidate, after, before_name="candidate", after_name="running"))
            if confirm == "now":
                driver.config_commit(persist_id=persist_id(ctx))
            ctx.journal.put_baseline(ctx.run_id, ctx.ne, "expected_running_sha256", ctx.backups.put_object(after))
            j.result = AtomResult(atom=SPEC.name, ne=ctx.ne, changed=True, diff=change_diff,
                                  reason="committed and confirmed" if confirm == "now"
                                  else f"committed; reverts in {confirm_timeout_s} s unless confirmed",
                                  evidence={"persist_id": persist_id(ctx), "confirm": confirm})
    return j.result


def undo(ctx: AtomContext, record: dict) -> AtomResult:
    """Cancel a pending confirmed commit if there is one, then restore running byte-identical."""
    try:
        ctx.driver.config_cancel(persist_id=record["persist_id"])
    except DeviceError:
        pass  # nothing pending (already confirmed or already reverted): restore below decides
    target = ctx.backups.get_object(record["restore_running_sha256"])
    applied = restore_config(ctx, target)
    return AtomResult(atom=f"undo:{SPEC.name}", ne=ctx.ne, changed=bool(applied), diff=applied,
                      reason="config restored byte-identical" if applied else "config already as before")
