"""backup: running (and startup) config plus software state, stored durably and read back.

Generic: needs only the driver's config_get (and the startup datastore when the NE has
one), so it works on any RFC 6241 server. The software version is read only from NEs
whose platform reports state.
"""

from __future__ import annotations

from lxml import etree

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, timed

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


def read_running(ctx: AtomContext) -> bytes:
    return ctx.driver.config_get("running")


@timed
def run(ctx: AtomContext, *, include_startup: bool = True, include_state: bool = True) -> AtomResult:
    running = read_running(ctx)
    startup = ctx.driver.config_startup() if include_startup else None
    version, state = "", None
    if ctx.driver.reports_state():
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
    driver = ctx.driver
    with driver.config_locked():
        driver.config_discard()
        driver.config_edit(target, default_operation="replace")
        if driver.has(":confirmed-commit"):
            driver.config_confirmed_commit(confirm_timeout_s)
        driver.config_commit()
    after = read_running(ctx)
    if after != config:
        raise RollbackFailed("running config differs from the backup after restore:\n" + diff(config, after, before_name="backup", after_name="running"))
    return applied
