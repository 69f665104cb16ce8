"""backup: running (and startup) config plus software state, stored durably and read back.

Generic: needs only <get-config> (and :startup when present), so it works on any
RFC 6241 server. The software version is read only from NEs that speak the
changeline contract.
"""

from __future__ import annotations

from lxml import etree

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, timed
from changeline.devices.configxml import canonical, config_from_data
from changeline.errors import RpcError

SPEC = AtomSpec(
    name="backup",
    summary="Store running/startup config and software version in the content-addressed backup store",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "include_startup": {"type": "boolean", "default": True},
            "include_state": {"type": "boolean", "default": True},
        },
    },
    mutating=False,
    estimate_s=5,
    manual_minutes=10,
)


def speaks_contract(ctx: AtomContext) -> bool:
    """Does the NE report changeline operational state? A generic server may load our YANG
    module (so it advertises the namespace) without implementing the NE behind it."""
    facts = ctx.session.facts
    if "contract" not in facts:
        facts["contract"] = ctx.driver.read_state_optional() is not None
    return facts["contract"]


def read_running(ctx: AtomContext) -> bytes:
    return canonical(config_from_data(ctx.session.get_config("running")))


@timed
def run(ctx: AtomContext, *, include_startup: bool = True, include_state: bool = True) -> AtomResult:
    running = read_running(ctx)
    startup = None
    if include_startup and ctx.session.has_capability(":startup"):
        try:
            startup = canonical(config_from_data(ctx.session.get_config("startup")))
        except RpcError as err:
            # A server may have no startup yet (nothing copied to it): record its absence.
            if err.tag not in ("invalid-value", "data-missing", "operation-failed"):
                raise
    version, state = "", None
    if speaks_contract(ctx):
        ne_state = ctx.driver.read_state()
        version = ne_state.running_version
        if include_state:
            state = ne_state.raw.encode()
    rec = ctx.backups.record(ne=ctx.ne, run_id=ctx.run_id, software_version=version,
                             running=running, startup=startup, state=state)
    ctx.journal.put_baseline(ctx.run_id, ctx.ne, "backup_id", rec.id)
    ctx.baseline["backup_id"] = rec.id
    return AtomResult(atom=SPEC.name, ne=ctx.ne, reason=f"backup {rec.id} stored and read back",
                      evidence={"backup_id": rec.id, "running_sha256": rec.running_sha256,
                                "startup_sha256": rec.startup_sha256, "software_version": version,
                                "running_bytes": len(running)})


def restore_config(ctx: AtomContext, config: bytes, *, confirm_timeout_s: int = 120) -> str:
    """Make running canonically equal to `config` through the candidate, with a confirmed commit.

    Returns the diff that was applied ('' when running already matched).
    """
    from changeline.devices.configxml import diff
    from changeline.errors import RollbackFailed

    current = read_running(ctx)
    if current == config:
        return ""
    applied = diff(current, config, before_name="running", after_name="backup")
    target = etree.fromstring(config)
    with ctx.session.locked("candidate"):
        ctx.session.discard_changes()
        ctx.session.edit_config(target, target="candidate", default_operation="replace")
        if ctx.session.has_capability(":confirmed-commit"):
            ctx.session.commit(confirmed=True, timeout=confirm_timeout_s)
            ctx.session.commit()
        else:
            ctx.session.commit()
    after = read_running(ctx)
    if after != config:
        raise RollbackFailed("running config differs from the backup after restore:\n" + diff(config, after, before_name="backup", after_name="running"))
    return applied
